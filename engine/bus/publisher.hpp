// Publishing on a topic: claim a slot, write the payload in place, commit (zero copy), or publish() to copy.
// The commit writes the message header (sequence = ring position, length, the HLC stamp taken at commit) and then
// makes the slot visible with the ring's release store.
//
// One publisher = one thread at a time. A publisher has at most one claim outstanding (claim, commit, claim...),
// which keeps commits in claim order for the single-writer rings. Hot-path calls return 0 or a negative errno
// and never block: -EAGAIN when the topic is full (back-pressure: try again, or drop), -EMSGSIZE when the
// message is larger than the topic's maximum, -EBUSY when a claim is already outstanding, -EINVAL for commit()
// without a claim or with a length above what was claimed, -ESTALE (multi-writer topics) when a subscriber
// reclaimed a claim that stalled past its recovery timeout (the message is dropped). They set no error message
// (that would cost on the hot path); the C API adds one.
#pragma once

#include <atomic>
#include <cerrno>
#include <cstdint>
#include <cstring>

#include "engine/bus/message.hpp"
#include "engine/bus/topic.hpp"
#include "engine/bus/topic_endpoints.hpp"
#include "engine/bus/topic_rings.hpp"
#include "engine/time/hlc.hpp"

namespace cf::bus {

class Publisher {
public:
    // Attaches a publisher to `topic`, stamping with `clock` (which must outlive it), in a publisher place held by
    // `holder` (topic_endpoints.hpp; SharedTopic passes its process's registration). 0, -EUSERS when the topic
    // already has max_publishers publishers, or a ring attach error, with a message.
    static int open(const Topic& topic, HybridLogicalClock& clock, EndpointHolder holder, Publisher& out) noexcept;
    static int open(const Topic& topic, HybridLogicalClock& clock, Publisher& out) noexcept {
        return open(topic, clock, kInProcessHolder, out);
    }

    Publisher() noexcept = default;
    Publisher(Publisher&& other) noexcept { *this = static_cast<Publisher&&>(other); }
    Publisher& operator=(Publisher&& other) noexcept;
    Publisher(const Publisher&) = delete;
    Publisher& operator=(const Publisher&) = delete;
    ~Publisher() { close(); }

    // Detaches (the topic's publisher count drops). An outstanding claim is abandoned: on an SPSC or single-writer
    // broadcast topic it was never visible; on a multi-writer topic it is committed as an empty message.
    void close() noexcept;
    bool valid() const noexcept { return topic_.valid(); }

    // A slot for a message of up to `length` bytes, written in place before commit().
    int try_claim(std::uint32_t length, std::byte*& data) noexcept {
        if (length > max_message_bytes_) return -EMSGSIZE;
        if (claimed_ != nullptr) return -EBUSY;
        std::byte* slot = nullptr;
        switch (kind_) {
            case Kind::spsc: position_ = rings_.spsc.claim_position(); slot = rings_.spsc.try_claim(); break;
            case Kind::mpsc: slot = rings_.mpsc.try_claim(position_); break;
            case Kind::broadcast_single:
                position_ = rings_.broadcast.claim_position();
                slot = rings_.broadcast.try_claim();
                break;
            case Kind::broadcast_multi: slot = rings_.broadcast.try_claim(position_); break;
        }
        if (slot == nullptr) return -EAGAIN;
        if (kind_ == Kind::mpsc || kind_ == Kind::broadcast_multi) mark_claimed(slot);
        claimed_ = slot;
        claimed_length_ = length;
        data = slot + kMessageHeaderBytes;
        return 0;
    }

    // Stamps (from the calling thread's clock lane) and publishes the claimed slot with `length` bytes of payload
    // (<= the claimed length).
    int commit(std::uint32_t length) noexcept {
        if (claimed_ == nullptr || length > claimed_length_) return -EINVAL;
        write_header(claimed_, position_, length, clock_->this_thread_lane().now());
        return release_claim();
    }

    // Copies `length` bytes in and commits: try_claim + memcpy + commit.
    int publish(const void* data, std::uint32_t length) noexcept {
        std::byte* slot = nullptr;
        const int status = try_claim(length, slot);
        if (status != 0) return status;
        if (length != 0) std::memcpy(slot, data, length);
        return commit(length);
    }

