// Subscribing to a topic: poll messages in place, in batches, then release them so the slots can be reused.
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

#include "engine/bus/message.hpp"
#include "engine/bus/topic.hpp"
#include "engine/bus/topic_endpoints.hpp"
#include "engine/bus/topic_rings.hpp"
#include "engine/time/hlc.hpp"

namespace cf::bus {

inline constexpr std::uint32_t kMaxPollBatch = 64;

class Subscriber {
public:
    static constexpr std::uint64_t kMaxPlausiblePosition = std::uint64_t{1} << 63;

    // Attaches a subscriber to `topic` in a subscriber place held by `holder` (topic_endpoints.hpp; on a
    // broadcast topic, place i is reader i). 0, -EUSERS when the topic already has max_subscribers subscribers,
    // -ENOMEM if the lossy scratch cannot be allocated, or a ring attach error; with a message.
    static int open(const Topic& topic, EndpointHolder holder, Subscriber& out) noexcept;
    static int open(const Topic& topic, Subscriber& out) noexcept { return open(topic, kInProcessHolder, out); }

    Subscriber() noexcept = default;
    Subscriber(Subscriber&& other) noexcept { *this = static_cast<Subscriber&&>(other); }
    Subscriber& operator=(Subscriber&& other) noexcept;
    Subscriber(const Subscriber&) = delete;
    Subscriber& operator=(const Subscriber&) = delete;
    ~Subscriber() { close(); }

    void close() noexcept;
    bool valid() const noexcept { return topic_.valid(); }

    // The receive rule (hlc.hpp): every message this subscriber delivers is first observed by the receiving
    // thread's lane of `clock`, so any stamp that thread takes afterwards (a reply it publishes, say) is larger than
    // the message's. A stamp beyond the clock's drift bound is not merged (the clock counts it); the message is
    // still delivered. nullptr (the default) merges nothing. The clock must outlive the subscriber.
    void set_clock(HybridLogicalClock* clock) noexcept { clock_ = clock; }

    // Calls f(const Message&) for up to `max` messages, in order, then releases them. Returns how many.
    template <class F>
    std::uint32_t poll(std::uint32_t max, F&& f) {
        if (pending_ != 0) release();
        auto deliver = [&](const std::byte* slot, std::uint64_t position) {
            Message message;
            if (accept(slot, position, message)) f(message);
        };
        switch (kind_) {
            case Kind::spsc: return rings_.spsc.poll(max, deliver);
            case Kind::mpsc: return rings_.mpsc.poll(max, deliver);
            case Kind::broadcast: return rings_.broadcast.poll(reader_, max, deliver);
            case Kind::broadcast_lossy: return rings_.broadcast.poll_copy(reader_, max, scratch_.get(), deliver);
        }
        return 0;
    }

    // Fills out[0..n) with up to `max` (<= kMaxPollBatch for lossy topics) messages and returns n; they stay valid
    // until release() or the next receive()/poll(), which releases them first. Abandoned and reclaimed positions
    // are consumed but not returned, so n may be 0 while positions were consumed.
    std::uint32_t receive(Message* out, std::uint32_t max) noexcept;

    // Frees the messages of the last receive().
    void release() noexcept;

    // Messages this subscriber will never see: skipped or torn on a lossy topic (0 on the others).
    std::uint64_t lost() const noexcept { return kind_ == Kind::broadcast_lossy ? rings_.broadcast.lost(reader_) : 0; }

    // Slots consumed but not delivered because their header was corrupt (see the file comment). Kept by this
    // subscriber, not in shared memory.
    std::uint64_t corrupt() const noexcept { return corrupt_; }

    // Many-publisher topics (MPSC, multi-writer broadcast) shared between processes: a publisher killed between
    // claim and commit leaves a position that holds up every message behind it (and, a lap later, the other
    // publishers). From the subscriber's thread, in housekeeping: if the next position is claimed but not
    // committed, and either its claimer's process is dead (the slot's claim marker names it) or it has been stuck
    // for `stuck_ns` without any marker (the claimer died right after claiming), the position is reclaimed: read
    // as empty (every subscriber of a broadcast topic skips it), the messages behind it flow again. Returns 1 if
    // it reclaimed a position, 0 if there was nothing to do (or not yet, or another subscriber was first),
    // -ENOTSUP on single-publisher topics.
    int recover_stalled_claim(std::uint64_t now_ns, std::uint64_t stuck_ns) noexcept;
    std::uint64_t recovered_claims() const noexcept { return recovered_; }

    int reader() const noexcept { return reader_; }   // broadcast reader index, -1 on other topics
    const Topic& topic() const noexcept { return topic_; }

private:
    enum class Kind : std::uint8_t { spsc, mpsc, broadcast, broadcast_lossy };

    // The slot at ring position `position`: true and `out` set for a message to deliver; false for an abandoned
    // position, or a corrupt one (counted). Either way the position is consumed.
    bool accept(const std::byte* slot, std::uint64_t position, Message& out) noexcept {
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
        if (clock_ != nullptr) (void)clock_->this_thread_lane().observe(out.stamp);
        return true;
    }

    Topic topic_;
    Kind kind_ = Kind::spsc;
    TopicRings rings_;
    HybridLogicalClock* clock_ = nullptr;       // the receive rule's clock, or none
    int reader_ = -1;
    EndpointHolder holder_ = 0;                 // who holds our place in the topic's ledger
    std::uint32_t place_ = 0;
    std::uint32_t pending_ = 0;                 // positions handed out by receive(), not yet released
    std::uint32_t max_message_bytes_ = 0;       // the topic's, validated at open: what lengths are checked against
    std::uint64_t next_ = 0;                    // above the last position accepted: positions only go forward
    std::uint64_t corrupt_ = 0;
    std::uint32_t slot_bytes_ = 0;              // lossy: the stride of scratch_ (the slot size rounded up to 64)
    std::unique_ptr<std::byte[]> scratch_;      // lossy: kMaxPollBatch slots (receive) or one (poll)
    std::uint64_t stuck_position_ = UINT64_MAX; // recover_stalled_claim: the position seen stuck, and since when
    std::uint64_t stuck_since_ns_ = 0;
    std::uint64_t recovered_ = 0;
};

}  // namespace cf::bus
