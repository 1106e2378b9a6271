// The Retry Integrity Tag (RFC 9001 section 5.8): the last 16 bytes of a Retry packet are AES-128-GCM's tag, with
// a key and nonce fixed for QUIC version 1, over an empty plaintext whose associated data is the Retry
// pseudo-packet: the Original Destination Connection ID (the one the client's first Initial carried) as a length
// byte and its bytes, followed by the Retry packet without its tag. It proves the Retry came from someone who saw
// that Initial, and catches corruption; it is not secret.
//
// The GnuTLS handle is made once (open() allocates); a tag is one gnutls_aead_cipher_encryptv2 over two pieces of
// associated data (the ODCID prefix from the stack, the packet in place): no copy of the packet, no allocation
// (GnuTLS 3.7.9, counted in tests/quic/protection_alloc_test.cpp). A server makes one per Retry it sends, a
// client checks at most one per connection. Errors: -EINVAL for a caller's mistake, with a message; verify()
// returns -EMSGSIZE (shorter than a tag) or -EBADMSG (the tag does not match) without one. Not thread-safe.
#pragma once

#include <cstddef>
#include <cstdint>

namespace cf::quic {

inline constexpr std::size_t kRetryIntegrityTagBytes = 16;

class RetryIntegrity {
public:
    RetryIntegrity() noexcept = default;
    ~RetryIntegrity();
    RetryIntegrity(const RetryIntegrity&) = delete;
    RetryIntegrity& operator=(const RetryIntegrity&) = delete;

    // Creates the AES-128-GCM handle with the version 1 key. 0, or -ENOMEM / -EIO with a message.
    int open() noexcept;
    void close() noexcept;
    bool is_open() const noexcept { return handle_ != nullptr; }

    // The tag of `retry` (the Retry packet up to, not including, its tag) for the original DCID `odcid` (0..20
    // bytes). 0 or -EINVAL.
    int compute(const std::uint8_t* odcid, std::size_t odcid_len, const std::uint8_t* retry, std::size_t retry_len,
                std::uint8_t (&tag)[kRetryIntegrityTagBytes]) noexcept;
    // Checks a whole received Retry packet (its tag last) in constant time. 0, -EMSGSIZE, -EBADMSG or -EINVAL.
    int verify(const std::uint8_t* odcid, std::size_t odcid_len, const std::uint8_t* packet,
               std::size_t packet_len) noexcept;

private:
    void* handle_ = nullptr;   // gnutls_aead_cipher_hd_t, kept out of this header
};

}  // namespace cf::quic
