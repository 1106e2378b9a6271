// Subscribing to a topic: poll messages in place, in batches, then release them so the slots can be reused.
//
// Two levels, as for publishers: TopicSubscriber<Reader> runs one ring protocol (topic_protocols.hpp) fixed by its
// type, with no switch per message; Subscriber opens the one the topic calls for and dispatches once per call.
//
// Two ways to read, both in order and without copying on back-pressure topics:
//  - poll(max, f): calls f(const Message&) for up to `max` messages and releases them when f has seen them all;
//  - receive(out, max) fills an array of Message views and keeps them until release() (what the C API uses).
// Lossy topics (the writer never waits) cannot be read in place: every message is copied into the subscriber's
// preallocated scratch and delivered only if it was not overwritten meanwhile; the rest is counted in lost().
// One subscriber = one thread at a time. Never blocks, never allocates after open().
//
// The ring may be shared with other processes, so every slot is untrusted input: its header is checked against
// this subscriber's own copy of the configuration, taken at open (message.hpp, read_slot), and against the ring
// position the subscriber read it at. A slot whose length is above max_message_bytes, whose sequence is not its
// position, whose flags are unknown, or whose position goes back to one already consumed (a rewound cursor) is
// consumed, never returned, and counted in corrupt().
#pragma once

#include <cerrno>
#include <cstdint>
#include <memory>
#include <utility>
#include <variant>

#include "engine/bus/message.hpp"
#include "engine/bus/topic.hpp"
#include "engine/bus/topic_endpoints.hpp"
#include "engine/bus/topic_protocols.hpp"
#include "engine/time/hlc.hpp"

namespace cf::bus {

inline constexpr std::uint32_t kMaxPollBatch = 64;

// What every subscriber keeps whatever its protocol: its place, its checks of untrusted slots, the receive rule.
class SubscriberState {
public:
    static constexpr std::uint64_t kMaxPlausiblePosition = std::uint64_t{1} << 63;

    bool valid() const noexcept { return topic_.valid(); }
    const Topic& topic() const noexcept { return topic_; }
    // Slots consumed but not delivered because their header was corrupt (see the file comment). Kept by this
    // subscriber, not in shared memory.
    std::uint64_t corrupt() const noexcept { return corrupt_; }
    std::uint64_t recovered_claims() const noexcept { return recovered_; }

    // The receive rule (hlc.hpp): every message this subscriber delivers is first observed by the receiving
    // thread's lane of `clock`, so any stamp that thread takes afterwards (a reply it publishes, say) is larger than
    // the message's. A stamp beyond the clock's drift bound is not merged (the clock counts it); the message is
    // still delivered. nullptr (the default) merges nothing. The clock must outlive the subscriber.
    void set_clock(HybridLogicalClock* clock) noexcept { clock_ = clock; }

protected:
    // The receiving thread's lane for the receive rule, looked up once per call (not per message), or nullptr.
    ClockLane* receive_lane() const noexcept { return clock_ != nullptr ? &clock_->this_thread_lane() : nullptr; }

    // The slot at ring position `position`: true and `out` set for a message to deliver (its stamp merged into
    // `lane`, if any); false for an abandoned position, or a corrupt one (counted). Either way it is consumed.
    bool accept(const std::byte* slot, std::uint64_t position, Message& out, ClockLane* lane) noexcept {
        // A cursor rewound in the block would deliver messages twice; one thrown past 2^63 (which no ring reaches in
        // centuries) would make next_ wrap around to 0.
        if (position < next_ || position >= kMaxPlausiblePosition) [[unlikely]] {
            ++corrupt_;
            return false;
        }
        const SlotVerdict verdict = read_slot(slot, position, max_message_bytes_, out);
        if (verdict == SlotVerdict::corrupt) [[unlikely]] {
            ++corrupt_;
            return false;
        }
        next_ = position + 1;
        if (verdict != SlotVerdict::message) return false;
        if (lane != nullptr) (void)lane->observe(out.stamp);
        return true;
    }

    // Multi-writer topics: the claim at `position` (slot `slot`) holds the subscriber up; 1 if it is judged dead and
    // `reclaim` succeeds, else 0 (see Subscriber::recover_stalled_claim).
    template <class Reclaim>
    int recover_claim(std::uint64_t position, const std::byte* slot, std::uint64_t now_ns, std::uint64_t stuck_ns,
                      Reclaim&& reclaim) noexcept;
    void not_stuck() noexcept { stuck_position_ = UINT64_MAX; }

