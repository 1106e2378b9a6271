#include "engine/bus/topic_stats.hpp"

#include <algorithm>
#include <cerrno>

#include "engine/bus/topic_endpoints.hpp"
#include "engine/bus/topic_protocols.hpp"
#include "platform/os/last_error.hpp"

namespace cf::bus {
namespace {

// How far `reader` is behind `writer`: 0 for a reader position ahead of the writer (a torn or forged word).
std::uint64_t behind(std::uint64_t writer, std::uint64_t reader) noexcept { return writer >= reader ? writer - reader : 0; }

}  // namespace

std::uint64_t back_pressure_events(const Topic& topic) noexcept {
    if (!topic.valid()) return 0;
    std::uint64_t events = 0;
    for (const std::atomic<std::uint64_t>& counter : topic.header().publisher_full) {
        events += counter.load(std::memory_order_relaxed);
    }
    return events;
}

int topic_stats(const Topic& topic, TopicStats& stats, SubscriberLag* lags, std::uint32_t capacity) noexcept {
    if (!topic.valid()) return platform::fail(EINVAL, "topic stats: the topic is not attached");
    const std::atomic<std::uint64_t>* places = places_of(topic.header(), EndpointRole::subscriber);
    TopicStats result;
    result.back_pressure_events = back_pressure_events(topic);
    std::uint64_t slowest = 0;
    auto add = [&](std::uint32_t place, std::uint64_t lag, std::uint64_t lost) {
        if (result.subscribers < capacity) lags[result.subscribers] = SubscriberLag{place, lag, lost};
        ++result.subscribers;
        slowest = std::max(slowest, lag);
    };
    switch (topic.kind()) {
        case RingKind::spsc: {
            SpscRing ring;
            if (const int status = attach_topic_ring(topic, ring); status != 0) return status;
            result.published = ring.producer_position();
            // One subscriber place: it reads whether or not its place is taken, but only a holder has a lag.
            if (places[0].load(std::memory_order_relaxed) != 0) add(0, behind(result.published, ring.consumer_position()), 0);
            break;
        }
        case RingKind::mpsc: {
            MpscRing ring;
            if (const int status = attach_topic_ring(topic, ring); status != 0) return status;
            result.published = ring.claimed_position();
            if (places[0].load(std::memory_order_relaxed) != 0) add(0, behind(result.published, ring.consumer_position()), 0);
            break;
        }
        case RingKind::broadcast: {
            BroadcastRing ring;
            if (const int status = attach_topic_ring(topic, ring); status != 0) return status;
            result.published = ring.writer_position();
            for (std::uint32_t i = 0; i < topic.max_subscribers(); ++i) {
                const int reader = static_cast<int>(i);
                if (places[i].load(std::memory_order_relaxed) == 0 || !ring.reader_active(reader)) continue;
                add(i, behind(result.published, ring.reader_position(reader)), ring.lost(reader));
            }
            break;
        }
    }
    result.depth_in_use = std::min<std::uint64_t>(slowest, topic.depth());
    stats = result;
    return 0;
}

}  // namespace cf::bus
