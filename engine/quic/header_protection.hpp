// Header protection (RFC 9001 section 5.4): after the payload is sealed, 16 bytes of ciphertext starting 4 bytes
// after the packet number field (as if it were 4 bytes long) are the sample; a 5-byte mask from the sample hides
// the low 4 bits of the first byte of a long header (5 bits of a short one: the key phase too) and the packet
// number bytes. The mask is
//
//   AES suites:  AES-ECB(hp_key, sample)[0..5], computed as the first block of AES-CBC with a zero IV (GnuTLS has no
//                public ECB; the first CBC block with IV 0 is the ECB block);
//   ChaCha20:    ChaCha20(hp_key, counter = sample[0..4] little-endian, nonce = sample[4..16]) over 5 zero bytes,
//                with GnuTLS's CHACHA20_32 whose 16-byte IV is exactly that counter and nonce.
//
// The cipher handle is made once per key (install() allocates); a mask is a set-IV and one encryption, with no
// allocation, lock or system call (GnuTLS 3.7.9, counted in tests/quic/protection_alloc_test.cpp). The key does
// not change with key updates (section 6).
//
// Errors: -EINVAL for a caller's mistake (no key, a packet number offset of 0), with a message; -EMSGSIZE when
// the packet is too short for the sample (section 5.4.2: the packet is discarded), without one. Not thread-safe.
#pragma once

#include <cstddef>
#include <cstdint>

#include "engine/quic/cipher_suite.hpp"

namespace cf::quic {

// What removing header protection reveals.
struct ProtectedFields {
    std::uint8_t first_byte = 0;            // unmasked: reserved bits, key phase (short header), pn length
    std::size_t packet_number_length = 0;   // 1..4
    std::uint64_t truncated_packet_number = 0;   // the pn field as sent; the packet layer expands it
};

class HeaderProtectionKey {
public:
    HeaderProtectionKey() noexcept = default;
    ~HeaderProtectionKey();
    HeaderProtectionKey(const HeaderProtectionKey&) = delete;
    HeaderProtectionKey& operator=(const HeaderProtectionKey&) = delete;

    // `hp_key` is hp_key_bytes(suite) bytes. Allocates. 0, or -ENOMEM / -EIO with a message.
    int install(CipherSuite suite, const std::uint8_t* hp_key) noexcept;
    void clear() noexcept;
    bool installed() const noexcept { return handle_ != nullptr; }

    // The mask for a 16-byte sample. 0 or -EINVAL (no key).
    int mask(const std::uint8_t* sample, std::uint8_t (&mask)[kHpMaskBytes]) noexcept;

    // Sender: masks the first byte and the packet number of packet[0, packet_len), whose packet number field
    // starts at `pn_offset` and is (packet[0] & 3) + 1 bytes long, the payload already sealed. 0, -EMSGSIZE or
    // -EINVAL.
    int apply(std::uint8_t* packet, std::size_t packet_len, std::size_t pn_offset) noexcept;
    // Receiver: unmasks them and reports what they say. packet_len is this packet's end (a long header's Length
    // field bounds it within a datagram). On failure nothing is changed. 0, -EMSGSIZE or -EINVAL.
    int remove(std::uint8_t* packet, std::size_t packet_len, std::size_t pn_offset, ProtectedFields* fields) noexcept;

private:
    void* handle_ = nullptr;   // gnutls_cipher_hd_t, kept out of this header
    CipherSuite suite_ = CipherSuite::aes_128_gcm_sha256;
};

}  // namespace cf::quic