    // Copies in and publishes up to `count` messages (data[i], lengths[i]) as one burst: on single-writer topics
    // (SPSC, single-writer broadcast) with one HLC reservation (ClockLane::now_batch: consecutive stamps) and one release
    // store for the whole burst; multi-writer topics publish them one by one. Returns how many were published, in
    // order (fewer than `count`, possibly 0, when the topic filled up), or -EMSGSIZE (some length is above the
    // maximum: nothing published) or -EBUSY (a claim is outstanding).
    int publish_batch(const void* const* data, const std::uint32_t* lengths, std::uint32_t count) noexcept {
        if (claimed_ != nullptr) return -EBUSY;
        for (std::uint32_t i = 0; i < count; ++i) {
            if (lengths[i] > max_message_bytes_) return -EMSGSIZE;
        }
        if (kind_ != Kind::spsc && kind_ != Kind::broadcast_single) return publish_each(data, lengths, count);
        const bool spsc = kind_ == Kind::spsc;
        const std::uint64_t first = spsc ? rings_.spsc.claim_position() : rings_.broadcast.claim_position();
        const std::uint32_t claimed =
            spsc ? rings_.spsc.try_claim_batch(count) : rings_.broadcast.try_claim_batch(count);
        if (claimed == 0) return 0;
        auto slot_of = [&](std::uint32_t i) {
            return spsc ? rings_.spsc.claimed_slot(i) : rings_.broadcast.claimed_slot(i);
        };
        for (std::uint32_t i = 0; i < claimed; ++i) {
            if (lengths[i] != 0) std::memcpy(slot_of(i) + kMessageHeaderBytes, data[i], lengths[i]);
        }
        // Stamped once the payloads are in (commit time), then made visible together.
        HlcStamp stamp = clock_->this_thread_lane().now_batch(claimed);
        for (std::uint32_t i = 0; i < claimed; ++i, ++stamp.word) write_header(slot_of(i), first + i, lengths[i], stamp);
        if (spsc) rings_.spsc.commit();
        else rings_.broadcast.commit();
        return static_cast<int>(claimed);
    }

    // The position the next claim gets: exact on single-writer topics (SPSC, single-writer broadcast); on
    // multi-writer topics the shared tail as it is now, which another publisher may take first.
    std::uint64_t next_position() const noexcept;

    // Publishes up to `count` empty messages marked kMessageAbandoned, which every subscriber consumes without
    // delivering: a way to move this topic's positions forward (a bridge keeps a republished topic's sequences
    // equal to the sender's by filling the sender's gaps). Takes at most one ring's worth (depth) per call, and on
    // back-pressure topics only the free room (fewer, possibly 0, while subscribers lag; lossy topics overwrite
    // unread messages like any publish). Returns how many positions it used, or -EBUSY when a claim is
    // outstanding. Single-writer topics publish them with one release store; multi-writer topics one by one (other
    // publishers' messages may fall between them).
    int publish_abandoned(std::uint32_t count) noexcept;

    std::uint32_t max_message_bytes() const noexcept { return max_message_bytes_; }
    const Topic& topic() const noexcept { return topic_; }

private:
    enum class Kind : std::uint8_t { spsc, mpsc, broadcast_single, broadcast_multi };

    int publish_each(const void* const* data, const std::uint32_t* lengths, std::uint32_t count) noexcept {
        std::uint32_t published = 0;
        for (; published < count; ++published) {
            const int status = publish(data[published], lengths[published]);
            if (status == -EAGAIN) break;
            if (status != 0) return published != 0 ? static_cast<int>(published) : status;
        }
        return static_cast<int>(published);
    }

    void mark_claimed(std::byte* slot) noexcept { write_claim_marker(slot, position_, pid_); }

    int release_claim() noexcept {
        int status = 0;
        switch (kind_) {
            case Kind::spsc: rings_.spsc.commit(); break;
            // Multi-writer topics commit with a compare-and-swap, not a store: if a subscriber took this claim for
            // a dead one (it stalled past the recovery timeout), the message is dropped instead of wedging the ring.
            case Kind::mpsc: status = rings_.mpsc.try_commit(position_) ? 0 : -ESTALE; break;
            case Kind::broadcast_single: rings_.broadcast.commit(); break;
            case Kind::broadcast_multi: status = rings_.broadcast.try_commit(position_) ? 0 : -ESTALE; break;
        }
        claimed_ = nullptr;
        return status;
    }

    Topic topic_;
    Kind kind_ = Kind::spsc;
    TopicRings rings_;
    HybridLogicalClock* clock_ = nullptr;
    std::byte* claimed_ = nullptr;
    std::uint32_t claimed_length_ = 0;
    std::uint32_t max_message_bytes_ = 0;
    std::uint64_t position_ = 0;        // of the outstanding claim
    std::uint64_t pid_ = 0;             // this process, for claim markers
    EndpointHolder holder_ = 0;         // who holds our place in the topic's ledger
    std::uint32_t place_ = 0;
};

}  // namespace cf::bus
