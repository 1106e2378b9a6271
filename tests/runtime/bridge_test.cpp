// The bridge: two engines in one process over loopback UDP (socket driver, and io_uring where the kernel allows
// it): random messages arrive exactly, with the sender's sequences and later HLC stamps. Crafted datagrams from a
// plain socket: gaps, duplicates, late and reordered frames, session changes, unknown ids, corrupt datagrams and
// foreign senders are each counted exactly and the subscriber sees exactly the expected messages. The clock offset
// against a peer whose clock is offset and skewed stays inside its own bound at every poll. Bad arguments.
// Loopback UDP does not lose datagrams at these rates; every wait is a bounded loop, never a timing assertion.
#include <doctest/doctest.h>

#include <gnutls/crypto.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstring>
#include <functional>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "engine/bus/publisher.hpp"
#include "engine/bus/subscriber.hpp"
#include "engine/runtime/bridge.hpp"
#include "engine/runtime/clock_probes.hpp"
#include "engine/runtime/engine.hpp"
#include "engine/wire/datagram_auth.hpp"
#include "engine/wire/frame.hpp"
#include "platform/os/last_error.hpp"

using namespace cf;
using drivers::DriverKind;
using drivers::PeerAddress;

namespace {

// Poll rounds allowed for something to arrive over loopback. Generous: the bound only matters when something
// is lost, and then the test fails on the counts instead of hanging.
constexpr int kMaxRounds = 200000;

void pause_briefly() {
    const timespec pause{0, 20'000};   // 20 us: keeps a waiting loop from spinning the shared machine
    nanosleep(&pause, nullptr);
}

std::string last_error() { return platform::last_error_message(); }

std::unique_ptr<Engine> make_engine(std::uint16_t node) {
    EngineConfig config;
    config.node_id = node;
    config.pool_bytes_per_class = 64 << 10;
    config.prefer_hugepages = false;
    std::unique_ptr<Engine> engine;
    REQUIRE(Engine::create(config, engine) == 0);
    return engine;
}

EngineTopic* make_topic(Engine& engine, const char* name, std::uint32_t max_bytes, std::uint32_t depth,
                        std::uint32_t subscribers = 1) {
    bus::TopicConfig config;
    config.name = name;
    config.max_message_bytes = max_bytes;
    config.depth = depth;
    config.max_subscribers = subscribers;
    EngineTopic* topic = nullptr;
    REQUIRE(engine.create_topic(config, false, 0, topic) == 0);
    return topic;
}

BridgeConfig bridge_config(DriverKind kind) {
    BridgeConfig config;
    config.driver = kind;
    REQUIRE(PeerAddress::parse("127.0.0.1:0", config.udp.bind) == 0);
    config.udp.pool.count = 1024;
    config.udp.pool.prefer_hugepages = false;
    config.udp.socket_buffer_bytes = 4 << 20;
    config.max_topics = 8;
    return config;
}

bool uring_unusable(int status) {
    return status == -ENOSYS || status == -EPERM || status == -EOPNOTSUPP || status == -ENOTSUP;
}

// A plain UDP socket on 127.0.0.1, for crafted datagrams.
struct PlainSocket {
    int fd = -1;
    PeerAddress address;

    PlainSocket() {
        fd = ::socket(AF_INET, SOCK_DGRAM, 0);
        REQUIRE(fd >= 0);
        sockaddr_in bind_to{};
        bind_to.sin_family = AF_INET;
        bind_to.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        REQUIRE(::bind(fd, reinterpret_cast<const sockaddr*>(&bind_to), sizeof bind_to) == 0);
        address.length = sizeof(sockaddr_in);
        REQUIRE(::getsockname(fd, &address.addr.any, &address.length) == 0);
    }
    ~PlainSocket() { ::close(fd); }
    void send(const std::vector<std::byte>& datagram, const PeerAddress& to) const {
        REQUIRE(::sendto(fd, datagram.data(), datagram.size(), 0, &to.addr.any, to.length) ==
                static_cast<ssize_t>(datagram.size()));
    }
    // The next datagram that arrived, or an empty vector when none is waiting.
    std::vector<std::byte> receive() const {
        std::vector<std::byte> datagram(wire::kMaxUdpPayloadBytes);
        const ssize_t got = ::recv(fd, datagram.data(), datagram.size(), MSG_DONTWAIT);
        datagram.resize(got > 0 ? static_cast<std::size_t>(got) : 0);
        return datagram;
    }
};

// One frame of a crafted datagram.
struct Frame {
    std::uint32_t topic_id;
    std::uint64_t sequence;
    std::uint32_t session;
    std::string payload;
    HlcStamp stamp{};
    std::uint8_t flags = 0;
};

std::vector<std::byte> datagram_of(const std::vector<Frame>& frames) {
    std::vector<std::byte> bytes(wire::kMaxUdpPayloadBytes);
    wire::DatagramWriter writer(bytes.data(), bytes.size());
    for (const Frame& frame : frames) {
        const wire::FrameFields fields{frame.topic_id, frame.sequence, frame.stamp, frame.session, frame.flags};
        REQUIRE(writer.append(fields, frame.payload.data(), static_cast<std::uint32_t>(frame.payload.size())) > 0);
    }
    bytes.resize(writer.size());
    return bytes;
}

// Polls `bridge` until `done()` (bounded).
bool poll_until(Bridge& bridge, const std::function<bool()>& done) {
    for (int round = 0; round < kMaxRounds; ++round) {
        if (done()) return true;
        REQUIRE(bridge.poll() >= 0);
        if (done()) return true;
        pause_briefly();
    }
    return done();
}

struct Received {
    std::uint64_t sequence;
    std::string payload;
    HlcStamp stamp;
};

std::vector<Received> drain(bus::Subscriber& subscriber) {
    std::vector<Received> out;
    while (subscriber.poll(64, [&](const bus::Message& m) {
        out.push_back({m.sequence, std::string(reinterpret_cast<const char*>(m.data), m.length), m.stamp});
    }) != 0) {
    }
    return out;
}

std::string text_of(const PeerAddress& address) {
    char text[64];
    return address.format(text, sizeof text);
}

// Two engines with a bridge each, pointed at each other.
struct Pair {
    std::unique_ptr<Engine> a, b;
    std::unique_ptr<Bridge> bridge_a, bridge_b;

    // False (with the status) when the driver cannot be opened here.
    int open(DriverKind kind, const BridgeConfig* config_b = nullptr, const BridgeConfig* config_a = nullptr) {
        a = make_engine(1);
        b = make_engine(2);
        const BridgeConfig default_config = bridge_config(kind);
        int status = Bridge::create(*a, config_a != nullptr ? *config_a : default_config, bridge_a);
        if (status != 0) return status;
        BridgeConfig for_b = config_b != nullptr ? *config_b : default_config;
        for_b.peer = bridge_a->local_address();
        status = Bridge::create(*b, for_b, bridge_b);
        if (status != 0) return status;
        REQUIRE(bridge_a->set_peer(bridge_b->local_address()) == 0);
        return 0;
    }
    void poll_both() {
        REQUIRE(bridge_a->poll() >= 0);
        REQUIRE(bridge_b->poll() >= 0);
    }
};

void run_two_engines(DriverKind kind) {
    Pair pair;
    const int status = pair.open(kind);
    if (kind == DriverKind::uring && uring_unusable(status)) {
        MESSAGE("io_uring bridge skipped: " << last_error());
        return;
    }
    REQUIRE_MESSAGE(status == 0, last_error());
    CHECK(pair.bridge_a->driver_kind() == kind);
    CHECK(pair.bridge_b->peer() == pair.bridge_a->local_address());
    CHECK(pair.bridge_a->session() != 0);

    // A: a broadcast topic (the bridge joins at the writer's position); B: the republished topic.
    EngineTopic* source = make_topic(*pair.a, "a.data", 512, 256, 2);
    EngineTopic* target = make_topic(*pair.b, "b.data", 512, 1024);
    bus::Publisher publisher;
    REQUIRE(bus::Publisher::open(source->topic(), pair.a->clock(), publisher) == 0);
    // Messages before the bridge forwards: not sent, but they make the first forwarded sequence 5, which B's
    // topic (at position 0) reaches by filling 5 abandoned positions.
    constexpr std::uint64_t kBefore = 5;
    for (std::uint64_t i = 0; i < kBefore; ++i) REQUIRE(publisher.publish("early", 5) == 0);

    REQUIRE(pair.bridge_a->forward(source, 7) == 0);
    REQUIRE(pair.bridge_b->republish(7, target) == 0);
    bus::Subscriber recorder, receiver;   // A's stamps, and what B delivers
    REQUIRE(bus::Subscriber::open(source->topic(), recorder) == 0);
    REQUIRE(bus::Subscriber::open(target->topic(), receiver) == 0);

    std::mt19937_64 random(20240611);
    constexpr int kMessages = 3000;
    std::vector<std::string> payloads;
    for (int i = 0; i < kMessages; ++i) {
        std::string payload(std::uniform_int_distribution<int>(0, 512)(random), '\0');
        for (char& c : payload) c = static_cast<char>(random());
        payloads.push_back(std::move(payload));
    }
    std::vector<Received> sent, got;
    auto collect = [&] {
        for (Received& r : drain(recorder)) sent.push_back(std::move(r));
        for (Received& r : drain(receiver)) got.push_back(std::move(r));
    };
    int next = 0, rounds = 0;
    while ((next < kMessages || got.size() < static_cast<std::size_t>(kMessages)) && rounds < kMaxRounds) {
        // Publish until the topic pushes back, then let the bridges move the burst.
        while (next < kMessages && publisher.publish(payloads[next].data(),
                                                     static_cast<std::uint32_t>(payloads[next].size())) == 0) {
            ++next;
        }
        pair.poll_both();
        collect();
        ++rounds;
        if (next == kMessages) pause_briefly();
    }
    REQUIRE(sent.size() == static_cast<std::size_t>(kMessages));
    REQUIRE(got.size() == static_cast<std::size_t>(kMessages));
    int wrong_payload = 0, wrong_sequence = 0, stamp_not_later = 0;
    for (int i = 0; i < kMessages; ++i) {
        wrong_payload += got[i].payload != payloads[i];
        wrong_sequence += got[i].sequence != kBefore + i || sent[i].sequence != kBefore + i;
        stamp_not_later += !(sent[i].stamp < got[i].stamp);
    }
    CHECK(wrong_payload == 0);
    CHECK(wrong_sequence == 0);
    CHECK(stamp_not_later == 0);

    BridgeTopicStats in, out;
    REQUIRE(pair.bridge_b->topic_stats(7, in) == 0);
    REQUIRE(pair.bridge_a->topic_stats(7, out) == 0);
    CHECK(out.forwarded == kMessages);
    CHECK(out.forward_too_large == 0);
    CHECK(in.received == kMessages);
    CHECK(in.republished == kMessages);
    CHECK(in.gaps == 0);
    CHECK(in.duplicates == 0);
    CHECK(in.late == 0);
    CHECK(in.session_resets == 0);
    CHECK(in.misaligned == 0);
    CHECK(in.filled == kBefore);
    CHECK(in.hlc_rejected == 0);
    const BridgeStats& a = pair.bridge_a->stats();
    const BridgeStats& b = pair.bridge_b->stats();
    CHECK(a.frames_out == kMessages);
    CHECK(b.frames_in == kMessages);
    CHECK(a.datagrams_out < a.frames_out);   // bursts of up to 64 messages share datagrams
    CHECK(b.wire.rejected_datagrams == 0);
    CHECK(b.foreign_datagrams == 0);
    CHECK(b.unknown_topic == 0);
    CHECK(a.tx_errors == 0);
    MESSAGE(std::string(drivers::driver_kind_name(kind)) << ": " << kMessages << " messages in " << a.datagrams_out
                                            << " datagrams, " << a.probes_sent << " probes sent");
    // The bridge holds both topics open.
    CHECK(pair.a->close_topic(source, false) == -EBUSY);
    recorder.close();
    receiver.close();
    publisher.close();
    pair.bridge_a.reset();
    pair.bridge_b.reset();
    CHECK(pair.a->close_topic(source, false) == 0);
    CHECK(pair.b->close_topic(target, false) == 0);
}

// A bridge that republishes what a plain socket sends it.
struct CraftedReceiver {
    std::unique_ptr<Engine> engine = make_engine(9);
    std::unique_ptr<Bridge> bridge;
    PlainSocket sender;
    std::uint64_t datagrams = 0;   // sent so far

    // `adjust` changes the configuration before the bridge is created.
    explicit CraftedReceiver(const std::function<void(BridgeConfig&)>& adjust = {}) {
        BridgeConfig config = bridge_config(DriverKind::socket);
        config.probe_interval = Duration{};   // the plain socket answers no probes
        config.peer = sender.address;
        if (adjust) adjust(config);
        REQUIRE_MESSAGE(Bridge::create(*engine, config, bridge) == 0, last_error());
    }
    // Sends one datagram and polls until the bridge has taken it in (counted as walked or as foreign).
    void send(const std::vector<std::byte>& datagram, const PlainSocket* from = nullptr) {
        (from != nullptr ? *from : sender).send(datagram, bridge->local_address());
        ++datagrams;
        REQUIRE(poll_until(*bridge, [&] {
            return bridge->stats().datagrams_in + bridge->stats().foreign_datagrams == datagrams;
        }));
    }
    void send(const std::vector<Frame>& frames) { send(datagram_of(frames)); }
};

std::vector<std::uint64_t> sequences_of(const std::vector<Received>& received) {
    std::vector<std::uint64_t> out;
    for (const Received& r : received) out.push_back(r.sequence);
    return out;
}

}  // namespace

TEST_CASE("two engines over loopback: every message arrives with its payload, the sender's sequence, a later stamp") {
    SUBCASE("socket driver") { run_two_engines(DriverKind::socket); }
    SUBCASE("io_uring driver") { run_two_engines(DriverKind::uring); }
}

TEST_CASE("gaps, duplicates, late frames and session changes are counted exactly; only in-order news is published") {
    CraftedReceiver rx;
    EngineTopic* topic = make_topic(*rx.engine, "b.crafted", 64, 1024);
    REQUIRE(rx.bridge->republish(9, topic) == 0);
    bus::Subscriber subscriber;
    REQUIRE(bus::Subscriber::open(topic->topic(), subscriber) == 0);
    constexpr std::uint32_t s1 = 0x1111, s2 = 0x2222;

    rx.send({{9, 0, s1, "s1-0"}, {9, 1, s1, "s1-1"}, {9, 2, s1, "s1-2"}});   // in order, one datagram
    rx.send({{9, 5, s1, "s1-5"}});                                          // gap of 2 (3, 4)
    rx.send({{9, 5, s1, "dup"}, {9, 3, s1, "late"}, {9, 3, s1, "dup"}});    // duplicate; late; its duplicate
    rx.send({{9, 7, s1, "s1-7"}, {9, 6, s1, "late"}});                      // gap of 1, then the missing one late
    rx.send({{9, 100, s1, "s1-100"}});                                      // gap of 92
    rx.send({{9, 30, s1, "late"}});     // 70 below expected: beyond the window, counted late
    rx.send({{9, 99, s1, "late"}});     // inside the window, never seen: late
    rx.send({{9, 200, s2, "s2-200"}, {9, 201, s2, "s2-201"}, {9, 201, s2, "dup"}});   // new session
    rx.send({{9, 10, s2, "late"}});
    rx.send({{77, 0, s1, "nobody"}});   // an id nobody republishes

    BridgeTopicStats stats;
    REQUIRE(rx.bridge->topic_stats(9, stats) == 0);
    CHECK(stats.received == 16);
    CHECK(stats.republished == 8);
    CHECK(stats.gaps == 2 + 1 + 92);
    CHECK(stats.duplicates == 3);
    CHECK(stats.late == 5);
    CHECK(stats.session_resets == 1);
    CHECK(stats.misaligned == 0);
    CHECK(stats.filled == 2 + 1 + 92 + 99);
    CHECK(stats.publish_full == 0);
    CHECK(stats.too_large == 0);
    CHECK(stats.hlc_rejected == 0);
    CHECK(rx.bridge->stats().unknown_topic == 1);
    CHECK(rx.bridge->stats().frames_in == 17);
    CHECK(rx.bridge->stats().wire.rejected_datagrams == 0);

    const std::vector<Received> got = drain(subscriber);
    CHECK(sequences_of(got) == std::vector<std::uint64_t>{0, 1, 2, 5, 7, 100, 200, 201});
    std::vector<std::string> payloads;
    for (const Received& r : got) payloads.push_back(r.payload);
    CHECK(payloads == std::vector<std::string>{"s1-0", "s1-1", "s1-2", "s1-5", "s1-7", "s1-100", "s2-200", "s2-201"});

    // A random run against a reference model of the same rules, on a second id.
    EngineTopic* random_topic = make_topic(*rx.engine, "b.random", 16, 1 << 16);
    REQUIRE(rx.bridge->republish(10, random_topic) == 0);
    bus::Subscriber random_subscriber;
    REQUIRE(bus::Subscriber::open(random_topic->topic(), random_subscriber) == 0);
    std::mt19937 random(77);
    std::uint64_t next = 0, expected = 0;
    std::vector<std::uint64_t> seen_set, published;
    BridgeTopicStats model;
    bool tracking = false;
    for (int round = 0; round < 60; ++round) {
        std::vector<Frame> frames;
        const int count = std::uniform_int_distribution<int>(1, 20)(random);
        for (int i = 0; i < count; ++i) {
            std::uint64_t sequence = next;
            const int pick = std::uniform_int_distribution<int>(0, 9)(random);
            if (pick < 5) {
                sequence = next++;                                            // in order
            } else if (pick < 7) {
                next += std::uniform_int_distribution<int>(1, 4)(random);    // skip some
                sequence = next++;
            } else if (next > 0) {
                const std::uint64_t back = std::min<std::uint64_t>(next - 1, 80);
                sequence = next - 1 - std::uniform_int_distribution<std::uint64_t>(0, back)(random);
            }
            frames.push_back({10, sequence, s1, std::to_string(sequence)});
            // The reference: the rules of bridge.hpp, with a set instead of a bit window.
            ++model.received;
            if (!tracking) {
                tracking = true;
                expected = sequence;
            }
            if (sequence >= expected) {
                model.gaps += sequence - expected;
                expected = sequence + 1;
                seen_set.push_back(sequence);
                published.push_back(sequence);
                ++model.republished;
            } else if (expected - 1 - sequence < 64 &&
                       std::find(seen_set.begin(), seen_set.end(), sequence) != seen_set.end()) {
                ++model.duplicates;
            } else {
                ++model.late;
                if (expected - 1 - sequence < 64) seen_set.push_back(sequence);
            }
        }
        rx.send(frames);
    }
    BridgeTopicStats random_stats;
    REQUIRE(rx.bridge->topic_stats(10, random_stats) == 0);
    CHECK(random_stats.received == model.received);
    CHECK(random_stats.republished == model.republished);
    CHECK(random_stats.gaps == model.gaps);
    CHECK(random_stats.duplicates == model.duplicates);
    CHECK(random_stats.late == model.late);
    CHECK(random_stats.misaligned == 0);
    const std::vector<Received> random_got = drain(random_subscriber);
    CHECK(sequences_of(random_got) == published);
    int wrong = 0;
    for (const Received& r : random_got) wrong += r.payload != std::to_string(r.sequence);
    CHECK(wrong == 0);
}

TEST_CASE("corrupt datagrams are counted by reason, foreign senders and bad control frames are dropped") {
    CraftedReceiver rx;
    EngineTopic* topic = make_topic(*rx.engine, "b.checked", 64, 64);
    REQUIRE(rx.bridge->republish(3, topic) == 0);
    bus::Subscriber subscriber;
    REQUIRE(bus::Subscriber::open(topic->topic(), subscriber) == 0);
    constexpr std::uint32_t session = 42;

    rx.send({{3, 0, session, "good"}});
    std::vector<std::byte> bad = datagram_of({{3, 1, session, "magic"}});
    bad[0] ^= std::byte{0xFF};
    rx.send(bad);
    bad = datagram_of({{3, 1, session, "version"}});
    bad[2] = std::byte{2};
    rx.send(bad);
    bad = datagram_of({{3, 1, session, "crc"}});
    bad[wire::kFrameHeaderBytes] ^= std::byte{1};   // a payload bit
    rx.send(bad);
    bad = datagram_of({{3, 1, session, "cut"}});
    bad.resize(30);
    rx.send(bad);
    // A good frame, then a corrupt one in the same datagram: the first is delivered, the walk stops at the second.
    bad = datagram_of({{3, 1, session, "first"}, {3, 2, session, "second"}});
    bad[bad.size() - 1] ^= std::byte{0x80};   // the second frame's padding ("second" is 6 bytes, padded to 8)
    rx.send(bad);
    // From another socket: dropped before decoding.
    PlainSocket stranger;
    rx.send(datagram_of({{3, 2, session, "stranger"}}), &stranger);
    // Control frames of a wrong size or kind; a data frame stamped 10 s ahead (delivered, stamp not merged).
    rx.send({{0, 0, session, "abc", HlcStamp{}, wire::kFrameControl}});
    rx.send({{0, 0, session, std::string(56, '\x07'), HlcStamp{}, wire::kFrameControl}});
    const HlcStamp future{hlc_units_from_instant(default_clock().now() + Duration::from_seconds(10))
                              << HlcStamp::kLogicalBits,
                          5};
    rx.send({{3, 2, session, "future", future}});
    rx.send({{3, 3, session, "after"}});

    const BridgeStats& stats = rx.bridge->stats();
    CHECK(stats.datagrams_in == 10);
    CHECK(stats.foreign_datagrams == 1);
    CHECK(stats.wire.rejected_datagrams == 5);
    CHECK(stats.wire.rejected_for(wire::FrameReject::bad_magic) == 1);
    CHECK(stats.wire.rejected_for(wire::FrameReject::bad_version) == 1);
    CHECK(stats.wire.rejected_for(wire::FrameReject::corrupt) == 1);
    CHECK(stats.wire.rejected_for(wire::FrameReject::truncated) == 1);
    CHECK(stats.wire.rejected_for(wire::FrameReject::bad_padding) == 1);
    CHECK(stats.control_rejected == 2);
    CHECK(stats.answers_sent == 0);
    BridgeTopicStats topic_stats;
    REQUIRE(rx.bridge->topic_stats(3, topic_stats) == 0);
    CHECK(topic_stats.received == 4);
    CHECK(topic_stats.republished == 4);
    CHECK(topic_stats.hlc_rejected == 1);
    CHECK(topic_stats.gaps == 0);
    const std::vector<Received> got = drain(subscriber);
    REQUIRE(got.size() == 4);
    CHECK(got[0].payload == "good");
    CHECK(got[1].payload == "first");
    CHECK(got[2].payload == "future");
    CHECK(got[3].payload == "after");
    CHECK(sequences_of(got) == std::vector<std::uint64_t>{0, 1, 2, 3});
}

TEST_CASE("absurd sequences are rejected and counted; they never move the expected sequence") {
    SUBCASE("2^63 ahead and 2^64-1: rejected, the next 100 genuine frames are all delivered") {
        CraftedReceiver rx;   // the default limit, 2^32
        EngineTopic* topic = make_topic(*rx.engine, "b.absurd", 16, 256);
        REQUIRE(rx.bridge->republish(4, topic) == 0);
        bus::Subscriber subscriber;
        REQUIRE(bus::Subscriber::open(topic->topic(), subscriber) == 0);
        constexpr std::uint32_t session = 0x5E55;
        std::vector<Frame> first;
        for (std::uint64_t i = 0; i < 10; ++i) first.push_back({4, i, session, std::to_string(i)});
        rx.send(first);
        rx.send({{4, 10 + (std::uint64_t{1} << 63), session, "forged"}});
        rx.send({{4, ~std::uint64_t{0}, session, "wrap"}});
        rx.send({{4, (std::uint64_t{1} << 32) + 11, session, "one past the limit"}});
        std::vector<std::uint64_t> want;
        for (std::uint64_t i = 0; i < 10; ++i) want.push_back(i);
        for (std::uint64_t i = 10; i < 110; ++i) {
            rx.send({{4, i, session, std::to_string(i)}});
            want.push_back(i);
        }
        BridgeTopicStats stats;
        REQUIRE(rx.bridge->topic_stats(4, stats) == 0);
        CHECK(stats.received == 113);
        CHECK(stats.sequence_rejected == 3);
        CHECK(stats.republished == 110);
        CHECK(stats.late == 0);
        CHECK(stats.duplicates == 0);
        CHECK(stats.gaps == 0);
        CHECK(stats.sequence_resyncs == 0);
        CHECK(stats.session_resets == 0);
        CHECK(sequences_of(drain(subscriber)) == want);
    }
    SUBCASE("2^64-1 as the first frame of a session is rejected too; the session is not taken") {
        CraftedReceiver rx;
        EngineTopic* topic = make_topic(*rx.engine, "b.wrap", 16, 64);
        REQUIRE(rx.bridge->republish(4, topic) == 0);
        rx.send({{4, ~std::uint64_t{0}, 1, "wrap"}});
        rx.send({{4, 0, 2, "zero"}, {4, 1, 2, "one"}});
        BridgeTopicStats stats;
        REQUIRE(rx.bridge->topic_stats(4, stats) == 0);
        CHECK(stats.sequence_rejected == 1);
        CHECK(stats.republished == 2);
        CHECK(stats.session_resets == 0);
        CHECK(stats.late == 0);
    }
    SUBCASE("the limit's edge: exactly max_sequence_jump ahead is accepted, one more is rejected") {
        CraftedReceiver rx([](BridgeConfig& config) { config.max_sequence_jump = 1000; });
        EngineTopic* topic = make_topic(*rx.engine, "b.edge", 16, 64);
        REQUIRE(rx.bridge->republish(4, topic) == 0);
        bus::Subscriber subscriber;
        REQUIRE(bus::Subscriber::open(topic->topic(), subscriber) == 0);
        rx.send({{4, 0, 7, "0"}});                 // expected 1
        rx.send({{4, 1001, 7, "edge"}});           // 1000 ahead: accepted, expected 1002
        rx.send({{4, 2003, 7, "beyond"}});         // 1001 ahead: rejected
        rx.send({{4, 1002, 7, "next"}});           // still expected
        BridgeTopicStats stats;
        REQUIRE(rx.bridge->topic_stats(4, stats) == 0);
        CHECK(stats.republished == 3);
        CHECK(stats.gaps == 1000);
        CHECK(stats.sequence_rejected == 1);
        CHECK(stats.late == 0);
        CHECK(sequences_of(drain(subscriber)).size() == 3);
    }
    SUBCASE("a sender that really jumped further is followed after 4 consecutive sequences") {
        CraftedReceiver rx([](BridgeConfig& config) { config.max_sequence_jump = 100; });
        EngineTopic* topic = make_topic(*rx.engine, "b.resync", 16, 64);
        REQUIRE(rx.bridge->republish(4, topic) == 0);
        rx.send({{4, 0, 7, "0"}});
        rx.send({{4, 5000, 7, "a"}, {4, 5001, 7, "b"}, {4, 9000, 7, "stray"}});   // a run broken by a stray
        rx.send({{4, 5002, 7, "c"}, {4, 5003, 7, "d"}, {4, 5004, 7, "e"}, {4, 5005, 7, "f"}});
        rx.send({{4, 5006, 7, "g"}, {4, 5003, 7, "h"}});
        BridgeTopicStats stats;
        REQUIRE(rx.bridge->topic_stats(4, stats) == 0);
        CHECK(stats.sequence_rejected == 6);   // 5000, 5001, 9000, 5002, 5003, 5004
        CHECK(stats.sequence_resyncs == 1);    // at 5005
        CHECK(stats.republished == 3);         // 0, 5005, 5006
        CHECK(stats.gaps == 5004);
        CHECK(stats.late == 1);                // 5003: behind, never delivered
    }
}

TEST_CASE("positions: a full local topic drops and counts, the next message realigns; a jump past the ring cannot") {
    CraftedReceiver rx;
    EngineTopic* small = make_topic(*rx.engine, "b.small", 8, 4);
    EngineTopic* tiny = make_topic(*rx.engine, "b.tiny", 8, 8);
    REQUIRE(rx.bridge->republish(1, small) == 0);
    REQUIRE(rx.bridge->republish(2, tiny) == 0);
    bus::Subscriber small_subscriber, tiny_subscriber;
    REQUIRE(bus::Subscriber::open(small->topic(), small_subscriber) == 0);
    REQUIRE(bus::Subscriber::open(tiny->topic(), tiny_subscriber) == 0);

    // Depth 4, nobody reading: 0..3 fit, 4 and 5 find it full, 6 is longer than the topic allows.
    rx.send({{1, 0, 5, "m0"}, {1, 1, 5, "m1"}, {1, 2, 5, "m2"}, {1, 3, 5, "m3"}, {1, 4, 5, "m4"}, {1, 5, 5, "m5"},
             {1, 6, 5, "0123456789"}});
    BridgeTopicStats stats;
    REQUIRE(rx.bridge->topic_stats(1, stats) == 0);
    CHECK(stats.republished == 4);
    CHECK(stats.publish_full == 2);
    CHECK(stats.too_large == 1);
    CHECK(sequences_of(drain(small_subscriber)) == std::vector<std::uint64_t>{0, 1, 2, 3});
    // Room again: 4, 5 and 6 become abandoned positions and 7 lands on position 7.
    rx.send({{1, 7, 5, "m7"}});
    REQUIRE(rx.bridge->topic_stats(1, stats) == 0);
    CHECK(stats.filled == 3);
    CHECK(stats.misaligned == 0);
    const std::vector<Received> after = drain(small_subscriber);
    REQUIRE(after.size() == 1);
    CHECK(after[0].sequence == 7);
    CHECK(after[0].payload == "m7");

    // Depth 8: a jump of 999 is not filled (it would take 999 positions of an 8-slot ring): misaligned from there.
    rx.send({{2, 0, 6, "t0"}, {2, 1000, 6, "t1000"}, {2, 1001, 6, "t1001"}});
    REQUIRE(rx.bridge->topic_stats(2, stats) == 0);
    CHECK(stats.republished == 3);
    CHECK(stats.gaps == 999);
    CHECK(stats.filled == 0);
    CHECK(stats.misaligned == 2);
    const std::vector<Received> tiny_got = drain(tiny_subscriber);
    CHECK(sequences_of(tiny_got) == std::vector<std::uint64_t>{0, 1, 2});   // local positions
    REQUIRE(tiny_got.size() == 3);
    CHECK(tiny_got[2].payload == "t1001");
}

namespace {

BridgeKey key_of(std::uint8_t id, std::uint8_t fill) {
    BridgeKey key;
    key.set = true;
    key.id = id;
    for (std::size_t i = 0; i < sizeof key.bytes; ++i) key.bytes[i] = static_cast<std::uint8_t>(fill + i);
    return key;
}

// A keyed datagram built here from the layout in wire/datagram_auth.hpp, with GnuTLS's one-shot HMAC: not with
// the code under test.
std::vector<std::byte> keyed_datagram(const std::vector<std::byte>& frames, const BridgeKey& key,
                                      std::uint8_t id_on_wire) {
    // Sized once and filled by copy: gcc 12 at -O3 misreads vector::insert into a fresh vector (-Warray-bounds).
    std::vector<std::byte> datagram(wire::kAuthHeaderBytes + frames.size());
    datagram[0] = std::byte{0xA5};
    datagram[1] = std::byte{0xC7};
    datagram[2] = std::byte{1};
    datagram[3] = std::byte{id_on_wire};
    std::copy(frames.begin(), frames.end(), datagram.begin() + wire::kAuthHeaderBytes);
    std::vector<std::byte> covered(8 + frames.size());
    std::copy(datagram.begin(), datagram.begin() + 8, covered.begin());
    std::copy(frames.begin(), frames.end(), covered.begin() + 8);
    std::uint8_t digest[32];
    REQUIRE(gnutls_hmac_fast(GNUTLS_MAC_SHA256, key.bytes, sizeof key.bytes, covered.data(), covered.size(),
                             digest) == 0);
    std::memcpy(datagram.data() + 8, digest, 16);
    return datagram;
}

}  // namespace

TEST_CASE("keyed bridges: two engines exchange messages under a key, and keep exchanging through a key rotation") {
    BridgeConfig config = bridge_config(DriverKind::socket);
    config.key = key_of(1, 0x10);
    Pair pair;
    REQUIRE_MESSAGE(pair.open(DriverKind::socket, &config, &config) == 0, last_error());
    CHECK(pair.bridge_a->keyed());
    CHECK(pair.bridge_a->key_id() == 1);
    EngineTopic* source = make_topic(*pair.a, "a.keyed", 64, 256);
    EngineTopic* target = make_topic(*pair.b, "b.keyed", 64, 256);
    bus::Publisher publisher;
    REQUIRE(bus::Publisher::open(source->topic(), pair.a->clock(), publisher) == 0);
    REQUIRE(pair.bridge_a->forward(source, 1) == 0);
    REQUIRE(pair.bridge_b->republish(1, target) == 0);
    bus::Subscriber receiver;
    REQUIRE(bus::Subscriber::open(target->topic(), receiver) == 0);

    std::vector<std::string> sent, got;
    auto exchange = [&](int count) {
        for (int i = 0; i < count; ++i) {
            sent.push_back(std::to_string(sent.size()));   // (not "m" + ...: gcc 12 -O3 warns, -Wrestrict)
            REQUIRE(publisher.publish(sent.back().data(), static_cast<std::uint32_t>(sent.back().size())) == 0);
        }
        for (int round = 0; round < kMaxRounds && got.size() < sent.size(); ++round) {
            pair.poll_both();
            for (Received& r : drain(receiver)) got.push_back(std::move(r.payload));
            if (got.size() < sent.size()) pause_briefly();
        }
        REQUIRE(got == sent);
    };
    exchange(100);
    // Clock probes go through the MAC too: both sides get answers.
    for (int round = 0; round < kMaxRounds && (pair.bridge_a->stats().probes_answered == 0 ||
                                               pair.bridge_b->stats().probes_answered == 0);
         ++round) {
        pair.poll_both();
        pause_briefly();
    }
    CHECK(pair.bridge_a->stats().probes_answered > 0);
    CHECK(pair.bridge_b->stats().probes_answered > 0);

    // Rotation: both learn key 2; A signs with it while B still signs with 1; then B switches too.
    const BridgeKey next = key_of(2, 0x80);
    CHECK(pair.bridge_a->rotate_key() == -ENOENT);
    CHECK(pair.bridge_a->set_next_key(1, next.bytes) == -EINVAL);   // the sending key's id
    REQUIRE(pair.bridge_a->set_next_key(2, next.bytes) == 0);
    REQUIRE(pair.bridge_b->set_next_key(2, next.bytes) == 0);
    REQUIRE(pair.bridge_a->rotate_key() == 0);
    CHECK(pair.bridge_a->key_id() == 2);
    CHECK(pair.bridge_b->key_id() == 1);
    exchange(100);
    REQUIRE(pair.bridge_b->rotate_key() == 0);
    // Key 1 may go only once A has everything B sealed under it: after one more poll of B, every datagram B
    // sealed before rotating has gone out, and loopback delivers in order.
    REQUIRE(pair.bridge_b->poll() >= 0);
    const std::uint64_t sealed_by_b = pair.bridge_b->stats().datagrams_out;
    for (int round = 0; round < kMaxRounds && pair.bridge_a->stats().datagrams_in < sealed_by_b; ++round) {
        REQUIRE(pair.bridge_a->poll() >= 0);
        pause_briefly();
    }
    const BridgeKey third = key_of(3, 0x33);   // replaces key 1 on both
    REQUIRE(pair.bridge_a->set_next_key(3, third.bytes) == 0);
    REQUIRE(pair.bridge_b->set_next_key(3, third.bytes) == 0);
    exchange(100);

    for (const Bridge* bridge : {pair.bridge_a.get(), pair.bridge_b.get()}) {
        const BridgeStats& stats = bridge->stats();
        CHECK(stats.auth_failed == 0);
        CHECK(stats.auth_unknown_key == 0);
        CHECK(stats.auth_missing == 0);
        CHECK(stats.auth_unexpected == 0);
        CHECK(stats.wire.rejected_datagrams == 0);
    }
    BridgeTopicStats stats;
    REQUIRE(pair.bridge_b->topic_stats(1, stats) == 0);
    CHECK(stats.republished == 300);
    CHECK(stats.gaps == 0);
    receiver.close();
    publisher.close();
}

TEST_CASE("keyed bridges: bad tags, cut tags, unknown key ids, flipped bits and unkeyed datagrams are dropped") {
    const BridgeKey current = key_of(1, 0x10), next = key_of(2, 0x80), stranger = key_of(1, 0x55);
    CraftedReceiver rx([&](BridgeConfig& config) {
        config.key = current;
        config.next_key = next;
    });
    EngineTopic* topic = make_topic(*rx.engine, "b.keyed", 64, 64);
    REQUIRE(rx.bridge->republish(5, topic) == 0);
    bus::Subscriber subscriber;
    REQUIRE(bus::Subscriber::open(topic->topic(), subscriber) == 0);
    constexpr std::uint32_t session = 77;

    rx.send(keyed_datagram(datagram_of({{5, 0, session, "under key 1"}}), current, 1));
    rx.send(keyed_datagram(datagram_of({{5, 1, session, "under key 2"}}), next, 2));
    std::vector<std::byte> bad = keyed_datagram(datagram_of({{5, 2, session, "tag bit"}}), current, 1);
    bad[8] ^= std::byte{0x01};
    rx.send(bad);                                                                       // auth_failed
    bad = keyed_datagram(datagram_of({{5, 2, session, "cut"}}), current, 1);
    bad.resize(20);
    rx.send(bad);                                                                       // auth_failed
    bad = keyed_datagram(datagram_of({{5, 2, session, "payload bit"}}), current, 1);
    bad[wire::kAuthHeaderBytes + wire::kFrameHeaderBytes] ^= std::byte{0x04};
    rx.send(bad);                                                                       // auth_failed
    rx.send(keyed_datagram(datagram_of({{5, 2, session, "other key"}}), stranger, 1));  // auth_failed
    rx.send(keyed_datagram(datagram_of({{5, 2, session, "key 7"}}), current, 7));      // auth_unknown_key
    rx.send(datagram_of({{5, 2, session, "unkeyed"}}));                                 // auth_missing
    // A good datagram moved under another datagram's auth header: the tag covers the frames.
    const std::vector<std::byte> donor = keyed_datagram(datagram_of({{5, 2, session, "donor"}}), current, 1);
    std::vector<std::byte> grafted(donor.begin(), donor.begin() + wire::kAuthHeaderBytes);
    const std::vector<std::byte> other_frames = datagram_of({{5, 2, session, "graft"}});
    grafted.insert(grafted.end(), other_frames.begin(), other_frames.end());
    rx.send(grafted);                                                                   // auth_failed
    rx.send(donor);

    const BridgeStats& stats = rx.bridge->stats();
    CHECK(stats.datagrams_in == 10);
    CHECK(stats.auth_failed == 5);
    CHECK(stats.auth_unknown_key == 1);
    CHECK(stats.auth_missing == 1);
    CHECK(stats.auth_unexpected == 0);
    CHECK(stats.wire.datagrams == 3);   // only the good ones were decoded
    CHECK(stats.wire.rejected_datagrams == 0);
    std::vector<std::string> payloads;
    for (const Received& r : drain(subscriber)) payloads.push_back(r.payload);
    CHECK(payloads == std::vector<std::string>{"under key 1", "under key 2", "donor"});

    // A keyless bridge drops keyed datagrams.
    CraftedReceiver keyless;
    EngineTopic* plain = make_topic(*keyless.engine, "b.plain", 64, 64);
    REQUIRE(keyless.bridge->republish(5, plain) == 0);
    keyless.send(keyed_datagram(datagram_of({{5, 0, session, "keyed"}}), current, 1));
    keyless.send(datagram_of({{5, 0, session, "plain"}}));
    CHECK(keyless.bridge->stats().auth_unexpected == 1);
    CHECK(keyless.bridge->stats().wire.rejected_datagrams == 0);
    BridgeTopicStats plain_stats;
    REQUIRE(keyless.bridge->topic_stats(5, plain_stats) == 0);
    CHECK(plain_stats.republished == 1);
}

namespace {

// The peer's clock: ours + 25 ms, running 150 ppm fast from t0 on. Integer arithmetic, so the test's "true
// offset" is exactly the injected function.
struct SkewedClock {
    Instant t0;
    static constexpr Femtos kOffset = Femtos{25} * 1'000'000'000'000;   // 25 ms
    static constexpr Femtos kPpm = 150;

