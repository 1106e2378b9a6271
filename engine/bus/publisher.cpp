#include "engine/bus/publisher.hpp"

#include <unistd.h>

#include "platform/os/last_error.hpp"

namespace cf::bus {

int Publisher::open(const Topic& topic, HybridLogicalClock& clock, EndpointHolder holder, Publisher& out) noexcept {
    const int place = take_place(topic, EndpointRole::publisher, holder);
    if (place < 0) return place;
    Publisher publisher;
    const int status = publisher.rings_.attach(topic);
    switch (status == 0 ? topic.kind() : TopicKind{}) {   // nothing to read from a view that did not attach
        case TopicKind::spsc: publisher.kind_ = Kind::spsc; break;
        case TopicKind::mpsc: publisher.kind_ = Kind::mpsc; break;
        case TopicKind::broadcast:
            publisher.kind_ = publisher.rings_.broadcast.multi_writer() ? Kind::broadcast_multi : Kind::broadcast_single;
            break;
    }
    if (status != 0) {
        (void)give_back_place(topic, EndpointRole::publisher, static_cast<std::uint32_t>(place), holder);
        return status;
    }
    publisher.holder_ = holder;
    publisher.place_ = static_cast<std::uint32_t>(place);
    publisher.topic_ = topic;
    publisher.clock_ = &clock;
    publisher.max_message_bytes_ = topic.max_message_bytes();
    publisher.pid_ = static_cast<std::uint64_t>(getpid());
    out = static_cast<Publisher&&>(publisher);
    return 0;
}

Publisher& Publisher::operator=(Publisher&& other) noexcept {
    if (this == &other) return *this;
    close();
    topic_ = other.topic_;
    kind_ = other.kind_;
    rings_ = other.rings_;
    clock_ = other.clock_;
    claimed_ = other.claimed_;
    claimed_length_ = other.claimed_length_;
    max_message_bytes_ = other.max_message_bytes_;
    position_ = other.position_;
    pid_ = other.pid_;
    holder_ = other.holder_;
    place_ = other.place_;
    other.topic_ = Topic{};
    other.claimed_ = nullptr;
    return *this;
}

std::uint64_t Publisher::next_position() const noexcept {
    switch (kind_) {
        case Kind::spsc: return rings_.spsc.claim_position();
        case Kind::mpsc: return rings_.mpsc.claimed_position();
        case Kind::broadcast_single: return rings_.broadcast.claim_position();
        case Kind::broadcast_multi: return rings_.broadcast.writer_position();
    }
    return 0;
}

int Publisher::publish_abandoned(std::uint32_t count) noexcept {
    if (claimed_ != nullptr) return -EBUSY;
    if (kind_ == Kind::spsc || kind_ == Kind::broadcast_single) {
        const bool spsc = kind_ == Kind::spsc;
        const std::uint64_t first = spsc ? rings_.spsc.claim_position() : rings_.broadcast.claim_position();
        const std::uint32_t claimed =
            spsc ? rings_.spsc.try_claim_batch(count) : rings_.broadcast.try_claim_batch(count);
        for (std::uint32_t i = 0; i < claimed; ++i) {
            write_abandoned(spsc ? rings_.spsc.claimed_slot(i) : rings_.broadcast.claimed_slot(i), first + i);
        }
        if (claimed != 0) {
            if (spsc) rings_.spsc.commit();
            else rings_.broadcast.commit();
        }
        return static_cast<int>(claimed);
    }
    std::uint32_t used = 0;
    for (; used < count; ++used) {
        std::byte* data = nullptr;
        if (try_claim(0, data) != 0) break;
        write_abandoned(claimed_, position_);
        // -ESTALE (a subscriber took the claim over) still used the position: it reads as empty either way.
        (void)release_claim();
    }
    return static_cast<int>(used);
}

void Publisher::close() noexcept {
    if (!topic_.valid()) return;
    if (claimed_ != nullptr && (kind_ == Kind::mpsc || kind_ == Kind::broadcast_multi)) {
        // Other writers' positions after ours wait for this one: publish it as an empty, abandoned message.
        write_abandoned(claimed_, position_);
        (void)release_claim();
    }
    claimed_ = nullptr;
    // false: reclaimed meanwhile by a peer that judged this process dead; the place is not ours to free.
    (void)give_back_place(topic_, EndpointRole::publisher, place_, holder_);
    topic_ = Topic{};
}

}  // namespace cf::bus
