// cf-quic-message-costs [round trips] [batch] [socket|uring]: what a 64 B message costs on our QUIC UDP path besides
// time, for the quic scenario of cf-latency (which runs this program and reports its numbers as rows):
//   - heap allocator calls per message (malloc, calloc, realloc, free, memalign...): counted by the malloc
//     replacements of tests/libc_allocation_hooks.cpp, linked into this program only (cf-latency's alloc scenario
//     needs glibc's malloc as the process's own);
//   - system calls per message: the drivers' own counters (every recvmmsg, sendmmsg, ppoll or io_uring_enter they
//     make after open; nothing else on the path enters the kernel: the clock is the vDSO's, see the README for the
//     strace -c run that checks it).
// Two Endpoints on 127.0.0.1 on this one thread, one connection, one long-lived stream carrying length-prefixed
// messages, the server echoing each. Lock-step per round trip: the client queues `batch` messages (1 by default),
// the server polls until all of them are in, echoes them, the client polls until every echo is in; so every poll
// finds its datagrams at once (loopback delivers during the send) and the counts say what the path needs, not how
// long something spun. With a batch, the messages of a round share datagrams and system calls: the steady state of
// a sender with more than one message in flight.
// The counts cover `round trips` rounds after 2000 of warm-up (connection windows, rings and pools settled).
// Output, one line: round_trips=N messages=M heap_calls=A client_syscalls=S server_syscalls=S datagrams=D
// heap_counted=0|1 (0 in a sanitizer build, whose runtime owns malloc: nothing is counted there); exit status 0,
// 1 with a message on stderr, or 2 for a bad argument. With uring where the kernel forbids io_uring, it says so
// and exits 3.
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>

#include "bench/cf-latency/quic_bench_certificate.hpp"
#include "drivers/uring/udp_uring.hpp"
#include "engine/quic/endpoint.hpp"
#include "engine/quic/tls_context.hpp"
#include "platform/os/last_error.hpp"
#include "tests/libc_allocation_hooks.hpp"

namespace {

constinit std::atomic<std::uint64_t> heap_calls{0};

std::uint64_t now_ns() {
    const auto since = std::chrono::steady_clock::now().time_since_epoch();
    return static_cast<std::uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(since).count());
}

int fail(const std::string& what) {
    std::fprintf(stderr, "cf-quic-message-costs: %s\n", what.c_str());
    return 1;
}

}  // namespace

extern "C" void cf_test_on_allocation() noexcept { heap_calls.fetch_add(1, std::memory_order_relaxed); }

using namespace cf::quic;

