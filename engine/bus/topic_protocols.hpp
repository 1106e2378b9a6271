// The ring protocols a topic can run, one type each, so that publishers and subscribers pick theirs once, when
// they open (publisher.hpp, subscriber.hpp), and their per-message code has no switch on the kind. A broadcast
// ring's mode (one writer or several, back-pressure or lossy) is in its view's type too (broadcast_ring.hpp).
//
//     writer                     ring                                  claim / commit
//     SpscWriter                 SpscRing                              private position, one release store per commit
//     MpscWriter                 MpscRing                              CAS on the shared tail, per-slot commit (CAS)
//     BroadcastWriter            BroadcastRingOneWriter                private position, one release store per commit
//     LossyBroadcastWriter       LossyBroadcastRingOneWriter           as BroadcastWriter, each slot marked (seqlock)
//     BroadcastMultiWriter       BroadcastRingManyWriters              CAS on the shared tail, per-slot commit (CAS)
//     LossyBroadcastMultiWriter  LossyBroadcastRingManyWriters         as BroadcastMultiWriter, never waits for readers
//
//     reader                     ring                                  read
//     SpscReader                 SpscRing                              in place
//     MpscReader                 MpscRing                              in place, reclaimed positions skipped
//     BroadcastReader            BroadcastRingOneWriter                in place, reader i of the ring
//     BroadcastMultiReader       BroadcastRingManyWriters              in place, reader i, reclaimed positions skipped
//     LossyReader                LossyBroadcastRingOneWriter           copied out and checked (seqlock), losses counted
//     LossyMultiReader           LossyBroadcastRingManyWriters         as LossyReader, reclaimed positions skipped
//
// Every protocol attaches its ring from a topic and checks that the ring's header describes the ring the topic's
// validated configuration calls for (-EPROTO otherwise): from then on the view's geometry is the topic's.
// Multi-writer protocols commit with a compare-and-swap, so a claim that a subscriber reclaimed as dead fails
// (-ESTALE) instead of wedging the ring.
#pragma once

#include <cerrno>
#include <cstdint>
#include <type_traits>
#include <variant>

#include "engine/bus/broadcast_ring.hpp"
#include "engine/bus/message.hpp"
#include "engine/bus/mpsc_ring.hpp"
#include "engine/bus/spsc_ring.hpp"
#include "engine/bus/topic.hpp"

namespace cf::bus {

// Calls f with the protocol a Publisher's or Subscriber's variant holds (alternatives 1..6) and returns what it
// returns, or `closed` for alternative 0 (std::monostate: not open). A switch, so the dispatch is one indexed jump.
template <class Result, class Variant, class F>
Result visit_protocol(Variant& typed, Result closed, F&& f) {
    static_assert(std::variant_size_v<std::remove_const_t<Variant>> == 7, "one case per protocol");
    switch (typed.index()) {
        case 1: return f(*std::get_if<1>(&typed));
        case 2: return f(*std::get_if<2>(&typed));
        case 3: return f(*std::get_if<3>(&typed));
        case 4: return f(*std::get_if<4>(&typed));
        case 5: return f(*std::get_if<5>(&typed));
        case 6: return f(*std::get_if<6>(&typed));
        default: return closed;
    }
}

// Attaches `ring` (SpscRing, MpscRing, a BroadcastRingOf or the mode-agnostic BroadcastRing) from the topic's ring
// memory and checks its geometry, and for a broadcast ring its options, against the topic's configuration. 0, the
// ring's attach error, or -EPROTO.
template <class Ring>
int attach_topic_ring(const Topic& topic, Ring& ring) noexcept;

// One writer: claims privately, publishes every outstanding claim with one release store.
template <class Ring>
struct SingleWriterOf {
    static constexpr bool kMultiWriter = false;
    Ring ring;

    int attach(const Topic& topic) noexcept { return attach_topic_ring(topic, ring); }
    std::byte* try_claim(std::uint64_t& position) noexcept {
        position = ring.claim_position();
        return ring.try_claim();
    }
    bool commit(std::uint64_t) noexcept {
        ring.commit();
        return true;
    }
    std::uint32_t try_claim_batch(std::uint32_t wanted, std::uint64_t& first) noexcept {
        first = ring.claim_position();
        return ring.try_claim_batch(wanted);
    }
    std::byte* claimed_slot(std::uint32_t i) const noexcept { return ring.claimed_slot(i); }
    void commit_batch() noexcept { ring.commit(); }
    std::uint64_t next_position() const noexcept { return ring.claim_position(); }
};

// Several writers: claim with a CAS on the shared tail, commit each position with a CAS.
template <class Ring>
struct MultiWriterOf {
    static constexpr bool kMultiWriter = true;
    Ring ring;

