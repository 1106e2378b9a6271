// Loss detection and the PTO timer of one QUIC connection (RFC 9002 section 6 and appendix A), with the RTT
// estimator, the sent-packet records of the three packet number spaces, ECN validation and the congestion
// controller it drives.
//
// Time is std::uint64_t nanoseconds on the caller's monotonic clock, passed into every call; nothing here reads a
// clock, touches a socket or allocates after create(). Not thread-safe: one connection owns one.
//
// The connection's side of the contract:
//   - Before sending a packet in a space, can_send(space, bytes): the space has a free record and the congestion
//     window (or a PTO probe credit) allows it; then on_packet_sent(). ACK-only packets: in_flight = false. When a
//     space's records are full (-ENOBUFS), nothing ack-eliciting may be sent in it until an ACK, a loss or a
//     timeout frees a record; an ACK-only packet may still go out unrecorded (its number is then a gap here).
//   - For each ACK frame: on_ack_received(); then acked() and lost() list the packets it resolved (copies of their
//     records, with the connection's `frames` handle) until the next call into the detector. Lost packets' frames
//     are the connection's to requeue; a later ACK of a lost packet only counts as a spurious loss (its handle is
//     not reported again).
//   - Arm a timer at timer_deadline() (kNoDeadline: none) and call on_timeout() when it passes; re-read the
//     deadline after every call. A probe result asks for one or two ack-eliciting packets in its space; those may
//     exceed the congestion window (probe credits, see can_send).
//   - Report the handshake's progress: on_handshake_keys(), on_handshake_confirmed(), on_peer_address_validated()
//     (a client: when a Handshake packet is acknowledged or the handshake is confirmed; a server never needs to),
//     set_amplification_limited() (a server blocked by the 3x limit; when a datagram unblocks it, the timer is
//     re-armed and may already be due: check timer_deadline() against now), discard_space() when keys are dropped.
//
// Rules as implemented:
//   - An ACK newly acknowledges the outstanding records in its ranges. An RTT sample is taken only if the
//     largest acknowledged packet is among them and at least one of them is ack-eliciting (section 5.1); its
//     ACK delay is ignored in the Initial space and capped at max_ack_delay once the handshake is confirmed.
//   - Losses (section 6.1): an unacknowledged packet at or below the largest acknowledged is lost when it is
//     kPacketThreshold (3) numbers below it, or was sent at least loss_delay = 9/8 * max(smoothed, latest RTT)
//     (at least 1 ms) ago; the earliest not-yet-lost one arms the loss timer at its send time + loss_delay.
//   - PTO (section 6.2): (smoothed_rtt + max(4 * rttvar, 1 ms)) * 2^pto_count after the last ack-eliciting packet
//     of a space, plus max_ack_delay * 2^pto_count in the application space, which has no PTO at all before the
//     handshake is confirmed; the earliest space wins. pto_count resets on an ACK unless a client's address is not
//     yet validated, and when a space is discarded. A client with nothing in flight and an unvalidated address
//     still arms a PTO from now (the anti-deadlock probe, Handshake if it has the keys, else Initial); a server
//     at its amplification limit arms no timer at all.
//   - Persistent congestion (section 7.6): among the packets one call declares lost, two ack-eliciting ones sent
//     after the first RTT sample, with no acknowledged packet of this space between them, sent more than
//     (smoothed_rtt + max(4 * rttvar, 1 ms) + max_ack_delay) * kPersistentCongestionThreshold (3) apart. Only the
//     acknowledged space is examined (the RFC's allowance for implementations without cross-space send times).
//     Then the window drops to the minimum and min_rtt restarts from the latest sample.
//   - ECN (ecn_validator.hpp) is checked on ACKs that raise the largest acknowledged; a CE rise is a congestion
//     event for the largest acknowledged packet's send time.
//   - Errors: ACK ranges not sorted largest first with gaps (FRAME_ENCODING_ERROR), an ACK of a number above the
//     largest sent in that space, or in a space with nothing sent or already discarded (PROTOCOL_VIOLATION).
//     Nothing is changed when an error is returned.
// Cost per ACK frame: a binary search per range plus the records inside the ranges and the loss scan (from the
// oldest outstanding record to the first one not lost); no allocation, one congestion controller call.
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <span>