    Instant at(Instant local) const {
        const Femtos since = (local - t0).femtos();
        return Instant::from_femtos(local.femtos() + kOffset + since * kPpm / 1'000'000);
    }
    static Instant now(void* context) { return static_cast<SkewedClock*>(context)->at(default_clock().now()); }
};

}  // namespace

namespace {

// A clock the test moves by hand: a bridge on it probes only when the test lets probe_interval pass.
struct ManualClock {
    Instant time = Instant::from_femtos(Femtos{1'700'000'000} * 1'000'000'000'000'000);
    static Instant now(void* context) { return static_cast<ManualClock*>(context)->time; }
};

std::string control_payload(const ControlMessage& message) {
    std::byte bytes[kControlBytes];
    encode_control(message, bytes);
    return std::string(reinterpret_cast<const char*>(bytes), kControlBytes);
}

Frame answer_frame(std::uint64_t nonce, Instant t1, Instant t2, Instant t3) {
    ControlMessage answer;
    answer.kind = ControlKind::answer;
    answer.nonce = nonce;
    answer.t1 = t1;
    answer.t2 = t2;
    answer.t3 = t3;
    return {0, 0, 0xA115, control_payload(answer), HlcStamp{}, wire::kFrameControl};
}

// Polls `rx` until the plain socket got a probe from it, and decodes that probe.
ControlMessage next_probe(CraftedReceiver& rx) {
    std::vector<std::byte> datagram;
    REQUIRE(poll_until(*rx.bridge, [&] {
        datagram = rx.sender.receive();
        return !datagram.empty();
    }));
    wire::WireCounters counters;
    wire::DatagramReader reader(datagram.data(), datagram.size(), wire::kMaxPayloadBytes, counters);
    wire::DecodedFrame frame;
    REQUIRE(reader.next(frame) == 1);
    REQUIRE((frame.fields.flags & wire::kFrameControl) != 0);
    ControlMessage probe;
    REQUIRE(decode_control(frame.payload, frame.length, probe) == 0);
    REQUIRE(probe.kind == ControlKind::probe);
    return probe;
}

}  // namespace

TEST_CASE("clock probe answers are believed only for a probe outstanding, once, in time") {
    const Duration ahead = Duration::from_seconds(10);
    const Duration half_rtt = Duration::from_micros(100);

    SUBCASE("a bridge that sent no probe believes no answer") {
        CraftedReceiver rx;   // probe_interval 0: never probes
        const Instant t = default_clock().now();
        for (std::uint64_t i = 0; i < 5; ++i) {
            rx.send({answer_frame(0x1234 + i, t, t + ahead, t + ahead + Duration::from_micros(1))});
        }
        CHECK(rx.bridge->stats().answers_unsolicited == 5);
        CHECK(rx.bridge->stats().probes_answered == 0);
        CHECK(rx.bridge->stats().probes_sent == 0);
        OffsetEstimator::Estimate estimate;
        CHECK(rx.bridge->clock_offset(estimate) == -EAGAIN);
    }

    SUBCASE("wrong nonce, wrong t1, replayed, stale, replaced: counted and dropped; the genuine ones count") {
        ManualClock clock;
        CraftedReceiver rx([&](BridgeConfig& config) {
            config.probe_interval = Duration::from_millis(10);
            config.now = &ManualClock::now;
            config.now_context = &clock;
        });
        const ControlMessage first = next_probe(rx);
        CHECK(first.t1 == clock.time);
        const Instant t2 = first.t1 + ahead + half_rtt;
        rx.send({answer_frame(first.nonce ^ 1, first.t1, t2, t2)});   // another nonce
        rx.send({answer_frame(first.nonce, first.t1 + Duration::from_nanos(1), t2, t2)});   // another t1
        OffsetEstimator::Estimate estimate;
        CHECK(rx.bridge->clock_offset(estimate) == -EAGAIN);
        CHECK(rx.bridge->stats().answers_unsolicited == 2);

        clock.time = first.t1 + half_rtt + half_rtt;   // t4
        const std::vector<std::byte> genuine = datagram_of({answer_frame(first.nonce, first.t1, t2, t2)});
        rx.send(genuine);
        CHECK(rx.bridge->stats().probes_answered == 1);
        REQUIRE(rx.bridge->clock_offset(estimate) == 0);
        const Femtos error = (estimate.offset - ahead).femtos();
        CHECK((error < 0 ? -error : error) <= estimate.bound.femtos());
        rx.send(genuine);   // the same answer again: its probe was answered already
        CHECK(rx.bridge->stats().answers_unsolicited == 3);
        CHECK(rx.bridge->stats().probes_answered == 1);

        // A second probe, answered after max_probe_age (1 s).
        clock.time += Duration::from_millis(10);
        const ControlMessage second = next_probe(rx);
        CHECK(second.nonce != first.nonce);
        clock.time = second.t1 + Duration::from_millis(1001);
        rx.send({answer_frame(second.nonce, second.t1, second.t1 + ahead, second.t1 + ahead)});
        CHECK(rx.bridge->stats().answers_stale == 1);
        CHECK(rx.bridge->stats().probes_answered == 1);

        // The probe sent while the stale answer was taken in, and fifteen more (the clock moves past
        // probe_interval before each), fill the book: while all of them are unanswered and younger than
        // max_probe_age, no probe is sent. Once the oldest is older, the next probe takes its place and the
        // answer to it finds nothing.
        std::vector<ControlMessage> probes{next_probe(rx)};
        for (std::uint32_t i = 1; i < ProbeBook::kOutstanding; ++i) {
            clock.time += Duration::from_millis(10);
            probes.push_back(next_probe(rx));
        }
        const std::uint64_t sent = rx.bridge->stats().probes_sent;
        clock.time += Duration::from_millis(10);
        REQUIRE(rx.bridge->poll() >= 0);
        CHECK(rx.bridge->stats().probes_sent == sent);
        CHECK(rx.bridge->stats().probes_deferred == 1);
        clock.time = probes.front().t1 + Duration::from_millis(1001);
        const ControlMessage newest = next_probe(rx);
        CHECK(rx.bridge->stats().probes_sent == sent + 1);
        const ControlMessage& forgotten = probes.front();
        rx.send({answer_frame(forgotten.nonce, forgotten.t1, forgotten.t1 + ahead, forgotten.t1 + ahead)});
        CHECK(rx.bridge->stats().answers_unsolicited == 4);
        rx.send({answer_frame(newest.nonce, newest.t1, newest.t1 + ahead, newest.t1 + ahead)});
        CHECK(rx.bridge->stats().probes_answered == 2);
        const ControlMessage& kept = probes.back();   // 850 ms old: still outstanding, in time
        rx.send({answer_frame(kept.nonce, kept.t1, kept.t1 + ahead, kept.t1 + ahead)});
        CHECK(rx.bridge->stats().probes_answered == 3);

        // A control version 1 answer (56 bytes, no nonce) is refused by its size.
        std::string old_answer(56, '\0');
        old_answer[0] = '\2';
        rx.send({{0, 0, 0xA115, old_answer, HlcStamp{}, wire::kFrameControl}});
        CHECK(rx.bridge->stats().control_rejected == 1);
        CHECK(rx.bridge->stats().answers_unsolicited == 4);
        CHECK(rx.bridge->stats().answers_stale == 1);
        CHECK(rx.bridge->stats().probes_rejected == 0);
    }
}

TEST_CASE("clock offset against a peer 25 ms ahead and 150 ppm fast: every estimate lies within its own bound") {
    SkewedClock skewed{default_clock().now()};
    BridgeConfig config_a = bridge_config(DriverKind::socket);
    config_a.probe_interval = Duration::from_millis(2);
    config_a.offset.window = 512;   // about a second of probes: enough span to see the drift
    BridgeConfig config_b = config_a;
    config_b.now = &SkewedClock::now;
    config_b.now_context = &skewed;
    Pair pair;
    REQUIRE_MESSAGE(pair.open(DriverKind::socket, &config_b, &config_a) == 0, last_error());

    OffsetEstimator::Estimate estimate;
    CHECK(pair.bridge_a->clock_offset(estimate) == -EAGAIN);
    CHECK(last_error().find("no clock offset yet") != std::string::npos);

    constexpr std::uint64_t kProbes = 700;
    int checks_a = 0, checks_b = 0, violations = 0, drift_outside = 0;
    int rounds = 0;
    while ((pair.bridge_a->stats().probes_answered < kProbes || pair.bridge_b->stats().probes_answered < kProbes) &&
           rounds < kMaxRounds) {
        pair.poll_both();
        ++rounds;
        if (pair.bridge_a->clock_offset(estimate) == 0) {
            // A sees B: offset = skewed(t) - t at A's time t.
            const Femtos truth = (skewed.at(estimate.at) - estimate.at).femtos();
            const Femtos error = estimate.offset.femtos() - truth;
            violations += (error < 0 ? -error : error) > estimate.bound.femtos();
            drift_outside += 150.0 < estimate.drift_low_ppm - 1e-3 || 150.0 > estimate.drift_high_ppm + 1e-3;
            ++checks_a;
        }
        if (pair.bridge_b->clock_offset(estimate) == 0) {
            // B sees A: at B's time u, A's time t solves u = skewed(t); offset = t - u. Relative to t0 in long
            // double: ~1e-19 relative error on seconds-sized values, far below the nanosecond margin.
            const long double u = static_cast<long double>((estimate.at - skewed.t0).femtos());
            const long double t = (u - static_cast<long double>(SkewedClock::kOffset)) / (1.0L + 150e-6L);
            const long double truth = t - u;
            const long double error = static_cast<long double>(estimate.offset.femtos()) - truth;
            violations += std::fabs(error) > static_cast<long double>(estimate.bound.femtos()) + 10.0L;
            ++checks_b;
        }
        pause_briefly();
    }
    CHECK(pair.bridge_a->stats().probes_answered >= kProbes);
    CHECK(pair.bridge_b->stats().probes_answered >= kProbes);
    CHECK(checks_a > 100);
    CHECK(checks_b > 100);
    CHECK(violations == 0);
    CHECK(drift_outside == 0);
    CHECK(pair.bridge_a->stats().probes_rejected == 0);
    CHECK(pair.bridge_a->stats().answers_sent > 0);
    REQUIRE(pair.bridge_a->clock_offset(estimate) == 0);
    MESSAGE("A's view of B after " << checks_a << " checks: offset " << estimate.offset.to_nanos_f64() << " ns +- "
                                   << estimate.bound.to_nanos_f64() << " ns, drift " << estimate.drift_ppm
                                   << " ppm in [" << estimate.drift_low_ppm << ", " << estimate.drift_high_ppm
                                   << "], best rtt " << estimate.best_rtt.to_nanos_f64() << " ns; violations "
                                   << violations);
    // The last estimate against the truth at its time: 25 ms plus 150 ppm of however long the run took (under
    // qemu, many seconds), so not a fixed number.
    const Femtos truth = (skewed.at(estimate.at) - estimate.at).femtos();
    const Femtos error = estimate.offset.femtos() - truth;
    CHECK((error < 0 ? -error : error) <= estimate.bound.femtos());
    CHECK(truth >= Duration::from_millis(25).femtos());
}

TEST_CASE("bad arguments and configurations are refused with a message") {
    std::unique_ptr<Engine> engine = make_engine(1);
    std::unique_ptr<Engine> other = make_engine(2);
    std::unique_ptr<Bridge> bridge;

    BridgeConfig config = bridge_config(DriverKind::socket);
    config.max_datagram_bytes = 40;
    CHECK(Bridge::create(*engine, config, bridge) == -EINVAL);
    CHECK(last_error().find("max_datagram_bytes 40") != std::string::npos);
    config.max_datagram_bytes = 4096;   // larger than the 2048-byte buffers
    CHECK(Bridge::create(*engine, config, bridge) == -EINVAL);
    config = bridge_config(DriverKind::socket);
    config.max_topics = 0;
    CHECK(Bridge::create(*engine, config, bridge) == -EINVAL);
    config = bridge_config(DriverKind::socket);
    config.probe_interval = Duration::from_nanos(-1);
    CHECK(Bridge::create(*engine, config, bridge) == -EINVAL);
    config = bridge_config(DriverKind::socket);
    config.next_key = key_of(2, 0);
    CHECK(Bridge::create(*engine, config, bridge) == -EINVAL);
    CHECK(last_error().find("next_key") != std::string::npos);
    config.key = key_of(2, 1);
    CHECK(Bridge::create(*engine, config, bridge) == -EINVAL);   // the same id twice
    config = bridge_config(DriverKind::socket);
    config.key = key_of(1, 0);
    config.max_datagram_bytes = 48 + 23;   // no room for a frame behind the auth header
    CHECK(Bridge::create(*engine, config, bridge) == -EINVAL);
    config = bridge_config(DriverKind::socket);
    config.max_probe_age = Duration{};
    CHECK(Bridge::create(*engine, config, bridge) == -EINVAL);
    CHECK(last_error().find("age limit") != std::string::npos);
    config = bridge_config(DriverKind::socket);
    config.max_sequence_jump = 0;
    CHECK(Bridge::create(*engine, config, bridge) == -EINVAL);
    CHECK(last_error().find("max_sequence_jump") != std::string::npos);
    config = bridge_config(DriverKind::socket);
    config.offset.window = 1;
    CHECK(Bridge::create(*engine, config, bridge) == -EINVAL);
    CHECK(bridge == nullptr);

    config = bridge_config(DriverKind::socket);
    config.max_topics = 2;
    REQUIRE(Bridge::create(*engine, config, bridge) == 0);
    EngineTopic* mine = make_topic(*engine, "mine", 64, 8, 4);
    EngineTopic* second = make_topic(*engine, "second", 64, 8, 4);
    EngineTopic* third = make_topic(*engine, "third", 64, 8, 4);
    EngineTopic* theirs = make_topic(*other, "theirs", 64, 8);

    CHECK(bridge->forward(nullptr, 1) == -EINVAL);
    CHECK(last_error().find("NULL") != std::string::npos);
    CHECK(bridge->forward(theirs, 1) == -EINVAL);
    CHECK(last_error().find("another engine") != std::string::npos);
    CHECK(bridge->republish(1, nullptr) == -EINVAL);
    CHECK(bridge->republish(1, theirs) == -EINVAL);
    CHECK(last_error().find("'theirs'") != std::string::npos);

    bus::Publisher publisher;   // takes "mine"'s one publisher place
    REQUIRE(bus::Publisher::open(mine->topic(), engine->clock(), publisher) == 0);
    CHECK(bridge->forward(mine, 1) == 0);
    CHECK(bridge->forward(second, 1) == -EEXIST);
    CHECK(last_error().find("already forwarded") != std::string::npos);
    CHECK(bridge->forward(second, 2) == 0);
    CHECK(bridge->forward(third, 3) == -ENOSPC);
    CHECK(bridge->republish(1, third) == 0);   // the same id in the other direction is fine
    CHECK(bridge->republish(1, second) == -EEXIST);
    CHECK(bridge->republish(2, mine) == -EUSERS);
    CHECK(bridge->republish(2, second) == 0);
    CHECK(bridge->republish(3, second) == -ENOSPC);

    BridgeTopicStats stats;
    CHECK(bridge->topic_stats(1, stats) == 0);
    CHECK(bridge->topic_stats(99, stats) == -ENOENT);
    CHECK(last_error().find("99") != std::string::npos);
    CHECK(bridge->set_peer(PeerAddress{}) == -EINVAL);
    CHECK_FALSE(bridge->keyed());
    CHECK(bridge->set_next_key(1, key_of(1, 0).bytes) == -EINVAL);
    CHECK(bridge->rotate_key() == -ENOENT);
    OffsetEstimator::Estimate estimate;
    CHECK(bridge->clock_offset(estimate) == -EAGAIN);

    // Without a peer nothing is sent and nothing is accepted.
    REQUIRE(publisher.publish("x", 1) == 0);
    CHECK(bridge->poll() == 0);
    CHECK(bridge->stats().frames_out == 0);
    CHECK(bridge->stats().probes_sent == 0);
    PlainSocket stranger;
    stranger.send(datagram_of({{1, 0, 1, "x"}}), bridge->local_address());
    CHECK(poll_until(*bridge, [&] { return bridge->stats().foreign_datagrams == 1; }));
    CHECK(bridge->stats().datagrams_in == 0);
    CHECK(text_of(bridge->local_address()).rfind("127.0.0.1:", 0) == 0);

    // The topics are held open by the bridge until it goes.
    CHECK(engine->close_topic(mine, false) == -EBUSY);
    publisher.close();
    bridge.reset();
    CHECK(engine->close_topic(mine, false) == 0);
    CHECK(engine->open_endpoints() == 0);
}
