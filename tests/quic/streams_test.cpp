#include <doctest/doctest.h>

#include <cstdint>
#include <random>
#include <vector>

#include "engine/quic/flow_control.hpp"
#include "engine/quic/receive_buffer.hpp"
#include "engine/quic/stream_id.hpp"

using namespace cf::quic;

TEST_CASE("stream ids: initiator, direction, index, and who may send or receive") {
    CHECK(stream_id(StreamInitiator::client, StreamDirection::bidirectional, 0) == 0);
    CHECK(stream_id(StreamInitiator::server, StreamDirection::bidirectional, 0) == 1);
    CHECK(stream_id(StreamInitiator::client, StreamDirection::unidirectional, 0) == 2);
    CHECK(stream_id(StreamInitiator::server, StreamDirection::unidirectional, 5) == 23);
    CHECK(index_of(23) == 5);
    CHECK(initiator_of(23) == StreamInitiator::server);
    CHECK(direction_of(23) == StreamDirection::unidirectional);
    // A client's unidirectional stream: the client sends, the server receives, and not the other way.
    CHECK(can_send(2, StreamInitiator::client));
    CHECK_FALSE(can_receive(2, StreamInitiator::client));
    CHECK(can_receive(2, StreamInitiator::server));
    CHECK_FALSE(can_send(2, StreamInitiator::server));
    CHECK(can_send(1, StreamInitiator::client));
    CHECK(can_receive(1, StreamInitiator::client));
}

TEST_CASE("receive credit: data past the advertised limit is FLOW_CONTROL_ERROR; updates once half is consumed") {
    ReceiveCredit credit(1000, 8000);
    CHECK(credit.on_received(1000) == TransportError::no_error);
    CHECK(credit.on_received(1001) == TransportError::flow_control_error);
    CHECK(credit.highest_received() == 1000);
    credit.on_consumed(499, 1'000'000, 1'000'000);
    CHECK_FALSE(credit.update_due());
    credit.on_consumed(1, 1'000'000, 1'000'000);   // 500 consumed: half the window left
    REQUIRE(credit.update_due());
    CHECK(credit.next_limit() == 1500);             // first update: no history, window unchanged
    credit.on_update_sent(1'000'000);
    CHECK(credit.limit() == 1500);
    CHECK(credit.on_received(1500) == TransportError::no_error);
    // The next update falls due within two RTTs of the last: the window doubles.
    credit.on_consumed(500, 2'500'000, 1'000'000);
    REQUIRE(credit.update_due());
    CHECK(credit.window() == 2000);
    CHECK(credit.next_limit() == 3000);
    credit.on_update_sent(2'500'000);
    // Much later than two RTTs: the window stays.
    credit.on_received(2000);
    credit.on_consumed(1000, 100'000'000, 1'000'000);
    REQUIRE(credit.update_due());
    CHECK(credit.window() == 2000);
    // Doubling stops at the maximum.
    ReceiveCredit capped(3000, 5000);
    for (int i = 0; i < 10; ++i) {
        capped.on_received(capped.limit());
        capped.on_consumed(capped.limit() - capped.consumed(), 1000 + i, 1'000'000);
        capped.on_update_sent(1000 + i);
    }
    CHECK(capped.window() == 5000);
}

TEST_CASE("send credit: limits only grow; the blocked signal is due once per limit") {
    SendCredit credit(100);
    CHECK(credit.available() == 100);
    CHECK_FALSE(credit.take_blocked_signal());
    credit.on_sent(100);
    CHECK(credit.available() == 0);
    CHECK(credit.take_blocked_signal());
    CHECK_FALSE(credit.take_blocked_signal());
    credit.on_peer_limit(50);   // smaller: ignored
    CHECK(credit.limit() == 100);
    credit.on_peer_limit(150);
    CHECK(credit.available() == 50);
    credit.on_sent(80);         // more than available is clamped
    CHECK(credit.sent() == 150);
    CHECK(credit.take_blocked_signal());
}

TEST_CASE("flow control property: a sender within its credit never trips the receiver; one byte more always does") {
    std::mt19937_64 random(4242);
    for (int trial = 0; trial < 200; ++trial) {
        const std::uint64_t window = 64 + random() % 4096;
        ReceiveCredit receiver(window, window * 16);
        SendCredit sender(window);
        std::uint64_t now = 0, in_transit = 0;
        for (int step = 0; step < 500; ++step) {
            now += random() % 3'000'000;
            const std::uint64_t want = random() % (2 * window);
            const std::uint64_t bytes = want < sender.available() ? want : sender.available();
            sender.on_sent(bytes);
            REQUIRE(sender.sent() <= sender.limit());
            REQUIRE(receiver.on_received(sender.sent()) == TransportError::no_error);
            in_transit = receiver.highest_received() - receiver.consumed();
            receiver.on_consumed(random() % (in_transit + 1), now, 1'000'000);
            if (receiver.update_due() && random() % 4 != 0) {   // an update is sometimes delayed
                receiver.on_update_sent(now);
                sender.on_peer_limit(receiver.limit());
            }
            REQUIRE(receiver.limit() - receiver.consumed() <= window * 16);
        }
        CHECK(receiver.on_received(receiver.limit() + 1) == TransportError::flow_control_error);
    }
}

