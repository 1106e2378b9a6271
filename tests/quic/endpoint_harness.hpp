// What the endpoint tests share: TLS contexts from the test PKI, endpoints on loopback with a chosen driver and
// batching, and polling until a condition holds (a wall-clock deadline, never a measurement).
#pragma once

#include <doctest/doctest.h>

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>

#include "engine/quic/endpoint.hpp"
#include "platform/os/last_error.hpp"
#include "tests/quic/test_pki.hpp"

namespace cf::quic::test {

inline std::uint64_t now_ns() {
    const auto since_epoch = std::chrono::steady_clock::now().time_since_epoch();
    return static_cast<std::uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(since_epoch).count());
}

inline TransportParameters endpoint_parameters() {
    TransportParameters p;
    p.max_idle_timeout_ms = 30000;
    p.initial_max_data = 1 << 20;
    p.initial_max_stream_data_bidi_local = 1 << 18;
    p.initial_max_stream_data_bidi_remote = 1 << 18;
    p.initial_max_stream_data_uni = 1 << 18;
    p.initial_max_streams_bidi = 100;
    p.initial_max_streams_uni = 3;
    return p;
}

inline std::unique_ptr<TlsContext> tls(EndpointRole role, const std::string& alpn) {
    TlsConfig config;
    config.role = role;
    config.alpn = {alpn};
    if (role == EndpointRole::server) {
        config.certificate_file = pki().path("server.pem");
        config.key_file = pki().path("server.key");
    } else {
        config.ca_file = pki().path("ca.pem");
        config.server_name = "localhost";
    }
    std::unique_ptr<TlsContext> context;
    REQUIRE_MESSAGE(TlsContext::create(config, context) == 0, cf::platform::last_error_message());
    return context;
}

struct EndpointOptions {
    drivers::DriverKind driver = drivers::DriverKind::socket;
    bool retry = false;
    bool batching = false;   // GSO sends and GRO receives, with 64 KiB driver buffers
    const char* bind = "127.0.0.1:0";
};

inline EndpointConfig endpoint_config(const TlsContext& context, const EndpointOptions& options = {}) {
    EndpointConfig config;
    config.retry = options.retry;
    config.driver = options.driver;
    REQUIRE(drivers::PeerAddress::parse(options.bind, config.udp.bind) == 0);
    config.udp.pool.count = 256;
    config.udp.rx_posted = 128;   // io_uring keeps these posted for receive; the rest are for sending
    config.udp.pool.prefer_hugepages = false;
    if (options.batching) {
        config.udp.gso = true;
        config.udp.gro = true;
        config.udp.pool.count = 128;
        config.udp.pool.buffer_bytes = 65536;
        config.udp.rx_posted = 32;
    }
    config.connection.tls = &context;
    config.connection.parameters = endpoint_parameters();
    return config;
}

inline std::unique_ptr<Endpoint> endpoint(const TlsContext& context, const EndpointOptions& options = {}) {
    std::unique_ptr<Endpoint> out;
    REQUIRE_MESSAGE(Endpoint::open(endpoint_config(context, options), out) == 0, cf::platform::last_error_message());
    return out;
}

// Polls until `done` or `seconds` passed.
template <class Done>
bool poll_until(std::initializer_list<Endpoint*> endpoints, double seconds, Done done) {
    const auto end = std::chrono::steady_clock::now() + std::chrono::duration<double>(seconds);
    while (std::chrono::steady_clock::now() < end) {
        for (Endpoint* e : endpoints) (void)e->poll(now_ns());
        if (done()) return true;
    }
    return false;
}

// A client connected to a server, both confirmed (REQUIREd).
inline Connection& connect_pair(Endpoint& client, Endpoint& server) {
    Connection* connection = nullptr;
    REQUIRE_MESSAGE(client.connect(server.local_address(), now_ns(), connection) == 0,
                    cf::platform::last_error_message());
    const bool confirmed = poll_until({&client, &server}, 10.0, [&] {
        return connection->handshake_confirmed() && server.connections() == 1 &&
               server.connection(0)->handshake_confirmed();
    });
    INFO("client: ", std::string(connection_state_name(connection->state())), " ", connection->error_message(),
         "; datagrams client sent ", client.stats().datagrams_sent, " received ", client.stats().datagrams_received,
         ", server sent ", server.stats().datagrams_sent, " received ", server.stats().datagrams_received,
         ", send failures ", client.stats().send_failures, "/", server.stats().send_failures);
    REQUIRE(confirmed);
    return *connection;
}

}  // namespace cf::quic::test
