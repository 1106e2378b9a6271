// Broadcast ring (Disruptor-style sequences): writers publish fixed-size messages once, up to max_readers readers
// each see every message (or count what they missed), all in a caller's block of memory.
//
// Four modes, chosen at format() and fixed for the block's life: one writer or several, back-pressure or lossy.
// BroadcastRing is what every mode shares (layout, format/attach, reader administration, positions); a view of
// it can administer a ring of any mode but not read or write messages. BroadcastRingOf<MultiWriter, Lossy> adds
// the hot paths of one mode, so they test no mode flag and a call the mode does not have (commit() on a
// multi-writer ring, poll() on a lossy one) does not compile; its attach refuses a block of another mode.
//
// Writers. One writer: the same claim/commit API as SpscRing: it claims positions privately and publishes them
// with one release store of the shared cursor. Several writers, from any threads or processes: they claim
// positions with a compare-exchange of a shared tail, and publish each position on its own through the slot's
// sequence (Disruptor's MultiProducerSequencer): readers consume in position order and stop at the first position
// not yet published, so they never see a half-written message nor one out of order. A multi-writer claim also
// checks that the same slot's previous lap was published, so a stalled writer is never lapped by the others (its
// slot returns nullptr instead, one lap later).
//
// Readers. Each has a 128-byte region in the block: its cursor (next position to read), its state (free, joining,
// active), its lost counter and a private cached copy of the writer's position. add_reader() takes a free region
// and starts the reader at the writer's current position; remove_reader() frees it.
//
// Overflow policies:
//  - back_pressure: a writer may not reuse a slot until every active reader released it. It gates on the lowest
//    active reader cursor, caches that, and rescans the readers only when the ring looks full; a full ring makes
//    try_claim() return nullptr. Readers read in place (available/slot/release/poll).
//  - lossy: writers never wait for readers. Each slot's sequence is a seqlock: for position p it reads 2p + 1 while
//    p is being written and 2p + 2 once p is published (0: never written). A reader copies a slot to the caller's
//    scratch, re-checks the sequence and delivers only intact copies (poll_copy). A reader that fell a lap behind
//    jumps to the oldest position that may still be intact and adds every position it skipped, and every copy
//    that turned out torn, to its lost counter: once a reader has caught up with a quiet writer,
//    delivered + lost == positions published since it joined, exactly.
//
// A reader that joins: it sets its cursor to the writer position, becomes active, then (after a seq_cst fence that
// pairs with the one in the writers' gate scan) reads the writer position again and starts there. Either a writer's
// scan sees it active, or it starts at or past every position that scan let the writer reuse.
#pragma once

#include <cassert>
#include <cstddef>
#include <cstdint>
#include <type_traits>

#include "engine/bus/ring_layout.hpp"

namespace cf::bus {

struct BroadcastOptions {
    std::uint32_t max_readers = 8;                          // 1 .. kMaxBroadcastReaders
    OverflowPolicy policy = OverflowPolicy::back_pressure;
    bool multi_writer = false;                              // try_claim(position)/commit(position) from any thread
};

// The part of a broadcast ring every mode shares. A view of it reads the mode from the block at attach and can
// join and remove readers and read positions (topic statistics, clean-up after a dead process); messages are
// written and read through BroadcastRingOf, the view of one mode.
class BroadcastRing {
public:
    // As SpscRing: 0 for a bad geometry or options; format: 0 or -EINVAL; attach: 0, -EINVAL or -EPROTO (the
    // reader regions are checked too), messages set. attach takes the options from the block.
    static std::size_t bytes_needed(const RingGeometry& geometry, const BroadcastOptions& options = {}) noexcept;
    static int format(void* memory, std::size_t bytes, const RingGeometry& geometry,
                      const BroadcastOptions& options = {}) noexcept;
    static int attach(void* memory, std::size_t bytes, BroadcastRing& out) noexcept;
    // A typed view attaches through its own attach, which checks the mode and sets up its writer's state.
    template <class Typed>
        requires(!std::is_same_v<Typed, BroadcastRing>)
    static int attach(void* memory, std::size_t bytes, Typed& out) noexcept = delete;

