#include "engine/quic/loss_detection.hpp"

#include <cerrno>
#include <new>

#include "platform/os/last_error.hpp"

namespace cf::quic {
namespace {

constexpr std::uint64_t saturating_add(std::uint64_t a, std::uint64_t b) noexcept {
    return a > kNoDeadline - b ? kNoDeadline : a + b;
}

// value * 2^exponent, saturating (the PTO backoff).
constexpr std::uint64_t saturating_shift(std::uint64_t value, std::uint32_t exponent) noexcept {
    if (value == 0) return 0;
    if (exponent >= 64 || value > (kNoDeadline >> exponent)) return kNoDeadline;
    return value << exponent;
}

constexpr PacketNumberSpace kSpaces[] = {PacketNumberSpace::initial, PacketNumberSpace::handshake,
                                         PacketNumberSpace::application};

}  // namespace

LossDetection::LossDetection(const LossDetectionConfig& config) noexcept
    : rtt_(config.initial_rtt_ns),
      congestion_(config.congestion),
      max_ack_delay_ns_(config.max_ack_delay_ns),
      is_server_(config.is_server) {}

int LossDetection::create(const LossDetectionConfig& config, std::unique_ptr<LossDetection>& out) noexcept {
    std::unique_ptr<LossDetection> created(new (std::nothrow) LossDetection(config));
    if (!created) return platform::fail(ENOMEM, "loss detection: out of memory");
    const std::uint32_t capacities[] = {config.initial_capacity, config.handshake_capacity,
                                        config.application_capacity};
    std::size_t largest = 0;
    for (std::size_t i = 0; i < kPacketNumberSpaceCount; ++i) {
        const int rc = created->spaces_[i].sent.reserve(capacities[i]);
        if (rc != 0) return rc;
        if (created->spaces_[i].sent.capacity() > largest) largest = created->spaces_[i].sent.capacity();
    }
    // One call resolves packets of one space only, so the largest space bounds every output list.
    created->acked_ = allocate_uninitialized<SentPacket>(largest);   // filled before they are read
    created->lost_ = allocate_uninitialized<SentPacket>(largest);
    if (!created->acked_ || !created->lost_) return platform::fail(ENOMEM, "loss detection: out of memory");
    out = std::move(created);
    return 0;
}

bool LossDetection::can_send(PacketNumberSpace space, std::uint64_t bytes, bool in_flight) const noexcept {
    const Space& s = spaces_[space_index(space)];
    if (s.discarded || s.sent.full()) return false;
    if (!in_flight || probe_credits_ > 0) return true;
    return congestion_.can_send(bytes);
}

int LossDetection::on_packet_sent(PacketNumberSpace space, const SentPacket& packet) noexcept {
    Space& s = spaces_[space_index(space)];
    if (s.discarded) return -EINVAL;
    const int rc = s.sent.add(packet);
    if (rc != 0) return rc;
    ecn_.on_packet_sent(space, packet.ecn);
    if (packet.ack_eliciting && probe_credits_ > 0) --probe_credits_;
    // Packets not in flight (ACK-only) neither start nor move the timer.
    if (packet.in_flight) {
        if (packet.ack_eliciting) s.time_of_last_ack_eliciting = packet.time_sent_ns;
        congestion_.on_packet_sent(packet.size);
        set_timer(packet.time_sent_ns);
    }
    return 0;
}

TransportError LossDetection::on_ack_received(PacketNumberSpace space, const AckFrameInfo& ack,
                                              std::uint64_t now_ns) noexcept {
    Space& s = spaces_[space_index(space)];
    if (ack.ranges.empty()) return TransportError::frame_encoding_error;
    for (std::size_t i = 0; i < ack.ranges.size(); ++i) {
        const AckRange& range = ack.ranges[i];
        if (range.smallest > range.largest) return TransportError::frame_encoding_error;
        // At least one missing number between two ranges.
        if (i > 0 && (ack.ranges[i - 1].smallest < 2 || range.largest > ack.ranges[i - 1].smallest - 2)) {
            return TransportError::frame_encoding_error;
        }
    }
    const std::uint64_t largest = ack.ranges.front().largest;
    if (s.discarded || !s.sent.any_sent() || largest > s.sent.largest_sent()) return TransportError::protocol_violation;

    reset_outputs();
    const bool raised = !s.has_largest_acked || largest > s.largest_acked;
    if (raised) {
        s.largest_acked = largest;
        s.has_largest_acked = true;
    }

    // Smallest range first, so acked() comes out in packet number order.
    bool any_ack_eliciting = false;
    std::uint64_t newly_ect0 = 0;
    std::uint64_t newly_ect1 = 0;
    SentPackets& sent = s.sent;
    for (std::size_t r = ack.ranges.size(); r-- > 0;) {
        const AckRange& range = ack.ranges[r];
        for (std::size_t i = sent.lower_bound(range.smallest); i < sent.size(); ++i) {
            SentPacket& record = sent.at(i);
            if (record.packet_number > range.largest) break;
            if (record.state == PacketState::lost) {
                ++stats_.spurious_losses;
                sent.mark_lost_as_acked(i);
                continue;
            }
            if (record.state != PacketState::outstanding) continue;
            sent.mark_acked(i);
            acked_[acked_count_++] = record;
            any_ack_eliciting |= record.ack_eliciting;
            newly_ect0 += record.ecn == EcnCodepoint::ect0;
            newly_ect1 += record.ecn == EcnCodepoint::ect1;
        }
    }
    if (acked_count_ == 0) return TransportError::no_error;
    probe_credits_ = 0;

    const SentPacket& newest = acked_[acked_count_ - 1];
    if (newest.packet_number == largest && any_ack_eliciting) {
        const std::uint64_t latest = now_ns > newest.time_sent_ns ? now_ns - newest.time_sent_ns : 0;
        const bool first = !rtt_.has_sample();
        rtt_.on_sample(latest, space == PacketNumberSpace::initial ? 0 : ack.ack_delay_ns, handshake_confirmed_,
                       max_ack_delay_ns_);
        if (first) first_rtt_sample_ns_ = now_ns;
    }

    if (raised && ecn_.on_ack(space, ack.ecn, newly_ect0, newly_ect1)) {
        const std::size_t index = sent.find(largest);
        if (index < sent.size()) {
            ++stats_.ecn_ce_events;
            congestion_event(sent.at(index).time_sent_ns, now_ns);
        }
    }

    detect_lost_packets(space, now_ns);
    congestion_.on_packets_acked(acked(), now_ns, rtt_.smoothed_rtt());
    if (peer_completed_address_validation()) pto_count_ = 0;
    set_timer(now_ns);
    return TransportError::no_error;
}

void LossDetection::congestion_event(std::uint64_t time_sent_ns, std::uint64_t now_ns) noexcept {
    if (!congestion_.in_congestion_recovery(time_sent_ns)) ++stats_.congestion_events;
    congestion_.on_congestion_event(time_sent_ns, now_ns);
}

void LossDetection::detect_lost_packets(PacketNumberSpace space, std::uint64_t now_ns) noexcept {
    Space& s = spaces_[space_index(space)];
    s.loss_time = kNoDeadline;
    if (!s.has_largest_acked) return;
    const std::uint64_t loss_delay = rtt_.loss_delay();
    // Packets sent at or before now - loss_delay are lost by time (none if that is before the clock's zero).
    const bool time_threshold_reachable = now_ns >= loss_delay;
    const std::uint64_t lost_send_time = time_threshold_reachable ? now_ns - loss_delay : 0;
    const std::uint64_t persistent_duration =
        saturating_add(rtt_.pto_base(), max_ack_delay_ns_) * kPersistentCongestionThreshold;

    bool run = false;   // a stretch of lost ack-eliciting packets with no acknowledgment between them
    std::uint64_t run_start = 0;
    bool persistent = false;
    bool any_in_flight = false;
    std::uint64_t newest_in_flight_sent = 0;
    std::uint64_t removed_bytes = 0;
    const std::size_t lost_before = lost_count_;
    SentPackets& sent = s.sent;
    for (std::size_t i = sent.first_outstanding(); i < sent.size(); ++i) {
        SentPacket& record = sent.at(i);
        if (record.packet_number > s.largest_acked) break;
        if (record.state == PacketState::acked) {
            run = false;
            continue;
        }
        if (record.state == PacketState::lost) continue;
        const bool lost = (time_threshold_reachable && record.time_sent_ns <= lost_send_time) ||
                          s.largest_acked >= record.packet_number + kPacketThreshold;
        if (!lost) {
            // Numbers and send times only grow: this one is the next to go, and everything after it later.
            s.loss_time = saturating_add(record.time_sent_ns, loss_delay);
            break;
        }
        sent.mark_lost(i);
        lost_[lost_count_++] = record;
        ++stats_.packets_lost;
        if (record.in_flight) {
            removed_bytes += record.size;
            any_in_flight = true;
            newest_in_flight_sent = record.time_sent_ns;
        }
        if (record.ecn == EcnCodepoint::ect0 || record.ecn == EcnCodepoint::ect1) ecn_.on_marked_packet_lost();
        if (record.ack_eliciting && rtt_.has_sample() && record.time_sent_ns > first_rtt_sample_ns_) {
            if (!run) {
                run = true;
                run_start = record.time_sent_ns;
            } else if (record.time_sent_ns - run_start > persistent_duration) {
                persistent = true;
            }
        }
    }
    if (lost_count_ == lost_before) return;
    congestion_.remove_from_flight(removed_bytes);
    if (any_in_flight) congestion_event(newest_in_flight_sent, now_ns);
    if (persistent) {
        ++stats_.persistent_congestion;
        congestion_.on_persistent_congestion();
        rtt_.reset_min_rtt_to_latest();
    }
}

bool LossDetection::any_ack_eliciting_in_flight() const noexcept {
    for (const Space& s : spaces_) {
        if (!s.discarded && s.sent.ack_eliciting_in_flight() != 0) return true;
    }
    return false;
}

std::uint64_t LossDetection::earliest_loss_time(PacketNumberSpace& space) const noexcept {
    std::uint64_t earliest = kNoDeadline;
    for (PacketNumberSpace candidate : kSpaces) {
        const Space& s = spaces_[space_index(candidate)];
        if (!s.discarded && s.loss_time < earliest) {
            earliest = s.loss_time;
            space = candidate;
        }
    }
    return earliest;
}

std::uint64_t LossDetection::pto_deadline(PacketNumberSpace& space, std::uint64_t now_ns) const noexcept {
    const std::uint64_t duration = saturating_shift(rtt_.pto_base(), pto_count_);
    if (!any_ack_eliciting_in_flight()) {
        // Only a client whose address is not yet validated gets here (the anti-deadlock probe).
        space = has_handshake_keys_ ? PacketNumberSpace::handshake : PacketNumberSpace::initial;
        return saturating_add(now_ns, duration);
    }
    std::uint64_t earliest = kNoDeadline;
    for (PacketNumberSpace candidate : kSpaces) {
        const Space& s = spaces_[space_index(candidate)];
        if (s.discarded || s.sent.ack_eliciting_in_flight() == 0) continue;
        std::uint64_t wait = duration;
        if (candidate == PacketNumberSpace::application) {
            if (!handshake_confirmed_) break;
            wait = saturating_add(wait, saturating_shift(max_ack_delay_ns_, pto_count_));
        }
        const std::uint64_t deadline = saturating_add(s.time_of_last_ack_eliciting, wait);
        if (deadline < earliest) {
            earliest = deadline;
            space = candidate;
        }
    }
    return earliest;
}

void LossDetection::set_timer(std::uint64_t now_ns) noexcept {
    PacketNumberSpace space{};
    const std::uint64_t loss_time = earliest_loss_time(space);
    if (loss_time != kNoDeadline) {
        timer_deadline_ = loss_time;
        return;
    }
    if (is_server_ && amplification_limited_) {
        timer_deadline_ = kNoDeadline;
        return;
    }
    if (!any_ack_eliciting_in_flight() && peer_completed_address_validation()) {
        timer_deadline_ = kNoDeadline;
        return;
    }
    timer_deadline_ = pto_deadline(space, now_ns);
}

TimeoutResult LossDetection::on_timeout(std::uint64_t now_ns) noexcept {
    TimeoutResult result;
    if (timer_deadline_ == kNoDeadline || now_ns < timer_deadline_) return result;
    reset_outputs();
    PacketNumberSpace space{};
    if (earliest_loss_time(space) != kNoDeadline) {
        detect_lost_packets(space, now_ns);
        set_timer(now_ns);
        result.kind = TimeoutKind::loss;
        result.space = space;
        return result;
    }
    if (!any_ack_eliciting_in_flight()) {
        result.space = has_handshake_keys_ ? PacketNumberSpace::handshake : PacketNumberSpace::initial;
        result.anti_deadlock = true;
    } else {
        pto_deadline(space, now_ns);
        result.space = space;
    }
    result.kind = TimeoutKind::probe;
    ++pto_count_;
    ++stats_.pto_expirations;
    probe_credits_ = kProbeCredits;
    set_timer(now_ns);
    return result;
}

void LossDetection::on_handshake_confirmed(std::uint64_t now_ns) noexcept {
    handshake_confirmed_ = true;
    peer_address_validated_ = true;
    set_timer(now_ns);
}

void LossDetection::on_peer_address_validated(std::uint64_t now_ns) noexcept {
    peer_address_validated_ = true;
    set_timer(now_ns);
}

void LossDetection::set_amplification_limited(bool limited, std::uint64_t now_ns) noexcept {
    amplification_limited_ = limited;
    set_timer(now_ns);
}

void LossDetection::discard_space(PacketNumberSpace space, std::uint64_t now_ns) noexcept {
    reset_outputs();
    Space& s = spaces_[space_index(space)];
    if (space == PacketNumberSpace::application || s.discarded) return;
    std::uint64_t removed_bytes = 0;
    for (std::size_t i = s.sent.first_outstanding(); i < s.sent.size(); ++i) {
        const SentPacket& record = s.sent.at(i);
        if (record.state != PacketState::outstanding) continue;
        lost_[discarded_count_++] = record;
        if (record.in_flight) removed_bytes += record.size;
    }
    congestion_.remove_from_flight(removed_bytes);
    s.sent.clear();
    s.time_of_last_ack_eliciting = 0;
    s.loss_time = kNoDeadline;
    s.discarded = true;
    ecn_.discard_space(space);
    pto_count_ = 0;
    set_timer(now_ns);
}

bool LossDetection::largest_acked(PacketNumberSpace space, std::uint64_t& out) const noexcept {
    const Space& s = spaces_[space_index(space)];
    if (!s.has_largest_acked) return false;
    out = s.largest_acked;
    return true;
}

}  // namespace cf::quic
