// Helpers for tests that run Endpoints on loopback: TLS contexts from the test PKI, an endpoint on a given address
// (sockets by default; io_uring and GSO/GRO batching on request), a connected pair, polling until a condition (a deadline, not a measurement), and the ngtcp2 example programs as child processes.
#pragma once

#include <doctest/doctest.h>

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <initializer_list>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "engine/quic/endpoint.hpp"
#include "platform/os/last_error.hpp"
#include "tests/quic/test_pki.hpp"

namespace cf::quic::test {

inline std::uint64_t steady_now_ns() {
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

inline std::unique_ptr<TlsContext> tls_context(EndpointRole role, const std::string& alpn) {
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

// An endpoint on the socket driver at `bind` ("127.0.0.1:0": a free port), tuned by `tune` before it opens.
template <class Tune>
std::unique_ptr<Endpoint> open_endpoint(const TlsContext& context, const char* bind, Tune tune) {
    EndpointConfig config;
    config.driver = cf::drivers::DriverKind::socket;
    REQUIRE(cf::drivers::PeerAddress::parse(bind, config.udp.bind) == 0);
    config.udp.pool.count = 256;
    config.udp.rx_posted = 128;   // io_uring keeps these posted for receive; the rest are for sending
    config.udp.pool.prefer_hugepages = false;
    config.connection.tls = &context;
    config.connection.parameters = endpoint_parameters();
    tune(config);
    std::unique_ptr<Endpoint> out;
    REQUIRE_MESSAGE(Endpoint::open(config, out) == 0, cf::platform::last_error_message());
    return out;
}
template <class Tune>
std::unique_ptr<Endpoint> open_endpoint(const TlsContext& context, Tune tune) {
    return open_endpoint(context, "127.0.0.1:0", tune);
}
inline std::unique_ptr<Endpoint> open_endpoint(const TlsContext& context) {
    return open_endpoint(context, "127.0.0.1:0", [](EndpointConfig&) {});
}

// GSO sends and GRO receives, with 64 KiB driver buffers.
inline void enable_batching(EndpointConfig& config) {
    config.udp.gso = true;
    config.udp.gro = true;
    config.udp.pool.count = 128;
    config.udp.pool.buffer_bytes = 65536;
    config.udp.rx_posted = 32;
}

// Polls until `done` or `seconds` passed.
template <class Done>
bool poll_endpoints_until(std::initializer_list<Endpoint*> endpoints, double seconds, Done done) {
    const auto end = std::chrono::steady_clock::now() + std::chrono::duration<double>(seconds);
    while (std::chrono::steady_clock::now() < end) {
        for (Endpoint* e : endpoints) (void)e->poll(steady_now_ns());
        if (done()) return true;
    }
    return false;
}

// A client connected to a server, both confirmed (REQUIREd).
inline Connection& connect_pair(Endpoint& client, Endpoint& server) {
    Connection* connection = nullptr;
    REQUIRE_MESSAGE(client.connect(server.local_address(), steady_now_ns(), connection) == 0,
                    cf::platform::last_error_message());
    const bool confirmed = poll_endpoints_until({&client, &server}, 10.0, [&] {
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

inline std::string installed_program(const char* name) {
    for (const char* dir : {"/usr/bin/", "/usr/sbin/", "/usr/local/bin/"}) {
        const std::string path = std::string(dir) + name;
        if (access(path.c_str(), X_OK) == 0) return path;
    }
    return {};
}

// Runs `argv` as a child with its output in `log`; its pid.
inline pid_t spawn_program(const std::vector<std::string>& argv, const std::string& log) {
    std::fflush(stdout);   // or the child repeats what the parent buffered
    std::fflush(stderr);
    const pid_t pid = fork();
    REQUIRE(pid >= 0);
    if (pid == 0) {
        FILE* out = std::freopen(log.c_str(), "w", stdout);
        (void)out;
        (void)dup2(fileno(stdout), fileno(stderr));
        std::vector<char*> args;
        for (const std::string& a : argv) args.push_back(const_cast<char*>(a.c_str()));
        args.push_back(nullptr);
        execv(args[0], args.data());
        _exit(127);
    }
    return pid;
}

inline void stop_program(pid_t pid) {
    kill(pid, SIGTERM);
    int status = 0;
    waitpid(pid, &status, 0);
}

// Our client (ALPN h3) against a gtlsserver started with `extra` options on a free loopback port: the connection
// once it is confirmed or closed (nullptr when gtlsserver is not installed: the case is skipped).
struct AgainstGtlsServer {
    std::unique_ptr<TlsContext> client_tls = tls_context(EndpointRole::client, "h3");
    std::unique_ptr<Endpoint> client = open_endpoint(*client_tls);
    Connection* connection = nullptr;
    pid_t pid = -1;

    explicit AgainstGtlsServer(const std::vector<std::string>& extra, const char* log = "gtlsserver.log") {
        const std::string gtlsserver = installed_program("gtlsserver");
        if (gtlsserver.empty()) {
            MESSAGE("SKIPPED: gtlsserver not installed (Debian ngtcp2-server; toolchains/cf setup installs it)");
            return;
        }
        // A free port for the peer: bind one, note it, close it.
        const std::uint16_t port = open_endpoint(*client_tls)->local_address().port();
        std::vector<std::string> argv = {gtlsserver, "-q"};
        argv.insert(argv.end(), extra.begin(), extra.end());
        for (const std::string& arg : {"--htdocs=" + pki().path(""), std::string("127.0.0.1"), std::to_string(port),
                                       pki().path("server.key"), pki().path("server.pem")}) {
            argv.push_back(arg);
        }
        pid = spawn_program(argv, pki().path(log));
        std::this_thread::sleep_for(std::chrono::milliseconds(300));   // let it bind
        cf::drivers::PeerAddress server;
        REQUIRE(cf::drivers::PeerAddress::parse(("127.0.0.1:" + std::to_string(port)).c_str(), server) == 0);
        REQUIRE(client->connect(server, steady_now_ns(), connection) == 0);
        (void)poll_endpoints_until({client.get()}, 10.0,
                                   [&] { return connection->handshake_confirmed() || connection->closed(); });
    }
    ~AgainstGtlsServer() {
        if (connection != nullptr) {
            connection->close(0x100, true, "");   // H3_NO_ERROR
            (void)poll_endpoints_until({client.get()}, 0.5, [] { return false; });
        }
        if (pid > 0) stop_program(pid);
    }
};

}  // namespace cf::quic::test
