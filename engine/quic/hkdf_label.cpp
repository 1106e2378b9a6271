#include "engine/quic/hkdf_label.hpp"

#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>

#include <cerrno>

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

int hkdf_expand_label(HkdfHash hash, const std::uint8_t* secret, std::size_t secret_len, const char* label,
                      std::size_t label_len, const std::uint8_t* context, std::size_t context_len, std::uint8_t* out,
                      std::size_t out_len) noexcept {
    if (label_len > kMaxHkdfLabelBytes || context_len > kMaxHkdfContextBytes) {
        return platform::fail(EINVAL, "HKDF-Expand-Label: label of %zu or context of %zu bytes is too long",
                              label_len, context_len);
    }
    if (secret_len < hash_bytes(hash) || out_len == 0 || out_len > 255 * hash_bytes(hash)) {
        return platform::fail(EINVAL, "HKDF-Expand-Label: secret of %zu bytes or output of %zu bytes is out of range",
                              secret_len, out_len);
    }
    std::uint8_t info[2 + 1 + 255 + 1 + 255];
    ByteWriter writer(info, sizeof(info));
    writer.uint(out_len, 2);
    writer.u8(static_cast<std::uint8_t>(kTls13PrefixBytes + label_len));
    writer.bytes(kTls13Prefix, kTls13PrefixBytes);
    writer.bytes(label, label_len);
    writer.u8(static_cast<std::uint8_t>(context_len));
    writer.bytes(context, context_len);
    // Cannot fail: the lengths were checked above and `info` holds the largest label.
    const gnutls_datum_t key = datum_of(secret, secret_len);
    const gnutls_datum_t info_datum = datum_of(info, writer.size());
    const int status = gnutls_hkdf_expand(mac_of(hash), &key, &info_datum, out, out_len);
    if (status < 0) return platform::fail(EIO, "HKDF-Expand-Label: %s", gnutls_strerror(status));
    return 0;
}

void wipe_secret(void* bytes, std::size_t size) noexcept { gnutls_memset(bytes, 0, size); }

}  // namespace cf::quic
