#include "engine/bus/spsc_ring.hpp"

#include <cerrno>
#include <new>

#include "platform/os/last_error.hpp"

namespace cf::bus {

std::size_t SpscRing::bytes_needed(const RingGeometry& geometry) noexcept {
    RingLayout layout;
    if (compute_ring_layout(RingKind::spsc, geometry, 0, 0, layout) != 0) return 0;
    return layout.total_bytes;
}

int SpscRing::format(void* memory, std::size_t bytes, const RingGeometry& geometry) noexcept {
    RingLayout layout;
    if (const int rc = compute_ring_layout(RingKind::spsc, geometry, 0, 0, layout); rc != 0) return rc;
    if (const int rc = prepare_ring_block(memory, bytes, layout); rc != 0) return rc;
    ::new (static_cast<std::byte*>(memory) + kControlOffset) Control{};
    publish_ring_block(memory);
    return 0;
}

int SpscRing::attach(void* memory, std::size_t bytes, SpscRing& out) noexcept {
    RingLayout layout;
    if (const int rc = attach_ring_block(memory, bytes, RingKind::spsc, layout); rc != 0) return rc;
    auto* base = static_cast<std::byte*>(memory);
    auto* control = reinterpret_cast<Control*>(base + kControlOffset);
    // head <= tail <= head + capacity at every instant, and both only grow: reading head, tail, head, tail in turn
    // brackets a live ring too, and the last pair is consistent (head_again <= tail_again).
    const std::uint64_t head = control->consumer.head.load(std::memory_order_acquire);
    const std::uint64_t tail = control->producer.tail.load(std::memory_order_acquire);
    const std::uint64_t head_again = control->consumer.head.load(std::memory_order_acquire);
    const std::uint64_t tail_again = control->producer.tail.load(std::memory_order_acquire);
    if (tail < head || tail > head_again + layout.geometry.capacity || tail_again < head_again) {
        return platform::fail(EPROTO, "SPSC ring positions are corrupt: head %llu, tail %llu, capacity %u",
                              static_cast<unsigned long long>(head_again), static_cast<unsigned long long>(tail),
                              layout.geometry.capacity);
    }
    SpscRing view;
    view.control_ = control;
    view.slots_ = SlotArray::of(memory, layout);
    view.claim_ = tail_again;
    view.cached_head_ = head_again;
    view.batch_start_ = tail_again;
    view.read_ = head_again;
    view.cached_tail_ = tail_again;
    out = view;
    return 0;
}

}  // namespace cf::bus
