// A topic: a named ring of fixed-maximum-size messages, laid out in one block of memory so that the same topic
// works in one process (the block comes from a pre-faulted region) and across processes (the block is the
// payload of a shared-memory segment, mapped at a different address in each).
//
//     offset 0      TopicHeader (1664 bytes): magic, layout version, the configuration, the name, and the
//                   endpoint ledger: who holds each publisher and subscriber place (topic_endpoints.hpp), so
//                   max_publishers / max_subscribers hold across processes and a dead process's places are found
//     offset 1664   the ring block (ring_layout.hpp): slot = MessageHeader (24 bytes) + max_message_bytes
//
// The ring follows from the configuration: one publisher and one subscriber: SpscRing; several publishers and
// one subscriber: MpscRing; several subscribers, or a lossy topic: BroadcastRing (multi-writer when several
// publishers may attach). Publishers and subscribers (publisher.hpp, subscriber.hpp) each attach their own view.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>

#include "engine/bus/ring_layout.hpp"

namespace cf::bus {

inline constexpr std::size_t kMaxTopicNameLength = 63;
inline constexpr std::uint32_t kMaxTopicMessageBytes = kMaxSlotBytes - 64;
inline constexpr std::uint32_t kMaxTopicEndpoints = 64;   // publishers, and separately subscribers
static_assert(kMaxBroadcastReaders == kMaxTopicEndpoints, "subscriber place i is broadcast reader i");

struct TopicConfig {
    const char* name = nullptr;            // 1..63 characters of [A-Za-z0-9._-]
    std::uint32_t max_message_bytes = 0;   // payload bytes, 1 .. kMaxTopicMessageBytes
    std::uint32_t depth = 0;               // messages in flight: a power of two, 2 .. 2^24
    std::uint32_t max_publishers = 1;      // 1 .. kMaxTopicEndpoints
    std::uint32_t max_subscribers = 1;     // 1 .. kMaxTopicEndpoints
    OverflowPolicy overflow = OverflowPolicy::back_pressure;
};

struct alignas(64) TopicHeader {
    std::atomic<std::uint64_t> magic;      // kTopicMagic, stored last by format() (release)
    std::uint32_t layout_version;
    std::uint32_t kind;                    // RingKind of the topic's ring
    std::uint32_t max_message_bytes;
    std::uint32_t depth;
    std::uint32_t max_publishers;
    std::uint32_t max_subscribers;
    std::uint32_t overflow;                // OverflowPolicy
    std::uint32_t reserved;
    std::uint64_t ring_offset;
    std::uint64_t ring_bytes;
    char name[kMaxTopicNameLength + 1];
    // The endpoint ledger: place i is free (0) or names its holder (an EndpointOwner, topic_endpoints.hpp).
    // Taking and giving back a place is one CAS, so the ledger is right whatever instruction a process dies at;
    // the counts are derived from it, never kept beside it. Subscriber place i is broadcast reader i.
    alignas(64) std::atomic<std::uint64_t> publisher_places[kMaxTopicEndpoints];
    alignas(64) std::atomic<std::uint64_t> subscriber_places[kMaxTopicEndpoints];
    // Back-pressure events: publishes the topic refused because it was full, one counter per publisher place,
    // written only by the place's holder (one relaxed store: a kill at any instruction leaves it consistent).
    alignas(64) std::atomic<std::uint64_t> publisher_full[kMaxTopicEndpoints];
};
static_assert(sizeof(TopicHeader) == 1664);

inline constexpr std::uint64_t kTopicMagic = 0x3143494F542D4643;  // "CF-TOPC1"
inline constexpr std::uint32_t kTopicLayoutVersion = 3;   // 2: the endpoint ledger; 3: 24-byte headers, full counters
inline constexpr std::size_t kTopicRingOffset = sizeof(TopicHeader);

// Which ring a configuration gets.
RingKind topic_kind(const TopicConfig& config) noexcept;

// Checks a configuration: 0, or -EINVAL with a message naming the field.
int check_topic_config(const TopicConfig& config) noexcept;

// A 64-bit summary of everything that decides the block's layout (kind, sizes, counts, policy, versions): two
// processes agree on a shared topic only if their ids match.
std::uint64_t topic_layout_id(const TopicConfig& config) noexcept;

// A view of a formatted topic block. Cheap to copy; the block must outlive it. The configuration is copied out of
// the header when attach() validates it and read from that copy ever after: another process can rewrite the
// header at any time, so nothing that sizes or locates the ring is read from it twice.
class Topic {
public:
    // Bytes a topic of this configuration needs (0 and a message if the configuration is invalid).
    static std::size_t bytes_needed(const TopicConfig& config) noexcept;

    // Writes an empty topic into `memory` (64-byte aligned, at least bytes_needed()). 0 or -EINVAL.
    static int format(void* memory, std::size_t bytes, const TopicConfig& config) noexcept;

    // Checks and views a block formatted by format(), possibly by another process. 0, -EINVAL (null, misaligned,
    // too small) or -EPROTO (not a topic, another layout version, a corrupt header or ring) with a message.
    static int attach(void* memory, std::size_t bytes, Topic& out) noexcept;

    bool valid() const noexcept { return header_ != nullptr; }
    TopicHeader& header() const noexcept { return *header_; }
    RingKind kind() const noexcept { return kind_; }
    const char* name() const noexcept { return name_; }
    std::uint32_t max_message_bytes() const noexcept { return max_message_bytes_; }
    std::uint32_t depth() const noexcept { return depth_; }
    std::uint32_t max_publishers() const noexcept { return max_publishers_; }
    std::uint32_t max_subscribers() const noexcept { return max_subscribers_; }
    OverflowPolicy overflow() const noexcept { return overflow_; }
    void* ring_memory() const noexcept { return reinterpret_cast<std::byte*>(header_) + kTopicRingOffset; }
    std::size_t ring_bytes() const noexcept { return ring_bytes_; }

private:
    TopicHeader* header_ = nullptr;
    // Validated at attach (see above).
    RingKind kind_ = RingKind::spsc;
    OverflowPolicy overflow_ = OverflowPolicy::back_pressure;
    std::uint32_t max_message_bytes_ = 0;
    std::uint32_t depth_ = 0;
    std::uint32_t max_publishers_ = 0;
    std::uint32_t max_subscribers_ = 0;
    std::size_t ring_bytes_ = 0;
    char name_[kMaxTopicNameLength + 1] = {};
};

}  // namespace cf::bus
