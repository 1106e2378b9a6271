// The lossy relay between two plain UDP sockets on loopback: exact forwarding, the impairment fractions against
// their binomial (or Markov-chain) bounds, tail drop at the bottleneck, reordering by gap, delay and rate by order
// and counts only, resource limits, foreign senders, and the command line. Timings are printed, never asserted.
#include "tests/quic/lossy_relay.hpp"

#include <doctest/doctest.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <map>
#include <memory>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "platform/os/last_error.hpp"
#include "tests/quic/lossy_relay_options.hpp"

using cf::quic::testing::DirectionStats;
using cf::quic::testing::LossyRelay;
using cf::quic::testing::LossyRelayConfig;
using cf::quic::testing::LossyRelayOptions;
using cf::quic::testing::LossyRelayStats;
using cf::quic::testing::PeerAddress;

namespace {

using Clock = std::chrono::steady_clock;
// Liveness guard only: a loop that sees no progress for this long fails instead of hanging the suite.
constexpr auto kStall = std::chrono::seconds(10);

PeerAddress address_of(const char* text) {
    PeerAddress address;
    REQUIRE(PeerAddress::parse(text, address) == 0);
    return address;
}

// A non-blocking UDP socket bound to 127.0.0.1 (port picked by the kernel).
class Socket {
public:
    Socket() {
        fd_ = ::socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        REQUIRE(fd_ >= 0);
        const int bytes = 4 << 20;
        if (::setsockopt(fd_, SOL_SOCKET, SO_RCVBUFFORCE, &bytes, sizeof bytes) != 0) {
            (void)::setsockopt(fd_, SOL_SOCKET, SO_RCVBUF, &bytes, sizeof bytes);
        }
        PeerAddress any = address_of("127.0.0.1:0");
        REQUIRE(::bind(fd_, &any.addr.any, any.length) == 0);
        address_.length = sizeof address_.addr;
        REQUIRE(::getsockname(fd_, &address_.addr.any, &address_.length) == 0);
    }
    ~Socket() { ::close(fd_); }
    Socket(const Socket&) = delete;
    Socket& operator=(const Socket&) = delete;

