// The io_uring UDP driver over loopback: random bursts (0..1472 bytes) arrive exactly once with their bytes and
// sender; zero-copy sends give their buffers back exactly once, after the notification; the multishot receive
// survives running out of buffers and resumes; one io_uring_enter per send burst; truncation; GSO; GRO (GSO bursts
// from both drivers arrive exactly whether or not the kernel coalesces them, the layout with and without GRO,
// receives too long for a buffer, forwarding a coalesced receive); refused datagrams; a full submission queue;
// mixed with the socket driver; the factory; bad configurations; destruction with work in flight. Every test case
// first asks uring_available() and, where io_uring cannot run (qemu-user, a kernel or container that forbids it),
// says why and returns.
// Receives are bounded loops (each rx_burst waits at most rx_wait_us), never timed.
#include <doctest/doctest.h>

#include <netinet/in.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstring>
#include <memory>
#include <random>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "drivers/datagram_driver.hpp"
#include "tests/drivers/datagram_test_support.hpp"
#include "drivers/socket/udp_socket.hpp"
#include "drivers/uring/udp_uring.hpp"
#include "engine/time/counter_clock.hpp"
#include "platform/os/last_error.hpp"

using cf::drivers::DatagramDriver;
using cf::drivers::DriverKind;
using cf::drivers::PacketBuffer;
using cf::drivers::PeerAddress;
using cf::drivers::UdpConfig;
using namespace cf::drivers::testing;

