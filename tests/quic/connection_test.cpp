// Two Connections, a client and a server, exchanging datagrams in memory: the handshake end to end on our own
// packets, keys and TLS glue, with losses injected by dropping datagrams.
#include "engine/quic/connection.hpp"

#include <doctest/doctest.h>

#include <algorithm>
#include <deque>
#include <random>
#include <vector>

#include "engine/quic/packet_header.hpp"
#include "engine/quic/version_negotiation.hpp"
#include "platform/os/last_error.hpp"
#include "tests/quic/connection_pair.hpp"
#include "tests/quic/test_pki.hpp"

using namespace cf::quic;
using cf::quic::test::cid;
using cf::quic::test::Pair;
using cf::quic::test::pki;


TEST_CASE("connection: a full handshake between our client and our server, both confirmed, parameters checked") {
    Pair pair;
    pair.run();
    REQUIRE(pair.server != nullptr);
    Connection& client = *pair.client;
    Connection& server = *pair.server;
    INFO("client: ", connection_state_name(client.state()), " ", client.error_code(), " ", client.error_message());
    INFO("server: ", connection_state_name(server.state()), " ", server.error_code(), " ", server.error_message());
    REQUIRE(client.handshake_confirmed());
    REQUIRE(server.handshake_confirmed());
    CHECK(client.tls().alpn() == "cf-test");
    CHECK(client.tls().peer_authenticated());
    // Each side saw the other's parameters and connection IDs (RFC 9000 section 7.3 checked on the way).
    CHECK(client.peer_parameters().initial_max_streams_bidi == 16);
    CHECK(*client.peer_parameters().original_destination_connection_id == cid(0xa0, 12));
    CHECK(*client.peer_parameters().initial_source_connection_id == cid(0x20));
    CHECK(*server.peer_parameters().initial_source_connection_id == cid(0x10));
    CHECK(client.peer_cid() == cid(0x20));
    CHECK(server.peer_cid() == cid(0x10));
    CHECK(client.dropped_packets() == 0);
    CHECK(server.dropped_packets() == 0);
    CHECK(client.unhandled_frames() == 0);
    CHECK(pair.datagrams < 12);
}

TEST_CASE("connection: every datagram with a client Initial is at least 1200 bytes") {
    Pair pair;
    std::vector<std::uint8_t> datagram(Connection::kMaxDatagramBytes);
    const std::size_t size = pair.client->write_datagram(datagram.data(), datagram.size(), 0);
    CHECK(size >= kMinInitialDatagramSize);
    CHECK(size <= Connection::kMaxDatagramBytes);
}

TEST_CASE("connection: the handshake completes through 30% datagram loss, with probe timeouts") {
    for (int seed = 0; seed < 10; ++seed) {
        Pair pair;
        pair.random.seed(static_cast<std::uint64_t>(seed));
        pair.drop_percent = 30;
        pair.run(2000);
        INFO("seed ", seed, " datagrams ", pair.datagrams, " dropped ", pair.dropped, " timeouts ", pair.timeouts);
        REQUIRE(pair.server != nullptr);
        CHECK(pair.client->handshake_confirmed());
        CHECK(pair.server->handshake_confirmed());
    }
}

TEST_CASE("connection: a server whose client went silent sends at most three times what it received") {
    Pair pair;
    pair.client_silent_after_first = true;
    pair.run(500);
    REQUIRE(pair.server != nullptr);
    CHECK_FALSE(pair.server->address_validated());
    CHECK(pair.server->bytes_received() >= 1200);
    CHECK(pair.server->bytes_sent() > 0);
    CHECK(pair.server->bytes_sent() <= 3 * pair.server->bytes_received());
    CHECK(pair.server->recovery().stats().pto_expirations > 0);   // it tried again, within the limit
    CHECK_FALSE(pair.server->handshake_confirmed());
}

