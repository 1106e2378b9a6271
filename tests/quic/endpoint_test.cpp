// Endpoints on real UDP sockets over loopback: our client and our server, and (when the Debian packages
// ngtcp2-client / ngtcp2-server are installed) ngtcp2's gtlsserver and gtlsclient as the other end.
#include "engine/quic/endpoint.hpp"

#include <doctest/doctest.h>

#include <chrono>
#include <cstdio>
#include <deque>
#include <random>
#include <cstring>
#include <string>
#include <thread>

#include "engine/quic/address_token.hpp"
#include "engine/quic/packet_header.hpp"
#include "engine/quic/version_negotiation.hpp"
#include "platform/os/last_error.hpp"
#include "tests/quic/endpoint_test_support.hpp"
#include "tests/quic/lossy_relay.hpp"
#include "tests/quic/test_pki.hpp"

using namespace cf::quic;
using namespace cf::quic::test;

namespace {

// The path the loss tests use, in front of `server`: 10% loss each way, 5% reordered, 2% duplicated.
cf::quic::testing::LossyRelayConfig lossy_path(const Endpoint& server) {
    cf::quic::testing::LossyRelayConfig path;
    REQUIRE(cf::drivers::PeerAddress::parse("127.0.0.1:0", path.listen) == 0);
    path.server = server.local_address();
    for (auto* direction : {&path.to_server, &path.to_client}) {
        direction->loss_percent = 10;
        direction->reorder_percent = 5;
        direction->duplicate_percent = 2;
    }
    return path;
}

}  // namespace

TEST_CASE("endpoint: our client and our server complete a handshake over UDP on loopback and close") {
    const auto client_tls = tls_context(EndpointRole::client, "cf-test");
    const auto server_tls = tls_context(EndpointRole::server, "cf-test");
    auto server = open_endpoint(*server_tls);
    auto client = open_endpoint(*client_tls);
    Connection* connection = &connect_pair(*client, *server);
    CHECK(server->stats().connections_accepted == 1);
    CHECK(connection->tls().peer_authenticated());
    Connection* accepted = server->connection(0);
    connection->close(0, true, "done");
    REQUIRE(poll_endpoints_until({client.get(), server.get()}, 5.0, [&] { return accepted->closed_by_peer(); }));
    CHECK(accepted->error_message() == "done");
    // Closed connections give their slots back after the closing period.
    CHECK(poll_endpoints_until({client.get(), server.get()}, 5.0,
                     [&] { return client->connections() == 0 && server->connections() == 0; }));
}

TEST_CASE("endpoint: handshakes through the lossy relay: 10% loss each way, 5% reordered, 2% duplicated") {
    const auto client_tls = tls_context(EndpointRole::client, "cf-test");
    const auto server_tls = tls_context(EndpointRole::server, "cf-test");
    auto server = open_endpoint(*server_tls);
    auto client = open_endpoint(*client_tls);
    cf::quic::testing::LossyRelayConfig path = lossy_path(*server);
    for (std::uint64_t seed = 1; seed <= 5; ++seed) {
        path.seed = seed;
        std::unique_ptr<cf::quic::testing::LossyRelay> relay;
        REQUIRE_MESSAGE(cf::quic::testing::LossyRelay::create(path, relay) == 0, cf::platform::last_error_message());
        REQUIRE(relay->start() == 0);
        Connection* connection = nullptr;
        REQUIRE(client->connect(relay->listen_address(), steady_now_ns(), connection) == 0);
        const std::uint32_t accepted_before = static_cast<std::uint32_t>(server->stats().connections_accepted);
        const bool confirmed = poll_endpoints_until({client.get(), server.get()}, 20.0, [&] {
            return connection->handshake_confirmed() && server->stats().connections_accepted > accepted_before;
        });
        INFO("seed ", seed, ": ", connection_state_name(connection->state()), " ", connection->error_message());
        CHECK(confirmed);
        connection->close(0, true, "");
        (void)poll_endpoints_until({client.get(), server.get()}, 0.3, [] { return false; });
        relay->stop();
    }
}