    const PeerAddress& address() const { return address_; }
    void send(const PeerAddress& to, const std::vector<std::uint8_t>& bytes) const {
        REQUIRE(::sendto(fd_, bytes.data(), bytes.size(), 0, &to.addr.any, to.length) ==
                static_cast<ssize_t>(bytes.size()));
    }
    // Every datagram in one sendmmsg call: a burst as fast as the kernel takes it.
    void send_burst(const PeerAddress& to, const std::vector<std::vector<std::uint8_t>>& datagrams) const {
        std::vector<mmsghdr> headers(datagrams.size());
        std::vector<iovec> iovs(datagrams.size());
        for (std::size_t i = 0; i < datagrams.size(); ++i) {
            iovs[i] = {const_cast<std::uint8_t*>(datagrams[i].data()), datagrams[i].size()};
            headers[i].msg_hdr = {};
            headers[i].msg_hdr.msg_name = const_cast<sockaddr*>(&to.addr.any);
            headers[i].msg_hdr.msg_namelen = to.length;
            headers[i].msg_hdr.msg_iov = &iovs[i];
            headers[i].msg_hdr.msg_iovlen = 1;
        }
        REQUIRE(::sendmmsg(fd_, headers.data(), static_cast<unsigned>(headers.size()), 0) ==
                static_cast<int>(headers.size()));
    }
    // One datagram if one is waiting (up to wait_ms for it), with its sender.
    bool receive(std::vector<std::uint8_t>& bytes, PeerAddress* from = nullptr, int wait_ms = 0) const {
        if (wait_ms > 0) {
            pollfd fd{fd_, POLLIN, 0};
            (void)::poll(&fd, 1, wait_ms);
        }
        bytes.resize(65536);
        PeerAddress sender;
        sender.length = sizeof sender.addr;
        const ssize_t size = ::recvfrom(fd_, bytes.data(), bytes.size(), 0, &sender.addr.any, &sender.length);
        if (size < 0) {
            REQUIRE((errno == EAGAIN || errno == EWOULDBLOCK));
            bytes.clear();
            return false;
        }
        bytes.resize(static_cast<std::size_t>(size));
        if (from != nullptr) *from = sender;
        return true;
    }

private:
    int fd_ = -1;
    PeerAddress address_;
};

std::vector<std::uint8_t> numbered(std::uint64_t sequence, std::size_t size) {
    std::vector<std::uint8_t> bytes(size < 8 ? 8 : size);
    for (int i = 0; i < 8; ++i) bytes[static_cast<std::size_t>(i)] = static_cast<std::uint8_t>(sequence >> (8 * i));
    for (std::size_t i = 8; i < bytes.size(); ++i) bytes[i] = static_cast<std::uint8_t>(sequence * 31 + i);
    return bytes;
}

std::uint64_t sequence_of(const std::vector<std::uint8_t>& bytes) {
    REQUIRE(bytes.size() >= 8);
    std::uint64_t sequence = 0;
    for (int i = 0; i < 8; ++i) sequence |= std::uint64_t{bytes[static_cast<std::size_t>(i)]} << (8 * i);
    CHECK(bytes == numbered(sequence, bytes.size()));   // not corrupted on the way
    return sequence;
}

std::unique_ptr<LossyRelay> start_relay(LossyRelayConfig config, const Socket& server) {
    config.listen = address_of("127.0.0.1:0");
    config.server = server.address();
    std::unique_ptr<LossyRelay> relay;
    INFO(cf::platform::last_error_message());
    REQUIRE(LossyRelay::create(config, relay) == 0);
    CHECK(relay->listen_address().port() != 0);
    REQUIRE(relay->start() == 0);
    return relay;
}

// Every datagram is accounted for once the relay stopped.
void check_conservation(const DirectionStats& s) {
    CHECK(s.received + s.duplicated == s.forwarded + s.dropped_loss + s.dropped_queue + s.dropped_no_slot +
                                           s.dropped_oversized + s.send_errors + s.pending);
}

void print_stats(const char* test, const LossyRelayStats& stats) {
    char line[1024];
    std::printf("[%s] %s\n", test, cf::quic::testing::format_stats(stats, line, sizeof line));
}

// Streams `count` numbered datagrams through the relay until it forwarded all it kept, sending one from `client` whenever fewer than
// `window` wait in the relay's socket and fewer than `window` it forwarded are unread, so no socket buffer
// overflows. Returns the arrival order.
std::vector<std::uint64_t> stream_through(LossyRelay& relay, const Socket& client, const Socket& server,
                                          std::uint64_t count, std::size_t size, std::uint64_t window) {
    std::vector<std::uint64_t> arrivals;
    std::vector<std::uint8_t> bytes;
    std::uint64_t sent = 0;
    auto progress = Clock::now();
    for (;;) {
        const LossyRelayStats stats = relay.stats();
        const DirectionStats& up = stats.to_server;
        while (sent < count && sent - up.received < window && up.forwarded - arrivals.size() < window) {
            client.send(relay.listen_address(), numbered(sent, size));
            ++sent;
        }
        bool got = false;
        while (server.receive(bytes)) {
            arrivals.push_back(sequence_of(bytes));
            got = true;
        }
        if (got) progress = Clock::now();
        // Done: all sent, all read by the relay, nothing left inside it, and everything it forwarded read here.
        if (sent == count && up.received == count && up.pending == 0 && arrivals.size() == up.forwarded) break;
        REQUIRE(Clock::now() - progress < kStall);
        if (!got && server.receive(bytes, nullptr, 1)) arrivals.push_back(sequence_of(bytes));
    }
    return arrivals;
}

// |observed - n p| within `sigmas` standard deviations of a binomial(n, p).
void check_binomial(const char* what, std::uint64_t observed, std::uint64_t n, double p, double sigmas = 4.0) {
    const double mean = static_cast<double>(n) * p;
    const double deviation = std::sqrt(static_cast<double>(n) * p * (1 - p));
    INFO(what, ": observed ", observed, " of ", n, ", expected ", mean, " +- ", sigmas * deviation);
    CHECK(std::fabs(static_cast<double>(observed) - mean) <= sigmas * deviation);
}

}  // namespace

