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

int expand(HkdfLabelExpander& expander, const char* label, std::uint8_t* out, std::size_t out_len) noexcept {
    return expander.expand(label, std::strlen(label), nullptr, 0, out, out_len);
}

// key and iv from a keyed expander (and hp when `with_hp`): one HMAC keying for all of them.
int derive_keys(CipherSuite suite, HkdfLabelExpander& expander, PacketKeys& keys, bool with_hp) noexcept {
    keys.suite = suite;
    int status = expand(expander, "quic key", keys.key, aead_key_bytes(suite));
    if (status == 0) status = expand(expander, "quic iv", keys.iv, kAeadIvBytes);
    if (status == 0 && with_hp) status = expand(expander, "quic hp", keys.hp, hp_key_bytes(suite));
    return status;
}

int keyed(CipherSuite suite, const std::uint8_t* secret, std::size_t secret_len,
          HkdfLabelExpander& expander) noexcept {
    if (const int status = check_secret(suite, secret_len); status < 0) return status;
    return expander.init(hkdf_hash(suite), secret, secret_len);
}

}  // namespace

PacketKeys::~PacketKeys() {
    wipe_secret(key, sizeof(key));
    wipe_secret(iv, sizeof(iv));
    wipe_secret(hp, sizeof(hp));
}

int derive_payload_keys(CipherSuite suite, const std::uint8_t* secret, std::size_t secret_len,
                        PacketKeys& keys) noexcept {
    HkdfLabelExpander expander;
    if (const int status = keyed(suite, secret, secret_len, expander); status < 0) return status;
    return derive_keys(suite, expander, keys, false);
}

int derive_packet_keys(CipherSuite suite, const std::uint8_t* secret, std::size_t secret_len,
                       PacketKeys& keys) noexcept {
    HkdfLabelExpander expander;
    if (const int status = keyed(suite, secret, secret_len, expander); status < 0) return status;
    return derive_keys(suite, expander, keys, true);
}

int derive_next_secret(CipherSuite suite, const std::uint8_t* secret, std::size_t secret_len,
                       std::uint8_t* next) noexcept {
    HkdfLabelExpander expander;
    if (const int status = keyed(suite, secret, secret_len, expander); status < 0) return status;
    // Expand into a copy first: `next` may alias `secret` (the expander keeps its own keyed copy, but the caller's
    // buffer is left whole on a failure).
    std::uint8_t out[kMaxSecretBytes];
    const int status = expand(expander, "quic ku", out, secret_len);
    if (status == 0) std::memcpy(next, out, secret_len);
    wipe_secret(out, sizeof(out));
    return status;
}

}  // namespace cf::quic
