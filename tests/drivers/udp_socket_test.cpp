// The socket UDP driver over loopback (127.0.0.1, and ::1 when the host has it): random bursts to another driver
// and to itself arrive exactly once with the right sender and bytes; stats and pool counts exact afterwards;
// truncation; one system call per burst; empty bursts and exhausted pools; refused datagrams; GSO and GRO where
// the kernel has them; driver kind names; the factory, and bind failures with their messages.
// Loopback UDP does not lose datagrams at these burst sizes; receives are bounded loops, never timed.
#include <doctest/doctest.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <memory>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "drivers/datagram_driver.hpp"
#include "tests/drivers/datagram_test_support.hpp"
#include "drivers/socket/udp_socket.hpp"
#include "engine/time/counter_clock.hpp"
#include "platform/os/last_error.hpp"

using cf::drivers::DatagramDriver;
using cf::drivers::DriverKind;
using cf::drivers::PacketBuffer;
using cf::drivers::PeerAddress;
using cf::drivers::UdpConfig;
using namespace cf::drivers::testing;

namespace {

UdpConfig loopback_config(const char* bind) {
    UdpConfig config;
    REQUIRE(PeerAddress::parse(bind, config.bind) == 0);
    config.pool.count = 256;
    config.pool.buffer_bytes = 2048;
    config.pool.prefer_hugepages = false;
    config.socket_buffer_bytes = 1 << 20;
    config.busy_poll = false;   // wait for a datagram in flight instead of spinning the shared machine
    config.rx_wait_us = 20000;
    return config;
}

// The driver, or nullptr (with the status in `status`) when it cannot be opened.
std::unique_ptr<DatagramDriver> try_open(const UdpConfig& config, int& status) {
    std::unique_ptr<DatagramDriver> driver;
    status = cf::drivers::open_udp_socket(config, driver);
    CHECK((status == 0) == (driver != nullptr));
    return driver;
}

std::unique_ptr<DatagramDriver> open_driver(const UdpConfig& config) {
    int status = 0;
    std::unique_ptr<DatagramDriver> driver = try_open(config, status);
    INFO("open: ", std::string(cf::platform::last_error_message()));
    REQUIRE(status == 0);
    REQUIRE(driver->kind() == DriverKind::socket);
    return driver;
}

// Receives until `into` holds `expected` datagrams (GRO buffers split into their segments) or the calls run out.
// Checks on the way that one burst carries one rx_time, and that it lies between clock reads around the call.
void receive(DatagramDriver& driver, std::size_t expected, std::vector<Datagram>& into,
             const cf::CounterClock* clock = nullptr) {
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
            CHECK(buffer.rx_time >= before);
            CHECK(buffer.rx_time <= after);
            CHECK(buffer.length <= buffer.capacity);
            const std::uint32_t segment = buffer.segment_size != 0 ? buffer.segment_size : buffer.length;
            if (buffer.segment_size != 0) CHECK(buffer.length > buffer.segment_size);
            std::uint32_t offset = 0;
            do {
                const std::uint32_t length = std::min(segment, buffer.length - offset);
                into.emplace_back(text_of(buffer.peer), bytes_of(buffer, offset, length));
                offset += length;
            } while (offset < buffer.length);
            driver.release(burst[i]);
        }
    }
    CHECK(into.size() == expected);
}

// Random bursts from `a` to `b` and to itself; every datagram arrives once, from `a`, with its bytes.
void exchange_random_bursts(const char* bind) {
    UdpConfig config_a = loopback_config(bind);
    UdpConfig config_b = loopback_config(bind);
    config_b.clock = &cf::default_clock();
    auto a = open_driver(config_a);
    auto b = open_driver(config_b);
    CHECK(a->local_address().port() != 0);
    CHECK(a->local_address().addr.any.sa_family == config_a.bind.addr.any.sa_family);
    CHECK_FALSE(a->local_address() == b->local_address());

    std::mt19937_64 random(0xC0FFEE);
    std::vector<Datagram> expected_a, expected_b, got_a, got_b;
    std::uint64_t bytes = 0;
    for (int round = 0; round < 24; ++round) {
        // Up to 100 per burst: more than one sendmmsg chunk of 64 at times.
        send_all(*a, random_burst(*a, *b, random, round == 0, round == 0, expected_a, expected_b, bytes));
        // Collect each round before the next, so the receive buffers never hold more than one burst.
        receive(*b, expected_b.size(), got_b, &cf::default_clock());
        receive(*a, expected_a.size(), got_a);
    }
    check_drained(*a);
    check_drained(*b);
    check_same_datagrams(got_a, expected_a);
    check_same_datagrams(got_b, expected_b);

    check_exchange_stats(*a, *b, expected_a.size(), expected_b.size(), bytes);
    for (DatagramDriver* driver : {a.get(), b.get()}) {
        CHECK(driver->stats().rx_no_buffer == 0);
        CHECK(driver->pool().available() == driver->pool().count());
    }
}

}  // namespace

