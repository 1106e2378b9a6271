// The endpoint on both drivers (sockets and io_uring) and with batching (GSO sends, GRO receives): a bulk transfer
// over one stream arrives intact, and with batching the datagrams really went out several to a send.
#include <doctest/doctest.h>

#include <cerrno>
#include <cstdint>
#include <string>
#include <vector>

#include "drivers/uring/udp_uring.hpp"
#include "tests/quic/endpoint_test_support.hpp"

using namespace cf::quic;
using namespace cf::quic::test;

namespace {

std::uint8_t pattern(std::uint64_t offset) {
    return static_cast<std::uint8_t>((offset * 131) ^ (offset >> 9));
}

struct TransferResult {
    std::uint64_t delivered = 0;
    std::uint64_t mismatches = 0;
    EndpointStats client, server;
    cf::drivers::DriverStats client_driver;
};

// `bytes` from a client to a server over one stream, the server checking every byte against the pattern.
TransferResult transfer(cf::drivers::DriverKind driver, bool batching, std::uint64_t bytes) {
    const auto client_tls = tls_context(EndpointRole::client, "cf-test");
    const auto server_tls = tls_context(EndpointRole::server, "cf-test");
    const auto tune = [&](EndpointConfig& config) {
        config.driver = driver;
        if (batching) enable_batching(config);
    };
    auto server = open_endpoint(*server_tls, tune);
    auto client = open_endpoint(*client_tls, tune);
    Connection& connection = connect_pair(*client, *server);
    Connection& accepted = *server->connection(0);
    const std::int64_t opened = connection.streams().open_stream(StreamDirection::unidirectional);
    REQUIRE(opened >= 0);
    const auto id = static_cast<StreamId>(opened);
    std::vector<std::uint8_t> chunk(16384);
    std::uint64_t written = 0;
    TransferResult result;
    const bool done = poll_endpoints_until({client.get(), server.get()}, 60.0, [&] {
        while (written < bytes) {
            const std::size_t want = static_cast<std::size_t>(std::min<std::uint64_t>(chunk.size(), bytes - written));
            for (std::size_t i = 0; i < want; ++i) chunk[i] = pattern(written + i);
            const std::int64_t taken = connection.streams().write(id, chunk.data(), want);
            if (taken <= 0) break;
            written += static_cast<std::uint64_t>(taken);
        }
        StreamId readable = 0;
        while (accepted.streams().next_readable(readable)) {
            StreamReadView view;
            while (accepted.streams().read(readable, view) == 0 && view.data.size() != 0) {
                const auto check = [&](const std::uint8_t* data, std::size_t size) {
                    for (std::size_t i = 0; i < size; ++i) {
                        result.mismatches += data[i] != pattern(result.delivered + i);
                    }
                    result.delivered += size;
                };
                check(view.data.first, view.data.first_size);
                check(view.data.second, view.data.second_size);
                REQUIRE(accepted.streams().consume(readable, view.data.size()) == 0);
            }
        }
        return result.delivered == bytes || connection.closed() || accepted.closed();
    });
    INFO("client: ", connection.error_message(), "; server: ", accepted.error_message());
    CHECK(done);
    result.client = client->stats();
    result.server = server->stats();
    result.client_driver = client->driver().stats();
    return result;
}

}  // namespace

TEST_CASE("endpoint batching: 4 MB over one stream with GSO sends and GRO receives, intact; datagrams coalesced") {
    constexpr std::uint64_t kBytes = 4 << 20;
    const TransferResult batched = transfer(cf::drivers::DriverKind::socket, true, kBytes);
    CHECK(batched.delivered == kBytes);
    CHECK(batched.mismatches == 0);
    // Most of 4 MB goes in full datagrams, and full datagrams ride several to a send.
    CHECK(batched.client.datagrams_coalesced > 0);
    CHECK(batched.client_driver.tx_packets > batched.client_driver.syscalls);
    CHECK(batched.server.datagrams_received >= kBytes / Connection::kMaxDatagramBytes);
}

TEST_CASE("endpoint on io_uring: 1 MB over one stream, without and with batching, intact") {
    char why[256];
    if (cf::drivers::uring_available(why, sizeof why) != 0) {
        MESSAGE("io_uring unavailable, test skipped: ", std::string(why));
        return;
    }
    constexpr std::uint64_t kBytes = 1 << 20;
    for (const bool batching : {false, true}) {
        CAPTURE(batching);
        const TransferResult result = transfer(cf::drivers::DriverKind::uring, batching, kBytes);
        CHECK(result.delivered == kBytes);
        CHECK(result.mismatches == 0);
        CHECK((result.client.datagrams_coalesced > 0) == batching);
    }
}

TEST_CASE("endpoint on io_uring: a pool that io_uring's posted receive buffers would use up is refused with a reason") {
    char why[256];
    if (cf::drivers::uring_available(why, sizeof why) != 0) {
        MESSAGE("io_uring unavailable, test skipped: ", std::string(why));
        return;
    }
    const auto server_tls = tls_context(EndpointRole::server, "cf-test");
    EndpointConfig config;
    config.driver = cf::drivers::DriverKind::uring;
    REQUIRE(cf::drivers::PeerAddress::parse("127.0.0.1:0", config.udp.bind) == 0);
    config.udp.pool.prefer_hugepages = false;
    config.udp.rx_posted = config.udp.pool.count;
    config.connection.tls = server_tls.get();
    std::unique_ptr<Endpoint> out;
    CHECK(Endpoint::open(config, out) == -EINVAL);
    CHECK(std::string(cf::platform::last_error_message()).find("rx_posted") != std::string::npos);
    CHECK(out == nullptr);
}