namespace {

// What the driver puts in front of each received payload: io_uring_recvmsg_out (16) + a 48-byte address area.
constexpr std::uint32_t kRecvHeaderBytes = 64;

// Returns from the test case, saying why, when io_uring cannot be used here.
#define RETURN_WITHOUT_URING()                                                                 \
    do {                                                                                       \
        char why_[256];                                                                        \
        if (cf::drivers::uring_available(why_, sizeof why_) != 0) {                            \
            MESSAGE("io_uring unavailable, test skipped: ", std::string(why_));                \
            return;                                                                            \
        }                                                                                      \
    } while (0)

UdpConfig loopback_config(const char* bind = "127.0.0.1:0") {
    UdpConfig config;
    REQUIRE(PeerAddress::parse(bind, config.bind) == 0);
    config.pool.count = 512;
    config.pool.buffer_bytes = 2048;
    config.pool.prefer_hugepages = false;
    config.rx_posted = 128;
    config.socket_buffer_bytes = 1 << 20;
    config.zerocopy_min_bytes = 0;
    config.busy_poll = false;   // wait for a datagram in flight instead of spinning the shared machine
    config.rx_wait_us = 20000;
    return config;
}

std::unique_ptr<DatagramDriver> open_uring(const UdpConfig& config) {
    std::unique_ptr<DatagramDriver> driver;
    const int status = cf::drivers::open_udp_uring(config, driver);
    INFO("open_udp_uring: ", std::string(cf::platform::last_error_message()));
    REQUIRE(status == 0);
    REQUIRE(driver != nullptr);
    REQUIRE(driver->kind() == DriverKind::uring);
    return driver;
}

// A received buffer's payload lies inside its own buffer, `capacity` bytes writable from `data`.
void check_layout(DatagramDriver& driver, const PacketBuffer& buffer) {
    const std::uint32_t size = driver.pool().buffer_bytes();
    const std::byte* start = driver.pool().base() + std::size_t{buffer.index} * size;
    CHECK(driver.pool().owns(&buffer));
    CHECK(buffer.data == start + kRecvHeaderBytes);
    CHECK(buffer.capacity == size - kRecvHeaderBytes);
    CHECK(buffer.length <= buffer.capacity);
    CHECK(buffer.segment_size == 0);
}

// Receives until `into` holds `expected` datagrams or the calls run out, releasing each buffer (or keeping it in
// `held` when given). With the driver's clock given, one burst carries one rx_time, read during the call.
void receive(DatagramDriver& driver, std::size_t expected, std::vector<Datagram>& into,
             std::vector<PacketBuffer*>* held = nullptr, const cf::CounterClock* clock = nullptr) {
    PacketBuffer* burst[64];
    for (int call = 0; call < kReceiveCalls && into.size() < expected; ++call) {
        const cf::Instant before = clock != nullptr ? clock->now() : cf::Instant();
        const int count = driver.rx_burst(burst, 64);
        const cf::Instant after = clock != nullptr ? clock->now() : cf::Instant();
        INFO("rx_burst: ", std::string(cf::platform::last_error_message()));
        REQUIRE(count >= 0);
        REQUIRE(count <= 64);
        for (int i = 0; i < count; ++i) {
            const PacketBuffer& buffer = *burst[i];
            CHECK(buffer.rx_time == burst[0]->rx_time);
            if (clock != nullptr) {
                CHECK(buffer.rx_time >= before);
                CHECK(buffer.rx_time <= after);
            }
            check_layout(driver, buffer);
            into.emplace_back(text_of(buffer.peer), bytes_of(buffer, 0, buffer.length));
            if (held != nullptr) {
                held->push_back(burst[i]);
            } else {
                driver.release(burst[i]);
            }
        }
    }
    CHECK(into.size() == expected);
}

// Polls until `available` buffers are back in the pool (sends and zero-copy notifications done) or the bounded
// number of rounds runs out; the caller checks the count exactly.
void wait_for_pool(DatagramDriver& driver, std::uint32_t available) {
    for (int round = 0; round < 2000 && driver.pool().available() != available; ++round) {
        REQUIRE(driver.poll_completions() == 0);
        const timespec pause{0, 100'000};
        nanosleep(&pause, nullptr);
    }
    CHECK(driver.pool().available() == available);
}

// What a driver's pool holds once nothing is in flight, the caller holds nothing and the receive ring is full.
std::uint32_t idle_available(DatagramDriver& driver, const UdpConfig& config) {
    return driver.pool().count() - config.rx_posted;
}

void exchange_random_bursts(const char* bind, bool sqpoll) {
    UdpConfig config_a = loopback_config(bind);
    UdpConfig config_b = loopback_config(bind);
    config_a.sqpoll = sqpoll;
    config_b.clock = &cf::default_clock();
    auto a = open_uring(config_a);
    auto b = open_uring(config_b);
    CHECK(a->local_address().port() != 0);
    CHECK(a->local_address().addr.any.sa_family == config_a.bind.addr.any.sa_family);
    CHECK_FALSE(a->local_address() == b->local_address());

    std::mt19937_64 random(0xC0FFEE);
    std::vector<Datagram> expected_a, expected_b, got_a, got_b;
    std::uint64_t bytes = 0;
    for (int round = 0; round < 24; ++round) {
        send_all(*a, random_burst(*a, *b, random, round % 2 == 0, round % 3 == 0, expected_a, expected_b, bytes));
        receive(*b, expected_b.size(), got_b, nullptr, &cf::default_clock());
        receive(*a, expected_a.size(), got_a);
    }
    check_drained(*a);
    check_drained(*b);
    check_same_datagrams(got_a, expected_a);
    check_same_datagrams(got_b, expected_b);

    wait_for_pool(*a, idle_available(*a, config_a));
    check_exchange_stats(*a, *b, expected_a.size(), expected_b.size(), bytes);
    CHECK(a->stats().tx_zerocopy == 0);
    CHECK(b->pool().available() == idle_available(*b, config_b));
}

// ---- GRO ----

// With GRO the driver puts a 64-byte control area (for the UDP_GRO cmsg) after the address area.
constexpr std::uint32_t kGroRecvHeaderBytes = 128;
constexpr std::uint32_t kGroBufferBytes = 65536;   // the buffer size the driver asks for with GRO
constexpr std::uint32_t kGroRoom = kGroBufferBytes - kGroRecvHeaderBytes;   // 65408
constexpr std::uint32_t kMaxGsoPayload = 65507;    // IPv4: 65535 - 20 (IP header) - 8 (UDP header)
constexpr std::uint32_t kMaxGsoSegments = 64;      // UDP_MAX_SEGMENTS of older kernels (newer allow more)
constexpr std::uint32_t kGsoRoundBytes = 128 * 1024;   // per round, well inside a default-capped SO_RCVBUF

// Whether this kernel accepts UDP_GRO on a UDP socket (Linux >= 5.0); the driver carries on without it.
bool kernel_has_udp_gro() {
    const int fd = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, IPPROTO_UDP);
    REQUIRE(fd >= 0);
    const int on = 1;
    const bool accepted = ::setsockopt(fd, IPPROTO_UDP, 104 /* UDP_GRO */, &on, sizeof on) == 0;
    ::close(fd);
    return accepted;
}

UdpConfig gro_config(bool gro) {
    UdpConfig config = loopback_config();
    config.gro = gro;
    config.pool.buffer_bytes = kGroBufferBytes;
    config.pool.count = 256;
    config.rx_posted = 128;
    config.socket_buffer_bytes = 4 << 20;
    return config;
}

// The datagrams a buffer carries: segment_size pieces (the last may be shorter) when it is set and smaller than
// the payload, else the whole payload as one. Used for what was sent (GSO) and what arrived (GRO) alike.
void split_datagrams(const std::string& from, const PacketBuffer& buffer, std::vector<Datagram>& into) {
    const std::uint32_t segment =
        buffer.segment_size != 0 && buffer.segment_size < buffer.length ? buffer.segment_size : buffer.length;
    std::uint32_t offset = 0;
    do {
        const std::uint32_t length = std::min(segment, buffer.length - offset);
        into.emplace_back(from, bytes_of(buffer, offset, length));
        offset += length;
    } while (offset < buffer.length);
}

// A GSO buffer of `length` bytes cut into `segment` pieces (0: one datagram), filled with random bytes.
PacketBuffer* make_gso_packet(DatagramDriver& driver, std::uint32_t length, std::uint16_t segment,
                              const PeerAddress& peer, std::mt19937_64& random) {
    PacketBuffer* packet = make_packet(driver, length, peer, random);
    packet->segment_size = segment;
    return packet;
}

struct GroReceived {
    std::vector<Datagram> datagrams;   // every receive split into its datagrams
    int receives = 0;
    int coalesced = 0;                 // receives with segment_size set
};

// Receives until `expected` datagrams arrived or, counting those the driver dropped as truncated, are accounted
// for (or the calls run out). Checks each buffer's layout: payload `header_bytes` into its buffer, 64-byte aligned,
// and a segment_size smaller than the payload when set.
void receive_datagrams(DatagramDriver& driver, std::size_t expected, std::uint32_t header_bytes, GroReceived& got) {
    const std::uint32_t size = driver.pool().buffer_bytes();
    PacketBuffer* burst[64];
    for (int call = 0; call < kReceiveCalls &&
                       got.datagrams.size() + driver.stats().rx_truncated < expected; ++call) {
        const int count = driver.rx_burst(burst, 64);
        INFO("rx_burst: ", std::string(cf::platform::last_error_message()));
        REQUIRE(count >= 0);
        for (int i = 0; i < count; ++i) {
            const PacketBuffer& buffer = *burst[i];
            const std::byte* start = driver.pool().base() + std::size_t{buffer.index} * size;
            CHECK(driver.pool().owns(&buffer));
            CHECK(buffer.data == start + header_bytes);
            CHECK(reinterpret_cast<std::uintptr_t>(buffer.data) % 64 == 0);
            CHECK(buffer.capacity == size - header_bytes);
            CHECK(buffer.length <= buffer.capacity);
            if (buffer.segment_size != 0) {
                ++got.coalesced;
                CHECK(buffer.segment_size < buffer.length);
            }
            ++got.receives;
            split_datagrams(text_of(buffer.peer), buffer, got.datagrams);
            driver.release(burst[i]);
        }
    }
}

// Rounds of GSO buffers (edge cases first, then random) from `sender` to a uring `receiver`: every datagram's bytes
// arrive exactly once, the receiver counts datagrams on the wire, and the sender's pool is back to `sender_idle`
// after each round. Returns false (with a MESSAGE) when the kernel refuses UDP_SEGMENT.
bool check_gso_bursts(DatagramDriver& sender, std::uint32_t sender_idle, DatagramDriver& receiver,
                      const UdpConfig& receiver_config, std::uint32_t header_bytes, std::uint64_t seed,
                      GroReceived& got) {
    std::mt19937_64 random(seed);
    const std::string from = text_of(sender.local_address());
    // {length, segment}: 64 one-byte datagrams; exactly the GRO room in 64 segments; a last segment of one byte;
    // equal segments; one segment long (sent as one datagram); shorter than its segment; empty; plain.
    std::vector<std::pair<std::uint32_t, std::uint16_t>> shapes = {
        {64, 1},     {kGroRoom, 1022}, {44 * 1472, 1472}, {3001, 300}, {3000, 300},
        {300, 300},  {100, 300},       {0, 0},            {kMaxPayload, 0}, {1, 0},
    };
    for (int i = 0; i < 60; ++i) {
        if (random() % 4 == 0) {
            shapes.emplace_back(static_cast<std::uint32_t>(random() % (kMaxPayload + 1)), std::uint16_t{0});
            continue;
        }
        const auto segment = static_cast<std::uint16_t>(1 + random() % kMaxPayload);
        std::uint32_t segments = 1 + static_cast<std::uint32_t>(random() % kMaxGsoSegments);
        const std::uint32_t limit = std::min(kGroRoom, kMaxGsoPayload);
        while (segments > 1 && segments * std::uint32_t{segment} > limit) --segments;
        const std::uint32_t last = 1 + static_cast<std::uint32_t>(random() % segment);
        shapes.emplace_back((segments - 1) * std::uint32_t{segment} + last, segment);
    }

    std::vector<Datagram> expected;
    std::uint64_t bytes = 0;
    std::size_t next = 0;
    while (next < shapes.size()) {
        std::vector<PacketBuffer*> packets;
        std::uint32_t round_bytes = 0;
        while (next < shapes.size() && packets.size() < 32 &&
               (packets.empty() || round_bytes + shapes[next].first <= kGsoRoundBytes)) {
            const auto [length, segment] = shapes[next++];
            PacketBuffer* packet = make_gso_packet(sender, length, segment, receiver.local_address(), random);
            split_datagrams(from, *packet, expected);
            round_bytes += length;
            bytes += length;
            packets.push_back(packet);
        }
        send_all(sender, packets);
        if (sender.stats().tx_errors != 0) {
            MESSAGE("the kernel refused UDP_SEGMENT: skipped");
            return false;
        }
        receive_datagrams(receiver, expected.size(), header_bytes, got);
        wait_for_pool(sender, sender_idle);
    }
    check_drained(receiver);
    check_same_datagrams(got.datagrams, expected);
    CHECK(sender.stats().tx_packets == expected.size());
    CHECK(receiver.stats().rx_packets == expected.size());
    CHECK(receiver.stats().rx_bytes == bytes);
    CHECK(receiver.stats().rx_truncated == 0);
    CHECK(receiver.pool().available() == idle_available(receiver, receiver_config));
    CHECK(receiver.pool().misuse_count() == 0);
    return true;
}

}  // namespace