TEST_CASE("udp socket over 127.0.0.1: random bursts to another driver and to itself arrive exactly once") {
    exchange_random_bursts("127.0.0.1:0");
}

TEST_CASE("udp socket over ::1: random bursts to another driver and to itself arrive exactly once") {
    int status = 0;
    auto probe = try_open(loopback_config("[::1]:0"), status);
    if (status == -EADDRNOTAVAIL || status == -EAFNOSUPPORT) {
        MESSAGE("no IPv6 loopback on this host (", std::string(cf::platform::last_error_message()),
                "): IPv6 part skipped");
        return;
    }
    REQUIRE(status == 0);
    probe.reset();
    exchange_random_bursts("[::1]:0");
}

TEST_CASE("udp socket: a received buffer can be sent on, and comes back to its pool") {
    auto a = open_driver(loopback_config("127.0.0.1:0"));
    auto b = open_driver(loopback_config("127.0.0.1:0"));
    std::mt19937_64 random(11);
    PacketBuffer* packet = make_packet(*a, 300, b->local_address(), random);
    const std::vector<std::uint8_t> sent = bytes_of(*packet, 0, 300);
    send_all(*a, {packet});

    PacketBuffer* burst[4];
    int count = 0;
    for (int call = 0; call < kReceiveCalls && count == 0; ++call) count = b->rx_burst(burst, 4);
    REQUIRE(count == 1);
    CHECK(burst[0]->peer == a->local_address());
    CHECK(b->pool().available() == b->pool().count() - 1);
    burst[0]->peer = a->local_address();   // echo it back
    send_all(*b, {burst[0]});
    CHECK(b->pool().available() == b->pool().count());

    std::vector<Datagram> echoed;
    receive(*a, 1, echoed);
    REQUIRE(echoed.size() == 1);
    CHECK(echoed[0].first == text_of(b->local_address()));
    CHECK(echoed[0].second == sent);
}

TEST_CASE("udp socket: a datagram longer than a buffer is counted as truncated and dropped") {
    UdpConfig receiver_config = loopback_config("127.0.0.1:0");
    receiver_config.pool.buffer_bytes = 64;
    auto receiver = open_driver(receiver_config);
    auto sender = open_driver(loopback_config("127.0.0.1:0"));
    REQUIRE(receiver->pool().buffer_bytes() == 64);

    std::mt19937_64 random(3);
    std::vector<Datagram> expected;
    std::vector<PacketBuffer*> packets;
    for (const std::uint32_t length : {64u, 65u, 0u, 1000u, 63u, kMaxPayload, 1u}) {
        PacketBuffer* packet = make_packet(*sender, length, receiver->local_address(), random);
        if (length <= 64) expected.emplace_back(text_of(sender->local_address()), bytes_of(*packet, 0, length));
        packets.push_back(packet);
    }
    send_all(*sender, packets);
    std::vector<Datagram> got;
    receive(*receiver, expected.size(), got);
    // The truncated ones may trail the last good one in the queue: drain, then count.
    check_drained(*receiver);
    check_same_datagrams(got, expected);
    CHECK(receiver->stats().rx_truncated == 3);
    CHECK(receiver->stats().rx_packets == expected.size());
    CHECK(receiver->stats().rx_bytes == 64 + 0 + 63 + 1);
    CHECK(receiver->pool().available() == receiver->pool().count());
    CHECK(receiver->pool().misuse_count() == 0);
}