    Topic topic_;
    HybridLogicalClock* clock_ = nullptr;       // the receive rule's clock, or none
    EndpointHolder holder_ = 0;                 // who holds our place in the topic's ledger
    std::uint32_t place_ = 0;
    std::uint32_t pending_ = 0;                 // positions handed out by receive(), not yet released
    std::uint32_t max_message_bytes_ = 0;       // the topic's, validated at open: what lengths are checked against
    std::uint64_t next_ = 0;                    // above the last position accepted: positions only go forward
    std::uint64_t corrupt_ = 0;
    std::uint64_t stuck_position_ = UINT64_MAX; // recover_stalled_claim: the position seen stuck, and since when
    std::uint64_t stuck_since_ns_ = 0;
    std::uint64_t recovered_ = 0;
};

template <class Reader>
class TopicSubscriber : public SubscriberState {
public:
    // Takes a subscriber place for `holder` (on a broadcast topic, place i is reader i) and attaches the reader.
    // 0, -EUSERS (max_subscribers reached), -ENOMEM (the lossy scratch), or the ring's attach error; with a message.
    static int open(const Topic& topic, EndpointHolder holder, TopicSubscriber& out) noexcept;

    TopicSubscriber() noexcept = default;
    TopicSubscriber(TopicSubscriber&& other) noexcept { *this = std::move(other); }
    TopicSubscriber& operator=(TopicSubscriber&& other) noexcept {
        if (this == &other) return *this;
        close();
        static_cast<SubscriberState&>(*this) = other;
        reader_ = other.reader_;
        slot_bytes_ = other.slot_bytes_;
        scratch_ = std::move(other.scratch_);
        other.topic_ = Topic{};
        other.pending_ = 0;
        return *this;
    }
    TopicSubscriber(const TopicSubscriber&) = delete;
    TopicSubscriber& operator=(const TopicSubscriber&) = delete;
    ~TopicSubscriber() { close(); }

    void close() noexcept;

    // Calls f(const Message&) for up to `max` messages, in order, then releases them. Returns how many positions it
    // consumed.
    template <class F>
    std::uint32_t poll(std::uint32_t max, F&& f) {
        if (pending_ != 0) release();
        ClockLane* const lane = receive_lane();
        auto deliver = [&](const std::byte* slot, std::uint64_t position) {
            Message message;
            if (accept(slot, position, message, lane)) f(message);
        };
        if constexpr (Reader::kInPlace) return reader_.poll(max, deliver);
        else return reader_.poll_copy(max, scratch_.get(), deliver);
    }

    // Fills out[0..n) with up to `max` (<= kMaxPollBatch for lossy topics) messages and returns n; they stay valid
    // until release() or the next receive()/poll(), which releases them first. Abandoned and reclaimed positions
    // are consumed but not returned, so n may be 0 while positions were consumed.
    std::uint32_t receive(Message* out, std::uint32_t max) noexcept {
        release();
        std::uint32_t delivered = 0;
        ClockLane* const lane = receive_lane();
        auto keep = [&](const std::byte* slot, std::uint64_t position) {
            if (accept(slot, position, out[delivered], lane)) ++delivered;
        };
        if constexpr (Reader::kInPlace) {
            pending_ = reader_.take(max);
            const std::uint64_t first = reader_.first_position();
            for (std::uint32_t i = 0; i < pending_; ++i) {
                if (!reader_.reclaimed(i)) keep(reader_.slot(i), first + i);
            }
        } else {
            // Copies: each message into its own scratch slot, so the batch stays valid until the next call.
            if (max > kMaxPollBatch) max = kMaxPollBatch;
            for (std::uint32_t i = 0; i < max; ++i) {
                std::byte* copy = scratch_.get() + std::size_t{i} * slot_bytes_;
                if (reader_.poll_copy(1, copy, keep) == 0) break;
            }
        }
        return delivered;
    }

    // Frees the messages of the last receive().
    void release() noexcept {
        if constexpr (Reader::kInPlace) {
            if (pending_ != 0) reader_.release(pending_);
        }
        pending_ = 0;
    }

    // Messages this subscriber will never see: skipped or torn on a lossy topic (0 on the others).
    std::uint64_t lost() const noexcept {
        if constexpr (Reader::kInPlace) return 0;
        else return reader_.ring.lost(reader_.index);
    }

