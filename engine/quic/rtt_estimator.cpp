#include "engine/quic/rtt_estimator.hpp"

namespace cf::quic {

void RttEstimator::reset(std::uint64_t initial_rtt_ns) noexcept {
    latest_rtt_ = 0;
    min_rtt_ = 0;
    smoothed_rtt_ = initial_rtt_ns;
    rttvar_ = initial_rtt_ns / 2;
    has_sample_ = false;
}

void RttEstimator::on_sample(std::uint64_t latest_rtt_ns, std::uint64_t ack_delay_ns, bool handshake_confirmed,
                             std::uint64_t max_ack_delay_ns) noexcept {
    latest_rtt_ = latest_rtt_ns;
    if (!has_sample_) {
        has_sample_ = true;
        min_rtt_ = latest_rtt_ns;
        smoothed_rtt_ = latest_rtt_ns;
        rttvar_ = latest_rtt_ns / 2;
        return;
    }
    if (latest_rtt_ns < min_rtt_) min_rtt_ = latest_rtt_ns;
    if (handshake_confirmed && ack_delay_ns > max_ack_delay_ns) ack_delay_ns = max_ack_delay_ns;
    // Subtracting the delay must not take the sample below min_rtt (written so it cannot wrap).
    std::uint64_t adjusted = latest_rtt_ns;
    if (latest_rtt_ns >= min_rtt_ && latest_rtt_ns - min_rtt_ >= ack_delay_ns) adjusted = latest_rtt_ns - ack_delay_ns;
    const std::uint64_t deviation = smoothed_rtt_ > adjusted ? smoothed_rtt_ - adjusted : adjusted - smoothed_rtt_;
    rttvar_ = (3 * rttvar_ + deviation) / 4;
    smoothed_rtt_ = (7 * smoothed_rtt_ + adjusted) / 8;
}

}  // namespace cf::quic
