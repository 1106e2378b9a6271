// The connection pool against a real server Endpoint over loopback: connections kept warm, handed out and taken
// back, replaced when they close, attempts at a silent peer timed out with back-off, and no allocation by the pool
// in steady state (tests/libc_allocation_hooks.cpp counts).
#include "engine/quic/connection_pool.hpp"

#include <doctest/doctest.h>

#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <string>

#include "platform/os/last_error.hpp"
#include "tests/libc_allocation_hooks.hpp"
#include "tests/quic/test_pki.hpp"

using namespace cf::quic;
using cf::quic::test::pki;

namespace {

thread_local constinit bool tl_counting = false;
thread_local constinit std::uint64_t tl_allocations = 0;

}  // namespace

extern "C" void cf_test_on_allocation() noexcept {
    if (tl_counting) ++tl_allocations;
}

namespace {

std::uint64_t now_ns() {
    const auto since_epoch = std::chrono::steady_clock::now().time_since_epoch();
    return static_cast<std::uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(since_epoch).count());
}

TransportParameters parameters() {
    TransportParameters p;
    p.max_idle_timeout_ms = 30000;
    return p;
}

std::unique_ptr<TlsContext> tls(EndpointRole role, const char* server_name = "localhost") {
    TlsConfig config;
    config.role = role;
    config.alpn = {"cf-pool-test"};
    if (role == EndpointRole::server) {
        config.certificate_file = pki().path("server.pem");
        config.key_file = pki().path("server.key");
    } else {
        config.ca_file = pki().path("ca.pem");
        config.server_name = server_name;
    }
    std::unique_ptr<TlsContext> context;
    REQUIRE_MESSAGE(TlsContext::create(config, context) == 0, cf::platform::last_error_message());
    return context;
}

std::unique_ptr<Endpoint> endpoint(const TlsContext& context, std::uint32_t max_connections = 16) {
    EndpointConfig config;
    config.driver = cf::drivers::DriverKind::socket;
    REQUIRE(cf::drivers::PeerAddress::parse("127.0.0.1:0", config.udp.bind) == 0);
    config.udp.pool.count = 256;
    config.udp.pool.prefer_hugepages = false;
    config.connection.tls = &context;
    config.connection.parameters = parameters();
    config.max_connections = max_connections;
    std::unique_ptr<Endpoint> out;
    REQUIRE_MESSAGE(Endpoint::open(config, out) == 0, cf::platform::last_error_message());
    return out;
}

// Polls until `done` or `seconds` passed (wall clock: a deadline, not a measurement).
template <class Done>
bool poll_until(ConnectionPool& pool, Endpoint& server, double seconds, Done done) {
    const auto end = std::chrono::steady_clock::now() + std::chrono::duration<double>(seconds);
    while (std::chrono::steady_clock::now() < end) {
        (void)server.poll(now_ns());
        (void)pool.poll(now_ns());
        if (done()) return true;
    }
    return false;
}

// A client endpoint, a server endpoint and a pool with one peer: the server.
struct Setup {
    std::unique_ptr<TlsContext> server_tls = tls(EndpointRole::server);
    std::unique_ptr<TlsContext> client_tls = tls(EndpointRole::client);
    std::unique_ptr<Endpoint> server = endpoint(*server_tls);
    std::unique_ptr<Endpoint> client = endpoint(*client_tls);
    std::unique_ptr<ConnectionPool> pool;
    std::uint32_t peer = ConnectionPool::kNoPeer;

    explicit Setup(const ConnectionPoolConfig& config) {
        REQUIRE_MESSAGE(ConnectionPool::create(*client, config, pool) == 0, cf::platform::last_error_message());
        REQUIRE(pool->add_peer(server->local_address(), nullptr, peer) == 0);
        CHECK(peer == 0);
    }
    // The server's connection whose peer CID is `connection`'s own.
    Connection* server_side(const Connection& connection) const {
        for (std::uint32_t i = 0; i < server->capacity(); ++i) {
            Connection* c = server->connection(i);
            if (c != nullptr && !c->closed() && equals(c->peer_cid(), connection.local_cid().bytes())) return c;
        }
        return nullptr;
    }
};

}  // namespace