    int recover_stalled_claim(std::uint64_t now_ns, std::uint64_t stuck_ns) noexcept;
    int reader() const noexcept { return reader_.reader(); }

private:
    Reader reader_;
    std::uint32_t slot_bytes_ = 0;              // lossy: the stride of scratch_ (the slot size rounded up to 64)
    std::unique_ptr<std::byte[]> scratch_;      // lossy: kMaxPollBatch slots (receive) or one (poll)
};

class Subscriber {
public:
    // Attaches a subscriber to `topic` with the protocol its configuration calls for, in a subscriber place held
    // by `holder` (topic_endpoints.hpp; on a broadcast topic, place i is reader i). 0, -EUSERS when the topic
    // already has max_subscribers subscribers, -ENOMEM if the lossy scratch cannot be allocated, or a ring attach
    // error; with a message.
    static int open(const Topic& topic, EndpointHolder holder, Subscriber& out) noexcept;
    static int open(const Topic& topic, Subscriber& out) noexcept { return open(topic, kInProcessHolder, out); }

    void close() noexcept { typed_ = std::monostate{}; }
    bool valid() const noexcept { return typed_.index() != 0; }

    // Calls f(TopicSubscriber<Reader>&) with the typed subscriber and returns what it returns, or `closed` on a
    // closed subscriber: one dispatch, then a loop inside f runs with none.
    template <class Result, class F>
    Result visit(Result closed, F&& f) {
        return visit_protocol(typed_, closed, static_cast<F&&>(f));
    }
    template <class Result, class F>
    Result visit(Result closed, F&& f) const {
        return const_cast<Subscriber*>(this)->visit(closed, static_cast<F&&>(f));
    }

    template <class F>
    std::uint32_t poll(std::uint32_t max, F&& f) {
        return visit(0u, [&](auto& s) { return s.poll(max, f); });
    }
    std::uint32_t receive(Message* out, std::uint32_t max) noexcept {
        return visit(0u, [&](auto& s) { return s.receive(out, max); });
    }
    void release() noexcept {
        visit(0, [](auto& s) { s.release(); return 0; });
    }
    // SubscriberState::set_clock, on an open subscriber (open() starts without a clock; set it after opening).
    void set_clock(HybridLogicalClock* clock) noexcept {
        visit(0, [&](auto& s) { s.set_clock(clock); return 0; });
    }
    std::uint64_t lost() const noexcept { return visit(std::uint64_t{0}, [](auto& s) { return s.lost(); }); }
    std::uint64_t corrupt() const noexcept { return visit(std::uint64_t{0}, [](auto& s) { return s.corrupt(); }); }

    // Many-publisher topics (MPSC, multi-writer broadcast) shared between processes: a publisher killed between
    // claim and commit leaves a position that holds up every message behind it (and, a lap later, the other
    // publishers). From the subscriber's thread, in housekeeping: if the next position is claimed but not
    // committed, and either its claimer's process is dead (the slot's claim marker names it) or it has been stuck
    // for `stuck_ns` without any marker (the claimer died right after claiming), the position is reclaimed: read
    // as empty (every subscriber of a broadcast topic skips it), the messages behind it flow again. Returns 1 if
    // it reclaimed a position, 0 if there was nothing to do (or not yet, or another subscriber was first),
    // -ENOTSUP on single-publisher topics.
    int recover_stalled_claim(std::uint64_t now_ns, std::uint64_t stuck_ns) noexcept {
        return visit(-ENOTSUP, [&](auto& s) { return s.recover_stalled_claim(now_ns, stuck_ns); });
    }
    std::uint64_t recovered_claims() const noexcept {
        return visit(std::uint64_t{0}, [](auto& s) { return s.recovered_claims(); });
    }

    int reader() const noexcept { return visit(-1, [](auto& s) { return s.reader(); }); }   // broadcast reader index
    const Topic& topic() const noexcept {
        static const Topic kNone{};
        return *visit(&kNone, [](auto& s) { return &s.topic(); });
    }

private:
    std::variant<std::monostate, TopicSubscriber<SpscReader>, TopicSubscriber<MpscReader>,
                 TopicSubscriber<BroadcastReader>, TopicSubscriber<BroadcastMultiReader>,
                 TopicSubscriber<LossyReader>, TopicSubscriber<LossyMultiReader>>
        typed_;
};

}  // namespace cf::bus
