// HKDF-Extract and TLS 1.3's HKDF-Expand-Label (RFC 8446 section 7.1), the two steps every QUIC key comes from
// (RFC 9001 section 5.1). GnuTLS offers HKDF-Extract and HKDF-Expand but not the TLS label, so the HkdfLabel
// structure is built here:
//
//   struct { uint16 length; opaque label<7..255> = "tls13 " + Label; opaque context<0..255>; } HkdfLabel;
//
// and passed to HKDF-Expand (RFC 5869 section 2.3) as its info. QUIC always uses an empty context; the parameter is
// there so the same function checks against RFC 8446's own examples.
//
// HKDF-Expand is computed here on GnuTLS's HMAC, keyed once per secret (HkdfLabelExpander) for all the labels taken
// from it (key, iv, hp, ku): GnuTLS's own gnutls_hkdf_expand keys the HMAC and wipes its whole MAC context on every
// call, ~22k instructions a label against ~7k here (callgrind; the derivations were 12% of a whole handshake).
// Cold path (key installation): one allocation per secret (GnuTLS's MAC handle), not meant per packet. Secrets are
// wiped with wipe_secret(), which the compiler may not drop as a dead store.
#pragma once

#include <cstddef>
#include <cstdint>

#include "engine/quic/cipher_suite.hpp"

namespace cf::quic {

inline constexpr std::size_t kMaxHkdfLabelBytes = 255 - 6;   // the label after the "tls13 " prefix
inline constexpr std::size_t kMaxHkdfContextBytes = 255;

// PRK = HKDF-Extract(salt, ikm) into `prk` (hash_bytes(hash) bytes). Either input may be empty (nullptr, 0).
// 0, or -EIO (GnuTLS refused) with a message.
int hkdf_extract(HkdfHash hash, const std::uint8_t* salt, std::size_t salt_len, const std::uint8_t* ikm,
                 std::size_t ikm_len, std::uint8_t* prk) noexcept;

// HKDF-Expand-Label for several labels of one secret, keying the HMAC once: init(), then expand() per label; the
// destructor releases the keyed state (gnutls_hmac_deinit). Not copyable; one thread.
class HkdfLabelExpander {
public:
    HkdfLabelExpander() noexcept = default;
    ~HkdfLabelExpander();
    HkdfLabelExpander(const HkdfLabelExpander&) = delete;
    HkdfLabelExpander& operator=(const HkdfLabelExpander&) = delete;

    // Keys the HMAC with `secret` (at least hash_bytes(hash) bytes). 0, or -EINVAL / -EIO with a message.
    int init(HkdfHash hash, const std::uint8_t* secret, std::size_t secret_len) noexcept;
    // HKDF-Expand-Label(secret, label, context, out_len) into `out`, the limits of hkdf_expand_label() below.
    // 0, or -EINVAL (not initialised, a length out of range) with a message.
    int expand(const char* label, std::size_t label_len, const std::uint8_t* context, std::size_t context_len,
               std::uint8_t* out, std::size_t out_len) noexcept;

private:
    void* handle_ = nullptr;   // gnutls_hmac_hd_t, keyed with the secret
    HkdfHash hash_ = HkdfHash::sha256;
};

// HKDF-Expand-Label(secret, label, context, out_len) into `out`. `label` is without the "tls13 " prefix (up to
// kMaxHkdfLabelBytes bytes), `context` up to kMaxHkdfContextBytes, `secret_len` at least hash_bytes(hash) (RFC 5869
// asks the PRK to be at least a hash long), `out_len` 1..255 * hash_bytes(hash). 0, or -EINVAL (a length out of
// range) / -EIO (GnuTLS refused), with a message.
int hkdf_expand_label(HkdfHash hash, const std::uint8_t* secret, std::size_t secret_len, const char* label,
                      std::size_t label_len, const std::uint8_t* context, std::size_t context_len, std::uint8_t* out,
                      std::size_t out_len) noexcept;

// Overwrites `size` bytes with zeros in a way the optimiser keeps (a secret about to go out of scope).
void wipe_secret(void* bytes, std::size_t size) noexcept;

}  // namespace cf::quic
