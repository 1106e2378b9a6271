// Topics: configuration checks, the ring each configuration gets, publish/claim/commit and poll/receive on every
// kind, the protocol each kind and broadcast mode opens, the header each message carries (sequence, HLC stamp at
// commit), back-pressure, lossy accounting, limits on publishers and subscribers, and a model-checked random run.
#include <doctest/doctest.h>

#include <unistd.h>

#include <array>
#include <atomic>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <memory>
#include <random>
#include <string>
#include <thread>
#include <type_traits>
#include <vector>

#include "engine/bus/idle_strategy.hpp"
#include "engine/bus/publisher.hpp"
#include "engine/bus/subscriber.hpp"
#include "engine/bus/topic.hpp"
#include "platform/os/last_error.hpp"
#include "tests/bus/topic_test_support.hpp"

using namespace cf;
using namespace cf::bus;
using namespace cf::test;

TEST_CASE("configuration: each kind of topic gets its ring; bad configurations are refused with a message") {
    CHECK(topic_kind(config_of(64, 8)) == RingKind::spsc);
    CHECK(topic_kind(config_of(64, 8, 3, 1)) == RingKind::mpsc);
    CHECK(topic_kind(config_of(64, 8, 1, 2)) == RingKind::broadcast);
    CHECK(topic_kind(config_of(64, 8, 1, 1, OverflowPolicy::lossy)) == RingKind::broadcast);
    CHECK(check_topic_config(config_of(64, 8)) == 0);

    TopicConfig bad = config_of(64, 8);
    bad.name = "no spaces";
    CHECK(check_topic_config(bad) == -EINVAL);
    CHECK(std::string(platform::last_error_message()).find("letters, digits") != std::string::npos);
    bad.name = "";
    CHECK(check_topic_config(bad) == -EINVAL);
    bad.name = nullptr;
    CHECK(check_topic_config(bad) == -EINVAL);
    const std::string long_name(64, 'a');
    bad.name = long_name.c_str();
    CHECK(check_topic_config(bad) == -EINVAL);
    CHECK(check_topic_config(config_of(0, 8)) == -EINVAL);
    CHECK(check_topic_config(config_of(kMaxTopicMessageBytes + 1, 8)) == -EINVAL);
    CHECK(check_topic_config(config_of(kMaxTopicMessageBytes, 2)) == 0);
    CHECK(check_topic_config(config_of(64, 12)) == -EINVAL);   // not a power of two
    CHECK(std::string(platform::last_error_message()).find("depth 12") != std::string::npos);
    CHECK(check_topic_config(config_of(64, 1)) == -EINVAL);
    CHECK(check_topic_config(config_of(64, 8, 0, 1)) == -EINVAL);
    CHECK(check_topic_config(config_of(64, 8, 1, 65)) == -EINVAL);
    CHECK(Topic::bytes_needed(config_of(64, 12)) == 0);

    // Layout ids: equal for equal configurations, different when anything that shapes the block differs.
    CHECK(topic_layout_id(config_of(64, 8)) == topic_layout_id(config_of(64, 8)));
    CHECK(topic_layout_id(config_of(64, 8)) != topic_layout_id(config_of(64, 16)));
    CHECK(topic_layout_id(config_of(64, 8)) != topic_layout_id(config_of(65, 8)));
    CHECK(topic_layout_id(config_of(64, 8, 1, 2)) != topic_layout_id(config_of(64, 8, 1, 3)));
}

namespace {

// Whether `endpoint` (a Publisher or Subscriber) runs the protocol `Typed`, by the typed object visit() hands out.
template <class Typed, class Endpoint>
bool runs(Endpoint& endpoint) {
    return endpoint.visit(false, [](auto& typed) { return std::is_same_v<std::decay_t<decltype(typed)>, Typed>; });
}

template <class Writer, class Reader>
void check_protocols(const char* name, const TopicConfig& config) {
    CAPTURE(name);
    TopicBlock block(config);
    HybridLogicalClock clock(clock_config(1));
    Publisher publisher;
    Subscriber subscriber;
    REQUIRE(Publisher::open(block.topic, clock, publisher) == 0);
    REQUIRE(Subscriber::open(block.topic, subscriber) == 0);
    CHECK(runs<TopicPublisher<Writer>>(publisher));
    CHECK(runs<TopicSubscriber<Reader>>(subscriber));
    CHECK(publisher.publish("x", 1) == 0);
    CHECK(drain(subscriber) == std::vector<std::string>{"x"});
}

}  // namespace