#include "engine/quic/ack_range.hpp"
#include "engine/quic/congestion_controller.hpp"
#include "engine/quic/ecn_validator.hpp"
#include "engine/quic/packet_number_space.hpp"
#include "engine/quic/rtt_estimator.hpp"
#include "engine/quic/sent_packets.hpp"
#include "engine/quic/uninitialized_array.hpp"
#include "engine/quic/transport_error.hpp"

namespace cf::quic {

inline constexpr std::uint64_t kPacketThreshold = 3;
inline constexpr std::uint64_t kPersistentCongestionThreshold = 3;
inline constexpr std::uint64_t kNoDeadline = ~std::uint64_t{0};
// RFC 9000 section 18.2: max_ack_delay's default.
inline constexpr std::uint64_t kDefaultMaxAckDelayNs = 25 * kNanosPerMilli;

struct AckFrameInfo {
    std::span<const AckRange> ranges;   // largest first, each below the previous with at least one number between
    std::uint64_t ack_delay_ns = 0;     // already scaled by the peer's ack_delay_exponent
    const EcnCounts* ecn = nullptr;     // present for an ACK frame of type 0x03
};

struct LossDetectionConfig {
    bool is_server = false;
    std::uint32_t initial_capacity = 64;        // records per space (SentPackets limits)
    std::uint32_t handshake_capacity = 64;
    std::uint32_t application_capacity = 1024;
    std::uint64_t initial_rtt_ns = kInitialRttNs;
    std::uint64_t max_ack_delay_ns = kDefaultMaxAckDelayNs;   // the peer's; set_max_ack_delay() once known
    CongestionConfig congestion{};
};

enum class TimeoutKind : std::uint8_t { none, loss, probe };

struct TimeoutResult {
    TimeoutKind kind = TimeoutKind::none;
    PacketNumberSpace space = PacketNumberSpace::initial;
    // A client's probe with nothing in flight: a padded Initial, or a Handshake packet if it has those keys.
    bool anti_deadlock = false;
};

struct RecoveryStats {
    std::uint64_t packets_lost = 0;
    std::uint64_t spurious_losses = 0;          // declared lost, acknowledged later
    std::uint64_t congestion_events = 0;        // loss or ECN-CE events that reduced the window
    std::uint64_t ecn_ce_events = 0;
    std::uint64_t persistent_congestion = 0;
    std::uint64_t pto_expirations = 0;
};

class LossDetection {
public:
    static constexpr std::uint32_t kProbeCredits = 2;

    // Allocates every record and scratch array. -EINVAL (a capacity out of range), -ENOMEM.
    static int create(const LossDetectionConfig& config, std::unique_ptr<LossDetection>& out) noexcept;

    // Sending.
    bool can_send(PacketNumberSpace space, std::uint64_t bytes, bool in_flight = true) const noexcept;
    // `packet.state` must be outstanding. -ENOBUFS: the space's records are full (nothing recorded, do not send);
    // -EINVAL: number or time going backwards, or the space was discarded. Spends a probe credit if ack-eliciting.
    int on_packet_sent(PacketNumberSpace space, const SentPacket& packet) noexcept;

    // Receiving.
    TransportError on_ack_received(PacketNumberSpace space, const AckFrameInfo& ack, std::uint64_t now_ns) noexcept;
    // What the last on_ack_received / on_timeout / discard_space resolved, in packet number order.
    std::span<const SentPacket> acked() const noexcept { return {acked_.get(), acked_count_}; }
    std::span<const SentPacket> lost() const noexcept { return {lost_.get(), lost_count_}; }
    // Records dropped by the last discard_space() (neither acknowledged nor lost: nothing to requeue).
    std::span<const SentPacket> discarded() const noexcept { return {lost_.get(), discarded_count_}; }

    // Timer.
    std::uint64_t timer_deadline() const noexcept { return timer_deadline_; }
    TimeoutResult on_timeout(std::uint64_t now_ns) noexcept;

