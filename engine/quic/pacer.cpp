#include "engine/quic/pacer.hpp"

namespace cf::quic {

__extension__ using Wide = unsigned __int128;

void Pacer::refill(std::uint64_t now_ns) noexcept {
    if (!started_) {
        started_ = true;
        last_ns_ = now_ns;
        return;
    }
    if (now_ns <= last_ns_) return;
    const std::uint64_t elapsed = now_ns - last_ns_;
    last_ns_ = now_ns;
    if (!paced() || tokens_ >= burst_) {
        remainder_ = 0;
        return;
    }
    const Wide divisor = Wide{kRateDenominator} * srtt_ns_;
    const Wide earned = Wide{elapsed} * kRateNumerator * cwnd_ + remainder_;
    const Wide whole = earned / divisor;
    if (whole >= burst_ - tokens_) {
        tokens_ = burst_;
        remainder_ = 0;   // a full bucket keeps no fraction: it cannot hold more
        return;
    }
    tokens_ += static_cast<std::uint64_t>(whole);
    remainder_ = static_cast<std::uint64_t>(earned % divisor);
}

void Pacer::set_rate(std::uint64_t now_ns, std::uint64_t congestion_window, std::uint64_t smoothed_rtt_ns) noexcept {
    refill(now_ns);
    if (congestion_window == cwnd_ && smoothed_rtt_ns == srtt_ns_) return;
    cwnd_ = congestion_window;
    srtt_ns_ = smoothed_rtt_ns;
    // The fraction was in units of the old rate's divisor; dropping it only ever releases less.
    remainder_ = 0;
}

std::uint64_t Pacer::next_send_time(std::uint64_t now_ns, std::uint64_t bytes) noexcept {
    refill(now_ns);
    const std::uint64_t at = now_ns > last_ns_ ? now_ns : last_ns_;
    if (!paced()) return at;
    const std::uint64_t needed = bytes < burst_ ? bytes : burst_;
    if (tokens_ >= needed) return at;
    // Smallest wait with wait * 5 * cwnd + remainder >= (needed - tokens) * 4 * srtt.
    const Wide target = Wide{needed - tokens_} * kRateDenominator * srtt_ns_ - remainder_;
    const Wide per_ns = Wide{kRateNumerator} * cwnd_;
    const Wide wait = (target + per_ns - 1) / per_ns;
    const Wide deadline = Wide{at} + wait;
    return deadline > ~std::uint64_t{0} ? ~std::uint64_t{0} : static_cast<std::uint64_t>(deadline);
}

void Pacer::on_packet_sent(std::uint64_t now_ns, std::uint64_t bytes) noexcept {
    refill(now_ns);
    tokens_ = bytes > tokens_ ? 0 : tokens_ - bytes;
}

}  // namespace cf::quic
