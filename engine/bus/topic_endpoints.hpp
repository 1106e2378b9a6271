// The topic's endpoint ledger: who holds each of its max_publishers publisher places and max_subscribers
// subscriber places (TopicHeader::publisher_places / subscriber_places), in the topic's own memory, so the limits
// hold across every process that maps it.
//
// A place is one 64-bit word: 0 when free, else its holder. Taking a place is one CAS (0 -> holder), giving it
// back one CAS (holder -> 0). There is no second record to keep in step (a count, a per-process tally), so a
// process killed at any instruction leaves every place either free or naming it, and whoever finds it dead gives
// back exactly what it held (reclaim_places). The counts are derived by reading the ledger.
//
// Holders:
//   - kInProcessHolder: an endpoint of a topic in this process's memory; no other process can outlive it.
//   - process_holder(entry, sequence): an endpoint of a shared topic, named by its process's registration in the
//     segment's ProcessTable (entry index + the entry's claim sequence, so a later occupant of the entry is
//     another holder). When the table's scan finds that registration dead, its places are reclaimed.
#pragma once

#include <atomic>
#include <cerrno>
#include <cstdint>

#include "engine/bus/topic.hpp"
#include "platform/os/last_error.hpp"

namespace cf::bus {

using EndpointHolder = std::uint64_t;

inline constexpr EndpointHolder kInProcessHolder = 2;

// Odd, so never 0 and never kInProcessHolder: sequence << 8 | entry << 1 | 1.
constexpr EndpointHolder process_holder(std::uint32_t entry, std::uint64_t sequence) noexcept {
    return (sequence << 8) | (std::uint64_t{entry & 0x7f} << 1) | 1;
}

enum class EndpointRole : std::uint8_t { publisher, subscriber };

inline const char* role_name(EndpointRole role) noexcept {
    return role == EndpointRole::publisher ? "publisher" : "subscriber";
}

inline std::atomic<std::uint64_t>* places_of(TopicHeader& header, EndpointRole role) noexcept {
    return role == EndpointRole::publisher ? header.publisher_places : header.subscriber_places;
}
inline const std::atomic<std::uint64_t>* places_of(const TopicHeader& header, EndpointRole role) noexcept {
    return role == EndpointRole::publisher ? header.publisher_places : header.subscriber_places;
}

// The number of places of `role`: the configuration Topic::attach validated and copied (another process can
// rewrite the header's copy at any time).
inline std::uint32_t place_count(const Topic& topic, EndpointRole role) noexcept {
    return role == EndpointRole::publisher ? topic.max_publishers() : topic.max_subscribers();
}

// Takes a free place for `holder`: its index, or -EINVAL (not attached) / -EUSERS (all taken), with a message.
inline int take_place(const Topic& topic, EndpointRole role, EndpointHolder holder) noexcept {
    if (!topic.valid()) return platform::fail(EINVAL, "%s: the topic is not attached", role_name(role));
    std::atomic<std::uint64_t>* places = places_of(topic.header(), role);
    const std::uint32_t count = place_count(topic, role);
    for (std::uint32_t i = 0; i < count; ++i) {
        std::uint64_t expected = 0;
        // acq_rel: the acquire pairs with the release of whoever freed the place (its last use of what the place
        // stands for, e.g. broadcast reader i, is done); the release publishes our claim.
        if (places[i].compare_exchange_strong(expected, holder, std::memory_order_acq_rel,
                                              std::memory_order_relaxed)) {
            return static_cast<int>(i);
        }
    }
    return platform::fail(EUSERS, "topic '%s' already has its %u %s(s)", topic.name(), count, role_name(role));
}

// Gives place `index` back if `holder` still holds it: true, or false if it was reclaimed meanwhile.
inline bool give_back_place(const Topic& topic, EndpointRole role, std::uint32_t index,
                            EndpointHolder holder) noexcept {
    if (!topic.valid() || index >= kMaxTopicEndpoints) return false;
    std::uint64_t expected = holder;
    // release: our last use of the place happens before the next holder's acquire CAS in take_place.
    return places_of(topic.header(), role)[index].compare_exchange_strong(expected, 0, std::memory_order_release,
                                                                           std::memory_order_relaxed);
}

// Places of `role` that `holder` holds now (a snapshot): a process's (or an engine's) own open endpoints.
inline std::uint32_t places_held(const TopicHeader& header, EndpointRole role, EndpointHolder holder) noexcept {
    const std::atomic<std::uint64_t>* places = places_of(header, role);
    std::uint32_t held = 0;
    for (std::uint32_t i = 0; i < kMaxTopicEndpoints; ++i) {
        if (places[i].load(std::memory_order_acquire) == holder) ++held;
    }
    return held;
}

// Places of `role` taken now (a snapshot).
inline std::uint32_t places_taken(const TopicHeader& header, EndpointRole role) noexcept {
    const std::atomic<std::uint64_t>* places = places_of(header, role);
    std::uint32_t taken = 0;
    for (std::uint32_t i = 0; i < kMaxTopicEndpoints; ++i) {
        if (places[i].load(std::memory_order_relaxed) != 0) ++taken;
    }
    return taken;
}

// Frees every place of `role` that `holder` holds, calling before_free(index) first while the place still
// names the holder (so nobody can take it and what it stands for, e.g. broadcast reader i, can be released
// safely). For a holder that no longer runs (its process died, or it is this process closing): two callers must
// not reclaim the same holder at once. Returns how many places were freed.
template <class F>
std::uint32_t reclaim_places(TopicHeader& header, EndpointRole role, EndpointHolder holder, F&& before_free) noexcept {
    std::atomic<std::uint64_t>* places = places_of(header, role);
    std::uint32_t freed = 0;
    for (std::uint32_t i = 0; i < kMaxTopicEndpoints; ++i) {
        if (places[i].load(std::memory_order_acquire) != holder) continue;
        before_free(i);
        std::uint64_t expected = holder;
        if (places[i].compare_exchange_strong(expected, 0, std::memory_order_release, std::memory_order_relaxed)) {
            ++freed;
        }
    }
    return freed;
}

}  // namespace cf::bus