    BroadcastRing() noexcept = default;

    // ---- reader administration: any thread or process ----

    // Takes a free reader region and starts it at the writer's current position: the index (>= 0), or -EBUSY
    // when all max_readers are taken.
    int add_reader() noexcept;
    // The same for one given region (a topic's subscriber place i is reader i): `reader`, or -EBUSY when that
    // region is taken, -EINVAL when it is out of range.
    int add_reader_at(int reader) noexcept;

    // Frees an active (or stuck joining) reader region; -EINVAL if `reader` is out of range or free. The reader
    // itself, or anyone cleaning up after a reader process that died.
    int remove_reader(int reader) noexcept;

    // ---- positions and queries ----

    // Messages this reader skipped or found torn (lossy), since it joined.
    std::uint64_t lost(int reader) const noexcept {
        return reader_at(reader).lost.load(std::memory_order_relaxed);
    }
    std::uint64_t reader_position(int reader) const noexcept {
        return reader_at(reader).cursor.load(std::memory_order_acquire);
    }
    bool reader_active(int reader) const noexcept {
        return reader >= 0 && static_cast<std::uint32_t>(reader) < max_readers_ &&
               reader_at(reader).state.load(std::memory_order_acquire) == kReaderActive;
    }
    // Single writer: positions below it are published. Multi writer: positions below it are claimed.
    std::uint64_t writer_position() const noexcept {
        return multi_writer_ ? control_->writers.tail.load(std::memory_order_acquire)
                             : control_->published.cursor.load(std::memory_order_acquire);
    }
    std::uint32_t capacity() const noexcept { return slots_.capacity; }
    std::uint32_t slot_bytes() const noexcept { return slots_.slot_bytes; }
    std::uint32_t max_readers() const noexcept { return max_readers_; }
    OverflowPolicy policy() const noexcept { return lossy_ ? OverflowPolicy::lossy : OverflowPolicy::back_pressure; }
    bool multi_writer() const noexcept { return multi_writer_; }
    bool attached() const noexcept { return control_ != nullptr; }

    static constexpr std::uint64_t kReaderFree = 0;
    static constexpr std::uint64_t kReaderJoining = 1;
    static constexpr std::uint64_t kReaderActive = 2;

    struct WriterWords {
        std::atomic<std::uint64_t> tail;   // multi writer: next position to claim
        std::atomic<std::uint64_t> gate;   // multi writer: a lower bound of the active readers' cursors
    };
    struct PublishedWords {
        std::atomic<std::uint64_t> cursor;   // single writer: positions below it are published
    };
    struct ReaderWords {
        std::atomic<std::uint64_t> cursor;   // next position to read; the writers gate on it
        std::atomic<std::uint64_t> state;    // kReader*
        std::atomic<std::uint64_t> lost;
        std::atomic<std::uint64_t> end;      // the reader's cached writer position (private)
    };
    struct Control {
        IndexRegion<WriterWords> writers;
        IndexRegion<PublishedWords> published;
    };
    static_assert(sizeof(Control) == 2 * kIndexSpacing);
    static_assert(sizeof(IndexRegion<ReaderWords>) == kIndexSpacing);

protected:
    std::byte* slot_at(std::uint64_t position) const noexcept { return slots_.at(position); }
    SlotTrailer& trailer_at(std::uint64_t position) const noexcept { return slots_.trailer<SlotTrailer>(position); }
    ReaderWords& reader_at(int reader) const noexcept {
        assert(reader >= 0 && static_cast<std::uint32_t>(reader) < max_readers_);
        return readers_[reader];
    }

    // Lowest cursor among active readers, at most `bound`. Cold: back-pressure writers call it only when the ring
    // looks full.
    std::uint64_t gate_position(std::uint64_t bound) const noexcept;
    // Multi writer, back-pressure: recomputes the shared gate from the tail and the readers, stores and returns it.
    std::uint64_t shared_gate_position() noexcept;
    // Multi writer: BroadcastRingOf::reclaim.
    int reclaim_position(std::uint64_t position) noexcept;