TEST_CASE("connection pool: bad configurations and arguments are refused with a message") {
    auto client_tls = tls(EndpointRole::client);
    auto client = endpoint(*client_tls);
    std::unique_ptr<ConnectionPool> pool;
    ConnectionPoolConfig config;
    config.max_peers = 0;
    CHECK(ConnectionPool::create(*client, config, pool) == -EINVAL);
    config = {};
    config.max_per_peer = ConnectionPool::kMaxPerPeer + 1;
    CHECK(ConnectionPool::create(*client, config, pool) == -EINVAL);
    config = {};
    config.min_idle = config.max_per_peer + 1;
    CHECK(ConnectionPool::create(*client, config, pool) == -EINVAL);
    CHECK(std::string(cf::platform::last_error_message()).find("min_idle") != std::string::npos);
    config = {};
    config.handshake_timeout_ns = 0;
    CHECK(ConnectionPool::create(*client, config, pool) == -EINVAL);
    CHECK(pool == nullptr);

    config = {};
    config.max_peers = 2;
    REQUIRE(ConnectionPool::create(*client, config, pool) == 0);
    cf::drivers::PeerAddress a, b, c;
    REQUIRE(cf::drivers::PeerAddress::parse("127.0.0.1:1", a) == 0);
    REQUIRE(cf::drivers::PeerAddress::parse("127.0.0.1:2", b) == 0);
    REQUIRE(cf::drivers::PeerAddress::parse("127.0.0.1:3", c) == 0);
    std::uint32_t peer = 99;
    REQUIRE(pool->add_peer(a, nullptr, peer) == 0);
    CHECK(peer == 0);
    CHECK(pool->add_peer(a, nullptr, peer) == -EEXIST);
    CHECK(peer == 0);
    // A server's TLS context cannot make client connections.
    auto server_tls = tls(EndpointRole::server);
    ConnectionConfig wrong;
    wrong.tls = server_tls.get();
    CHECK(pool->add_peer(b, &wrong, peer) == -EINVAL);
    REQUIRE(pool->add_peer(b, nullptr, peer) == 0);
    CHECK(peer == 1);
    CHECK(pool->add_peer(c, nullptr, peer) == -ENOSPC);
    CHECK(pool->peers() == 2);

    std::uint32_t lease = 0;
    CHECK(pool->acquire(2, lease) == -EINVAL);
    CHECK(pool->acquire(0, lease) == -EAGAIN);   // nothing polled yet: nothing ready
    CHECK(pool->stats().acquire_empty == 1);
    CHECK(pool->release(0) == -EINVAL);          // not in use
    CHECK(pool->release(1u << 30) == -EINVAL);
    CHECK(pool->connection(0) == nullptr);
    CHECK(pool->connection(~0u) == nullptr);
    CHECK(pool->peer_of(~0u) == ConnectionPool::kNoPeer);
}

TEST_CASE("connection pool: keeps min_idle connections warm, hands them out, takes them back, caps at max_per_peer") {
    ConnectionPoolConfig config;
    config.max_per_peer = 3;
    config.min_idle = 2;
    Setup s(config);
    ConnectionPool& pool = *s.pool;
    REQUIRE(poll_until(pool, *s.server, 5.0, [&] { return pool.ready(s.peer) == 2; }));
    CHECK(pool.connecting(s.peer) == 0);
    CHECK(pool.in_use(s.peer) == 0);
    CHECK(pool.stats().opened == 2);
    CHECK(pool.stats().established == 2);

    std::uint32_t first = 0, second = 0, third = 0, none = 0;
    REQUIRE(pool.acquire(s.peer, first) == 0);
    Connection* connection = pool.connection(first);
    REQUIRE(connection != nullptr);
    CHECK(connection->state() != ConnectionState::handshaking);
    CHECK(pool.peer_of(first) == s.peer);
    CHECK(pool.in_use(s.peer) == 1);
    // One in use and one ready: the pool opens a third to stand by again.
    REQUIRE(poll_until(pool, *s.server, 5.0, [&] { return pool.ready(s.peer) == 2; }));
    CHECK(pool.stats().opened == 3);
    REQUIRE(pool.acquire(s.peer, second) == 0);
    REQUIRE(pool.acquire(s.peer, third) == 0);
    CHECK(first != second);
    CHECK(second != third);
    CHECK(first != third);
    CHECK(pool.in_use(s.peer) == 3);
    // At max_per_peer: nothing more is opened, and acquire says to try again.
    for (int i = 0; i < 50; ++i) {
        (void)s.server->poll(now_ns());
        (void)pool.poll(now_ns());
    }
    CHECK(pool.stats().opened == 3);
    CHECK(pool.acquire(s.peer, none) == -EAGAIN);

    // A message over a leased connection arrives at the server intact.
    Connection* leased = pool.connection(second);
    REQUIRE(leased != nullptr);
    const std::int64_t stream = leased->streams().open_stream(StreamDirection::bidirectional);
    REQUIRE(stream >= 0);
    const char text[] = "through the pool";
    REQUIRE(leased->streams().send_message(static_cast<StreamId>(stream), text, sizeof text) == 0);
    Connection* server_side = s.server_side(*leased);
    REQUIRE(server_side != nullptr);
    const std::uint8_t* data = nullptr;
    std::size_t length = 0;
    REQUIRE(poll_until(pool, *s.server, 5.0, [&] {
        return server_side->streams().next_message(static_cast<StreamId>(stream), data, length) == 1;
    }));
    REQUIRE(length == sizeof text);
    CHECK(std::memcmp(data, text, sizeof text) == 0);
    CHECK(server_side->streams().release_message(static_cast<StreamId>(stream)) == 0);

    // Released connections are handed out again (the same ones: nothing new is opened).
    CHECK(pool.release(first) == 0);
    CHECK(pool.release(first) == -EINVAL);
    CHECK(pool.connection(first) == nullptr);
    CHECK(pool.ready(s.peer) == 1);
    std::uint32_t again = 0;
    REQUIRE(pool.acquire(s.peer, again) == 0);
    CHECK(again == first);
    CHECK(pool.connection(again) == connection);
    CHECK(pool.release(again) == 0);
    CHECK(pool.release(second) == 0);
    CHECK(pool.release(third) == 0);
    CHECK(pool.ready(s.peer) == 3);
    CHECK(pool.stats().opened == 3);
    CHECK(pool.stats().acquired == 4);
}