TEST_CASE("lossy relay: no impairment forwards every datagram both ways, byte for byte, in order") {
    Socket client, server;
    auto relay = start_relay(LossyRelayConfig{}, server);
    // Sizes from empty to the slot size, several of each, in a fixed pseudo-random order.
    std::mt19937_64 random(7);
    std::vector<std::vector<std::uint8_t>> sent;
    for (int i = 0; i < 3000; ++i) {
        const std::size_t size = i % 500 == 0 ? 0 : i % 500 == 1 ? 2048 : random() % 1473;
        std::vector<std::uint8_t> bytes(size);
        for (auto& byte : bytes) byte = static_cast<std::uint8_t>(random());
        sent.push_back(std::move(bytes));
    }
    std::vector<std::vector<std::uint8_t>> at_server, at_client;
    std::vector<std::uint8_t> bytes;
    PeerAddress from;
    std::size_t next = 0;
    auto progress = Clock::now();
    const auto start = Clock::now();
    while (at_client.size() < sent.size()) {
        bool moved = false;
        while (next < sent.size() && next - at_client.size() < 64) {
            client.send(relay->listen_address(), sent[next++]);
            moved = true;
        }
        while (server.receive(bytes, &from)) {
            CHECK(from == relay->server_side_address());
            at_server.push_back(bytes);
            // The echo goes back through the relay, reversed so the other direction carries different bytes.
            std::vector<std::uint8_t> echo(bytes.rbegin(), bytes.rend());
            server.send(from, echo);
            moved = true;
        }
        while (client.receive(bytes, &from)) {
            CHECK(from == relay->listen_address());
            at_client.push_back(bytes);
            moved = true;
        }
        if (moved) progress = Clock::now();
        REQUIRE(Clock::now() - progress < kStall);
        if (!moved) (void)::poll(nullptr, 0, 1);
    }
    const double seconds = std::chrono::duration<double>(Clock::now() - start).count();
    REQUIRE(relay->stop() == 0);
    REQUIRE(at_server.size() == sent.size());
    for (std::size_t i = 0; i < sent.size(); ++i) {
        INFO("datagram ", i);
        REQUIRE(at_server[i] == sent[i]);
        REQUIRE(at_client[i] == std::vector<std::uint8_t>(sent[i].rbegin(), sent[i].rend()));
    }
    const LossyRelayStats stats = relay->stats();
    print_stats("exact", stats);
    std::printf("[exact] %zu round trips in %.3f s\n", sent.size(), seconds);
    CHECK(stats.client_known);
    CHECK(stats.foreign == 0);
    for (const DirectionStats* s : {&stats.to_server, &stats.to_client}) {
        CHECK(s->received == sent.size());
        CHECK(s->forwarded == sent.size());
        CHECK(s->dropped_loss + s->dropped_queue + s->dropped_no_slot + s->dropped_oversized + s->send_errors == 0);
        CHECK(s->duplicated + s->reordered + s->pending + s->max_queue_bytes == 0);
        check_conservation(*s);
    }
}

TEST_CASE("lossy relay: loss, duplication and reordering fractions over 20000 datagrams (fixed seed)") {
    Socket client, server;
    LossyRelayConfig config;
    config.seed = 20240613;
    config.to_server.loss_percent = 5;
    config.to_server.duplicate_percent = 3;
    config.to_server.reorder_percent = 4;
    config.to_server.reorder_gap = 3;
    config.to_server.reorder_hold_ns = 100'000'000;
    auto relay = start_relay(config, server);
    constexpr std::uint64_t kCount = 20000;
    const std::vector<std::uint64_t> arrivals = stream_through(*relay, client, server, kCount, 64, 128);
    REQUIRE(relay->stop() == 0);
    const LossyRelayStats stats = relay->stats();
    print_stats("fractions", stats);
    const DirectionStats& s = stats.to_server;
    check_conservation(s);
    REQUIRE(s.received == kCount);
    CHECK(s.pending == 0);
    CHECK(s.dropped_queue + s.dropped_no_slot + s.dropped_oversized + s.send_errors == 0);
    check_binomial("lost", s.dropped_loss, kCount, 0.05);
    const std::uint64_t kept = kCount - s.dropped_loss;
    check_binomial("duplicated", s.duplicated, kept, 0.03);
    check_binomial("held back", s.reordered, kept + s.duplicated, 0.04);

    // What the server saw matches the counters exactly.
    std::map<std::uint64_t, int> copies;
    std::uint64_t late = 0, highest = 0;
    for (std::size_t i = 0; i < arrivals.size(); ++i) {
        ++copies[arrivals[i]];
        if (i > 0 && arrivals[i] < highest) ++late;
        if (arrivals[i] > highest) highest = arrivals[i];
    }
    CHECK(arrivals.size() == s.forwarded);
    CHECK(arrivals.size() == kept + s.duplicated);
    CHECK(copies.size() == kept);
    std::uint64_t extra = 0;
    for (const auto& [sequence, n] : copies) {
        CHECK(sequence < kCount);
        CHECK(n <= 2);
        extra += static_cast<std::uint64_t>(n - 1);
    }
    CHECK(extra == s.duplicated);
    // A held datagram arrives behind a later one unless only its own copy or nothing overtook it.
    CHECK(late <= s.reordered);
    CHECK(late * 10 >= s.reordered * 8);
    CHECK(stats.to_client.received == 0);
}