TEST_CASE("endpoint: 1 MB of messages echoed over one stream through the lossy relay, intact and in order") {
    const auto client_tls = tls_context(EndpointRole::client, "cf-test");
    const auto server_tls = tls_context(EndpointRole::server, "cf-test");
    auto server = open_endpoint(*server_tls);
    auto client = open_endpoint(*client_tls);
    cf::quic::testing::LossyRelayConfig path = lossy_path(*server);
    std::unique_ptr<cf::quic::testing::LossyRelay> relay;
    REQUIRE(cf::quic::testing::LossyRelay::create(path, relay) == 0);
    REQUIRE(relay->start() == 0);
    Connection* connection = nullptr;
    REQUIRE(client->connect(relay->listen_address(), steady_now_ns(), connection) == 0);
    REQUIRE(poll_endpoints_until({client.get(), server.get()}, 20.0, [&] {
        return connection->handshake_confirmed() && server->connections() == 1 &&
               server->connection(0)->handshake_confirmed();
    }));
    Connection& accepted = *server->connection(0);
    const std::int64_t stream = connection->streams().open_stream(StreamDirection::bidirectional);
    REQUIRE(stream >= 0);
    const auto id = static_cast<StreamId>(stream);
    std::mt19937_64 random(2718);
    std::vector<std::vector<std::uint8_t>> messages(1000), echoed;
    for (auto& m : messages) {
        m.resize(1 + random() % 2000);   // about 1 MB in all
        for (auto& b : m) b = static_cast<std::uint8_t>(random());
    }
    std::deque<std::vector<std::uint8_t>> backlog;
    std::size_t sent = 0;
    const bool done = poll_endpoints_until({client.get(), server.get()}, 60.0, [&] {
        StreamTable& ours = connection->streams();
        StreamTable& theirs = accepted.streams();
        while (sent < messages.size() && ours.send_message(id, messages[sent].data(), messages[sent].size()) == 0) {
            ++sent;
        }
        StreamId readable = 0;
        const std::uint8_t* data = nullptr;
        std::size_t length = 0;
        while (theirs.next_readable(readable)) {
            while (theirs.next_message(readable, data, length) == 1) {
                backlog.emplace_back(data, data + length);
                (void)theirs.release_message(readable);
            }
        }
        while (!backlog.empty() && theirs.send_message(id, backlog.front().data(), backlog.front().size()) == 0) {
            backlog.pop_front();
        }
        while (ours.next_readable(readable)) {
            while (ours.next_message(readable, data, length) == 1) {
                echoed.emplace_back(data, data + length);
                (void)ours.release_message(readable);
            }
        }
        return echoed.size() == messages.size() || connection->closed() || accepted.closed();
    });
    const auto stats = relay->stats();
    relay->stop();
    INFO("echoed ", echoed.size(), " of ", messages.size(), "; client lost ", connection->recovery().stats().packets_lost,
         "; relay dropped ", stats.to_server.dropped_loss, " + ", stats.to_client.dropped_loss);
    REQUIRE(done);
    REQUIRE(echoed.size() == messages.size());
    for (std::size_t i = 0; i < messages.size(); ++i) REQUIRE(echoed[i] == messages[i]);
    CHECK(stats.to_server.dropped_loss + stats.to_client.dropped_loss > 50);   // the path really lost datagrams
    CHECK(connection->recovery().stats().packets_lost > 0);
}

TEST_CASE("endpoint: a server that requires address validation sends a Retry; the client follows it") {
    const auto client_tls = tls_context(EndpointRole::client, "cf-test");
    const auto server_tls = tls_context(EndpointRole::server, "cf-test");
    auto server = open_endpoint(*server_tls, [](EndpointConfig& config) { config.retry = true; });
    auto client = open_endpoint(*client_tls);
    Connection* connection = nullptr;
    REQUIRE(client->connect(server->local_address(), steady_now_ns(), connection) == 0);
    const bool confirmed = poll_endpoints_until({client.get(), server.get()}, 10.0, [&] {
        return connection->handshake_confirmed() && server->connections() == 1 &&
               server->connection(0)->handshake_confirmed();
    });
    INFO("client: ", connection_state_name(connection->state()), " ", connection->error_message());
    REQUIRE(confirmed);
    CHECK(connection->retried());
    CHECK(server->stats().retries_sent == 1);
    CHECK(server->stats().connections_accepted == 1);
    CHECK(server->stats().invalid_tokens == 0);
    // The server's parameters name both the client's first DCID and the Retry's SCID, and the client checked them.
    CHECK(connection->peer_parameters().retry_source_connection_id.has_value());
}

