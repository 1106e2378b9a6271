// What a topic puts in each ring slot: a 32-byte header, then the payload (32-byte aligned, since slots are
// 64-byte aligned). The header is written by the publisher before the ring's release store, so a subscriber that
// sees the slot sees the header.
#pragma once

#include <cstddef>
#include <cstdint>

#include "engine/time/hlc.hpp"

namespace cf::bus {

struct MessageHeader {
    std::uint64_t sequence;     // the ring position: consecutive per topic, gaps only where messages were lost
    std::uint64_t hlc_word;     // HlcStamp::word taken at commit
    std::uint32_t length;       // payload bytes
    std::uint16_t hlc_node;     // HlcStamp::node of the publisher's clock
    std::uint16_t flags;        // kMessageAbandoned, else 0
    std::uint64_t claimer_pid;  // multi-writer topics: the process that claimed the slot (see Subscriber)
};
static_assert(sizeof(MessageHeader) == 32);

inline constexpr std::uint32_t kMessageHeaderBytes = sizeof(MessageHeader);

// A multi-writer position whose publisher closed (or died) between claim and commit: committed empty, skipped by
// subscribers, so the positions behind it are not held up.
inline constexpr std::uint16_t kMessageAbandoned = 1;

// Multi-writer topics mark a slot right after claiming it: sequence = ~position (and claimer_pid), then
// position at commit. A subscriber stuck at a position can then tell a claim in flight from one whose process
// died. Both words are accessed atomically (relaxed) because the subscriber may look while the claimer writes.
inline std::uint64_t claimed_marker(std::uint64_t position) noexcept { return ~position; }

// One received message, read in place: `data` points into the ring (or the subscriber's copy, for lossy topics)
// and stays valid until the subscriber releases it.
struct Message {
    const std::byte* data = nullptr;
    std::uint32_t length = 0;
    std::uint64_t sequence = 0;
    HlcStamp stamp;
};

inline Message message_from_slot(const std::byte* slot) noexcept {
    const auto* header = reinterpret_cast<const MessageHeader*>(slot);
    return Message{slot + kMessageHeaderBytes, header->length, header->sequence,
                   HlcStamp{header->hlc_word, header->hlc_node}};
}

}  // namespace cf::bus
