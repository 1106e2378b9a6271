// Shared memory is untrusted input: what a subscriber does when another process rewrites the words of a topic
// (slot headers, writer positions, reader cursors, claim markers, the topic and ring headers) behind its back.
// Every case writes the block directly, as an attacker or a buggy process mapping the same segment would, and
// checks exactly what the subscriber delivers and counts.
#include <doctest/doctest.h>

#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "engine/bus/broadcast_ring.hpp"
#include "engine/bus/mpsc_ring.hpp"
#include "engine/bus/publisher.hpp"
#include "engine/bus/spsc_ring.hpp"
#include "engine/bus/subscriber.hpp"
#include "chronofabric/chronofabric.h"
#include "platform/os/last_error.hpp"
#include "tests/bus/topic_test_support.hpp"

using namespace cf;
using namespace cf::bus;
using namespace cf::test;

namespace {

constexpr std::uint32_t kMax = 64;
constexpr std::uint32_t kDepth = 8;

MessageHeader& header_of(std::byte* payload) { return *reinterpret_cast<MessageHeader*>(payload - kMessageHeaderBytes); }

// Publishes `text` with claim + commit and returns its payload pointer, so a test can rewrite the slot afterwards.
std::byte* publish_kept(Publisher& publisher, const std::string& text) {
    std::byte* data = nullptr;
    REQUIRE(publisher.try_claim(static_cast<std::uint32_t>(text.size()), data) == 0);
    std::memcpy(data, text.data(), text.size());
    REQUIRE(publisher.commit(static_cast<std::uint32_t>(text.size())) == 0);
    return data;
}

// Everything one receive() returns, as strings, with their sequences; checks each one is within the bounds.
struct Received {
    std::vector<std::string> texts;
    std::vector<std::uint64_t> sequences;
};
Received receive_all(Subscriber& subscriber, std::uint32_t max = kMaxPollBatch) {
    Message batch[kMaxPollBatch];
    const std::uint32_t n = subscriber.receive(batch, max);
    CHECK(n <= kDepth);
    Received got;
    for (std::uint32_t i = 0; i < n; ++i) {
        CHECK(batch[i].length <= kMax);
        got.texts.emplace_back(reinterpret_cast<const char*>(batch[i].data), batch[i].length);
        got.sequences.push_back(batch[i].sequence);
    }
    return got;
}

// The word the topic's writers advance and, for readers that trust it, the one they read: SPSC tail, MPSC tail,
// broadcast published cursor (single writer) or claim tail (multi writer).
std::atomic<std::uint64_t>& writer_word(const Topic& topic) {
    auto* control = static_cast<std::byte*>(topic.ring_memory()) + kControlOffset;
    switch (topic.kind()) {
        case RingKind::spsc: return reinterpret_cast<SpscRing::Control*>(control)->producer.tail;
        case RingKind::mpsc: return reinterpret_cast<MpscRing::Control*>(control)->producers.tail;
        case RingKind::broadcast: break;
    }
    auto* words = reinterpret_cast<BroadcastRing::Control*>(control);
    return topic.max_publishers() > 1 ? words->writers.tail : words->published.cursor;
}

// Whether the subscriber's reader learns how far to read from writer_word() (the others read per-slot sequences).
bool reads_writer_word(const TopicConfig& config) {
    return config.max_publishers == 1 && config.overflow == OverflowPolicy::back_pressure;
}

BroadcastRing::ReaderWords& reader_words(const Topic& topic, int reader) {
    auto* first = static_cast<std::byte*>(topic.ring_memory()) + kControlOffset + 2 * kIndexSpacing;
    return *reinterpret_cast<BroadcastRing::ReaderWords*>(first + reader * kIndexSpacing);
}

}  // namespace