TEST_CASE("each kind of topic opens the protocol of its ring, and a broadcast topic the one of its mode") {
    check_protocols<SpscWriter, SpscReader>("spsc", config_of(16, 8));
    check_protocols<MpscWriter, MpscReader>("mpsc", config_of(16, 8, 2, 1));
    check_protocols<BroadcastWriter, BroadcastReader>("broadcast", config_of(16, 8, 1, 2));
    check_protocols<BroadcastMultiWriter, BroadcastMultiReader>("broadcast multi-writer", config_of(16, 8, 2, 2));
    check_protocols<LossyBroadcastWriter, LossyReader>("lossy", config_of(16, 8, 1, 2, OverflowPolicy::lossy));
    check_protocols<LossyBroadcastMultiWriter, LossyMultiReader>("lossy multi-writer",
                                                                 config_of(16, 8, 2, 2, OverflowPolicy::lossy));
}

TEST_CASE("attach refuses blocks that are not topics") {
    TopicBlock block(config_of(64, 8));
    Topic topic;
    CHECK(Topic::attach(nullptr, block.bytes, topic) == -EINVAL);
    CHECK(Topic::attach(block.memory.get(), 100, topic) == -EINVAL);
    CHECK(Topic::attach(block.memory.get(), block.bytes - 1, topic) == -EINVAL);
    auto* header = static_cast<TopicHeader*>(block.memory.get());
    header->layout_version = 99;
    CHECK(Topic::attach(block.memory.get(), block.bytes, topic) == -EPROTO);
    CHECK(std::string(platform::last_error_message()).find("layout version 99") != std::string::npos);
    header->layout_version = kTopicLayoutVersion;
    header->depth = 16;   // no longer matches the ring behind it
    CHECK(Topic::attach(block.memory.get(), block.bytes, topic) == -EPROTO);
    header->depth = 8;
    header->magic.store(0);
    CHECK(Topic::attach(block.memory.get(), block.bytes, topic) == -EPROTO);
    CHECK_FALSE(topic.valid());
}

TEST_CASE("every kind: messages arrive once, in order, with consecutive sequences and increasing HLC stamps") {
    for (const KindCase& c : every_kind(40, 8)) {
        CAPTURE(c.name);
        TopicBlock block(c.config);
        HybridLogicalClock clock(clock_config(7));
        Publisher publisher;
        Subscriber subscriber;
        REQUIRE(Publisher::open(block.topic, clock, publisher) == 0);
        REQUIRE(Subscriber::open(block.topic, subscriber) == 0);
        CHECK(subscriber.poll(8, [](const Message&) { FAIL("nothing was published"); }) == 0);

        // Three laps of the ring, in bursts of up to depth messages; empty and maximum-size messages included.
        std::vector<std::string> sent, seen;
        std::vector<std::uint64_t> sequences;
        std::vector<HlcStamp> stamps;
        std::uint32_t n = 0;
        for (int burst = 0; burst < 6; ++burst) {
            for (int i = 0; i < 4 + burst % 5; ++i, ++n) {
                std::string text;
                if (n % 5 == 0) text.assign(40, 'x');
                else if (n % 7 != 0) text.append("m").append(std::to_string(n));
                const int status = publisher.publish(text.data(), static_cast<std::uint32_t>(text.size()));
                if (status == -EAGAIN) break;   // full: back-pressure
                REQUIRE(status == 0);
                sent.push_back(text);
            }
            for (const std::string& s : drain(subscriber, &sequences, &stamps)) seen.push_back(s);
        }
        CHECK(seen == sent);
        for (std::size_t i = 0; i < sequences.size(); ++i) CHECK(sequences[i] == i);
        for (std::size_t i = 1; i < stamps.size(); ++i) CHECK(stamps[i - 1] < stamps[i]);
        for (const HlcStamp& stamp : stamps) CHECK(stamp.node == 7);
        CHECK(subscriber.lost() == 0);
        const std::string too_long(41, 'y');
        CHECK(publisher.publish(too_long.data(), 41) == -EMSGSIZE);
    }
}

