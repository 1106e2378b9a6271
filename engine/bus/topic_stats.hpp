// What a topic's counters say now: how far publishers got, how much of the ring is in use, and how far behind each
// subscriber is. Read from the ring's shared positions through a fresh view: housekeeping and monitoring, never the
// hot path. The positions may sit in shared memory that another process writes, so every figure is a snapshot
// bounded to what the ring can hold, never an index into anything.
#pragma once

#include <cstdint>

#include "engine/bus/topic.hpp"

namespace cf::bus {

struct SubscriberLag {
    std::uint32_t place = 0;   // the subscriber's place in the topic's ledger (its broadcast reader index)
    std::uint64_t lag = 0;     // published positions it has not released yet
    std::uint64_t lost = 0;    // lossy topics: messages it skipped, as of its last poll (0 on the others)
};

struct TopicStats {
    std::uint64_t published = 0;             // positions written (many-publisher topics: claimed) since creation
    std::uint64_t depth_in_use = 0;          // of the slowest subscriber, at most the depth
    std::uint64_t back_pressure_events = 0;  // publishes refused with -EAGAIN because the topic was full
    std::uint32_t subscribers = 0;           // attached now
};

// Fills `stats`, and `lags[0 .. min(stats.subscribers, capacity))` with the attached subscribers in place order.
// 0, or -EINVAL (topic not attached) / -EPROTO (its ring does not attach), with a message.
int topic_stats(const Topic& topic, TopicStats& stats, SubscriberLag* lags, std::uint32_t capacity) noexcept;

// Publishes refused with -EAGAIN on `topic` so far, by every publisher in every process.
std::uint64_t back_pressure_events(const Topic& topic) noexcept;

}  // namespace cf::bus