TEST_CASE("udp socket: one system call per send burst, counted exactly") {
    auto a = open_driver(loopback_config("127.0.0.1:0"));
    auto b = open_driver(loopback_config("127.0.0.1:0"));
    std::mt19937_64 random(5);

    std::vector<PacketBuffer*> packets;
    for (int i = 0; i < 32; ++i) packets.push_back(make_packet(*a, 100 + i, b->local_address(), random));
    std::uint64_t before = a->stats().syscalls;
    CHECK(a->tx_burst(packets.data(), 32) == 32);
    CHECK(a->stats().syscalls - before == 1);

    // 100 datagrams: two sendmmsg calls of at most 64.
    packets.clear();
    for (int i = 0; i < 100; ++i) packets.push_back(make_packet(*a, 10, b->local_address(), random));
    before = a->stats().syscalls;
    CHECK(a->tx_burst(packets.data(), 100) == 100);
    CHECK(a->stats().syscalls - before == 2);
    CHECK(a->pool().available() == a->pool().count());

    std::vector<Datagram> got;
    receive(*b, 132, got);

    // An empty socket: one recvmmsg when busy polling; recvmmsg + ppoll (timing out, so no second recvmmsg)
    // when waiting is allowed; just the recvmmsg when the wait is zero.
    PacketBuffer* burst[64];
    UdpConfig busy = loopback_config("127.0.0.1:0");
    busy.busy_poll = true;
    auto spinning = open_driver(busy);
    CHECK(spinning->stats().syscalls == 0);   // open's own calls are not counted
    CHECK(spinning->rx_burst(burst, 64) == 0);
    CHECK(spinning->stats().syscalls == 1);

    UdpConfig waiting_config = loopback_config("127.0.0.1:0");
    waiting_config.rx_wait_us = 1000;
    auto waiting = open_driver(waiting_config);
    CHECK(waiting->rx_burst(burst, 64) == 0);
    CHECK(waiting->stats().syscalls == 2);

    waiting_config.rx_wait_us = 0;
    auto no_wait = open_driver(waiting_config);
    CHECK(no_wait->rx_burst(burst, 64) == 0);
    CHECK(no_wait->stats().syscalls == 1);
}

TEST_CASE("udp socket: empty bursts, and pools that run dry") {
    UdpConfig sender_config = loopback_config("127.0.0.1:0");
    sender_config.pool.count = 100;
    auto a = open_driver(sender_config);
    auto b = open_driver(loopback_config("127.0.0.1:0"));
    PacketBuffer* burst[64];

    // Empty bursts cost nothing.
    CHECK(a->tx_burst(nullptr, 0) == 0);
    CHECK(a->rx_burst(burst, 0) == 0);
    CHECK(a->stats().syscalls == 0);

    // Every buffer of the sender's pool in one burst: the pool is full again afterwards.
    std::mt19937_64 random(9);
    std::vector<PacketBuffer*> packets;
    std::vector<Datagram> expected;
    while (PacketBuffer* buffer = a->allocate()) {
        const auto length = static_cast<std::uint32_t>(random() % 200);
        for (std::uint32_t i = 0; i < length; ++i) buffer->data[i] = static_cast<std::byte>(random());
        buffer->length = length;
        buffer->peer = b->local_address();
        expected.emplace_back(text_of(a->local_address()), bytes_of(*buffer, 0, length));
        packets.push_back(buffer);
    }
    REQUIRE(packets.size() == 100);
    CHECK(a->allocate() == nullptr);
    CHECK(a->tx_burst(packets.data(), 100) == 100);
    CHECK(a->pool().available() == 100);
    CHECK(a->stats().syscalls == 2);

    // The receiver's pool is all held by the caller: nothing can be received, no system call is made.
    std::vector<PacketBuffer*> held;
    while (PacketBuffer* buffer = b->allocate()) held.push_back(buffer);
    CHECK(b->rx_burst(burst, 64) == 0);
    CHECK(b->stats().rx_no_buffer == 1);
    CHECK(b->stats().syscalls == 0);

    // Five buffers free. After an empty poll the driver asks for one datagram (sparse traffic: see rx_burst), then
    // for a whole burst, which the pool cuts to the four buffers left, counted as cut short.
    for (int i = 0; i < 5; ++i) {
        b->release(held.back());
        held.pop_back();
    }
    int count = 0;
    for (int call = 0; call < kReceiveCalls && count == 0; ++call) count = b->rx_burst(burst, 64);
    CHECK(count == 1);
    CHECK(b->stats().rx_no_buffer == 1);
    const int more = b->rx_burst(burst + 1, 63);
    CHECK(more == 4);
    CHECK(b->stats().rx_no_buffer == 2);
    count += more > 0 ? more : 0;
    std::vector<Datagram> got;
    for (int i = 0; i < count; ++i) {
        got.emplace_back(text_of(burst[i]->peer), bytes_of(*burst[i], 0, burst[i]->length));
        b->release(burst[i]);
    }
    for (PacketBuffer* buffer : held) b->release(buffer);
    held.clear();
    receive(*b, expected.size(), got);
    check_drained(*b);
    check_same_datagrams(got, expected);
    CHECK(b->pool().available() == b->pool().count());
    CHECK(b->pool().misuse_count() == 0);
}

