// The C API: topics, publishers, subscribers. The hot calls (publish, claim, commit, poll, release) check their
// arguments and go straight to the ring; the C++ underneath sets no message on its hot path, so a failure's
// message is written here (CF_EAGAIN too: the caller is retrying or dropping anyway, not on the fast path).
#include <time.h>

#include <cerrno>
#include <climits>
#include <cstddef>
#include <new>

#include "engine/bus/idle_strategy.hpp"
#include "engine/bus/process_table.hpp"
#include "engine/bus/topic_stats.hpp"
#include "engine/capi/handles.hpp"
#include "engine/capi/status.hpp"
#include "platform/os/last_error.hpp"

using cf::platform::fail;

namespace {

constexpr std::size_t kTopicConfigV1 = offsetof(cf_topic_config_t, owner_uid) + sizeof(uint32_t);
constexpr std::size_t kTopicStatsV1 = offsetof(cf_topic_stats_t, reserved) + sizeof(uint32_t);
constexpr std::size_t kTopicLayoutV1 = offsetof(cf_topic_layout_t, ring) + sizeof(uint32_t);
constexpr std::uint64_t kStuckClaimNs = 1'000'000'000;   // see Subscriber::recover_stalled_claim
static_assert(CF_POLL_MAX == cf::bus::kMaxPollBatch);

// The message and status of a failed hot call.
int explain(int status, const char* call, const cf::EngineTopic* topic) noexcept {
    switch (status) {
        case -EAGAIN:
            return fail(EAGAIN, "%s: topic '%s' is full (a subscriber is a ring behind): retry, or drop the message",
                        call, topic->name().c_str());
        case -EMSGSIZE:
            return fail(EMSGSIZE, "%s: the message is larger than topic '%s''s max_message_bytes (%u)", call,
                        topic->name().c_str(), topic->topic().max_message_bytes());
        case -EBUSY: return fail(EBUSY, "%s: a claim is already outstanding: commit it first", call);
        case -EINVAL: return fail(EINVAL, "%s: nothing claimed, or a length above the claimed one", call);
        case -ESTALE:
            return fail(ESTALE, "%s: the claim stalled so long that the subscriber reclaimed it; the message was dropped",
                        call);
        default: return fail(EIO, "%s: unexpected status %d", call, status);
    }
}

// Publishers and subscribers: a handle that remembers its topic, counted among the topic's open endpoints.
template <class Handle, class Open>
int create_endpoint(cf_topic_t* topic, Handle** out, const char* call, Open&& open) {
    if (topic == nullptr || out == nullptr) return fail(EINVAL, "%s: a handle argument is NULL", call);
    const cf::capi::Call status_of(call);
    auto* handle = new (std::nothrow) Handle();
    if (handle == nullptr) return fail(ENOMEM, "%s: out of memory", call);
    cf::EngineTopic* target = to_engine_topic(topic);
    if (const int status = open(*target, *handle); status != 0) {
        delete handle;
        return status_of(status);
    }
    handle->topic = target;
    *out = handle;
    return 0;
}

template <class Handle, class Close>
int destroy_endpoint(Handle* handle, Close&& close) {
    if (handle == nullptr) return 0;
    close(*handle->topic, *handle);
    delete handle;
    return 0;
}

void to_c_message(const cf::bus::Message& m, cf_message_t& out) noexcept {
    out = cf_message_t{m.data, m.length, m.sequence, cf::capi::to_c_stamp(m.stamp)};
}

int check_poll_arguments(const cf_subscriber_t* subscriber, const cf_message_t* messages, uint32_t max,
                         const char* call) noexcept {
    if (subscriber == nullptr || (messages == nullptr && max != 0)) {
        return fail(EINVAL, "%s: subscriber is NULL, or messages is NULL with a max", call);
    }
    return 0;
}

int poll_once(cf_subscriber_t* subscriber, cf_message_t* messages, uint32_t max) noexcept {
    if (max > cf::bus::kMaxPollBatch) max = cf::bus::kMaxPollBatch;
    const std::uint32_t count = subscriber->subscriber.receive(subscriber->batch, max);
    for (std::uint32_t i = 0; i < count; ++i) to_c_message(subscriber->batch[i], messages[i]);
    return static_cast<int>(count);
}

std::uint64_t monotonic_ns() noexcept {
    timespec now{};
    clock_gettime(CLOCK_MONOTONIC, &now);
    return static_cast<std::uint64_t>(now.tv_sec) * 1'000'000'000u + static_cast<std::uint64_t>(now.tv_nsec);
}

}  // namespace

