// Connection IDs and stateless reset tokens (RFC 9000 sections 5.1 and 10.3).
//
// ConnectionId holds up to 20 bytes (the version 1 limit, section 17.2) in fixed storage, so it can be copied into
// connection tables and packets without allocation. Only assign() fills it from untrusted bytes, and it refuses
// anything longer than 20. Comparisons: == compares length and bytes; <=> orders by bytes then length
// (lexicographic, like std::lexicographical_compare), so ConnectionId works as a sorted-container key. There is no
// hash here on purpose: connection IDs are chosen by the peer, so a table keyed by them needs a keyed hash that the
// table's owner picks.
//
// StatelessResetToken is the 16-byte token of section 10.3. Tokens received from the peer are compared with
// constant_time_equal() (section 10.3.1: the comparison must not leak the token through timing).
#pragma once

#include <algorithm>
#include <array>
#include <compare>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <span>

namespace cf::quic {

inline constexpr std::size_t kMaxConnectionIdBytes = 20;   // QUIC version 1 (section 17.2)

class ConnectionId {
public:
    static constexpr std::size_t kMaxLength = kMaxConnectionIdBytes;

    constexpr ConnectionId() noexcept = default;

    // Copies `length` bytes; false (and the ID left unchanged) if length > kMaxLength.
    bool assign(const std::uint8_t* data, std::size_t length) noexcept {
        if (length > kMaxLength) return false;
        length_ = static_cast<std::uint8_t>(length);
        if (length != 0) std::memcpy(bytes_.data(), data, length);
        std::fill(bytes_.begin() + static_cast<std::ptrdiff_t>(length), bytes_.end(), std::uint8_t{0});
        return true;
    }
    bool assign(std::span<const std::uint8_t> bytes) noexcept { return assign(bytes.data(), bytes.size()); }

    // Convenience for callers holding bytes they produced or checked (tests, our own IDs): an ID of the first
    // min(size, 20) bytes.
    static ConnectionId from(std::span<const std::uint8_t> bytes) noexcept {
        ConnectionId id;
        id.assign(bytes.data(), std::min(bytes.size(), kMaxLength));
        return id;
    }

    constexpr const std::uint8_t* data() const noexcept { return bytes_.data(); }
    constexpr std::size_t size() const noexcept { return length_; }
    constexpr bool empty() const noexcept { return length_ == 0; }
    constexpr std::span<const std::uint8_t> bytes() const noexcept { return {bytes_.data(), length_}; }

    // The unused tail of bytes_ is kept zero by assign(), so whole-array comparison is exact.
    friend bool operator==(const ConnectionId& a, const ConnectionId& b) noexcept {
        return a.length_ == b.length_ && a.bytes_ == b.bytes_;
    }
    friend std::strong_ordering operator<=>(const ConnectionId& a, const ConnectionId& b) noexcept {
        const std::size_t common = std::min(a.length_, b.length_);
        const int by_bytes = common == 0 ? 0 : std::memcmp(a.bytes_.data(), b.bytes_.data(), common);
        if (by_bytes != 0) return by_bytes < 0 ? std::strong_ordering::less : std::strong_ordering::greater;
        return a.length_ <=> b.length_;
    }

private:
    std::array<std::uint8_t, kMaxLength> bytes_{};
    std::uint8_t length_ = 0;
};

// True if `bytes` equals `id` (length and content): for comparing a header's view with a stored ID.
inline bool equals(const ConnectionId& id, std::span<const std::uint8_t> bytes) noexcept {
    return bytes.size() == id.size() && (bytes.empty() || std::memcmp(bytes.data(), id.data(), bytes.size()) == 0);
}

struct StatelessResetToken {
    static constexpr std::size_t kSize = 16;
    std::array<std::uint8_t, kSize> bytes{};

    friend bool operator==(const StatelessResetToken&, const StatelessResetToken&) = default;
};

// Compares 16 bytes without an early exit, so the time taken does not depend on where they differ.
inline bool constant_time_equal(const StatelessResetToken& token, const std::uint8_t* bytes) noexcept {
    unsigned difference = 0;
    for (std::size_t i = 0; i < StatelessResetToken::kSize; ++i) difference |= token.bytes[i] ^ bytes[i];
    return difference == 0;
}

}  // namespace cf::quic
