#include "engine/quic/cubic.hpp"

#include <cmath>

namespace cf::quic {

double Cubic::w_cubic(double elapsed_seconds, std::uint64_t max_datagram_size) const noexcept {
    const double offset = elapsed_seconds - k_;
    return kC * offset * offset * offset * static_cast<double>(max_datagram_size) + w_max_;
}

void Cubic::start_epoch(const CongestionWindow& window, std::uint64_t now_ns) noexcept {
    in_epoch_ = true;
    epoch_start_ns_ = now_ns;
    cwnd_ = static_cast<double>(window.congestion_window);
    w_est_ = cwnd_;
    if (w_max_ <= cwnd_) {
        w_max_ = cwnd_;
        k_ = 0;
    } else {
        k_ = std::cbrt((w_max_ - cwnd_) / (kC * static_cast<double>(window.max_datagram_size)));
    }
}

void Cubic::on_packets_acked(CongestionWindow& window, std::span<const SentPacket> acked, bool window_used,
                             std::uint64_t now_ns, std::uint64_t smoothed_rtt_ns) noexcept {
    const std::uint64_t since_last_ack = has_last_ack_ && now_ns > last_ack_ns_ ? now_ns - last_ack_ns_ : 0;
    has_last_ack_ = true;
    last_ack_ns_ = now_ns;
    if (!window_used) {
        if (in_epoch_) epoch_start_ns_ += since_last_ack;
        return;
    }
    std::uint64_t acked_bytes = 0;
    for (const SentPacket& packet : acked) {
        if (packet.in_flight && !window.in_congestion_recovery(packet.time_sent_ns)) acked_bytes += packet.size;
    }
    if (acked_bytes == 0) return;
    if (window.in_slow_start()) {
        window.congestion_window += acked_bytes;
        return;
    }
    if (!in_epoch_) start_epoch(window, now_ns);
    // The shared window may have been set from outside (a new datagram size); follow it.
    if (static_cast<std::uint64_t>(cwnd_) != window.congestion_window) {
        cwnd_ = static_cast<double>(window.congestion_window);
    }

    const double mss = static_cast<double>(window.max_datagram_size);
    const double acked_d = static_cast<double>(acked_bytes);
    const double alpha = w_est_ >= cwnd_prior_ ? 1.0 : kAlpha;
    w_est_ += alpha * mss * acked_d / cwnd_;

    const double t = now_ns > epoch_start_ns_ ? static_cast<double>(now_ns - epoch_start_ns_) * 1e-9 : 0.0;
    const double rtt = static_cast<double>(smoothed_rtt_ns) * 1e-9;
    if (w_cubic(t, window.max_datagram_size) < w_est_) {
        if (w_est_ > cwnd_) cwnd_ = w_est_;
    } else {
        double target = w_cubic(t + rtt, window.max_datagram_size);
        if (target < cwnd_) target = cwnd_;
        if (target > 1.5 * cwnd_) target = 1.5 * cwnd_;
        cwnd_ += (target - cwnd_) * acked_d / cwnd_;
    }
    window.congestion_window = static_cast<std::uint64_t>(cwnd_);
}

void Cubic::on_congestion_event(CongestionWindow& window, std::uint64_t time_sent_ns, std::uint64_t now_ns) noexcept {
    if (window.in_congestion_recovery(time_sent_ns)) return;
    window.start_recovery(now_ns);
    const double cwnd = static_cast<double>(window.congestion_window);
    cwnd_prior_ = cwnd;
    w_max_ = fast_convergence_ && cwnd < w_max_ ? cwnd * (1.0 + kBeta) / 2.0 : cwnd;
    std::uint64_t reduced = static_cast<std::uint64_t>(cwnd * kBeta);
    if (reduced < window.minimum_window()) reduced = window.minimum_window();
    window.ssthresh = reduced;
    window.congestion_window = reduced;
    in_epoch_ = false;
}

void Cubic::on_persistent_congestion(CongestionWindow& window) noexcept {
    window.congestion_window = window.minimum_window();
    window.has_recovery_start = false;
    in_epoch_ = false;
}

}  // namespace cf::quic
