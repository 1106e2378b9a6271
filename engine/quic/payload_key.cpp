#include "engine/quic/payload_key.hpp"

#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>

#include <cerrno>
#include <cstring>

#include "engine/quic/hkdf_label.hpp"
#include "engine/quic/packet_keys.hpp"
#include "platform/os/last_error.hpp"

namespace cf::quic {

namespace {

gnutls_cipher_algorithm_t aead_of(CipherSuite suite) noexcept {
    switch (suite) {
        case CipherSuite::aes_128_gcm_sha256: return GNUTLS_CIPHER_AES_128_GCM;
        case CipherSuite::aes_256_gcm_sha384: return GNUTLS_CIPHER_AES_256_GCM;
        case CipherSuite::chacha20_poly1305_sha256: return GNUTLS_CIPHER_CHACHA20_POLY1305;
    }
    return GNUTLS_CIPHER_UNKNOWN;
}

}  // namespace

PayloadKey::~PayloadKey() { clear(); }

int PayloadKey::install(const PacketKeys& keys) noexcept {
    clear();
    const gnutls_datum_t key{const_cast<std::uint8_t*>(keys.key), static_cast<unsigned>(aead_key_bytes(keys.suite))};
    gnutls_aead_cipher_hd_t handle = nullptr;
    const int status = gnutls_aead_cipher_init(&handle, aead_of(keys.suite), &key);
    if (status < 0) {
        return platform::fail(status == GNUTLS_E_MEMORY_ERROR ? ENOMEM : EIO, "QUIC payload key: %s",
                              gnutls_strerror(status));
    }
    handle_ = handle;
    suite_ = keys.suite;
    std::memcpy(iv_, keys.iv, kAeadIvBytes);
    installed_ = true;
    return 0;
}

void PayloadKey::clear() noexcept {
    if (handle_ != nullptr) gnutls_aead_cipher_deinit(static_cast<gnutls_aead_cipher_hd_t>(handle_));
    handle_ = nullptr;
    wipe_secret(iv_, sizeof(iv_));
    installed_ = false;
}

void PayloadKey::nonce_for(std::uint64_t packet_number, std::uint8_t (&nonce)[kAeadIvBytes]) const noexcept {
    std::memcpy(nonce, iv_, kAeadIvBytes);
    for (std::size_t i = 0; i < 8; ++i) nonce[kAeadIvBytes - 1 - i] ^= static_cast<std::uint8_t>(packet_number >> (8 * i));
}

int PayloadKey::seal(const std::uint8_t* header, std::size_t header_len, std::uint8_t* payload,
                     std::size_t payload_len, std::uint64_t packet_number) noexcept {
    if (!installed_) return platform::fail(EINVAL, "QUIC seal: no key installed");
    if (packet_number > kMaxPacketNumber) {
        return platform::fail(EINVAL, "QUIC seal: packet number %llu is above 2^62 - 1",
                              static_cast<unsigned long long>(packet_number));
    }
    std::uint8_t nonce[kAeadIvBytes];
    nonce_for(packet_number, nonce);
    std::size_t sealed_len = payload_len + kAeadTagBytes;
    const int status = gnutls_aead_cipher_encrypt(static_cast<gnutls_aead_cipher_hd_t>(handle_), nonce, sizeof(nonce),
                                                  header, header_len, kAeadTagBytes, payload, payload_len, payload,
                                                  &sealed_len);
    if (status < 0) return platform::fail(EINVAL, "QUIC seal: %s", gnutls_strerror(status));
    return 0;
}

int PayloadKey::open(const std::uint8_t* header, std::size_t header_len, std::uint8_t* payload,
                     std::size_t protected_len, std::uint64_t packet_number, std::size_t* payload_len) noexcept {
    if (!installed_) return platform::fail(EINVAL, "QUIC open: no key installed");
    if (packet_number > kMaxPacketNumber) {
        return platform::fail(EINVAL, "QUIC open: packet number %llu is above 2^62 - 1",
                              static_cast<unsigned long long>(packet_number));
    }
    if (protected_len < kAeadTagBytes) return -EMSGSIZE;
    std::uint8_t nonce[kAeadIvBytes];
    nonce_for(packet_number, nonce);
    std::size_t plain_len = protected_len;
    const int status = gnutls_aead_cipher_decrypt(static_cast<gnutls_aead_cipher_hd_t>(handle_), nonce, sizeof(nonce),
                                                  header, header_len, kAeadTagBytes, payload, protected_len, payload,
                                                  &plain_len);
    if (status < 0) return -EBADMSG;   // GNUTLS_E_DECRYPTION_FAILED; nothing else can fail for these arguments
    *payload_len = plain_len;
    return 0;
}

}  // namespace cf::quic
