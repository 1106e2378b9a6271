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

template <class Reclaim>
int SubscriberState::recover_claim(std::uint64_t position, const std::byte* slot, std::uint64_t now_ns,
                                   std::uint64_t stuck_ns, Reclaim&& reclaim) noexcept {
    if (position != stuck_position_) {
        stuck_position_ = position;
        stuck_since_ns_ = now_ns;
    }
    // The claimer may be writing these words right now: read them atomically, as it writes them.
    auto* header = reinterpret_cast<MessageHeader*>(const_cast<std::byte*>(slot));
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
    if (reclaim(position) != 0) return 0;
    ++recovered_;
    stuck_position_ = UINT64_MAX;
    return 1;
}

template <class Reader>
int TopicSubscriber<Reader>::open(const Topic& topic, EndpointHolder holder, TopicSubscriber& out) noexcept {
    const int place = take_place(topic, EndpointRole::subscriber, holder);
    if (place < 0) return place;
    TopicSubscriber subscriber;
    int status = subscriber.reader_.attach(topic, place);
    if constexpr (!Reader::kInPlace) {
        if (status == 0) {
            // Each copy starts 64-byte aligned, so its MessageHeader is aligned too.
            subscriber.slot_bytes_ =
                (subscriber.reader_.ring.slot_bytes() + kCacheLine - 1) / kCacheLine * kCacheLine;
            subscriber.scratch_.reset(new (std::nothrow)
                                          std::byte[std::size_t{kMaxPollBatch} * subscriber.slot_bytes_]);
            if (!subscriber.scratch_) {
                (void)subscriber.reader_.ring.remove_reader(subscriber.reader_.index);
                status = platform::fail(ENOMEM, "topic '%s': no memory for the lossy subscriber's scratch",
                                        topic.name());
            }
        }
    }
    if (status != 0) {
        (void)give_back_place(topic, EndpointRole::subscriber, static_cast<std::uint32_t>(place), holder);
        return status;
    }
    subscriber.holder_ = holder;
    subscriber.place_ = static_cast<std::uint32_t>(place);
    subscriber.topic_ = topic;
    subscriber.max_message_bytes_ = topic.max_message_bytes();
    out = std::move(subscriber);
    return 0;
}

template <class Reader>
void TopicSubscriber<Reader>::close() noexcept {
    if (!topic_.valid()) return;
    release();
    if constexpr (requires { reader_.index; }) {
        // The reader first, the place second: whoever takes the place next finds its reader region free. A place a
        // peer reclaimed (it judged this process dead) took our reader with it: the region is no longer ours.
        const bool still_ours =
            places_of(topic_.header(), EndpointRole::subscriber)[place_].load(std::memory_order_acquire) == holder_;
        if (reader_.index >= 0 && still_ours) (void)reader_.ring.remove_reader(reader_.index);
        reader_.index = -1;
    }
    (void)give_back_place(topic_, EndpointRole::subscriber, place_, holder_);
    topic_ = Topic{};
}

template <class Reader>
int TopicSubscriber<Reader>::recover_stalled_claim(std::uint64_t now_ns, std::uint64_t stuck_ns) noexcept {
    if constexpr (std::is_same_v<Reader, SpscReader>) {
        return -ENOTSUP;
    } else if constexpr (std::is_same_v<Reader, MpscReader>) {
        release();
        MpscRing& ring = reader_.ring;
        if (ring.available(1) != 0) {   // messages flow
            not_stuck();
            return 0;
        }
        const std::uint64_t position = ring.read_position();   // our own count, not the head in the block
        if (ring.claimed_position() <= position) return 0;     // empty, nothing claimed
        return recover_claim(position, ring.slot(0), now_ns, stuck_ns,
                             [&](std::uint64_t p) { return ring.reclaim(p); });
    } else if constexpr (!decltype(reader_.ring)::kMultiWriter) {
        return -ENOTSUP;   // one publisher: nobody else's claim can hold us up
    } else {
        auto& ring = reader_.ring;
        release();
        std::uint64_t position = 0;
        if (!ring.waits_at_claim(reader_.index, position)) {   // messages flow, or nothing is claimed
            not_stuck();
            return 0;
        }
        return recover_claim(position, ring.slot_of_claim(position), now_ns, stuck_ns,
                             [&](std::uint64_t p) { return ring.reclaim(p); });
    }
}

template class TopicSubscriber<SpscReader>;
template class TopicSubscriber<MpscReader>;
template class TopicSubscriber<BroadcastReader>;
template class TopicSubscriber<BroadcastMultiReader>;
template class TopicSubscriber<LossyReader>;
template class TopicSubscriber<LossyMultiReader>;

namespace {

template <class Reader, class Variant>
int open_typed(const Topic& topic, EndpointHolder holder, Variant& out) noexcept {
    TopicSubscriber<Reader> typed;
    const int status = TopicSubscriber<Reader>::open(topic, holder, typed);
    if (status == 0) out = std::move(typed);
    return status;
}

}  // namespace

int Subscriber::open(const Topic& topic, EndpointHolder holder, Subscriber& out) noexcept {
    if (!topic.valid()) return platform::fail(EINVAL, "subscriber: the topic is not attached");
    out.close();
    switch (topic.kind()) {
        case RingKind::spsc: return open_typed<SpscReader>(topic, holder, out.typed_);
        case RingKind::mpsc: return open_typed<MpscReader>(topic, holder, out.typed_);
        case RingKind::broadcast: {
            const bool lossy = topic.overflow() == OverflowPolicy::lossy;
            if (topic.max_publishers() > 1) {
                return lossy ? open_typed<LossyMultiReader>(topic, holder, out.typed_)
                             : open_typed<BroadcastMultiReader>(topic, holder, out.typed_);
            }
            return lossy ? open_typed<LossyReader>(topic, holder, out.typed_)
                         : open_typed<BroadcastReader>(topic, holder, out.typed_);
        }
    }
    return platform::fail(EINVAL, "subscriber: unknown topic kind");
}

}  // namespace cf::bus