TEST_CASE("connection pool: a ready connection the server closes is replaced; an acquired one is detached until "
          "released") {
    ConnectionPoolConfig config;
    config.max_per_peer = 2;
    config.min_idle = 1;
    Setup s(config);
    ConnectionPool& pool = *s.pool;
    REQUIRE(poll_until(pool, *s.server, 5.0, [&] { return pool.ready(s.peer) == 1; }));
    std::uint32_t lease = 0;
    REQUIRE(pool.acquire(s.peer, lease) == 0);
    Connection* acquired = pool.connection(lease);
    REQUIRE(acquired != nullptr);
    REQUIRE(poll_until(pool, *s.server, 5.0, [&] { return pool.ready(s.peer) == 1; }));
    CHECK(pool.stats().opened == 2);

    // The server closes the acquired one: the lease goes dead, its entry stays taken until released.
    Connection* server_side = s.server_side(*acquired);
    REQUIRE(server_side != nullptr);
    server_side->close(0, true, "going away");
    REQUIRE(poll_until(pool, *s.server, 5.0, [&] { return pool.connection(lease) == nullptr; }));
    CHECK(pool.stats().replaced == 1);
    CHECK(pool.in_use(s.peer) == 1);      // detached, still held
    CHECK(pool.ready(s.peer) == 1);
    CHECK(pool.release(lease) == 0);
    CHECK(pool.in_use(s.peer) == 0);
    CHECK(pool.release(lease) == -EINVAL);

    // The server closes the ready one: the pool opens a replacement and has one ready again.
    std::uint32_t ready_lease = 0;
    REQUIRE(pool.acquire(s.peer, ready_lease) == 0);
    Connection* ready = pool.connection(ready_lease);
    REQUIRE(pool.release(ready_lease) == 0);
    Connection* ready_server_side = s.server_side(*ready);
    REQUIRE(ready_server_side != nullptr);
    ready_server_side->close(0, true, "going away too");
    REQUIRE(poll_until(pool, *s.server, 5.0, [&] { return pool.stats().replaced == 2 && pool.ready(s.peer) == 1; }));
    CHECK(pool.stats().opened == 3);
    CHECK(pool.stats().failed == 0);
    std::uint32_t fresh = 0;
    REQUIRE(pool.acquire(s.peer, fresh) == 0);
    CHECK(pool.connection(fresh) != nullptr);
    CHECK(!pool.connection(fresh)->closed());
}