TEST_CASE("udp socket: datagrams the kernel refuses are counted, dropped and not retried") {
    auto a = open_driver(loopback_config("127.0.0.1:0"));
    auto b = open_driver(loopback_config("127.0.0.1:0"));
    std::mt19937_64 random(13);
    PeerAddress wrong_family;
    REQUIRE(PeerAddress::parse("[::1]:9", wrong_family) == 0);

    // good, unset peer, good: sendmmsg stops at the refused one and the caller keeps the rest; the retry
    // starts with the refused datagram, which is dropped (counted as accepted), and sends the next.
    PacketBuffer* first = make_packet(*a, 10, b->local_address(), random);
    PacketBuffer* unset = make_packet(*a, 10, PeerAddress(), random);
    PacketBuffer* last = make_packet(*a, 20, b->local_address(), random);
    PacketBuffer* round_one[] = {first, unset, last};
    CHECK(a->tx_burst(round_one, 3) == 1);
    CHECK(a->stats().tx_errors == 0);
    CHECK(a->tx_burst(round_one + 1, 2) == 2);
    CHECK(a->stats().tx_errors == 1);

    // An IPv6 peer on an IPv4 socket, alone.
    PacketBuffer* mismatched = make_packet(*a, 10, wrong_family, random);
    CHECK(a->tx_burst(&mismatched, 1) == 1);
    CHECK(a->stats().tx_errors == 2);

    // Several datagrams in one buffer without GSO: refused rather than sent as one merged datagram.
    PacketBuffer* segmented = make_packet(*a, 1500, b->local_address(), random);
    segmented->segment_size = 500;
    CHECK(a->tx_burst(&segmented, 1) == 1);
    CHECK(a->stats().tx_errors == 3);

    CHECK(a->stats().tx_packets == 2);
    CHECK(a->stats().tx_bytes == 30);
    CHECK(a->pool().available() == a->pool().count());
    CHECK(a->pool().misuse_count() == 0);
    std::vector<Datagram> got;
    receive(*b, 2, got);
    check_drained(*b);
}

TEST_CASE("udp socket: GSO sends one buffer as equal datagrams (when the kernel has UDP_SEGMENT)") {
    UdpConfig sender_config = loopback_config("127.0.0.1:0");
    sender_config.gso = true;
    sender_config.pool.buffer_bytes = 16384;
    sender_config.pool.count = 16;
    auto a = open_driver(sender_config);
    auto b = open_driver(loopback_config("127.0.0.1:0"));
    std::mt19937_64 random(17);

    for (const std::uint32_t length : {8000u, 7500u}) {
        CAPTURE(length);
        const std::uint64_t errors_before = a->stats().tx_errors;
        const std::uint64_t packets_before = a->stats().tx_packets;
        PacketBuffer* packet = make_packet(*a, length, b->local_address(), random);
        packet->segment_size = 1000;
        std::vector<Datagram> expected;
        for (std::uint32_t offset = 0; offset < length; offset += 1000) {
            expected.emplace_back(text_of(a->local_address()),
                                  bytes_of(*packet, offset, std::min(1000u, length - offset)));
        }
        REQUIRE(expected.size() == 8);
        const std::uint64_t syscalls_before = a->stats().syscalls;
        CHECK(a->tx_burst(&packet, 1) == 1);
        CHECK(a->stats().syscalls - syscalls_before == 1);
        if (a->stats().tx_errors != errors_before) {
            MESSAGE("the kernel refused UDP_SEGMENT: GSO part skipped");
            return;
        }
        CHECK(a->stats().tx_packets - packets_before == 8);
        std::vector<Datagram> got;
        receive(*b, expected.size(), got);
        check_drained(*b);
        check_same_datagrams(got, expected);
    }
    CHECK(a->pool().available() == a->pool().count());
    CHECK(b->pool().available() == b->pool().count());
}

