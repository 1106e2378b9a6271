#include "engine/quic/packet_number.hpp"

#include <doctest/doctest.h>

#include <cstdint>
#include <cstring>
#include <random>

#include "engine/quic/connection_id.hpp"

using namespace cf::quic;

namespace {

// Slow reference for decoding away from the edges: the number congruent to `truncated` in
// (expected - window / 2, expected + window / 2].
std::uint64_t reference_decode(std::uint64_t largest_received, std::uint64_t truncated, std::size_t length) {
    // Everything stays below 2^63 here: signed 64-bit arithmetic is exact.
    const std::int64_t expected = static_cast<std::int64_t>(largest_received) + 1;
    const std::int64_t window = std::int64_t{1} << (8 * length);
    const std::int64_t low = expected - window / 2 + 1;
    std::int64_t offset = (static_cast<std::int64_t>(truncated) - low) % window;
    if (offset < 0) offset += window;
    return static_cast<std::uint64_t>(low + offset);
}

}  // namespace

TEST_CASE("packet numbers: the RFC 9000 appendix A.2 and A.3 examples") {
    // A.2: 29,519 packets in flight need 16 bits; 65,611 need more than 16.
    CHECK(packet_number_length(0xac5c02, 0xabe8b3) == 2);
    CHECK(packet_number_length(0xace8fe, 0xabe8b3) == 3);
    CHECK(truncate_packet_number(0xac5c02, 2) == 0x5c02);
    CHECK(truncate_packet_number(0xace8fe, 3) == 0xace8fe);
    // A.3: after 0xa82f30ea, the 16-bit 0x9b32 is 0xa82f9b32.
    CHECK(decode_packet_number(0xa82f30ea, 0x9b32, 2) == 0xa82f9b32);
}

TEST_CASE("packet numbers: the length is the smallest whose window covers twice the packets in flight") {
    CHECK(packet_number_length(0, kNoPacketNumber) == 1);
    CHECK(packet_number_length(127, kNoPacketNumber) == 1);   // 128 in flight: 256 >= 2 * 128
    CHECK(packet_number_length(128, kNoPacketNumber) == 2);
    CHECK(packet_number_length(1000 + 128, 1000) == 1);
    CHECK(packet_number_length(1000 + 129, 1000) == 2);
    CHECK(packet_number_length(1000 + (1u << 15), 1000) == 2);
    CHECK(packet_number_length(1000 + (1u << 15) + 1, 1000) == 3);
    CHECK(packet_number_length(1000 + (1u << 23), 1000) == 3);
    CHECK(packet_number_length(1000 + (1u << 23) + 1, 1000) == 4);
    CHECK(packet_number_length(kMaxPacketNumber, 0) == 4);
}

TEST_CASE("packet numbers: decoding at the edges near 0 and 2^62") {
    // Nothing received yet: the expected number is 0, and candidates below 0 are not taken.
    CHECK(decode_packet_number(kNoPacketNumber, 0x00, 1) == 0);
    CHECK(decode_packet_number(kNoPacketNumber, 0xff, 1) == 0xff);
    CHECK(decode_packet_number(kNoPacketNumber, 0x80, 1) == 0x80);
    CHECK(decode_packet_number(9, 0xf0, 1) == 0xf0);           // 0xf0 - 0x100 would be negative
    // Expected 0x101: 0x81 and 0x181 are both half a window away, and a tie goes up.
    CHECK(decode_packet_number(0x100, 0x80, 1) == 0x180);
    CHECK(decode_packet_number(0x100, 0x81, 1) == 0x181);
    CHECK(decode_packet_number(0x100, 0x82, 1) == 0x82);
    // At the top, candidates above 2^62 - 1 are not taken while a lower one fits.
    const std::uint64_t top = kMaxPacketNumber;
    CHECK(decode_packet_number(top - 1, 0xff, 1) == top);
    CHECK(decode_packet_number(top - 1, 0x00, 1) == top - 0xff);
    CHECK(decode_packet_number(top - 200, 0x10, 1) == top - 0xef);
    CHECK(decode_packet_number(top - 0x20, 0xfffffffe, 4) == top - 1);
    // After 2^62 - 1 the peer has nothing valid left to send: the result is above the maximum.
    CHECK(decode_packet_number(top, 0x05, 1) > kMaxPacketNumber);
}

