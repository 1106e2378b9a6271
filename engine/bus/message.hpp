// What a topic puts in each ring slot: a 32-byte header, then the payload (32-byte aligned, since slots are
// 64-byte aligned). The header is written by the publisher before the ring's release store, so a subscriber that
// sees the slot sees the header.
#pragma once

#include <atomic>
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

// What a subscriber makes of a slot: a message, an abandoned position (consumed, never delivered), or a corrupt
// header (consumed, never delivered, counted). The slot may sit in shared memory that another process can write
// at any time, so it is untrusted input.
enum class SlotVerdict : std::uint8_t { message, abandoned, corrupt };

// Reads the header of the slot at ring position `position` (the position the subscriber's ring view indexed, not
// one read from the slot) against the subscriber's own max_message_bytes, taken at open. A slot is corrupt when its
// length exceeds that maximum (its payload would run past the slot), its sequence is not `position` (a stale lap
// or a forgery), or its flags carry unknown bits. Each field is loaded once, so the value checked is the value
// used; the payload stays within the slot: slot + kMessageHeaderBytes + length <= slot + slot_bytes. One
// predicted branch per message, on the header's own 32 bytes.
inline SlotVerdict read_slot(const std::byte* slot, std::uint64_t position, std::uint32_t max_message_bytes,
                             Message& out) noexcept {
    auto& header = *reinterpret_cast<MessageHeader*>(const_cast<std::byte*>(slot));
    const std::uint64_t sequence = std::atomic_ref<std::uint64_t>(header.sequence).load(std::memory_order_relaxed);
    const std::uint32_t length = std::atomic_ref<std::uint32_t>(header.length).load(std::memory_order_relaxed);
    const std::uint16_t flags = std::atomic_ref<std::uint16_t>(header.flags).load(std::memory_order_relaxed);
    if (length > max_message_bytes || sequence != position || (flags & ~kMessageAbandoned) != 0) [[unlikely]] {
        return SlotVerdict::corrupt;
    }
    if (flags != 0) return SlotVerdict::abandoned;
    out = Message{slot + kMessageHeaderBytes, length, position, HlcStamp{header.hlc_word, header.hlc_node}};
    return SlotVerdict::message;
}

}  // namespace cf::bus