namespace {

std::vector<std::uint8_t> read_all(ReceiveBuffer& buffer) {
    const ReceiveBuffer::Spans spans = buffer.peek();
    std::vector<std::uint8_t> out(spans.first, spans.first + spans.first_size);
    out.insert(out.end(), spans.second, spans.second + spans.second_size);
    buffer.consume(spans.size());
    return out;
}

}  // namespace

TEST_CASE("receive buffer: out of order, duplicated and overlapping frames come out in order, across the wrap") {
    std::vector<std::uint8_t> ring(64);
    ReceiveBuffer buffer;
    REQUIRE(buffer.init(ring.data(), 64) == 0);
    std::vector<std::uint8_t> stream(200);
    for (std::size_t i = 0; i < stream.size(); ++i) stream[i] = static_cast<std::uint8_t>(i * 7 + 1);
    CHECK(buffer.receive(10, stream.data() + 10, 20, false) == TransportError::no_error);
    CHECK(buffer.readable() == 0);
    CHECK(buffer.receive(0, stream.data(), 12, false) == TransportError::no_error);   // overlaps the first
    CHECK(buffer.ranges() == 1);
    CHECK(read_all(buffer) == std::vector<std::uint8_t>(stream.begin(), stream.begin() + 30));
    CHECK(buffer.receive(5, stream.data() + 5, 20, false) == TransportError::no_error);   // all read already
    CHECK(buffer.readable() == 0);
    // Up to the end of the ring (offset 30 + 64 = 94) is allowed; one byte more is a flow-control violation.
    CHECK(buffer.receive(30, stream.data() + 30, 65, false) == TransportError::flow_control_error);
    CHECK(buffer.receive(30, stream.data() + 30, 64, false) == TransportError::no_error);
    const ReceiveBuffer::Spans spans = buffer.peek();
    CHECK(spans.first_size == 34);   // from ring offset 30 to its end, then the wrap
    CHECK(spans.second_size == 30);
    CHECK(read_all(buffer) == std::vector<std::uint8_t>(stream.begin() + 30, stream.begin() + 94));
}

TEST_CASE("receive buffer: final size rules") {
    std::vector<std::uint8_t> ring(64);
    std::uint8_t data[64] = {};
    ReceiveBuffer buffer;
    REQUIRE(buffer.init(ring.data(), 64) == 0);
    CHECK(buffer.receive(0, data, 20, false) == TransportError::no_error);
    CHECK(buffer.receive(0, data, 10, true) == TransportError::final_size_error);    // below data received
    CHECK(buffer.receive(30, data, 0, true) == TransportError::no_error);            // final size 30
    CHECK(buffer.receive(25, data, 10, false) == TransportError::final_size_error);  // past it
    CHECK(buffer.receive(20, data, 11, true) == TransportError::final_size_error);   // another final size
    CHECK(buffer.receive(20, data, 10, true) == TransportError::no_error);           // the same again
    CHECK(buffer.final_size() == 30);
    CHECK_FALSE(buffer.finished());
    CHECK(read_all(buffer).size() == 30);
    CHECK(buffer.finished());
    // Offsets that cannot exist.
    ReceiveBuffer other;
    REQUIRE(other.init(ring.data(), 64) == 0);
    CHECK(other.receive(kMaxVarint, data, 2, false) == TransportError::frame_encoding_error);
    CHECK(other.receive(kMaxVarint + 1, data, 0, false) == TransportError::frame_encoding_error);
    CHECK(other.init(ring.data(), 48) == -EINVAL);
    CHECK(other.init(nullptr, 64) == -EINVAL);
}

TEST_CASE("receive buffer: a frame needing a range beyond the cap is dropped and reported, nothing else changes") {
    std::vector<std::uint8_t> ring(4096);
    std::uint8_t byte = 9;
    ReceiveBuffer buffer;
    REQUIRE(buffer.init(ring.data(), 4096) == 0);
    for (std::uint32_t i = 0; i < ReceiveBuffer::kMaxRanges; ++i) {
        bool stored = false;
        CHECK(buffer.receive(2 + 2 * i, &byte, 1, false, &stored) == TransportError::no_error);
        CHECK(stored);
    }
    bool stored = true;
    CHECK(buffer.receive(1000, &byte, 1, false, &stored) == TransportError::no_error);
    CHECK_FALSE(stored);
    CHECK(buffer.dropped_frames() == 1);
    CHECK(buffer.ranges() == ReceiveBuffer::kMaxRanges);
    // Filling a gap merges ranges and needs no new one: taken.
    CHECK(buffer.receive(3, &byte, 1, false, &stored) == TransportError::no_error);
    CHECK(stored);
    CHECK(buffer.ranges() == ReceiveBuffer::kMaxRanges - 1);
}

