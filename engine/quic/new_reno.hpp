// NewReno congestion control as RFC 9002 section 7 and appendix B describe it.
//
// Slow start: cwnd grows by the acknowledged bytes while cwnd < ssthresh. Congestion avoidance: cwnd grows by one
// max_datagram_size per cwnd of acknowledged bytes (a byte counter carries the remainder from ACK to ACK, which is
// the appendix's max_datagram_size * acked / cwnd without losing the truncated fractions). A congestion event (loss
// or ECN-CE) for a packet sent after the current recovery period started halves the window (kLossReductionFactor
// 1/2, never below the minimum window) and starts a new period; persistent congestion drops cwnd to the minimum
// window. Only in-flight packets sent outside the recovery period, on an ACK where the window was used (see
// congestion_window.hpp), grow the window.
#pragma once

#include <cstdint>
#include <span>

#include "engine/quic/congestion_window.hpp"
#include "engine/quic/sent_packets.hpp"

namespace cf::quic {

class NewReno {
public:
    // `acked` are the packets this ACK newly acknowledged; the caller has already taken them out of flight.
    void on_packets_acked(CongestionWindow& window, std::span<const SentPacket> acked, bool window_used,
                          std::uint64_t now_ns, std::uint64_t smoothed_rtt_ns) noexcept;
    void on_congestion_event(CongestionWindow& window, std::uint64_t time_sent_ns, std::uint64_t now_ns) noexcept;
    void on_persistent_congestion(CongestionWindow& window) noexcept;

private:
    std::uint64_t bytes_acked_ = 0;   // congestion avoidance: acknowledged bytes not yet turned into window
};

}  // namespace cf::quic