TEST_CASE("lossy relay: burst losses keep the loss fraction and come in runs of the configured mean length") {
    Socket client, server;
    LossyRelayConfig config;
    config.seed = 99;
    config.to_server.loss_percent = 5;
    config.to_server.loss_burst = 4;
    auto relay = start_relay(config, server);
    constexpr std::uint64_t kCount = 20000;
    const std::vector<std::uint64_t> arrivals = stream_through(*relay, client, server, kCount, 32, 128);
    REQUIRE(relay->stop() == 0);
    const DirectionStats s = relay->stats().to_server;
    check_conservation(s);
    REQUIRE(arrivals.size() == kCount - s.dropped_loss);
    // Runs of missing sequence numbers (the order is kept: nothing reorders here).
    std::uint64_t runs = 0, expected = 0;
    for (std::uint64_t sequence : arrivals) {
        REQUIRE(sequence >= expected);
        if (sequence > expected) ++runs;
        expected = sequence + 1;
    }
    if (expected < kCount) ++runs;
    // A two-state chain with P(lost | lost) = a, P(lost | kept) = b: the loss count's variance is the binomial
    // one times (1 + l) / (1 - l), l = a - b. Runs start at kept -> lost steps: n P / B of them.
    const double p = 0.05, burst = 4;
    const double l = (1 - 1 / burst) - p / (burst * (1 - p));
    const double deviation = std::sqrt(kCount * p * (1 - p) * (1 + l) / (1 - l));
    std::printf("[burst] lost %llu in %llu runs (mean %.2f)\n", static_cast<unsigned long long>(s.dropped_loss),
                static_cast<unsigned long long>(runs), runs == 0 ? 0.0 : double(s.dropped_loss) / double(runs));
    CHECK(std::fabs(double(s.dropped_loss) - kCount * p) <= 4 * deviation);
    const double expected_runs = kCount * p / burst;   // 250; independent 5% losses would make about 950
    CHECK(std::fabs(double(runs) - expected_runs) <= 5 * std::sqrt(expected_runs));
}

TEST_CASE("lossy relay: the same seed gives every datagram the same fate; another seed does not") {
    const auto run = [](std::uint64_t seed) {
        Socket client, server;
        LossyRelayConfig config;
        config.seed = seed;
        config.to_server.loss_percent = 10;
        config.to_server.duplicate_percent = 10;
        auto relay = start_relay(config, server);
        std::vector<std::uint64_t> arrivals = stream_through(*relay, client, server, 2000, 16, 64);
        REQUIRE(relay->stop() == 0);
        return arrivals;
    };
    const std::vector<std::uint64_t> first = run(5), again = run(5), other = run(6);
    CHECK(first == again);
    CHECK(first != other);
}