TEST_CASE("udp uring over 127.0.0.1: random bursts to another driver and to itself arrive exactly once") {
    RETURN_WITHOUT_URING();
    exchange_random_bursts("127.0.0.1:0", false);
}

TEST_CASE("udp uring over ::1: random bursts arrive exactly once") {
    RETURN_WITHOUT_URING();
    UdpConfig config = loopback_config("[::1]:0");
    std::unique_ptr<DatagramDriver> probe;
    const int status = cf::drivers::open_udp_uring(config, probe);
    if (status == -EADDRNOTAVAIL || status == -EAFNOSUPPORT) {
        MESSAGE("no IPv6 loopback on this host (", std::string(cf::platform::last_error_message()), "): skipped");
        return;
    }
    REQUIRE(status == 0);
    probe.reset();
    exchange_random_bursts("[::1]:0", false);
}

TEST_CASE("udp uring with SQPOLL: random bursts arrive exactly once") {
    RETURN_WITHOUT_URING();
    UdpConfig config = loopback_config();
    config.sqpoll = true;
    std::unique_ptr<DatagramDriver> probe;
    const int status = cf::drivers::open_udp_uring(config, probe);
    if (status == -EPERM) {
        MESSAGE("SQPOLL refused here (", std::string(cf::platform::last_error_message()), "): skipped");
        return;
    }
    REQUIRE(status == 0);
    probe.reset();
    exchange_random_bursts("127.0.0.1:0", true);
}

TEST_CASE("udp uring: zero-copy sends return their buffers once, after the kernel's notification") {
    RETURN_WITHOUT_URING();
    UdpConfig sender_config = loopback_config();
    sender_config.pool.buffer_bytes = 8192;
    sender_config.pool.count = 256;
    sender_config.rx_posted = 16;
    sender_config.zerocopy_min_bytes = 1024;
    UdpConfig receiver_config = sender_config;
    receiver_config.rx_posted = 128;
    auto sender = open_uring(sender_config);
    auto receiver = open_uring(receiver_config);
    const std::uint32_t initial = sender->pool().available();
    CHECK(initial == idle_available(*sender, sender_config));

    std::mt19937_64 random(77);
    std::vector<Datagram> expected, got;
    std::uint64_t zerocopy = 0, bytes = 0;
    const std::string from = text_of(sender->local_address());
    for (int round = 0; round < 8; ++round) {
        std::vector<PacketBuffer*> packets;
        for (int i = 0; i < 12; ++i) {
            // Mostly 4000 bytes (zero-copy), some just at and below the threshold.
            std::uint32_t length = 4000;
            if (i % 4 == 1) length = 1024;
            if (i % 4 == 2) length = 1023;
            if (i % 4 == 3) length = static_cast<std::uint32_t>(random() % 1024);
            if (length >= 1024) ++zerocopy;
            bytes += length;
            PacketBuffer* packet = make_packet(*sender, length, receiver->local_address(), random);
            expected.emplace_back(from, bytes_of(*packet, 0, length));
            packets.push_back(packet);
        }
        send_all(*sender, packets);
        receive(*receiver, expected.size(), got);
    }
    check_drained(*receiver);
    check_same_datagrams(got, expected);
    CHECK(sender->stats().tx_zerocopy == zerocopy);
    // Released on the send's result and again on the notification would show up as misuse or a wrong count.
    wait_for_pool(*sender, initial);
    CHECK(sender->pool().misuse_count() == 0);
    CHECK(sender->stats().tx_packets == expected.size());
    CHECK(sender->stats().tx_bytes == bytes);
    CHECK(sender->stats().tx_errors == 0);
    CHECK(receiver->stats().rx_bytes == bytes);

    // zerocopy_min_bytes 0: never zero-copy.
    UdpConfig plain_config = sender_config;
    plain_config.zerocopy_min_bytes = 0;
    auto plain = open_uring(plain_config);
    send_all(*plain, {make_packet(*plain, 4000, receiver->local_address(), random)});
    std::vector<Datagram> one;
    receive(*receiver, 1, one);
    CHECK(plain->stats().tx_zerocopy == 0);
    wait_for_pool(*plain, idle_available(*plain, plain_config));
}