TEST_CASE("udp socket: GRO receives stay consistent whether or not the kernel coalesces") {
    UdpConfig sender_config = loopback_config("127.0.0.1:0");
    sender_config.gso = true;
    sender_config.pool.buffer_bytes = 16384;
    sender_config.pool.count = 16;
    UdpConfig receiver_config = loopback_config("127.0.0.1:0");
    receiver_config.gro = true;
    receiver_config.pool.buffer_bytes = 65536;   // a coalesced receive must fit whole, or it is truncated
    receiver_config.pool.count = 32;
    auto a = open_driver(sender_config);
    auto b = open_driver(receiver_config);
    std::mt19937_64 random(19);

    std::vector<Datagram> expected;
    std::vector<PacketBuffer*> packets;
    PacketBuffer* segmented = make_packet(*a, 8000, b->local_address(), random);
    segmented->segment_size = 1000;
    for (std::uint32_t offset = 0; offset < 8000; offset += 1000) {
        expected.emplace_back(text_of(a->local_address()), bytes_of(*segmented, offset, 1000));
    }
    packets.push_back(segmented);
    for (int i = 0; i < 5; ++i) {
        PacketBuffer* plain = make_packet(*a, 700, b->local_address(), random);
        expected.emplace_back(text_of(a->local_address()), bytes_of(*plain, 0, 700));
        packets.push_back(plain);
    }
    send_all(*a, packets);
    if (a->stats().tx_errors != 0) {
        MESSAGE("the kernel refused UDP_SEGMENT: GRO part skipped");
        return;
    }

    // Count what arrives coalesced, then check the segments (receive() splits them) against what was sent.
    std::vector<Datagram> got;
    PacketBuffer* burst[64];
    int coalesced = 0;
    for (int call = 0; call < kReceiveCalls && got.size() < expected.size(); ++call) {
        const int count = b->rx_burst(burst, 64);
        REQUIRE(count >= 0);
        for (int i = 0; i < count; ++i) {
            const PacketBuffer& buffer = *burst[i];
            if (buffer.segment_size != 0) {
                ++coalesced;
                CHECK(buffer.length > buffer.segment_size);
                CHECK(buffer.segment_size == 1000);
            }
            const std::uint32_t segment = buffer.segment_size != 0 ? buffer.segment_size : buffer.length;
            std::uint32_t offset = 0;
            do {
                const std::uint32_t length = std::min(segment, buffer.length - offset);
                got.emplace_back(text_of(buffer.peer), bytes_of(buffer, offset, length));
                offset += length;
            } while (offset < buffer.length);
            b->release(burst[i]);
        }
    }
    MESSAGE("GRO: ", coalesced, " coalesced receive(s) of ", got.size(), " datagrams");
    check_drained(*b);
    check_same_datagrams(got, expected);
    CHECK(b->stats().rx_packets == expected.size());
    CHECK(b->stats().rx_bytes == 8000 + 5 * 700);
    CHECK(b->stats().rx_truncated == 0);
    CHECK(b->pool().available() == b->pool().count());
}

TEST_CASE("driver kinds: names and parsing") {
    for (const DriverKind kind : {DriverKind::automatic, DriverKind::uring, DriverKind::socket}) {
        DriverKind parsed = kind == DriverKind::socket ? DriverKind::uring : DriverKind::socket;
        CHECK(cf::drivers::parse_driver_kind(cf::drivers::driver_kind_name(kind), parsed) == 0);
        CHECK(parsed == kind);
    }
    CHECK(std::string(cf::drivers::driver_kind_name(DriverKind::automatic)) == "auto");
    CHECK(std::string(cf::drivers::driver_kind_name(DriverKind::uring)) == "uring");
    CHECK(std::string(cf::drivers::driver_kind_name(DriverKind::socket)) == "socket");

    for (const char* bad : {"", "Socket", "socket ", "automatic", "io_uring", "dpdk"}) {
        CAPTURE(bad);
        DriverKind parsed = DriverKind::uring;
        CHECK(cf::drivers::parse_driver_kind(bad, parsed) == -EINVAL);
        CHECK(parsed == DriverKind::uring);
        CHECK(std::string(cf::platform::last_error_message()).find(std::string("'") + bad + "'") !=
              std::string::npos);
    }
    DriverKind parsed = DriverKind::uring;
    CHECK(cf::drivers::parse_driver_kind(nullptr, parsed) == -EINVAL);
    CHECK(parsed == DriverKind::uring);
}

