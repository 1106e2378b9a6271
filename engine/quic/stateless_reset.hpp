// Stateless resets (RFC 9000 section 10.3).
//
// A stateless reset is a datagram that looks like a short header packet: first byte 0b01xxxxxx, then unpredictable
// bytes, and the 16-byte stateless reset token of the connection ID the peer used, last. At least 38 unpredictable
// bits (so 5 bytes before the token): 21 bytes or more. It must be smaller than the packet that triggered it, so
// that two endpoints cannot reset each other in a loop (section 10.3.3).
//
// Detection (section 10.3.1) looks only at the datagram's last 16 bytes, compared with every token the peer gave
// for connection IDs in use, in constant time. It must run when the first packet of a datagram cannot be
// associated with a connection or cannot be decrypted; the connection keeps the token list (not retired CIDs').
//
// Tokens (section 10.3.2): StatelessResetKey derives the token of each of our connection IDs as the first 16 bytes
// of HMAC-SHA256(key, CID) with a 32-byte static key, so an endpoint that lost a connection's state can still
// compute the token the peer holds for the CID a datagram names, and answer with a reset, keeping nothing per
// connection. The key must survive a restart for that (an endpoint that draws a new key answers with tokens the
// peer never saw); it must stay secret: whoever knows it can reset any of our connections.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <span>

#include "engine/quic/connection_id.hpp"

namespace cf::quic {

inline constexpr std::size_t kMinStatelessResetSize = 5 + StatelessResetToken::kSize;
// Resets this size or more do not stand out from short header packets by size alone (section 10.3.3 says
// under 41 bytes may); larger triggers get this size.
inline constexpr std::size_t kStatelessResetSizeCap = 43;

// The size of a reset answering a packet of `received_size` bytes: one byte smaller, at most
// kStatelessResetSizeCap; 0 when that would be under kMinStatelessResetSize (do not answer).
constexpr std::size_t stateless_reset_size(std::size_t received_size) noexcept {
    if (received_size <= kMinStatelessResetSize) return 0;
    return received_size - 1 < kStatelessResetSizeCap ? received_size - 1 : kStatelessResetSizeCap;
}

// Writes a `size`-byte reset into `out` (capacity >= size): `unpredictable` gives its first size - 16 bytes (from a
// CSPRNG; the first byte's top two bits are replaced by 0b01). 0, or -EINVAL (size < 21, or fewer than size - 16
// unpredictable bytes, or capacity < size).
int write_stateless_reset(std::uint8_t* out, std::size_t capacity, std::size_t size,
                          std::span<const std::uint8_t> unpredictable, const StatelessResetToken& token) noexcept;

// The index in `tokens` of the token the datagram ends with, or -1 (also for datagrams under 21 bytes). Every token
// is compared in full whatever matches, so the time depends only on the number of tokens.
int find_stateless_reset_token(const std::uint8_t* datagram, std::size_t size,
                               std::span<const StatelessResetToken> tokens) noexcept;

// The static key our tokens come from.
class StatelessResetKey {
public:
    static constexpr std::size_t kKeyBytes = 32;
    using Key = std::array<std::uint8_t, kKeyBytes>;

    // A fresh random key from GnuTLS's generator: 0, or -EIO with a message.
    int open() noexcept;
    // A key the caller kept (from a file, a secret store), so tokens survive a restart.
    void open(const Key& key) noexcept { key_ = key; }

    // The token of `cid`: 0, or -EIO (the MAC failed; `out` is then all zero).
    int token(const ConnectionId& cid, StatelessResetToken& out) const noexcept;

private:
    Key key_{};
};

}  // namespace cf::quic
