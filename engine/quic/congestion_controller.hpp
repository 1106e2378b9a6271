// The congestion controller of one QUIC connection: shared window accounting (congestion_window.hpp) plus one
// algorithm from a small closed set, chosen when the connection is created. The algorithm lives in a std::variant
// and is dispatched once per call (once per ACK, per loss batch), never per packet and never through a virtual
// call; a new algorithm (BBR) joins the variant and the enum.
//
//   on_packet_sent(bytes)                 an in-flight packet left (ACK-only packets are not in flight)
//   on_packets_acked(acked, now, srtt)    the in-flight packets one ACK newly acknowledged: out of flight, then
//                                         the algorithm grows the window (app-limited rule in congestion_window.hpp)
//   remove_from_flight(bytes)             packets declared lost or discarded with their keys
//   on_congestion_event(time_sent, now)   loss or ECN-CE; time_sent is the newest affected packet's send time
//   on_persistent_congestion()            section 7.6: window to the minimum
//   congestion_window(), bytes_in_flight(), can_send(bytes)
//
// can_send(bytes): bytes_in_flight + bytes <= cwnd (section 7: a packet may not take bytes_in_flight above the
// window; PTO probes are exempt, the loss detector grants those). Not thread-safe; no allocation.
#pragma once

#include <cerrno>
#include <cstdint>
#include <span>
#include <variant>

#include "engine/quic/congestion_window.hpp"
#include "engine/quic/cubic.hpp"
#include "engine/quic/new_reno.hpp"
#include "engine/quic/sent_packets.hpp"

namespace cf::quic {

enum class CongestionAlgorithm : std::uint8_t { new_reno, cubic };

struct CongestionConfig {
    CongestionAlgorithm algorithm = CongestionAlgorithm::cubic;
    std::uint32_t max_datagram_size = kDefaultMaxDatagramSize;   // 1200..65527 sensible; 0 is taken as 1200
    bool cubic_fast_convergence = true;
};

class CongestionController {
public:
    explicit CongestionController(const CongestionConfig& config = {}) noexcept
        : window_(config.max_datagram_size == 0 ? kDefaultMaxDatagramSize : config.max_datagram_size),
          algorithm_(make(config)) {}

    void on_packet_sent(std::uint64_t bytes) noexcept { window_.add_to_flight(bytes); }

    void on_packets_acked(std::span<const SentPacket> acked, std::uint64_t now_ns,
                          std::uint64_t smoothed_rtt_ns) noexcept {
        const bool used = window_.window_used();
        for (const SentPacket& packet : acked) {
            if (packet.in_flight) window_.remove_from_flight(packet.size);
        }
        std::visit([&](auto& algorithm) { algorithm.on_packets_acked(window_, acked, used, now_ns, smoothed_rtt_ns); },
                   algorithm_);
        window_.peak_in_flight = window_.bytes_in_flight;
    }
    void remove_from_flight(std::uint64_t bytes) noexcept { window_.remove_from_flight(bytes); }
    void on_congestion_event(std::uint64_t time_sent_ns, std::uint64_t now_ns) noexcept {
        std::visit([&](auto& algorithm) { algorithm.on_congestion_event(window_, time_sent_ns, now_ns); }, algorithm_);
    }
    void on_persistent_congestion() noexcept {
        std::visit([&](auto& algorithm) { algorithm.on_persistent_congestion(window_); }, algorithm_);
    }

    // Path MTU discovery changed the datagram size (section 7.2): the minimum window follows it, and a smaller size
    // (a handshake that needed it) restarts from the new initial window. -EINVAL outside 1200..65527 (a QUIC
    // path carries at least 1200 bytes; a UDP payload is at most 65527).
    int set_max_datagram_size(std::uint64_t bytes) noexcept {
        if (bytes < kDefaultMaxDatagramSize || bytes > 65527) return -EINVAL;
        const bool smaller = bytes < window_.max_datagram_size;
        window_.max_datagram_size = bytes;
        if (smaller) window_.congestion_window = initial_congestion_window(bytes);
        if (window_.congestion_window < window_.minimum_window()) window_.congestion_window = window_.minimum_window();
        return 0;
    }

    std::uint64_t congestion_window() const noexcept { return window_.congestion_window; }
    std::uint64_t bytes_in_flight() const noexcept { return window_.bytes_in_flight; }
    std::uint64_t ssthresh() const noexcept { return window_.ssthresh; }
    std::uint64_t max_datagram_size() const noexcept { return window_.max_datagram_size; }
    bool can_send(std::uint64_t bytes) const noexcept {
        return window_.bytes_in_flight + bytes <= window_.congestion_window;
    }
    bool in_congestion_recovery(std::uint64_t time_sent_ns) const noexcept {
        return window_.in_congestion_recovery(time_sent_ns);
    }
    CongestionAlgorithm algorithm() const noexcept {
        return std::holds_alternative<NewReno>(algorithm_) ? CongestionAlgorithm::new_reno : CongestionAlgorithm::cubic;
    }
    // The algorithm's own state, for tests and statistics (nullptr if another algorithm runs).
    const Cubic* cubic() const noexcept { return std::get_if<Cubic>(&algorithm_); }
    const CongestionWindow& window() const noexcept { return window_; }

private:
    static std::variant<NewReno, Cubic> make(const CongestionConfig& config) noexcept {
        if (config.algorithm == CongestionAlgorithm::new_reno) return NewReno{};
        return Cubic{config.cubic_fast_convergence};
    }

    CongestionWindow window_;
    std::variant<NewReno, Cubic> algorithm_;
};

}  // namespace cf::quic