TEST_CASE("publish_batch: one burst, consecutive sequences and stamps, partial when full, all-or-nothing on size") {
    struct Case {
        const char* name;
        TopicConfig config;
        bool consecutive_stamps;   // single-writer topics stamp a burst with one reservation
    };
    const Case cases[] = {
        {"spsc", config_of(16, 8), true},
        {"broadcast", config_of(16, 8, 1, 2), true},
        {"lossy", config_of(16, 8, 1, 1, OverflowPolicy::lossy), true},
        {"mpsc (one by one)", config_of(16, 8, 2, 1), false},
        {"broadcast multi-writer (one by one)", config_of(16, 8, 2, 2), false},
    };
    for (const Case& c : cases) {
        CAPTURE(c.name);
        TopicBlock block(c.config);
        HybridLogicalClock clock(clock_config(4));
        Publisher publisher;
        Subscriber subscriber;
        REQUIRE(Publisher::open(block.topic, clock, publisher) == 0);
        REQUIRE(Subscriber::open(block.topic, subscriber) == 0);

        const std::string texts[] = {"a", "", "ccc", "dddd", "0123456789abcdef", "f", "gg", "h", "i", "j"};
        const void* data[10];
        std::uint32_t lengths[10];
        for (int i = 0; i < 10; ++i) {
            data[i] = texts[i].data();
            lengths[i] = static_cast<std::uint32_t>(texts[i].size());
        }
        CHECK(publisher.publish_batch(data, lengths, 0) == 0);
        // Stamps come from this thread's clock lane: before and after are taken on the same lane.
        const HlcStamp before = clock.this_thread_lane().now();
        REQUIRE(publisher.publish_batch(data, lengths, 3) == 3);
        // 3 of 8 places taken: the next 10 fill the 5 left (lossy topics never wait, but one burst holds at most
        // the ring's 8 slots).
        const bool lossy = c.config.overflow == OverflowPolicy::lossy;
        const int second = publisher.publish_batch(data, lengths, 10);
        CHECK(second == (lossy ? 8 : 5));
        const HlcStamp after = clock.this_thread_lane().now();

        std::vector<std::uint64_t> sequences;
        std::vector<HlcStamp> stamps;
        const std::vector<std::string> seen = drain(subscriber, &sequences, &stamps);
        if (lossy) {
            CHECK(seen.size() + subscriber.lost() == 11);   // the ring kept the newest; the rest are counted
        } else {
            std::vector<std::string> sent;
            for (const int i : {0, 1, 2, 0, 1, 2, 3, 4}) sent.emplace_back(texts[i]);
            CHECK(seen == sent);
            for (std::size_t i = 0; i < sequences.size(); ++i) CHECK(sequences[i] == i);
        }
        REQUIRE(!stamps.empty());
        CHECK(before < stamps.front());
        CHECK(stamps.back() < after);
        for (std::size_t i = 1; i < stamps.size(); ++i) {
            CHECK(stamps[i - 1] < stamps[i]);
            if (c.consecutive_stamps && sequences[i] == sequences[i - 1] + 1 && sequences[i] != 3) {
                CHECK(stamps[i].word == stamps[i - 1].word + 1);   // one reservation per burst
            }
        }

        // A length above the maximum anywhere in the burst: nothing is published.
        const std::string too_long(17, 'z');
        data[2] = too_long.data();
        lengths[2] = 17;
        CHECK(publisher.publish_batch(data, lengths, 4) == -EMSGSIZE);
        CHECK(drain(subscriber).empty());
        // Not while a claim is outstanding.
        std::byte* slot = nullptr;
        REQUIRE(publisher.try_claim(4, slot) == 0);
        CHECK(publisher.publish_batch(data, lengths, 1) == -EBUSY);
        CHECK(publisher.commit(0) == 0);
    }
}

