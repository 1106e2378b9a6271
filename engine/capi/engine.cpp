// The C API: engine, hybrid logical clock, pool.
#include <cerrno>
#include <cstddef>
#include <new>

#include "engine/capi/handles.hpp"
#include "engine/capi/status.hpp"
#include "engine/time/duration.hpp"
#include "platform/os/last_error.hpp"

using cf::platform::fail;

namespace {

// The smallest struct_size a caller may pass: the first published version of the struct.
constexpr std::size_t kEngineConfigV1 = offsetof(cf_engine_config_t, pool_exact_accounting) + sizeof(uint32_t);
constexpr std::size_t kPoolStatsV1 = offsetof(cf_pool_stats_t, fragmentation_percent) + sizeof(double);
constexpr std::size_t kPoolClassStatsV1 = offsetof(cf_pool_class_stats_t, fragmentation_percent) + sizeof(double);

using cf::capi::from_c_stamp;
using cf::capi::to_c_stamp;

}  // namespace

extern "C" {

void cf_engine_config_init(cf_engine_config_t* config) {
    if (config == nullptr) return;
    const cf::EngineConfig defaults;
    *config = cf_engine_config_t{};
    config->struct_size = sizeof(cf_engine_config_t);
    config->node_id = defaults.node_id;
    config->hlc_max_drift_ns = static_cast<uint64_t>(defaults.hlc_max_drift.femtos() / 1'000'000);
    config->pool_bytes_per_class = defaults.pool_bytes_per_class;
    config->pool_max_threads = defaults.pool_max_threads;
    config->max_topics = defaults.max_topics;
    config->prefer_hugepages = defaults.prefer_hugepages ? 1 : 0;
}

int cf_engine_create(const cf_engine_config_t* config, cf_engine_t** engine) {
    if (config == nullptr || engine == nullptr) return fail(EINVAL, "cf_engine_create: config or engine is NULL");
    if (config->struct_size < kEngineConfigV1 || config->struct_size > sizeof(cf_engine_config_t)) {
        return fail(EINVAL, "cf_engine_create: struct_size %u is not a cf_engine_config_t this library knows "
                            "(use cf_engine_config_init)", config->struct_size);
    }
    if (config->hlc_max_drift_ns == 0 || config->hlc_max_drift_ns > 3'600'000'000'000ULL) {
        return fail(EINVAL, "cf_engine_create: hlc_max_drift_ns must be 1 ns .. 1 hour");
    }
    cf::EngineConfig settings;
    settings.node_id = config->node_id;
    settings.hlc_max_drift = cf::Duration::from_nanos(static_cast<std::int64_t>(config->hlc_max_drift_ns));
    settings.pool_bytes_per_class = config->pool_bytes_per_class;
    settings.pool_max_threads = config->pool_max_threads;
    settings.max_topics = config->max_topics;
    settings.prefer_hugepages = config->prefer_hugepages != 0;
    settings.pool_exact_accounting = config->pool_exact_accounting != 0;
    const cf::capi::Call status_of("cf_engine_create");
    auto* handle = new (std::nothrow) cf_engine();
    if (handle == nullptr) return fail(ENOMEM, "cf_engine_create: out of memory");
    if (const int status = cf::Engine::create(settings, handle->engine); status != 0) {
        delete handle;
        return status_of(status);
    }
    *engine = handle;
    return 0;
}

int cf_engine_destroy(cf_engine_t* engine) {
    if (engine == nullptr) return 0;
    if (const std::uint32_t open = engine->engine->open_endpoints(); open != 0) {
        return fail(EBUSY, "cf_engine_destroy: %u publishers/subscribers (bridges' included) are still open", open);
    }
    delete engine;
    return 0;
}

const char* cf_engine_warning(const cf_engine_t* engine) {
    return engine == nullptr ? "" : engine->engine->pool_warning().c_str();
}

int cf_engine_maintain(cf_engine_t* engine, uint32_t* dead_processes) {
    if (engine == nullptr) return fail(EINVAL, "cf_engine_maintain: engine is NULL");
    const cf::capi::Call status_of("cf_engine_maintain");
    cf::bus::MaintainReport report;
    const int status = engine->engine->maintain(1'000'000'000, report);
    if (status != 0) return status_of(status);
    if (dead_processes != nullptr) *dead_processes = report.dead_processes;
    return 0;
}

int cf_hlc_now(cf_engine_t* engine, cf_hlc_t* stamp) {
    if (engine == nullptr || stamp == nullptr) return fail(EINVAL, "cf_hlc_now: engine or stamp is NULL");
    *stamp = to_c_stamp(engine->engine->clock().now());
    return 0;
}

int cf_hlc_update(cf_engine_t* engine, const cf_hlc_t* remote, cf_hlc_t* stamp) {
    if (engine == nullptr || remote == nullptr || stamp == nullptr) {
        return fail(EINVAL, "cf_hlc_update: engine, remote or stamp is NULL");
    }
    cf::HlcStamp merged;
    const int status = engine->engine->clock().update(from_c_stamp(*remote), merged);
    if (status != 0) {
        return fail(ERANGE, "cf_hlc_update: the remote stamp is further ahead of local time than the maximum drift");
    }
    *stamp = to_c_stamp(merged);
    return 0;
}

int cf_hlc_compare(const cf_hlc_t* a, const cf_hlc_t* b, int* order) {
    if (a == nullptr || b == nullptr || order == nullptr) return fail(EINVAL, "cf_hlc_compare: a, b or order is NULL");
    const cf::HlcStamp x = from_c_stamp(*a), y = from_c_stamp(*b);
    *order = x < y ? -1 : (y < x ? 1 : 0);
    return 0;
}

int cf_pool_alloc(cf_engine_t* engine, size_t bytes, void** block) {
    if (engine == nullptr || block == nullptr) return fail(EINVAL, "cf_pool_alloc: engine or block is NULL");
    cf::mem::Pool& pool = engine->engine->pool();
    if (bytes == 0 || pool.class_of(bytes) < 0) {
        return fail(EINVAL, "cf_pool_alloc: %zu bytes is outside the pool's sizes (1 .. %zu)", bytes,
                    pool.class_block_bytes(pool.class_count() - 1));
    }
    void* p = pool.allocate(bytes);
    if (p == nullptr) return fail(ENOMEM, "cf_pool_alloc: the %zu-byte class is exhausted", pool.class_block_bytes(pool.class_of(bytes)));
    *block = p;
    return 0;
}

int cf_pool_free(cf_engine_t* engine, void* block) {
    if (engine == nullptr) return fail(EINVAL, "cf_pool_free: engine is NULL");
    // Always the checked free: a C caller gets CF_EINVAL, not a corrupted free list, for a double free or a
    // pointer that is not an allocated block of this engine's pool (the message says which).
    return cf::capi::api_status(engine->engine->pool().free_checked(block));
}

int cf_pool_stats(const cf_engine_t* engine, cf_pool_stats_t* stats) {
    if (engine == nullptr || stats == nullptr) return fail(EINVAL, "cf_pool_stats: engine or stats is NULL");
    if (stats->struct_size < kPoolStatsV1 || stats->struct_size > sizeof(cf_pool_stats_t)) {
        return fail(EINVAL, "cf_pool_stats: set struct_size = sizeof(cf_pool_stats_t)");
    }
    cf::mem::PoolStats all;
    engine->engine->pool().stats(all);
    stats->hugepages = all.hugepages ? 1 : 0;
    stats->capacity_bytes = all.total.capacity_bytes;
    stats->in_use_bytes = all.total.in_use_bytes;
    stats->in_use_blocks = all.total.in_use_blocks;
    stats->high_water_blocks = all.total.high_water_blocks;
    stats->failed_allocations = all.total.failed_allocations;
    stats->fragmentation_percent = all.total.fragmentation_percent;
    return 0;
}

int cf_pool_class_count(const cf_engine_t* engine, uint32_t* count) {
    if (engine == nullptr || count == nullptr) return fail(EINVAL, "cf_pool_class_count: engine or count is NULL");
    *count = static_cast<uint32_t>(engine->engine->pool().class_count());
    return 0;
}

int cf_pool_class_stats(const cf_engine_t* engine, uint32_t class_index, cf_pool_class_stats_t* stats) {
    if (engine == nullptr || stats == nullptr) return fail(EINVAL, "cf_pool_class_stats: engine or stats is NULL");
    if (stats->struct_size < kPoolClassStatsV1 || stats->struct_size > sizeof(cf_pool_class_stats_t)) {
        return fail(EINVAL, "cf_pool_class_stats: set struct_size = sizeof(cf_pool_class_stats_t)");
    }
    const cf::mem::Pool& pool = engine->engine->pool();
    if (class_index >= static_cast<uint32_t>(pool.class_count())) {
        return fail(EINVAL, "cf_pool_class_stats: class %u, the pool has %d", class_index, pool.class_count());
    }
    cf::mem::PoolStats all;
    pool.stats(all);
    const cf::mem::ClassStats& one = all.classes[class_index];
    stats->block_bytes = one.block_bytes;
    stats->capacity_blocks = one.capacity_blocks;
    stats->in_use_blocks = one.in_use_blocks;
    stats->cached_blocks = one.cached_blocks;
    stats->high_water_blocks = one.high_water_blocks;
    stats->failed_allocations = one.failed_allocations;
    stats->requested_bytes = one.requested_bytes;
    stats->fragmentation_percent = one.fragmentation_percent;
    return 0;
}

}  // extern "C"
