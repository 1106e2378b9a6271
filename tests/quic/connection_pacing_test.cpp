// Pacing in the connection (RFC 9002 section 7.7): stream data leaves in bursts of at most the pacer's bucket
// (a millisecond at the pacing rate, at most Connection::kMaxPacingBurstBytes) even when the congestion window
// would let much more go at once, and the connection's timer says when the rest may follow.
#include <doctest/doctest.h>

#include <cstdint>
#include <deque>
#include <vector>

#include "engine/quic/congestion_window.hpp"
#include "tests/quic/connection_pair.hpp"

using namespace cf::quic;
using cf::quic::test::Pair;

namespace {

StreamTableConfig big_rings() {
    StreamTableConfig streams;
    streams.send_ring_bytes = 1 << 20;
    streams.receive_ring_bytes = 1 << 20;
    streams.stream_window = 1 << 20;
    streams.connection_window = 4 << 20;
    return streams;
}

struct Datagram {
    std::uint64_t arrival_ns;
    std::vector<std::uint8_t> bytes;
};

// Everything `from` has due at `now`, on its way to the peer (arriving `delay` later); the bytes sent.
std::size_t write_all(Connection& from, std::uint64_t now, std::uint64_t delay, std::deque<Datagram>& wire) {
    std::size_t bytes = 0;
    std::vector<std::uint8_t> datagram(Connection::kMaxDatagramBytes);
    while (const std::size_t size = from.write_datagram(datagram.data(), datagram.size(), now)) {
        wire.push_back({now + delay, {datagram.begin(), datagram.begin() + static_cast<std::ptrdiff_t>(size)}});
        bytes += size;
    }
    return bytes;
}

void deliver(Connection& to, std::uint64_t now, std::deque<Datagram>& wire) {
    while (!wire.empty() && wire.front().arrival_ns <= now) {
        to.receive_datagram(wire.front().bytes.data(), wire.front().bytes.size(), now);
        wire.pop_front();
    }
}

std::size_t consume_all(StreamTable& streams) {
    std::size_t bytes = 0;
    StreamId id = 0;
    while (streams.next_readable(id)) {
        StreamReadView view;
        while (streams.read(id, view) == 0 && view.data.size() != 0) {
            const std::size_t size = view.data.size();
            REQUIRE(streams.consume(id, size) == 0);
            bytes += size;
        }
    }
    return bytes;
}

}  // namespace

TEST_CASE("connection: pacing sends at most a burst at once while the window allows more; its timer releases the rest") {
    Pair pair({}, {}, big_rings());
    pair.run();
    REQUIRE(pair.client->handshake_confirmed());
    REQUIRE(pair.server->handshake_confirmed());
    Connection& client = *pair.client;
    Connection& server = *pair.server;
    const std::int64_t opened = client.streams().open_stream(StreamDirection::bidirectional);
    REQUIRE(opened >= 0);
    const auto id = static_cast<StreamId>(opened);

    const std::uint64_t burst = Connection::kMaxPacingBurstBytes;
    const std::vector<std::uint8_t> chunk(64 * 1024, 0x5a);
    std::deque<Datagram> to_server, to_client;
    constexpr std::uint64_t kTick = 10'000, kOneWay = 100'000;   // both ends run every 10 us; 100 us each way
    std::size_t written = 0, received = 0, largest_instant = 0, paced_stops = 0;
    const std::size_t total = 8 << 20;
    for (std::uint64_t now = pair.now; received < total && now < pair.now + 2'000'000'000; now += kTick) {
        while (written < total) {
            const std::size_t want = std::min(chunk.size(), total - written);
            const std::int64_t taken = client.streams().write(id, chunk.data(), want);
            if (taken <= 0) break;
            written += static_cast<std::size_t>(taken);
        }
        deliver(client, now, to_client);
        if (client.next_timeout() <= now) client.on_timeout(now);
        const std::uint64_t room_before =
            client.recovery().congestion().congestion_window() - client.recovery().bytes_in_flight();
        const std::size_t instant = write_all(client, now, kOneWay, to_server);
        largest_instant = std::max(largest_instant, instant);
        // The bucket holds a burst; a datagram may start while tokens remain, so one more can overshoot it.
        CHECK(instant <= burst + Connection::kMaxDatagramBytes);
        // Stopped by the pacer, not the window: data waits, the window had room for more, the timer is the pacer's.
        if (client.streams().wants_to_send() && room_before > instant + 2 * Connection::kMaxDatagramBytes) {
            ++paced_stops;
            CHECK(client.next_timeout() > now);
            CHECK(client.next_timeout() <= now + client.recovery().rtt().smoothed_rtt());
        }
        deliver(server, now, to_server);
        received += consume_all(server.streams());
        if (server.next_timeout() <= now) server.on_timeout(now);
        (void)write_all(server, now, kOneWay, to_client);
        REQUIRE_FALSE(client.closed());
        REQUIRE_FALSE(server.closed());
    }
    INFO("largest burst ", largest_instant, " window ", client.recovery().congestion().congestion_window(),
         " paced stops ", paced_stops);
    CHECK(received == total);
    // The window grew far past one burst, so without the pacer a whole window would have left at one instant.
    CHECK(client.recovery().congestion().congestion_window() >= 4 * burst);
    CHECK(largest_instant >= burst - Connection::kMaxDatagramBytes);   // the burst grew to the cap
    CHECK(paced_stops > 0);
}