TEST_CASE("receive buffer property: random frames of a random stream (fixed seed) against the stream itself") {
    std::mt19937_64 random(777);
    for (int trial = 0; trial < 60; ++trial) {
        const std::uint32_t capacity = 16u << (random() % 8);
        std::vector<std::uint8_t> ring(capacity);
        ReceiveBuffer buffer;
        REQUIRE(buffer.init(ring.data(), capacity) == 0);
        std::vector<std::uint8_t> stream(1 + random() % 20000);
        for (auto& b : stream) b = static_cast<std::uint8_t>(random());
        std::vector<std::uint8_t> read;
        bool fin_sent = false;
        for (int step = 0; step < 200000 && !buffer.finished(); ++step) {
            // The sender's window: what the receiver's ring takes; a frame sometimes starts below (a duplicate).
            const std::uint64_t base = buffer.read_offset() > 50 && random() % 5 == 0 ? buffer.read_offset() - 50
                                                                                      : buffer.read_offset();
            const std::uint64_t limit = std::min<std::uint64_t>(buffer.read_offset() + capacity, stream.size());
            if (base >= limit && !(limit == stream.size())) continue;
            const std::uint64_t offset = base + (limit > base ? random() % (limit - base) : 0);
            const std::uint64_t room = limit > offset ? limit - offset : 0;
            const std::uint64_t length = room == 0 ? 0 : 1 + random() % room;
            const bool fin = offset + length == stream.size() && random() % 2 == 0;
            fin_sent |= fin;
            REQUIRE(buffer.receive(offset, stream.data() + offset, length, fin) == TransportError::no_error);
            if (random() % 3 == 0) {
                const std::vector<std::uint8_t> got = read_all(buffer);
                read.insert(read.end(), got.begin(), got.end());
            }
            if (!fin_sent && buffer.read_offset() == stream.size()) {
                REQUIRE(buffer.receive(stream.size(), nullptr, 0, true) == TransportError::no_error);
                fin_sent = true;
            }
        }
        const std::vector<std::uint8_t> rest = read_all(buffer);
        read.insert(read.end(), rest.begin(), rest.end());
        INFO("trial ", trial, " capacity ", capacity, " size ", stream.size());
        REQUIRE(read == stream);
        CHECK(buffer.finished());
    }
}

TEST_CASE("range set property: random adds and subtracts (fixed seed) against a set of offsets") {
    std::mt19937_64 random(31337);
    for (int trial = 0; trial < 200; ++trial) {
        RangeSet<8> set;
        std::vector<bool> model(200, false);
        for (int step = 0; step < 60; ++step) {
            const std::uint64_t start = random() % 200;
            const std::uint64_t end = start + random() % (201 - start);
            const bool adding = random() % 3 != 0;
            RangeSet<8> before = set;
            const bool done = adding ? set.add(start, end) : set.subtract(start, end);
            if (!done) {   // over capacity: nothing changed
                REQUIRE(set.size() == before.size());
                for (std::uint32_t i = 0; i < set.size(); ++i) REQUIRE(set[i] == before[i]);
                continue;
            }
            for (std::uint64_t x = start; x < end; ++x) model[x] = adding;
            // The ranges are exactly the runs of the model: sorted, disjoint, not touching, none empty.
            std::vector<OffsetRange> runs;
            for (std::uint64_t x = 0; x < 200; ++x) {
                if (!model[x]) continue;
                if (!runs.empty() && runs.back().end == x) runs.back().end = x + 1;
                else runs.push_back({x, x + 1});
            }
            REQUIRE(std::vector<OffsetRange>(set.begin(), set.end()) == runs);
            const std::uint64_t probe = random() % 200;
            REQUIRE(set.contains(probe) == model[probe]);
        }
    }
    RangeSet<2> tiny;
    CHECK(tiny.add(0, 10));
    CHECK(tiny.add(20, 30));
    CHECK_FALSE(tiny.add(40, 50));      // a third range
    CHECK(tiny.add(10, 20));            // bridges the two: one range
    CHECK(tiny.size() == 1);
    CHECK(tiny.subtract(5, 6));
    CHECK_FALSE(tiny.subtract(7, 8));   // a second hole would make three
    CHECK(tiny.size() == 2);
    tiny.trim_below(25);
    CHECK(tiny.size() == 1);
    CHECK(tiny[0] == OffsetRange{25, 30});
}