    // Handshake progress.
    void on_handshake_keys() noexcept { has_handshake_keys_ = true; }
    void on_handshake_confirmed(std::uint64_t now_ns) noexcept;
    void on_peer_address_validated(std::uint64_t now_ns) noexcept;
    void set_amplification_limited(bool limited, std::uint64_t now_ns) noexcept;
    // Keys of the Initial or Handshake space dropped: its packets leave flight without a congestion event, listed
    // by discarded(). The application space is never discarded (ignored).
    void discard_space(PacketNumberSpace space, std::uint64_t now_ns) noexcept;
    void set_max_ack_delay(std::uint64_t max_ack_delay_ns) noexcept { max_ack_delay_ns_ = max_ack_delay_ns; }
    // Path MTU discovery's new datagram size (CongestionController::set_max_datagram_size).
    int set_max_datagram_size(std::uint64_t bytes) noexcept { return congestion_.set_max_datagram_size(bytes); }

    // State.
    const RttEstimator& rtt() const noexcept { return rtt_; }
    const CongestionController& congestion() const noexcept { return congestion_; }
    const EcnValidator& ecn() const noexcept { return ecn_; }
    EcnValidator& ecn() noexcept { return ecn_; }
    const SentPackets& sent(PacketNumberSpace space) const noexcept { return spaces_[space_index(space)].sent; }
    const RecoveryStats& stats() const noexcept { return stats_; }
    std::uint32_t pto_count() const noexcept { return pto_count_; }
    std::uint32_t probe_credits() const noexcept { return probe_credits_; }
    std::uint64_t bytes_in_flight() const noexcept { return congestion_.bytes_in_flight(); }
    bool handshake_confirmed() const noexcept { return handshake_confirmed_; }
    bool space_discarded(PacketNumberSpace space) const noexcept { return spaces_[space_index(space)].discarded; }
    // The largest acknowledged number in a space (false if none yet).
    bool largest_acked(PacketNumberSpace space, std::uint64_t& out) const noexcept;
    std::uint64_t loss_time(PacketNumberSpace space) const noexcept { return spaces_[space_index(space)].loss_time; }
    // The PTO deadline and its space as the timer would compute it (kNoDeadline if none).
    std::uint64_t pto_deadline(PacketNumberSpace& space, std::uint64_t now_ns) const noexcept;

private:
    struct Space {
        SentPackets sent;
        std::uint64_t largest_acked = 0;
        bool has_largest_acked = false;
        std::uint64_t time_of_last_ack_eliciting = 0;
        std::uint64_t loss_time = kNoDeadline;
        bool discarded = false;
    };

    explicit LossDetection(const LossDetectionConfig& config) noexcept;

    void detect_lost_packets(PacketNumberSpace space, std::uint64_t now_ns) noexcept;
    void congestion_event(std::uint64_t time_sent_ns, std::uint64_t now_ns) noexcept;
    void set_timer(std::uint64_t now_ns) noexcept;
    bool peer_completed_address_validation() const noexcept { return is_server_ || peer_address_validated_; }
    bool any_ack_eliciting_in_flight() const noexcept;
    std::uint64_t earliest_loss_time(PacketNumberSpace& space) const noexcept;
    void reset_outputs() noexcept { acked_count_ = lost_count_ = discarded_count_ = 0; }

    std::array<Space, kPacketNumberSpaceCount> spaces_;
    RttEstimator rtt_;
    CongestionController congestion_;
    EcnValidator ecn_;
    RecoveryStats stats_;
    UninitializedArray<SentPacket> acked_;
    UninitializedArray<SentPacket> lost_;
    std::size_t acked_count_ = 0;
    std::size_t lost_count_ = 0;
    std::size_t discarded_count_ = 0;
    std::uint64_t max_ack_delay_ns_;
    std::uint64_t timer_deadline_ = kNoDeadline;
    std::uint64_t first_rtt_sample_ns_ = 0;
    std::uint32_t pto_count_ = 0;
    std::uint32_t probe_credits_ = 0;
    bool is_server_;
    bool has_handshake_keys_ = false;
    bool handshake_confirmed_ = false;
    bool peer_address_validated_ = false;
    bool amplification_limited_ = false;
};

}  // namespace cf::quic
