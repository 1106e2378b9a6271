#include "engine/bus/topic_protocols.hpp"

#include "platform/os/last_error.hpp"

namespace cf::bus {

template <class Ring>
int attach_topic_ring(const Topic& topic, Ring& ring) noexcept {
    Ring view;
    if (const int status = Ring::attach(topic.ring_memory(), topic.ring_bytes(), view); status != 0) return status;
    bool matches = view.capacity() == topic.depth() && view.slot_bytes() == kMessageHeaderBytes + topic.max_message_bytes();
    if constexpr (std::is_base_of_v<BroadcastRing, Ring>) {
        matches = matches && topic.kind() == RingKind::broadcast && view.max_readers() == topic.max_subscribers() &&
                  view.policy() == topic.overflow() && view.multi_writer() == (topic.max_publishers() > 1);
    } else if constexpr (std::is_same_v<Ring, MpscRing>) {
        matches = matches && topic.kind() == RingKind::mpsc;
    } else {
        matches = matches && topic.kind() == RingKind::spsc;
    }
    if (!matches) return platform::fail(EPROTO, "topic '%s': its ring does not match its configuration", topic.name());
    ring = view;
    return 0;
}

template int attach_topic_ring(const Topic&, SpscRing&) noexcept;
template int attach_topic_ring(const Topic&, MpscRing&) noexcept;
template int attach_topic_ring(const Topic&, BroadcastRing&) noexcept;
template int attach_topic_ring(const Topic&, BroadcastRingOneWriter&) noexcept;
template int attach_topic_ring(const Topic&, BroadcastRingManyWriters&) noexcept;
template int attach_topic_ring(const Topic&, LossyBroadcastRingOneWriter&) noexcept;
template int attach_topic_ring(const Topic&, LossyBroadcastRingManyWriters&) noexcept;

namespace {

template <class Ring>
int join_reader(const Topic& topic, Ring& ring, int place, int& index) noexcept {
    if (const int status = attach_topic_ring(topic, ring); status != 0) return status;
    // Our place is ours alone, so its reader region is free unless the ledger and the ring disagree (memory
    // another process corrupted).
    index = ring.add_reader_at(place);
    if (index < 0) {
        return platform::fail(EPROTO, "topic '%s': reader %d is taken although its subscriber place was free "
                                      "(corrupt topic?)", topic.name(), place);
    }
    return 0;
}

}  // namespace

template <class Ring>
int BroadcastReaderOf<Ring>::attach(const Topic& topic, int place) noexcept {
    return join_reader(topic, ring, place, index);
}
template <class Ring>
int LossyReaderOf<Ring>::attach(const Topic& topic, int place) noexcept {
    return join_reader(topic, ring, place, index);
}

template struct BroadcastReaderOf<BroadcastRingOneWriter>;
template struct BroadcastReaderOf<BroadcastRingManyWriters>;
template struct LossyReaderOf<LossyBroadcastRingOneWriter>;
template struct LossyReaderOf<LossyBroadcastRingManyWriters>;

}  // namespace cf::bus
