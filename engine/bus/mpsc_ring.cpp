#include "engine/bus/mpsc_ring.hpp"

#include <cerrno>
#include <new>

#include "platform/os/last_error.hpp"

namespace cf::bus {

using platform::fail;

std::size_t MpscRing::bytes_needed(const RingGeometry& geometry) noexcept {
    RingLayout layout;
    if (compute_ring_layout(RingKind::mpsc, geometry, 0, 0, layout) != 0) return 0;
    return layout.total_bytes;
}

int MpscRing::format(void* memory, std::size_t bytes, const RingGeometry& geometry) noexcept {
    RingLayout layout;
    if (const int rc = compute_ring_layout(RingKind::mpsc, geometry, 0, 0, layout); rc != 0) return rc;
    if (const int rc = prepare_ring_block(memory, bytes, layout); rc != 0) return rc;
    auto* base = static_cast<std::byte*>(memory);
    ::new (base + kControlOffset) Control{};
    // Slot p starts free for position p (its first lap).
    const SlotArray slots = SlotArray::of(memory, layout);
    for (std::uint64_t p = 0; p < slots.capacity; ++p) {
        auto* trailer = ::new (slots.at(p) + slots.trailer_offset) SlotTrailer{};
        trailer->sequence.store(p, std::memory_order_relaxed);
    }
    publish_ring_block(memory);
    return 0;
}

int MpscRing::attach(void* memory, std::size_t bytes, MpscRing& out) noexcept {
    RingLayout layout;
    if (const int rc = attach_ring_block(memory, bytes, RingKind::mpsc, layout); rc != 0) return rc;
    auto* base = static_cast<std::byte*>(memory);
    auto* control = reinterpret_cast<Control*>(base + kControlOffset);
    // head <= tail <= head + capacity at every instant and both only grow (see SpscRing::attach).
    const std::uint64_t head = control->consumer.head.load(std::memory_order_acquire);
    const std::uint64_t tail = control->producers.tail.load(std::memory_order_acquire);
    const std::uint64_t head_again = control->consumer.head.load(std::memory_order_acquire);
    if (tail < head || tail > head_again + layout.geometry.capacity) {
        return fail(EPROTO, "MPSC ring positions are corrupt: head %llu, tail %llu, capacity %u",
                    static_cast<unsigned long long>(head_again), static_cast<unsigned long long>(tail),
                    layout.geometry.capacity);
    }
    MpscRing view;
    view.control_ = control;
    view.slots_ = SlotArray::of(memory, layout);
    view.read_ = head_again;
    view.ready_ = head_again;
    out = view;
    return 0;
}

int MpscRing::reclaim(std::uint64_t position) noexcept {
    if (position < read_) {
        return fail(EINVAL, "MPSC position %llu was already consumed (consumer at %llu)",
                    static_cast<unsigned long long>(position), static_cast<unsigned long long>(read_));
    }
    const std::uint64_t tail = control_->producers.tail.load(std::memory_order_acquire);
    if (position >= tail) {
        return fail(EINVAL, "MPSC position %llu has not been claimed (tail at %llu)",
                    static_cast<unsigned long long>(position), static_cast<unsigned long long>(tail));
    }
    SlotTrailer& trailer = trailer_at(position);
    std::uint64_t expected = position;
    // Acquire on failure: a commit that won makes its payload visible like any other commit.
    if (trailer.sequence.compare_exchange_strong(expected, position + 1, std::memory_order_acq_rel,
                                                 std::memory_order_acquire)) {
        // Only the consumer writes or reads the flag, so setting it after the exchange cannot be misread.
        trailer.flags.store(kSlotReclaimed, std::memory_order_relaxed);
        auto& reclaimed = control_->consumer.reclaimed;
        reclaimed.store(reclaimed.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
        return 0;
    }
    if (expected == position + 1) {
        return fail(EALREADY, "MPSC position %llu was committed by its producer; nothing to reclaim",
                    static_cast<unsigned long long>(position));
    }
    return fail(EPROTO, "MPSC slot of position %llu holds sequence %llu, neither claimed nor committed",
                static_cast<unsigned long long>(position), static_cast<unsigned long long>(expected));
}

}  // namespace cf::bus
