// The C API: bridges between engines (runtime/bridge.hpp).
#include <cerrno>
#include <cstddef>
#include <cstdio>
#include <cstring>
#include <new>

#include "engine/capi/counts.hpp"
#include "engine/capi/handles.hpp"
#include "engine/capi/status.hpp"
#include "engine/runtime/bridge.hpp"
#include "platform/os/last_error.hpp"

using cf::platform::fail;

struct cf_bridge {
    std::unique_ptr<cf::Bridge> bridge;
    cf_instant_t (*now)(void* context) = nullptr;   // the caller's time source, called through c_time_source
    void* now_context = nullptr;
};

namespace {

// The smallest struct_size a caller may pass: the first published version of each struct.
constexpr std::size_t kBridgeConfigV1 = offsetof(cf_bridge_config_t, now_context) + sizeof(void*);
constexpr std::size_t kTopicStatsV1 = offsetof(cf_bridge_topic_stats_t, source_lost) + sizeof(uint64_t);
constexpr std::size_t kBridgeStatsV1 = offsetof(cf_bridge_stats_t, rejected_corrupt) + sizeof(uint64_t);
// The second versions: sequence limits, probe age and keys; their counters. A struct_size from V1 up to V2 means V1.
constexpr std::size_t kBridgeConfigV2 = offsetof(cf_bridge_config_t, next_key) + CF_BRIDGE_KEY_BYTES;
constexpr std::size_t kTopicStatsV2 = offsetof(cf_bridge_topic_stats_t, sequence_resyncs) + sizeof(uint64_t);
constexpr std::size_t kBridgeStatsV2 = offsetof(cf_bridge_stats_t, probes_deferred) + sizeof(uint64_t);

// A key of the C config into a BridgeKey: length 0 leaves it unset.
int to_key(const char* what, uint32_t length, uint32_t id, const uint8_t (&bytes)[32], cf::BridgeKey& out) noexcept {
    if (length == 0) return 0;
    if (length != CF_BRIDGE_KEY_BYTES || id > 255) {
        return fail(EINVAL, "cf_bridge_create: %s must be %u bytes (given %u) with an id 0..255 (given %u)", what,
                    CF_BRIDGE_KEY_BYTES, length, id);
    }
    out.set = true;
    out.id = static_cast<std::uint8_t>(id);
    std::memcpy(out.bytes, bytes, sizeof out.bytes);
    return 0;
}

constexpr uint32_t kMinBuffers = 1024;      // 256 stay posted for receiving; sends need the rest
constexpr uint32_t kMaxBuffers = 1u << 20;
constexpr uint32_t kRxPosted = 256;
constexpr uint32_t kMinBufferBytes = 2048;

cf::Instant c_time_source(void* context) noexcept {
    const auto* handle = static_cast<const cf_bridge*>(context);
    const cf_instant_t now = handle->now(handle->now_context);
    return cf::Instant::from_femtos(cf::Femtos{now.seconds} * cf::time_detail::kFemtosPerSecond + now.femtoseconds);
}

// Prefixes the message a parser left with the C function's name. The message is copied first: fail() formats into
// the same thread-local buffer last_error_message() points at.
int fail_with_prefix(const char* prefix) noexcept {
    char detail[256];
    std::snprintf(detail, sizeof detail, "%s", cf::platform::last_error_message());
    return fail(EINVAL, "%s: %s", prefix, detail);
}

// Femtoseconds to nanoseconds, rounded to nearest (ties away from zero).
int64_t nearest_ns(cf::Femtos fs) noexcept {
    constexpr cf::Femtos kPerNano = 1'000'000;
    const cf::Femtos half = kPerNano / 2;
    return static_cast<int64_t>(fs >= 0 ? (fs + half) / kPerNano : -((-fs + half) / kPerNano));
}

}  // namespace

