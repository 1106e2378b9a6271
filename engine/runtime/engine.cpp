#include "engine/runtime/engine.hpp"

#include <cerrno>
#include <cstring>
#include <new>

#include "engine/bus/topic_endpoints.hpp"
#include "platform/os/last_error.hpp"
#include "platform/os/numa.hpp"

namespace cf {

using platform::fail;

int Engine::create(const EngineConfig& config, std::unique_ptr<Engine>& out) noexcept {
    if (config.max_topics == 0 || config.max_topics > 4096) {
        return fail(EINVAL, "engine: max_topics %u is outside 1..4096", config.max_topics);
    }
    if (config.hlc_max_drift <= Duration{}) return fail(EINVAL, "engine: hlc_max_drift must be positive");
    std::unique_ptr<Engine> engine(new (std::nothrow) Engine());
    if (!engine) return fail(ENOMEM, "engine: out of memory");
    HybridLogicalClock::Config clock_config;
    clock_config.node_id = config.node_id;
    clock_config.max_drift = config.hlc_max_drift;
    engine->clock_.reset(new (std::nothrow) HybridLogicalClock(clock_config));
    if (!engine->clock_) return fail(ENOMEM, "engine: out of memory");
    mem::PoolConfig pool_config;
    try {
        pool_config = mem::PoolConfig::powers_of_two(config.pool_bytes_per_class);
    } catch (...) {
        return fail(ENOMEM, "engine: out of memory");
    }
    pool_config.max_threads = config.pool_max_threads;
    pool_config.prefer_hugepages = config.prefer_hugepages;
    pool_config.exact_requested_bytes = config.pool_exact_accounting;
    pool_config.detect_double_free = true;   // the C API frees into this pool with cf_pool_free (always checked)
    if (const int status = mem::Pool::create(pool_config, engine->pool_); status != 0) return status;
    mem::PoolStats stats;
    engine->pool_->stats(stats);
    if (stats.small_pages_fallback) {
        engine->pool_warning_ = "no free hugepages: the pool runs on 4 KiB pages (more TLB misses)";
    }
    engine->max_topics_ = config.max_topics;
    try {
        engine->topics_.reserve(config.max_topics);
    } catch (...) {
        return fail(ENOMEM, "engine: out of memory");
    }
    out = std::move(engine);
    return 0;
}

EngineTopic* Engine::find_topic(const char* name) noexcept {
    if (name == nullptr) return nullptr;
    std::lock_guard<std::mutex> lock(topics_mutex_);
    for (const auto& topic : topics_) {
        if (topic->name_ == name) return topic.get();
    }
    return nullptr;
}

template <class Open>
int Engine::add_topic(const char* name, bool shared, std::uint32_t mode, std::uint32_t owner_uid, EngineTopic*& out,
                      Open&& open) noexcept {
    std::lock_guard<std::mutex> lock(topics_mutex_);
    for (const auto& topic : topics_) {
        if (topic->name_ == name) return fail(EEXIST, "topic '%s' already exists in this engine", name);
    }
    if (topics_.size() >= max_topics_) return fail(ENOSPC, "engine: all %u topics are in use", max_topics_);
    std::unique_ptr<EngineTopic> topic(new (std::nothrow) EngineTopic());
    if (!topic) return fail(ENOMEM, "engine: out of memory");
    try {
        topic->name_ = name;
    } catch (...) {
        return fail(ENOMEM, "engine: out of memory");
    }
    topic->shared_ = shared;
    topic->mode_ = mode;
    topic->owner_uid_ = owner_uid;
    topic->engine_ = this;
    if (const int status = open(*topic); status != 0) return status;
    out = topic.get();
    topics_.push_back(std::move(topic));   // capacity reserved at create(): no allocation, no throw
    return 0;
}

int Engine::create_topic(const bus::TopicConfig& config, bool shared, std::uint32_t mode, std::uint32_t owner_uid,
                         EngineTopic*& out) noexcept {
    const std::size_t bytes = bus::Topic::bytes_needed(config);
    if (bytes == 0) return -EINVAL;   // message set
    return add_topic(config.name, shared, mode, owner_uid, out, [&](EngineTopic& topic) noexcept {
        if (shared) return bus::SharedTopic::open(config, mode, topic.shared_topic_, owner_uid);
        int status = platform::map_region(bytes, false, topic.region_);
        if (status == 0) status = bus::Topic::format(topic.region_.base, topic.region_.bytes, config);
        if (status == 0) status = bus::Topic::attach(topic.region_.base, topic.region_.bytes, topic.topic_);
        return status;
    });
}

int Engine::open_topic(const char* name, std::uint32_t mode, std::uint32_t owner_uid, EngineTopic*& out) noexcept {
    if (name == nullptr) return fail(EINVAL, "open_topic: the name is NULL");
    return add_topic(name, true, mode, owner_uid, out, [&](EngineTopic& topic) noexcept {
        return bus::SharedTopic::open_existing(name, mode, topic.shared_topic_, owner_uid);
    });
}

std::uint32_t Engine::list_topics(EngineTopic** out, std::uint32_t capacity) noexcept {
    std::lock_guard<std::mutex> lock(topics_mutex_);
    const auto count = static_cast<std::uint32_t>(topics_.size());
    for (std::uint32_t i = 0; i < count && i < capacity; ++i) out[i] = topics_[i].get();
    return count;
}

int Engine::close_topic(EngineTopic* topic, bool unlink) noexcept {
    std::lock_guard<std::mutex> lock(topics_mutex_);
    for (auto it = topics_.begin(); it != topics_.end(); ++it) {
        if (it->get() != topic) continue;
        if (topic->open_endpoints() != 0) {
            return fail(EBUSY, "topic '%s' still has %u open publishers/subscribers", topic->name_.c_str(),
                        topic->open_endpoints());
        }
        if (topic->shared_ && unlink) (void)topic->shared_topic_.unlink();
        topics_.erase(it);
        return 0;
    }
    return fail(EINVAL, "close_topic: not a topic of this engine");
}

std::uint32_t EngineTopic::open_endpoints() const noexcept {
    const bus::Topic& view = topic();
    if (!view.valid()) return 0;
    const bus::EndpointHolder holder = shared_ ? shared_topic_.holder() : bus::kInProcessHolder;
    return bus::places_held(view.header(), bus::EndpointRole::publisher, holder) +
           bus::places_held(view.header(), bus::EndpointRole::subscriber, holder);
}

std::uint32_t Engine::open_endpoints() noexcept {
    std::lock_guard<std::mutex> lock(topics_mutex_);
    std::uint32_t open = 0;
    for (const auto& topic : topics_) open += topic->open_endpoints();
    return open;
}

int Engine::maintain(std::uint64_t heartbeat_timeout_ns, bus::MaintainReport& total) noexcept {
    total = bus::MaintainReport{};
    std::lock_guard<std::mutex> lock(topics_mutex_);
    int result = 0;
    for (const auto& topic : topics_) {
        if (!topic->shared_) continue;
        bus::MaintainReport report;
        const int status = topic->shared_topic_.maintain(heartbeat_timeout_ns, report);
        if (status != 0) result = status;
        total.dead_processes += report.dead_processes;
        total.stale_alive += report.stale_alive;
        total.publishers_freed += report.publishers_freed;
        total.subscribers_freed += report.subscribers_freed;
        total.readers_removed += report.readers_removed;
    }
    return result;
}

}  // namespace cf
