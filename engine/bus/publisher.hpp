// Publishing on a topic: claim a slot, write the payload in place, commit (zero copy), or publish() to copy.
// The commit writes the message header (sequence = ring position, length, the HLC stamp taken at commit from the
// calling thread's clock lane) and then makes the slot visible with the ring's release store.
//
// Two levels. TopicPublisher<Writer> runs one ring protocol (topic_protocols.hpp), fixed by its type: no switch
// per message. Publisher opens the protocol the topic calls for and holds it in a variant: each call dispatches
// once (a batch is one dispatch for the whole burst), and visit() hands the typed publisher to a loop that wants
// no dispatch at all.
//
// One publisher = one thread at a time. A publisher has at most one claim outstanding (claim, commit, claim...),
// which keeps commits in claim order for the single-writer rings. Hot-path calls return 0 or a negative errno
// and never block: -EAGAIN when the topic is full (back-pressure: try again, or drop), -EMSGSIZE when the
// message is larger than the topic's maximum, -EBUSY when a claim is already outstanding, -EINVAL for commit()
// without a claim or with a length above what was claimed, -ESTALE (multi-writer topics) when a subscriber
// reclaimed a claim that stalled past its recovery timeout (the message is dropped). They set no error message
// (that would cost on the hot path); the C API adds one. Zero-length messages are allowed.
#pragma once

#include <cerrno>
#include <cstdint>
#include <cstring>
#include <utility>
#include <variant>

#include "engine/bus/message.hpp"
#include "engine/bus/topic.hpp"
#include "engine/bus/topic_endpoints.hpp"
#include "engine/bus/topic_protocols.hpp"
#include "engine/time/hlc.hpp"

namespace cf::bus {

// What every publisher holds whatever its protocol: its place in the topic's ledger and its clock.
class PublisherPlace {
public:
    const Topic& topic() const noexcept { return topic_; }
    bool valid() const noexcept { return topic_.valid(); }
    std::uint32_t max_message_bytes() const noexcept { return max_message_bytes_; }

protected:
    // Counts a publish the topic refused because it was full (the topic header's counter of our place; we are its
    // only writer) and returns -EAGAIN.
    int refused_full() noexcept {
        std::atomic<std::uint64_t>& counter = topic_.header().publisher_full[place_];
        counter.store(counter.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
        return -EAGAIN;
    }

    Topic topic_;
    HybridLogicalClock* clock_ = nullptr;
    std::uint32_t max_message_bytes_ = 0;
    std::uint32_t place_ = 0;
    EndpointHolder holder_ = 0;
    std::uint64_t pid_ = 0;   // this process, for claim markers
};

template <class Writer>
class TopicPublisher : public PublisherPlace {
public:
    // Takes a publisher place for `holder` and attaches the writer. 0, -EUSERS (max_publishers reached), or the
    // ring's attach error; with a message.
    static int open(const Topic& topic, HybridLogicalClock& clock, EndpointHolder holder,
                    TopicPublisher& out) noexcept;

    TopicPublisher() noexcept = default;
    TopicPublisher(TopicPublisher&& other) noexcept { *this = std::move(other); }
    TopicPublisher& operator=(TopicPublisher&& other) noexcept {
        if (this == &other) return *this;
        close();
        static_cast<PublisherPlace&>(*this) = other;
        writer_ = other.writer_;
        claimed_ = other.claimed_;
        claimed_length_ = other.claimed_length_;
        position_ = other.position_;
        other.topic_ = Topic{};
        other.claimed_ = nullptr;
        return *this;
    }
    TopicPublisher(const TopicPublisher&) = delete;
    TopicPublisher& operator=(const TopicPublisher&) = delete;
    ~TopicPublisher() { close(); }

    // Detaches and gives the place back. An outstanding claim is abandoned: on a single-writer topic it was never
    // visible; on a multi-writer topic it is committed as an empty message (positions behind it wait for it).
    void close() noexcept;

