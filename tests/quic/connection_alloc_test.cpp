// Heap allocations of an established connection in steady state: a client and a server in memory exchange 64 B
// messages on one long-lived stream and their echoes, and every call into the allocator on the test's thread is
// counted (tests/libc_allocation_hooks.cpp). The handshake allocates (GnuTLS, the connection's tables); the
// messages after it must not. Under a sanitizer, whose runtime replaces malloc itself, the count is skipped.
#include <doctest/doctest.h>

#include <cstdint>

#include "engine/quic/connection.hpp"
#include "tests/libc_allocation_hooks.hpp"
#include "tests/quic/connection_pair.hpp"

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define CF_QUIC_CONNECTION_ALLOC_SANITIZED 1
#else
#define CF_QUIC_CONNECTION_ALLOC_SANITIZED 0
#endif

namespace {
thread_local constinit bool tl_counting = false;
thread_local constinit std::uint64_t tl_allocations = 0;
}  // namespace

extern "C" void cf_test_on_allocation() noexcept {
    if (tl_counting) ++tl_allocations;
}

using namespace cf::quic;

TEST_CASE("connection allocations: none per message in steady state, 10^5 messages and their echoes") {
    if (CF_QUIC_CONNECTION_ALLOC_SANITIZED) {
        MESSAGE("skipped: this build has a sanitizer runtime, which replaces malloc itself; the normal build counts.");
        return;
    }
    test::Pair pair;
    pair.run();
    REQUIRE(pair.server != nullptr);
    REQUIRE(pair.client->handshake_confirmed());
    StreamTable& client = pair.client->streams();
    StreamTable& server = pair.server->streams();
    const std::int64_t opened = client.open_stream(StreamDirection::bidirectional);
    REQUIRE(opened >= 0);
    const auto id = static_cast<StreamId>(opened);
    const std::uint8_t message[64] = {7};
    std::uint64_t echoed = 0;
    const auto exchange = [&](std::uint64_t messages) {
        for (std::uint64_t i = 0; i < messages; ++i) {
            if (client.send_message(id, message, sizeof message) != 0) return false;
            for (int step = 0; step < 8; ++step) {
                pair.step();
                const std::uint8_t* data = nullptr;
                std::size_t length = 0;
                StreamId readable = 0;
                while (server.next_readable(readable)) {
                    while (server.next_message(readable, data, length) == 1) {
                        if (server.send_message(readable, data, length) != 0) return false;
                        (void)server.release_message(readable);
                    }
                }
                if (client.next_message(id, data, length) == 1) {
                    ++echoed;
                    (void)client.release_message(id);
                    break;
                }
            }
        }
        return true;
    };
    REQUIRE(exchange(1000));   // warm-up: first use of every path
    const std::uint64_t warm = echoed;
    tl_allocations = 0;
    tl_counting = true;
    const bool ok = exchange(100000);
    tl_counting = false;
    REQUIRE(ok);
    CHECK(echoed - warm == 100000);
    CHECK(tl_allocations == 0);
    MESSAGE("allocator calls over 10^5 round trips: " << tl_allocations);
}
