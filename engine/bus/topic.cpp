#include "engine/bus/topic.hpp"

#include <cerrno>
#include <cstring>

#include "engine/bus/broadcast_ring.hpp"
#include "engine/bus/message.hpp"
#include "engine/bus/mpsc_ring.hpp"
#include "engine/bus/spsc_ring.hpp"
#include "platform/os/last_error.hpp"

namespace cf::bus {
namespace {

using platform::fail;

RingGeometry ring_geometry(const TopicConfig& config) noexcept {
    return RingGeometry{config.depth, kMessageHeaderBytes + config.max_message_bytes};
}

BroadcastOptions broadcast_options(const TopicConfig& config) noexcept {
    BroadcastOptions options;
    options.max_readers = config.max_subscribers;
    options.policy = config.overflow;
    options.multi_writer = config.max_publishers > 1;
    return options;
}

std::size_t ring_bytes_needed(const TopicConfig& config) noexcept {
    const RingGeometry geometry = ring_geometry(config);
    switch (topic_kind(config)) {
        case RingKind::spsc: return SpscRing::bytes_needed(geometry);
        case RingKind::mpsc: return MpscRing::bytes_needed(geometry);
        case RingKind::broadcast: return BroadcastRing::bytes_needed(geometry, broadcast_options(config));
    }
    return 0;
}

bool valid_name_char(char c) noexcept {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' || c == '_' ||
           c == '-';
}

std::uint64_t fnv1a(std::uint64_t hash, std::uint64_t value) noexcept {
    for (int i = 0; i < 8; ++i) {
        hash ^= (value >> (8 * i)) & 0xff;
        hash *= 0x100000001b3ULL;
    }
    return hash;
}

}  // namespace

RingKind topic_kind(const TopicConfig& config) noexcept {
    if (config.max_subscribers > 1 || config.overflow == OverflowPolicy::lossy) return RingKind::broadcast;
    return config.max_publishers > 1 ? RingKind::mpsc : RingKind::spsc;
}

int check_topic_config(const TopicConfig& config) noexcept {
    if (config.name == nullptr || config.name[0] == '\0') return fail(EINVAL, "topic: the name is empty");
    const std::size_t length = strnlen(config.name, kMaxTopicNameLength + 1);
    if (length > kMaxTopicNameLength) {
        return fail(EINVAL, "topic: the name is longer than %zu characters", kMaxTopicNameLength);
    }
    for (std::size_t i = 0; i < length; ++i) {
        if (!valid_name_char(config.name[i])) {
            return fail(EINVAL, "topic '%s': names use only letters, digits, '.', '_' and '-'", config.name);
        }
    }
    if (config.max_message_bytes == 0 || config.max_message_bytes > kMaxTopicMessageBytes) {
        return fail(EINVAL, "topic '%s': max_message_bytes %u is outside 1..%u", config.name, config.max_message_bytes,
                    kMaxTopicMessageBytes);
    }
    if (config.depth < kMinRingCapacity || config.depth > kMaxRingCapacity || (config.depth & (config.depth - 1)) != 0) {
        return fail(EINVAL, "topic '%s': depth %u is not a power of two in %u..%u", config.name, config.depth,
                    kMinRingCapacity, kMaxRingCapacity);
    }
    if (config.max_publishers == 0 || config.max_publishers > kMaxTopicEndpoints) {
        return fail(EINVAL, "topic '%s': max_publishers %u is outside 1..%u", config.name, config.max_publishers,
                    kMaxTopicEndpoints);
    }
    if (config.max_subscribers == 0 || config.max_subscribers > kMaxTopicEndpoints) {
        return fail(EINVAL, "topic '%s': max_subscribers %u is outside 1..%u", config.name, config.max_subscribers,
                    kMaxTopicEndpoints);
    }
    if (config.overflow != OverflowPolicy::back_pressure && config.overflow != OverflowPolicy::lossy) {
        return fail(EINVAL, "topic '%s': unknown overflow policy %u", config.name,
                    static_cast<unsigned>(config.overflow));
    }
    return 0;
}

std::uint64_t topic_layout_id(const TopicConfig& config) noexcept {
    std::uint64_t hash = 0xcbf29ce484222325ULL;
    for (const std::uint64_t value :
         {std::uint64_t{kTopicLayoutVersion}, std::uint64_t{kRingLayoutVersion},
          static_cast<std::uint64_t>(topic_kind(config)), std::uint64_t{config.max_message_bytes},
          std::uint64_t{config.depth}, std::uint64_t{config.max_publishers}, std::uint64_t{config.max_subscribers},
          static_cast<std::uint64_t>(config.overflow)}) {
        hash = fnv1a(hash, value);
    }
    return hash;
}

std::size_t Topic::bytes_needed(const TopicConfig& config) noexcept {
    if (check_topic_config(config) != 0) return 0;
    const std::size_t ring = ring_bytes_needed(config);
    return ring == 0 ? 0 : kTopicRingOffset + ring;
}

int Topic::format(void* memory, std::size_t bytes, const TopicConfig& config) noexcept {
    const std::size_t needed = bytes_needed(config);
    if (needed == 0) return -EINVAL;   // message already set
    if (memory == nullptr || reinterpret_cast<std::uintptr_t>(memory) % kRingAlignment != 0) {
        return fail(EINVAL, "topic '%s': the block is null or not 64-byte aligned", config.name);
    }
    if (bytes < needed) {
        return fail(EINVAL, "topic '%s': the block has %zu bytes, the topic needs %zu", config.name, bytes, needed);
    }
    auto* header = static_cast<TopicHeader*>(memory);
    header->magic.store(0, std::memory_order_relaxed);
    std::byte* ring = static_cast<std::byte*>(memory) + kTopicRingOffset;
    const std::size_t ring_bytes = bytes - kTopicRingOffset;
    const RingGeometry geometry = ring_geometry(config);
    int status = 0;
    switch (topic_kind(config)) {
        case RingKind::spsc: status = SpscRing::format(ring, ring_bytes, geometry); break;
        case RingKind::mpsc: status = MpscRing::format(ring, ring_bytes, geometry); break;
        case RingKind::broadcast:
            status = BroadcastRing::format(ring, ring_bytes, geometry, broadcast_options(config));
            break;
    }
    if (status != 0) return status;
    header->layout_version = kTopicLayoutVersion;
    header->kind = static_cast<std::uint32_t>(topic_kind(config));
    header->max_message_bytes = config.max_message_bytes;
    header->depth = config.depth;
    header->max_publishers = config.max_publishers;
    header->max_subscribers = config.max_subscribers;
    header->overflow = static_cast<std::uint32_t>(config.overflow);
    header->reserved = 0;
    header->ring_offset = kTopicRingOffset;
    header->ring_bytes = needed - kTopicRingOffset;
    std::memset(header->name, 0, sizeof header->name);
    std::memcpy(header->name, config.name, strnlen(config.name, kMaxTopicNameLength));
    for (std::uint32_t i = 0; i < kMaxTopicEndpoints; ++i) {
        header->publisher_places[i].store(0, std::memory_order_relaxed);
        header->subscriber_places[i].store(0, std::memory_order_relaxed);
        header->publisher_full[i].store(0, std::memory_order_relaxed);
    }
    // Pairs with attach()'s acquire: whoever sees the magic sees the header and the formatted ring.
    header->magic.store(kTopicMagic, std::memory_order_release);
    return 0;
}

int Topic::attach(void* memory, std::size_t bytes, Topic& out) noexcept {
    if (memory == nullptr || reinterpret_cast<std::uintptr_t>(memory) % kRingAlignment != 0) {
        return fail(EINVAL, "topic: the block is null or not 64-byte aligned");
    }
    if (bytes < sizeof(TopicHeader)) return fail(EINVAL, "topic: a block of %zu bytes cannot hold a topic", bytes);
    auto* header = static_cast<TopicHeader*>(memory);
    if (header->magic.load(std::memory_order_acquire) != kTopicMagic) {
        return fail(EPROTO, "topic: the block holds no topic (bad magic)");
    }
    if (header->layout_version != kTopicLayoutVersion) {
        return fail(EPROTO, "topic: layout version %u, this library speaks %u", header->layout_version,
                    kTopicLayoutVersion);
    }
    // Every field is read once, into `view`, and checked there: what is checked is what is used.
    if (header->name[kMaxTopicNameLength] != '\0') return fail(EPROTO, "topic: corrupt header (name)");
    Topic view;
    std::memcpy(view.name_, header->name, kMaxTopicNameLength);   // name_[63] stays '\0'
    TopicConfig config;
    config.name = view.name_;
    config.max_message_bytes = header->max_message_bytes;
    config.depth = header->depth;
    config.max_publishers = header->max_publishers;
    config.max_subscribers = header->max_subscribers;
    config.overflow = static_cast<OverflowPolicy>(header->overflow);
    const std::uint32_t kind = header->kind;
    const std::uint64_t ring_offset = header->ring_offset;
    const std::uint64_t ring_bytes = header->ring_bytes;
    if (check_topic_config(config) != 0 || kind != static_cast<std::uint32_t>(topic_kind(config)) ||
        ring_offset != kTopicRingOffset || ring_bytes != ring_bytes_needed(config)) {
        return fail(EPROTO, "topic: corrupt header");
    }
    if (bytes < kTopicRingOffset + ring_bytes) {
        return fail(EINVAL, "topic '%s': the block has %zu bytes, the topic needs %llu", view.name_, bytes,
                    static_cast<unsigned long long>(kTopicRingOffset + ring_bytes));
    }
    view.header_ = header;
    view.kind_ = static_cast<RingKind>(kind);
    view.overflow_ = config.overflow;
    view.max_message_bytes_ = config.max_message_bytes;
    view.depth_ = config.depth;
    view.max_publishers_ = config.max_publishers;
    view.max_subscribers_ = config.max_subscribers;
    view.ring_bytes_ = static_cast<std::size_t>(ring_bytes);
    out = view;
    return 0;
}

}  // namespace cf::bus
