// The sender's record of every packet it sent in one packet number space (RFC 9002 section 2 and appendix A.1),
// kept until the packet is acknowledged or declared lost, and a little longer (see below).
//
// Storage: a ring of records in packet number order, allocated once by reserve() (capacity rounded up to a power of
// two) and never again. Packet numbers must grow strictly (gaps are fine: a sender may skip numbers) and send times
// must not go backwards, so lookups are binary searches and the loss scan can stop at the first packet that is not
// yet lost.
//
// A record that is acknowledged or declared lost stays in the ring as a tombstone (state acked or lost) until its
// slot is needed: an acked tombstone tells persistent congestion detection that something between two lost packets
// got through, and a lost tombstone lets a later ACK of it be counted as a spurious loss. add() reuses the oldest
// slot only if it holds a tombstone.
//
// When full: add() returns -ENOBUFS and records nothing when every slot still holds an outstanding packet (never an
// overwrite). The sender must check full() (or the loss detector's can_send()) and stop sending in this space until
// an ACK or a loss frees a slot; the capacity is the most packets it may have outstanding.
//
// Not thread-safe (one connection owns it); no allocation after reserve().
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>

#include "engine/quic/uninitialized_array.hpp"

namespace cf::quic {

// The two ECN bits a packet was sent with (RFC 3168 codepoints, as in the IP header).
enum class EcnCodepoint : std::uint8_t { not_ect = 0, ect1 = 1, ect0 = 2, ce = 3 };

enum class PacketState : std::uint8_t { outstanding, acked, lost };

struct SentPacket {
    std::uint64_t packet_number = 0;
    std::uint64_t time_sent_ns = 0;
    // Opaque to recovery: the connection's handle to what the packet carried (so it can requeue the frames of a
    // lost packet and release those of an acknowledged one).
    std::uint64_t frames = 0;
    std::uint32_t size = 0;          // bytes the packet took in its UDP datagram
    bool ack_eliciting = false;
    bool in_flight = false;          // counts toward bytes_in_flight (ack-eliciting, PADDING or PATH_* frames)
    EcnCodepoint ecn = EcnCodepoint::not_ect;
    PacketState state = PacketState::outstanding;
};

class SentPackets {
public:
    static constexpr std::uint32_t kMinCapacity = 4;
    static constexpr std::uint32_t kMaxCapacity = std::uint32_t{1} << 20;

    // Allocates the ring once: `capacity` in [kMinCapacity, kMaxCapacity], rounded up to a power of two.
    // -EINVAL out of range, -ENOMEM, -EALREADY if called twice.
    int reserve(std::uint32_t capacity) noexcept;

    // Records a sent packet (state must be outstanding). -ENOBUFS when full (nothing recorded), -EINVAL if its
    // number is not above every earlier one or its send time is before the previous packet's.
    int add(const SentPacket& packet) noexcept;
    // add() would return -ENOBUFS.
    bool full() const noexcept { return count_ == capacity_ && first_outstanding_ == 0; }

    // Records in packet number order, tombstones included: 0 is the oldest kept.
    std::size_t size() const noexcept { return count_; }
    std::size_t capacity() const noexcept { return capacity_; }
    SentPacket& at(std::size_t index) noexcept { return slots_[(head_ + index) & mask_]; }
    const SentPacket& at(std::size_t index) const noexcept { return slots_[(head_ + index) & mask_]; }
    // Index of the first record with packet_number >= `packet_number` (size() if none).
    std::size_t lower_bound(std::uint64_t packet_number) const noexcept;
    // Index of the record with exactly this number, or size().
    std::size_t find(std::uint64_t packet_number) const noexcept;
    // Every record before this index is a tombstone.
    std::size_t first_outstanding() const noexcept { return first_outstanding_; }

    // State changes of an outstanding record (index from the functions above); they keep the sums below exact.
    void mark_acked(std::size_t index) noexcept { resolve(index, PacketState::acked); }
    void mark_lost(std::size_t index) noexcept { resolve(index, PacketState::lost); }
    // A lost tombstone acknowledged after all: becomes an acked tombstone (no sums change).
    void mark_lost_as_acked(std::size_t index) noexcept { at(index).state = PacketState::acked; }

    // Forgets every record (the space's keys were discarded); the largest number sent is kept.
    void clear() noexcept;

    bool any_sent() const noexcept { return any_sent_; }
    std::uint64_t largest_sent() const noexcept { return largest_sent_; }
    // Sums over outstanding records.
    std::uint64_t bytes_in_flight() const noexcept { return bytes_in_flight_; }
    std::size_t outstanding() const noexcept { return outstanding_; }
    std::size_t ack_eliciting_in_flight() const noexcept { return ack_eliciting_in_flight_; }

private:
    void resolve(std::size_t index, PacketState state) noexcept;

    UninitializedArray<SentPacket> slots_;
    std::size_t capacity_ = 0;
    std::size_t mask_ = 0;
    std::size_t head_ = 0;
    std::size_t count_ = 0;
    std::size_t first_outstanding_ = 0;
    std::uint64_t largest_sent_ = 0;
    std::uint64_t last_time_sent_ = 0;
    bool any_sent_ = false;
    std::uint64_t bytes_in_flight_ = 0;
    std::size_t outstanding_ = 0;
    std::size_t ack_eliciting_in_flight_ = 0;
};

}  // namespace cf::quic
