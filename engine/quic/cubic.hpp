// CUBIC congestion control (RFC 9438) on QUIC's window accounting (congestion_window.hpp).
//
// Windows are bytes; the RFC's formulas are in segments, so a segment here is max_datagram_size (MSS) bytes and
// W_cubic(t) = (C * (t - K)^3) * MSS + W_max, t in seconds since the current congestion avoidance epoch began,
// C = 0.4, K = cbrt((W_max - cwnd_epoch) / (C * MSS)) (= cbrt(W_max * (1 - beta) / C) in segments when cwnd_epoch
// = beta * W_max). Evaluated in double: one cube per ACK.
//
// Congestion event (section 4.6, 4.7), for a packet sent after the current recovery period started:
// cwnd_prior = cwnd; with fast convergence (on by default) and cwnd < W_max, W_max = cwnd * (1 + beta) / 2, else
// W_max = cwnd; ssthresh = cwnd = max(cwnd * beta, minimum window) with beta = 0.7. The epoch restarts on the
// first ACK in congestion avoidance after it (cwnd_epoch = cwnd, W_est = cwnd). If cwnd_epoch is already above
// W_max (slow start grew past it), W_max = cwnd_epoch and K = 0.
//
// Congestion avoidance per ACK (section 4.2 to 4.4), for the acknowledged in-flight bytes sent outside recovery:
//   W_est += alpha * MSS * acked / cwnd, alpha = 3 * (1 - beta) / (1 + beta) until W_est >= cwnd_prior, then 1
//   if W_cubic(t) < W_est: cwnd = W_est                                  (the Reno-friendly region)
//   else: target = W_cubic(t + smoothed_rtt) clamped to [cwnd, 1.5 * cwnd]; cwnd += (target - cwnd) * acked / cwnd
// Slow start is Reno's (cwnd += acked). An ACK that finds the window unused (congestion_window.hpp) grows nothing
// and shifts the epoch start by the time since the previous ACK, so idle time does not count toward t.
// Persistent congestion: cwnd = minimum window and the epoch ends (W_max is kept).
// Left out: HyStart++ (RFC 9406; slow start runs until the first congestion event) and undoing spurious
// congestion events (section 4.9).
#pragma once

#include <cstdint>
#include <span>

#include "engine/quic/congestion_window.hpp"
#include "engine/quic/sent_packets.hpp"

namespace cf::quic {

class Cubic {
public:
    static constexpr double kC = 0.4;
    static constexpr double kBeta = 0.7;
    static constexpr double kAlpha = 3.0 * (1.0 - kBeta) / (1.0 + kBeta);

    explicit Cubic(bool fast_convergence = true) noexcept : fast_convergence_(fast_convergence) {}

    void on_packets_acked(CongestionWindow& window, std::span<const SentPacket> acked, bool window_used,
                          std::uint64_t now_ns, std::uint64_t smoothed_rtt_ns) noexcept;
    void on_congestion_event(CongestionWindow& window, std::uint64_t time_sent_ns, std::uint64_t now_ns) noexcept;
    void on_persistent_congestion(CongestionWindow& window) noexcept;

    // W_cubic(elapsed) in bytes for the current epoch (what the window tracks), and the epoch's parameters.
    double w_cubic(double elapsed_seconds, std::uint64_t max_datagram_size) const noexcept;
    double w_max() const noexcept { return w_max_; }
    double k_seconds() const noexcept { return k_; }
    double w_est() const noexcept { return w_est_; }
    bool in_epoch() const noexcept { return in_epoch_; }
    std::uint64_t epoch_start_ns() const noexcept { return epoch_start_ns_; }

private:
    void start_epoch(const CongestionWindow& window, std::uint64_t now_ns) noexcept;

    bool fast_convergence_;
    bool in_epoch_ = false;
    std::uint64_t epoch_start_ns_ = 0;
    std::uint64_t last_ack_ns_ = 0;
    bool has_last_ack_ = false;
    double w_max_ = 0;        // bytes
    double k_ = 0;            // seconds
    double w_est_ = 0;        // bytes
    double cwnd_prior_ = 0;   // bytes
    double cwnd_ = 0;         // the window with its fraction (the shared window holds whole bytes)
};

}  // namespace cf::quic