extern "C" {

void cf_topic_config_init(cf_topic_config_t* config) {
    if (config == nullptr) return;
    *config = cf_topic_config_t{};
    config->struct_size = sizeof(cf_topic_config_t);
    config->max_publishers = 1;
    config->max_subscribers = 1;
    config->overflow = CF_OVERFLOW_BACK_PRESSURE;
    config->owner_uid = CF_OWNER_SELF;
}

int cf_topic_create(cf_engine_t* engine, const cf_topic_config_t* config, cf_topic_t** topic) {
    if (engine == nullptr || config == nullptr || topic == nullptr) {
        return fail(EINVAL, "cf_topic_create: engine, config or topic is NULL");
    }
    if (config->struct_size < kTopicConfigV1 || config->struct_size > sizeof(cf_topic_config_t)) {
        return fail(EINVAL, "cf_topic_create: struct_size %u is not a cf_topic_config_t this library knows "
                            "(use cf_topic_config_init)", config->struct_size);
    }
    if (config->overflow > CF_OVERFLOW_LOSSY) return fail(EINVAL, "cf_topic_create: unknown overflow %u", config->overflow);
    if (config->shared > 1) return fail(EINVAL, "cf_topic_create: shared must be 0 or 1");
    if (config->owner_uid != CF_OWNER_SELF && config->shared == 0) {
        return fail(EINVAL, "cf_topic_create: owner_uid is for shared topics only");
    }
    cf::bus::TopicConfig settings;
    settings.name = config->name;
    settings.max_message_bytes = config->max_message_bytes;
    settings.depth = config->depth;
    settings.max_publishers = config->max_publishers;
    settings.max_subscribers = config->max_subscribers;
    settings.overflow = static_cast<cf::bus::OverflowPolicy>(config->overflow);
    const cf::capi::Call status_of("cf_topic_create");
    cf::EngineTopic* created = nullptr;
    const int status =
        engine->engine->create_topic(settings, config->shared != 0, config->mode, config->owner_uid, created);
    if (status != 0) return status_of(status);
    *topic = to_handle(created);
    return 0;
}

int cf_topic_open(cf_engine_t* engine, const char* name, uint32_t mode, uint32_t owner_uid, cf_topic_t** topic) {
    if (engine == nullptr || name == nullptr || topic == nullptr) {
        return fail(EINVAL, "cf_topic_open: engine, name or topic is NULL");
    }
    const cf::capi::Call status_of("cf_topic_open");
    cf::EngineTopic* opened = nullptr;
    if (const int status = engine->engine->open_topic(name, mode, owner_uid, opened); status != 0) {
        return status_of(status);
    }
    *topic = to_handle(opened);
    return 0;
}

int cf_topic_find(cf_engine_t* engine, const char* name, cf_topic_t** topic) {
    if (engine == nullptr || name == nullptr || topic == nullptr) {
        return fail(EINVAL, "cf_topic_find: engine, name or topic is NULL");
    }
    cf::EngineTopic* found = engine->engine->find_topic(name);
    if (found == nullptr) return fail(ENOENT, "cf_topic_find: no topic '%s' in this engine", name);
    *topic = to_handle(found);
    return 0;
}

int cf_topic_list(cf_engine_t* engine, cf_topic_t** topics, uint32_t capacity) {
    if (engine == nullptr || (topics == nullptr && capacity != 0)) {
        return fail(EINVAL, "cf_topic_list: engine is NULL, or topics is NULL with a capacity");
    }
    // cf_topic_t* is EngineTopic* (handles.hpp), so the engine writes the caller's array directly.
    return static_cast<int>(engine->engine->list_topics(reinterpret_cast<cf::EngineTopic**>(topics), capacity));
}

int cf_topic_get_config(cf_topic_t* topic, cf_topic_config_t* config) {
    if (topic == nullptr || config == nullptr) return fail(EINVAL, "cf_topic_get_config: topic or config is NULL");
    if (config->struct_size < kTopicConfigV1 || config->struct_size > sizeof(cf_topic_config_t)) {
        return fail(EINVAL, "cf_topic_get_config: set struct_size = sizeof(cf_topic_config_t)");
    }
    const cf::EngineTopic& held = *to_engine_topic(topic);
    const cf::bus::Topic& view = held.topic();
    config->max_message_bytes = view.max_message_bytes();
    config->depth = view.depth();
    config->max_publishers = view.max_publishers();
    config->max_subscribers = view.max_subscribers();
    config->overflow = static_cast<uint32_t>(view.overflow());
    config->shared = held.shared() ? 1 : 0;
    config->mode = held.mode();
    config->name = held.name().c_str();
    config->owner_uid = held.owner_uid();
    return 0;
}

int cf_topic_destroy(cf_topic_t* topic, int unlink) {
    if (topic == nullptr) return 0;
    const cf::capi::Call status_of("cf_topic_destroy");
    cf::EngineTopic* closing = to_engine_topic(topic);
    return status_of(closing->engine().close_topic(closing, unlink != 0));
}

int cf_topic_stats(cf_topic_t* topic, cf_topic_stats_t* stats) {
    if (topic == nullptr || stats == nullptr) return fail(EINVAL, "cf_topic_stats: topic or stats is NULL");
    if (stats->struct_size < kTopicStatsV1 || stats->struct_size > sizeof(cf_topic_stats_t)) {
        return fail(EINVAL, "cf_topic_stats: set struct_size = sizeof(cf_topic_stats_t)");
    }
    if (stats->subscribers == nullptr && stats->subscriber_capacity != 0) {
        return fail(EINVAL, "cf_topic_stats: subscribers is NULL with a subscriber_capacity");
    }
    const cf::capi::Call status_of("cf_topic_stats");
    cf::bus::SubscriberLag lags[cf::bus::kMaxTopicEndpoints];
    cf::bus::TopicStats counts;
    if (const int status = cf::bus::topic_stats(to_engine_topic(topic)->topic(), counts, lags,
                                                cf::bus::kMaxTopicEndpoints);
        status != 0) {
        return status_of(status);
    }
    stats->subscriber_count = counts.subscribers;
    stats->published = counts.published;
    stats->depth_in_use = counts.depth_in_use;
    stats->back_pressure_events = counts.back_pressure_events;
    for (std::uint32_t i = 0; i < counts.subscribers && i < stats->subscriber_capacity; ++i) {
        stats->subscribers[i] = cf_subscriber_lag_t{lags[i].place, 0, lags[i].lag, lags[i].lost};
    }
    return 0;
}

int cf_topic_peer_layout(const char* name, uint32_t owner_uid, cf_topic_layout_t* peer) {
    if (name == nullptr || peer == nullptr) return fail(EINVAL, "cf_topic_peer_layout: name or peer is NULL");
    if (peer->struct_size < kTopicLayoutV1 || peer->struct_size > sizeof(cf_topic_layout_t)) {
        return fail(EINVAL, "cf_topic_peer_layout: set struct_size = sizeof(cf_topic_layout_t)");
    }
    const cf::capi::Call status_of("cf_topic_peer_layout");
    cf::bus::SharedTopicLayout layout;
    if (const int status = cf::bus::SharedTopic::read_layout(name, owner_uid, layout); status != 0) {
        return status_of(status);
    }
    peer->segment = layout.segment_version;
    peer->topic = layout.topic_version;
    peer->ring = layout.ring_version;
    return 0;
}

int cf_topic_layout_local(cf_topic_layout_t* local) {
    if (local == nullptr) return fail(EINVAL, "cf_topic_layout_local: local is NULL");
    if (local->struct_size < kTopicLayoutV1 || local->struct_size > sizeof(cf_topic_layout_t)) {
        return fail(EINVAL, "cf_topic_layout_local: set struct_size = sizeof(cf_topic_layout_t)");
    }
    const cf::bus::SharedTopicLayout layout = cf::bus::SharedTopic::local_layout();
    local->segment = layout.segment_version;
    local->topic = layout.topic_version;
    local->ring = layout.ring_version;
    return 0;
}

int cf_publisher_create(cf_topic_t* topic, cf_publisher_t** publisher) {
    return create_endpoint(topic, publisher, "cf_publisher_create", [](cf::EngineTopic& target, cf_publisher& handle) {
        cf::HybridLogicalClock& clock = target.engine().clock();
        return target.shared() ? target.shared_topic().open_publisher(clock, handle.publisher)
                               : cf::bus::Publisher::open(target.topic(), clock, handle.publisher);
    });
}

int cf_publisher_destroy(cf_publisher_t* publisher) {
    return destroy_endpoint(publisher, [](cf::EngineTopic& topic, cf_publisher& handle) {
        if (topic.shared()) topic.shared_topic().close_publisher(handle.publisher);
        else handle.publisher.close();
    });
}

int cf_publisher_publish(cf_publisher_t* publisher, const void* data, uint32_t length) {
    if (publisher == nullptr || (data == nullptr && length != 0)) {
        return fail(EINVAL, "cf_publisher_publish: publisher is NULL, or data is NULL with a length");
    }
    const int status = publisher->publisher.publish(data, length);
    return status == 0 ? 0 : explain(status, "cf_publisher_publish", publisher->topic);
}

int cf_publisher_publish_batch(cf_publisher_t* publisher, const void* const* data, const uint32_t* lengths,
                               uint32_t count) {
    if (publisher == nullptr || (count != 0 && (data == nullptr || lengths == nullptr))) {
        return fail(EINVAL, "cf_publisher_publish_batch: publisher is NULL, or data or lengths is NULL with a count");
    }
    // The result is the number published, an int: a larger count (a negative int passed as uint32_t, say) could
    // not be answered, and would send the checks below through memory the caller never gave us.
    if (count > static_cast<uint32_t>(INT_MAX)) {
        return fail(EINVAL, "cf_publisher_publish_batch: count %u is above INT_MAX (a negative count?)", count);
    }
    for (uint32_t i = 0; i < count; ++i) {
        if (data[i] == nullptr && lengths[i] != 0) {
            return fail(EINVAL, "cf_publisher_publish_batch: data[%u] is NULL with a length", i);
        }
    }
    const int status = publisher->publisher.publish_batch(data, lengths, count);
    return status >= 0 ? status : explain(status, "cf_publisher_publish_batch", publisher->topic);
}

int cf_publisher_claim(cf_publisher_t* publisher, uint32_t length, void** data) {
    if (publisher == nullptr || data == nullptr) return fail(EINVAL, "cf_publisher_claim: publisher or data is NULL");
    std::byte* slot = nullptr;
    const int status = publisher->publisher.try_claim(length, slot);
    if (status != 0) return explain(status, "cf_publisher_claim", publisher->topic);
    *data = slot;
    return 0;
}

int cf_publisher_commit(cf_publisher_t* publisher, uint32_t length) {
    if (publisher == nullptr) return fail(EINVAL, "cf_publisher_commit: publisher is NULL");
    const int status = publisher->publisher.commit(length);
    return status == 0 ? 0 : explain(status, "cf_publisher_commit", publisher->topic);
}

int cf_publisher_next_sequence(const cf_publisher_t* publisher, uint64_t* sequence) {
    if (publisher == nullptr || sequence == nullptr) {
        return fail(EINVAL, "cf_publisher_next_sequence: publisher or sequence is NULL");
    }
    *sequence = publisher->publisher.next_position();
    return 0;
}

int cf_subscriber_create(cf_topic_t* topic, cf_subscriber_t** subscriber) {
    return create_endpoint(topic, subscriber, "cf_subscriber_create", [](cf::EngineTopic& target, cf_subscriber& handle) {
        const int status = target.shared() ? target.shared_topic().open_subscriber(handle.subscriber)
                                           : cf::bus::Subscriber::open(target.topic(), handle.subscriber);
        handle.subscriber.set_clock(&target.engine().clock());   // the receive rule: replies stamp after the message
        return status;
    });
}

int cf_subscriber_destroy(cf_subscriber_t* subscriber) {
    return destroy_endpoint(subscriber, [](cf::EngineTopic& topic, cf_subscriber& handle) {
        if (topic.shared()) topic.shared_topic().close_subscriber(handle.subscriber);
        else handle.subscriber.close();
    });
}

int cf_subscriber_poll(cf_subscriber_t* subscriber, cf_message_t* messages, uint32_t max) {
    if (const int status = check_poll_arguments(subscriber, messages, max, "cf_subscriber_poll"); status != 0) {
        return status;
    }
    return poll_once(subscriber, messages, max);
}

int cf_subscriber_poll_wait(cf_subscriber_t* subscriber, cf_message_t* messages, uint32_t max, uint64_t timeout_ns,
                            int idle) {
    if (const int status = check_poll_arguments(subscriber, messages, max, "cf_subscriber_poll_wait"); status != 0) {
        return status;
    }
    cf::bus::IdleKind kind{};
    switch (idle) {
        case CF_IDLE_SPIN: kind = cf::bus::IdleKind::spin; break;
        case CF_IDLE_SPIN_THEN_PAUSE: kind = cf::bus::IdleKind::spin_then_pause; break;
        case CF_IDLE_SLEEP: kind = cf::bus::IdleKind::sleep; break;
        default: return fail(EINVAL, "cf_subscriber_poll_wait: idle %d is not a CF_IDLE_* value", idle);
    }
    cf::bus::IdleStrategy strategy(kind);
    const std::uint64_t start = monotonic_ns();
    for (;;) {
        const int count = poll_once(subscriber, messages, max);
        if (count != 0 || max == 0) return count;
        // The clock is read only after an empty poll: a message that is there is never delayed by it.
        if (timeout_ns != CF_WAIT_FOREVER && monotonic_ns() - start >= timeout_ns) {
            return fail(ETIMEDOUT, "cf_subscriber_poll_wait: nothing arrived within %llu ns",
                        static_cast<unsigned long long>(timeout_ns));
        }
        strategy.idle(0);
    }
}

int cf_subscriber_release(cf_subscriber_t* subscriber) {
    if (subscriber == nullptr) return fail(EINVAL, "cf_subscriber_release: subscriber is NULL");
    subscriber->subscriber.release();
    return 0;
}

int cf_subscriber_lost(const cf_subscriber_t* subscriber, uint64_t* lost) {
    if (subscriber == nullptr || lost == nullptr) return fail(EINVAL, "cf_subscriber_lost: subscriber or lost is NULL");
    *lost = subscriber->subscriber.lost();
    return 0;
}

int cf_subscriber_corrupt(const cf_subscriber_t* subscriber, uint64_t* corrupt) {
    if (subscriber == nullptr || corrupt == nullptr) {
        return fail(EINVAL, "cf_subscriber_corrupt: subscriber or corrupt is NULL");
    }
    *corrupt = subscriber->subscriber.corrupt();
    return 0;
}

int cf_subscriber_maintain(cf_subscriber_t* subscriber) {
    if (subscriber == nullptr) return fail(EINVAL, "cf_subscriber_maintain: subscriber is NULL");
    // Released on every topic kind, so what the header promises does not depend on the kind.
    subscriber->subscriber.release();
    const cf::capi::Call status_of("cf_subscriber_maintain");
    const int status = subscriber->subscriber.recover_stalled_claim(cf::ProcessTable::monotonic_ns(), kStuckClaimNs);
    return status == -ENOTSUP ? 0 : status_of(status);
}

}  // extern "C"