TEST_CASE("claim and commit in place; one claim at a time; commit shorter than claimed") {
    TopicBlock block(config_of(64, 4));
    HybridLogicalClock clock(clock_config(1));
    Publisher publisher;
    Subscriber subscriber;
    REQUIRE(Publisher::open(block.topic, clock, publisher) == 0);
    REQUIRE(Subscriber::open(block.topic, subscriber) == 0);
    std::byte* data = nullptr;
    CHECK(publisher.commit(0) == -EINVAL);                 // nothing claimed
    CHECK(publisher.try_claim(65, data) == -EMSGSIZE);
    REQUIRE(publisher.try_claim(64, data) == 0);
    CHECK(reinterpret_cast<std::uintptr_t>(data) % 8 == 0);
    std::byte* second = nullptr;
    CHECK(publisher.try_claim(8, second) == -EBUSY);
    std::memcpy(data, "hello, world", 12);
    CHECK(subscriber.poll(4, [](const Message&) { FAIL("not committed yet"); }) == 0);
    CHECK(publisher.commit(65) == -EINVAL);                // more than claimed
    REQUIRE(publisher.commit(5) == 0);
    CHECK(drain(subscriber) == std::vector<std::string>{"hello"});

    // Back-pressure: depth messages fit, the next is refused until the subscriber releases.
    for (int i = 0; i < 4; ++i) CHECK(publisher.publish("abc", 3) == 0);
    CHECK(publisher.publish("abc", 3) == -EAGAIN);
    CHECK(publisher.try_claim(3, data) == -EAGAIN);
    Message batch[8];
    CHECK(subscriber.receive(batch, 8) == 4);
    CHECK(publisher.publish("abc", 3) == -EAGAIN);         // received, not yet released
    subscriber.release();
    CHECK(publisher.publish("def", 3) == 0);
    REQUIRE(subscriber.receive(batch, 8) == 1);
    CHECK(std::string(reinterpret_cast<const char*>(batch[0].data), batch[0].length) == "def");
    CHECK(batch[0].sequence == 5);
}

TEST_CASE("publisher and subscriber limits hold; closing frees the place") {
    TopicBlock block(config_of(16, 8, 2, 3));
    HybridLogicalClock clock(clock_config(1));
    Publisher p1, p2, p3;
    CHECK(Publisher::open(block.topic, clock, p1) == 0);
    CHECK(Publisher::open(block.topic, clock, p2) == 0);
    CHECK(Publisher::open(block.topic, clock, p3) == -EUSERS);
    CHECK(std::string(platform::last_error_message()).find("publisher") != std::string::npos);
    p2.close();
    CHECK(Publisher::open(block.topic, clock, p3) == 0);
    Subscriber s[4];
    for (int i = 0; i < 3; ++i) CHECK(Subscriber::open(block.topic, s[i]) == 0);
    CHECK(Subscriber::open(block.topic, s[3]) == -EUSERS);
    s[0].close();
    CHECK(Subscriber::open(block.topic, s[3]) == 0);
    CHECK(places_taken(block.topic.header(), EndpointRole::subscriber) == 3);
    CHECK(places_taken(block.topic.header(), EndpointRole::publisher) == 2);

    TopicBlock single(config_of(16, 8));
    Subscriber a, b;
    CHECK(Subscriber::open(single.topic, a) == 0);
    CHECK(Subscriber::open(single.topic, b) == -EUSERS);
}

TEST_CASE("broadcast: every subscriber sees every message; a slow one holds the writer back") {
    TopicBlock block(config_of(16, 4, 1, 2));
    HybridLogicalClock clock(clock_config(1));
    Publisher publisher;
    Subscriber fast, slow;
    REQUIRE(Publisher::open(block.topic, clock, publisher) == 0);
    REQUIRE(Subscriber::open(block.topic, fast) == 0);
    REQUIRE(Subscriber::open(block.topic, slow) == 0);
    std::vector<std::string> sent;
    for (int i = 0; i < 4; ++i) {
        sent.push_back(std::string("b").append(std::to_string(i)));
        CHECK(publisher.publish(sent.back().data(), 2) == 0);
    }
    CHECK(drain(fast) == sent);
    CHECK(publisher.publish("zz", 2) == -EAGAIN);   // `slow` has not read anything yet
    CHECK(drain(slow) == sent);
    CHECK(publisher.publish("zz", 2) == 0);
}

