// Counting the publishers and subscribers attached to a topic, in the topic's header, so that max_publishers and
// max_subscribers hold across every process that maps it.
#pragma once

#include <atomic>
#include <cstdint>

namespace cf::bus {

// Takes one of `limit` places: true, or false when all are taken.
inline bool take_endpoint(std::atomic<std::uint32_t>& count, std::uint32_t limit) noexcept {
    std::uint32_t now = count.load(std::memory_order_relaxed);
    do {
        if (now >= limit) return false;
    } while (!count.compare_exchange_weak(now, now + 1, std::memory_order_acq_rel, std::memory_order_relaxed));
    return true;
}

inline void give_back_endpoint(std::atomic<std::uint32_t>& count) noexcept {
    count.fetch_sub(1, std::memory_order_acq_rel);
}

}  // namespace cf::bus
