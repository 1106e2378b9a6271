// Counting the publishers and subscribers attached to a topic, in the topic's header, so that max_publishers and
// max_subscribers hold across every process that maps it.
#pragma once

#include <atomic>
#include <cerrno>
#include <cstdint>

#include "engine/bus/topic.hpp"
#include "platform/os/last_error.hpp"

namespace cf::bus {

// Takes one of `limit` places: true, or false when all are taken.
inline bool take_endpoint(std::atomic<std::uint32_t>& count, std::uint32_t limit) noexcept {
    std::uint32_t now = count.load(std::memory_order_relaxed);
    do {
        if (now >= limit) return false;
    } while (!count.compare_exchange_weak(now, now + 1, std::memory_order_acq_rel, std::memory_order_relaxed));
    return true;
}

// Takes a publisher or subscriber place on an attached topic: 0, -EINVAL (not attached) or -EUSERS, with a message.
inline int reserve_endpoint(const Topic& topic, bool publisher) noexcept {
    if (!topic.valid()) return platform::fail(EINVAL, "%s: the topic is not attached", publisher ? "publisher" : "subscriber");
    TopicHeader& header = topic.header();
    const std::uint32_t limit = publisher ? header.max_publishers : header.max_subscribers;
    if (!take_endpoint(publisher ? header.publishers : header.subscribers, limit)) {
        return platform::fail(EUSERS, "topic '%s' already has its %u %s(s)", topic.name(), limit,
                              publisher ? "publisher" : "subscriber");
    }
    return 0;
}

inline void give_back_endpoint(std::atomic<std::uint32_t>& count) noexcept {
    count.fetch_sub(1, std::memory_order_acq_rel);
}

}  // namespace cf::bus
