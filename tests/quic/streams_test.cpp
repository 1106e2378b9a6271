#include <doctest/doctest.h>

#include <cstdint>
#include <algorithm>
#include <random>
#include <vector>

#include "engine/quic/flow_control.hpp"
#include "engine/quic/message_framing.hpp"
#include "engine/quic/receive_buffer.hpp"
#include "engine/quic/send_buffer.hpp"
#include "engine/quic/stream_id.hpp"
#include "engine/quic/stream_limits.hpp"

using namespace cf::quic;

TEST_CASE("stream ids: initiator, direction, index, and who may send or receive") {
    CHECK(stream_id(EndpointRole::client, StreamDirection::bidirectional, 0) == 0);
    CHECK(stream_id(EndpointRole::server, StreamDirection::bidirectional, 0) == 1);
    CHECK(stream_id(EndpointRole::client, StreamDirection::unidirectional, 0) == 2);
    CHECK(stream_id(EndpointRole::server, StreamDirection::unidirectional, 5) == 23);
    CHECK(index_of(23) == 5);
    CHECK(initiator_of(23) == EndpointRole::server);
    CHECK(direction_of(23) == StreamDirection::unidirectional);
    // A client's unidirectional stream: the client sends, the server receives, and not the other way.
    CHECK(can_send(2, EndpointRole::client));
    CHECK_FALSE(can_receive(2, EndpointRole::client));
    CHECK(can_receive(2, EndpointRole::server));
    CHECK_FALSE(can_send(2, EndpointRole::server));
    CHECK(can_send(1, EndpointRole::client));
    CHECK(can_receive(1, EndpointRole::client));
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

namespace {

struct Frame {
    std::uint64_t offset;
    std::vector<std::uint8_t> data;
    bool fin;
};

Frame frame_of(const SendBuffer::Chunk& chunk) {
    Frame frame{chunk.offset, std::vector<std::uint8_t>(chunk.first, chunk.first + chunk.first_size), chunk.fin};
    if (chunk.second != nullptr) frame.data.insert(frame.data.end(), chunk.second, chunk.second + (chunk.length - chunk.first_size));
    return frame;
}

}  // namespace

TEST_CASE("send buffer: new bytes, then a loss sent again first, the FIN with the last bytes, done when all acked") {
    std::vector<std::uint8_t> ring(16);
    SendBuffer buffer;
    REQUIRE(buffer.init(ring.data(), 16) == 0);
    const std::uint8_t text[] = "abcdefghijklmnopqrstuvwxyz";
    CHECK(buffer.write(text, 26) == 16);   // the ring's size
    CHECK(buffer.room() == 0);
    SendBuffer::Chunk chunk;
    REQUIRE(buffer.next_chunk(10, 100, chunk));
    CHECK(frame_of(chunk).data == std::vector<std::uint8_t>(text, text + 10));
    buffer.on_sent(chunk);
    REQUIRE(buffer.next_chunk(10, 4, chunk));   // flow control allows 4 new bytes
    CHECK(chunk.offset == 10);
    CHECK(chunk.length == 4);
    buffer.on_sent(chunk);
    buffer.on_lost(0, 10, false);
    buffer.on_acked(10, 4, false);
    REQUIRE(buffer.next_chunk(6, 100, chunk));  // the loss first, in pieces of the frame's room
    CHECK(chunk.retransmission);
    CHECK(chunk.offset == 0);
    CHECK(chunk.length == 6);
    buffer.on_sent(chunk);
    buffer.on_acked(0, 6, false);
    CHECK(buffer.acked_prefix() == 6);
    CHECK(buffer.room() == 6);
    REQUIRE(buffer.next_chunk(100, 100, chunk));
    CHECK(chunk.offset == 6);
    CHECK(chunk.length == 4);
    buffer.on_sent(chunk);
    buffer.on_acked(6, 4, false);
    CHECK(buffer.acked_prefix() == 14);   // 10..14 was acknowledged before
    CHECK(buffer.write(text + 16, 10) == 10);   // wraps around the ring
    buffer.finish();
    CHECK(buffer.write(text, 1) == 0);
    REQUIRE(buffer.next_chunk(100, 100, chunk));
    CHECK(chunk.offset == 14);
    CHECK(chunk.fin);
    CHECK(frame_of(chunk).data == std::vector<std::uint8_t>(text + 14, text + 26));
    buffer.on_sent(chunk);
    CHECK_FALSE(buffer.next_chunk(100, 100, chunk));
    buffer.on_lost(14, 12, true);
    buffer.on_acked(14, 11, false);   // another copy of all but the last byte arrived
    REQUIRE(buffer.next_chunk(100, 100, chunk));
    CHECK(chunk.offset == 25);
    CHECK(chunk.length == 1);
    CHECK(chunk.fin);
    buffer.on_sent(chunk);
    CHECK_FALSE(buffer.all_acked());
    buffer.on_acked(25, 1, true);
    CHECK(buffer.all_acked());
}

TEST_CASE("stream property: send and receive buffers over a lossy, reordering, duplicating path deliver every byte") {
    std::mt19937_64 random(90002);
    for (int trial = 0; trial < 40; ++trial) {
        const std::uint32_t send_capacity = 16u << (random() % 7), receive_capacity = 16u << (random() % 7);
        std::vector<std::uint8_t> send_ring(send_capacity), receive_ring(receive_capacity);
        SendBuffer sender;
        ReceiveBuffer receiver;
        REQUIRE(sender.init(send_ring.data(), send_capacity) == 0);
        REQUIRE(receiver.init(receive_ring.data(), receive_capacity) == 0);
        std::vector<std::uint8_t> stream(random() % 30000), read;
        for (auto& b : stream) b = static_cast<std::uint8_t>(random());
        std::size_t written = 0;
        std::vector<Frame> in_flight;
        const int loss_percent = static_cast<int>(random() % 30);
        for (int step = 0; step < 400000 && !(sender.all_acked() && receiver.finished()); ++step) {
            written += sender.write(stream.data() + written, std::min<std::size_t>(stream.size() - written, random() % 300));
            if (written == stream.size()) sender.finish();
            // The receiver's window is its ring from its read offset: the flow-control limit.
            const std::uint64_t limit = receiver.read_offset() + receive_capacity;
            SendBuffer::Chunk chunk;
            if (sender.next_chunk(1 + random() % 1200, limit - std::min(limit, sender.sent_offset()), chunk)) {
                sender.on_sent(chunk);
                in_flight.push_back(frame_of(chunk));
            }
            // One frame in flight arrives (maybe twice) or is lost; the order is random.
            if (!in_flight.empty() && random() % 2 == 0) {
                const std::size_t pick = random() % in_flight.size();
                const Frame frame = in_flight[pick];
                in_flight.erase(in_flight.begin() + static_cast<std::ptrdiff_t>(pick));
                if (static_cast<int>(random() % 100) < loss_percent) {
                    sender.on_lost(frame.offset, frame.data.size(), frame.fin);
                } else {
                    bool stored = true;
                    REQUIRE(receiver.receive(frame.offset, frame.data.data(), frame.data.size(), frame.fin, &stored) ==
                            TransportError::no_error);
                    if (stored) sender.on_acked(frame.offset, frame.data.size(), frame.fin);
                    else sender.on_lost(frame.offset, frame.data.size(), frame.fin);
                    if (random() % 10 == 0) in_flight.push_back(frame);   // a duplicate on the path
                }
            }
            if (random() % 4 == 0) {
                const ReceiveBuffer::Spans spans = receiver.peek();
                read.insert(read.end(), spans.first, spans.first + spans.first_size);
                read.insert(read.end(), spans.second, spans.second + spans.second_size);
                receiver.consume(spans.size());
            }
        }
        INFO("trial ", trial, " bytes ", stream.size(), " loss ", loss_percent, "%");
        REQUIRE(read == stream);
        CHECK(receiver.finished());
        CHECK(sender.all_acked());
    }
}

TEST_CASE("send buffer: more holes than the lost set holds: everything from the first loss is sent again") {
    std::vector<std::uint8_t> ring(256);
    SendBuffer buffer;
    REQUIRE(buffer.init(ring.data(), 256) == 0);
    std::vector<std::uint8_t> data(200, 7);
    REQUIRE(buffer.write(data.data(), data.size()) == 200);
    SendBuffer::Chunk chunk;
    for (int i = 0; i < 200; ++i) {
        REQUIRE(buffer.next_chunk(1, 1000, chunk));
        buffer.on_sent(chunk);
    }
    // Every odd byte lost, every even one acknowledged: 100 holes.
    for (std::uint64_t offset = 0; offset < 200; ++offset) {
        if (offset % 2 == 0) buffer.on_acked(offset, 1, false);
        else buffer.on_lost(offset, 1, false);
    }
    std::vector<bool> resent(200, false);
    for (int guard = 0; guard < 1000 && buffer.next_chunk(7, 1000, chunk); ++guard) {
        REQUIRE(chunk.retransmission);
        for (std::size_t i = 0; i < chunk.length; ++i) resent[chunk.offset + i] = true;
        buffer.on_sent(chunk);
    }
    for (std::uint64_t offset = 1; offset < 200; offset += 2) {
        INFO("offset ", offset);
        CHECK(resent[offset]);
    }
    CHECK_FALSE(buffer.has_lost());
}

TEST_CASE("stream limits: ours stop at the peer's credit; the peer's past ours is STREAM_LIMIT_ERROR; credit recycles") {
    OpenedStreams ours(2);
    std::uint64_t index = 99;
    CHECK(ours.open(index));
    CHECK(index == 0);
    CHECK(ours.open(index));
    CHECK(index == 1);
    CHECK_FALSE(ours.open(index));
    CHECK(ours.take_blocked_signal());
    CHECK_FALSE(ours.take_blocked_signal());
    ours.on_peer_limit(1);   // lower: ignored
    ours.on_peer_limit(3);
    CHECK(ours.open(index));
    CHECK(index == 2);
    ours.on_peer_limit(kMaxStreamsLimit + 5);
    CHECK(ours.limit() == kMaxStreamsLimit);

    PeerStreams theirs(4);
    CHECK(theirs.on_stream(2) == TransportError::no_error);   // opens 0, 1, 2
    CHECK(theirs.opened() == 3);
    CHECK(theirs.on_stream(4) == TransportError::stream_limit_error);
    CHECK_FALSE(theirs.update_due());
    theirs.on_closed();
    CHECK_FALSE(theirs.update_due());
    theirs.on_closed();   // half the window finished
    REQUIRE(theirs.update_due());
    CHECK(theirs.next_limit() == 6);
    theirs.on_update_sent();
    CHECK(theirs.on_stream(5) == TransportError::no_error);
    CHECK(theirs.on_stream(6) == TransportError::stream_limit_error);
    // A peer that opens and closes one stream after another never runs dry.
    PeerStreams churn(3);
    for (std::uint64_t i = 0; i < 1000; ++i) {
        REQUIRE(churn.on_stream(i) == TransportError::no_error);
        churn.on_closed();
        if (churn.update_due()) churn.on_update_sent();
    }
}

TEST_CASE("message framing: whole messages in order, in place or copied across the wrap; all or nothing; bounds") {
    std::vector<std::uint8_t> send_ring(256), receive_ring(256), scratch(100);
    SendBuffer sender;
    ReceiveBuffer receiver;
    REQUIRE(sender.init(send_ring.data(), 256) == 0);
    REQUIRE(receiver.init(receive_ring.data(), 256) == 0);
    MessageReader reader;
    reader.init(scratch.data(), 100);
    std::mt19937_64 random(5150);
    std::vector<std::vector<std::uint8_t>> sent, got;
    std::size_t copies = 0, in_place = 0;
    for (int step = 0; step < 22000; ++step) {
        if (step < 20000) {   // then only what is under way drains
            std::vector<std::uint8_t> message(random() % 101);
            for (auto& b : message) b = static_cast<std::uint8_t>(random());
            const std::size_t room_before = sender.room();
            const int rc = write_message(sender, message.data(), message.size(), 100);
            if (rc == 0) sent.push_back(message);
            else REQUIRE((rc == -EAGAIN && sender.room() == room_before));
        }
        // The bytes arrive in random pieces.
        SendBuffer::Chunk chunk;
        const std::uint64_t limit = receiver.read_offset() + 256;
        if (sender.next_chunk(1 + random() % 80, limit - std::min(limit, sender.sent_offset()), chunk)) {
            sender.on_sent(chunk);
            const Frame frame = frame_of(chunk);
            REQUIRE(receiver.receive(frame.offset, frame.data.data(), frame.data.size(), false) == TransportError::no_error);
            sender.on_acked(frame.offset, frame.data.size(), false);
        }
        const std::uint8_t* data = nullptr;
        std::size_t length = 0;
        for (int rc2; (rc2 = reader.next(receiver, data, length)) == 1;) {
            got.emplace_back(data, data + length);
            (data == scratch.data() ? copies : in_place) += 1;
        }
        reader.release(receiver);
    }
    REQUIRE(got.size() == sent.size());
    for (std::size_t i = 0; i < got.size(); ++i) REQUIRE(got[i] == sent[i]);
    CHECK(copies > 100);     // both ways were exercised
    CHECK(in_place > 1000);
    std::uint8_t big[101] = {};
    CHECK(write_message(sender, big, 101, 100) == -EMSGSIZE);

    // A length above the maximum breaks the reader for good.
    ReceiveBuffer hostile;
    REQUIRE(hostile.init(receive_ring.data(), 256) == 0);
    const std::uint8_t announce[] = {0x40, 101};   // a two-byte varint: 101
    REQUIRE(hostile.receive(0, announce, 2, false) == TransportError::no_error);
    MessageReader strict;
    strict.init(scratch.data(), 100);
    const std::uint8_t* data = nullptr;
    std::size_t length = 0;
    CHECK(strict.next(hostile, data, length) == -EMSGSIZE);
    CHECK(strict.broken());
    CHECK(strict.next(hostile, data, length) == -EMSGSIZE);
    // A header cut in the middle waits.
    ReceiveBuffer partial;
    REQUIRE(partial.init(receive_ring.data(), 256) == 0);
    REQUIRE(partial.receive(0, announce, 1, false) == TransportError::no_error);
    MessageReader patient;
    patient.init(scratch.data(), 200);
    CHECK(patient.next(partial, data, length) == 0);
}
