// The keys a QUIC packet protection secret expands to (RFC 9001 section 5.1): the AEAD key ("quic key"), the IV
// ("quic iv"), the header protection key ("quic hp"), and the secret of the next key phase ("quic ku", section
// 6.1). Each is HKDF-Expand-Label(secret, label, "", length) with the suite's hash; the secret is as long as that
// hash's output (32 bytes, 48 for AES-256-GCM's SHA-384). Cold path (once per key installation or key update).
#pragma once

#include <cstddef>
#include <cstdint>

#include "engine/quic/cipher_suite.hpp"

namespace cf::quic {

// What one secret gives. Only the first aead_key_bytes(suite) / hp_key_bytes(suite) bytes of `key` / `hp` are
// used. The destructor wipes it.
struct PacketKeys {
    CipherSuite suite = CipherSuite::aes_128_gcm_sha256;
    std::uint8_t key[kMaxAeadKeyBytes] = {};
    std::uint8_t iv[kAeadIvBytes] = {};
    std::uint8_t hp[kMaxHpKeyBytes] = {};

    PacketKeys() noexcept = default;
    PacketKeys(const PacketKeys&) = delete;
    PacketKeys& operator=(const PacketKeys&) = delete;
    ~PacketKeys();
};

// Key, IV and header protection key from `secret` (exactly secret_bytes(suite) bytes). 0, or -EINVAL (wrong secret
// length) / -EIO, with a message.
int derive_packet_keys(CipherSuite suite, const std::uint8_t* secret, std::size_t secret_len,
                       PacketKeys& keys) noexcept;

// Key and IV only: what a key update changes (the header protection key stays the first phase's).
int derive_payload_keys(CipherSuite suite, const std::uint8_t* secret, std::size_t secret_len,
                        PacketKeys& keys) noexcept;

// secret_<n+1> = HKDF-Expand-Label(secret_<n>, "quic ku", "", Hash.length) into `next` (secret_bytes(suite) bytes;
// it may be `secret` itself). 0, or -EINVAL / -EIO with a message.
int derive_next_secret(CipherSuite suite, const std::uint8_t* secret, std::size_t secret_len,
                       std::uint8_t* next) noexcept;

}  // namespace cf::quic