namespace {

std::unique_ptr<Endpoint> open_endpoint(const TlsContext& tls, cf::drivers::DriverKind driver) {
    EndpointConfig config;
    config.driver = driver;
    (void)cf::drivers::PeerAddress::parse("127.0.0.1:0", config.udp.bind);
    config.udp.pool.count = 256;
    config.udp.rx_posted = 128;   // io_uring: posted for receive, the rest for sending
    config.udp.pool.prefer_hugepages = false;
    config.max_connections = 4;
    config.connection.tls = &tls;
    config.connection.parameters.max_idle_timeout_ms = 30000;
    std::unique_ptr<Endpoint> endpoint;
    return Endpoint::open(config, endpoint) == 0 ? std::move(endpoint) : nullptr;
}

// Polls `endpoint` until `arrived` says the message is there (false after a second). After 1 ms without it the
// other end is polled too: a datagram was lost (a full receive buffer), and only its sender's timer sends it again.
template <class Arrived>
bool poll_until(Endpoint& endpoint, Endpoint& other, Arrived arrived) {
    const std::uint64_t start = now_ns();
    do {
        (void)endpoint.poll(now_ns());
        if (arrived()) return true;
        if (now_ns() - start > 1'000'000) (void)other.poll(now_ns());
    } while (now_ns() - start < 1'000'000'000);
    return false;
}

}  // namespace

int main(int argc, char** argv) {
    const long round_trips = argc > 1 ? std::strtol(argv[1], nullptr, 10) : 20000;
    const long batch = argc > 2 ? std::strtol(argv[2], nullptr, 10) : 1;
    const std::string driver_name = argc > 3 ? argv[3] : "socket";
    cf::drivers::DriverKind driver{};
    if (round_trips <= 0 || round_trips > 100'000'000 || batch <= 0 || batch > 256 ||
        (driver_name != "socket" && driver_name != "uring") ||
        cf::drivers::parse_driver_kind(driver_name.c_str(), driver) != 0) {
        std::fprintf(stderr, "usage: cf-quic-message-costs [round trips: 1 to 10^8] [batch: 1 to 256] [socket|uring]\n");
        return 2;
    }
    if (driver == cf::drivers::DriverKind::uring) {
        char why[256];
        if (cf::drivers::uring_available(why, sizeof why) != 0) {
            std::fprintf(stderr, "cf-quic-message-costs: io_uring unavailable: %s\n", why);
            return 3;
        }
    }
    const cf::latency::BenchCertificate certificate;
    std::unique_ptr<TlsContext> client_tls, server_tls;
    if (cf::latency::make_bench_tls(certificate, client_tls, server_tls) != 0) {
        return fail(cf::platform::last_error_message());
    }
    auto server = open_endpoint(*server_tls, driver);
    auto client = open_endpoint(*client_tls, driver);
    if (server == nullptr || client == nullptr) return fail(cf::platform::last_error_message());

    Connection* connection = nullptr;
    if (client->connect(server->local_address(), now_ns(), connection) != 0) {
        return fail(cf::platform::last_error_message());
    }
    for (const std::uint64_t deadline = now_ns() + 5'000'000'000; !connection->handshake_confirmed();) {
        (void)client->poll(now_ns());
        (void)server->poll(now_ns());
        if (connection->closed() || now_ns() > deadline) return fail("the handshake did not complete");
    }
    const std::int64_t opened = connection->streams().open_stream(StreamDirection::bidirectional);
    if (opened < 0) return fail("no stream");
    const auto stream = static_cast<StreamId>(opened);
    StreamTable& table = connection->streams();
    std::uint8_t message[64];
    std::memset(message, 0x5a, sizeof message);

    const std::uint8_t* data = nullptr;
    std::size_t length = 0;
    // The server's side: every message that came in goes back on its stream; how many.
    long echoed = 0;
    auto echo = [&]() {
        for (std::uint32_t i = 0; i < server->capacity(); ++i) {
            Connection* peer = server->connection(i);
            if (peer == nullptr || peer->closed()) continue;
            StreamTable& streams = peer->streams();
            for (StreamId id = 0; streams.next_readable(id);) {
                while (streams.next_message(id, data, length) == 1) {
                    echoed += streams.send_message(id, data, length) == 0;
                    (void)streams.release_message(id);
                }
            }
        }
        return echoed == batch;
    };
    long returned = 0;
    auto take_echoes = [&]() {
        while (table.next_message(stream, data, length) == 1) {
            ++returned;
            (void)table.release_message(stream);
        }
        return returned == batch;
    };
    auto round_trip = [&]() {
        for (long i = 0; i < batch; ++i) {
            if (table.send_message(stream, message, sizeof message) != 0) return false;
        }
        echoed = returned = 0;
        if (!poll_until(*client, *server, [] { return true; })) return false;   // sends them
        if (!poll_until(*server, *client, echo)) return false;
        (void)server->poll(now_ns());                                          // sends the echoes
        return poll_until(*client, *server, take_echoes);
    };

    for (int i = 0; i < 2000; ++i) {
        if (!round_trip()) return fail("a warm-up round trip failed");
    }
    const std::uint64_t client_before = client->driver().stats().syscalls;
    const std::uint64_t server_before = server->driver().stats().syscalls;
    const std::uint64_t datagrams_before = client->stats().datagrams_sent + server->stats().datagrams_sent;
    const std::uint64_t heap_before = heap_calls.load(std::memory_order_relaxed);
    for (long i = 0; i < round_trips; ++i) {
        if (!round_trip()) return fail("a round trip failed");
    }
    const std::uint64_t heap = heap_calls.load(std::memory_order_relaxed) - heap_before;
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
    constexpr int heap_counted = 0;
#else
    constexpr int heap_counted = 1;
#endif
    std::printf("round_trips=%ld messages=%ld heap_calls=%llu client_syscalls=%llu server_syscalls=%llu "
                "datagrams=%llu heap_counted=%d\n",
                round_trips, round_trips * batch, static_cast<unsigned long long>(heap),
                static_cast<unsigned long long>(client->driver().stats().syscalls - client_before),
                static_cast<unsigned long long>(server->driver().stats().syscalls - server_before),
                static_cast<unsigned long long>(client->stats().datagrams_sent + server->stats().datagrams_sent -
                                                datagrams_before),
                heap_counted);
    connection->close(0, true, "");
    return 0;
}
