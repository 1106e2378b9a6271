// Which packets of one packet number space we received, and when to say so (RFC 9000 section 13.2).
//
//   - Duplicates are refused (a packet number seen before must not be processed twice, section 12.3). Numbers below
//     the oldest range still kept count as seen: dropping a very late packet costs what a loss costs.
//   - Acknowledge at once when a packet arrives out of order (a gap below it, or it fills one: the sender is probably
//     recovering from loss, section 13.2.1) or carries ECN CE; otherwise after every second ack-eliciting packet, or
//     when max_ack_delay has passed since the first unacknowledged one, whichever comes first. Packets that only
//     carry ACKs or padding are acknowledged with the next ACK but never cause one.
//   - The ranges kept are the kMaxRanges highest: older ones are dropped first (they were most likely acknowledged
//     already; an ACK frame lists the newest first anyway).
//
// Times are nanoseconds of the connection's monotonic clock. No allocation; one connection's thread.
#pragma once

#include <cstdint>

#include "engine/quic/range_set.hpp"

namespace cf::quic {

class AckTracker {
public:
    static constexpr std::uint32_t kMaxRanges = 32;
    static constexpr std::uint32_t kAckElicitingThreshold = 2;

    explicit AckTracker(std::uint64_t max_ack_delay_ns = 25'000'000) noexcept : max_ack_delay_ns_(max_ack_delay_ns) {}

    // Whether `packet_number` arrived before (or lies below what is still tracked): a duplicate to drop unread.
    bool seen(std::uint64_t packet_number) const noexcept {
        return packet_number < floor_ || received_.contains(packet_number);
    }
    // A packet whose protection was removed: false if it is a duplicate (drop it, do not process its frames).
    bool on_packet(std::uint64_t packet_number, bool ack_eliciting, bool ecn_ce, std::uint64_t now_ns) noexcept;

    // Whether an ACK should go out now, and the latest time one may wait until (UINT64_MAX: none owed).
    bool ack_now(std::uint64_t now_ns) const noexcept { return immediate_ || (eliciting_ != 0 && now_ns >= deadline_ns()); }
    std::uint64_t deadline_ns() const noexcept {
        return eliciting_ == 0 ? UINT64_MAX : first_unacked_ns_ + max_ack_delay_ns_;
    }
    bool owes_ack() const noexcept { return eliciting_ != 0 || immediate_; }

    // What an ACK frame lists: ranges ascending (the frame writes them from the last), the largest packet number
    // and how long ago it arrived (the ACK Delay field, before the exponent).
    const RangeSet<kMaxRanges>& received() const noexcept { return received_; }
    std::uint64_t largest() const noexcept { return largest_; }
    std::uint64_t ack_delay_ns(std::uint64_t now_ns) const noexcept {
        return now_ns > largest_received_ns_ ? now_ns - largest_received_ns_ : 0;
    }
    // An ACK with the current ranges went out.
    void on_ack_sent() noexcept {
        eliciting_ = 0;
        immediate_ = false;
    }
    // The peer acknowledged an ACK of ours that covered everything up to `largest_acked`: those ranges need not be
    // repeated (section 13.2.4).
    void on_ack_acknowledged(std::uint64_t largest_acked) noexcept;

    bool any() const noexcept { return !received_.empty(); }
    std::uint64_t duplicates() const noexcept { return duplicates_; }

private:
    RangeSet<kMaxRanges> received_;
    std::uint64_t floor_ = 0;              // numbers below it count as received (forgotten or acknowledged)
    std::uint64_t largest_ = 0;
    std::uint64_t largest_received_ns_ = 0;
    std::uint64_t first_unacked_ns_ = 0;
    std::uint64_t max_ack_delay_ns_;
    std::uint32_t eliciting_ = 0;          // ack-eliciting packets since the last ACK
    bool immediate_ = false;
    std::uint64_t duplicates_ = 0;
};

}  // namespace cf::quic
