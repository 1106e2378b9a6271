// The QUIC C API's per-message calls allocate nothing in steady state: over an established connection, 5000
// messages each way through cf_quic_channel_send / cf_quic_*_poll / cf_quic_channel_poll / cf_quic_channel_release,
// plus acquire and release of the pooled connection, with every heap call counted (tests/libc_allocation_hooks.cpp).
// In C++ only to reach the counting hooks; tests/c/quic_test.c checks the same calls' results from C.
#include <doctest/doctest.h>

#include <chrono>
#include <cstring>
#include <string>

#include "chronofabric/chronofabric.h"
#include "tests/libc_allocation_hooks.hpp"
#include "tests/quic/test_pki.hpp"

namespace {

thread_local constinit bool tl_counting = false;
thread_local constinit std::uint64_t tl_allocations = 0;

}  // namespace

extern "C" void cf_test_on_allocation() noexcept {
    if (tl_counting) ++tl_allocations;
}

namespace {

using cf::quic::test::pki;

// Polls both until `done` (a deadline against a hang, not a measurement).
template <class Done>
bool poll_until(cf_quic_listener_t* listener, cf_quic_client_t* client, Done done) {
    const auto end = std::chrono::steady_clock::now() + std::chrono::seconds(5);
    while (std::chrono::steady_clock::now() < end) {
        (void)cf_quic_listener_poll(listener);
        (void)cf_quic_client_poll(client);
        if (done()) return true;
    }
    return false;
}

}  // namespace

TEST_CASE("quic C API: send, poll, release, acquire allocate nothing per message") {
    const std::string certificate = pki().path("server.pem"), key = pki().path("server.key"),
                      ca = pki().path("ca.pem");
    cf_quic_config_t config;
    cf_quic_config_init(&config);
    config.bind = "127.0.0.1:0";
    config.certificate_file = certificate.c_str();
    config.key_file = key.c_str();
    cf_quic_listener_t* listener = nullptr;
    REQUIRE_MESSAGE(cf_quic_listener_create(&config, &listener) == CF_OK, cf_last_error_message());
    char address[64];
    REQUIRE(cf_quic_listener_local_address(listener, address, sizeof address) == CF_OK);
    cf_quic_config_init(&config);
    config.bind = "127.0.0.1:0";
    config.ca_file = ca.c_str();
    config.server_name = "localhost";
    cf_quic_client_t* client = nullptr;
    REQUIRE_MESSAGE(cf_quic_client_create(&config, &client) == CF_OK, cf_last_error_message());
    std::uint32_t peer = 0;
    REQUIRE(cf_quic_client_add_peer(client, address, nullptr, &peer) == CF_OK);

    cf_quic_connection_t* connection = nullptr;
    cf_quic_connection_t* accepted = nullptr;
    REQUIRE(poll_until(listener, client, [&] { return cf_quic_connection_acquire(client, peer, &connection) == 0; }));
    REQUIRE(poll_until(listener, client, [&] { return cf_quic_listener_accept(listener, &accepted) == 0; }));
    std::uint64_t channel = 0;
    REQUIRE(cf_quic_channel_open(connection, &channel) == CF_OK);

    // Sends `count` 64-byte messages client -> server, each echoed back; returns how many echoes came back intact.
    const auto round_trips = [&](int count) {
        int sent = 0, echoed = 0, wrong = 0;
        std::uint8_t message[64];
        const auto end = std::chrono::steady_clock::now() + std::chrono::seconds(10);
        while (echoed < count && std::chrono::steady_clock::now() < end) {
            if (sent < count) {
                std::memset(message, sent & 0xff, sizeof message);
                if (cf_quic_channel_send(connection, channel, message, sizeof message) == CF_OK) ++sent;
            }
            (void)cf_quic_client_poll(client);
            (void)cf_quic_listener_poll(listener);
            std::uint64_t got = 0;
            const std::uint8_t* data = nullptr;
            std::size_t length = 0;
            while (cf_quic_channel_poll(accepted, &got, &data, &length) == 1) {
                // The echo may find no room for a moment; then it goes on the next turn's poll (kept simple: spin).
                while (cf_quic_channel_send(accepted, got, data, length) == CF_EAGAIN) {
                    (void)cf_quic_listener_poll(listener);
                    (void)cf_quic_client_poll(client);
                }
                (void)cf_quic_channel_release(accepted, got);
            }
            while (cf_quic_channel_poll(connection, &got, &data, &length) == 1) {
                wrong += length != sizeof message || data[0] != static_cast<std::uint8_t>(echoed & 0xff);
                (void)cf_quic_channel_release(connection, got);
                ++echoed;
            }
        }
        CHECK(wrong == 0);
        return echoed;
    };
    CHECK(round_trips(1000) == 1000);   // warm-up: windows, rings and timers settle

    tl_allocations = 0;
    tl_counting = true;
    const int echoed = round_trips(5000);
    int pool_failures = 0;
    for (int i = 0; i < 1000; ++i) {
        pool_failures += cf_quic_connection_release(connection) != CF_OK;
        pool_failures += cf_quic_connection_acquire(client, peer, &connection) != CF_OK;
    }
    tl_counting = false;
    CHECK(echoed == 5000);
    CHECK(pool_failures == 0);
    MESSAGE("allocator calls over 5000 round trips and 1000 release/acquire pairs: " << tl_allocations);
    CHECK(tl_allocations == 0);

    CHECK(cf_quic_connection_release(connection) == CF_OK);
    CHECK(cf_quic_connection_release(accepted) == CF_OK);
    CHECK(cf_quic_client_destroy(client) == CF_OK);
    CHECK(cf_quic_listener_destroy(listener) == CF_OK);
}
