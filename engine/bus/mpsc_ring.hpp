// Multi-producer single-consumer ring of fixed-size slots (Vyukov's bounded queue), living in a caller's block.
//
// Every slot has its own sequence in its trailer. For position p in that slot:
//     sequence == p       free: producers may claim p
//     sequence == p + 1   committed (or reclaimed): the consumer may read p
//     sequence == p + capacity   released by the consumer: free for position p + capacity, the next lap
// A producer claims p with a compare-exchange of the shared tail only after seeing the slot's sequence == p, so it
// never waits on another producer's data and a full ring fails at once (back-pressure). It writes its payload and
// commits by storing p + 1 (release). The consumer reads in position order, stops at the first slot that is not
// committed yet, and frees slot p for the next lap by storing p + capacity (release).
//
// A producer that died between claim and commit blocks the consumer at its position; reclaim() marks such a
// slot committed-and-empty. A reader tells with reclaimed(i); poll() skips reclaimed slots.
//
// Threads: any number of producers (threads or processes, sharing a view or not); one consumer at a time.
#pragma once

#include <cassert>
#include <cstddef>
#include <cstdint>
#include <type_traits>

#include "engine/bus/ring_layout.hpp"

namespace cf::bus {


class MpscRing {
public:
    // As SpscRing: 0 for a bad geometry; format: 0 or -EINVAL; attach: 0, -EINVAL or -EPROTO, messages set.
    static std::size_t bytes_needed(const RingGeometry& geometry) noexcept;
    static int format(void* memory, std::size_t bytes, const RingGeometry& geometry) noexcept;
    static int attach(void* memory, std::size_t bytes, MpscRing& out) noexcept;

    MpscRing() noexcept = default;

    // ---- producers (any thread) ----

    // Claims the next position: its payload (8-byte aligned, slot_bytes() usable) with the position in
    // `position`, or nullptr when the ring is full. Lock-free: it only retries when another producer won the tail.
    std::byte* try_claim(std::uint64_t& position) noexcept {
        std::uint64_t pos = control_->producers.tail.load(std::memory_order_relaxed);
        for (;;) {
            // Pairs with the consumer's release in release(): its reads of the previous lap are done.
            const std::uint64_t sequence = trailer_at(pos).sequence.load(std::memory_order_acquire);
            const auto lag = static_cast<std::int64_t>(sequence - pos);
            if (lag == 0) {
                // Relaxed is enough: the slot was acquired above, the payload is published by commit().
                if (control_->producers.tail.compare_exchange_weak(pos, pos + 1, std::memory_order_relaxed,
                                                                   std::memory_order_relaxed)) {
                    position = pos;
                    return slot_at(pos);
                }
            } else if (lag < 0) {
                return nullptr;   // the slot still holds the previous lap's message: full
            } else {
                if (!caught_up(pos)) return nullptr;   // pos was taken: catch up
            }
        }
    }

    // Claims up to `wanted` consecutive positions at once (first one in `first`); returns how many, 0 when full.
    // Commit each position with commit(); their payloads are claimed_slot(first + i).
    std::uint32_t try_claim_batch(std::uint32_t wanted, std::uint64_t& first) noexcept {
        if (wanted > slots_.capacity) wanted = slots_.capacity;
        if (wanted == 0) return 0;
        std::uint64_t pos = control_->producers.tail.load(std::memory_order_relaxed);
        for (;;) {
            std::uint32_t count = 0;
            std::uint64_t sequence = 0;
            while (count < wanted) {
                sequence = trailer_at(pos + count).sequence.load(std::memory_order_acquire);   // as in try_claim
                if (sequence != pos + count) break;
                ++count;
            }
            if (count == 0) {
                if (static_cast<std::int64_t>(sequence - pos) < 0) return 0;   // full
                if (!caught_up(pos)) return 0;
                continue;
            }
            if (control_->producers.tail.compare_exchange_weak(pos, pos + count, std::memory_order_relaxed,
                                                               std::memory_order_relaxed)) {
                first = pos;
                return count;
            }
        }
    }
    std::byte* claimed_slot(std::uint64_t position) const noexcept { return slot_at(position); }

    // Publishes one claimed position (release; pairs with the consumer's acquire in available()). Positions may
    // be committed in any order; the consumer still reads them in position order.
    void commit(std::uint64_t position) noexcept {
        trailer_at(position).sequence.store(position + 1, std::memory_order_release);
    }

    // commit() for rings whose consumer may reclaim a claim that is only slow, not dead (a time-out): a
    // compare-exchange from position to position + 1 (release), so a commit that comes after a successful
    // reclaim fails (false: the message is dropped) instead of storing position + 1 over a slot the consumer may
    // have freed, which would wedge the ring. The payload such a late producer wrote may still have landed in
    // the slot's next lap: reclaiming a live producer is never entirely harmless.
    [[nodiscard]] bool try_commit(std::uint64_t position) noexcept {
        std::uint64_t expected = position;
        return trailer_at(position).sequence.compare_exchange_strong(expected, position + 1, std::memory_order_release,
                                                                    std::memory_order_relaxed);
    }

    // ---- consumer (one thread) ----