    // Shared by all sides, read-only after attach.
    Control* control_ = nullptr;
    IndexRegion<ReaderWords>* readers_ = nullptr;
    SlotArray slots_;
    std::uint32_t max_readers_ = 0;
    bool lossy_ = false;          // the block's mode, for the queries and cold code: hot paths have it in the type
    bool multi_writer_ = false;

private:
    // Takes region `index` if it is free and starts it at the writer's position.
    bool join_reader(std::uint32_t index) noexcept;
};

// The view of a ring in one mode: one writer or several, back-pressure or lossy. The hot paths below have the
// mode in the type (a constraint per method, `if constexpr` inside), so they test no flag. attach() refuses a
// block formatted for another mode with -EPROTO.
template <bool MultiWriter, bool Lossy>
class BroadcastRingOf : public BroadcastRing {
public:
    static constexpr bool kMultiWriter = MultiWriter;
    static constexpr bool kLossy = Lossy;
    static constexpr OverflowPolicy kPolicy = Lossy ? OverflowPolicy::lossy : OverflowPolicy::back_pressure;

    // The options that format a block for this mode.
    static constexpr BroadcastOptions options(std::uint32_t max_readers) noexcept {
        return BroadcastOptions{max_readers, kPolicy, kMultiWriter};
    }

    // As BroadcastRing::attach, and -EPROTO (with a message) when the block was formatted for another mode.
    static int attach(void* memory, std::size_t bytes, BroadcastRingOf& out) noexcept;

    BroadcastRingOf() noexcept = default;

    // ---- one writer: one writer thread at a time, through one view ----

    // As SpscRing::try_claim: the next free slot or nullptr (back_pressure: some active reader has not released
    // the slot yet; lossy: `capacity` claims are already outstanding).
    std::byte* try_claim() noexcept requires(!MultiWriter) {
        if (claims_.next - claims_.gate >= slots_.capacity) {
            claims_.gate = writer_gate();
            if (claims_.next - claims_.gate >= slots_.capacity) return nullptr;
        }
        return begin_write(claims_.next++);
    }
    std::uint32_t try_claim_batch(std::uint32_t wanted) noexcept requires(!MultiWriter) {
        // The gate comes from the readers' cursors in shared memory: one a lap behind reads as a full ring.
        std::uint64_t free = bounded_free(claims_.next, claims_.gate, slots_.capacity);
        if (free < wanted) {
            claims_.gate = writer_gate();
            free = bounded_free(claims_.next, claims_.gate, slots_.capacity);
        }
        const auto count = static_cast<std::uint32_t>(free < wanted ? free : wanted);
        claims_.batch_start = claims_.next;
        for (std::uint32_t i = 0; i < count; ++i) begin_write(claims_.next + i);
        claims_.next += count;
        return count;
    }
    std::byte* claimed_slot(std::uint32_t i) const noexcept requires(!MultiWriter) {
        return slot_at(claims_.batch_start + i);
    }
    // The position the next try_claim() hands out.
    std::uint64_t claim_position() const noexcept requires(!MultiWriter) { return claims_.next; }

    // Publishes every outstanding claim: lossy rings first mark each slot published (release, pairs with the
    // readers' acquire of the sequence), then one release store of the cursor (pairs with available()).
    void commit() noexcept requires(!MultiWriter) {
        if constexpr (Lossy) {
            for (std::uint64_t p = claims_.published; p < claims_.next; ++p) {
                trailer_at(p).sequence.store(2 * p + 2, std::memory_order_release);
            }
        }
        claims_.published = claims_.next;
        control_->published.cursor.store(claims_.published, std::memory_order_release);
    }

    // ---- several writers: any threads or processes ----