TEST_CASE("lossy relay: a held datagram goes out right after the reorder-gap-th later one") {
    Socket client, server;
    LossyRelayConfig config;
    config.seed = 3;
    config.to_server.reorder_percent = 10;
    config.to_server.reorder_gap = 3;
    config.to_server.reorder_hold_ns = 2'000'000'000;   // only the tail waits for it
    auto relay = start_relay(config, server);
    constexpr std::uint64_t kCount = 5000;
    const std::vector<std::uint64_t> arrivals = stream_through(*relay, client, server, kCount, 16, 64);
    REQUIRE(relay->stop() == 0);
    const DirectionStats s = relay->stats().to_server;
    check_conservation(s);
    REQUIRE(arrivals.size() == kCount);
    // In order: the datagrams nobody held. A held one arrives after exactly `gap` in-order datagrams that came
    // after it; only those held among the last in-order ones go by hold time, after fewer.
    std::uint64_t highest = 0, late = 0, tail = 0;
    std::vector<std::uint64_t> in_order;
    for (std::uint64_t sequence : arrivals) {
        if (!in_order.empty() && sequence < highest) continue;
        in_order.push_back(sequence);
        highest = sequence;
    }
    highest = 0;
    std::size_t in_order_seen = 0;
    for (std::size_t i = 0; i < arrivals.size(); ++i) {
        const std::uint64_t sequence = arrivals[i];
        if (i > 0 && sequence < highest) {
            ++late;
            // In-order datagrams after `sequence` that arrived before it.
            std::uint64_t overtaken_by = 0;
            for (std::size_t k = 0; k < in_order_seen; ++k) overtaken_by += in_order[k] > sequence ? 1 : 0;
            if (overtaken_by != 3) {
                ++tail;
                CHECK(overtaken_by < 3);
                CHECK(in_order_seen == in_order.size());   // only at the very end
            }
            continue;
        }
        highest = sequence;
        ++in_order_seen;
    }
    std::printf("[gap] %llu held, %llu late, %llu released by time at the end\n",
                static_cast<unsigned long long>(s.reordered), static_cast<unsigned long long>(late),
                static_cast<unsigned long long>(tail));
    CHECK(late <= s.reordered);
    CHECK(s.reordered - late <= 3);   // held ones not overtaken at all: at most the last gap's worth
    check_binomial("held back", s.reordered, kCount, 0.10);
}

TEST_CASE("lossy relay: everything held back with gap 0 only adds delay: the order is kept") {
    Socket client, server;
    LossyRelayConfig config;
    config.to_server.reorder_percent = 100;
    config.to_server.reorder_gap = 0;
    config.to_server.reorder_hold_ns = 5'000'000;
    auto relay = start_relay(config, server);
    const std::vector<std::uint64_t> arrivals = stream_through(*relay, client, server, 500, 16, 32);
    REQUIRE(relay->stop() == 0);
    std::vector<std::uint64_t> expected(500);
    for (std::uint64_t i = 0; i < 500; ++i) expected[i] = i;
    CHECK(arrivals == expected);
    CHECK(relay->stats().to_server.reordered == 500);
}

TEST_CASE("lossy relay: the bottleneck queue drops exactly what overflows a burst, tail first") {
    Socket client, server;
    LossyRelayConfig config;
    // 1200 bytes take 48 ms at 0.2 Mbit/s: a 50-datagram burst (one sendmmsg, well under a millisecond) meets a
    // queue of 6000 bytes that admits 5 and drains none before the burst is over.
    config.to_server.rate_bits_per_second = 200'000;
    config.to_server.queue_bytes = 6000;
    auto relay = start_relay(config, server);
    std::vector<std::vector<std::uint8_t>> burst;
    for (std::uint64_t i = 0; i < 50; ++i) burst.push_back(numbered(i, 1200));
    const auto start = Clock::now();
    client.send_burst(relay->listen_address(), burst);
    std::vector<std::uint64_t> arrivals;
    std::vector<std::uint8_t> bytes;
    auto progress = Clock::now();
    for (;;) {
        if (server.receive(bytes, nullptr, 5)) {
            arrivals.push_back(sequence_of(bytes));
            std::printf("[queue] datagram %llu after %.1f ms\n", static_cast<unsigned long long>(arrivals.back()),
                        std::chrono::duration<double, std::milli>(Clock::now() - start).count());
            progress = Clock::now();
        }
        const DirectionStats s = relay->stats().to_server;
        if (s.received == 50 && s.pending == 0 && arrivals.size() == s.forwarded) break;
        REQUIRE(Clock::now() - progress < kStall);
    }
    REQUIRE(relay->stop() == 0);
    const DirectionStats s = relay->stats().to_server;
    check_conservation(s);
    CHECK(s.dropped_queue == 45);
    CHECK(s.forwarded == 5);
    CHECK(s.max_queue_bytes <= 6000);
    CHECK(s.max_queue_bytes > 4800);   // five at once (the fifth came a few microseconds after the first)
    CHECK(arrivals == std::vector<std::uint64_t>{0, 1, 2, 3, 4});
}

