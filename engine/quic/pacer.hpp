// A token-bucket pacer for QUIC (RFC 9002 section 7.7): it spreads a congestion window's worth of packets over a
// round trip instead of sending them in one burst.
//
// Rate = N * cwnd / smoothed_rtt bytes per nanosecond with N = 5/4 (so pacing does not hold the window back), kept
// exactly as the fraction (5 * cwnd) / (4 * srtt): tokens accrue in whole bytes and the fractional remainder is
// carried, so over any interval the bytes released never exceed rate * elapsed + burst, with no rounding drift.
// The bucket holds at most `burst` bytes (the allowance after idle time; RFC 9002 suggests the initial window)
// and starts full. A packet may go when the bucket holds its size (or is full, for a packet larger than the
// burst); sending it takes its size from the bucket (down to zero: a packet sent without waiting, a probe or an
// ACK, leaves no debt). next_send_time() says when the next packet of a given size may go, so the connection can
// sleep until then and send a batch. A rate of srtt = 0 or cwnd = 0 means "not paced" (every packet may go now).
//
// Times are std::uint64_t nanoseconds passed in (nothing reads a clock); they must not go backwards (an earlier
// time is taken as the last one). Not thread-safe; no allocation.
#pragma once

#include <cstdint>

namespace cf::quic {

class Pacer {
public:
    static constexpr std::uint64_t kRateNumerator = 5;     // N = 1.25
    static constexpr std::uint64_t kRateDenominator = 4;

    explicit Pacer(std::uint64_t burst_bytes) noexcept : burst_(burst_bytes), tokens_(burst_bytes) {}

    // New window or RTT: tokens earned so far at the old rate are kept; from now on the new rate applies.
    void set_rate(std::uint64_t now_ns, std::uint64_t congestion_window, std::uint64_t smoothed_rtt_ns) noexcept;
    void set_burst(std::uint64_t burst_bytes) noexcept {
        burst_ = burst_bytes;
        if (tokens_ > burst_) tokens_ = burst_;
    }

    // Bytes that may be sent at `now`.
    std::uint64_t available(std::uint64_t now_ns) noexcept {
        refill(now_ns);
        return paced() ? tokens_ : ~std::uint64_t{0};
    }
    // The earliest time >= now at which a packet of `bytes` may be sent.
    std::uint64_t next_send_time(std::uint64_t now_ns, std::uint64_t bytes) noexcept;
    void on_packet_sent(std::uint64_t now_ns, std::uint64_t bytes) noexcept;

    std::uint64_t burst() const noexcept { return burst_; }

private:
    bool paced() const noexcept { return cwnd_ != 0 && srtt_ns_ != 0; }
    void refill(std::uint64_t now_ns) noexcept;

    std::uint64_t burst_;
    std::uint64_t tokens_;
    std::uint64_t cwnd_ = 0;
    std::uint64_t srtt_ns_ = 0;
    std::uint64_t last_ns_ = 0;
    bool started_ = false;
    // Tokens not yet whole: this many / (kRateDenominator * srtt) bytes.
    std::uint64_t remainder_ = 0;
};

}  // namespace cf::quic