TEST_CASE("connection: RTT and congestion state after a handshake") {
    Pair pair;
    pair.run();
    REQUIRE(pair.server != nullptr);
    REQUIRE(pair.client->handshake_confirmed());
    // The server answers half a millisecond after the client's datagram, the client acknowledges at the next step:
    // the samples are 0.5 to a few milliseconds.
    CHECK(pair.client->recovery().rtt().has_sample());
    CHECK(pair.client->recovery().rtt().smoothed_rtt() >= 500'000);
    CHECK(pair.client->recovery().rtt().smoothed_rtt() < 100'000'000);
    CHECK(pair.client->recovery().stats().packets_lost == 0);
}

TEST_CASE("connection: a server the client cannot verify: the client closes with bad_certificate, the server drains") {
    TlsConfig server;
    server.role = EndpointRole::server;
    server.certificate_file = pki().path("stranger.pem");
    server.key_file = pki().path("stranger.key");
    server.alpn = {"cf-test"};
    Pair pair({}, server);
    pair.run();
    REQUIRE(pair.server != nullptr);
    CHECK(pair.client->state() == ConnectionState::closing);
    CHECK(pair.client->error_code() == 0x0100 + 42);
    CHECK(pair.server->state() == ConnectionState::draining);
    CHECK(pair.server->error_code() == 0x0100 + 42);
    CHECK_FALSE(pair.server->handshake_confirmed());
}

TEST_CASE("connection: no ALPN in common: the server closes with no_application_protocol") {
    TlsConfig client;
    client.role = EndpointRole::client;
    client.ca_file = pki().path("ca.pem");
    client.server_name = "localhost";
    client.alpn = {"h3"};
    Pair pair(client, {});
    pair.run();
    REQUIRE(pair.server != nullptr);
    CHECK(pair.server->error_code() == 0x0100 + 120);
    CHECK(pair.client->state() == ConnectionState::draining);
    CHECK(pair.client->error_code() == 0x0100 + 120);
}

TEST_CASE("connection: an application close after the handshake reaches the peer with its code") {
    Pair pair;
    pair.run();
    REQUIRE(pair.server != nullptr);
    REQUIRE(pair.server->handshake_confirmed());
    pair.client->close(77, true, "bye");
    std::vector<std::uint8_t> datagram(Connection::kMaxDatagramBytes);
    const std::size_t size = pair.client->write_datagram(datagram.data(), datagram.size(), 5'000'000'000);
    REQUIRE(size > 0);
    pair.server->receive_datagram(datagram.data(), size, 5'000'000'000);
    CHECK(pair.server->state() == ConnectionState::draining);
    CHECK(pair.server->error_code() == 77);
    CHECK(pair.server->error_message() == "bye");
    CHECK(pair.client->write_datagram(datagram.data(), datagram.size(), 5'000'000'001) == 0);   // sent once
}

TEST_CASE("connection: garbage and tampered datagrams are dropped and counted, never processed") {
    Pair pair;
    pair.run();
    REQUIRE(pair.server != nullptr);
    REQUIRE(pair.server->handshake_confirmed());
    std::mt19937_64 random(404);
    const std::uint64_t dropped_before = pair.server->dropped_packets();
    for (int i = 0; i < 500; ++i) {
        std::vector<std::uint8_t> junk(1 + random() % 1400);
        for (auto& b : junk) b = static_cast<std::uint8_t>(random());
        if (i % 2 == 0) {   // a short header to our connection ID, then junk: it gets as far as decryption
            junk[0] = 0x40 | (junk[0] & 0x3f);
            if (junk.size() > 30) std::memcpy(junk.data() + 1, pair.server->local_cid().data(), 8);
        }
        pair.server->receive_datagram(junk.data(), junk.size(), 6'000'000'000);
    }
    CHECK(pair.server->state() == ConnectionState::confirmed);
    CHECK(pair.server->dropped_packets() > dropped_before + 400);
    CHECK(pair.server->packets_received() > 0);
}

namespace {

// Moves the pair's clock on by three of `side`'s PTOs (its RTT estimate and the peer's max_ack_delay) and lets
// `side` see that time: a datagram from it, if it has one, goes to the other side.
void pass_three_ptos(Pair& pair, Connection& side) {
    const std::uint64_t pto =
        side.recovery().rtt().pto_base() + side.peer_parameters().max_ack_delay_ms * 1'000'000;
    pair.now += 3 * pto;
    const bool server = &side == pair.server.get();
    (void)pair.move(side, server ? &pair.client : &pair.server, pair.now);
}

}  // namespace

TEST_CASE("connection: a subsequent key update waits three PTOs after the previous one was acknowledged") {
    Pair pair;
    pair.run();
    REQUIRE(pair.server != nullptr);
    REQUIRE(pair.client->handshake_confirmed());
    // The first update may start at once.
    REQUIRE(pair.client->update_keys() == 0);
    pair.client->send_ping();
    pair.run();
    REQUIRE(pair.client->key_updates() == 1);
    REQUIRE(pair.server->key_updates() == 1);
    // Acknowledged, but the server may not have its next read keys yet: refused now and one PTO later...
    CHECK(pair.client->update_keys() == -EAGAIN);
    const std::uint64_t pto =
        pair.client->recovery().rtt().pto_base() + pair.client->peer_parameters().max_ack_delay_ms * 1'000'000;
    pair.now += pto;
    (void)pair.move(*pair.client, &pair.server, pair.now);
    CHECK(pair.client->update_keys() == -EAGAIN);
    // ...taken three PTOs after the acknowledgment, and answered with nothing dropped.
    pass_three_ptos(pair, *pair.client);
    const std::uint64_t dropped = pair.client->dropped_packets() + pair.server->dropped_packets();
    CHECK(pair.client->update_keys() == 0);
    pair.client->send_ping();
    pair.run();
    CHECK(pair.client->key_updates() == 2);
    CHECK(pair.server->key_updates() == 2);
    CHECK(pair.client->dropped_packets() + pair.server->dropped_packets() == dropped);
}

TEST_CASE("connection: key updates, initiated by either side and answered, keep packets flowing") {
    Pair pair;
    pair.run();
    REQUIRE(pair.server != nullptr);
    REQUIRE(pair.client->handshake_confirmed());
    REQUIRE(pair.server->handshake_confirmed());
    CHECK(pair.client->update_keys() == 0);
    CHECK(pair.client->update_keys() == -EAGAIN);   // not before a packet of this phase is acknowledged
    pair.run();
    CHECK(pair.client->key_updates() == 1);
    CHECK(pair.server->key_updates() == 1);   // answered
    const std::uint64_t dropped = pair.client->dropped_packets() + pair.server->dropped_packets();
    // The server answered with ACKs only, which nobody acknowledges: it may start an update only once a packet of
    // its current phase was acknowledged (RFC 9001 section 6.1), so a PING first.
    CHECK(pair.server->update_keys() == -EAGAIN);
    pair.server->send_ping();
    pair.run();
    // ...and then three PTOs (RFC 9001 section 6.5: the client may make its next keys only that late).
    CHECK(pair.server->update_keys() == -EAGAIN);
    pass_three_ptos(pair, *pair.server);
    // Now the server starts one; pings in both directions open with the new keys.
    CHECK(pair.server->update_keys() == 0);
    pair.server->send_ping();
    pair.client->send_ping();
    pair.run();
    CHECK(pair.client->key_updates() == 2);
    CHECK(pair.server->key_updates() == 2);
    CHECK(pair.client->dropped_packets() + pair.server->dropped_packets() == dropped);
    CHECK(pair.client->state() == ConnectionState::confirmed);
    CHECK(pair.server->state() == ConnectionState::confirmed);
}

TEST_CASE("connection: a key update is refused before the handshake is confirmed") {
    Pair pair;
    CHECK(pair.client->update_keys() == -EAGAIN);
}

TEST_CASE("connection: both ends time out after the idle timeout without traffic, silently") {
    Pair pair;
    pair.run();
    REQUIRE(pair.server != nullptr);
    REQUIRE(pair.client->handshake_confirmed());
    // Both sent max_idle_timeout 30 s: nothing happens for 29 s, everything after 30 s.
    const std::uint64_t start = pair.now;
    for (Connection* c : {pair.client.get(), pair.server.get()}) {
        CHECK(c->next_timeout() > start + 29'000'000'000);
        CHECK(c->next_timeout() <= start + 31'000'000'000);
        c->on_timeout(start + 29'000'000'000);
        CHECK_FALSE(c->closed());
        c->on_timeout(start + 31'000'000'000);
        CHECK(c->state() == ConnectionState::timed_out);
        std::vector<std::uint8_t> datagram(Connection::kMaxDatagramBytes);
        CHECK(c->write_datagram(datagram.data(), datagram.size(), start + 31'000'000'001) == 0);   // no CLOSE
    }
}

TEST_CASE("connection: a client abandons on Version Negotiation without its version, ignores one that lists it") {
    for (const bool lists_ours : {false, true}) {
        Pair pair;
        std::vector<std::uint8_t> datagram(Connection::kMaxDatagramBytes);
        REQUIRE(pair.client->write_datagram(datagram.data(), datagram.size(), 0) > 0);
        std::uint8_t vn[128];
        ByteWriter writer(vn, sizeof vn);
        const std::uint32_t versions[] = {0x1a2a3a4a, lists_ours ? kVersion1 : 0xff00001d};
        // Echoing the client's IDs: its SCID as the DCID, the DCID it sent to as the SCID.
        REQUIRE(write_version_negotiation(writer, 0x40, pair.client->local_cid().bytes(), cid(0xa0, 12).bytes(),
                                          versions) == 0);
        pair.client->receive_datagram(vn, writer.size(), 1000);
        if (lists_ours) {
            CHECK(pair.client->state() == ConnectionState::handshaking);
            CHECK(pair.client->dropped_packets() == 1);
        } else {
            CHECK(pair.client->state() == ConnectionState::abandoned);
            CHECK(pair.client->closed());
        }
    }
}

TEST_CASE("connection: messages on one long-lived stream, echoed back, through 10% datagram loss") {
    for (const int loss : {0, 10}) {
        Pair pair;
        pair.drop_percent = loss;
        pair.run(2000);
        REQUIRE(pair.server != nullptr);
        REQUIRE(pair.client->handshake_confirmed());
        REQUIRE(pair.server->handshake_confirmed());
        StreamTable& client = pair.client->streams();
        StreamTable& server = pair.server->streams();
        const std::int64_t stream = client.open_stream(StreamDirection::bidirectional);
        REQUIRE(stream >= 0);
        const auto id = static_cast<StreamId>(stream);
        std::mt19937_64 random(static_cast<std::uint64_t>(loss) + 3);
        std::vector<std::vector<std::uint8_t>> echoed;
        std::deque<std::vector<std::uint8_t>> backlog;   // read by the server, not yet echoed (no room)
        std::size_t next_to_send = 0;
        std::vector<std::vector<std::uint8_t>> messages(300);
        for (auto& m : messages) {
            m.resize(random() % 2000);
            for (auto& b : m) b = static_cast<std::uint8_t>(random());
        }
        for (int round = 0; round < 20000 && echoed.size() < messages.size(); ++round) {
            // The client sends what the stream takes; the server echoes every message it reads on the same stream.
            while (next_to_send < messages.size() &&
                   client.send_message(id, messages[next_to_send].data(), messages[next_to_send].size()) == 0) {
                ++next_to_send;
            }
            StreamId readable = 0;
            while (server.next_readable(readable)) {
                const std::uint8_t* data = nullptr;
                std::size_t length = 0;
                while (server.next_message(readable, data, length) == 1) {
                    backlog.emplace_back(data, data + length);   // the view ends with the next call: keep a copy
                    (void)server.release_message(readable);
                }
            }
            while (!backlog.empty() && server.send_message(id, backlog.front().data(), backlog.front().size()) == 0) {
                backlog.pop_front();
            }
            while (client.next_readable(readable)) {
                const std::uint8_t* data = nullptr;
                std::size_t length = 0;
                while (client.next_message(readable, data, length) == 1) {
                    echoed.emplace_back(data, data + length);
                    (void)client.release_message(readable);
                }
            }
            for (int i = 0; i < 4; ++i) pair.step();
        }
        INFO("loss ", loss, "%: echoed ", echoed.size(), " of ", messages.size(), ", sent ", next_to_send,
             ", timeouts ", pair.timeouts, ", lost ", pair.client->recovery().stats().packets_lost);
        REQUIRE(echoed.size() == messages.size());
        for (std::size_t i = 0; i < messages.size(); ++i) REQUIRE(echoed[i] == messages[i]);
        CHECK(pair.client->unhandled_frames() == 0);
        CHECK(pair.server->unhandled_frames() == 0);
        CHECK_FALSE(pair.client->closed());
    }
}

TEST_CASE("connection: a new stream per message, each closed after its echo, for many more messages than slots") {
    Pair pair;
    pair.run();
    REQUIRE(pair.server != nullptr);
    REQUIRE(pair.client->handshake_confirmed());
    StreamTable& client = pair.client->streams();
    StreamTable& server = pair.server->streams();
    const std::uint8_t message[64] = {1, 2, 3};
    for (int i = 0; i < 100; ++i) {
        INFO("message ", i);
        std::int64_t id = -1;
        for (int step = 0; step < 50 && (id = client.open_stream(StreamDirection::bidirectional)) < 0; ++step) pair.step();
        REQUIRE(id >= 0);
        const auto stream = static_cast<StreamId>(id);
        REQUIRE(client.send_message(stream, message, sizeof message) == 0);
        REQUIRE(client.finish(stream) == 0);
        bool echoed = false, ended = false;
        for (int step = 0; step < 200 && !ended; ++step) {
            pair.step();
            StreamId readable = 0;
            while (server.next_readable(readable)) {
                const std::uint8_t* data = nullptr;
                std::size_t length = 0;
                int rc = 0;
                while ((rc = server.next_message(readable, data, length)) == 1) {
                    REQUIRE(server.send_message(readable, data, length) == 0);
                    (void)server.release_message(readable);
                }
                if (rc == -ENODATA) REQUIRE(server.finish(readable) == 0);
            }
            const std::uint8_t* data = nullptr;
            std::size_t length = 0;
            const int rc = client.next_message(stream, data, length);
            if (rc == 1) {
                echoed = true;
                (void)client.release_message(stream);
            }
            // The end: -ENODATA, or -ENOENT once releasing the last message (after the FIN) closed the stream.
            if (rc == -ENODATA || rc == -ENOENT) ended = true;
        }
        REQUIRE(echoed);
        REQUIRE(ended);
    }
    CHECK(pair.client->unhandled_frames() == 0);
}