TEST_CASE("lossy relay: delayed and rate-limited datagrams arrive after one sent later around the relay") {
    Socket client, server;
    LossyRelayConfig config;
    config.to_server.delay_ns = 300'000'000;
    config.to_server.rate_bits_per_second = 10'000'000;   // 0.96 ms per 1200 bytes
    config.to_client.delay_ns = 300'000'000;
    auto relay = start_relay(config, server);
    const auto start = Clock::now();
    for (std::uint64_t i = 0; i < 20; ++i) client.send(relay->listen_address(), numbered(i, 1200));
    client.send(server.address(), numbered(1000, 1200));   // straight to the server: it overtakes them all
    std::vector<std::uint64_t> arrivals;
    std::vector<std::uint8_t> bytes;
    PeerAddress from;
    auto progress = Clock::now();
    while (arrivals.size() < 21) {
        if (server.receive(bytes, &from, 5)) {
            arrivals.push_back(sequence_of(bytes));
            std::printf("[delay] datagram %llu after %.1f ms\n", static_cast<unsigned long long>(arrivals.back()),
                        std::chrono::duration<double, std::milli>(Clock::now() - start).count());
            progress = Clock::now();
        }
        REQUIRE(Clock::now() - progress < kStall);
    }
    std::vector<std::uint64_t> expected{1000};
    for (std::uint64_t i = 0; i < 20; ++i) expected.push_back(i);
    CHECK(arrivals == expected);
    // The way back: the server's answer is delayed too, so the client's direct copy arrives first.
    server.send(from, numbered(7, 100));
    server.send(client.address(), numbered(8, 100));
    std::vector<std::uint64_t> back;
    progress = Clock::now();
    while (back.size() < 2) {
        if (client.receive(bytes, nullptr, 5)) back.push_back(sequence_of(bytes));
        REQUIRE(Clock::now() - progress < kStall);
    }
    CHECK(back == std::vector<std::uint64_t>{8, 7});
    REQUIRE(relay->stop() == 0);
    const LossyRelayStats stats = relay->stats();
    print_stats("delay", stats);
    CHECK(stats.to_server.forwarded == 20);
    CHECK(stats.to_server.max_queue_bytes <= 20 * 1200);
    CHECK(stats.to_server.max_queue_bytes >= 1200);
    CHECK(stats.to_client.forwarded == 1);
    CHECK(stats.to_client.max_queue_bytes == 0);   // no rate: no queue
}

