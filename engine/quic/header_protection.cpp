#include "engine/quic/header_protection.hpp"

#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>

#include <cerrno>
#include <cstring>

#include "platform/os/last_error.hpp"

namespace cf::quic {

namespace {

constexpr std::uint8_t kLongHeaderBit = 0x80;
constexpr std::uint8_t kLongHeaderMask = 0x0f;    // reserved bits and packet number length
constexpr std::uint8_t kShortHeaderMask = 0x1f;   // reserved bits, key phase and packet number length

gnutls_cipher_algorithm_t cipher_of(CipherSuite suite) noexcept {
    switch (suite) {
        case CipherSuite::aes_128_gcm_sha256: return GNUTLS_CIPHER_AES_128_CBC;
        case CipherSuite::aes_256_gcm_sha384: return GNUTLS_CIPHER_AES_256_CBC;
        case CipherSuite::chacha20_poly1305_sha256: return GNUTLS_CIPHER_CHACHA20_32;
    }
    return GNUTLS_CIPHER_UNKNOWN;
}

// The sample starts 4 bytes after the packet number field's start; false if it does not fit before packet_len.
bool sample_fits(std::size_t packet_len, std::size_t pn_offset) noexcept {
    return pn_offset <= packet_len && packet_len - pn_offset >= 4 + kHpSampleBytes;
}

}  // namespace

HeaderProtectionKey::~HeaderProtectionKey() { clear(); }

int HeaderProtectionKey::install(CipherSuite suite, const std::uint8_t* hp_key) noexcept {
    clear();
    const gnutls_datum_t key{const_cast<std::uint8_t*>(hp_key), static_cast<unsigned>(hp_key_bytes(suite))};
    std::uint8_t zero_iv[16] = {};
    const gnutls_datum_t iv{zero_iv, sizeof(zero_iv)};
    gnutls_cipher_hd_t handle = nullptr;
    const int status = gnutls_cipher_init(&handle, cipher_of(suite), &key, &iv);
    if (status < 0) {
        return platform::fail(status == GNUTLS_E_MEMORY_ERROR ? ENOMEM : EIO, "QUIC header protection key: %s",
                              gnutls_strerror(status));
    }
    handle_ = handle;
    suite_ = suite;
    return 0;
}

void HeaderProtectionKey::clear() noexcept {
    if (handle_ != nullptr) gnutls_cipher_deinit(static_cast<gnutls_cipher_hd_t>(handle_));
    handle_ = nullptr;
}

int HeaderProtectionKey::mask(const std::uint8_t* sample, std::uint8_t (&mask)[kHpMaskBytes]) noexcept {
    if (handle_ == nullptr) return platform::fail(EINVAL, "QUIC header protection: no key installed");
    auto* handle = static_cast<gnutls_cipher_hd_t>(handle_);
    // Both ciphers take a 16-byte IV: zeros for CBC (so the block is ECB's), the sample itself for ChaCha20.
    std::uint8_t iv[16] = {};
    std::uint8_t block[16] = {};
    int status;
    if (suite_ == CipherSuite::chacha20_poly1305_sha256) {
        std::memcpy(iv, sample, sizeof(iv));
        gnutls_cipher_set_iv(handle, iv, sizeof(iv));
        status = gnutls_cipher_encrypt2(handle, block, kHpMaskBytes, block, kHpMaskBytes);
    } else {
        gnutls_cipher_set_iv(handle, iv, sizeof(iv));
        status = gnutls_cipher_encrypt2(handle, sample, kHpSampleBytes, block, sizeof(block));
    }
    if (status < 0) return platform::fail(EIO, "QUIC header protection: %s", gnutls_strerror(status));
    std::memcpy(mask, block, kHpMaskBytes);
    return 0;
}

int HeaderProtectionKey::apply(std::uint8_t* packet, std::size_t packet_len, std::size_t pn_offset) noexcept {
    if (pn_offset == 0) return platform::fail(EINVAL, "QUIC header protection: the packet number cannot start at 0");
    if (!sample_fits(packet_len, pn_offset)) return -EMSGSIZE;
    std::uint8_t bits[kHpMaskBytes];
    if (const int status = mask(packet + pn_offset + 4, bits); status < 0) return status;
    const std::size_t pn_length = (packet[0] & 0x03u) + 1;   // read before masking hides it
    packet[0] ^= bits[0] & ((packet[0] & kLongHeaderBit) != 0 ? kLongHeaderMask : kShortHeaderMask);
    for (std::size_t i = 0; i < pn_length; ++i) packet[pn_offset + i] ^= bits[1 + i];
    return 0;
}

int HeaderProtectionKey::remove(std::uint8_t* packet, std::size_t packet_len, std::size_t pn_offset,
                                ProtectedFields* fields) noexcept {
    if (pn_offset == 0) return platform::fail(EINVAL, "QUIC header protection: the packet number cannot start at 0");
    if (!sample_fits(packet_len, pn_offset)) return -EMSGSIZE;
    std::uint8_t bits[kHpMaskBytes];
    if (const int status = mask(packet + pn_offset + 4, bits); status < 0) return status;
    packet[0] ^= bits[0] & ((packet[0] & kLongHeaderBit) != 0 ? kLongHeaderMask : kShortHeaderMask);
    const std::size_t pn_length = (packet[0] & 0x03u) + 1;   // read after unmasking reveals it
    std::uint64_t truncated = 0;
    for (std::size_t i = 0; i < pn_length; ++i) {
        packet[pn_offset + i] ^= bits[1 + i];
        truncated = (truncated << 8) | packet[pn_offset + i];
    }
    fields->first_byte = packet[0];
    fields->packet_number_length = pn_length;
    fields->truncated_packet_number = truncated;
    return 0;
}

}  // namespace cf::quic
