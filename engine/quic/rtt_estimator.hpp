// Round-trip time estimation for QUIC (RFC 9002 section 5).
//
// Times are std::uint64_t nanoseconds on the caller's monotonic clock: the RFC's arithmetic (sums, 7/8 and 3/4
// weights, comparisons) is plain integer arithmetic there, and nothing here reads a clock. Weighted averages
// truncate toward zero.
//
// A sample is latest_rtt = (time the ACK arrived) - (time the largest newly acknowledged packet was sent), taken
// only when the loss detector says the ACK qualifies (section 5.1). On the first sample, min_rtt = smoothed_rtt =
// latest_rtt and rttvar = latest_rtt / 2. Later samples:
//   min_rtt      = min(min_rtt, latest_rtt)                  never adjusted by the ACK delay (section 5.2)
//   ack_delay    = min(ack_delay, max_ack_delay)             only once the handshake is confirmed (section 5.3)
//   adjusted_rtt = latest_rtt - ack_delay                    if that does not go below min_rtt, else latest_rtt
//   rttvar       = 3/4 rttvar + 1/4 |smoothed_rtt - adjusted_rtt|
//   smoothed_rtt = 7/8 smoothed_rtt + 1/8 adjusted_rtt
// Before any sample smoothed_rtt is the initial RTT (333 ms unless configured) and rttvar half of it.
// Not thread-safe (one connection owns one); no allocation.
#pragma once

#include <cstdint>

namespace cf::quic {

inline constexpr std::uint64_t kNanosPerMilli = 1'000'000;
// Timer granularity (section 6.1.2): no timer is armed closer than this.
inline constexpr std::uint64_t kGranularityNs = 1 * kNanosPerMilli;
// RTT assumed before the first sample (section 6.2.2).
inline constexpr std::uint64_t kInitialRttNs = 333 * kNanosPerMilli;

class RttEstimator {
public:
    explicit RttEstimator(std::uint64_t initial_rtt_ns = kInitialRttNs) noexcept { reset(initial_rtt_ns); }

    // Back to "no sample yet" with this initial RTT (a resumed connection may start from a remembered one).
    void reset(std::uint64_t initial_rtt_ns) noexcept;

    // One RTT sample. `ack_delay_ns` is the peer's reported delay, already scaled by its ack_delay_exponent; the
    // caller passes 0 for the Initial space, where ACKs are not delayed. `max_ack_delay_ns` is the peer's
    // transport parameter; it caps ack_delay only once `handshake_confirmed`.
    void on_sample(std::uint64_t latest_rtt_ns, std::uint64_t ack_delay_ns, bool handshake_confirmed,
                   std::uint64_t max_ack_delay_ns) noexcept;

    // Section 5.2: after persistent congestion, min_rtt restarts from the latest sample.
    void reset_min_rtt_to_latest() noexcept {
        if (has_sample_) min_rtt_ = latest_rtt_;
    }

    bool has_sample() const noexcept { return has_sample_; }
    std::uint64_t latest_rtt() const noexcept { return latest_rtt_; }
    std::uint64_t min_rtt() const noexcept { return min_rtt_; }
    std::uint64_t smoothed_rtt() const noexcept { return smoothed_rtt_; }
    std::uint64_t rttvar() const noexcept { return rttvar_; }

    // smoothed_rtt + max(4 * rttvar, kGranularity): the PTO before max_ack_delay and backoff (section 6.2.1),
    // also the base of the persistent congestion duration (section 7.6.1).
    std::uint64_t pto_base() const noexcept {
        const std::uint64_t variance = 4 * rttvar_;
        return smoothed_rtt_ + (variance > kGranularityNs ? variance : kGranularityNs);
    }
    // The time threshold of section 6.1.2: 9/8 * max(smoothed_rtt, latest_rtt), at least kGranularity.
    std::uint64_t loss_delay() const noexcept {
        const std::uint64_t base = smoothed_rtt_ > latest_rtt_ ? smoothed_rtt_ : latest_rtt_;
        const std::uint64_t delay = base + base / 8;
        return delay > kGranularityNs ? delay : kGranularityNs;
    }

private:
    std::uint64_t latest_rtt_ = 0;
    std::uint64_t min_rtt_ = 0;
    std::uint64_t smoothed_rtt_ = 0;
    std::uint64_t rttvar_ = 0;
    bool has_sample_ = false;
};

}  // namespace cf::quic