    // A slot for a message of up to `length` bytes, written in place before commit().
    int try_claim(std::uint32_t length, std::byte*& data) noexcept {
        if (length > max_message_bytes_) return -EMSGSIZE;
        if (claimed_ != nullptr) return -EBUSY;
        std::byte* slot = writer_.try_claim(position_);
        if (slot == nullptr) [[unlikely]] return refused_full();
        if constexpr (Writer::kMultiWriter) write_claim_marker(slot, position_, pid_);
        claimed_ = slot;
        claimed_length_ = length;
        data = slot + kMessageHeaderBytes;
        return 0;
    }

    // Stamps and publishes the claimed slot with `length` bytes of payload (<= the claimed length).
    int commit(std::uint32_t length) noexcept {
        if (claimed_ == nullptr || length > claimed_length_) return -EINVAL;
        write_header(claimed_, position_, length, clock_->this_thread_lane().now());
        claimed_ = nullptr;
        return writer_.commit(position_) ? 0 : -ESTALE;
    }

    // Copies `length` bytes in and commits: try_claim + memcpy + commit.
    int publish(const void* data, std::uint32_t length) noexcept {
        std::byte* slot = nullptr;
        const int status = try_claim(length, slot);
        if (status != 0) return status;
        if (length != 0) std::memcpy(slot, data, length);
        return commit(length);
    }

    // Copies in and publishes up to `count` messages (data[i], lengths[i]) as one burst: on single-writer topics
    // with one HLC reservation (ClockLane::now_batch: consecutive stamps) and one release store for the whole
    // burst; multi-writer topics publish them one by one. Returns how many were published, in order (fewer than
    // `count`, possibly 0, when the topic filled up), or -EMSGSIZE (some length is above the maximum: nothing
    // published) or -EBUSY (a claim is outstanding).
    int publish_batch(const void* const* data, const std::uint32_t* lengths, std::uint32_t count) noexcept {
        if (claimed_ != nullptr) return -EBUSY;
        for (std::uint32_t i = 0; i < count; ++i) {
            if (lengths[i] > max_message_bytes_) return -EMSGSIZE;
        }
        if constexpr (Writer::kMultiWriter) {
            std::uint32_t published = 0;
            for (; published < count; ++published) {
                const int status = publish(data[published], lengths[published]);
                if (status == -EAGAIN) break;   // counted by try_claim
                if (status != 0) return published != 0 ? static_cast<int>(published) : status;
            }
            return static_cast<int>(published);
        } else {
            std::uint64_t first = 0;
            const std::uint32_t claimed = writer_.try_claim_batch(count, first);
            if (claimed < count) [[unlikely]] (void)refused_full();
            if (claimed == 0) return 0;
            for (std::uint32_t i = 0; i < claimed; ++i) {
                if (lengths[i] != 0) std::memcpy(writer_.claimed_slot(i) + kMessageHeaderBytes, data[i], lengths[i]);
            }
            // Stamped once the payloads are in (commit time), then made visible together.
            HlcStamp stamp = clock_->this_thread_lane().now_batch(claimed);
            for (std::uint32_t i = 0; i < claimed; ++i, ++stamp.word) {
                write_header(writer_.claimed_slot(i), first + i, lengths[i], stamp);
            }
            writer_.commit_batch();
            return static_cast<int>(claimed);
        }
    }

    // Publishes up to `count` empty messages marked kMessageAbandoned, which every subscriber consumes without
    // delivering: a way to move this topic's positions forward (a bridge keeps a republished topic's sequences
    // equal to the sender's by filling the sender's gaps). At most one ring's worth (depth) per call, and on
    // back-pressure topics only the free room (fewer, possibly 0, while subscribers lag; lossy topics overwrite
    // unread messages like any publish). Returns how many positions it used, or -EBUSY when a claim is
    // outstanding. Single-writer topics publish them with one release store; multi-writer topics one by one.
    int publish_abandoned(std::uint32_t count) noexcept {
        if (claimed_ != nullptr) return -EBUSY;
        std::uint32_t used = 0;
        if constexpr (Writer::kMultiWriter) {
            for (; used < count; ++used) {
                std::byte* slot = writer_.try_claim(position_);
                if (slot == nullptr) break;
                write_abandoned(slot, position_);
                // Taken over by a subscriber (false) still used the position: it reads as empty either way.
                (void)writer_.commit(position_);
            }
        } else {
            std::uint64_t first = 0;
            used = writer_.try_claim_batch(count, first);
            for (std::uint32_t i = 0; i < used; ++i) write_abandoned(writer_.claimed_slot(i), first + i);
            if (used != 0) writer_.commit_batch();
        }
        return static_cast<int>(used);
    }