TEST_CASE("lossy: a subscriber that falls behind skips ahead and counts exactly what it lost") {
    TopicBlock block(config_of(16, 8, 1, 1, OverflowPolicy::lossy));
    HybridLogicalClock clock(clock_config(1));
    Publisher publisher;
    Subscriber subscriber;
    REQUIRE(Publisher::open(block.topic, clock, publisher) == 0);
    REQUIRE(Subscriber::open(block.topic, subscriber) == 0);
    for (int i = 0; i < 30; ++i) {
        const std::string text = std::to_string(i);
        REQUIRE(publisher.publish(text.data(), static_cast<std::uint32_t>(text.size())) == 0);   // never waits
    }
    std::vector<std::uint64_t> sequences;
    const std::vector<std::string> seen = drain(subscriber, &sequences);
    CHECK(seen.size() + subscriber.lost() == 30);
    REQUIRE_FALSE(seen.empty());
    CHECK(seen.back() == "29");
    for (std::size_t i = 1; i < sequences.size(); ++i) CHECK(sequences[i] == sequences[i - 1] + 1);
    CHECK(std::stoul(seen.front()) == sequences.front());
    // receive() copies too: a batch stays intact even while the writer laps the ring.
    for (int i = 0; i < 5; ++i) REQUIRE(publisher.publish("r", 1) == 0);
    Message batch[kMaxPollBatch];
    CHECK(subscriber.receive(batch, kMaxPollBatch) == 5);
    for (int i = 0; i < 20; ++i) REQUIRE(publisher.publish("w", 1) == 0);
    for (int i = 0; i < 5; ++i) CHECK(std::string(reinterpret_cast<const char*>(batch[i].data), batch[i].length) == "r");
}

TEST_CASE("mpsc: a publisher that closes with a claim outstanding does not hold up the others") {
    TopicBlock block(config_of(16, 8, 2, 1));
    HybridLogicalClock clock(clock_config(1));
    Publisher quitter, stayer;
    Subscriber subscriber;
    REQUIRE(Publisher::open(block.topic, clock, quitter) == 0);
    REQUIRE(Publisher::open(block.topic, clock, stayer) == 0);
    REQUIRE(Subscriber::open(block.topic, subscriber) == 0);
    std::byte* data = nullptr;
    REQUIRE(quitter.try_claim(4, data) == 0);
    REQUIRE(stayer.publish("after", 5) == 0);
    CHECK(drain(subscriber).empty());   // position 0 is claimed, not committed: 1 waits behind it
    quitter.close();
    CHECK(drain(subscriber) == std::vector<std::string>{"after"});
}