    int attach(const Topic& topic) noexcept { return attach_topic_ring(topic, ring); }
    std::byte* try_claim(std::uint64_t& position) noexcept { return ring.try_claim(position); }
    bool commit(std::uint64_t position) noexcept { return ring.try_commit(position); }
    // The shared tail as it is now: another publisher may take it first.
    std::uint64_t next_position() const noexcept {
        if constexpr (std::is_same_v<Ring, MpscRing>) return ring.claimed_position();
        else return ring.writer_position();
    }
};

using SpscWriter = SingleWriterOf<SpscRing>;
using BroadcastWriter = SingleWriterOf<BroadcastRingOneWriter>;
using LossyBroadcastWriter = SingleWriterOf<LossyBroadcastRingOneWriter>;
using MpscWriter = MultiWriterOf<MpscRing>;
using BroadcastMultiWriter = MultiWriterOf<BroadcastRingManyWriters>;
using LossyBroadcastMultiWriter = MultiWriterOf<LossyBroadcastRingManyWriters>;

// Readers: poll(max, f) calls f(slot, position) for each position that holds a message or an abandoned mark
// (reclaimed positions are skipped) and releases them; take(max) / slot(i) / position(i) / release(n) read a batch
// in place and keep it until released.
// The one reader of an SPSC or MPSC ring (MPSC positions a subscriber reclaimed carry no message).
template <class Ring>
struct SingleReaderOf {
    static constexpr bool kInPlace = true;
    Ring ring;

    int attach(const Topic& topic, int) noexcept { return attach_topic_ring(topic, ring); }
    template <class F>
    std::uint32_t poll(std::uint32_t max, F&& f) noexcept(kNothrowPollCallback<F>) {
        return ring.poll(max, f);
    }
    std::uint32_t take(std::uint32_t max) noexcept { return ring.available(max); }
    const std::byte* slot(std::uint32_t i) const noexcept { return ring.slot(i); }
    bool reclaimed(std::uint32_t i) const noexcept {
        if constexpr (std::is_same_v<Ring, MpscRing>) return ring.reclaimed(i);
        else return false;
    }
    std::uint64_t first_position() const noexcept { return ring.read_position(); }
    void release(std::uint32_t n) noexcept { ring.release(n); }
    int reader() const noexcept { return -1; }
};

using SpscReader = SingleReaderOf<SpscRing>;
using MpscReader = SingleReaderOf<MpscRing>;

// Reader `index` of a back-pressure broadcast ring, in place. Reclaimed positions (several writers) are skipped.
template <class Ring>
struct BroadcastReaderOf {
    static_assert(!Ring::kLossy, "lossy rings are read by copy: LossyReaderOf");
    static constexpr bool kInPlace = true;
    Ring ring;
    int index = -1;

    // Joins as reader `place` (a topic's subscriber place i is reader i).
    int attach(const Topic& topic, int place) noexcept;
    template <class F>
    std::uint32_t poll(std::uint32_t max, F&& f) noexcept(kNothrowPollCallback<F>) {
        return ring.poll(index, max, f);
    }
    std::uint32_t take(std::uint32_t max) noexcept { return ring.available(index, max); }
    const std::byte* slot(std::uint32_t i) const noexcept { return ring.slot(index, i); }
    bool reclaimed(std::uint32_t i) const noexcept { return ring.reclaimed(index, i); }
    std::uint64_t first_position() const noexcept { return ring.reader_position(index); }
    void release(std::uint32_t n) noexcept { ring.release(index, n); }
    int reader() const noexcept { return index; }
};

// Lossy topics cannot be read in place: each message is copied into the subscriber's scratch (poll_copy).
template <class Ring>
struct LossyReaderOf {
    static_assert(Ring::kLossy, "back-pressure rings are read in place: BroadcastReaderOf");
    static constexpr bool kInPlace = false;
    Ring ring;
    int index = -1;

    int attach(const Topic& topic, int place) noexcept;
    template <class F>
    std::uint32_t poll_copy(std::uint32_t max, std::byte* scratch, F&& f) noexcept(kNothrowPollCallback<F>) {
        return ring.poll_copy(index, max, scratch, f);
    }
    int reader() const noexcept { return index; }
};

using BroadcastReader = BroadcastReaderOf<BroadcastRingOneWriter>;
using BroadcastMultiReader = BroadcastReaderOf<BroadcastRingManyWriters>;
using LossyReader = LossyReaderOf<LossyBroadcastRingOneWriter>;
using LossyMultiReader = LossyReaderOf<LossyBroadcastRingManyWriters>;

}  // namespace cf::bus
