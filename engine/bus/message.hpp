// What a topic puts in each ring slot: a 24-byte header, then the payload (8-byte aligned: slots start on an
// 8-byte boundary and the stride is a multiple of 8, see ring_layout.hpp). The header is written by the publisher
// before the ring's release store, so a subscriber that sees the slot sees the header. 24 bytes rather than a
// cache line: a 64-byte message takes 88 bytes of ring instead of 128 (bench/: the bus-throughput scenario).
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>

#include "engine/time/hlc.hpp"

namespace cf::bus {

struct MessageHeader {
    std::uint64_t sequence;     // the ring position: consecutive per topic, gaps only where messages were lost
    std::uint64_t hlc_word;     // HlcStamp::word taken at commit; while a multi-writer claim is open, the claimer's pid
    std::uint32_t length;       // payload bytes, or kMessageAbandoned (a position consumed without a message)
    std::uint16_t hlc_node;     // HlcStamp::node and ::lane of the publisher's clock lane
    std::uint16_t hlc_lane;
};
static_assert(sizeof(MessageHeader) == 24);

inline constexpr std::uint32_t kMessageHeaderBytes = sizeof(MessageHeader);

// A multi-writer position whose publisher closed (or died) between claim and commit, or that a bridge skipped:
// committed empty, skipped by subscribers, so the positions behind it are not held up. Above any valid length.
inline constexpr std::uint32_t kMessageAbandoned = 0x8000'0000u;

// Multi-writer topics mark a slot right after claiming it: sequence = ~position and hlc_word = the claimer's pid,
// then the real header at commit. A subscriber stuck at a position can then tell a claim in flight from one whose
// process died. Those words are accessed atomically (relaxed) because the subscriber may look while the claimer
// writes.
inline std::uint64_t claimed_marker(std::uint64_t position) noexcept { return ~position; }

// The one place a header is written: a message at `position` with `length` bytes stamped `stamp`, or (with
// kMessageAbandoned as length) an empty position.
inline void write_header(std::byte* slot, std::uint64_t position, std::uint32_t length, HlcStamp stamp) noexcept {
    auto* header = reinterpret_cast<MessageHeader*>(slot);
    std::atomic_ref<std::uint64_t>(header->sequence).store(position, std::memory_order_relaxed);
    std::atomic_ref<std::uint64_t>(header->hlc_word).store(stamp.word, std::memory_order_relaxed);
    header->length = length;
    header->hlc_node = stamp.node;
    header->hlc_lane = stamp.lane;
}
inline void write_abandoned(std::byte* slot, std::uint64_t position) noexcept {
    write_header(slot, position, kMessageAbandoned, HlcStamp{});
}
inline void write_claim_marker(std::byte* slot, std::uint64_t position, std::uint64_t pid) noexcept {
    auto* header = reinterpret_cast<MessageHeader*>(slot);
    std::atomic_ref<std::uint64_t>(header->hlc_word).store(pid, std::memory_order_relaxed);
    std::atomic_ref<std::uint64_t>(header->sequence).store(claimed_marker(position), std::memory_order_relaxed);
}

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
// or a forgery), or it is neither a length nor kMessageAbandoned. Each field is loaded once, so the value checked is the value
// used; the payload stays within the slot: slot + kMessageHeaderBytes + length <= slot + slot_bytes. One
// predicted branch per message, on the header's own 24 bytes.
inline SlotVerdict read_slot(const std::byte* slot, std::uint64_t position, std::uint32_t max_message_bytes,
                             Message& out) noexcept {
    auto& header = *reinterpret_cast<MessageHeader*>(const_cast<std::byte*>(slot));
    const std::uint64_t sequence = std::atomic_ref<std::uint64_t>(header.sequence).load(std::memory_order_relaxed);
    const std::uint32_t length = std::atomic_ref<std::uint32_t>(header.length).load(std::memory_order_relaxed);
    if (length > max_message_bytes || sequence != position) [[unlikely]] {
        return length == kMessageAbandoned && sequence == position ? SlotVerdict::abandoned : SlotVerdict::corrupt;
    }
    out = Message{slot + kMessageHeaderBytes, length, position,
                  HlcStamp{std::atomic_ref<std::uint64_t>(header.hlc_word).load(std::memory_order_relaxed),
                           header.hlc_node, header.hlc_lane}};
    return SlotVerdict::message;
}

}  // namespace cf::bus