TEST_CASE("address tokens: accepted only from the same address, for the same connection ID, unaltered, in time") {
    AddressTokenIssuer issuer;
    REQUIRE(issuer.open(10'000'000'000) == 0);
    cf::drivers::PeerAddress client, other;
    REQUIRE(cf::drivers::PeerAddress::parse("192.0.2.1:4433", client) == 0);
    REQUIRE(cf::drivers::PeerAddress::parse("192.0.2.1:4434", other) == 0);
    ConnectionId odcid, scid, another;
    const std::uint8_t a[] = {1, 2, 3, 4, 5, 6, 7, 8, 9};
    const std::uint8_t b[] = {9, 9, 9, 9, 9, 9, 9, 9};
    const std::uint8_t c[] = {8, 8, 8, 8, 8, 8, 8, 8};
    REQUIRE(odcid.assign(a, sizeof a));
    REQUIRE(scid.assign(b, sizeof b));
    REQUIRE(another.assign(c, sizeof c));
    std::uint8_t token[AddressTokenIssuer::kMaxTokenBytes];
    const int size = issuer.issue(client, odcid, scid, 1'000, token, sizeof token);
    REQUIRE(size > 0);
    ConnectionId out;
    CHECK(issuer.check(token, static_cast<std::size_t>(size), client, scid, 2'000, out) == 0);
    CHECK(out == odcid);
    CHECK(issuer.check(token, static_cast<std::size_t>(size), other, scid, 2'000, out) == -EBADMSG);
    CHECK(issuer.check(token, static_cast<std::size_t>(size), client, another, 2'000, out) == -EBADMSG);
    CHECK(issuer.check(token, static_cast<std::size_t>(size), client, scid, 10'000'001'001, out) == -ETIMEDOUT);
    for (int i = 0; i < size; ++i) {
        token[i] ^= 0x10;
        CHECK(issuer.check(token, static_cast<std::size_t>(size), client, scid, 2'000, out) == -EBADMSG);
        token[i] ^= 0x10;
    }
    CHECK(issuer.check(token, static_cast<std::size_t>(size) - 1, client, scid, 2'000, out) == -EBADMSG);
    AddressTokenIssuer another_server;   // another key: nothing it did not issue passes
    REQUIRE(another_server.open(10'000'000'000) == 0);
    CHECK(another_server.check(token, static_cast<std::size_t>(size), client, scid, 2'000, out) == -EBADMSG);
}

TEST_CASE("endpoint: an Initial in a version we do not speak gets Version Negotiation listing version 1") {
    const auto server_tls = tls_context(EndpointRole::server, "cf-test");
    auto server = open_endpoint(*server_tls);
    const int fd = socket(AF_INET, SOCK_DGRAM, 0);
    REQUIRE(fd >= 0);
    std::vector<std::uint8_t> datagram(1200, 0);
    const std::uint8_t header[] = {0xc0, 0x0a, 0x0a, 0x0a, 0x0a, 8, 1, 2, 3, 4, 5, 6, 7, 8, 4, 0xa, 0xb, 0xc, 0xd};
    std::memcpy(datagram.data(), header, sizeof header);
    const auto& to = server->local_address();
    REQUIRE(sendto(fd, datagram.data(), datagram.size(), 0, &to.addr.any, to.length) == 1200);
    REQUIRE(poll_endpoints_until({server.get()}, 5.0, [&] { return server->stats().version_negotiations_sent == 1; }));
    std::uint8_t reply[1500];
    timeval wait{2, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &wait, sizeof wait);
    const ssize_t got = recv(fd, reply, sizeof reply, 0);
    close(fd);
    REQUIRE(got > 0);
    PacketParseOptions options;
    options.receiver = EndpointRole::client;
    PacketHeader vn;
    REQUIRE(parse_packet_header(reply, static_cast<std::size_t>(got), options, vn) == HeaderStatus::ok);
    REQUIRE(vn.type == PacketType::version_negotiation);
    CHECK(vn.dcid.size() == 4);   // our SCID echoed back
    CHECK(vn.scid.size() == 8);
    REQUIRE(vn.supported_version_count == 1);
    CHECK(vn.supported_version(0) == kVersion1);
    CHECK(server->connections() == 0);
}

TEST_CASE("endpoint: datagrams for no connection are dropped and counted") {
    const auto server_tls = tls_context(EndpointRole::server, "cf-test");
    auto server = open_endpoint(*server_tls);
    const int fd = socket(AF_INET, SOCK_DGRAM, 0);
    REQUIRE(fd >= 0);
    std::uint8_t junk[64] = {0x40, 1, 2, 3, 4, 5, 6, 7, 8};
    const auto& to = server->local_address();
    for (int i = 0; i < 10; ++i) REQUIRE(sendto(fd, junk, sizeof junk, 0, &to.addr.any, to.length) == sizeof junk);
    close(fd);
    CHECK(poll_endpoints_until({server.get()}, 5.0, [&] { return server->stats().unmatched_datagrams == 10; }));
    CHECK(server->connections() == 0);
}

namespace {


}  // namespace

TEST_CASE("interop: our client completes a handshake with ngtcp2's gtlsserver (HTTP/3 ALPN)") {
    AgainstGtlsServer run({});
    if (run.connection == nullptr) return;
    INFO("client: ", connection_state_name(run.connection->state()), " code ", run.connection->error_code(), " ",
         run.connection->error_message());
    CHECK(run.connection->handshake_confirmed());
    CHECK(run.connection->tls().peer_authenticated());
    CHECK(run.connection->tls().alpn() == "h3");
    CHECK_FALSE(run.connection->retried());
}

TEST_CASE("interop: our client follows gtlsserver's Retry (-V) and completes the handshake") {
    AgainstGtlsServer run({"-V"});
    if (run.connection == nullptr) return;
    INFO("client: ", connection_state_name(run.connection->state()), " code ", run.connection->error_code(), " ",
         run.connection->error_message());
    CHECK(run.connection->handshake_confirmed());
    CHECK(run.connection->retried());
}

TEST_CASE("interop: ngtcp2's gtlsclient completes a handshake with our server") {
    const std::string gtlsclient = installed_program("gtlsclient");
    if (gtlsclient.empty()) {
        MESSAGE("SKIPPED: gtlsclient not installed (Debian ngtcp2-client; toolchains/cf setup installs it)");
        return;
    }
    const auto server_tls = tls_context(EndpointRole::server, "h3");
    auto server = open_endpoint(*server_tls);
    const std::string port = std::to_string(server->local_address().port());
    const std::string log = pki().path("gtlsclient.log");
    const pid_t pid = spawn_program({gtlsclient, "-q", "--exit-on-first-stream-close", "127.0.0.1", port,
                             "https://localhost:" + port + "/"}, log);
    const bool confirmed = poll_endpoints_until({server.get()}, 10.0, [&] {
        return server->connections() == 1 && server->connection(0)->handshake_confirmed();
    });
    INFO("gtlsclient log: ", log);
    CHECK(confirmed);
    if (confirmed) {
        Connection& connection = *server->connection(0);
        CHECK(connection.tls().alpn() == "h3");
        connection.close(0x100, true, "");   // H3_NO_ERROR: we do not serve HTTP/3 yet
        (void)poll_endpoints_until({server.get()}, 0.5, [] { return false; });
    }
    stop_program(pid);
}

TEST_CASE("endpoint: a forged datagram with the right connection ID from elsewhere does not redirect the replies") {
    const auto client_tls = tls_context(EndpointRole::client, "cf-test");
    const auto server_tls = tls_context(EndpointRole::server, "cf-test");
    auto server = open_endpoint(*server_tls);
    auto client = open_endpoint(*client_tls);
    Connection* connection = &connect_pair(*client, *server);
    // An attacker on another socket sends short-header junk to the server connection's ID.
    const int fd = socket(AF_INET, SOCK_DGRAM, 0);
    REQUIRE(fd >= 0);
    sockaddr_in local{};
    local.sin_family = AF_INET;
    local.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    REQUIRE(bind(fd, reinterpret_cast<sockaddr*>(&local), sizeof local) == 0);
    std::uint8_t forged[64] = {0x40};
    std::memcpy(forged + 1, server->connection(0)->local_cid().data(), server->connection(0)->local_cid().size());
    const auto& to = server->local_address();
    REQUIRE(sendto(fd, forged, sizeof forged, 0, &to.addr.any, to.length) == sizeof forged);
    const std::uint64_t dropped_before = server->connection(0)->dropped_packets();
    REQUIRE(poll_endpoints_until({server.get()}, 5.0, [&] { return server->connection(0)->dropped_packets() > dropped_before; }));
    // The server's next packet still goes to the real client (before the client sends anything that could put the
    // address right again).
    server->connection(0)->send_ping();
    const std::uint64_t received_before = connection->packets_received();
    (void)poll_endpoints_until({server.get()}, 0.2, [] { return false; });
    CHECK(poll_endpoints_until({client.get()}, 5.0, [&] { return connection->packets_received() > received_before; }));
    std::uint8_t stray[128];
    timeval no_wait{0, 200'000};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &no_wait, sizeof no_wait);
    CHECK(recv(fd, stray, sizeof stray, 0) < 0);   // nothing was sent to the attacker
    close(fd);
}
