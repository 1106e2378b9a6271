// Our contenders for the bus scenarios, behind the same interface as the peers (bus_peers.hpp):
//  - CfSpscChannel / CfMpscChannel: the bare rings, claim + write in place + commit, read in place;
//  - CfTopicChannel: what users call: a topic with a publisher and a subscriber, so every message also gets its
//    header (sequence, length) and an HLC stamp from the publishing thread's clock lane at commit, and the
//    receiving thread merges every stamp it receives into its own lane (the receive rule).
// Ring memory is one aligned allocation per channel at set-up; nothing is allocated per message.
#pragma once

#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <type_traits>

#include "bench/cf-latency/bus_peers.hpp"
#include "engine/bus/mpsc_ring.hpp"
#include "engine/bus/publisher.hpp"
#include "engine/bus/spsc_ring.hpp"
#include "engine/bus/subscriber.hpp"
#include "engine/bus/topic.hpp"
#include "platform/os/last_error.hpp"

namespace cf::latency {

struct AlignedFree {
    void operator()(void* p) const noexcept { std::free(p); }
};
using AlignedBlock = std::unique_ptr<void, AlignedFree>;

inline AlignedBlock allocate_block(std::size_t bytes) {
    return AlignedBlock(std::aligned_alloc(64, (bytes + 63) / 64 * 64));
}

// Writes the message the way every copying peer's producer does: the whole N bytes.
template <std::size_t N>
inline void write_message(std::byte* slot, const BusMessage<N>& prepared, std::uint64_t stamp,
                          std::uint64_t sequence) noexcept {
    std::memcpy(slot, &stamp, 8);
    std::memcpy(slot + 8, &sequence, 8);
    std::memcpy(slot + 16, prepared.body, N - 16);
}

// A bare ring as a channel: SpscRing (one producer) or MpscRing (any threads send; its producer side is stateless).
template <std::size_t N, class Ring>
class CfRingChannel {
public:
    static constexpr bool kSingleProducer = std::is_same_v<Ring, bus::SpscRing>;
    static constexpr const char* kName = kSingleProducer ? "cf::bus::SpscRing" : "cf::bus::MpscRing";
    explicit CfRingChannel(std::uint32_t depth) {
        const bus::RingGeometry geometry{depth, static_cast<std::uint32_t>(N)};
        const std::size_t bytes = Ring::bytes_needed(geometry);
        block_ = allocate_block(bytes);
        if (Ring::format(block_.get(), bytes, geometry) != 0 || Ring::attach(block_.get(), bytes, ring_) != 0) {
            error_ = platform::last_error_message();
        }
        std::memset(&prepared_, 0x5a, sizeof prepared_);
    }
    bool ok() const { return error_.empty(); }
    std::string error() const { return error_; }
    bool try_send(std::uint64_t stamp, std::uint64_t sequence) noexcept {
        std::uint64_t position = 0;
        std::byte* slot = nullptr;
        if constexpr (kSingleProducer) slot = ring_.try_claim();
        else slot = ring_.try_claim(position);
        if (slot == nullptr) return false;
        write_message<N>(slot, prepared_, stamp, sequence);
        if constexpr (kSingleProducer) ring_.commit();
        else ring_.commit(position);
        return true;
    }
    // For the burst channel.
    Ring& ring() noexcept { return ring_; }
    const BusMessage<N>& prepared() const noexcept { return prepared_; }

    bool try_receive(std::uint64_t& stamp, std::uint64_t& sequence) noexcept {
        if (ring_.available(1) == 0) return false;
        read_message<N>(ring_.slot(0), stamp, sequence);
        ring_.release(1);
        return true;
    }

private:
    AlignedBlock block_;
    Ring ring_;
    std::string error_;
    BusMessage<N> prepared_;
};

template <std::size_t N>
using CfSpscChannel = CfRingChannel<N, bus::SpscRing>;
template <std::size_t N>
using CfMpscChannel = CfRingChannel<N, bus::MpscRing>;

// The process's clock, as an engine has one: every topic commit in the process stamps from it.
inline HybridLogicalClock& bench_process_clock() {
    static HybridLogicalClock clock{HybridLogicalClock::Config{}};
    return clock;
}

// A clock whose physical time never moves: its stamps cost the lane's compares but no counter read. Only for the
// row that shows what the counter read costs a topic (every stamp is then logical ticks above one instant).
inline Instant fixed_physical_time(void*) { return Instant::from_unix_nanos(1'700'000'000'000'000'000); }
inline HybridLogicalClock& bench_fixed_clock() {
    static HybridLogicalClock clock{[] {
        HybridLogicalClock::Config config;
        config.source = &fixed_physical_time;
        return config;
    }()};
    return clock;
}

// A publisher and a subscriber as one channel end: what CfTopicChannel and the ipc scenario's ends share.
template <std::size_t N>
struct TopicEnds {
    bus::Publisher publisher;
    bus::Subscriber subscriber;
    BusMessage<N> prepared;