TEST_CASE("lossy relay: full slots, oversized datagrams and foreign senders are dropped and counted") {
    Socket client, stranger, server;
    LossyRelayConfig config;
    config.slots = 4;
    config.max_datagram_bytes = 100;
    config.to_server.delay_ns = 200'000'000;   // keeps the slots taken while the rest arrives
    std::unique_ptr<LossyRelay> relay;
    {
        config.listen = address_of("127.0.0.1:0");
        config.server = server.address();
        REQUIRE(LossyRelay::create(config, relay) == 0);
    }
    // The server speaks first: nobody to send it to yet.
    server.send(relay->server_side_address(), numbered(1, 10));
    REQUIRE(relay->start() == 0);
    auto progress = Clock::now();
    while (relay->stats().foreign != 1) {
        REQUIRE(Clock::now() - progress < kStall);
        std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    std::vector<std::vector<std::uint8_t>> burst;
    burst.push_back(numbered(0, 101));   // one byte too many
    for (std::uint64_t i = 1; i <= 10; ++i) burst.push_back(numbered(i, 100));
    client.send_burst(relay->listen_address(), burst);
    stranger.send(relay->listen_address(), numbered(99, 10));
    std::vector<std::uint64_t> arrivals;
    std::vector<std::uint8_t> bytes;
    progress = Clock::now();
    for (;;) {
        if (server.receive(bytes, nullptr, 5)) arrivals.push_back(sequence_of(bytes));
        const LossyRelayStats stats = relay->stats();
        if (stats.to_server.received == 11 && stats.foreign == 2 && stats.to_server.pending == 0 &&
            arrivals.size() == stats.to_server.forwarded) {
            break;
        }
        if (Clock::now() - progress >= kStall) print_stats("limits stalled", stats);
        REQUIRE(Clock::now() - progress < kStall);
    }
    REQUIRE(relay->stop() == 0);
    const LossyRelayStats stats = relay->stats();
    print_stats("limits", stats);
    check_conservation(stats.to_server);
    CHECK(stats.to_server.dropped_oversized == 1);
    CHECK(stats.to_server.dropped_no_slot == 6);
    CHECK(stats.to_server.forwarded == 4);
    CHECK(arrivals == std::vector<std::uint64_t>{1, 2, 3, 4});
    CHECK(stats.foreign == 2);
    CHECK(stats.to_client.received == 0);
}

TEST_CASE("lossy relay: an IPv6 listener in front of an IPv4 server") {
    Socket client4, server;
    const int fd = ::socket(AF_INET6, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        MESSAGE("no IPv6 here");
        return;
    }
    LossyRelayConfig config;
    config.listen = address_of("[::1]:0");
    config.server = server.address();
    std::unique_ptr<LossyRelay> relay;
    if (LossyRelay::create(config, relay) != 0) {   // a kernel or container without ::1
        MESSAGE("cannot bind [::1]: ", cf::platform::last_error_message());
        ::close(fd);
        return;
    }
    REQUIRE(relay->start() == 0);
    const std::vector<std::uint8_t> hello = numbered(42, 300);
    REQUIRE(::sendto(fd, hello.data(), hello.size(), 0, &relay->listen_address().addr.any,
                     relay->listen_address().length) == static_cast<ssize_t>(hello.size()));
    std::vector<std::uint8_t> bytes;
    PeerAddress from;
    auto progress = Clock::now();
    while (!server.receive(bytes, &from, 5)) REQUIRE(Clock::now() - progress < kStall);
    CHECK(bytes == hello);
    server.send(from, numbered(43, 20));
    pollfd wait{fd, POLLIN, 0};
    REQUIRE(::poll(&wait, 1, 10'000) == 1);
    std::vector<std::uint8_t> back(100);
    CHECK(::recv(fd, back.data(), back.size(), 0) == 20);
    back.resize(20);
    CHECK(back == numbered(43, 20));
    ::close(fd);
}

TEST_CASE("lossy relay: the command line") {
    const auto parse = [](std::vector<const char*> args, LossyRelayOptions& out) {
        args.insert(args.begin(), "cf-lossy-relay");
        return cf::quic::testing::parse_lossy_relay_options(static_cast<int>(args.size()), args.data(), out);
    };
    const auto refused = [&](std::vector<const char*> args, const char* reason) {
        LossyRelayOptions out;
        INFO((args.empty() ? "" : args.back()));
        CHECK(parse(args, out) == -EINVAL);
        const std::string message = cf::platform::last_error_message();
        INFO(message);
        CHECK(message.find(reason) != std::string::npos);
    };
    LossyRelayOptions options;
    REQUIRE(parse({"--listen", "127.0.0.1:0", "--server", "[::1]:4433", "--loss", "2.5", "--loss-to-client", "0",
                   "--duplicate-to-server", "1", "--reorder", "3", "--reorder-gap", "5", "--reorder-hold", "7.5",
                   "--delay", "10", "--rate-to-server", "100", "--queue", "65536", "--loss-burst", "2",
                   "--seed", "77", "--duration", "1.5", "--slots", "100", "--max-datagram", "1500"},
                  options) == 0);
    const auto& c = options.config;
    CHECK(c.listen.port() == 0);
    CHECK(c.server.port() == 4433);
    CHECK(c.to_server.loss_percent == 2.5);
    CHECK(c.to_client.loss_percent == 0);
    CHECK(c.to_server.duplicate_percent == 1);
    CHECK(c.to_client.duplicate_percent == 0);
    CHECK(c.to_client.reorder_percent == 3);
    CHECK(c.to_client.reorder_gap == 5);
    CHECK(c.to_client.reorder_hold_ns == 7'500'000);
    CHECK(c.to_server.delay_ns == 10'000'000);
    CHECK(c.to_server.rate_bits_per_second == 100'000'000);
    CHECK(c.to_client.rate_bits_per_second == 0);
    CHECK(c.to_client.queue_bytes == 65536);
    CHECK(c.to_server.loss_burst == 2);
    CHECK(c.seed == 77);
    CHECK(options.duration_s == 1.5);
    CHECK(c.slots == 100);
    CHECK(c.max_datagram_bytes == 1500);
    CHECK_FALSE(options.help);

    LossyRelayOptions help;
    CHECK(parse({"--help"}, help) == 0);
    CHECK(help.help);

    const std::vector<const char*> base{"--listen", "127.0.0.1:0", "--server", "127.0.0.1:4433"};
    const auto with = [&](std::vector<const char*> extra) {
        std::vector<const char*> args = base;
        args.insert(args.end(), extra.begin(), extra.end());
        return args;
    };
    refused(with({"--loss", "100.5"}), "--loss: '100.5' is not a percentage in 0..100");
    refused(with({"--duplicate-to-client", "-1"}), "not a percentage");
    refused(with({"--reorder", "nan"}), "not a percentage");
    refused(with({"--loss", "5x"}), "not a percentage");
    refused(with({"--loss", ""}), "not a percentage");
    refused(with({"--loss-to-nowhere", "5"}), "unknown option");
    refused(with({"--frobnicate", "5"}), "unknown option");
    refused(with({"--delay"}), "needs a value");
    refused(with({"--delay", "-3"}), "not milliseconds");
    refused(with({"--reorder-hold", "0"}), "not milliseconds");
    refused(with({"--rate", "0.0000001"}), "not Mbit/s");
    refused(with({"--queue", "-5"}), "not a byte count");
    refused(with({"--slots", "0"}), "--slots");
    refused(with({"--max-datagram", "65536"}), "--max-datagram");
    refused(with({"--seed", "18446744073709551616"}), "--seed");
    refused(with({"--duration", "0"}), "--duration");
    refused(with({"--loss", "60", "--loss-burst", "1"}), "cannot reach 60%");
    refused(with({"--loss-burst", "0.5"}), "mean run length");
    refused({"--listen", "127.0.0.1", "--server", "127.0.0.1:4433"}, "--listen: peer address");
    refused({"--listen", "127.0.0.1:0", "--server", "localhost:4433"}, "--server: peer address");
    refused({"--listen", "127.0.0.1:0", "--server", "::1:4433"}, "brackets");
    refused({"--listen", "127.0.0.1:0", "--server", "127.0.0.1:0"}, "port cannot be 0");
    refused({"--server", "127.0.0.1:4433"}, "--listen is required");
    refused({"--listen", "127.0.0.1:0"}, "--server is required");
}

TEST_CASE("lossy relay: create refuses what it cannot run") {
    Socket server;
    LossyRelayConfig config;
    config.listen = address_of("127.0.0.1:0");
    config.server = server.address();
    std::unique_ptr<LossyRelay> relay;
    LossyRelayConfig bad = config;
    bad.to_client.loss_percent = 101;
    CHECK(LossyRelay::create(bad, relay) == -EINVAL);
    CHECK(std::string(cf::platform::last_error_message()).find("to-client") != std::string::npos);
    bad = config;
    bad.slots = 0;
    CHECK(LossyRelay::create(bad, relay) == -EINVAL);
    bad = config;
    bad.listen = PeerAddress{};
    CHECK(LossyRelay::create(bad, relay) == -EINVAL);
    bad = config;
    bad.listen = server.address();   // taken
    CHECK(LossyRelay::create(bad, relay) == -EADDRINUSE);
    CHECK(relay == nullptr);
    // Stop without start, and twice.
    REQUIRE(LossyRelay::create(config, relay) == 0);
    CHECK(relay->stop() == 0);
    CHECK(relay->stop() == 0);
    // A bounded run on the calling thread returns by itself.
    REQUIRE(LossyRelay::create(config, relay) == 0);
    CHECK(relay->run(20'000'000) == 0);
}
