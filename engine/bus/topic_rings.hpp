// The ring views a publisher or a subscriber keeps for its topic. Only the view of the topic's kind is attached;
// the others stay empty. Views are plain values: copying one is how publishers and subscribers move.
#pragma once

#include <cerrno>

#include "engine/bus/broadcast_ring.hpp"
#include "engine/bus/mpsc_ring.hpp"
#include "engine/bus/spsc_ring.hpp"
#include "engine/bus/topic.hpp"

namespace cf::bus {

struct TopicRings {
    SpscRing spsc;
    MpscRing mpsc;
    BroadcastRing broadcast;

    // Attaches the view `topic`'s kind calls for: 0, or that ring's attach error (with a message).
    int attach(const Topic& topic) noexcept {
        switch (topic.kind()) {
            case TopicKind::spsc: return SpscRing::attach(topic.ring_memory(), topic.ring_bytes(), spsc);
            case TopicKind::mpsc: return MpscRing::attach(topic.ring_memory(), topic.ring_bytes(), mpsc);
            case TopicKind::broadcast: return BroadcastRing::attach(topic.ring_memory(), topic.ring_bytes(), broadcast);
        }
        return -EINVAL;
    }
};

}  // namespace cf::bus
