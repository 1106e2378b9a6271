// Endpoints on loopback: a server restarted on its port (every connection's state lost, the reset key kept) resets
// its old client, which closes with the reset's reason; resets are smaller than their triggers and within the
// budget; and connection IDs against ngtcp2's gtlsserver / gtlsclient when installed (each under a second or two).
#include <doctest/doctest.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/time.h>

#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include "engine/quic/endpoint.hpp"
#include "engine/quic/stateless_reset.hpp"
#include "tests/quic/endpoint_test_support.hpp"

using namespace cf::quic;
using namespace cf::quic::test;

namespace {

StatelessResetKey::Key fixed_key() {
    StatelessResetKey::Key key;
    for (std::size_t i = 0; i < key.size(); ++i) key[i] = static_cast<std::uint8_t>(0x5a ^ (i * 7));
    return key;
}

}  // namespace

TEST_CASE("endpoint: a server restarted on its port resets its old client, which closes with the reset's reason") {
    const auto client_tls = tls_context(EndpointRole::client, "cf-test");
    const auto server_tls = tls_context(EndpointRole::server, "cf-test");
    const auto keyed = [](EndpointConfig& config) { config.stateless_reset_key = fixed_key(); };
    auto server = open_endpoint(*server_tls, "127.0.0.1:0", keyed);
    auto client = open_endpoint(*client_tls, "127.0.0.1:0", [](EndpointConfig&) {});
    Connection* connection = nullptr;
    REQUIRE(client->connect(server->local_address(), steady_now_ns(), connection) == 0);
    // Confirmed, and the server's NEW_CONNECTION_ID frames arrived.
    REQUIRE(poll_endpoints_until({client.get(), server.get()}, 10.0, [&] {
        return connection->handshake_confirmed() && server->connections() == 1 &&
               connection->peer_cids().active() == 4 && !server->connection(0)->local_cids().wants_to_send();
    }));
    SUBCASE("to the server's handshake ID (its token came as a transport parameter)") {}
    SUBCASE("to an ID from NEW_CONNECTION_ID, after the server routed packets to it and retired the old one") {
        const ConnectionId old_dcid = connection->peer_cid();
        REQUIRE(connection->switch_peer_cid() == 0);
        Connection* accepted = server->connection(0);
        connection->send_ping();
        CHECK(poll_endpoints_until({client.get(), server.get()}, 5.0, [&] {
            return accepted->local_cids().next_sequence() == 5 && !accepted->owns_cid(old_dcid.bytes()) &&
                   !connection->peer_cids().wants_to_send();
        }));
        CHECK(accepted->owns_cid(connection->peer_cid().bytes()));
        CHECK_FALSE(accepted->closed());
    }
    const cf::drivers::PeerAddress address = server->local_address();
    server.reset();   // every connection's state is gone
    auto restarted = open_endpoint(*server_tls, "127.0.0.1:0", [&](EndpointConfig& config) {
        config.udp.bind = address;
        config.stateless_reset_key = fixed_key();
    });
    connection->send_ping();
    const bool closed = poll_endpoints_until({client.get(), restarted.get()}, 5.0, [&] { return connection->closed(); });
    INFO("client: ", connection_state_name(connection->state()), " ", connection->error_message());
    REQUIRE(closed);
    CHECK(connection->reset_by_peer());
    CHECK(connection->state() == ConnectionState::draining);
    CHECK(connection->error_message().find("stateless reset") != std::string::npos);
    CHECK(client->stats().stateless_resets_received == 1);
    CHECK(restarted->stats().stateless_resets_sent >= 1);
    CHECK(restarted->stats().unmatched_datagrams >= 1);
    CHECK(restarted->connections() == 0);
}

