// Two Connections, a client and a server, exchanging datagrams in memory (losses injected by dropping them), for the
// connection tests: the server is made from the client's first Initial, time advances 1 ms per step.
#pragma once

#include <doctest/doctest.h>

#include <algorithm>
#include <memory>
#include <random>
#include <vector>

#include "engine/quic/connection.hpp"
#include "engine/quic/packet_header.hpp"
#include "platform/os/last_error.hpp"
#include "tests/quic/test_pki.hpp"

namespace cf::quic::test {

inline ConnectionId cid(std::uint8_t seed, std::size_t length = 8) {
    ConnectionId id;
    std::uint8_t bytes[20];
    for (std::size_t i = 0; i < length; ++i) bytes[i] = static_cast<std::uint8_t>(seed + 17 * i);
    REQUIRE(id.assign(bytes, length));
    return id;
}

inline TransportParameters parameters() {
    TransportParameters p;
    p.max_idle_timeout_ms = 30000;
    p.initial_max_data = 1 << 20;
    p.initial_max_stream_data_bidi_local = 1 << 18;
    p.initial_max_stream_data_bidi_remote = 1 << 18;
    p.initial_max_streams_bidi = 16;
    return p;
}

struct Pair {
    std::unique_ptr<TlsContext> client_tls, server_tls;
    std::unique_ptr<Connection> client, server;
    ConnectionConfig server_config;
    std::mt19937_64 random{7};
    int drop_percent = 0;
    std::vector<std::uint8_t> buffer = std::vector<std::uint8_t>(Connection::kMaxDatagramBytes);
    bool client_silent_after_first = false;   // every client datagram after the first is lost
    ConnectionId server_cid = cid(0x20);       // the server's handshake connection ID (may be empty)
    std::size_t client_datagrams = 0;
    std::size_t datagrams = 0, dropped = 0;

    explicit Pair(TlsConfig client_settings = {}, TlsConfig server_settings = {}, const StreamTableConfig& streams = {}) {
        if (client_settings.alpn.empty()) {
            client_settings.role = EndpointRole::client;
            client_settings.ca_file = pki().path("ca.pem");
            client_settings.server_name = "localhost";
            client_settings.alpn = {"cf-test"};
        }
        if (server_settings.alpn.empty()) {
            server_settings.role = EndpointRole::server;
            server_settings.certificate_file = pki().path("server.pem");
            server_settings.key_file = pki().path("server.key");
            server_settings.alpn = {"cf-test"};
        }
        REQUIRE_MESSAGE(TlsContext::create(client_settings, client_tls) == 0, cf::platform::last_error_message());
        REQUIRE_MESSAGE(TlsContext::create(server_settings, server_tls) == 0, cf::platform::last_error_message());
        ConnectionConfig client_config;
        client_config.tls = client_tls.get();
        client_config.parameters = parameters();
        client_config.streams = streams;
        server_config.tls = server_tls.get();
        server_config.parameters = parameters();
        server_config.streams = streams;
        REQUIRE(Connection::connect(client_config, cid(0x10), cid(0xa0, 12), 0, client) == 0);
    }

    // One datagram from `from` to `to` (the server is made from the client's first one), maybe lost.
    bool move(Connection& from, std::unique_ptr<Connection>* to, std::uint64_t now) {
        std::uint8_t* const datagram = buffer.data();   // one buffer for every datagram: moving allocates nothing
        const std::size_t size = from.write_datagram(datagram, buffer.size(), now);
        if (size == 0) return false;
        ++datagrams;
        const bool from_client = &from == client.get();
        if (from_client && client_silent_after_first && client_datagrams++ > 0) {
            ++dropped;
            return true;
        }
        if (static_cast<int>(random() % 100) < drop_percent) {
            ++dropped;
            return true;
        }
        if (*to == nullptr) {
            PacketParseOptions options;
            options.receiver = EndpointRole::server;
            PacketHeader header;
            REQUIRE(parse_packet_header(datagram, size, options, header) == HeaderStatus::ok);
            REQUIRE(header.type == PacketType::initial);
            REQUIRE(Connection::accept(server_config, server_cid, ConnectionId::from(header.dcid),
                                       ConnectionId::from(header.scid), now, *to) == 0);
        }
        (*to)->receive_datagram(datagram, size, now);
        return true;
    }

    // Datagrams both ways (1 ms apart) until neither has anything to send; then time jumps to the next timer.
    std::uint64_t now = 1'000'000;
    void run(int max_rounds = 200) {
        for (int round = 0; round < max_rounds; ++round) {
            now += 1'000'000;
            bool moved = move(*client, &server, now);
            if (server != nullptr) moved |= move(*server, &client, now + 500'000);   // half a step later
            if (moved) continue;
            const bool done = server != nullptr && client->handshake_confirmed() && server->handshake_confirmed();
            // Done once nothing is owed: a delayed ACK still pending is sent first (its timer below).
            const bool acks_owed = client->ack_deadline() != UINT64_MAX ||
                                   (server != nullptr && server->ack_deadline() != UINT64_MAX);
            if ((done && !acks_owed) || client->closed() || (server != nullptr && server->closed())) return;
            std::uint64_t next = client->next_timeout();
            if (server != nullptr) next = std::min(next, server->next_timeout());
            if (next == UINT64_MAX) return;   // stuck with no timer: the test sees it
            if (next > now) now = next;
            ++timeouts;
            if (client->next_timeout() <= now) client->on_timeout(now);
            if (server != nullptr && server->next_timeout() <= now) server->on_timeout(now);
        }
    }
    std::size_t timeouts = 0;

    // One step of an established pair: datagrams both ways, or, when there are none, time jumps to the next timer.
    void step() {
        now += 1'000'000;
        bool moved = move(*client, &server, now);
        moved |= move(*server, &client, now + 500'000);
        if (moved) return;
        // Recovery and delayed-ACK timers only: jumping to the idle timer would end a test that is just idle.
        const std::uint64_t next = std::min({client->recovery().timer_deadline(), server->recovery().timer_deadline(),
                                             client->ack_deadline(), server->ack_deadline()});
        if (next == UINT64_MAX) return;
        if (next > now) now = next;
        ++timeouts;
        if (client->next_timeout() <= now) client->on_timeout(now);
        if (server->next_timeout() <= now) server->on_timeout(now);
    }
};

}  // namespace cf::quic::test