    // How many messages can be read now in position order, at most `max` and at most capacity(): stops at the
    // first position that is claimed but not committed. Reclaimed positions count (see reclaimed()). The positions
    // are the consumer's own; only the slots' sequences come from the block, each compared for equality.
    std::uint32_t available(std::uint32_t max) noexcept {
        // A sequence rewritten while we scan cannot make us lap the ring.
        if (max > slots_.capacity) max = slots_.capacity;
        while (ready_ - read_ < max) {
            // Pairs with commit()'s (or reclaim()'s) release: the payload is complete.
            if (trailer_at(ready_).sequence.load(std::memory_order_acquire) != ready_ + 1) break;
            ++ready_;
        }
        const std::uint64_t ready = ready_ - read_;
        return static_cast<std::uint32_t>(ready < max ? ready : max);
    }

    // The i-th unread message in place (i < available()), valid until release() passes it.
    const std::byte* slot(std::uint32_t i) const noexcept { return slot_at(read_ + i); }

    // True if the i-th unread position was reclaimed (no payload: its producer never committed it).
    bool reclaimed(std::uint32_t i) const noexcept {
        return (trailer_at(read_ + i).flags.load(std::memory_order_relaxed) & kSlotReclaimed) != 0;
    }

    // Frees the first n unread positions (n <= available()) for the producers' next lap: one release store per
    // slot (pairs with try_claim's acquire), then the head for diagnostics and later attaches.
    void release(std::uint32_t n) noexcept {
        assert(read_ + n <= ready_);
        for (std::uint32_t i = 0; i < n; ++i) {
            SlotTrailer& trailer = trailer_at(read_ + i);
            trailer.flags.store(0, std::memory_order_relaxed);
            trailer.sequence.store(read_ + i + slots_.capacity, std::memory_order_release);
        }
        read_ += n;
        control_->consumer.head.store(read_, std::memory_order_release);
    }

    // Calls f(const std::byte* payload) or f(payload, position) in order for the written messages among the next
    // `max` positions (reclaimed ones are skipped), then releases those positions. Returns how many positions it
    // consumed.
    template <class F>
    std::uint32_t poll(std::uint32_t max, F&& f) noexcept(kNothrowPollCallback<F>) {
        const std::uint32_t count = available(max);
        for (std::uint32_t i = 0; i < count; ++i) {
            if (!reclaimed(i)) invoke_poll_callback(f, slot_at(read_ + i), read_ + i);
        }
        if (count != 0) release(count);
        return count;
    }

    // Marks a claimed-but-never-committed position as committed-and-empty, for a producer that died between claim
    // and commit: a compare-exchange of the slot's sequence from position to position + 1, so it either wins and
    // the slot reads as reclaimed, or loses to a commit that landed first and the message is delivered as usual.
    // Only for a claimant that can no longer commit (its process is gone), unless producers commit with
    // try_commit(): a commit() after a successful reclaim stores position + 1 over a slot the consumer may
    // already have freed, and the ring stops.
    // Consumer side (call it from the consumer's thread). 0; -EALREADY if the producer committed it after all;
    // -EINVAL if the position is not claimed and unread; -EPROTO if the slot's sequence is corrupt.
    int reclaim(std::uint64_t position) noexcept;

    // The position of slot(0): the consumer's own count, never read back from the block.
    std::uint64_t read_position() const noexcept { return read_; }

    // ---- any view ----
    std::uint64_t claimed_position() const noexcept {   // the tail: positions below it have been claimed
        return control_->producers.tail.load(std::memory_order_acquire);
    }
    std::uint64_t consumer_position() const noexcept {   // positions below it have been released
        return control_->consumer.head.load(std::memory_order_acquire);
    }
    std::uint64_t reclaimed_count() const noexcept {
        return control_->consumer.reclaimed.load(std::memory_order_relaxed);
    }
    std::uint32_t capacity() const noexcept { return slots_.capacity; }
    std::uint32_t slot_bytes() const noexcept { return slots_.slot_bytes; }
    bool attached() const noexcept { return control_ != nullptr; }

    struct ProducerWords {
        std::atomic<std::uint64_t> tail;        // next position to claim (compare-exchanged by producers)
    };
    struct ConsumerWords {
        std::atomic<std::uint64_t> head;        // next position to read
        std::atomic<std::uint64_t> reclaimed;   // positions reclaimed so far
    };
    struct Control {
        IndexRegion<ProducerWords> producers;
        IndexRegion<ConsumerWords> consumer;
    };
    static_assert(sizeof(Control) == 2 * kIndexSpacing);

private:
    // A producer found `pos` taken by another: moves it to the shared tail, which that producer advanced before
    // it wrote the slot. A tail that has not moved past `pos` is corrupt (rewritten in the block): false, and the
    // claim fails as on a full ring instead of retrying for ever.
    bool caught_up(std::uint64_t& pos) const noexcept {
        const std::uint64_t tail = control_->producers.tail.load(std::memory_order_relaxed);
        if (tail <= pos) return false;
        pos = tail;
        return true;
    }

    std::byte* slot_at(std::uint64_t position) const noexcept { return slots_.at(position); }
    SlotTrailer& trailer_at(std::uint64_t position) const noexcept { return slots_.trailer<SlotTrailer>(position); }

    // Shared by all sides, read-only after attach.
    Control* control_ = nullptr;
    SlotArray slots_;

    // Consumer's private state.
    alignas(kIndexSpacing) std::uint64_t read_ = 0;   // next position to read
    std::uint64_t ready_ = 0;                         // positions below it are known to be committed
};

}  // namespace cf::bus