TEST_CASE("packet numbers: 10^5 random encodings decode back, and decoding matches the reference") {
    std::mt19937_64 random(17);
    for (int i = 0; i < 100000; ++i) {
        const std::uint64_t in_flight = 1 + (random() >> (33 + random() % 31));   // 1 .. 2^31
        const std::uint64_t packet_number = in_flight + random() % (kMaxPacketNumber - in_flight);
        const bool none_acked = random() % 16 == 0 && packet_number < (1u << 30);
        const std::uint64_t largest_acked = none_acked ? kNoPacketNumber : packet_number - in_flight;
        const std::size_t length = packet_number_length(packet_number, largest_acked);
        REQUIRE(length >= 1);
        REQUIRE(length <= 4);
        const std::uint32_t truncated = truncate_packet_number(packet_number, length);
        // The receiver has seen at least largest_acked and at most packet_number - 1.
        const std::uint64_t low = none_acked ? 0 : largest_acked;
        const std::uint64_t largest_received = low + random() % (packet_number - low);
        const bool nothing_received = none_acked && random() % 2 == 0;
        REQUIRE(decode_packet_number(nothing_received ? kNoPacketNumber : largest_received, truncated, length) ==
                packet_number);

        // Any truncated value, away from the edges: the nearest candidate.
        const std::size_t any_length = 1 + random() % 4;
        const std::uint64_t window = std::uint64_t{1} << (8 * any_length);
        const std::uint64_t largest = window + random() % (kMaxPacketNumber - 3 * window);
        const std::uint64_t any_truncated = random() & (window - 1);
        REQUIRE(decode_packet_number(largest, any_truncated, any_length) ==
                reference_decode(largest, any_truncated, any_length));
    }
}

TEST_CASE("connection IDs: at most 20 bytes, compared by length and bytes") {
    const std::uint8_t bytes[21] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21};
    ConnectionId id;
    CHECK(id.empty());
    CHECK(id.assign(bytes, 20));
    CHECK(id.size() == 20);
    CHECK_FALSE(id.assign(bytes, 21));
    CHECK(id.size() == 20);   // unchanged
    ConnectionId shorter;
    CHECK(shorter.assign(bytes, 4));
    CHECK(shorter != id);
    CHECK(shorter < id);      // a prefix orders first
    ConnectionId other;
    CHECK(other.assign(bytes + 1, 4));
    CHECK(shorter < other);
    CHECK(other > id);
    // Re-assigning a shorter ID clears the old tail, so equal contents compare equal.
    ConnectionId reused;
    CHECK(reused.assign(bytes, 20));
    CHECK(reused.assign(bytes, 4));
    CHECK(reused == shorter);
    CHECK(equals(shorter, std::span<const std::uint8_t>(bytes, 4)));
    CHECK_FALSE(equals(shorter, std::span<const std::uint8_t>(bytes, 5)));
    CHECK(ConnectionId::from(std::span<const std::uint8_t>(bytes, 21)) == id);
    CHECK(ConnectionId{} == ConnectionId::from({}));
}

TEST_CASE("stateless reset tokens: the constant-time comparison finds any differing byte") {
    StatelessResetToken token;
    for (std::size_t i = 0; i < 16; ++i) token.bytes[i] = static_cast<std::uint8_t>(0xa0 + i);
    std::uint8_t copy[16];
    std::memcpy(copy, token.bytes.data(), 16);
    CHECK(constant_time_equal(token, copy));
    for (std::size_t i = 0; i < 16; ++i) {
        copy[i] ^= 0x01;
        CHECK_FALSE(constant_time_equal(token, copy));
        copy[i] ^= 0x01;
    }
}