TEST_CASE("every kind: a slot with a bad length, sequence or abandoned mark is consumed, counted, never returned") {
    struct Corruption {
        const char* name;
        void (*apply)(MessageHeader&);
    };
    const Corruption corruptions[] = {
        {"length max + 1", [](MessageHeader& h) { h.length = kMax + 1; }},
        {"length 100000", [](MessageHeader& h) { h.length = 100000; }},
        {"length 0xFFFFFFFF", [](MessageHeader& h) { h.length = 0xFFFFFFFF; }},
        {"sequence of another lap", [](MessageHeader& h) { h.sequence += kDepth; }},
        {"abandoned flag with a length", [](MessageHeader& h) { h.length = cf::bus::kMessageAbandoned | 4; }},
        {"length 0x40000000", [](MessageHeader& h) { h.length = 0x4000'0000; }},
    };
    for (const KindCase& kind : every_kind(kMax, kDepth)) {
        for (const Corruption& corruption : corruptions) {
            for (const bool use_receive : {false, true}) {
                CAPTURE(std::string(kind.name));
                CAPTURE(corruption.name);
                CAPTURE(use_receive);
                TopicBlock block(kind.config);
                HybridLogicalClock clock(clock_config(1));
                Publisher publisher;
                Subscriber subscriber;
                REQUIRE(Publisher::open(block.topic, clock, publisher) == 0);
                REQUIRE(Subscriber::open(block.topic, subscriber) == 0);
                publish_kept(publisher, "a");
                corruption.apply(header_of(publish_kept(publisher, "bad")));   // after its commit, as a writer would
                publish_kept(publisher, "c");
                publish_kept(publisher, "d");
                std::vector<std::string> texts;
                std::vector<std::uint64_t> sequences;
                if (use_receive) {
                    const Received got = receive_all(subscriber);
                    texts = got.texts;
                    sequences = got.sequences;
                    subscriber.release();
                } else {
                    texts = drain(subscriber, &sequences);
                }
                CHECK(texts == std::vector<std::string>{"a", "c", "d"});
                CHECK(sequences == std::vector<std::uint64_t>{0, 2, 3});
                CHECK(subscriber.corrupt() == 1);
                CHECK(subscriber.lost() == 0);
                // The ring goes on: genuine messages after it are delivered in order.
                publish_kept(publisher, "e");
                CHECK(drain(subscriber, nullptr) == std::vector<std::string>{"e"});
                CHECK(subscriber.corrupt() == 1);
            }
        }
    }
}

TEST_CASE("every kind: a writer position moved far ahead or behind never yields more than depth messages") {
    for (const KindCase& kind : every_kind(kMax, kDepth)) {
        for (const std::uint64_t ahead : {std::uint64_t{1'000'000}, std::uint64_t{1} << 62}) {
            CAPTURE(std::string(kind.name));
            CAPTURE(ahead);
            TopicBlock block(kind.config);
            HybridLogicalClock clock(clock_config(1));
            Publisher publisher;
            Subscriber subscriber;
            REQUIRE(Publisher::open(block.topic, clock, publisher) == 0);
            REQUIRE(Subscriber::open(block.topic, subscriber) == 0);
            for (const char* text : {"p0", "p1", "p2"}) publish_kept(publisher, text);
            writer_word(block.topic).store(ahead);
            // Readers that trust the writer position read a full ring: 3 messages, then 5 slots never written.
            const bool trusts = reads_writer_word(kind.config);
            Received got = receive_all(subscriber);
            CHECK(got.texts == std::vector<std::string>{"p0", "p1", "p2"});
            CHECK(got.sequences == std::vector<std::uint64_t>{0, 1, 2});
            CHECK(subscriber.corrupt() == (trusts ? 5 : 0));
            // A second lap of the ring holds only the first lap's slots: nothing, counted.
            got = receive_all(subscriber);
            CHECK(got.texts.empty());
            CHECK(subscriber.corrupt() == (trusts ? 13 : 0));
        }
    }
    for (const KindCase& kind : every_kind(kMax, kDepth)) {
        CAPTURE(std::string(kind.name));
        TopicBlock block(kind.config);
        HybridLogicalClock clock(clock_config(1));
        Publisher publisher;
        Subscriber subscriber;
        REQUIRE(Publisher::open(block.topic, clock, publisher) == 0);
        REQUIRE(Subscriber::open(block.topic, subscriber) == 0);
        for (const char* text : {"p0", "p1", "p2"}) publish_kept(publisher, text);
        CHECK(receive_all(subscriber).texts.size() == 3);
        publish_kept(publisher, "p3");
        publish_kept(publisher, "p4");
        writer_word(block.topic).store(1);   // behind the reader (at 3): no giant count from 1 - 3
        const bool trusts = reads_writer_word(kind.config);
        Received got = receive_all(subscriber);
        CHECK(got.texts.size() == (trusts ? 0 : 2));
        subscriber.release();
        if (kind.config.max_publishers > 1) {
            // Many writers claim from that word: a claim fails (as on a full ring) rather than spin for ever.
            CHECK(publisher.publish("p5", 2) == -EAGAIN);
            writer_word(block.topic).store(5);
        }
        // The next commit stores the writer's own position again and everything unread arrives, in order.
        publish_kept(publisher, "p5");
        got = receive_all(subscriber);
        CHECK(got.texts == (trusts ? std::vector<std::string>{"p3", "p4", "p5"} : std::vector<std::string>{"p5"}));
        CHECK(got.sequences == (trusts ? std::vector<std::uint64_t>{3, 4, 5} : std::vector<std::uint64_t>{5}));
        CHECK(subscriber.corrupt() == 0);
    }
}

TEST_CASE("broadcast: a reader cursor rewound or thrown ahead delivers nothing twice and nothing out of range") {
    for (const KindCase& kind : every_kind(kMax, kDepth)) {
        if (topic_kind(kind.config) != RingKind::broadcast) continue;
        CAPTURE(std::string(kind.name));
        TopicBlock block(kind.config);
        HybridLogicalClock clock(clock_config(1));
        Publisher publisher;
        Subscriber subscriber;
        REQUIRE(Publisher::open(block.topic, clock, publisher) == 0);
        REQUIRE(Subscriber::open(block.topic, subscriber) == 0);
        for (const char* text : {"m0", "m1", "m2", "m3", "m4"}) publish_kept(publisher, text);
        CHECK(receive_all(subscriber).texts.size() == 5);
        subscriber.release();
        BroadcastRing::ReaderWords& words = reader_words(block.topic, subscriber.reader());
        words.cursor.store(0);   // rewound: positions 0..4 would be delivered a second time
        publish_kept(publisher, "m5");
        Received got = receive_all(subscriber);
        CHECK(got.texts == std::vector<std::string>{"m5"});
        CHECK(got.sequences == std::vector<std::uint64_t>{5});
        CHECK(subscriber.corrupt() == 5);
        subscriber.release();
        words.cursor.store(1'000'000);   // thrown ahead of the writer: nothing to read, no giant count
        words.end.store(3);
        publish_kept(publisher, "m6");
        CHECK(receive_all(subscriber).texts.empty());
        CHECK(subscriber.corrupt() == 5);
        CHECK(subscriber.lost() == 0);
        words.cursor.store(UINT64_MAX - 2);
        CHECK(receive_all(subscriber).texts.empty());
        CHECK(subscriber.lost() == 0);
    }
}

TEST_CASE("many publishers: a claim marker naming pid 0, our own pid or pid 2^31 is judged by the stuck time") {
    for (const KindCase& kind : every_kind(kMax, kDepth)) {
        if (kind.config.max_publishers == 1) continue;
        for (const std::uint64_t pid : {std::uint64_t{0}, static_cast<std::uint64_t>(getpid()),
                                        std::uint64_t{1} << 31, (std::uint64_t{1} << 32) + getppid()}) {
            CAPTURE(std::string(kind.name));
            CAPTURE(pid);
            TopicBlock block(kind.config);
            HybridLogicalClock clock(clock_config(1));
            Publisher stalled, other;
            Subscriber subscriber;
            REQUIRE(Publisher::open(block.topic, clock, stalled) == 0);
            REQUIRE(Publisher::open(block.topic, clock, other) == 0);
            REQUIRE(Subscriber::open(block.topic, subscriber) == 0);
            std::byte* data = nullptr;
            REQUIRE(stalled.try_claim(4, data) == 0);
            REQUIRE(other.publish("next", 4) == 0);
            header_of(data).hlc_word = pid;   // the claim marker's pid
            // Neither believed dead at once (pid 0 and 2^31 used to be) nor alive for ever (our own pid used to be).
            CHECK(subscriber.recover_stalled_claim(1'000, 500) == 0);
            CHECK(subscriber.recover_stalled_claim(1'499, 500) == 0);
            CHECK(drain(subscriber).empty());
            CHECK(subscriber.recover_stalled_claim(1'500, 500) == 1);
            CHECK(drain(subscriber) == std::vector<std::string>{"next"});
            CHECK(stalled.commit(4) == -ESTALE);
        }
    }
}

TEST_CASE("the topic and ring headers are read once, at attach: rewriting them later changes nothing") {
    for (const KindCase& kind : every_kind(kMax, kDepth)) {
        CAPTURE(std::string(kind.name));
        TopicBlock block(kind.config);
        HybridLogicalClock clock(clock_config(1));
        Publisher publisher;
        Subscriber subscriber;
        REQUIRE(Publisher::open(block.topic, clock, publisher) == 0);
        REQUIRE(Subscriber::open(block.topic, subscriber) == 0);
        TopicHeader& header = block.topic.header();
        header.max_message_bytes = kMaxTopicMessageBytes;
        header.depth = 1u << 24;
        header.ring_offset = 1u << 30;
        CHECK(block.topic.max_message_bytes() == kMax);
        CHECK(block.topic.depth() == kDepth);
        CHECK(block.topic.ring_memory() == static_cast<std::byte*>(block.memory.get()) + kTopicRingOffset);
        header_of(publish_kept(publisher, "big")).length = kMax + 1;
        publish_kept(publisher, "ok");
        CHECK(drain(subscriber) == std::vector<std::string>{"ok"});
        CHECK(subscriber.corrupt() == 1);
    }
}

TEST_CASE("a ring header that is consistent in itself but not the topic's ring is refused at open") {
    TopicBlock block(config_of(kMax, kDepth));
    // A smaller SPSC ring with bigger slots, written over the topic's: its own checksum and layout are right.
    const RingGeometry other{4, 2 * (kMessageHeaderBytes + kMax)};
    REQUIRE(SpscRing::bytes_needed(other) <= block.topic.ring_bytes());
    REQUIRE(SpscRing::format(block.topic.ring_memory(), block.topic.ring_bytes(), other) == 0);
    Subscriber subscriber;
    CHECK(Subscriber::open(block.topic, subscriber) == -EPROTO);
    CHECK(std::string(platform::last_error_message()).find("does not match its configuration") != std::string::npos);
    HybridLogicalClock clock(clock_config(1));
    Publisher publisher;
    CHECK(Publisher::open(block.topic, clock, publisher) == -EPROTO);
    CHECK(places_taken(block.topic.header(), EndpointRole::subscriber) == 0);   // given back on failure
    CHECK(places_taken(block.topic.header(), EndpointRole::publisher) == 0);
}

TEST_CASE("C API: cf_poll never returns a slot with a bad length, and cf_subscriber_corrupt counts it") {
    cf_engine_config_t engine_config;
    cf_engine_config_init(&engine_config);
    cf_engine_t* engine = nullptr;
    REQUIRE(cf_engine_create(&engine_config, &engine) == CF_OK);
    for (const std::uint32_t bad : {kMax + 1, 100000u, 0xFFFFFFFFu}) {
        CAPTURE(bad);
        cf_topic_config_t config;
        cf_topic_config_init(&config);
        config.name = "untrusted.capi";
        config.max_message_bytes = kMax;
        config.depth = kDepth;
        cf_topic_t* topic = nullptr;
        cf_publisher_t* publisher = nullptr;
        cf_subscriber_t* subscriber = nullptr;
        REQUIRE(cf_topic_create(engine, &config, &topic) == CF_OK);
        REQUIRE(cf_publisher_create(topic, &publisher) == CF_OK);
        REQUIRE(cf_subscriber_create(topic, &subscriber) == CF_OK);
        void* data = nullptr;
        REQUIRE(cf_publisher_claim(publisher, 3, &data) == CF_OK);
        std::memcpy(data, "bad", 3);
        REQUIRE(cf_publisher_commit(publisher, 3) == CF_OK);
        header_of(static_cast<std::byte*>(data)).length = bad;
        REQUIRE(cf_publisher_publish(publisher, "good", 4) == CF_OK);
        cf_message_t messages[8];
        CHECK(cf_subscriber_poll(subscriber, messages, 8) == 1);
        CHECK(messages[0].length == 4);
        CHECK(messages[0].sequence == 1);
        CHECK(std::memcmp(messages[0].data, "good", 4) == 0);
        std::uint64_t corrupt = 0;
        CHECK(cf_subscriber_corrupt(subscriber, &corrupt) == CF_OK);
        CHECK(corrupt == 1);
        CHECK(cf_subscriber_corrupt(nullptr, &corrupt) == CF_EINVAL);
        CHECK(cf_subscriber_corrupt(subscriber, nullptr) == CF_EINVAL);
        CHECK(cf_subscriber_destroy(subscriber) == CF_OK);
        CHECK(cf_publisher_destroy(publisher) == CF_OK);
        CHECK(cf_topic_destroy(topic, 0) == CF_OK);
    }
    CHECK(cf_engine_destroy(engine) == CF_OK);
}