TEST_CASE("udp uring: the multishot receive survives running out of buffers and resumes after release") {
    RETURN_WITHOUT_URING();
    UdpConfig receiver_config = loopback_config();
    receiver_config.pool.count = 32;   // the caller can hold every buffer
    receiver_config.rx_posted = 16;
    auto receiver = open_uring(receiver_config);
    auto sender = open_uring(loopback_config());

    std::mt19937_64 random(1234);
    const std::string from = text_of(sender->local_address());
    std::vector<Datagram> sent;
    auto send_some = [&](int count) {
        std::vector<PacketBuffer*> packets;
        for (int i = 0; i < count; ++i) {
            const auto length = static_cast<std::uint32_t>(random() % 600);
            PacketBuffer* packet = make_packet(*sender, length, receiver->local_address(), random);
            sent.emplace_back(from, bytes_of(*packet, 0, length));
            packets.push_back(packet);
        }
        send_all(*sender, packets);
    };

    // 48 datagrams for 32 buffers, none released: the receiver ends up holding the whole pool.
    send_some(48);
    std::vector<Datagram> got;
    std::vector<PacketBuffer*> held;
    receive(*receiver, 32, got, &held);
    REQUIRE(held.size() == 32);
    CHECK(receiver->pool().available() == 0);
    // With nothing posted, the receive ends (-ENOBUFS) or waits; either way nothing more is handed out.
    PacketBuffer* burst[64];
    for (int call = 0; call < 3; ++call) CHECK(receiver->rx_burst(burst, 64) == 0);
    const std::uint64_t no_buffer = receiver->stats().rx_no_buffer;
    MESSAGE("receives that found no buffer: ", no_buffer);

    for (PacketBuffer* buffer : held) receiver->release(buffer);
    held.clear();
    // The rest of the first 48 (unless the kernel dropped them for lack of room), then 40 more: reception has
    // resumed.
    receive(*receiver, 48, got);
    const std::size_t first_wave = got.size();
    CHECK((no_buffer > 0 || first_wave == 48));
    CHECK(first_wave > 32);
    send_some(40);
    receive(*receiver, first_wave + 40, got);
    check_drained(*receiver);

    // Whatever was delivered is intact and unique, and is among what was sent.
    std::vector<Datagram> sorted_got = got, sorted_sent = sent;
    std::sort(sorted_got.begin(), sorted_got.end());
    std::sort(sorted_sent.begin(), sorted_sent.end());
    CHECK(std::adjacent_find(sorted_got.begin(), sorted_got.end()) == sorted_got.end());
    CHECK(std::includes(sorted_sent.begin(), sorted_sent.end(), sorted_got.begin(), sorted_got.end()));
    CHECK(receiver->stats().rx_packets == got.size());
    CHECK(receiver->pool().available() == idle_available(*receiver, receiver_config));
    CHECK(receiver->pool().misuse_count() == 0);
}

TEST_CASE("udp uring: one io_uring_enter per send burst, counted exactly") {
    RETURN_WITHOUT_URING();
    UdpConfig config = loopback_config();
    config.busy_poll = true;
    config.rx_poll_flag = false;   // every empty poll enters: the count below is exact
    auto a = open_uring(config);
    auto b = open_uring(loopback_config());
    CHECK(a->stats().syscalls == 0);   // open's own calls are not counted

    // Empty bursts cost nothing.
    PacketBuffer* burst[64];
    CHECK(a->tx_burst(nullptr, 0) == 0);
    CHECK(a->rx_burst(burst, 0) == 0);
    CHECK(a->stats().syscalls == 0);

    // The first poll also enables the ring (one more call); an empty busy poll enters at most once after that.
    CHECK(a->rx_burst(burst, 64) == 0);
    const std::uint64_t after_first = a->stats().syscalls;
    CHECK(after_first >= 1);
    CHECK(after_first <= 2);
    CHECK(a->rx_burst(burst, 64) == 0);
    CHECK(a->stats().syscalls - after_first <= 1);

    std::mt19937_64 random(5);
    std::vector<Datagram> got;
    for (int burst_number = 0; burst_number < 3; ++burst_number) {
        std::vector<PacketBuffer*> packets;
        for (int i = 0; i < 32; ++i) packets.push_back(make_packet(*a, 100 + i, b->local_address(), random));
        const std::uint64_t before = a->stats().syscalls;
        CHECK(a->tx_burst(packets.data(), 32) == 32);
        CHECK(a->stats().syscalls - before == 1);
    }
    receive(*b, 96, got);
    wait_for_pool(*a, idle_available(*a, config));
    CHECK(a->stats().tx_packets == 96);

    // Waiting allowed and nothing there: exactly one io_uring_enter (submit + wait with a timeout) per call.
    UdpConfig waiting_config = loopback_config();
    waiting_config.rx_wait_us = 1000;
    auto waiting = open_uring(waiting_config);
    CHECK(waiting->rx_burst(burst, 64) == 0);   // enables the ring, then waits
    const std::uint64_t before_wait = waiting->stats().syscalls;
    CHECK(waiting->rx_burst(burst, 64) == 0);
    CHECK(waiting->stats().syscalls - before_wait == 1);
}

TEST_CASE("udp uring with rx_poll_flag: empty polls stay in user space, receiving enters once per burst") {
    RETURN_WITHOUT_URING();
    UdpConfig config = loopback_config();
    config.busy_poll = true;
    config.rx_poll_flag = true;
    auto a = open_uring(config);
    auto b = open_uring(config);
    PacketBuffer* burst[64];
    CHECK(b->rx_burst(burst, 64) == 0);   // enables the ring (and arms the receive)
    const std::uint64_t armed = b->stats().syscalls;
    for (int i = 0; i < 1000; ++i) CHECK(b->rx_burst(burst, 64) == 0);
    CHECK(b->stats().syscalls == armed);   // the kernel flagged no pending work: no enter at all

    std::mt19937_64 random(6);
    std::vector<PacketBuffer*> packets;
    for (int i = 0; i < 32; ++i) packets.push_back(make_packet(*a, 64 + i, b->local_address(), random));
    CHECK(a->tx_burst(packets.data(), 32) == 32);
    std::vector<Datagram> got;
    receive(*b, 32, got);
    CHECK(got.size() == 32);
    // However many polls it took, only those that found work pending entered the kernel: at most one per
    // datagram, and in practice a few for the whole burst.
    CHECK(b->stats().syscalls - armed <= 32);
    MESSAGE("rx_poll_flag: " << b->stats().syscalls - armed << " system calls to receive 32 datagrams");
}

TEST_CASE("udp uring: a burst larger than the submission queue is accepted in part, the rest later") {
    RETURN_WITHOUT_URING();
    UdpConfig config = loopback_config();
    config.pool.count = 1024;
    auto a = open_uring(config);
    auto b = open_uring(loopback_config());
    std::mt19937_64 random(8);
    std::vector<Datagram> expected, got;
    std::vector<PacketBuffer*> packets;
    for (int i = 0; i < 600; ++i) {
        PacketBuffer* packet = make_packet(*a, 20, b->local_address(), random);
        expected.emplace_back(text_of(a->local_address()), bytes_of(*packet, 0, 20));
        packets.push_back(packet);
    }
    const int accepted = a->tx_burst(packets.data(), 600);
    CHECK(accepted > 0);
    CHECK(accepted < 600);   // the submission queue is smaller than 600
    // The rest in smaller bursts, received as we go so the socket buffers never fill.
    std::size_t sent = static_cast<std::size_t>(accepted);
    receive(*b, sent, got);
    while (sent < packets.size()) {
        const std::size_t chunk = std::min<std::size_t>(100, packets.size() - sent);
        send_all(*a, std::vector<PacketBuffer*>(packets.begin() + static_cast<long>(sent),
                                                packets.begin() + static_cast<long>(sent + chunk)));
        sent += chunk;
        receive(*b, sent, got);
    }
    check_same_datagrams(got, expected);
    wait_for_pool(*a, idle_available(*a, config));
}

