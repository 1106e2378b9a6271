// What the driver suites share: datagrams as the receiver saw them, packets with random bytes, sending a whole
// list through tx_burst, and the checks that nothing more arrived and that two sets of datagrams are the same.
#pragma once

#include <doctest/doctest.h>

#include <algorithm>
#include <cstdint>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "drivers/datagram_driver.hpp"
#include "platform/os/last_error.hpp"

namespace cf::drivers::testing {

inline constexpr std::uint32_t kMaxPayload = 1472;   // the largest IPv4 UDP payload in a 1500-byte frame
// rx_burst calls allowed to collect what was sent. Each call returns at once when data is there and waits at
// most rx_wait_us when it is not, so the bound only matters when something is lost.
inline constexpr int kReceiveCalls = 200;

// One datagram as the receiver saw it: the sender's address (as text) and the bytes.
using Datagram = std::pair<std::string, std::vector<std::uint8_t>>;

inline std::string text_of(const PeerAddress& address) {
    char text[64];
    return address.format(text, sizeof text);
}

inline std::vector<std::uint8_t> bytes_of(const PacketBuffer& buffer, std::uint32_t offset, std::uint32_t length) {
    const auto* data = reinterpret_cast<const std::uint8_t*>(buffer.data);
    return {data + offset, data + offset + length};
}

// A buffer from `driver`'s pool with `length` random bytes for `peer`.
inline PacketBuffer* make_packet(DatagramDriver& driver, std::uint32_t length, const PeerAddress& peer,
                                 std::mt19937_64& random) {
    PacketBuffer* buffer = driver.allocate();
    REQUIRE(buffer != nullptr);
    REQUIRE(length <= buffer->capacity);
    for (std::uint32_t i = 0; i < length; ++i) buffer->data[i] = static_cast<std::byte>(random());
    buffer->length = length;
    buffer->peer = peer;
    return buffer;
}

// Sends every packet, retrying the unaccepted rest (the socket buffer or the submission queue may be full for a
// moment; reaping completions makes room).
inline void send_all(DatagramDriver& driver, std::vector<PacketBuffer*> packets) {
    std::size_t sent = 0;
    for (int attempt = 0; attempt < 1000 && sent < packets.size(); ++attempt) {
        const int accepted = driver.tx_burst(packets.data() + sent, static_cast<std::uint32_t>(packets.size() - sent));
        INFO("tx_burst: ", std::string(platform::last_error_message()));
        REQUIRE(accepted >= 0);
        sent += static_cast<std::size_t>(accepted);
        if (accepted == 0) REQUIRE(driver.poll_completions() == 0);
    }
    REQUIRE(sent == packets.size());
}

// One burst of 1..100 random datagrams from `a`, a quarter of them to `a` itself and the rest to `b`, of 0 to
// kMaxPayload bytes (zero_first / max_last force the first to 0 bytes, the last to kMaxPayload). What each receiver
// should see is appended to expected_a / expected_b, and `bytes` grows by the payload.
inline std::vector<PacketBuffer*> random_burst(DatagramDriver& a, DatagramDriver& b, std::mt19937_64& random,
                                               bool zero_first, bool max_last, std::vector<Datagram>& expected_a,
                                               std::vector<Datagram>& expected_b, std::uint64_t& bytes) {
    const std::string from_a = text_of(a.local_address());
    const std::uint32_t count = 1 + static_cast<std::uint32_t>(random() % 100);
    std::vector<PacketBuffer*> packets;
    for (std::uint32_t i = 0; i < count; ++i) {
        std::uint32_t length = static_cast<std::uint32_t>(random() % (kMaxPayload + 1));
        if (zero_first && i == 0) length = 0;
        if (max_last && i == count - 1) length = kMaxPayload;
        const bool to_self = random() % 4 == 0;
        PacketBuffer* packet = make_packet(a, length, to_self ? a.local_address() : b.local_address(), random);
        (to_self ? expected_a : expected_b).emplace_back(from_a, bytes_of(*packet, 0, length));
        bytes += length;
        packets.push_back(packet);
    }
    return packets;
}

// After random bursts from `a` (to itself and to `b`): what each driver counted matches what was sent, and
// nothing was refused, cut or released twice.
inline void check_exchange_stats(DatagramDriver& a, DatagramDriver& b, std::size_t received_by_a,
                                 std::size_t received_by_b, std::uint64_t bytes) {
    CHECK(a.stats().tx_packets == received_by_a + received_by_b);
    CHECK(a.stats().tx_bytes == bytes);
    CHECK(a.stats().rx_packets == received_by_a);
    CHECK(b.stats().rx_packets == received_by_b);
    CHECK(a.stats().rx_bytes + b.stats().rx_bytes == bytes);
    CHECK(b.stats().tx_packets == 0);
    for (DatagramDriver* driver : {&a, &b}) {
        CHECK(driver->stats().tx_errors == 0);
        CHECK(driver->stats().rx_truncated == 0);
        CHECK(driver->pool().misuse_count() == 0);
    }
}

// Nothing more arrives (no duplicates): one more receive call finds nothing.
inline void check_drained(DatagramDriver& driver) {
    PacketBuffer* burst[64];
    CHECK(driver.rx_burst(burst, 64) == 0);
}

inline void check_same_datagrams(std::vector<Datagram> got, std::vector<Datagram> expected) {
    std::sort(got.begin(), got.end());
    std::sort(expected.begin(), expected.end());
    CHECK(got.size() == expected.size());
    CHECK(got == expected);
}

}  // namespace cf::drivers::testing