TEST_CASE("endpoint: a server restarted with a new key sends resets its old client cannot take as one") {
    const auto client_tls = tls_context(EndpointRole::client, "cf-test");
    const auto server_tls = tls_context(EndpointRole::server, "cf-test");
    auto server = open_endpoint(*server_tls, "127.0.0.1:0", [](EndpointConfig&) {});   // a random key
    auto client = open_endpoint(*client_tls, "127.0.0.1:0", [](EndpointConfig&) {});
    Connection* connection = nullptr;
    REQUIRE(client->connect(server->local_address(), steady_now_ns(), connection) == 0);
    REQUIRE(poll_endpoints_until({client.get(), server.get()}, 10.0, [&] {
        return connection->handshake_confirmed() && server->connections() == 1;
    }));
    const cf::drivers::PeerAddress address = server->local_address();
    server.reset();
    auto restarted = open_endpoint(*server_tls, "127.0.0.1:0",
                                   [&](EndpointConfig& config) { config.udp.bind = address; });
    connection->send_ping();
    CHECK(poll_endpoints_until({client.get(), restarted.get()}, 5.0,
                               [&] { return restarted->stats().stateless_resets_sent >= 1; }));
    (void)poll_endpoints_until({client.get(), restarted.get()}, 0.2, [] { return false; });
    CHECK_FALSE(connection->reset_by_peer());
    CHECK(client->stats().stateless_resets_received == 0);
    CHECK(client->stats().unmatched_datagrams >= 1);
}

