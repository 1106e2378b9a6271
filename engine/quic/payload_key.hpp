// One AEAD key and IV protecting QUIC packet payloads (RFC 9001 section 5.3): the header up to and including the
// packet number is the associated data, the nonce is the IV XOR the packet number (62 bits, left-padded to 12
// bytes, network order), and the 16-byte tag follows the ciphertext.
//
// Why this shape. gnutls_aead_cipher_init allocates, so it runs when a key is installed (a level's keys, or a key
// update: never per packet). Per packet it is gnutls_aead_cipher_encrypt / _decrypt, in place (GnuTLS 3.7.9: no
// allocation, lock or system call per call, counted in tests/quic/protection_alloc_test.cpp). Those one-shot calls
// are preferred to encryptv2/decryptv2 because QUIC's layout (tag right after the ciphertext) is theirs, and
// because the v2 calls fall back to an allocated copy for ciphers without a streaming backend.
// gnutls_aead_cipher_set_key is NOT used to re-key a handle: in GnuTLS 3.7.9 on x86-64 with AES-NI and PCLMUL it
// changes the AES key but keeps the old GHASH key, so AES-GCM tags come out wrong (ChaCha20-Poly1305 and the
// portable AES code are fine). Every install makes a fresh handle instead.
//
// Errors: -EINVAL for a caller's mistake (no key, packet number above 2^62 - 1), with a message; -EMSGSIZE (shorter
// than a tag) and -EBADMSG (the tag does not verify: corrupted, forged or the wrong key) for a received packet,
// without a message (a peer can make them happen per packet, so they stay cheap). Not thread-safe.
#pragma once

#include <cstddef>
#include <cstdint>

#include "engine/quic/cipher_suite.hpp"
#include "engine/quic/packet_number.hpp"

namespace cf::quic {

struct PacketKeys;


class PayloadKey {
public:
    PayloadKey() noexcept = default;
    ~PayloadKey();
    PayloadKey(const PayloadKey&) = delete;
    PayloadKey& operator=(const PayloadKey&) = delete;

    // Installs `keys.key` and `keys.iv` for `keys.suite` in a new GnuTLS handle (allocates; the old one is freed).
    // 0, or -ENOMEM / -EIO with a message (the key held before is then gone).
    int install(const PacketKeys& keys) noexcept;
    // Frees the handle (and the key schedule in it) and wipes the IV.
    void clear() noexcept;
    bool installed() const noexcept { return installed_; }
    CipherSuite suite() const noexcept { return suite_; }

    // Encrypts payload[0, payload_len) in place and writes the tag at payload[payload_len, payload_len + 16):
    // `payload` must have room for kAeadTagBytes more. 0 or -EINVAL.
    int seal(const std::uint8_t* header, std::size_t header_len, std::uint8_t* payload, std::size_t payload_len,
             std::uint64_t packet_number) noexcept;
    // Verifies and decrypts payload[0, protected_len) (ciphertext then tag) in place; the plaintext is the first
    // *payload_len = protected_len - 16 bytes. On failure the bytes are not the ciphertext any more (GnuTLS clears
    // them): a packet that failed to open is discarded, not retried. 0, -EMSGSIZE, -EBADMSG or -EINVAL.
    int open(const std::uint8_t* header, std::size_t header_len, std::uint8_t* payload, std::size_t protected_len,
             std::uint64_t packet_number, std::size_t* payload_len) noexcept;

private:
    void nonce_for(std::uint64_t packet_number, std::uint8_t (&nonce)[kAeadIvBytes]) const noexcept;

    void* handle_ = nullptr;   // gnutls_aead_cipher_hd_t, kept out of this header
    CipherSuite suite_ = CipherSuite::aes_128_gcm_sha256;
    bool installed_ = false;
    std::uint8_t iv_[kAeadIvBytes] = {};
};

}  // namespace cf::quic
