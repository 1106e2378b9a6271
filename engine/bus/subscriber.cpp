#include "engine/bus/subscriber.hpp"

#include <unistd.h>

#include <atomic>
#include <new>

#include "engine/bus/process_table.hpp"
#include "platform/os/last_error.hpp"

namespace cf::bus {
namespace {

// Linux's ceiling for pid_max (PID_MAX_LIMIT on 64-bit systems): no process id is larger.
constexpr std::uint64_t kMaxProcessId = std::uint64_t{1} << 22;

// Whether a claim marker's pid (written in shared memory, so by anyone) may be asked about at all. Not 0 (kill(0)
// means our process group), not out of range (it would be truncated or read as a process group), and not our own
// process: a marker naming us would make a forged claim look alive for as long as we run. Those claims are judged
// by the stuck time, like a claim without a marker; a slow claim of our own that is reclaimed fails with -ESTALE.
bool plausible_claimer(std::uint64_t pid) noexcept {
    return pid != 0 && pid <= kMaxProcessId && pid != static_cast<std::uint64_t>(::getpid());
}

}  // namespace

int Subscriber::open(const Topic& topic, EndpointHolder holder, Subscriber& out) noexcept {
    const int place = take_place(topic, EndpointRole::subscriber, holder);
    if (place < 0) return place;
    Subscriber subscriber;
    int status = subscriber.rings_.attach(topic);
    switch (status == 0 ? topic.kind() : TopicKind{}) {   // nothing to read from a view that did not attach
        case TopicKind::spsc:
            subscriber.kind_ = Kind::spsc;
            subscriber.slot_bytes_ = subscriber.rings_.spsc.slot_bytes();
            break;
        case TopicKind::mpsc:
            subscriber.kind_ = Kind::mpsc;
            subscriber.slot_bytes_ = subscriber.rings_.mpsc.slot_bytes();
            break;
        case TopicKind::broadcast:
            // Each copy starts 64-byte aligned, so its MessageHeader is aligned too.
            subscriber.slot_bytes_ = (subscriber.rings_.broadcast.slot_bytes() + kCacheLine - 1) / kCacheLine * kCacheLine;
            subscriber.kind_ = topic.overflow() == OverflowPolicy::lossy ? Kind::broadcast_lossy : Kind::broadcast;
            if (subscriber.kind_ == Kind::broadcast_lossy) {
                subscriber.scratch_.reset(new (std::nothrow) std::byte[std::size_t{kMaxPollBatch} * subscriber.slot_bytes_]);
                if (!subscriber.scratch_) {
                    status = platform::fail(ENOMEM, "topic '%s': no memory for the lossy subscriber's scratch",
                                            topic.name());
                    break;
                }
            }
            // Our place is ours alone, so its reader region is free unless the ledger and the ring disagree
            // (memory another process corrupted).
            subscriber.reader_ = subscriber.rings_.broadcast.add_reader_at(place);
            if (subscriber.reader_ < 0) {
                status = platform::fail(EPROTO, "topic '%s': reader %d is taken although its subscriber place was "
                                                "free (corrupt topic?)", topic.name(), place);
            }
            break;
    }
    if (status != 0) {
        (void)give_back_place(topic, EndpointRole::subscriber, static_cast<std::uint32_t>(place), holder);
        return status;
    }
    subscriber.holder_ = holder;
    subscriber.place_ = static_cast<std::uint32_t>(place);
    subscriber.topic_ = topic;
    subscriber.max_message_bytes_ = topic.max_message_bytes();
    out = static_cast<Subscriber&&>(subscriber);
    return 0;
}

Subscriber& Subscriber::operator=(Subscriber&& other) noexcept {
    if (this == &other) return *this;
    close();
    topic_ = other.topic_;
    kind_ = other.kind_;
    rings_ = other.rings_;
    clock_ = other.clock_;
    reader_ = other.reader_;
    holder_ = other.holder_;
    place_ = other.place_;
    pending_ = other.pending_;
    max_message_bytes_ = other.max_message_bytes_;
    next_ = other.next_;
    corrupt_ = other.corrupt_;
    slot_bytes_ = other.slot_bytes_;
    scratch_ = static_cast<std::unique_ptr<std::byte[]>&&>(other.scratch_);
    stuck_position_ = other.stuck_position_;
    stuck_since_ns_ = other.stuck_since_ns_;
    recovered_ = other.recovered_;
    other.topic_ = Topic{};
    other.reader_ = -1;
    other.pending_ = 0;
    return *this;
}

void Subscriber::close() noexcept {
    if (!topic_.valid()) return;
    release();
    // The reader first, the place second: whoever takes the place next finds its reader region free. A place a
    // peer reclaimed (it judged this process dead) took our reader with it: the region is no longer ours.
    const bool still_ours =
        places_of(topic_.header(), EndpointRole::subscriber)[place_].load(std::memory_order_acquire) == holder_;
    if (reader_ >= 0 && still_ours) (void)rings_.broadcast.remove_reader(reader_);
    reader_ = -1;
    (void)give_back_place(topic_, EndpointRole::subscriber, place_, holder_);
    topic_ = Topic{};
}

std::uint32_t Subscriber::receive(Message* out, std::uint32_t max) noexcept {
    release();
    std::uint32_t delivered = 0;
    auto keep = [&](const std::byte* slot, std::uint64_t position) {
        if (accept(slot, position, out[delivered])) ++delivered;
    };
    std::uint64_t first = 0;   // the ring position of slot(0)
    switch (kind_) {
        case Kind::spsc:
            pending_ = rings_.spsc.available(max);
            first = rings_.spsc.read_position();
            for (std::uint32_t i = 0; i < pending_; ++i) keep(rings_.spsc.slot(i), first + i);
            break;
        case Kind::mpsc:
            pending_ = rings_.mpsc.available(max);
            first = rings_.mpsc.read_position();
            for (std::uint32_t i = 0; i < pending_; ++i) {
                if (!rings_.mpsc.reclaimed(i)) keep(rings_.mpsc.slot(i), first + i);
            }
            break;
        case Kind::broadcast:
            pending_ = rings_.broadcast.available(reader_, max);
            first = rings_.broadcast.reader_position(reader_);
            for (std::uint32_t i = 0; i < pending_; ++i) {
                if (!rings_.broadcast.reclaimed(reader_, i)) keep(rings_.broadcast.slot(reader_, i), first + i);
            }
            break;
        case Kind::broadcast_lossy:
            // Copies: each message into its own scratch slot, so the batch stays valid until the next call.
            if (max > kMaxPollBatch) max = kMaxPollBatch;
            for (std::uint32_t i = 0; i < max; ++i) {
                std::byte* copy = scratch_.get() + std::size_t{i} * slot_bytes_;
                if (rings_.broadcast.poll_copy(reader_, 1, copy, keep) == 0) break;
            }
            break;
    }
    return delivered;
}

void Subscriber::release() noexcept {
    if (pending_ == 0) return;
    switch (kind_) {
        case Kind::spsc: rings_.spsc.release(pending_); break;
        case Kind::mpsc: rings_.mpsc.release(pending_); break;
        case Kind::broadcast: rings_.broadcast.release(reader_, pending_); break;
        case Kind::broadcast_lossy: break;
    }
    pending_ = 0;
}

int Subscriber::recover_stalled_claim(std::uint64_t now_ns, std::uint64_t stuck_ns) noexcept {
    const bool broadcast = kind_ == Kind::broadcast || kind_ == Kind::broadcast_lossy;
    if (kind_ == Kind::spsc || (broadcast && !rings_.broadcast.multi_writer())) return -ENOTSUP;
    release();
    std::uint64_t position = 0;
    std::byte* slot = nullptr;
    if (broadcast) {
        if (!rings_.broadcast.waits_at_claim(reader_, position)) {   // messages flow, or nothing is claimed
            stuck_position_ = UINT64_MAX;
            return 0;
        }
        slot = const_cast<std::byte*>(rings_.broadcast.slot(reader_, 0));
    } else {
        if (rings_.mpsc.available(1) != 0) {   // messages flow
            stuck_position_ = UINT64_MAX;
            return 0;
        }
        position = rings_.mpsc.read_position();   // our own count, not the head in the block
        if (rings_.mpsc.claimed_position() <= position) return 0;   // empty, nothing claimed
        slot = const_cast<std::byte*>(rings_.mpsc.slot(0));
    }
    if (position != stuck_position_) {
        stuck_position_ = position;
        stuck_since_ns_ = now_ns;
    }
    // The claimer may be writing these words right now: read them atomically, as it writes them.
    auto* header = reinterpret_cast<MessageHeader*>(slot);
    const std::uint64_t marker = std::atomic_ref<std::uint64_t>(header->sequence).load(std::memory_order_relaxed);
    const std::uint64_t pid = std::atomic_ref<std::uint64_t>(header->hlc_word).load(std::memory_order_relaxed);
    bool dead = false;
    if (marker == claimed_marker(position) && plausible_claimer(pid)) {
        dead = process_liveness(static_cast<std::uint32_t>(pid), 0) != Liveness::alive;
    } else {
        dead = now_ns - stuck_since_ns_ >= stuck_ns;   // no marker yet, or one we cannot believe: only time tells
    }
    if (!dead) return 0;
    // -EALREADY: committed after all (it will be delivered), or another subscriber reclaimed it first.
    if ((broadcast ? rings_.broadcast.reclaim(position) : rings_.mpsc.reclaim(position)) != 0) return 0;
    ++recovered_;
    stuck_position_ = UINT64_MAX;
    return 1;
}

}  // namespace cf::bus