TEST_CASE("connection pool: attempts at a silent peer time out and back off; a wrong server name fails") {
    auto client_tls = tls(EndpointRole::client);
    auto client = endpoint(*client_tls, 64);
    ConnectionPoolConfig config;
    config.max_per_peer = 2;
    config.min_idle = 2;
    config.handshake_timeout_ns = 50'000'000;
    config.retry_backoff_ns = 1'000'000'000;
    std::unique_ptr<ConnectionPool> pool;
    REQUIRE(ConnectionPool::create(*client, config, pool) == 0);
    // A bound socket that never answers: the Initials go nowhere.
    const int silent = socket(AF_INET, SOCK_DGRAM, 0);
    REQUIRE(silent >= 0);
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    REQUIRE(bind(silent, reinterpret_cast<sockaddr*>(&address), sizeof address) == 0);
    socklen_t size = sizeof address;
    REQUIRE(getsockname(silent, reinterpret_cast<sockaddr*>(&address), &size) == 0);
    cf::drivers::PeerAddress peer_address;
    REQUIRE(cf::drivers::PeerAddress::parse(("127.0.0.1:" + std::to_string(ntohs(address.sin_port))).c_str(),
                                            peer_address) == 0);
    std::uint32_t peer = 0;
    REQUIRE(pool->add_peer(peer_address, nullptr, peer) == 0);

    // Time is ours here: the pool's timeouts follow the clock it is given.
    std::uint64_t now = 1'000'000'000;
    (void)pool->poll(now);
    CHECK(pool->stats().opened == 2);
    CHECK(pool->connecting(peer) == 2);
    (void)pool->poll(now + 49'000'000);
    CHECK(pool->connecting(peer) == 2);
    CHECK(pool->stats().failed == 0);
    now += 50'000'000;
    (void)pool->poll(now);
    CHECK(pool->stats().failed == 2);
    CHECK(pool->connecting(peer) == 0);
    // The back-off holds the next attempts back, then they start.
    (void)pool->poll(now + 999'000'000);
    CHECK(pool->stats().opened == 2);
    (void)pool->poll(now + 1'000'000'000);
    CHECK(pool->stats().opened == 4);
    CHECK(pool->connecting(peer) == 2);
    std::uint32_t lease = 0;
    CHECK(pool->acquire(peer, lease) == -EAGAIN);
    close(silent);

    // A server whose certificate does not name the peer's server name: the handshake fails, the attempt is counted
    // as failed, nothing is handed out.
    auto server_tls = tls(EndpointRole::server);
    auto server = endpoint(*server_tls);
    auto wrong_name = tls(EndpointRole::client, "not-this-host.example");
    ConnectionConfig wrong;
    wrong.tls = wrong_name.get();
    wrong.parameters = parameters();
    config.min_idle = 1;
    config.handshake_timeout_ns = 5'000'000'000;
    std::unique_ptr<ConnectionPool> named_pool;
    REQUIRE(ConnectionPool::create(*client, config, named_pool) == 0);
    std::uint32_t named = 0;
    REQUIRE(named_pool->add_peer(server->local_address(), &wrong, named) == 0);
    REQUIRE(poll_until(*named_pool, *server, 5.0, [&] { return named_pool->stats().failed == 1; }));
    CHECK(named_pool->stats().established == 0);
    CHECK(named_pool->ready(named) == 0);
    CHECK(named_pool->acquire(named, lease) == -EAGAIN);
}

TEST_CASE("connection pool: acquire, release and poll allocate nothing in steady state") {
    ConnectionPoolConfig config;
    config.max_per_peer = 2;
    config.min_idle = 2;
    config.keepalive_ns = 1'000'000;
    Setup s(config);
    ConnectionPool& pool = *s.pool;
    REQUIRE(poll_until(pool, *s.server, 5.0, [&] { return pool.ready(s.peer) == 2; }));
    // Settle: the handshakes' last packets and acknowledgements.
    for (int i = 0; i < 200; ++i) {
        (void)s.server->poll(now_ns());
        (void)pool.poll(now_ns());
    }
    tl_allocations = 0;
    tl_counting = true;
    std::uint32_t failures = 0;
    for (int i = 0; i < 2000; ++i) {
        std::uint32_t lease = 0;
        failures += pool.acquire(s.peer, lease) != 0;
        (void)pool.poll(now_ns());
        failures += pool.release(lease) != 0;
        (void)pool.poll(now_ns());
    }
    tl_counting = false;
    CHECK(failures == 0);
    CHECK(pool.stats().opened == 2);
    CHECK(tl_allocations == 0);
    MESSAGE("allocator calls over 2000 acquire/poll/release rounds: " << tl_allocations);
}