TEST_CASE("udp uring: a datagram longer than a buffer's payload room is counted as truncated and dropped") {
    RETURN_WITHOUT_URING();
    UdpConfig receiver_config = loopback_config();
    receiver_config.pool.buffer_bytes = 2048;
    auto receiver = open_uring(receiver_config);
    UdpConfig sender_config = loopback_config();
    sender_config.pool.buffer_bytes = 4096;
    auto sender = open_uring(sender_config);
    const std::uint32_t room = 2048 - kRecvHeaderBytes;

    std::mt19937_64 random(3);
    std::vector<Datagram> expected;
    std::vector<PacketBuffer*> packets;
    std::uint64_t good_bytes = 0;
    for (const std::uint32_t length : {room, room + 1, 0u, 3000u, room - 1, kMaxPayload, 4096u, 1u}) {
        PacketBuffer* packet = make_packet(*sender, length, receiver->local_address(), random);
        if (length <= room) {
            expected.emplace_back(text_of(sender->local_address()), bytes_of(*packet, 0, length));
            good_bytes += length;
        }
        packets.push_back(packet);
    }
    send_all(*sender, packets);
    std::vector<Datagram> got;
    receive(*receiver, expected.size(), got);
    check_drained(*receiver);
    check_same_datagrams(got, expected);
    CHECK(receiver->stats().rx_truncated == 3);
    CHECK(receiver->stats().rx_packets == expected.size());
    CHECK(receiver->stats().rx_bytes == good_bytes);
    CHECK(receiver->pool().available() == idle_available(*receiver, receiver_config));
    CHECK(receiver->pool().misuse_count() == 0);
}

TEST_CASE("udp uring: a received buffer can be sent on from where its payload starts") {
    RETURN_WITHOUT_URING();
    UdpConfig config = loopback_config();
    auto a = open_uring(config);
    auto b = open_uring(config);
    std::mt19937_64 random(11);
    PacketBuffer* packet = make_packet(*a, 300, b->local_address(), random);
    const std::vector<std::uint8_t> sent = bytes_of(*packet, 0, 300);
    send_all(*a, {packet});

    std::vector<Datagram> got;
    std::vector<PacketBuffer*> held;
    receive(*b, 1, got, &held);
    REQUIRE(held.size() == 1);
    CHECK(held[0]->peer == a->local_address());
    held[0]->peer = a->local_address();
    send_all(*b, {held[0]});
    wait_for_pool(*b, idle_available(*b, config));

    std::vector<Datagram> echoed;
    receive(*a, 1, echoed);
    REQUIRE(echoed.size() == 1);
    CHECK(echoed[0].first == text_of(b->local_address()));
    CHECK(echoed[0].second == sent);
}

TEST_CASE("udp uring: bad buffers are refused, datagrams the kernel refuses are counted and their buffers freed") {
    RETURN_WITHOUT_URING();
    UdpConfig config = loopback_config();
    auto a = open_uring(config);
    auto b = open_uring(config);
    std::mt19937_64 random(21);

    // A buffer of another pool, one already released, one whose payload runs past its buffer.
    PacketBuffer* foreign = b->allocate();
    REQUIRE(foreign != nullptr);
    foreign->peer = b->local_address();
    CHECK(a->tx_burst(&foreign, 1) == -EINVAL);
    CHECK(std::strlen(cf::platform::last_error_message()) > 0);
    b->release(foreign);
    PacketBuffer* released = make_packet(*a, 10, b->local_address(), random);
    a->release(released);
    CHECK(a->tx_burst(&released, 1) == -EINVAL);
    PacketBuffer* too_long = make_packet(*a, 10, b->local_address(), random);
    const std::uint32_t size = a->pool().buffer_bytes();
    too_long->length = size + 1;
    CHECK(a->tx_burst(&too_long, 1) == -EINVAL);
    too_long->data += 100;
    too_long->length = size - 99;
    CHECK(a->tx_burst(&too_long, 1) == -EINVAL);

    // A valid prefix is sent, the bad packet after it stays the caller's.
    PacketBuffer* good = make_packet(*a, 10, b->local_address(), random);
    PacketBuffer* mixed[2] = {good, too_long};
    CHECK(a->tx_burst(mixed, 2) == 1);
    a->release(too_long);

    // No destination, and an IPv6 destination from an IPv4 socket: the kernel refuses both.
    PacketBuffer* nowhere = make_packet(*a, 10, PeerAddress{}, random);
    PeerAddress v6;
    REQUIRE(PeerAddress::parse("[::1]:9", v6) == 0);
    PacketBuffer* wrong_family = make_packet(*a, 10, v6, random);
    PacketBuffer* refused[2] = {nowhere, wrong_family};
    CHECK(a->tx_burst(refused, 2) == 2);
    wait_for_pool(*a, idle_available(*a, config));
    CHECK(a->stats().tx_errors == 2);
    CHECK(a->stats().tx_packets == 1);
    CHECK(a->pool().misuse_count() == 0);
    std::vector<Datagram> got;
    receive(*b, 1, got);
}

TEST_CASE("udp uring: GSO sends one buffer as equal datagrams") {
    RETURN_WITHOUT_URING();
    UdpConfig config = loopback_config();
    std::mt19937_64 random(31);
    {   // without gso a segmented buffer is refused, as by the socket driver
        auto a = open_uring(config);
        auto b = open_uring(config);
        PacketBuffer* packet = make_packet(*a, 350, b->local_address(), random);
        packet->segment_size = 100;
        const std::uint32_t available = a->pool().available();
        REQUIRE(a->tx_burst(&packet, 1) == 1);
        CHECK(a->stats().tx_errors == 1);
        CHECK(a->stats().tx_packets == 0);
        CHECK(a->pool().available() == available + 1);
    }
    config.gso = true;
    auto a = open_uring(config);
    auto b = open_uring(config);
    PacketBuffer* packet = make_packet(*a, 350, b->local_address(), random);
    packet->segment_size = 100;
    const std::vector<std::uint8_t> bytes = bytes_of(*packet, 0, 350);
    send_all(*a, {packet});
    wait_for_pool(*a, idle_available(*a, config));
    if (a->stats().tx_errors != 0) {
        MESSAGE("the kernel refused UDP_SEGMENT: skipped");
        return;
    }
    CHECK(a->stats().tx_packets == 4);
    CHECK(a->stats().tx_bytes == 350);
    std::vector<Datagram> got;
    receive(*b, 4, got);
    check_drained(*b);
    std::vector<Datagram> expected;
    for (std::uint32_t offset = 0; offset < 350; offset += 100) {
        const std::uint32_t length = std::min<std::uint32_t>(100, 350 - offset);
        expected.emplace_back(text_of(a->local_address()),
                              std::vector<std::uint8_t>(bytes.begin() + offset, bytes.begin() + offset + length));
    }
    check_same_datagrams(got, expected);
}

