#include "engine/bus/topic_stats.hpp"

#include <algorithm>
#include <cerrno>

#include "engine/bus/topic_endpoints.hpp"
#include "engine/bus/topic_rings.hpp"
#include "platform/os/last_error.hpp"

namespace cf::bus {
namespace {

// How far `reader` is behind `writer`: 0 for a reader position ahead of the writer (a torn or forged word).
std::uint64_t behind(std::uint64_t writer, std::uint64_t reader) noexcept { return writer >= reader ? writer - reader : 0; }

}  // namespace

std::uint64_t back_pressure_events(const Topic&) noexcept {
    return 0;   // integrator: replaced by the topic header's counters
}

int topic_stats(const Topic& topic, TopicStats& stats, SubscriberLag* lags, std::uint32_t capacity) noexcept {
    if (!topic.valid()) return platform::fail(EINVAL, "topic stats: the topic is not attached");
    TopicRings rings;
    if (const int status = rings.attach(topic); status != 0) return status;
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
        case TopicKind::spsc:
        case TopicKind::mpsc: {
            const bool spsc = topic.kind() == TopicKind::spsc;
            result.published = spsc ? rings.spsc.producer_position() : rings.mpsc.claimed_position();
            const std::uint64_t released = spsc ? rings.spsc.consumer_position() : rings.mpsc.consumer_position();
            // One subscriber place: it reads whether or not its place is taken, but only a holder has a lag.
            if (places[0].load(std::memory_order_relaxed) != 0) add(0, behind(result.published, released), 0);
            break;
        }
        case TopicKind::broadcast: {
            result.published = rings.broadcast.writer_position();
            for (std::uint32_t i = 0; i < topic.max_subscribers(); ++i) {
                const int reader = static_cast<int>(i);
                if (places[i].load(std::memory_order_relaxed) == 0 || !rings.broadcast.reader_active(reader)) continue;
                add(i, behind(result.published, rings.broadcast.reader_position(reader)), rings.broadcast.lost(reader));
            }
            break;
        }
    }
    result.depth_in_use = std::min<std::uint64_t>(slowest, topic.depth());
    stats = result;
    return 0;
}

}  // namespace cf::bus
