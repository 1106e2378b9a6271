#include "engine/quic/sent_packets.hpp"

#include <cerrno>
#include <new>

#include "platform/os/last_error.hpp"

namespace cf::quic {

int SentPackets::reserve(std::uint32_t capacity) noexcept {
    if (slots_) return platform::fail(EALREADY, "sent packets: reserve() called twice");
    if (capacity < kMinCapacity || capacity > kMaxCapacity) {
        return platform::fail(EINVAL, "sent packets: capacity %u (%u..%u allowed)", capacity, kMinCapacity,
                              kMaxCapacity);
    }
    std::size_t rounded = 1;
    while (rounded < capacity) rounded <<= 1;
    slots_ = allocate_uninitialized<SentPacket>(rounded);   // a slot is written by add() before it is read
    if (!slots_) return platform::fail(ENOMEM, "sent packets: out of memory for %zu records", rounded);
    capacity_ = rounded;
    mask_ = rounded - 1;
    return 0;
}

int SentPackets::add(const SentPacket& packet) noexcept {
    if (packet.state != PacketState::outstanding) return -EINVAL;
    if (any_sent_ && (packet.packet_number <= largest_sent_ || packet.time_sent_ns < last_time_sent_)) return -EINVAL;
    if (count_ == capacity_) {
        // Reuse the oldest slot only if it is a tombstone.
        if (first_outstanding_ == 0) return -ENOBUFS;
        head_ = (head_ + 1) & mask_;
        --count_;
        --first_outstanding_;
    }
    slots_[(head_ + count_) & mask_] = packet;
    ++count_;
    any_sent_ = true;
    largest_sent_ = packet.packet_number;
    last_time_sent_ = packet.time_sent_ns;
    ++outstanding_;
    if (packet.in_flight) {
        bytes_in_flight_ += packet.size;
        if (packet.ack_eliciting) ++ack_eliciting_in_flight_;
    }
    return 0;
}

std::size_t SentPackets::lower_bound(std::uint64_t packet_number) const noexcept {
    std::size_t low = 0;
    std::size_t high = count_;
    while (low < high) {
        const std::size_t mid = low + (high - low) / 2;
        if (at(mid).packet_number < packet_number) {
            low = mid + 1;
        } else {
            high = mid;
        }
    }
    return low;
}

std::size_t SentPackets::find(std::uint64_t packet_number) const noexcept {
    const std::size_t index = lower_bound(packet_number);
    return index < count_ && at(index).packet_number == packet_number ? index : count_;
}

void SentPackets::resolve(std::size_t index, PacketState state) noexcept {
    SentPacket& packet = at(index);
    packet.state = state;
    --outstanding_;
    if (packet.in_flight) {
        bytes_in_flight_ -= packet.size;
        if (packet.ack_eliciting) --ack_eliciting_in_flight_;
    }
    while (first_outstanding_ < count_ && at(first_outstanding_).state != PacketState::outstanding) {
        ++first_outstanding_;
    }
}

void SentPackets::clear() noexcept {
    head_ = 0;
    count_ = 0;
    first_outstanding_ = 0;
    bytes_in_flight_ = 0;
    outstanding_ = 0;
    ack_eliciting_in_flight_ = 0;
}

}  // namespace cf::quic