extern "C" {

void cf_bridge_config_init(cf_bridge_config_t* config) {
    if (config == nullptr) return;
    const cf::BridgeConfig defaults;
    *config = cf_bridge_config_t{};
    config->struct_size = sizeof(cf_bridge_config_t);
    config->max_datagram_bytes = defaults.max_datagram_bytes;
    config->probe_interval_ns = static_cast<uint64_t>(defaults.probe_interval.femtos() / 1'000'000);
    config->max_topics = defaults.max_topics;
    config->buffers = defaults.udp.pool.count;
    config->max_sequence_jump = defaults.max_sequence_jump;
    config->max_probe_age_ns = static_cast<uint64_t>(defaults.max_probe_age.femtos() / 1'000'000);
}

int cf_bridge_create(cf_engine_t* engine, const cf_bridge_config_t* config, cf_bridge_t** bridge) {
    if (engine == nullptr || config == nullptr || bridge == nullptr) {
        return fail(EINVAL, "cf_bridge_create: engine, config or bridge is NULL");
    }
    if (config->struct_size < kBridgeConfigV1 || config->struct_size > sizeof(cf_bridge_config_t)) {
        return fail(EINVAL, "cf_bridge_create: struct_size %u is not a cf_bridge_config_t this library knows "
                            "(use cf_bridge_config_init)", config->struct_size);
    }
    if (config->buffers < kMinBuffers || config->buffers > kMaxBuffers) {
        return fail(EINVAL, "cf_bridge_create: buffers %u is outside %u..%u", config->buffers, kMinBuffers,
                    kMaxBuffers);
    }
    if (config->probe_interval_ns > 3'600'000'000'000ULL) {
        return fail(EINVAL, "cf_bridge_create: probe_interval_ns must be at most 1 hour");
    }
    cf::BridgeConfig settings;
    if (const int status = cf::drivers::parse_driver_kind(config->driver != nullptr ? config->driver : "auto",
                                                          settings.driver);
        status != 0) {
        return fail_with_prefix("cf_bridge_create");
    }
    if (cf::drivers::PeerAddress::parse(config->bind != nullptr ? config->bind : "0.0.0.0:0", settings.udp.bind) != 0) {
        return fail_with_prefix("cf_bridge_create: bind");
    }
    if (config->peer != nullptr && cf::drivers::PeerAddress::parse(config->peer, settings.peer) != 0) {
        return fail_with_prefix("cf_bridge_create: peer");
    }
    settings.udp.pool.count = config->buffers;
    settings.udp.pool.buffer_bytes =
        config->max_datagram_bytes > kMinBufferBytes ? config->max_datagram_bytes : kMinBufferBytes;
    settings.udp.rx_posted = kRxPosted;
    settings.max_datagram_bytes = config->max_datagram_bytes;
    settings.max_topics = config->max_topics;
    settings.probe_interval = cf::Duration::from_nanos(static_cast<int64_t>(config->probe_interval_ns));
    if (config->struct_size >= kBridgeConfigV2) {
        settings.max_sequence_jump = config->max_sequence_jump;
        if (config->max_probe_age_ns == 0 || config->max_probe_age_ns > 3'600'000'000'000ULL) {
            return fail(EINVAL, "cf_bridge_create: max_probe_age_ns must be 1 ns .. 1 hour");
        }
        settings.max_probe_age = cf::Duration::from_nanos(static_cast<int64_t>(config->max_probe_age_ns));
        if (to_key("key", config->key_length, config->key_id, config->key, settings.key) != 0 ||
            to_key("next_key", config->next_key_length, config->next_key_id, config->next_key, settings.next_key) != 0) {
            return -EINVAL;
        }
    }
    auto* handle = new (std::nothrow) cf_bridge();
    if (handle == nullptr) return fail(ENOMEM, "cf_bridge_create: out of memory");
    if (config->now != nullptr) {
        handle->now = config->now;
        handle->now_context = config->now_context;
        settings.now = c_time_source;
        settings.now_context = handle;   // the handle outlives the bridge it holds
    }
    const cf::capi::Call status_of("cf_bridge_create");
    if (const int status = cf::Bridge::create(*engine->engine, settings, handle->bridge); status != 0) {
        delete handle;
        return status_of(status);   // a socket's EADDRINUSE, getrandom's failure, ...
    }
    *bridge = handle;
    return 0;
}

int cf_bridge_destroy(cf_bridge_t* bridge) {
    if (bridge == nullptr) return 0;
    delete bridge;
    return 0;
}

int cf_bridge_set_peer(cf_bridge_t* bridge, const char* peer) {
    if (bridge == nullptr || peer == nullptr) return fail(EINVAL, "cf_bridge_set_peer: bridge or peer is NULL");
    cf::drivers::PeerAddress address;
    if (cf::drivers::PeerAddress::parse(peer, address) != 0) {
        return fail_with_prefix("cf_bridge_set_peer");
    }
    const cf::capi::Call status_of("cf_bridge_set_peer");
    return status_of(bridge->bridge->set_peer(address));
}

int cf_bridge_set_next_key(cf_bridge_t* bridge, uint32_t key_id, const uint8_t* key, size_t key_length) {
    if (bridge == nullptr || key == nullptr) return fail(EINVAL, "cf_bridge_set_next_key: bridge or key is NULL");
    if (key_length != CF_BRIDGE_KEY_BYTES || key_id > 255) {
        return fail(EINVAL, "cf_bridge_set_next_key: the key must be %u bytes (given %zu) with an id 0..255 (given %u)",
                    CF_BRIDGE_KEY_BYTES, key_length, key_id);
    }
    std::uint8_t bytes[cf::wire::kMacKeyBytes];
    std::memcpy(bytes, key, sizeof bytes);
    const cf::capi::Call status_of("cf_bridge_set_next_key");
    const int status = bridge->bridge->set_next_key(static_cast<std::uint8_t>(key_id), bytes);
    std::memset(bytes, 0, sizeof bytes);
    return status_of(status);
}

int cf_bridge_rotate_key(cf_bridge_t* bridge) {
    if (bridge == nullptr) return fail(EINVAL, "cf_bridge_rotate_key: bridge is NULL");
    const cf::capi::Call status_of("cf_bridge_rotate_key");
    return status_of(bridge->bridge->rotate_key());
}

int cf_bridge_forward(cf_bridge_t* bridge, cf_topic_t* topic, uint32_t topic_id) {
    if (bridge == nullptr || topic == nullptr) return fail(EINVAL, "cf_bridge_forward: bridge or topic is NULL");
    const cf::capi::Call status_of("cf_bridge_forward");
    return status_of(bridge->bridge->forward(to_engine_topic(topic), topic_id));
}

int cf_bridge_republish(cf_bridge_t* bridge, uint32_t topic_id, cf_topic_t* topic) {
    if (bridge == nullptr || topic == nullptr) return fail(EINVAL, "cf_bridge_republish: bridge or topic is NULL");
    const cf::capi::Call status_of("cf_bridge_republish");
    return status_of(bridge->bridge->republish(topic_id, to_engine_topic(topic)));
}

int cf_bridge_poll(cf_bridge_t* bridge) {
    if (bridge == nullptr) return fail(EINVAL, "cf_bridge_poll: bridge is NULL");
    const cf::capi::Call status_of("cf_bridge_poll");
    return status_of(bridge->bridge->poll());
}

int cf_bridge_local_address(const cf_bridge_t* bridge, char* buffer, size_t size) {
    if (bridge == nullptr || buffer == nullptr) {
        return fail(EINVAL, "cf_bridge_local_address: bridge or buffer is NULL");
    }
    if (const int status = cf::capi::check_count("cf_bridge_local_address", "size", size, 1); status != 0) {
        return status;
    }
    char text[64];
    bridge->bridge->local_address().format(text, sizeof text);
    const std::size_t length = std::strlen(text);
    if (length >= size) {
        return fail(EINVAL, "cf_bridge_local_address: '%s' needs %zu bytes, the buffer has %zu", text, length + 1,
                    size);
    }
    std::memcpy(buffer, text, length + 1);
    return 0;
}

int cf_bridge_topic_stats(const cf_bridge_t* bridge, uint32_t topic_id, cf_bridge_topic_stats_t* stats) {
    if (bridge == nullptr || stats == nullptr) return fail(EINVAL, "cf_bridge_topic_stats: bridge or stats is NULL");
    if (stats->struct_size < kTopicStatsV1 || stats->struct_size > sizeof(cf_bridge_topic_stats_t)) {
        return fail(EINVAL, "cf_bridge_topic_stats: set struct_size = sizeof(cf_bridge_topic_stats_t)");
    }
    const cf::capi::Call status_of("cf_bridge_topic_stats");
    cf::BridgeTopicStats all;
    if (const int status = bridge->bridge->topic_stats(topic_id, all); status != 0) return status_of(status);
    stats->received = all.received;
    stats->republished = all.republished;
    stats->gaps = all.gaps;
    stats->duplicates = all.duplicates;
    stats->late = all.late;
    stats->session_resets = all.session_resets;
    stats->publish_full = all.publish_full;
    stats->too_large = all.too_large;
    stats->hlc_rejected = all.hlc_rejected;
    stats->misaligned = all.misaligned;
    stats->filled = all.filled;
    stats->forwarded = all.forwarded;
    stats->forward_too_large = all.forward_too_large;
    stats->forward_dropped = all.forward_dropped;
    stats->source_lost = all.source_lost;
    if (stats->struct_size >= kTopicStatsV2) {
        stats->sequence_rejected = all.sequence_rejected;
        stats->sequence_resyncs = all.sequence_resyncs;
    }
    return 0;
}

int cf_bridge_stats(const cf_bridge_t* bridge, cf_bridge_stats_t* stats) {
    if (bridge == nullptr || stats == nullptr) return fail(EINVAL, "cf_bridge_stats: bridge or stats is NULL");
    if (stats->struct_size < kBridgeStatsV1 || stats->struct_size > sizeof(cf_bridge_stats_t)) {
        return fail(EINVAL, "cf_bridge_stats: set struct_size = sizeof(cf_bridge_stats_t)");
    }
    const cf::BridgeStats& all = bridge->bridge->stats();
    using cf::wire::FrameReject;
    stats->datagrams_in = all.datagrams_in;
    stats->datagrams_out = all.datagrams_out;
    stats->frames_in = all.frames_in;
    stats->frames_out = all.frames_out;
    stats->foreign_datagrams = all.foreign_datagrams;
    stats->unknown_topic = all.unknown_topic;
    stats->rx_errors = all.rx_errors;
    stats->tx_errors = all.tx_errors;
    stats->probes_sent = all.probes_sent;
    stats->probes_answered = all.probes_answered;
    stats->probes_rejected = all.probes_rejected;
    stats->answers_sent = all.answers_sent;
    stats->control_rejected = all.control_rejected;
    stats->control_dropped = all.control_dropped;
    stats->rejected_datagrams = all.wire.rejected_datagrams;
    stats->rejected_truncated = all.wire.rejected_for(FrameReject::truncated);
    stats->rejected_oversized = all.wire.rejected_for(FrameReject::oversized);
    stats->rejected_bad_magic = all.wire.rejected_for(FrameReject::bad_magic);
    stats->rejected_bad_version = all.wire.rejected_for(FrameReject::bad_version);
    stats->rejected_bad_flags = all.wire.rejected_for(FrameReject::bad_flags);
    stats->rejected_bad_reserved = all.wire.rejected_for(FrameReject::bad_reserved);
    stats->rejected_bad_padding = all.wire.rejected_for(FrameReject::bad_padding);
    stats->rejected_corrupt = all.wire.rejected_for(FrameReject::corrupt);
    if (stats->struct_size >= kBridgeStatsV2) {
        stats->answers_unsolicited = all.answers_unsolicited;
        stats->answers_stale = all.answers_stale;
        stats->auth_failed = all.auth_failed;
        stats->auth_unknown_key = all.auth_unknown_key;
        stats->auth_missing = all.auth_missing;
        stats->auth_unexpected = all.auth_unexpected;
        stats->probes_deferred = all.probes_deferred;
    }
    return 0;
}

int cf_bridge_clock_offset(const cf_bridge_t* bridge, int64_t* offset_ns, uint64_t* bound_ns, double* drift_ppm) {
    if (bridge == nullptr || offset_ns == nullptr || bound_ns == nullptr) {
        return fail(EINVAL, "cf_bridge_clock_offset: bridge, offset_ns or bound_ns is NULL");
    }
    const cf::capi::Call status_of("cf_bridge_clock_offset");
    cf::OffsetEstimator::Estimate estimate;
    if (const int status = bridge->bridge->clock_offset(estimate); status != 0) return status_of(status);
    // The offset rounds by at most half a nanosecond and the bound rounds up, plus one: |true - offset| <= bound
    // still holds in whole nanoseconds.
    *offset_ns = nearest_ns(estimate.offset.femtos());
    *bound_ns = static_cast<uint64_t>((estimate.bound.femtos() + 999'999) / 1'000'000) + 1;
    if (drift_ppm != nullptr) *drift_ppm = estimate.drift_ppm;
    return 0;
}

}  // extern "C"