    // The position the next claim gets: exact on single-writer topics; on multi-writer topics the shared tail as
    // it is now, which another publisher may take first.
    std::uint64_t next_position() const noexcept { return writer_.next_position(); }

private:
    Writer writer_;
    std::byte* claimed_ = nullptr;
    std::uint32_t claimed_length_ = 0;
    std::uint64_t position_ = 0;   // of the outstanding claim
};

class Publisher {
public:
    // Attaches a publisher to `topic` with the protocol its configuration calls for, stamping with `clock`
    // (which must outlive it), in a publisher place held by `holder` (topic_endpoints.hpp; SharedTopic passes its
    // process's registration). 0, -EUSERS when the topic already has max_publishers publishers, or a ring attach
    // error, with a message.
    static int open(const Topic& topic, HybridLogicalClock& clock, EndpointHolder holder, Publisher& out) noexcept;
    static int open(const Topic& topic, HybridLogicalClock& clock, Publisher& out) noexcept {
        return open(topic, clock, kInProcessHolder, out);
    }

    void close() noexcept { typed_ = std::monostate{}; }
    bool valid() const noexcept { return typed_.index() != 0; }

    // Calls f(TopicPublisher<Writer>&) with the typed publisher and returns what it returns, or `closed` on a
    // closed publisher: one dispatch, then a loop inside f runs with none.
    template <class Result, class F>
    Result visit(Result closed, F&& f) noexcept {
        return visit_protocol(typed_, closed, static_cast<F&&>(f));
    }

    int try_claim(std::uint32_t length, std::byte*& data) noexcept {
        return visit(-EINVAL, [&](auto& p) { return p.try_claim(length, data); });
    }
    int commit(std::uint32_t length) noexcept {
        return visit(-EINVAL, [&](auto& p) { return p.commit(length); });
    }
    int publish(const void* data, std::uint32_t length) noexcept {
        return visit(-EINVAL, [&](auto& p) { return p.publish(data, length); });
    }
    int publish_batch(const void* const* data, const std::uint32_t* lengths, std::uint32_t count) noexcept {
        return visit(-EINVAL, [&](auto& p) { return p.publish_batch(data, lengths, count); });
    }
    int publish_abandoned(std::uint32_t count) noexcept {
        return visit(-EINVAL, [&](auto& p) { return p.publish_abandoned(count); });
    }
    std::uint64_t next_position() const noexcept {
        return const_cast<Publisher*>(this)->visit(std::uint64_t{0}, [](auto& p) { return p.next_position(); });
    }
    std::uint32_t max_message_bytes() const noexcept { return place() != nullptr ? place()->max_message_bytes() : 0; }
    const Topic& topic() const noexcept {
        static const Topic kNone{};
        return place() != nullptr ? place()->topic() : kNone;
    }

private:
    const PublisherPlace* place() const noexcept {
        return std::visit(
            [](const auto& typed) -> const PublisherPlace* {
                if constexpr (std::is_base_of_v<PublisherPlace, std::decay_t<decltype(typed)>>) return &typed;
                else return nullptr;
            },
            typed_);
    }

    std::variant<std::monostate, TopicPublisher<SpscWriter>, TopicPublisher<MpscWriter>,
                 TopicPublisher<BroadcastWriter>, TopicPublisher<LossyBroadcastWriter>,
                 TopicPublisher<BroadcastMultiWriter>, TopicPublisher<LossyBroadcastMultiWriter>>
        typed_;
};

}  // namespace cf::bus