TEST_CASE("udp uring with GRO: GSO bursts from the socket driver arrive exactly, split by segment_size") {
    RETURN_WITHOUT_URING();
    if (!kernel_has_udp_gro()) {
        MESSAGE("the kernel refuses UDP_GRO (Linux < 5.0): skipped");
        return;
    }
    const UdpConfig receiver_config = gro_config(true);
    auto receiver = open_uring(receiver_config);
    UdpConfig sender_config = gro_config(false);
    sender_config.gso = true;
    sender_config.pool.count = 64;
    std::unique_ptr<DatagramDriver> sender;
    REQUIRE(cf::drivers::open_udp(DriverKind::socket, sender_config, sender) == 0);
    GroReceived got;
    if (!check_gso_bursts(*sender, sender_config.pool.count, *receiver, receiver_config, kGroRecvHeaderBytes, 0x6A0,
                          got)) {
        return;
    }
    CHECK(got.receives <= static_cast<int>(got.datagrams.size()));
    MESSAGE("GRO from the socket driver: ", got.coalesced, " of ", got.receives, " receives coalesced, carrying ",
            got.datagrams.size(), " datagrams");
}

TEST_CASE("udp uring with GRO: GSO bursts from another uring driver arrive exactly, split by segment_size") {
    RETURN_WITHOUT_URING();
    if (!kernel_has_udp_gro()) {
        MESSAGE("the kernel refuses UDP_GRO (Linux < 5.0): skipped");
        return;
    }
    const UdpConfig receiver_config = gro_config(true);
    auto receiver = open_uring(receiver_config);
    UdpConfig sender_config = gro_config(false);
    sender_config.gso = true;
    sender_config.pool.count = 128;
    sender_config.rx_posted = 8;
    sender_config.zerocopy_min_bytes = 16384;   // the large GSO buffers go out with SEND_ZC where the kernel has it
    auto sender = open_uring(sender_config);
    GroReceived got;
    if (!check_gso_bursts(*sender, idle_available(*sender, sender_config), *receiver, receiver_config,
                          kGroRecvHeaderBytes, 0x6A1, got)) {
        return;
    }
    CHECK(got.receives <= static_cast<int>(got.datagrams.size()));
    MESSAGE("GRO from the uring driver: ", got.coalesced, " of ", got.receives, " receives coalesced, carrying ",
            got.datagrams.size(), " datagrams (", sender->stats().tx_zerocopy, " sent with SEND_ZC)");
}

TEST_CASE("udp uring without GRO: GSO bursts arrive datagram by datagram, segment_size 0, payload 64 bytes in") {
    RETURN_WITHOUT_URING();
    const UdpConfig receiver_config = gro_config(false);
    auto receiver = open_uring(receiver_config);
    UdpConfig sender_config = gro_config(false);
    sender_config.gso = true;
    sender_config.pool.count = 64;
    std::unique_ptr<DatagramDriver> sender;
    REQUIRE(cf::drivers::open_udp(DriverKind::socket, sender_config, sender) == 0);
    GroReceived got;
    if (!check_gso_bursts(*sender, sender_config.pool.count, *receiver, receiver_config, kRecvHeaderBytes, 0x6A2,
                          got)) {
        return;
    }
    CHECK(got.coalesced == 0);
    CHECK(got.receives == static_cast<int>(got.datagrams.size()));
}

TEST_CASE("udp uring with GRO: a receive longer than its buffer is dropped, each of its datagrams counted") {
    RETURN_WITHOUT_URING();
    if (!kernel_has_udp_gro()) {
        MESSAGE("the kernel refuses UDP_GRO (Linux < 5.0): skipped");
        return;
    }
    UdpConfig receiver_config = gro_config(true);
    std::uint32_t room = 0;
    std::vector<std::pair<std::uint32_t, std::uint16_t>> shapes;   // {length, segment}
    SUBCASE("64 KiB buffers, as the driver asks for with GRO") {
        room = kGroRoom;
        // Exactly the room, one byte more (64 segments), the largest IPv4 GSO send (60 segments), a small one,
        // and plain datagrams of exactly the room and longer than it.
        shapes = {{kGroRoom, 1022}, {kGroRoom + 1, 1023}, {kMaxGsoPayload, 1100},
                  {3000, 300},      {kGroRoom, 0},       {65500, 0}};
    }
    SUBCASE("2 KiB buffers: the count covers what the kernel had, not what fitted") {
        receiver_config.pool.buffer_bytes = 2048;
        room = 2048 - kGroRecvHeaderBytes;   // 1920
        // 1921 bytes are 7 datagrams (6 would fit), 3000 are 10 (7 would be cut into the room).
        shapes = {{room, 320}, {room + 1, 320}, {3000, 300}, {600, 100}, {room, 0}, {room + 1, 0}};
    }
    auto receiver = open_uring(receiver_config);
    UdpConfig sender_config = gro_config(false);
    sender_config.gso = true;
    sender_config.pool.count = 16;
    std::unique_ptr<DatagramDriver> sender;
    REQUIRE(cf::drivers::open_udp(DriverKind::socket, sender_config, sender) == 0);
    const std::string from = text_of(sender->local_address());
    std::mt19937_64 random(0x7C);

    std::vector<Datagram> expected;
    std::size_t accounted = 0;   // datagrams sent so far: each arrives or is counted truncated
    int truncated_sends = 0;
    GroReceived got;
    for (const auto& [length, segment] : shapes) {
        CAPTURE(length);
        CAPTURE(segment);
        PacketBuffer* packet = make_gso_packet(*sender, length, segment, receiver->local_address(), random);
        std::vector<Datagram> datagrams;
        split_datagrams(from, *packet, datagrams);
        send_all(*sender, {packet});
        if (sender->stats().tx_errors != 0) {
            MESSAGE("the kernel refused UDP_SEGMENT: skipped");
            return;
        }
        const std::size_t got_before = got.datagrams.size();
        const std::uint64_t truncated_before = receiver->stats().rx_truncated;
        accounted += datagrams.size();
        receive_datagrams(*receiver, accounted, kGroRecvHeaderBytes, got);
        const std::size_t arrived = got.datagrams.size() - got_before;
        const std::uint64_t truncated = receiver->stats().rx_truncated - truncated_before;
        // Whole or not at all: every datagram arrives (coalesced or not), or the receive did not fit its buffer
        // and every datagram in it is counted.
        if (truncated == 0) {
            CHECK(arrived == datagrams.size());
            expected.insert(expected.end(), datagrams.begin(), datagrams.end());
        } else {
            ++truncated_sends;
            CHECK(length > room);
            CHECK(arrived == 0);
            CHECK(truncated == datagrams.size());
        }
    }
    check_drained(*receiver);
    check_same_datagrams(got.datagrams, expected);
    // A plain datagram longer than the room cannot arrive whole, coalescing or not.
    CHECK(truncated_sends >= 1);
    CHECK(receiver->stats().rx_packets == expected.size());
    CHECK(receiver->stats().rx_packets + receiver->stats().rx_truncated == accounted);
    CHECK(receiver->pool().available() == idle_available(*receiver, receiver_config));
    CHECK(receiver->pool().misuse_count() == 0);
    MESSAGE("GRO truncation, room ", room, ": ", truncated_sends, " of ", shapes.size(), " sends truncated (",
            receiver->stats().rx_truncated, " datagrams), ", got.coalesced, " of ", got.receives,
            " receives coalesced");
}

