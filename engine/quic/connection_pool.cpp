#include "engine/quic/connection_pool.hpp"

#include <cerrno>
#include <new>

#include "platform/os/last_error.hpp"

namespace cf::quic {
namespace {

bool usable(const Connection& connection) noexcept {
    return connection.state() == ConnectionState::established || connection.state() == ConnectionState::confirmed;
}

}  // namespace

int ConnectionPool::create(Endpoint& endpoint, const ConnectionPoolConfig& config,
                           std::unique_ptr<ConnectionPool>& out) noexcept {
    if (config.max_peers == 0 || config.max_peers > 4096) {
        return platform::fail(EINVAL, "QUIC connection pool: max_peers must be 1..4096");
    }
    if (config.max_per_peer == 0 || config.max_per_peer > kMaxPerPeer) {
        return platform::fail(EINVAL, "QUIC connection pool: max_per_peer must be 1..%u", kMaxPerPeer);
    }
    if (config.min_idle > config.max_per_peer) {
        return platform::fail(EINVAL, "QUIC connection pool: min_idle %u is above max_per_peer %u", config.min_idle,
                              config.max_per_peer);
    }
    if (config.handshake_timeout_ns == 0) {
        return platform::fail(EINVAL, "QUIC connection pool: handshake_timeout_ns must be above 0");
    }
    std::unique_ptr<ConnectionPool> pool(new (std::nothrow) ConnectionPool(endpoint, config));
    if (pool == nullptr) return platform::fail(ENOMEM, "QUIC connection pool: out of memory");
    pool->peers_.reset(new (std::nothrow) Peer[config.max_peers]);
    pool->entries_.reset(new (std::nothrow) Entry[std::size_t{config.max_peers} * config.max_per_peer]);
    if (pool->peers_ == nullptr || pool->entries_ == nullptr) {
        return platform::fail(ENOMEM, "QUIC connection pool: out of memory");
    }
    out = std::move(pool);
    return 0;
}

ConnectionPool::~ConnectionPool() = default;

int ConnectionPool::add_peer(const drivers::PeerAddress& address, const ConnectionConfig* connection,
                             std::uint32_t& peer) noexcept {
    if (connection != nullptr &&
        (connection->tls == nullptr || connection->tls->config().role != EndpointRole::client)) {
        return platform::fail(EINVAL, "QUIC connection pool: a peer's connection config needs a client TLS context");
    }
    for (std::uint32_t i = 0; i < peer_count_; ++i) {
        if (peers_[i].address == address && peers_[i].connection == connection) {
            peer = i;
            return platform::fail(EEXIST, "QUIC connection pool: that peer is known already (peer %u)", i);
        }
    }
    if (peer_count_ == config_.max_peers) {
        return platform::fail(ENOSPC, "QUIC connection pool: all %u peers are in use", config_.max_peers);
    }
    peers_[peer_count_] = Peer{address, connection, 0};
    peer = peer_count_++;
    return 0;
}

std::uint32_t ConnectionPool::count(std::uint32_t peer, EntryState state) const noexcept {
    if (peer >= peer_count_) return 0;
    const Entry* entries = entries_of(peer);
    std::uint32_t n = 0;
    for (std::uint32_t i = 0; i < config_.max_per_peer; ++i) n += entries[i].state == state;
    return n;
}

std::uint32_t ConnectionPool::ready(std::uint32_t peer) const noexcept { return count(peer, EntryState::ready); }
std::uint32_t ConnectionPool::connecting(std::uint32_t peer) const noexcept {
    return count(peer, EntryState::connecting);
}
std::uint32_t ConnectionPool::in_use(std::uint32_t peer) const noexcept {
    return count(peer, EntryState::in_use) + count(peer, EntryState::detached);
}

int ConnectionPool::poll(std::uint64_t now_ns) noexcept {
    const int moved = endpoint_.poll(now_ns);
    for (std::uint32_t peer = 0; peer < peer_count_; ++peer) look_after(peer, now_ns);
    return moved;
}

void ConnectionPool::look_after(std::uint32_t peer, std::uint64_t now_ns) noexcept {
    Peer& p = peers_[peer];
    Entry* entries = entries_of(peer);
    std::uint32_t spare = 0;   // ready or connecting: what stands between a caller and a handshake
    for (std::uint32_t i = 0; i < config_.max_per_peer; ++i) {
        Entry& entry = entries[i];
        if (entry.state == EntryState::empty || entry.state == EntryState::detached) continue;
        Connection& connection = *entry.connection;
        if (connection.closed()) {
            if (entry.state == EntryState::connecting) {
                ++stats_.failed;
                p.next_attempt_ns = now_ns + config_.retry_backoff_ns;
            } else {
                ++stats_.replaced;
            }
            // Its memory belongs to the endpoint, which frees it later: forget it now.
            entry.connection = nullptr;
            entry.state = entry.state == EntryState::in_use ? EntryState::detached : EntryState::empty;
            continue;
        }
        if (entry.state == EntryState::connecting) {
            if (usable(connection)) {
                ++stats_.established;
                entry.state = EntryState::ready;
                entry.since_ns = now_ns;
            } else if (now_ns >= entry.since_ns && now_ns - entry.since_ns >= config_.handshake_timeout_ns) {
                // Closed now, dropped at the next poll once it reads closed (it does at once: closing).
                connection.close(0, false, "handshake timed out");
                ++stats_.failed;
                p.next_attempt_ns = now_ns + config_.retry_backoff_ns;
                entry.connection = nullptr;
                entry.state = EntryState::empty;
                continue;
            }
        } else if (entry.state == EntryState::in_use) {
            entry.since_ns = now_ns;   // in use: its owner's traffic keeps it alive
        } else if (config_.keepalive_ns != 0 && now_ns >= entry.since_ns &&
                   now_ns - entry.since_ns >= config_.keepalive_ns) {
            connection.send_ping();
            entry.since_ns = now_ns;
        }
        spare += entry.state != EntryState::in_use;
    }
    if (spare >= config_.min_idle || now_ns < p.next_attempt_ns) return;
    for (std::uint32_t i = 0; i < config_.max_per_peer && spare < config_.min_idle; ++i) {
        if (entries[i].state != EntryState::empty) continue;
        open_one(peer, entries[i], now_ns);
        if (entries[i].state == EntryState::empty) return;   // could not start: wait for the back-off
        ++spare;
    }
}

void ConnectionPool::open_one(std::uint32_t peer, Entry& entry, std::uint64_t now_ns) noexcept {
    Peer& p = peers_[peer];
    ++stats_.opened;
    Connection* connection = nullptr;
    if (endpoint_.connect(p.address, now_ns, connection, p.connection) != 0) {
        ++stats_.failed;
        p.next_attempt_ns = now_ns + config_.retry_backoff_ns;
        return;
    }
    entry.connection = connection;
    entry.state = EntryState::connecting;
    entry.since_ns = now_ns;
}

int ConnectionPool::acquire(std::uint32_t peer, std::uint32_t& lease) noexcept {
    if (peer >= peer_count_) return platform::fail(EINVAL, "QUIC connection pool: no peer %u", peer);
    Entry* entries = entries_of(peer);
    for (std::uint32_t i = 0; i < config_.max_per_peer; ++i) {
        Entry& entry = entries[i];
        // A connection may have closed since the last poll (the peer's CONNECTION_CLOSE came in with it).
        if (entry.state != EntryState::ready || entry.connection->closed()) continue;
        entry.state = EntryState::in_use;
        lease = peer * config_.max_per_peer + i;
        ++stats_.acquired;
        return 0;
    }
    ++stats_.acquire_empty;
    return platform::fail(EAGAIN, "QUIC connection pool: no connection to peer %u is ready yet", peer);
}

int ConnectionPool::release(std::uint32_t lease) noexcept {
    if (lease >= peer_count_ * config_.max_per_peer) {
        return platform::fail(EINVAL, "QUIC connection pool: %u is not a lease", lease);
    }
    Entry& entry = entries_[lease];
    if (entry.state == EntryState::detached) {
        entry.state = EntryState::empty;
        return 0;
    }
    if (entry.state != EntryState::in_use) {
        return platform::fail(EINVAL, "QUIC connection pool: lease %u is not in use", lease);
    }
    entry.state = EntryState::ready;
    return 0;
}

Connection* ConnectionPool::connection(std::uint32_t lease) const noexcept {
    if (lease >= peer_count_ * config_.max_per_peer) return nullptr;
    const Entry& entry = entries_[lease];
    return entry.state == EntryState::in_use ? entry.connection : nullptr;
}

std::uint32_t ConnectionPool::peer_of(std::uint32_t lease) const noexcept {
    return lease < peer_count_ * config_.max_per_peer ? lease / config_.max_per_peer : kNoPeer;
}

}  // namespace cf::quic
