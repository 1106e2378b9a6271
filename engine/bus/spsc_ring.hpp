// Single-producer single-consumer ring of fixed-size slots (Lamport), living in a caller's block of memory.
//
// The block holds two positions, each alone in its 128-byte region: the tail (next position the consumer may not
// read yet; written by the producer) and the head (next position the consumer reads; written by the consumer).
// The producer claims slots, writes the payloads in place and publishes every outstanding claim with one release
// store of the tail; the consumer reads in place and frees what it read with one release store of the head.
// Each side keeps a cached copy of the other's position and re-reads the real one (acquire) only when the ring
// looks full (producer) or holds fewer messages than asked for (consumer), so in steady state neither side
// touches the other's cache line.
//
// Threads: at most one producer and one consumer at a time, in any processes. They may share one view (the
// producer's and the consumer's private state are 128 bytes apart in it) or each attach their own. A view
// attached while the other side runs starts from the positions in the block; a producer's claims that were
// never committed die with its view.
#pragma once

#include <cassert>
#include <cstddef>
#include <cstdint>
#include <type_traits>

#include "engine/bus/ring_layout.hpp"

namespace cf::bus {

class SpscRing {
public:
    // Bytes of block a ring of this geometry needs (0 if the geometry is invalid; last_error_message() says why).
    static std::size_t bytes_needed(const RingGeometry& geometry) noexcept;

    // Writes an empty ring into `memory` (64-byte aligned, at least bytes_needed(geometry) bytes). Not while
    // anyone is attached. 0, or -EINVAL (bad geometry, null, misaligned or too small a block) with a message.
    static int format(void* memory, std::size_t bytes, const RingGeometry& geometry) noexcept;

    // Points `out` at the ring formatted in `memory` (possibly by another process, at another address) after
    // checking the header and the positions. 0, -EINVAL (null, misaligned, block smaller than the ring) or
    // -EPROTO (no ring, another kind or layout version, corrupt header or positions) with a message; `out` is
    // left alone on failure.
    static int attach(void* memory, std::size_t bytes, SpscRing& out) noexcept;

    SpscRing() noexcept = default;

    // ---- producer ----

    // The next free slot (payload pointer, 8-byte aligned, slot_bytes() usable), or nullptr when the ring is
    // full. Several claims may be outstanding; none is visible to the consumer before commit().
    std::byte* try_claim() noexcept {
        if (claim_ - cached_head_ >= slots_.capacity) {
            // Pairs with the consumer's release in release(): its reads of the slot are done before we reuse it.
            cached_head_ = control_->consumer.head.load(std::memory_order_acquire);
            if (claim_ - cached_head_ >= slots_.capacity) return nullptr;
        }
        return slot_at(claim_++);
    }

    // Claims up to `wanted` consecutive positions; returns how many (0 when full). claimed_slot(i), i < that count,
    // is the payload of the i-th of them (positions are consecutive, addresses wrap around the ring).
    std::uint32_t try_claim_batch(std::uint32_t wanted) noexcept {
        // The head comes from shared memory: a corrupt one (ahead of our claims, or a lap behind) reads as full.
        std::uint64_t free = bounded_free(claim_, cached_head_, slots_.capacity);
        if (free < wanted) {
            cached_head_ = control_->consumer.head.load(std::memory_order_acquire);   // as in try_claim
            free = bounded_free(claim_, cached_head_, slots_.capacity);
        }
        const auto count = static_cast<std::uint32_t>(free < wanted ? free : wanted);
        batch_start_ = claim_;
        claim_ += count;
        return count;
    }
    std::byte* claimed_slot(std::uint32_t i) const noexcept { return slot_at(batch_start_ + i); }

    // The position the next try_claim() hands out (producer side; the message's sequence number on a topic).
    std::uint64_t claim_position() const noexcept { return claim_; }

    // Publishes every outstanding claim with one release store (pairs with the consumer's acquire in available()).
    void commit() noexcept { control_->producer.tail.store(claim_, std::memory_order_release); }

    // ---- consumer ----

    // How many committed messages can be read now, at most `max` and at most capacity(). Re-reads the tail only
    // when the cached one shows fewer than `max`. The tail is untrusted (another process writes it): one more than
    // a ring ahead reads as a full ring, one behind the head as empty, so the count never wraps or laps.
    std::uint32_t available(std::uint32_t max) noexcept {
        std::uint64_t ready = cached_tail_ - read_;
        if (ready < max) {
            // Pairs with commit()'s release: the payloads written before it are visible.
            ready = bounded_ready(control_->producer.tail.load(std::memory_order_acquire), read_, slots_.capacity);
            cached_tail_ = read_ + ready;
        }
        return static_cast<std::uint32_t>(ready < max ? ready : max);
    }

    // The i-th unread message, in place (i < available()). Valid until release() passes it.
    const std::byte* slot(std::uint32_t i) const noexcept { return slot_at(read_ + i); }

    // Frees the first n unread messages (n <= available()) with one release store.
    void release(std::uint32_t n) noexcept {
        assert(read_ + n <= cached_tail_);
        read_ += n;
        control_->consumer.head.store(read_, std::memory_order_release);
    }

    // Calls f(const std::byte* payload) or f(payload, position) for up to `max` messages in place, in order, then
    // releases them with one store. Returns how many. If f throws, the messages of this call are not released
    // (they will be seen again).
    template <class F>
    std::uint32_t poll(std::uint32_t max, F&& f) noexcept(kNothrowPollCallback<F>) {
        const std::uint32_t count = available(max);
        for (std::uint32_t i = 0; i < count; ++i) invoke_poll_callback(f, slot_at(read_ + i), read_ + i);
        if (count != 0) release(count);
        return count;
    }

    // The position of slot(0): the consumer's own count, never read back from the block.
    std::uint64_t read_position() const noexcept { return read_; }

    // ---- either side, any view ----

    // Committed (tail) and released (head) positions as the block holds them now.
    std::uint64_t producer_position() const noexcept {
        return control_->producer.tail.load(std::memory_order_acquire);
    }
    std::uint64_t consumer_position() const noexcept {
        return control_->consumer.head.load(std::memory_order_acquire);
    }
    std::uint32_t capacity() const noexcept { return slots_.capacity; }
    std::uint32_t slot_bytes() const noexcept { return slots_.slot_bytes; }
    bool attached() const noexcept { return control_ != nullptr; }

    // The block's control words (public so tests and tools can inspect a block; not an API to write through).
    struct ProducerWords {
        std::atomic<std::uint64_t> tail;   // positions below it are committed
    };
    struct ConsumerWords {
        std::atomic<std::uint64_t> head;   // positions below it are released
    };
    struct Control {
        IndexRegion<ProducerWords> producer;
        IndexRegion<ConsumerWords> consumer;
    };
    static_assert(sizeof(Control) == 2 * kIndexSpacing);

private:
    std::byte* slot_at(std::uint64_t position) const noexcept { return slots_.at(position); }

    // Shared by both sides, read-only after attach.
    Control* control_ = nullptr;
    SlotArray slots_;

    // Producer's private state.
    alignas(kIndexSpacing) std::uint64_t claim_ = 0;   // next position to claim
    std::uint64_t cached_head_ = 0;
    std::uint64_t batch_start_ = 0;

    // Consumer's private state.
    alignas(kIndexSpacing) std::uint64_t read_ = 0;    // next position to read
    std::uint64_t cached_tail_ = 0;
};

}  // namespace cf::bus