TEST_CASE("endpoint: stateless resets are smaller than their trigger, at least 21 bytes, and within the budget") {
    const auto server_tls = tls_context(EndpointRole::server, "cf-test");
    auto server = open_endpoint(*server_tls, "127.0.0.1:0", [](EndpointConfig& config) {
        config.stateless_reset_key = fixed_key();
        config.stateless_resets_per_second = 5;
    });
    const int fd = socket(AF_INET, SOCK_DGRAM, 0);
    REQUIRE(fd >= 0);
    sockaddr_in local{};
    local.sin_family = AF_INET;
    local.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    REQUIRE(bind(fd, reinterpret_cast<sockaddr*>(&local), sizeof local) == 0);
    const auto& to = server->local_address();
    // Short headers for IDs the server never had: 21 bytes (too small to answer), then sizes that give 21, 29 and
    // 43 (the cap), then more than the budget of 5 allows; and a long header, which is never answered with one.
    const std::size_t sizes[] = {21, 22, 30, 100, 100, 100, 100, 100};
    StatelessResetKey key;
    key.open(fixed_key());
    std::vector<StatelessResetToken> expected_tokens;
    for (std::size_t i = 0; i < std::size(sizes); ++i) {
        std::uint8_t datagram[100] = {};
        datagram[0] = 0x41;
        for (std::size_t b = 1; b < sizes[i]; ++b) datagram[b] = static_cast<std::uint8_t>(i * 31 + b);
        ConnectionId dcid;
        REQUIRE(dcid.assign(datagram + 1, 8));
        StatelessResetToken token;
        REQUIRE(key.token(dcid, token) == 0);
        expected_tokens.push_back(token);
        REQUIRE(sendto(fd, datagram, sizes[i], 0, &to.addr.any, to.length) == static_cast<ssize_t>(sizes[i]));
    }
    // (In a version we do not speak and under 1200 bytes, so no Version Negotiation either.)
    std::uint8_t long_header[100] = {0xc0, 0xfa, 0xce, 0xb0, 0x0c};
    REQUIRE(sendto(fd, long_header, sizeof long_header, 0, &to.addr.any, to.length) == sizeof long_header);
    // One fixed `now`: the budget's second never rolls over, whatever the machine's speed.
    const std::uint64_t now = steady_now_ns();
    for (int i = 0; i < 200000 && server->stats().datagrams_received < std::size(sizes) + 1; ++i) (void)server->poll(now);
    REQUIRE(server->stats().datagrams_received == std::size(sizes) + 1);
    CHECK(server->stats().unmatched_datagrams == std::size(sizes) + 1);
    CHECK(server->stats().version_negotiations_sent == 0);
    CHECK(server->stats().stateless_resets_sent == 5);
    CHECK(server->stats().stateless_resets_suppressed == 2);
    timeval wait{1, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &wait, sizeof wait);
    const std::size_t expected_sizes[] = {21, 29, 43, 43, 43};
    for (std::size_t i = 0; i < std::size(expected_sizes); ++i) {
        std::uint8_t reset[128];
        const ssize_t got = recv(fd, reset, sizeof reset, 0);
        INFO("reset ", i);
        REQUIRE(got == static_cast<ssize_t>(expected_sizes[i]));
        CHECK((reset[0] & 0xc0) == 0x40);   // looks like a short header packet
        CHECK(std::memcmp(reset + got - 16, expected_tokens[i + 1].bytes.data(), 16) == 0);
    }
    wait = {0, 200'000};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &wait, sizeof wait);
    std::uint8_t more[128];
    CHECK(recv(fd, more, sizeof more, 0) < 0);   // nothing else: not for 21 bytes, over budget, or long headers
    close(fd);
}

TEST_CASE("interop: our client takes gtlsserver's NEW_CONNECTION_ID frames and moves to a fresh ID") {
    AgainstGtlsServer run({}, "gtlsserver-cid.log");
    if (run.connection == nullptr) return;
    Connection* connection = run.connection;
    Endpoint* client = run.client.get();
    const bool got_ids = poll_endpoints_until({client}, 10.0, [&] {
        return connection->closed() || (connection->handshake_confirmed() && connection->peer_cids().active() >= 2);
    });
    INFO("client: ", connection_state_name(connection->state()), " ", connection->error_code(), " ",
         connection->error_message());
    CHECK(got_ids);
    CHECK_FALSE(connection->closed());
    if (got_ids && !connection->closed()) {
        const ConnectionId before = connection->peer_cid();
        REQUIRE(connection->switch_peer_cid() == 0);
        CHECK(connection->peer_cid() != before);
        const std::uint64_t received = connection->packets_received();
        connection->send_ping();
        // gtlsserver answers on the new ID (the acknowledgement of our PING) and takes our retirement.
        CHECK(poll_endpoints_until({client}, 5.0, [&] {
            return connection->packets_received() > received && !connection->peer_cids().wants_to_send();
        }));
        (void)poll_endpoints_until({client}, 0.3, [] { return false; });
        CHECK_FALSE(connection->closed());
        CHECK(connection->unhandled_frames() == 0);
    }
}

TEST_CASE("interop: gtlsclient takes our server's NEW_CONNECTION_ID frames and gives its own") {
    const std::string gtlsclient = installed_program("gtlsclient");
    if (gtlsclient.empty()) {
        MESSAGE("SKIPPED: gtlsclient not installed (Debian ngtcp2-client)");
        return;
    }
    const auto server_tls = tls_context(EndpointRole::server, "h3");
    auto server = open_endpoint(*server_tls, "127.0.0.1:0", [](EndpointConfig&) {});
    const std::string port = std::to_string(server->local_address().port());
    const std::string log = pki().path("gtlsclient-cid.log");
    // It waits for a response we never give; we close once the IDs went both ways.
    const pid_t pid = spawn_program({gtlsclient, "-q", "127.0.0.1", port, "https://localhost:" + port + "/"}, log);
    const bool exchanged = poll_endpoints_until({server.get()}, 10.0, [&] {
        if (server->connections() != 1) return false;
        const Connection& c = *server->connection(0);
        return c.closed() || (c.handshake_confirmed() && c.peer_cids().active() >= 2 &&
                              !c.local_cids().wants_to_send() && c.recovery().bytes_in_flight() == 0);
    });
    INFO("gtlsclient log: ", log);
    CHECK(exchanged);
    if (server->connections() == 1) {
        Connection& connection = *server->connection(0);
        INFO("server: ", connection_state_name(connection.state()), " ", connection.error_code(), " ",
             connection.error_message());
        CHECK_FALSE(connection.closed());
        CHECK(connection.local_cids().active() >= 2);
        connection.close(0x100, true, "");   // H3_NO_ERROR: we do not serve HTTP/3 yet
        (void)poll_endpoints_until({server.get()}, 0.3, [] { return false; });
    }
    stop_program(pid);
}
