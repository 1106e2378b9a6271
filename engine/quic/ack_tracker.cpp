#include "engine/quic/ack_tracker.hpp"

namespace cf::quic {

bool AckTracker::on_packet(std::uint64_t packet_number, bool ack_eliciting, bool ecn_ce, std::uint64_t now_ns) noexcept {
    if (seen(packet_number)) {
        ++duplicates_;
        return false;
    }
    const bool first = received_.empty();
    // Out of order: below the largest (it fills a gap), or above it with a gap in between.
    const bool out_of_order = !first && (packet_number < largest_ || packet_number > largest_ + 1);
    while (!received_.add(packet_number, packet_number + 1)) {
        // Full: forget the oldest range; everything below the next one now counts as received.
        floor_ = received_[1].start;
        received_.trim_below(floor_);
    }
    if (first || packet_number > largest_) {
        largest_ = packet_number;
        largest_received_ns_ = now_ns;
    }
    if (out_of_order || ecn_ce) immediate_ = true;
    if (ack_eliciting) {
        if (eliciting_ == 0) first_unacked_ns_ = now_ns;
        if (++eliciting_ >= kAckElicitingThreshold) immediate_ = true;
    }
    return true;
}

void AckTracker::on_ack_acknowledged(std::uint64_t largest_acked) noexcept {
    // Keep the range holding largest_acked's successor boundary: only what lies wholly below it goes.
    std::uint64_t keep_from = 0;
    for (const OffsetRange& range : received_) {
        if (range.end <= largest_acked + 1) keep_from = range.end;
    }
    if (keep_from <= floor_) return;
    floor_ = keep_from;
    received_.trim_below(keep_from);
}

}  // namespace cf::quic
