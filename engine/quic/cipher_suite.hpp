// The TLS 1.3 cipher suites QUIC packet protection supports (RFC 9001 section 5) and the sizes each one fixes: the
// AEAD key, the header protection key, the hash behind HKDF (and so the length of every secret). AES-128-CCM has
// no entry: GnuTLS offers CCM only through its one-shot AEAD calls and no QUIC peer we target negotiates it, so a
// TLS session that picks it is refused by cipher_suite_from_tls().
#pragma once

#include <cstddef>
#include <cstdint>

namespace cf::quic {

enum class CipherSuite : std::uint8_t {
    aes_128_gcm_sha256,        // TLS_AES_128_GCM_SHA256 (0x1301); also what Initial packets use
    aes_256_gcm_sha384,        // TLS_AES_256_GCM_SHA384 (0x1302)
    chacha20_poly1305_sha256,  // TLS_CHACHA20_POLY1305_SHA256 (0x1303)
};

inline constexpr std::size_t kAeadTagBytes = 16;     // every suite above: the bytes seal() appends
inline constexpr std::size_t kAeadIvBytes = 12;      // the per-key IV the nonce is made from
inline constexpr std::size_t kMaxAeadKeyBytes = 32;
inline constexpr std::size_t kMaxHpKeyBytes = 32;
inline constexpr std::size_t kMaxSecretBytes = 48;   // SHA-384's output
inline constexpr std::size_t kHpSampleBytes = 16;    // header protection samples 16 bytes of ciphertext...
inline constexpr std::size_t kHpMaskBytes = 5;       // ...and uses 5 bytes of the mask

// The hash HKDF runs on; secrets are exactly its output size long.
enum class HkdfHash : std::uint8_t { sha256, sha384 };

constexpr std::size_t hash_bytes(HkdfHash hash) noexcept { return hash == HkdfHash::sha384 ? 48 : 32; }

constexpr HkdfHash hkdf_hash(CipherSuite suite) noexcept {
    return suite == CipherSuite::aes_256_gcm_sha384 ? HkdfHash::sha384 : HkdfHash::sha256;
}
constexpr std::size_t secret_bytes(CipherSuite suite) noexcept { return hash_bytes(hkdf_hash(suite)); }
constexpr std::size_t aead_key_bytes(CipherSuite suite) noexcept {
    return suite == CipherSuite::aes_128_gcm_sha256 ? 16 : 32;
}
// The header protection key has the AEAD key's length (AES-128/AES-256/ChaCha20).
constexpr std::size_t hp_key_bytes(CipherSuite suite) noexcept { return aead_key_bytes(suite); }

// RFC 9001 section 6.6: packets one key may protect (confidentiality) and forged packets a receiver may see fail to
// open with one key (integrity) before it must stop using it. The connection counts; these are the limits.
constexpr std::uint64_t confidentiality_limit(CipherSuite suite) noexcept {
    return suite == CipherSuite::chacha20_poly1305_sha256 ? (std::uint64_t{1} << 62) : (std::uint64_t{1} << 23);
}
constexpr std::uint64_t integrity_limit(CipherSuite suite) noexcept {
    return suite == CipherSuite::chacha20_poly1305_sha256 ? (std::uint64_t{1} << 36) : (std::uint64_t{1} << 52);
}

// The suite behind a TLS 1.3 cipher suite number (what the TLS glue reads from the session); false for any other.
constexpr bool cipher_suite_from_tls(std::uint16_t tls_id, CipherSuite& suite) noexcept {
    switch (tls_id) {
        case 0x1301: suite = CipherSuite::aes_128_gcm_sha256; return true;
        case 0x1302: suite = CipherSuite::aes_256_gcm_sha384; return true;
        case 0x1303: suite = CipherSuite::chacha20_poly1305_sha256; return true;
        default: return false;
    }
}

}  // namespace cf::quic
