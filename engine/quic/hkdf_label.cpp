#include "engine/quic/hkdf_label.hpp"

#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>

#include <cerrno>
#include <cstring>

#include "engine/quic/varint.hpp"
#include "platform/os/last_error.hpp"

namespace cf::quic {

namespace {

gnutls_mac_algorithm_t mac_of(HkdfHash hash) noexcept {
    return hash == HkdfHash::sha384 ? GNUTLS_MAC_SHA384 : GNUTLS_MAC_SHA256;
}

// GnuTLS's datum has a non-const pointer but only reads these; an empty input still gets a valid address.
gnutls_datum_t datum_of(const std::uint8_t* bytes, std::size_t size) noexcept {
    static const std::uint8_t kNothing = 0;
    return gnutls_datum_t{const_cast<std::uint8_t*>(size == 0 ? &kNothing : bytes), static_cast<unsigned>(size)};
}

constexpr std::size_t kMaxHashBytes = 48;   // SHA-384
constexpr char kTls13Prefix[] = "tls13 ";
constexpr std::size_t kTls13PrefixBytes = sizeof(kTls13Prefix) - 1;

}  // namespace

int hkdf_extract(HkdfHash hash, const std::uint8_t* salt, std::size_t salt_len, const std::uint8_t* ikm,
                 std::size_t ikm_len, std::uint8_t* prk) noexcept {
    const gnutls_datum_t key = datum_of(ikm, ikm_len);
    const gnutls_datum_t salt_datum = datum_of(salt, salt_len);
    const int status = gnutls_hkdf_extract(mac_of(hash), &key, &salt_datum, prk);
    if (status < 0) return platform::fail(EIO, "HKDF-Extract: %s", gnutls_strerror(status));
    return 0;
}

HkdfLabelExpander::~HkdfLabelExpander() {
    if (handle_ != nullptr) gnutls_hmac_deinit(static_cast<gnutls_hmac_hd_t>(handle_), nullptr);
}

int HkdfLabelExpander::init(HkdfHash hash, const std::uint8_t* secret, std::size_t secret_len) noexcept {
    if (handle_ != nullptr) {
        gnutls_hmac_deinit(static_cast<gnutls_hmac_hd_t>(handle_), nullptr);
        handle_ = nullptr;
    }
    if (secret_len < hash_bytes(hash)) {
        return platform::fail(EINVAL, "HKDF-Expand-Label: a secret of %zu bytes is shorter than its hash",
                              secret_len);
    }
    gnutls_hmac_hd_t handle = nullptr;
    if (const int status = gnutls_hmac_init(&handle, mac_of(hash), secret, secret_len); status < 0) {
        return platform::fail(EIO, "HKDF-Expand-Label: %s", gnutls_strerror(status));
    }
    handle_ = handle;
    hash_ = hash;
    return 0;
}

// RFC 5869 section 2.3: T(i) = HMAC(PRK, T(i-1) | info | i), T(0) empty; the output is T(1) | T(2) | ... cut to
// out_len. gnutls_hmac_output() leaves the handle keyed again for the next block or label.
int HkdfLabelExpander::expand(const char* label, std::size_t label_len, const std::uint8_t* context,
                              std::size_t context_len, std::uint8_t* out, std::size_t out_len) noexcept {
    const std::size_t block = hash_bytes(hash_);
    if (handle_ == nullptr) return platform::fail(EINVAL, "HKDF-Expand-Label: no secret");
    if (label_len > kMaxHkdfLabelBytes || context_len > kMaxHkdfContextBytes) {
        return platform::fail(EINVAL, "HKDF-Expand-Label: label of %zu or context of %zu bytes is too long",
                              label_len, context_len);
    }
    if (out_len == 0 || out_len > 255 * block) {
        return platform::fail(EINVAL, "HKDF-Expand-Label: an output of %zu bytes is out of range", out_len);
    }
    std::uint8_t info[2 + 1 + 255 + 1 + 255];
    ByteWriter writer(info, sizeof(info));
    writer.uint(out_len, 2);
    writer.u8(static_cast<std::uint8_t>(kTls13PrefixBytes + label_len));
    writer.bytes(kTls13Prefix, kTls13PrefixBytes);
    writer.bytes(label, label_len);
    writer.u8(static_cast<std::uint8_t>(context_len));
    writer.bytes(context, context_len);   // cannot fail: the lengths were checked above and `info` holds the largest
    auto* handle = static_cast<gnutls_hmac_hd_t>(handle_);
    std::uint8_t previous[kMaxHashBytes];
    std::size_t written = 0;
    for (std::uint8_t counter = 1; written < out_len; ++counter) {
        int status = counter > 1 ? gnutls_hmac(handle, previous, block) : 0;
        if (status == 0) status = gnutls_hmac(handle, info, writer.size());
        if (status == 0) status = gnutls_hmac(handle, &counter, 1);
        gnutls_hmac_output(handle, previous);   // also back to the keyed state, on a failure too
        if (status < 0) {
            wipe_secret(previous, sizeof(previous));
            return platform::fail(EIO, "HKDF-Expand-Label: %s", gnutls_strerror(status));
        }
        const std::size_t take = out_len - written < block ? out_len - written : block;
        std::memcpy(out + written, previous, take);
        written += take;
    }
    wipe_secret(previous, sizeof(previous));
    return 0;
}

int hkdf_expand_label(HkdfHash hash, const std::uint8_t* secret, std::size_t secret_len, const char* label,
                      std::size_t label_len, const std::uint8_t* context, std::size_t context_len, std::uint8_t* out,
                      std::size_t out_len) noexcept {
    HkdfLabelExpander expander;
    if (const int status = expander.init(hash, secret, secret_len); status != 0) return status;
    return expander.expand(label, label_len, context, context_len, out, out_len);
}

void wipe_secret(void* bytes, std::size_t size) noexcept { gnutls_memset(bytes, 0, size); }

}  // namespace cf::quic
