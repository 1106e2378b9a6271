// The ring views a publisher or a subscriber keeps for its topic. Only the view of the topic's kind is attached;
// the others stay empty. Views are plain values: copying one is how publishers and subscribers move.
#pragma once

#include <cerrno>

#include "engine/bus/broadcast_ring.hpp"
#include "engine/bus/message.hpp"
#include "engine/bus/mpsc_ring.hpp"
#include "engine/bus/spsc_ring.hpp"
#include "engine/bus/topic.hpp"
#include "platform/os/last_error.hpp"

namespace cf::bus {

struct TopicRings {
    SpscRing spsc;
    MpscRing mpsc;
    BroadcastRing broadcast;

    // Attaches the view `topic`'s kind calls for: 0, that ring's attach error, or -EPROTO when the ring header
    // (consistent in itself) does not describe the ring the topic's validated configuration calls for; with a
    // message. From then on the view's geometry (mask, stride, slot size) is the topic's.
    int attach(const Topic& topic) noexcept {
        const RingGeometry expected{topic.depth(), kMessageHeaderBytes + topic.max_message_bytes()};
        RingGeometry found;
        bool matches = true;
        switch (topic.kind()) {
            case TopicKind::spsc:
                if (const int rc = SpscRing::attach(topic.ring_memory(), topic.ring_bytes(), spsc); rc != 0) return rc;
                found = {spsc.capacity(), spsc.slot_bytes()};
                break;
            case TopicKind::mpsc:
                if (const int rc = MpscRing::attach(topic.ring_memory(), topic.ring_bytes(), mpsc); rc != 0) return rc;
                found = {mpsc.capacity(), mpsc.slot_bytes()};
                break;
            case TopicKind::broadcast:
                if (const int rc = BroadcastRing::attach(topic.ring_memory(), topic.ring_bytes(), broadcast); rc != 0) {
                    return rc;
                }
                found = {broadcast.capacity(), broadcast.slot_bytes()};
                matches = broadcast.max_readers() == topic.max_subscribers() &&
                          broadcast.policy() == topic.overflow() &&
                          broadcast.multi_writer() == (topic.max_publishers() > 1);
                break;
            default: return -EINVAL;
        }
        if (!matches || found.capacity != expected.capacity || found.slot_bytes != expected.slot_bytes) {
            *this = TopicRings{};
            return platform::fail(EPROTO, "topic '%s': its ring does not match its configuration", topic.name());
        }
        return 0;
    }
};

}  // namespace cf::bus
