#include "engine/bus/publisher.hpp"

#include <unistd.h>

#include "platform/os/last_error.hpp"

namespace cf::bus {

template <class Writer>
int TopicPublisher<Writer>::open(const Topic& topic, HybridLogicalClock& clock, EndpointHolder holder,
                                 TopicPublisher& out) noexcept {
    const int place = take_place(topic, EndpointRole::publisher, holder);
    if (place < 0) return place;
    TopicPublisher publisher;
    if (const int status = publisher.writer_.attach(topic); status != 0) {
        (void)give_back_place(topic, EndpointRole::publisher, static_cast<std::uint32_t>(place), holder);
        return status;
    }
    publisher.holder_ = holder;
    publisher.place_ = static_cast<std::uint32_t>(place);
    publisher.topic_ = topic;
    publisher.clock_ = &clock;
    publisher.max_message_bytes_ = topic.max_message_bytes();
    publisher.pid_ = static_cast<std::uint64_t>(getpid());
    out = std::move(publisher);
    return 0;
}

template <class Writer>
void TopicPublisher<Writer>::close() noexcept {
    if (!topic_.valid()) return;
    if constexpr (Writer::kMultiWriter) {
        if (claimed_ != nullptr) {
            // Other writers' positions after ours wait for this one: publish it as an empty, abandoned message.
            write_abandoned(claimed_, position_);
            (void)writer_.commit(position_);
        }
    }
    claimed_ = nullptr;
    // false: reclaimed meanwhile by a peer that judged this process dead; the place is not ours to free.
    (void)give_back_place(topic_, EndpointRole::publisher, place_, holder_);
    topic_ = Topic{};
}

template class TopicPublisher<SpscWriter>;
template class TopicPublisher<MpscWriter>;
template class TopicPublisher<BroadcastWriter>;
template class TopicPublisher<LossyBroadcastWriter>;
template class TopicPublisher<BroadcastMultiWriter>;
template class TopicPublisher<LossyBroadcastMultiWriter>;

namespace {

template <class Writer, class Variant>
int open_typed(const Topic& topic, HybridLogicalClock& clock, EndpointHolder holder, Variant& out) noexcept {
    TopicPublisher<Writer> typed;
    const int status = TopicPublisher<Writer>::open(topic, clock, holder, typed);
    if (status == 0) out = std::move(typed);
    return status;
}

}  // namespace

int Publisher::open(const Topic& topic, HybridLogicalClock& clock, EndpointHolder holder, Publisher& out) noexcept {
    if (!topic.valid()) return platform::fail(EINVAL, "publisher: the topic is not attached");
    out.close();
    switch (topic.kind()) {
        case RingKind::spsc: return open_typed<SpscWriter>(topic, clock, holder, out.typed_);
        case RingKind::mpsc: return open_typed<MpscWriter>(topic, clock, holder, out.typed_);
        case RingKind::broadcast: {
            const bool lossy = topic.overflow() == OverflowPolicy::lossy;
            if (topic.max_publishers() > 1) {
                return lossy ? open_typed<LossyBroadcastMultiWriter>(topic, clock, holder, out.typed_)
                             : open_typed<BroadcastMultiWriter>(topic, clock, holder, out.typed_);
            }
            return lossy ? open_typed<LossyBroadcastWriter>(topic, clock, holder, out.typed_)
                         : open_typed<BroadcastWriter>(topic, clock, holder, out.typed_);
        }
    }
    return platform::fail(EINVAL, "publisher: unknown topic kind");
}

}  // namespace cf::bus