TEST_CASE("udp uring with GRO: a received buffer goes out again as GSO with its segment_size") {
    RETURN_WITHOUT_URING();
    if (!kernel_has_udp_gro()) {
        MESSAGE("the kernel refuses UDP_GRO (Linux < 5.0): skipped");
        return;
    }
    UdpConfig forwarder_config = gro_config(true);
    forwarder_config.gso = true;   // it sends coalesced buffers on as they are
    auto forwarder = open_uring(forwarder_config);
    UdpConfig peer_config = gro_config(false);
    peer_config.gso = true;
    peer_config.pool.count = 32;
    std::unique_ptr<DatagramDriver> peer;
    REQUIRE(cf::drivers::open_udp(DriverKind::socket, peer_config, peer) == 0);
    std::mt19937_64 random(0x5E);
    PacketBuffer* packet = make_gso_packet(*peer, 5001, 1000, forwarder->local_address(), random);
    std::vector<Datagram> sent;
    split_datagrams(text_of(forwarder->local_address()), *packet, sent);
    send_all(*peer, {packet});
    if (peer->stats().tx_errors != 0) {
        MESSAGE("the kernel refused UDP_SEGMENT: skipped");
        return;
    }

    // Every received buffer (coalesced or not) is sent back as it is, from where its payload starts.
    std::size_t received = 0;
    int coalesced = 0;
    PacketBuffer* burst[64];
    for (int call = 0; call < kReceiveCalls && received < sent.size(); ++call) {
        const int count = forwarder->rx_burst(burst, 64);
        REQUIRE(count >= 0);
        for (int i = 0; i < count; ++i) {
            received += burst[i]->segment_size != 0 ? (burst[i]->length + burst[i]->segment_size - 1) /
                                                          burst[i]->segment_size
                                                    : 1;
            if (burst[i]->segment_size != 0) ++coalesced;
            burst[i]->peer = peer->local_address();
        }
        send_all(*forwarder, std::vector<PacketBuffer*>(burst, burst + count));
    }
    CHECK(received == sent.size());
    wait_for_pool(*forwarder, idle_available(*forwarder, forwarder_config));
    CHECK(forwarder->stats().tx_errors == 0);
    CHECK(forwarder->stats().tx_packets == sent.size());

    std::vector<Datagram> echoed;
    for (int call = 0; call < kReceiveCalls && echoed.size() < sent.size(); ++call) {
        const int count = peer->rx_burst(burst, 64);
        REQUIRE(count >= 0);
        for (int i = 0; i < count; ++i) {
            CHECK(burst[i]->segment_size == 0);   // the peer has no GRO
            echoed.emplace_back(text_of(burst[i]->peer), bytes_of(*burst[i], 0, burst[i]->length));
            peer->release(burst[i]);
        }
    }
    check_same_datagrams(echoed, sent);
    MESSAGE("GRO forward: ", coalesced, " coalesced receive(s) sent on as GSO");
}

TEST_CASE("udp uring and the socket driver talk to each other") {
    RETURN_WITHOUT_URING();
    UdpConfig config = loopback_config();
    auto uring = open_uring(config);
    std::unique_ptr<DatagramDriver> socket;
    REQUIRE(cf::drivers::open_udp(DriverKind::socket, loopback_config(), socket) == 0);
    REQUIRE(socket->kind() == DriverKind::socket);

    std::mt19937_64 random(99);
    std::vector<Datagram> expected_there, got_there, expected_back, got_back;
    for (int round = 0; round < 6; ++round) {
        std::vector<PacketBuffer*> packets;
        const int count = 1 + static_cast<int>(random() % 40);
        for (int i = 0; i < count; ++i) {
            std::uint32_t length = static_cast<std::uint32_t>(random() % (kMaxPayload + 1));
            if (round == 0 && i == 0) length = 0;
            if (round == 0 && i == count - 1) length = kMaxPayload;
            PacketBuffer* packet = make_packet(*uring, length, socket->local_address(), random);
            expected_there.emplace_back(text_of(uring->local_address()), bytes_of(*packet, 0, length));
            expected_back.emplace_back(text_of(socket->local_address()), bytes_of(*packet, 0, length));
            packets.push_back(packet);
        }
        send_all(*uring, packets);
        // The socket driver echoes every datagram back in the buffer it arrived in.
        PacketBuffer* burst[64];
        std::size_t target = expected_there.size();
        for (int call = 0; call < kReceiveCalls && got_there.size() < target; ++call) {
            const int n = socket->rx_burst(burst, 64);
            REQUIRE(n >= 0);
            for (int i = 0; i < n; ++i) {
                got_there.emplace_back(text_of(burst[i]->peer), bytes_of(*burst[i], 0, burst[i]->length));
                burst[i]->peer = uring->local_address();
            }
            send_all(*socket, std::vector<PacketBuffer*>(burst, burst + n));
        }
        receive(*uring, expected_back.size(), got_back);
    }
    check_drained(*uring);
    check_same_datagrams(got_there, expected_there);
    check_same_datagrams(got_back, expected_back);
    wait_for_pool(*uring, idle_available(*uring, config));
}