TEST_CASE("open_udp: the socket driver, and bind failures with a message") {
    UdpConfig config = loopback_config("127.0.0.1:0");
    std::unique_ptr<DatagramDriver> first;
    INFO("open: ", std::string(cf::platform::last_error_message()));
    REQUIRE(cf::drivers::open_udp(DriverKind::socket, config, first) == 0);
    REQUIRE(first != nullptr);
    CHECK(first->kind() == DriverKind::socket);
    CHECK(text_of(first->local_address()).rfind("127.0.0.1:", 0) == 0);
    CHECK(first->local_address().port() != 0);

    SUBCASE("the same address twice: -EADDRINUSE") {
        UdpConfig same = config;
        same.bind = first->local_address();
        std::unique_ptr<DatagramDriver> second;
        cf::platform::clear_last_error();
        CHECK(cf::drivers::open_udp(DriverKind::socket, same, second) == -EADDRINUSE);
        CHECK(second == nullptr);
        const std::string message = cf::platform::last_error_message();
        CAPTURE(message);
        CHECK(message.find("bind") != std::string::npos);
        CHECK(message.find(text_of(first->local_address())) != std::string::npos);
    }
    SUBCASE("no bind address: -EINVAL") {
        UdpConfig unset = config;
        unset.bind = PeerAddress();
        std::unique_ptr<DatagramDriver> driver;
        CHECK(cf::drivers::open_udp(DriverKind::socket, unset, driver) == -EINVAL);
        CHECK(driver == nullptr);
        CHECK(std::string(cf::platform::last_error_message()).find("bind address") != std::string::npos);
    }
    SUBCASE("a bad pool: -EINVAL from the pool") {
        UdpConfig bad_pool = config;
        bad_pool.pool.count = 0;
        std::unique_ptr<DatagramDriver> driver;
        CHECK(cf::drivers::open_udp(DriverKind::socket, bad_pool, driver) == -EINVAL);
        CHECK(driver == nullptr);
        CHECK(std::string(cf::platform::last_error_message()).find("count") != std::string::npos);
    }
    SUBCASE("an address this host does not have: -EADDRNOTAVAIL") {
        UdpConfig foreign = config;
        REQUIRE(PeerAddress::parse("192.0.2.123:0", foreign.bind) == 0);   // TEST-NET-1, never local
        std::unique_ptr<DatagramDriver> driver;
        const int status = cf::drivers::open_udp(DriverKind::socket, foreign, driver);
        if (status == 0) {
            MESSAGE("192.0.2.123 is local here: bind failure not checked");
        } else {
            CHECK(status == -EADDRNOTAVAIL);
            CHECK(driver == nullptr);
            CHECK(std::string(cf::platform::last_error_message()).find("192.0.2.123") != std::string::npos);
        }
    }
}

TEST_CASE("open_udp: automatic gives a working driver (io_uring or, failing that, sockets)") {
    UdpConfig config = loopback_config("127.0.0.1:0");
    config.rx_posted = 64;   // io_uring keeps this many of the pool's buffers posted: leave some to send from
    std::unique_ptr<DatagramDriver> driver;
    cf::platform::clear_last_error();
    const int status = cf::drivers::open_udp(DriverKind::automatic, config, driver);
    INFO("open: ", std::string(cf::platform::last_error_message()));
    REQUIRE(status == 0);
    REQUIRE(driver != nullptr);
    MESSAGE("automatic chose the ", std::string(cf::drivers::driver_kind_name(driver->kind())), " driver");
    CHECK(driver->kind() != DriverKind::automatic);

    std::mt19937_64 random(23);
    PacketBuffer* packet = make_packet(*driver, 123, driver->local_address(), random);
    const std::vector<std::uint8_t> bytes = bytes_of(*packet, 0, 123);
    send_all(*driver, {packet});
    std::vector<Datagram> got;
    receive(*driver, 1, got);
    check_same_datagrams(got, {{text_of(driver->local_address()), bytes}});
}

TEST_CASE("open_udp: uring asked for explicitly opens it or says why not, never falls back") {
    UdpConfig config = loopback_config("127.0.0.1:0");
    config.rx_posted = 64;
    std::unique_ptr<DatagramDriver> driver;
    cf::platform::clear_last_error();
    const int status = cf::drivers::open_udp(DriverKind::uring, config, driver);
    if (status == 0) {
        REQUIRE(driver != nullptr);
        CHECK(driver->kind() == DriverKind::uring);
        return;
    }
    // ENOTSUP ("built without liburing") is EOPNOTSUPP on Linux.
    const std::string message = cf::platform::last_error_message();
    MESSAGE("io_uring not available here: ", message);
    CHECK((status == -ENOSYS || status == -EPERM || status == -EOPNOTSUPP));
    CHECK(driver == nullptr);
    CHECK_FALSE(message.empty());
}
