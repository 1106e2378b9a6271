#include "engine/quic/stateless_reset.hpp"

#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>

#include <cerrno>
#include <cstring>

#include "platform/os/last_error.hpp"

namespace cf::quic {

int write_stateless_reset(std::uint8_t* out, std::size_t capacity, std::size_t size,
                          std::span<const std::uint8_t> unpredictable, const StatelessResetToken& token) noexcept {
    if (size < kMinStatelessResetSize || capacity < size) return -EINVAL;
    const std::size_t random_bytes = size - StatelessResetToken::kSize;
    if (unpredictable.size() < random_bytes) return -EINVAL;
    std::memcpy(out, unpredictable.data(), random_bytes);
    // Short header form, fixed bit set: like every 1-RTT packet.
    out[0] = static_cast<std::uint8_t>((out[0] & 0x3f) | 0x40);
    std::memcpy(out + random_bytes, token.bytes.data(), StatelessResetToken::kSize);
    return 0;
}

int find_stateless_reset_token(const std::uint8_t* datagram, std::size_t size,
                               std::span<const StatelessResetToken> tokens) noexcept {
    if (size < kMinStatelessResetSize) return -1;
    const std::uint8_t* tail = datagram + size - StatelessResetToken::kSize;
    int found = -1;
    for (std::size_t i = 0; i < tokens.size(); ++i) {
        // No early exit: a match does not shorten the loop.
        const bool match = constant_time_equal(tokens[i], tail);
        found = match ? static_cast<int>(i) : found;
    }
    return found;
}

int StatelessResetKey::open() noexcept {
    if (gnutls_rnd(GNUTLS_RND_KEY, key_.data(), key_.size()) != 0) {
        return platform::fail(EIO, "QUIC: no random bytes for the stateless reset key");
    }
    return 0;
}

int StatelessResetKey::token(const ConnectionId& cid, StatelessResetToken& out) const noexcept {
    std::uint8_t digest[32];
    if (gnutls_hmac_fast(GNUTLS_MAC_SHA256, key_.data(), key_.size(), cid.data(), cid.size(), digest) < 0) {
        out = StatelessResetToken{};
        return -EIO;
    }
    std::memcpy(out.bytes.data(), digest, StatelessResetToken::kSize);
    return 0;
}

}  // namespace cf::quic
