// Packet numbers on the wire (RFC 9000 sections 12.3 and 17.1, appendices A.2 and A.3).
//
// A packet number is 0..2^62-1, but a packet header carries only its 1 to 4 low bytes. The sender picks enough
// bytes that the receiver, knowing the largest number it has received, can rebuild the full number: the encoded
// window must be at least twice the span from the largest acknowledged number to the one being sent
// (packet_number_length), and the receiver takes the candidate nearest to the next expected number
// (decode_packet_number). Both are constexpr and branch-light; no allocation.
#pragma once

#include <cstddef>
#include <cstdint>

namespace cf::quic {

inline constexpr std::uint64_t kMaxPacketNumber = (std::uint64_t{1} << 62) - 1;
// "Nothing yet": no packet acknowledged (sender side) or received (receiver side) in this number space.
inline constexpr std::uint64_t kNoPacketNumber = ~std::uint64_t{0};

// Bytes (1..4) to encode `packet_number` when `largest_acked` is the largest number the peer has acknowledged in
// this space (kNoPacketNumber if none). Appendix A.2: the window 2^(8 * bytes) must be at least twice the number of
// packets in flight, counted from largest_acked (or from -1 when nothing is acknowledged). Spans needing more than
// 4 bytes return 4: the sender must not let 2^31 packets be unacknowledged.
constexpr std::size_t packet_number_length(std::uint64_t packet_number, std::uint64_t largest_acked) noexcept {
    // With nothing acknowledged, largest_acked + 1 wraps to 0: the span is packet_number + 1.
    const std::uint64_t in_flight = packet_number - largest_acked;
    // The smallest window 2^(8 * bytes) with 2 * in_flight <= window (the RFC's log2(in_flight) + 1 bits).
    if (in_flight <= (std::uint64_t{1} << 7)) return 1;
    if (in_flight <= (std::uint64_t{1} << 15)) return 2;
    if (in_flight <= (std::uint64_t{1} << 23)) return 3;
    return 4;
}

// The low `length` bytes of `packet_number`: what the header carries.
constexpr std::uint32_t truncate_packet_number(std::uint64_t packet_number, std::size_t length) noexcept {
    return static_cast<std::uint32_t>(packet_number & ((std::uint64_t{1} << (8 * length)) - 1));
}

// Appendix A.3: the full packet number whose low `length` (1..4) bytes are `truncated`, nearest to the number
// after `largest_received` (the largest number successfully processed in this space, kNoPacketNumber if none).
// Ties go up. Candidates below 0 or above kMaxPacketNumber are not taken while another one is in the window, so
// near 0 and near 2^62 the result can be further than half a window from the expected number. A peer that
// already sent number 2^62 - 1 cannot send more: a result above kMaxPacketNumber is then possible and means the
// packet is not valid.
constexpr std::uint64_t decode_packet_number(std::uint64_t largest_received, std::uint64_t truncated,
                                             std::size_t length) noexcept {
    const std::uint64_t expected = largest_received + 1;   // kNoPacketNumber + 1 == 0
    const std::uint64_t window = std::uint64_t{1} << (8 * length);
    const std::uint64_t half_window = window / 2;
    const std::uint64_t mask = window - 1;
    const std::uint64_t candidate = (expected & ~mask) | (truncated & mask);
    // candidate <= expected - half_window, written so that it cannot wrap below 0.
    if (candidate + half_window <= expected && candidate < (std::uint64_t{1} << 62) - window) {
        return candidate + window;
    }
    if (candidate > expected + half_window && candidate >= window) return candidate - window;
    return candidate;
}

}  // namespace cf::quic
