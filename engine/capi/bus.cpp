// The C API: topics, publishers, subscribers. The hot calls (publish, claim, commit, poll, release) check their
// arguments and go straight to the ring; they write an error message only on misuse, never for CF_EAGAIN.
#include <cerrno>
#include <climits>
#include <cstddef>
#include <new>

#include "engine/bus/process_table.hpp"
#include "engine/capi/handles.hpp"
#include "engine/capi/status.hpp"
#include "platform/os/last_error.hpp"

using cf::platform::fail;

namespace {

constexpr std::size_t kTopicConfigV1 = offsetof(cf_topic_config_t, name) + sizeof(const char*);
constexpr std::size_t kTopicConfigV2 = offsetof(cf_topic_config_t, owner_uid) + sizeof(uint32_t);   // 0.4
constexpr std::uint64_t kStuckClaimNs = 1'000'000'000;   // see Subscriber::recover_stalled_claim

// Status of a failed hot call, with a message for everything but "full" and "empty".
int explain(int status, const char* call, const cf::EngineTopic* topic) {
    switch (status) {
        case -EAGAIN: return status;
        case -EMSGSIZE:
            return fail(EMSGSIZE, "%s: the message is larger than topic '%s''s max_message_bytes (%u)", call,
                        topic->name().c_str(), topic->topic().max_message_bytes());
        case -EBUSY: return fail(EBUSY, "%s: a claim is already outstanding: commit it first", call);
        case -EINVAL: return fail(EINVAL, "%s: nothing claimed, or a length above the claimed one", call);
        case -ESTALE:
            return fail(ESTALE, "%s: the claim stalled so long that the subscriber reclaimed it; the message was dropped",
                        call);
        default: return status;
    }
}

// Publishers and subscribers: a handle that remembers its topic, counted among the topic's open endpoints.
template <class Handle, class Open>
int create_endpoint(cf_topic_t* topic, Handle** out, const char* call, Open&& open) {
    if (topic == nullptr || out == nullptr) return fail(EINVAL, "%s: a handle argument is NULL", call);
    auto* handle = new (std::nothrow) Handle();
    if (handle == nullptr) return fail(ENOMEM, "%s: out of memory", call);
    cf::EngineTopic* target = to_engine_topic(topic);
    if (const int status = open(*target, *handle); status != 0) {
        delete handle;
        return cf::capi::api_status(status);
    }
    handle->topic = target;
    target->endpoints().fetch_add(1, std::memory_order_acq_rel);
    *out = handle;
    return 0;
}

template <class Handle, class Close>
int destroy_endpoint(Handle* handle, const char* call, Close&& close) {
    if (handle == nullptr) return fail(EINVAL, "%s: the handle is NULL", call);
    close(*handle->topic, *handle);
    handle->topic->endpoints().fetch_sub(1, std::memory_order_acq_rel);
    delete handle;
    return 0;
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
    cf::bus::TopicConfig settings;
    settings.name = config->name;
    settings.max_message_bytes = config->max_message_bytes;
    settings.depth = config->depth;
    settings.max_publishers = config->max_publishers;
    settings.max_subscribers = config->max_subscribers;
    settings.overflow = static_cast<cf::bus::OverflowPolicy>(config->overflow);
    // A 0.3 caller's struct ends before owner_uid: its topics are its own.
    const std::uint32_t owner = config->struct_size >= kTopicConfigV2 ? config->owner_uid : CF_OWNER_SELF;
    if (owner != CF_OWNER_SELF && config->shared == 0) {
        return fail(EINVAL, "cf_topic_create: owner_uid is for shared topics only");
    }
    cf::EngineTopic* created = nullptr;
    const int status = engine->engine->create_topic(settings, config->shared != 0, config->mode, owner, created);
    if (status != 0) return cf::capi::api_status(status);
    *topic = to_handle(created);
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

int cf_topic_close(cf_topic_t* topic, int unlink) {
    if (topic == nullptr) return fail(EINVAL, "cf_topic_close: topic is NULL");
    cf::EngineTopic* closing = to_engine_topic(topic);
    return closing->engine().close_topic(closing, unlink != 0);
}

int cf_publisher_create(cf_topic_t* topic, cf_publisher_t** publisher) {
    return create_endpoint(topic, publisher, "cf_publisher_create", [](cf::EngineTopic& target, cf_publisher& handle) {
        cf::HybridLogicalClock& clock = target.engine().clock();
        return target.shared() ? target.shared_topic().open_publisher(clock, handle.publisher)
                               : cf::bus::Publisher::open(target.topic(), clock, handle.publisher);
    });
}

int cf_publisher_destroy(cf_publisher_t* publisher) {
    return destroy_endpoint(publisher, "cf_publisher_destroy", [](cf::EngineTopic& topic, cf_publisher& handle) {
        if (topic.shared()) topic.shared_topic().close_publisher(handle.publisher);
        else handle.publisher.close();
    });
}

int cf_publish(cf_publisher_t* publisher, const void* data, uint32_t length) {
    if (publisher == nullptr || (data == nullptr && length != 0)) {
        return fail(EINVAL, "cf_publish: publisher is NULL, or data is NULL with a length");
    }
    const int status = publisher->publisher.publish(data, length);
    return status == 0 ? 0 : explain(status, "cf_publish", publisher->topic);
}

int cf_publish_batch(cf_publisher_t* publisher, const void* const* data, const uint32_t* lengths, uint32_t count) {
    if (publisher == nullptr || (count != 0 && (data == nullptr || lengths == nullptr))) {
        return fail(EINVAL, "cf_publish_batch: publisher is NULL, or data or lengths is NULL with a count");
    }
    // The result is the number published, an int: a larger count (a negative int passed as uint32_t, say) could
    // not be answered, and would send the checks below through memory the caller never gave us.
    if (count > static_cast<uint32_t>(INT_MAX)) {
        return fail(EINVAL, "cf_publish_batch: count %u is above INT_MAX (a negative count?)", count);
    }
    for (uint32_t i = 0; i < count; ++i) {
        if (data[i] == nullptr && lengths[i] != 0) {
            return fail(EINVAL, "cf_publish_batch: data[%u] is NULL with a length", i);
        }
    }
    const int status = publisher->publisher.publish_batch(data, lengths, count);
    return status >= 0 ? status : explain(status, "cf_publish_batch", publisher->topic);
}

int cf_claim(cf_publisher_t* publisher, uint32_t length, void** data) {
    if (publisher == nullptr || data == nullptr) return fail(EINVAL, "cf_claim: publisher or data is NULL");
    std::byte* slot = nullptr;
    const int status = publisher->publisher.try_claim(length, slot);
    if (status != 0) return explain(status, "cf_claim", publisher->topic);
    *data = slot;
    return 0;
}

int cf_commit(cf_publisher_t* publisher, uint32_t length) {
    if (publisher == nullptr) return fail(EINVAL, "cf_commit: publisher is NULL");
    const int status = publisher->publisher.commit(length);
    return status == 0 ? 0 : explain(status, "cf_commit", publisher->topic);
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
    return destroy_endpoint(subscriber, "cf_subscriber_destroy", [](cf::EngineTopic& topic, cf_subscriber& handle) {
        if (topic.shared()) topic.shared_topic().close_subscriber(handle.subscriber);
        else handle.subscriber.close();
    });
}

int cf_poll(cf_subscriber_t* subscriber, cf_message_t* messages, uint32_t max) {
    if (subscriber == nullptr || (messages == nullptr && max != 0)) {
        return fail(EINVAL, "cf_poll: subscriber is NULL, or messages is NULL with a max");
    }
    if (max > cf::bus::kMaxPollBatch) max = cf::bus::kMaxPollBatch;
    const std::uint32_t count = subscriber->subscriber.receive(subscriber->batch, max);
    for (std::uint32_t i = 0; i < count; ++i) {
        const cf::bus::Message& m = subscriber->batch[i];
        messages[i] = cf_message_t{m.data, m.length, m.sequence, cf_hlc_t{m.stamp.word, m.stamp.node}};
    }
    return static_cast<int>(count);
}

int cf_release(cf_subscriber_t* subscriber) {
    if (subscriber == nullptr) return fail(EINVAL, "cf_release: subscriber is NULL");
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
    const int status = subscriber->subscriber.recover_stalled_claim(cf::ProcessTable::monotonic_ns(), kStuckClaimNs);
    return status == -ENOTSUP ? 0 : status;
}

}  // extern "C"
