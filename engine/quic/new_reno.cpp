#include "engine/quic/new_reno.hpp"

namespace cf::quic {

void NewReno::on_packets_acked(CongestionWindow& window, std::span<const SentPacket> acked, bool window_used,
                               std::uint64_t, std::uint64_t) noexcept {
    if (!window_used) return;
    for (const SentPacket& packet : acked) {
        if (!packet.in_flight || window.in_congestion_recovery(packet.time_sent_ns)) continue;
        if (window.in_slow_start()) {
            window.congestion_window += packet.size;
            continue;
        }
        bytes_acked_ += packet.size;
        if (bytes_acked_ >= window.congestion_window) {
            bytes_acked_ -= window.congestion_window;
            window.congestion_window += window.max_datagram_size;
        }
    }
}

void NewReno::on_congestion_event(CongestionWindow& window, std::uint64_t time_sent_ns, std::uint64_t now_ns) noexcept {
    if (window.in_congestion_recovery(time_sent_ns)) return;
    window.start_recovery(now_ns);
    window.ssthresh = window.congestion_window / 2;
    if (window.ssthresh < window.minimum_window()) window.ssthresh = window.minimum_window();
    window.congestion_window = window.ssthresh;
    bytes_acked_ = 0;
}

void NewReno::on_persistent_congestion(CongestionWindow& window) noexcept {
    window.congestion_window = window.minimum_window();
    window.has_recovery_start = false;
    bytes_acked_ = 0;
}

}  // namespace cf::quic
