// Client connections kept ready per peer on one Endpoint, so that a caller never waits for a handshake: the pool
// opens connections ahead of use, hands an established one out (acquire) and takes it back (release), and replaces
// those that closed, timed out or never finished their handshake.
//
// A peer is an address plus the ConnectionConfig its connections use (its TLS context names the server: SNI and
// certificate check), so one endpoint can keep connections to several servers. Per peer the pool keeps
// `min_idle` connections ready or handshaking beyond the ones in use, and never more than `max_per_peer` in all.
// An attempt that fails (closed before its handshake completed, or not done within handshake_timeout_ns) holds
// back the peer's next attempt for retry_backoff_ns, so a dead server is not hammered. With keepalive_ns set, an
// idle ready connection sends a PING that often, so the peer's idle timeout does not close it.
//
// Lifetime. The Endpoint frees a closed connection's memory a while after it closed (endpoint.hpp), so the pool
// must see every state change before that: drive the endpoint only through ConnectionPool::poll(), which checks
// every connection after each Endpoint::poll(). A connection that closes while it is acquired stays in its entry,
// detached (connection() returns nullptr), until it is released; only then is the entry reused. So a lease never
// names another connection than the one it was given, and a Connection* from connection() is valid until the next
// poll(). Endpoint slots: give the endpoint max_peers * max_per_peer plus room for closed ones lingering.
//
// Memory: create() allocates the entry and peer tables; acquire, release, poll and the upkeep allocate nothing.
// Opening a connection allocates inside the Endpoint (its buffers, its TLS session): once per connection, never
// per message. Not thread-safe: the thread that polls owns the pool; nothing blocks.
#pragma once

#include <cstdint>
#include <memory>

#include "drivers/packet.hpp"
#include "engine/quic/endpoint.hpp"

namespace cf::quic {

struct ConnectionPoolConfig {
    std::uint32_t max_peers = 8;
    std::uint32_t max_per_peer = 4;        // connections per peer, in use or not (1..64)
    std::uint32_t min_idle = 1;            // kept ready or handshaking beyond those in use (0..max_per_peer)
    std::uint64_t handshake_timeout_ns = 5'000'000'000;   // an attempt not established by then is closed
    std::uint64_t retry_backoff_ns = 200'000'000;         // after a failed attempt, the peer's next waits this long
    std::uint64_t keepalive_ns = 0;        // PING on idle ready connections this often (0: never)
};

struct ConnectionPoolStats {
    std::uint64_t opened = 0;              // connection attempts started
    std::uint64_t established = 0;         // attempts whose handshake completed
    std::uint64_t failed = 0;              // attempts that closed, timed out or could not start
    std::uint64_t replaced = 0;            // ready or acquired connections that closed (then replaced)
    std::uint64_t acquired = 0;
    std::uint64_t acquire_empty = 0;       // acquire() found nothing ready (-EAGAIN)
};

class ConnectionPool {
public:
    static constexpr std::uint32_t kMaxPerPeer = 64;
    static constexpr std::uint32_t kNoPeer = ~std::uint32_t{0};

    // A pool of client connections on `endpoint` (a client endpoint that must outlive the pool). 0, or -EINVAL
    // (a bad config, a server endpoint) / -ENOMEM with a message.
    static int create(Endpoint& endpoint, const ConnectionPoolConfig& config,
                      std::unique_ptr<ConnectionPool>& out) noexcept;
    ~ConnectionPool();
    ConnectionPool(const ConnectionPool&) = delete;
    ConnectionPool& operator=(const ConnectionPool&) = delete;

    // A peer to keep connections to: its index in `peer`. `connection` (nullptr: the endpoint's own) must outlive
    // the pool; its TLS context must be a client's. Connections open at the next poll(). 0, -EINVAL, -EEXIST (that
    // address with that config is a peer already: `peer` says which), -ENOSPC (max_peers).
    int add_peer(const drivers::PeerAddress& address, const ConnectionConfig* connection,
                 std::uint32_t& peer) noexcept;
    std::uint32_t peers() const noexcept { return peer_count_; }

    // Polls the endpoint, then looks after every connection: the ones that closed are dropped (detached if
    // acquired), attempts past their timeout are closed, and new attempts start up to each peer's minimum.
    // Returns Endpoint::poll()'s count.
    int poll(std::uint64_t now_ns) noexcept;

    // An established connection of `peer`, marked in use: 0 and its lease in `lease`, -EAGAIN (none ready: the
    // pool is opening one if it may), -EINVAL (no such peer).
    int acquire(std::uint32_t peer, std::uint32_t& lease) noexcept;
    // Gives a lease back: the connection is ready again for the next acquire (or its entry is freed, if it closed
    // meanwhile). 0, or -EINVAL (not a lease in use).
    int release(std::uint32_t lease) noexcept;
    // The leased connection, or nullptr when it closed since (release the lease then) or the lease is not in use.
    // Valid until the next poll().
    Connection* connection(std::uint32_t lease) const noexcept;
    std::uint32_t peer_of(std::uint32_t lease) const noexcept;

    // Per peer: established connections not in use, attempts in progress, connections in use.
    std::uint32_t ready(std::uint32_t peer) const noexcept;
    std::uint32_t connecting(std::uint32_t peer) const noexcept;
    std::uint32_t in_use(std::uint32_t peer) const noexcept;
    const ConnectionPoolStats& stats() const noexcept { return stats_; }
    Endpoint& endpoint() const noexcept { return endpoint_; }

private:
    enum class EntryState : std::uint8_t { empty, connecting, ready, in_use, detached };
    struct Entry {
        Connection* connection = nullptr;
        EntryState state = EntryState::empty;
        std::uint64_t since_ns = 0;        // connecting: attempt start; ready: last use or PING
    };
    struct Peer {
        drivers::PeerAddress address;
        const ConnectionConfig* connection = nullptr;
        std::uint64_t next_attempt_ns = 0;   // retry back-off after a failed attempt
    };

    ConnectionPool(Endpoint& endpoint, const ConnectionPoolConfig& config) noexcept
        : endpoint_(endpoint), config_(config) {}
    Entry* entries_of(std::uint32_t peer) const noexcept { return &entries_[std::size_t{peer} * config_.max_per_peer]; }
    std::uint32_t count(std::uint32_t peer, EntryState state) const noexcept;
    void look_after(std::uint32_t peer, std::uint64_t now_ns) noexcept;
    void open_one(std::uint32_t peer, Entry& entry, std::uint64_t now_ns) noexcept;

    Endpoint& endpoint_;
    ConnectionPoolConfig config_;
    std::unique_ptr<Peer[]> peers_;
    std::unique_ptr<Entry[]> entries_;   // max_per_peer per peer, peer-major
    std::uint32_t peer_count_ = 0;
    ConnectionPoolStats stats_;
};

}  // namespace cf::quic