    TopicEnds() { std::memset(&prepared, 0x5a, sizeof prepared); }
    bool try_send(std::uint64_t stamp, std::uint64_t sequence) noexcept {
        std::byte* data = nullptr;
        if (publisher.try_claim(N, data) != 0) return false;
        write_message<N>(data, prepared, stamp, sequence);
        return publisher.commit(N) == 0;
    }
    bool try_receive(std::uint64_t& stamp, std::uint64_t& sequence) noexcept {
        return subscriber.poll(1, [&](const bus::Message& m) { read_message<N>(m.data, stamp, sequence); }) != 0;
    }
};

// kCounterClock false: the same topic stamped from bench_fixed_clock(), to measure the counter read's share.
template <std::size_t N, bool kCounterClock = true>
class CfTopicChannel {
public:
    static constexpr const char* kName = kCounterClock
                                             ? "cf topic (publish/poll, HLC stamp)"
                                             : "cf topic, HLC stamp without the counter read (fixed physical time)";
    explicit CfTopicChannel(std::uint32_t depth) {
        HybridLogicalClock& clock = kCounterClock ? bench_process_clock() : bench_fixed_clock();
        bus::TopicConfig config;
        config.name = "bench";
        config.max_message_bytes = static_cast<std::uint32_t>(N);
        config.depth = depth;
        const std::size_t bytes = bus::Topic::bytes_needed(config);
        block_ = allocate_block(bytes);
        bus::Topic topic;
        if (bus::Topic::format(block_.get(), bytes, config) != 0 || bus::Topic::attach(block_.get(), bytes, topic) != 0 ||
            bus::Publisher::open(topic, clock, ends_.publisher) != 0 ||
            bus::Subscriber::open(topic, ends_.subscriber) != 0) {
            error_ = platform::last_error_message();
        }
        ends_.subscriber.set_clock(&clock);
    }
    bool ok() const { return error_.empty(); }
    std::string error() const { return error_; }
    bool try_send(std::uint64_t stamp, std::uint64_t sequence) noexcept { return ends_.try_send(stamp, sequence); }
    TopicEnds<N>& ends() noexcept { return ends_; }
    bool try_receive(std::uint64_t& stamp, std::uint64_t& sequence) noexcept {
        return ends_.try_receive(stamp, sequence);
    }

private:
    AlignedBlock block_;
    TopicEnds<N> ends_;
    std::string error_;
};

// Bursts through the bare ring: claim a batch, write in place, one commit; poll a batch in place.
template <std::size_t N>
class CfSpscBurstChannel {
public:
    static constexpr const char* kName = "cf::bus::SpscRing claim_batch/poll";
    explicit CfSpscBurstChannel(std::uint32_t depth) : channel_(depth) {}
    bool ok() const { return channel_.ok(); }
    std::string error() const { return channel_.error(); }
    std::uint32_t try_send_burst(std::uint64_t first_sequence) noexcept {
        bus::SpscRing& ring = channel_.ring();
        const std::uint32_t count = ring.try_claim_batch(kBurst);
        for (std::uint32_t i = 0; i < count; ++i) {
            write_message<N>(ring.claimed_slot(i), channel_.prepared(), 0, first_sequence + i);
        }
        if (count != 0) ring.commit();
        return count;
    }
    bool try_receive(std::uint64_t& stamp, std::uint64_t& sequence) noexcept {
        return inbox_.take(stamp, sequence, [&](std::uint64_t* stamps, std::uint64_t* sequences) {
            std::uint32_t i = 0;
            return channel_.ring().poll(kBurst, [&](const std::byte* slot) {
                read_message<N>(slot, stamps[i], sequences[i]);
                ++i;
            });
        });
    }

private:
    CfRingChannel<N, bus::SpscRing> channel_;
    BurstInbox inbox_;
};

// Bursts through a topic: publish_batch (one HLC reservation, one commit) and poll of a batch.
template <std::size_t N>
class CfTopicBurstChannel {
public:
    static constexpr const char* kName = "cf topic publish_batch/poll";
    explicit CfTopicBurstChannel(std::uint32_t depth) : topic_(depth) {
        std::memset(outgoing_, 0x5a, sizeof outgoing_);
        for (std::uint32_t i = 0; i < kBurst; ++i) {
            outgoing_[i].stamp = 0;   // throughput reads it as the producer
            data_[i] = &outgoing_[i];
            lengths_[i] = static_cast<std::uint32_t>(N);
        }
    }
    bool ok() const { return topic_.ok(); }
    std::string error() const { return topic_.error(); }
    std::uint32_t try_send_burst(std::uint64_t first_sequence) noexcept {
        for (std::uint32_t i = 0; i < kBurst; ++i) outgoing_[i].sequence = first_sequence + i;
        const int sent = topic_.ends().publisher.publish_batch(data_, lengths_, kBurst);
        return sent > 0 ? static_cast<std::uint32_t>(sent) : 0;
    }
    bool try_receive(std::uint64_t& stamp, std::uint64_t& sequence) noexcept {
        return inbox_.take(stamp, sequence, [&](std::uint64_t* stamps, std::uint64_t* sequences) {
            std::uint32_t i = 0;
            topic_.ends().subscriber.poll(kBurst, [&](const bus::Message& m) {
                read_message<N>(m.data, stamps[i], sequences[i]);
                ++i;
            });
            return i;
        });
    }

private:
    CfTopicChannel<N> topic_;
    BusMessage<N> outgoing_[kBurst];
    const void* data_[kBurst];
    std::uint32_t lengths_[kBurst];
    BurstInbox inbox_;
};

}  // namespace cf::latency