    // Claims the next position, or nullptr when the ring is full (back_pressure: a reader is a lap behind; either
    // policy: the writer of this slot's previous lap has not published it yet).
    std::byte* try_claim(std::uint64_t& position) noexcept requires MultiWriter {
        auto& tail = control_->writers.tail;
        std::uint64_t pos = tail.load(std::memory_order_relaxed);
        for (;;) {
            if constexpr (!Lossy) {
                // Acquire pairs with shared_gate_position's release: the readers' reads that gate vouches for
                // happen before our writes, though another writer did the scan.
                if (pos >= control_->writers.gate.load(std::memory_order_acquire) + slots_.capacity &&
                    pos >= shared_gate_position() + slots_.capacity) {
                    return nullptr;
                }
            }
            // Pairs with the previous lap's commit: that writer is done with the slot.
            const std::uint64_t sequence = trailer_at(pos).sequence.load(std::memory_order_acquire);
            const std::uint64_t previous_lap = pos >= slots_.capacity ? 2 * (pos - slots_.capacity) + 2 : 0;
            if (sequence == previous_lap) {
                if (tail.compare_exchange_weak(pos, pos + 1, std::memory_order_relaxed, std::memory_order_relaxed)) {
                    position = pos;
                    // A reclaim of this lap acquires our "being written" mark (begin_write): the fence orders
                    // the cleared flag of the previous lap before it.
                    trailer_at(pos).flags.store(0, std::memory_order_relaxed);
                    std::atomic_thread_fence(std::memory_order_release);
                    return begin_write(pos);
                }
            } else if (sequence < previous_lap) {
                return nullptr;   // the previous lap is still being written
            } else {
                // pos was taken: catch up. The tail moved past pos before its slot changed, unless the tail in
                // the block is corrupt: then fail as on a full ring instead of retrying for ever.
                const std::uint64_t now = tail.load(std::memory_order_relaxed);
                if (now <= pos) return nullptr;
                pos = now;
            }
        }
    }

    // Publishes one position (release, pairs with the readers' acquire of the sequence). Any order.
    void commit(std::uint64_t position) noexcept requires MultiWriter {
        trailer_at(position).sequence.store(2 * position + 2, std::memory_order_release);
    }

    // commit() for rings whose readers may take over a claim that is only slow, not dead (a time-out): a
    // compare-exchange from "being written" to published, so a commit after a take-over fails (false: the message
    // is dropped) instead of publishing over the reader's replacement.
    [[nodiscard]] bool try_commit(std::uint64_t position) noexcept requires MultiWriter {
        std::uint64_t expected = 2 * position + 1;
        return trailer_at(position).sequence.compare_exchange_strong(expected, 2 * position + 2,
                                                                    std::memory_order_release,
                                                                    std::memory_order_relaxed);
    }

    // A claim whose writer died between claim and commit holds up every reader (and, a lap later, every writer).
    // A reader reclaims it: it moves the slot from "being written" (2p + 1) to "taken" (2p: below both, so
    // everyone keeps treating it as unpublished, and a late try_commit fails), marks it kSlotReclaimed in the
    // trailer (which a late writer never touches: its header and payload stores cannot resurrect the slot), and
    // publishes it (2p + 2), so every reader skips it. 0; -EALREADY when the position was published meanwhile (by
    // its writer, or reclaimed by another reader); -EINVAL when it is not claimed-and-unpublished.
    int reclaim(std::uint64_t position) noexcept requires MultiWriter { return reclaim_position(position); }

    // Either policy: the position `reader` waits at, if that position is claimed but not published (its writer is
    // writing it, or died doing so). Readers that have read everything published stop there.
    bool waits_at_claim(int reader, std::uint64_t& position) const noexcept requires MultiWriter {
        const std::uint64_t cursor = reader_at(reader).cursor.load(std::memory_order_relaxed);
        if (trailer_at(cursor).sequence.load(std::memory_order_relaxed) != 2 * cursor + 1) return false;
        position = cursor;
        return true;
    }
    // The slot of a claimed position, whose message header holds the claimer's marker until it commits (recovery
    // reads it to judge the claimer).
    const std::byte* slot_of_claim(std::uint64_t position) const noexcept requires MultiWriter {
        return slot_at(position);
    }

    // ---- back-pressure readers: in place ----