TEST_CASE("many publishers: a claim stalled past the recovery timeout is reclaimed, and its late commit is refused") {
    struct Case {
        const char* name;
        TopicConfig config;
    };
    const Case cases[] = {
        {"mpsc", config_of(16, 8, 2, 1)},
        {"broadcast multi-writer", config_of(16, 8, 2, 2)},
        {"broadcast multi-writer, lossy", config_of(16, 8, 2, 2, OverflowPolicy::lossy)},
    };
    for (const Case& c : cases) {
        const std::string case_name = c.name;
        CAPTURE(case_name);
        TopicBlock block(c.config);
        HybridLogicalClock clock(clock_config(1));
        Publisher slow, other;
        Subscriber subscriber, second;   // a broadcast topic's second subscriber skips what the first reclaimed
        const bool broadcast = c.config.max_subscribers > 1;
        REQUIRE(Publisher::open(block.topic, clock, slow) == 0);
        REQUIRE(Publisher::open(block.topic, clock, other) == 0);
        REQUIRE(Subscriber::open(block.topic, subscriber) == 0);
        if (broadcast) REQUIRE(Subscriber::open(block.topic, second) == 0);
        std::byte* data = nullptr;
        REQUIRE(slow.try_claim(4, data) == 0);
        REQUIRE(other.publish("next", 4) == 0);
        CHECK(drain(subscriber).empty());   // held up by the claim
        // The claimer is alive (its marker names a live process of another pid: our parent stands in for the
        // publisher's process): never reclaimed, however long it takes. A marker naming this very process is not
        // believed (anyone can write our pid): see the hardening case below.
        auto* header = reinterpret_cast<MessageHeader*>(data - kMessageHeaderBytes);
        header->hlc_word = static_cast<std::uint64_t>(getppid());   // the claim marker's pid
        CHECK(subscriber.recover_stalled_claim(1'000, 500) == 0);
        CHECK(subscriber.recover_stalled_claim(1'000'000'000, 500) == 0);
        // As if the claimer had died between its claim and its marker: only the timeout tells, counted from when
        // the position was first seen stuck (t = 1000).
        header->sequence = 12345;
        CHECK(subscriber.recover_stalled_claim(1'000'000'000, 500) == 1);
        CHECK(drain(subscriber) == std::vector<std::string>{"next"});
        if (broadcast) {
            CHECK(second.recover_stalled_claim(2'000'000'000, 500) == 0);   // nothing stuck any more
            CHECK(drain(second) == std::vector<std::string>{"next"});
        }
        std::memcpy(data, "late", 4);
        CHECK(slow.commit(4) == -ESTALE);   // dropped, and the ring is not wedged:
        REQUIRE(slow.publish("again", 5) == 0);
        CHECK(drain(subscriber) == std::vector<std::string>{"again"});
        if (broadcast) CHECK(drain(second) == std::vector<std::string>{"again"});
        // A new stall: first seen at t0, reclaimed once `stuck_ns` have passed, not before.
        REQUIRE(slow.try_claim(4, data) == 0);
        reinterpret_cast<MessageHeader*>(data - kMessageHeaderBytes)->sequence = 12345;
        CHECK(subscriber.recover_stalled_claim(3'000'000'000, 500) == 0);
        CHECK(subscriber.recover_stalled_claim(3'000'000'499, 500) == 0);
        CHECK(subscriber.recover_stalled_claim(3'000'000'500, 500) == 1);
        CHECK(subscriber.recovered_claims() == 2);
        CHECK(slow.commit(4) == -ESTALE);
        // Laps later, every slot is still usable by both publishers and read by everyone, in order.
        std::vector<std::string> sent;
        for (int i = 0; i < 20; ++i) {
            std::string text = std::to_string(i);
            text.insert(0, 1, 'm');
            REQUIRE((i % 2 == 0 ? slow : other).publish(text.data(), static_cast<std::uint32_t>(text.size())) == 0);
            sent.push_back(text);
            if (i % 4 == 3) {
                const std::vector<std::string> seen = drain(subscriber);
                CHECK(seen == std::vector<std::string>(sent.end() - 4, sent.end()));
                if (broadcast) CHECK(drain(second) == seen);
            }
        }
    }
    TopicBlock spsc(config_of(16, 8));   // declared first: it must outlive the subscriber attached to it
    TopicBlock broadcast(config_of(16, 8, 1, 2));
    Subscriber none, single_writer;
    REQUIRE(Subscriber::open(spsc.topic, none) == 0);
    REQUIRE(Subscriber::open(broadcast.topic, single_writer) == 0);
    CHECK(none.recover_stalled_claim(0, 0) == -ENOTSUP);
    CHECK(single_writer.recover_stalled_claim(0, 0) == -ENOTSUP);
}

TEST_CASE("threads: 3 publishers, 1 subscriber; and 1 publisher, 3 subscribers: nothing lost, nothing twice") {
    constexpr std::uint64_t kPerPublisher = 20000;
    SUBCASE("mpsc") {
        TopicBlock block(config_of(16, 64, 3, 1));
        HybridLogicalClock clock(clock_config(1));
        std::vector<std::thread> threads;
        std::atomic<int> ready{0};
        for (std::uint64_t p = 0; p < 3; ++p) {
            threads.emplace_back([&, p] {
                Publisher publisher;
                REQUIRE(Publisher::open(block.topic, clock, publisher) == 0);
                ready.fetch_add(1);
                for (std::uint64_t i = 0; i < kPerPublisher;) {
                    const std::uint64_t word[2] = {p, i};
                    if (publisher.publish(word, sizeof word) == 0) ++i;
                }
            });
        }
        Subscriber subscriber;
        REQUIRE(Subscriber::open(block.topic, subscriber) == 0);
        std::uint64_t next[3] = {0, 0, 0}, total = 0, disorder = 0, last_sequence = 0;
        HlcStamp last_stamp{};
        while (total < 3 * kPerPublisher) {
            subscriber.poll(32, [&](const Message& m) {
                std::uint64_t word[2];
                std::memcpy(word, m.data, sizeof word);
                if (word[0] > 2 || word[1] != next[word[0]]) ++disorder;
                else ++next[word[0]];
                if (total != 0 && m.sequence != last_sequence + 1) ++disorder;
                last_sequence = m.sequence;
                last_stamp = m.stamp;
                ++total;
            });
        }
        for (std::thread& t : threads) t.join();
        CHECK(disorder == 0);
        CHECK(next[0] == kPerPublisher);
        CHECK(next[1] == kPerPublisher);
        CHECK(next[2] == kPerPublisher);
        CHECK(last_stamp.word != 0);
    }
    SUBCASE("broadcast") {
        TopicBlock block(config_of(16, 64, 1, 3));
        HybridLogicalClock clock(clock_config(1));
        std::atomic<int> ready{0};
        std::vector<std::thread> readers;
        std::uint64_t disorder[3] = {0, 0, 0};
        for (int r = 0; r < 3; ++r) {
            readers.emplace_back([&, r] {
                Subscriber subscriber;
                REQUIRE(Subscriber::open(block.topic, subscriber) == 0);
                ready.fetch_add(1);
                for (std::uint64_t expected = 0; expected < kPerPublisher;) {
                    subscriber.poll(16, [&](const Message& m) {
                        std::uint64_t value;
                        std::memcpy(&value, m.data, sizeof value);
                        if (value != expected || m.sequence != expected) ++disorder[r];
                        ++expected;
                    });
                }
            });
        }
        while (ready.load() < 3) std::this_thread::yield();   // every reader joined before the first message
        Publisher publisher;
        REQUIRE(Publisher::open(block.topic, clock, publisher) == 0);
        for (std::uint64_t i = 0; i < kPerPublisher;) {
            if (publisher.publish(&i, sizeof i) == 0) ++i;
        }
        for (std::thread& t : readers) t.join();
        CHECK(disorder[0] == 0);
        CHECK(disorder[1] == 0);
        CHECK(disorder[2] == 0);
    }
}

TEST_CASE("random single-thread run against a model queue, with a second view attached as another process would") {
    std::mt19937_64 random(20261125);
    TopicBlock block(config_of(24, 16));
    Topic other_view;
    REQUIRE(Topic::attach(block.memory.get(), block.bytes, other_view) == 0);
    HybridLogicalClock clock(clock_config(1));
    Publisher publisher;
    Subscriber subscriber;
    REQUIRE(Publisher::open(block.topic, clock, publisher) == 0);
    REQUIRE(Subscriber::open(other_view, subscriber) == 0);
    std::deque<std::string> model;
    std::uint64_t next_sequence = 0;
    std::size_t unreleased = 0;   // received, still occupying their slots
    for (int step = 0; step < 20000; ++step) {
        if (random() % 2 == 0) {
            std::string text(random() % 25, 'a');
            for (char& c : text) c = static_cast<char>('a' + random() % 26);
            const int status = publisher.publish(text.data(), static_cast<std::uint32_t>(text.size()));
            if (model.size() + unreleased == 16) {
                REQUIRE(status == -EAGAIN);
            } else {
                REQUIRE(status == 0);
                model.push_back(text);
            }
        } else {
            const auto max = static_cast<std::uint32_t>(random() % 20);
            Message batch[20];
            const std::uint32_t n = subscriber.receive(batch, max);   // releases the previous batch first
            unreleased = n;
            REQUIRE(n == std::min<std::size_t>(max, model.size()));
            for (std::uint32_t i = 0; i < n; ++i) {
                REQUIRE(std::string(reinterpret_cast<const char*>(batch[i].data), batch[i].length) == model.front());
                REQUIRE(batch[i].sequence == next_sequence++);
                model.pop_front();
            }
            if (random() % 2 == 0) {
                subscriber.release();
                unreleased = 0;
            }
        }
    }
}

TEST_CASE("idle strategies back off after their spins and reset on work") {
    for (const IdleKind kind : {IdleKind::spin_then_pause, IdleKind::sleep}) {
        IdleStrategy idle(kind, 3, 1000);
        for (int i = 0; i < 3; ++i) {
            CHECK_FALSE(idle.backing_off());
            idle.idle(0);
        }
        CHECK(idle.backing_off());
        idle.idle(0);   // pauses or sleeps 1 us, stays backed off
        CHECK(idle.backing_off());
        idle.idle(5);   // work: spin again
        CHECK_FALSE(idle.backing_off());
    }
    IdleStrategy spin(IdleKind::spin, 1);
    for (int i = 0; i < 10; ++i) spin.idle(0);
    CHECK_FALSE(spin.backing_off());
}

TEST_CASE("publish_abandoned: positions move forward, subscribers skip them, partial when full, not with a claim") {
    for (const KindCase& c : every_kind(16, 8)) {
        CAPTURE(c.name);
        TopicBlock block(c.config);
        HybridLogicalClock clock(clock_config(2));
        Publisher publisher;
        Subscriber subscriber;
        REQUIRE(Publisher::open(block.topic, clock, publisher) == 0);
        REQUIRE(Subscriber::open(block.topic, subscriber) == 0);
        const bool lossy = c.config.overflow == OverflowPolicy::lossy;

        CHECK(publisher.next_position() == 0);
        CHECK(publisher.publish_abandoned(0) == 0);
        REQUIRE(publisher.publish("a", 1) == 0);
        CHECK(publisher.publish_abandoned(3) == 3);
        CHECK(publisher.next_position() == 4);
        REQUIRE(publisher.publish("b", 1) == 0);
        CHECK(publisher.next_position() == 5);
        std::vector<std::uint64_t> sequences;
        CHECK(drain(subscriber, &sequences) == std::vector<std::string>{"a", "b"});
        CHECK(sequences == std::vector<std::uint64_t>{0, 4});

        // receive() consumes abandoned positions without returning them, too.
        CHECK(publisher.publish_abandoned(2) == 2);
        REQUIRE(publisher.publish("c", 1) == 0);
        Message batch[8];
        std::uint32_t got = 0;
        for (int i = 0; i < 4 && got == 0; ++i) got = subscriber.receive(batch, 8);
        REQUIRE(got == 1);
        CHECK(batch[0].sequence == 7);
        subscriber.release();

        // At most one ring's worth per call (8 of 20): a back-pressure ring is then full, a lossy one is not.
        CHECK(publisher.publish_abandoned(20) == 8);
        CHECK(publisher.next_position() == 16);
        CHECK(publisher.publish("d", 1) == (lossy ? 0 : -EAGAIN));
        sequences.clear();
        CHECK(drain(subscriber, &sequences) == (lossy ? std::vector<std::string>{"d"} : std::vector<std::string>{}));
        REQUIRE(publisher.publish("e", 1) == 0);
        CHECK(drain(subscriber, &sequences) == std::vector<std::string>{"e"});
        CHECK(sequences == (lossy ? std::vector<std::uint64_t>{16, 17} : std::vector<std::uint64_t>{16}));
        // Back-pressure, with 3 unread: only the 5 free slots.
        for (int i = 0; i < 3; ++i) REQUIRE(publisher.publish("f", 1) == 0);
        CHECK(publisher.publish_abandoned(20) == (lossy ? 8 : 5));
        CHECK(drain(subscriber).size() == (lossy ? 0u : 3u));   // lossy: the three were overwritten

        std::byte* slot = nullptr;
        REQUIRE(publisher.try_claim(1, slot) == 0);
        CHECK(publisher.publish_abandoned(1) == -EBUSY);
        CHECK(publisher.commit(0) == 0);
    }
}
