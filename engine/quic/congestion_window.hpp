// What every congestion controller here shares (RFC 9002 section 7 and appendix B): the window, bytes in flight,
// the slow start threshold, the recovery period and the rule for application-limited senders. The algorithms
// (new_reno.hpp, cubic.hpp) only decide how the window moves; congestion_controller.hpp ties them together.
//
// Recovery period: it starts when a congestion event arrives at `now` for a packet sent after the previous
// recovery started; a packet sent at or before the recovery start time neither grows the window when acknowledged
// nor starts a new reduction when lost (section 7.3.2). Persistent congestion ends it.
//
// Application-limited rule (section 7.8): the window grows on an ACK only if the sender was using it. We keep the
// largest bytes_in_flight seen since the previous ACK (including the packets this ACK covers) and call the window
// used when that peak reached cwnd - 3 * max_datagram_size in congestion avoidance, or cwnd / 2 in slow start (where
// one round trip of growth doubles the window, so a sender using half of it still limits it). Anything less means
// the application, flow control or pacing, not the network, set the sending rate, and the ACK does not grow the
// window. No timer or clock is read for it.
//
// Byte counts are std::uint64_t; times are std::uint64_t nanoseconds. Not thread-safe; no allocation.
#pragma once

#include <cstdint>

namespace cf::quic {

inline constexpr std::uint32_t kDefaultMaxDatagramSize = 1200;

// Section 7.2: min(10 * max_datagram_size, max(14720, 2 * max_datagram_size)).
constexpr std::uint64_t initial_congestion_window(std::uint64_t max_datagram_size) noexcept {
    const std::uint64_t floor = 2 * max_datagram_size > 14720 ? 2 * max_datagram_size : 14720;
    return 10 * max_datagram_size < floor ? 10 * max_datagram_size : floor;
}
constexpr std::uint64_t minimum_congestion_window(std::uint64_t max_datagram_size) noexcept {
    return 2 * max_datagram_size;
}

struct CongestionWindow {
    explicit CongestionWindow(std::uint64_t datagram_size) noexcept
        : max_datagram_size(datagram_size), congestion_window(initial_congestion_window(datagram_size)) {}

    std::uint64_t max_datagram_size;
    std::uint64_t congestion_window;
    std::uint64_t ssthresh = ~std::uint64_t{0};
    std::uint64_t bytes_in_flight = 0;
    std::uint64_t peak_in_flight = 0;      // largest bytes_in_flight since the last ACK
    std::uint64_t recovery_start_ns = 0;
    bool has_recovery_start = false;

    std::uint64_t minimum_window() const noexcept { return minimum_congestion_window(max_datagram_size); }
    bool in_slow_start() const noexcept { return congestion_window < ssthresh; }
    bool in_congestion_recovery(std::uint64_t time_sent_ns) const noexcept {
        return has_recovery_start && time_sent_ns <= recovery_start_ns;
    }
    bool window_used() const noexcept {
        if (in_slow_start()) return 2 * peak_in_flight >= congestion_window;
        return peak_in_flight + 3 * max_datagram_size >= congestion_window;
    }
    void add_to_flight(std::uint64_t bytes) noexcept {
        bytes_in_flight += bytes;
        if (bytes_in_flight > peak_in_flight) peak_in_flight = bytes_in_flight;
    }
    // Never below zero: a caller's double removal is absorbed rather than wrapping.
    void remove_from_flight(std::uint64_t bytes) noexcept {
        bytes_in_flight = bytes > bytes_in_flight ? 0 : bytes_in_flight - bytes;
    }
    void start_recovery(std::uint64_t now_ns) noexcept {
        recovery_start_ns = now_ns;
        has_recovery_start = true;
    }
};

}  // namespace cf::quic