    // As SpscRing. `reader` is an index from add_reader() (checked by debug asserts only). The reader's words and
    // the writer position live in the block, where another process may write anything: the count is at most
    // capacity(), and 0 while the cursor is ahead of the writers.
    std::uint32_t available(int reader, std::uint32_t max) noexcept requires(!Lossy) {
        ReaderWords& words = reader_at(reader);
        const std::uint64_t cursor = words.cursor.load(std::memory_order_relaxed);   // only this reader writes it
        std::uint64_t end = words.end.load(std::memory_order_relaxed);
        std::uint64_t ready = bounded_ready(end, cursor, slots_.capacity);
        if (ready < max) {
            if constexpr (!MultiWriter) {
                end = control_->published.cursor.load(std::memory_order_acquire);   // pairs with commit()
            } else {
                if (end - cursor > slots_.capacity) end = cursor;   // a corrupt cached end: scan again from the cursor
                // Pairs with commit(position): stop at the first position not published yet.
                while (end - cursor < max && end - cursor < slots_.capacity &&
                       trailer_at(end).sequence.load(std::memory_order_acquire) == 2 * end + 2) {
                    ++end;
                }
            }
            words.end.store(end, std::memory_order_relaxed);
            ready = bounded_ready(end, cursor, slots_.capacity);
        }
        return static_cast<std::uint32_t>(ready < max ? ready : max);
    }
    const std::byte* slot(int reader, std::uint32_t i) const noexcept requires(!Lossy) {
        return slot_at(reader_at(reader).cursor.load(std::memory_order_relaxed) + i);
    }
    // True if the i-th unread position was reclaimed (no message: poll skips it). Only several writers' claims are
    // ever reclaimed.
    bool reclaimed(int reader, std::uint32_t i) const noexcept requires(!Lossy) {
        if constexpr (!MultiWriter) {
            (void)reader;
            (void)i;
            return false;
        } else {
            const std::uint64_t position = reader_at(reader).cursor.load(std::memory_order_relaxed) + i;
            return (trailer_at(position).flags.load(std::memory_order_relaxed) & kSlotReclaimed) != 0;
        }
    }

    // One release store of the cursor: pairs with the writers' acquire in their gate scan. n <= available(); not
    // asserted, since both words sit in the block where another process may have rewritten them meanwhile.
    void release(int reader, std::uint32_t n) noexcept requires(!Lossy) {
        auto& cursor = reader_at(reader).cursor;
        cursor.store(cursor.load(std::memory_order_relaxed) + n, std::memory_order_release);
    }
    // f(const std::byte* payload) or f(payload, position), as SpscRing::poll.
    template <class F>
    std::uint32_t poll(int reader, std::uint32_t max, F&& f) noexcept(kNothrowPollCallback<F>) requires(!Lossy) {
        const std::uint32_t count = available(reader, max);
        const std::uint64_t cursor = reader_at(reader).cursor.load(std::memory_order_relaxed);
        for (std::uint32_t i = 0; i < count; ++i) {
            if (!MultiWriter ||
                (trailer_at(cursor + i).flags.load(std::memory_order_relaxed) & kSlotReclaimed) == 0) {
                invoke_poll_callback(f, slot_at(cursor + i), cursor + i);
            }
        }
        if (count != 0) release(reader, count);
        return count;
    }

    // ---- readers by copy ----

    // Calls f(const std::byte* payload) (or f(payload, position)) for up to `max` messages in order and returns
    // how many it delivered. lossy: each payload is copied into `scratch` (slot_bytes() bytes, the caller's) and
    // delivered only if the slot was not overwritten meanwhile; skipped and torn positions are added to
    // lost(reader). back_pressure: the same as poll() (in place; scratch unused), so that code written for either
    // policy can read with it. The pointer is valid only during f.
    template <class F>
    std::uint32_t poll_copy(int reader, std::uint32_t max, std::byte* scratch, F&& f) noexcept(
        kNothrowPollCallback<F>) {
        if constexpr (!Lossy) {
            (void)scratch;
            return poll(reader, max, f);
        } else {
            return poll_copy_lossy(reader, max, scratch, f);
        }
    }

    // ---- any side ----