TEST_CASE("udp uring: opened on one thread, polled on another, destroyed on the first") {
    RETURN_WITHOUT_URING();
    // The ring is enabled by the first poll, so the polling thread becomes its single issuer. Destruction on
    // another thread cannot enter that ring; closing it must still be clean (ASan builds check for leaks).
    UdpConfig config = loopback_config();
    config.zerocopy_min_bytes = 1024;
    auto a = open_uring(config);
    auto b = open_uring(config);
    std::vector<Datagram> expected, got;
    int send_failures = 0, receive_failures = 0;
    std::thread poller([&] {
        std::mt19937_64 random(4242);
        std::vector<PacketBuffer*> packets;
        for (int i = 0; i < 40; ++i) {
            const std::uint32_t length = i % 2 == 0 ? 1200 : static_cast<std::uint32_t>(random() % 500);
            PacketBuffer* packet = a->allocate();
            for (std::uint32_t j = 0; j < length; ++j) packet->data[j] = static_cast<std::byte>(random());
            packet->length = length;
            packet->peer = b->local_address();
            expected.emplace_back(text_of(a->local_address()), bytes_of(*packet, 0, length));
            packets.push_back(packet);
        }
        if (a->tx_burst(packets.data(), 40) != 40) ++send_failures;
        PacketBuffer* burst[64];
        for (int call = 0; call < kReceiveCalls && got.size() < expected.size(); ++call) {
            const int count = b->rx_burst(burst, 64);
            if (count < 0) ++receive_failures;
            for (int i = 0; i < count; ++i) {
                got.emplace_back(text_of(burst[i]->peer), bytes_of(*burst[i], 0, burst[i]->length));
                // Hold a few so destruction finds buffers with the caller.
                if (i % 8 != 0) b->release(burst[i]);
            }
        }
        // More sends, left in flight.
        packets.clear();
        for (int i = 0; i < 16; ++i) {
            PacketBuffer* packet = a->allocate();
            packet->length = 2000;
            packet->peer = b->local_address();
            packets.push_back(packet);
        }
        if (a->tx_burst(packets.data(), 16) != 16) ++send_failures;
    });
    poller.join();
    CHECK(send_failures == 0);
    CHECK(receive_failures == 0);
    check_same_datagrams(got, expected);
    // This thread is not the rings' issuer: polling from here is refused with a message, not undefined.
    PacketBuffer* burst[4];
    CHECK(a->rx_burst(burst, 4) == -EEXIST);
    CHECK(std::strlen(cf::platform::last_error_message()) > 0);
    a.reset();
    b.reset();
}

TEST_CASE("open_udp: uring when asked, and automatic picks uring here") {
    RETURN_WITHOUT_URING();
    char why[256] = "unchanged";
    CHECK(cf::drivers::uring_available(why, sizeof why) == 0);
    CHECK(std::string(why).empty());
    CHECK(cf::drivers::uring_available(nullptr, 0) == 0);

    for (const DriverKind kind : {DriverKind::uring, DriverKind::automatic}) {
        std::unique_ptr<DatagramDriver> driver;
        REQUIRE(cf::drivers::open_udp(kind, loopback_config(), driver) == 0);
        REQUIRE(driver != nullptr);
        CHECK(driver->kind() == DriverKind::uring);
        // It works: a datagram to itself.
        std::mt19937_64 random(1);
        send_all(*driver, {make_packet(*driver, 64, driver->local_address(), random)});
        std::vector<Datagram> got;
        receive(*driver, 1, got);
    }
}

TEST_CASE("open_udp_uring: bad configurations fail with -EINVAL and a message") {
    RETURN_WITHOUT_URING();
    auto expect_einval = [](const UdpConfig& config) {
        std::unique_ptr<DatagramDriver> driver;
        cf::platform::clear_last_error();
        CHECK(cf::drivers::open_udp_uring(config, driver) == -EINVAL);
        CHECK(driver == nullptr);
        CHECK(std::strlen(cf::platform::last_error_message()) > 0);
    };
    UdpConfig config = loopback_config();
    SUBCASE("bind unset") {
        config.bind = PeerAddress{};
        expect_einval(config);
    }
    SUBCASE("rx_posted 0") {
        config.rx_posted = 0;
        expect_einval(config);
    }
    SUBCASE("rx_posted above the pool") {
        config.rx_posted = config.pool.count + 1;
        expect_einval(config);
    }
    SUBCASE("rx_posted above the kernel's ring limit") {
        config.rx_posted = 40000;
        config.pool.count = 40000;
        expect_einval(config);
    }
    SUBCASE("more buffers than 16-bit buffer ids") {
        config.pool.count = 65537;
        expect_einval(config);
    }
    SUBCASE("buffers with no payload room after the receive header") {
        config.pool.buffer_bytes = kRecvHeaderBytes;
        expect_einval(config);
    }
    SUBCASE("with GRO, buffers with no payload room after the receive header and control area") {
        config.gro = true;
        config.pool.buffer_bytes = 128;
        expect_einval(config);
    }
    SUBCASE("pool count 0") {
        config.pool.count = 0;
        config.rx_posted = 0;
        expect_einval(config);
    }
}

TEST_CASE("udp uring: destruction with sends in flight and buffers held by the caller") {
    RETURN_WITHOUT_URING();
    UdpConfig config = loopback_config();
    config.pool.buffer_bytes = 8192;
    config.zerocopy_min_bytes = 1024;
    std::mt19937_64 random(55);

    SUBCASE("never polled") {
        auto a = open_uring(config);
        a.reset();
    }
    SUBCASE("sends in flight, received buffers held, receive armed") {
        auto a = open_uring(config);
        auto b = open_uring(config);
        std::vector<PacketBuffer*> packets;
        for (int i = 0; i < 64; ++i) packets.push_back(make_packet(*a, i % 2 == 0 ? 4000 : 100, b->local_address(),
                                                                   random));
        send_all(*a, packets);
        std::vector<Datagram> got;
        std::vector<PacketBuffer*> held;
        PacketBuffer* burst[8];
        for (int call = 0; call < kReceiveCalls && held.empty(); ++call) {
            const int n = b->rx_burst(burst, 8);
            REQUIRE(n >= 0);
            held.insert(held.end(), burst, burst + n);
        }
        CHECK(!held.empty());
        // More sends right before destruction, never polled for completion.
        std::vector<PacketBuffer*> last;
        for (int i = 0; i < 32; ++i) last.push_back(make_packet(*a, 5000, b->local_address(), random));
        CHECK(a->tx_burst(last.data(), 32) == 32);
        a.reset();
        b.reset();   // the held buffers die with b's pool
    }
}
