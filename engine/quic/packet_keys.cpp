#include "engine/quic/packet_keys.hpp"

#include <cerrno>
#include <cstring>

#include "engine/quic/hkdf_label.hpp"
#include "platform/os/last_error.hpp"

namespace cf::quic {

namespace {

int check_secret(CipherSuite suite, std::size_t secret_len) noexcept {
    if (secret_len == secret_bytes(suite)) return 0;
    return platform::fail(EINVAL, "QUIC packet keys: a secret of %zu bytes, the suite needs %zu", secret_len,
                          secret_bytes(suite));
}

int expand(CipherSuite suite, const std::uint8_t* secret, std::size_t secret_len, const char* label,
           std::uint8_t* out, std::size_t out_len) noexcept {
    return hkdf_expand_label(hkdf_hash(suite), secret, secret_len, label, std::strlen(label), nullptr, 0, out,
                             out_len);
}

}  // namespace

PacketKeys::~PacketKeys() {
    wipe_secret(key, sizeof(key));
    wipe_secret(iv, sizeof(iv));
    wipe_secret(hp, sizeof(hp));
}

int derive_payload_keys(CipherSuite suite, const std::uint8_t* secret, std::size_t secret_len,
                        PacketKeys& keys) noexcept {
    if (const int status = check_secret(suite, secret_len); status < 0) return status;
    keys.suite = suite;
    if (const int status = expand(suite, secret, secret_len, "quic key", keys.key, aead_key_bytes(suite));
        status < 0) {
        return status;
    }
    return expand(suite, secret, secret_len, "quic iv", keys.iv, kAeadIvBytes);
}

int derive_packet_keys(CipherSuite suite, const std::uint8_t* secret, std::size_t secret_len,
                       PacketKeys& keys) noexcept {
    if (const int status = derive_payload_keys(suite, secret, secret_len, keys); status < 0) return status;
    return expand(suite, secret, secret_len, "quic hp", keys.hp, hp_key_bytes(suite));
}

int derive_next_secret(CipherSuite suite, const std::uint8_t* secret, std::size_t secret_len,
                       std::uint8_t* next) noexcept {
    if (const int status = check_secret(suite, secret_len); status < 0) return status;
    // Expand into a copy first: `next` may alias `secret`, and HKDF-Expand reads its key while writing.
    std::uint8_t out[kMaxSecretBytes];
    const int status = expand(suite, secret, secret_len, "quic ku", out, secret_len);
    if (status == 0) std::memcpy(next, out, secret_len);
    wipe_secret(out, sizeof(out));
    return status;
}

}  // namespace cf::quic