    // As BroadcastRing::writer_position, without reading the mode.
    std::uint64_t writer_position() const noexcept {
        if constexpr (MultiWriter) return control_->writers.tail.load(std::memory_order_acquire);
        else return control_->published.cursor.load(std::memory_order_acquire);
    }

private:
    template <class F>
    std::uint32_t poll_copy_lossy(int reader, std::uint32_t max, std::byte* scratch, F& f) noexcept(
        kNothrowPollCallback<F>) {
        ReaderWords& words = reader_at(reader);
        std::uint64_t cursor = words.cursor.load(std::memory_order_relaxed);
        std::uint64_t skipped = 0;
        std::uint32_t delivered = 0;
        // Every position looked at is delivered, or skipped (reclaimed, torn, overwritten), which a sane ring does
        // at most a lap's worth of times per call. Sequences rewritten in the block could keep the reader skipping
        // for 2^64 positions: the budget ends the call instead (the next one goes on from there).
        std::uint64_t budget = std::uint64_t{max} + slots_.capacity;
        while (delivered < max && budget-- != 0) {
            SlotTrailer& trailer = trailer_at(cursor);
            const std::uint64_t published = 2 * cursor + 2;
            // Pairs with the writer's release when it published: the payload we copy next is complete...
            const std::uint64_t before = trailer.sequence.load(std::memory_order_acquire);
            if (before == published && (trailer.flags.load(std::memory_order_relaxed) & kSlotReclaimed) != 0) {
                ++cursor;   // a reclaimed claim: no message, nothing lost (a next lap would have moved `before`)
            } else if (before == published) {
                copy_racing_payload(scratch, slot_at(cursor), slots_.slot_bytes);
                // ...unless the writer started the next lap meanwhile: the copy's loads stay before this re-check
                // (Boehm's seqlock reader), and the writer marks the slot before writing it.
                std::atomic_thread_fence(std::memory_order_acquire);
                if (trailer.sequence.load(std::memory_order_relaxed) == published) {
                    invoke_poll_callback(f, scratch, cursor);
                    ++delivered;
                } else {
                    ++skipped;   // torn
                }
                ++cursor;
            } else if (before < published) {
                break;   // not published yet: caught up
            } else {
                // Overwritten by a later lap: jump to the oldest position that may still be intact.
                const std::uint64_t head = writer_position();
                std::uint64_t next = head > slots_.capacity ? head - slots_.capacity : 0;
                if (next <= cursor) next = cursor + 1;
                skipped += next - cursor;
                cursor = next;
            }
        }
        if (skipped != 0) {
            words.lost.store(words.lost.load(std::memory_order_relaxed) + skipped, std::memory_order_relaxed);
        }
        words.cursor.store(cursor, std::memory_order_release);
        return delivered;
    }

    // Lossy and multi-writer rings mark a claimed slot "being written" (2p + 1) before its payload is touched;
    // the release fence keeps the payload stores after the mark (seqlock writer).
    std::byte* begin_write(std::uint64_t position) noexcept {
        if constexpr (MultiWriter || Lossy) {
            trailer_at(position).sequence.store(2 * position + 1, std::memory_order_relaxed);
            std::atomic_thread_fence(std::memory_order_release);
        }
        return slot_at(position);
    }

    // One writer: how far it may claim. Lossy writers never wait for readers, only for their own outstanding
    // claims (one lap).
    std::uint64_t writer_gate() const noexcept requires(!MultiWriter) {
        if constexpr (Lossy) return claims_.published;
        else return gate_position(claims_.published);
    }

    // One writer's private state; several writers share theirs in the block (the tail), so they have none.
    struct PrivateClaims {
        alignas(kIndexSpacing) std::uint64_t next = 0;   // next position to claim
        std::uint64_t published = 0;                      // the cursor as last stored
        std::uint64_t gate = 0;                           // no active reader is below it
        std::uint64_t batch_start = 0;
    };
    struct NoPrivateClaims {};
    [[no_unique_address]] std::conditional_t<MultiWriter, NoPrivateClaims, PrivateClaims> claims_;
};

// The four modes.
using BroadcastRingOneWriter = BroadcastRingOf<false, false>;
using BroadcastRingManyWriters = BroadcastRingOf<true, false>;
using LossyBroadcastRingOneWriter = BroadcastRingOf<false, true>;
using LossyBroadcastRingManyWriters = BroadcastRingOf<true, true>;

}  // namespace cf::bus
