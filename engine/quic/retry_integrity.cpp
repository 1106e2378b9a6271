#include "engine/quic/retry_integrity.hpp"

#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>

#include <cerrno>
#include <cstring>

#include "engine/quic/initial_secrets.hpp"
#include "platform/os/last_error.hpp"

namespace cf::quic {

namespace {

// RFC 9001 section 5.8, QUIC version 1 (HKDF-Expand-Label of a published secret; the test derives them again).
constexpr std::uint8_t kRetryKeyV1[16] = {0xbe, 0x0c, 0x69, 0x0b, 0x9f, 0x66, 0x57, 0x5a,
                                          0x1d, 0x76, 0x6b, 0x54, 0xe3, 0x68, 0xc8, 0x4e};
constexpr std::uint8_t kRetryNonceV1[12] = {0x46, 0x15, 0x99, 0xd3, 0x5d, 0x63, 0x2b, 0xf2, 0x23, 0x98, 0x25, 0xbb};

}  // namespace

RetryIntegrity::~RetryIntegrity() { close(); }

int RetryIntegrity::open() noexcept {
    const gnutls_datum_t key{const_cast<std::uint8_t*>(kRetryKeyV1), sizeof(kRetryKeyV1)};
    gnutls_aead_cipher_hd_t handle = nullptr;
    const int status = gnutls_aead_cipher_init(&handle, GNUTLS_CIPHER_AES_128_GCM, &key);
    if (status < 0) {
        return platform::fail(status == GNUTLS_E_MEMORY_ERROR ? ENOMEM : EIO, "QUIC Retry integrity key: %s",
                              gnutls_strerror(status));
    }
    close();
    handle_ = handle;
    return 0;
}

void RetryIntegrity::close() noexcept {
    if (handle_ != nullptr) gnutls_aead_cipher_deinit(static_cast<gnutls_aead_cipher_hd_t>(handle_));
    handle_ = nullptr;
}

int RetryIntegrity::compute(const std::uint8_t* odcid, std::size_t odcid_len, const std::uint8_t* retry,
                            std::size_t retry_len, std::uint8_t (&tag)[kRetryIntegrityTagBytes]) noexcept {
    if (handle_ == nullptr) return platform::fail(EINVAL, "QUIC Retry integrity: not open");
    if (odcid_len > kMaxConnectionIdBytes) {
        return platform::fail(EINVAL, "QUIC Retry integrity: an original DCID of %zu bytes", odcid_len);
    }
    std::uint8_t prefix[1 + kMaxConnectionIdBytes];
    prefix[0] = static_cast<std::uint8_t>(odcid_len);
    if (odcid_len != 0) std::memcpy(prefix + 1, odcid, odcid_len);
    const giovec_t pseudo_packet[2] = {{prefix, 1 + odcid_len}, {const_cast<std::uint8_t*>(retry), retry_len}};
    std::size_t tag_len = kRetryIntegrityTagBytes;
    const int status = gnutls_aead_cipher_encryptv2(static_cast<gnutls_aead_cipher_hd_t>(handle_), kRetryNonceV1,
                                                    sizeof(kRetryNonceV1), pseudo_packet, retry_len == 0 ? 1 : 2,
                                                    nullptr, 0, tag, &tag_len);
    if (status < 0) return platform::fail(EIO, "QUIC Retry integrity: %s", gnutls_strerror(status));
    return 0;
}

int RetryIntegrity::verify(const std::uint8_t* odcid, std::size_t odcid_len, const std::uint8_t* packet,
                           std::size_t packet_len) noexcept {
    if (packet_len < kRetryIntegrityTagBytes) return -EMSGSIZE;
    const std::size_t retry_len = packet_len - kRetryIntegrityTagBytes;
    std::uint8_t expected[kRetryIntegrityTagBytes];
    if (const int status = compute(odcid, odcid_len, packet, retry_len, expected); status < 0) return status;
    return gnutls_memcmp(expected, packet + retry_len, kRetryIntegrityTagBytes) == 0 ? 0 : -EBADMSG;
}

}  // namespace cf::quic
