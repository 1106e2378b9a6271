// The C API: QUIC listeners, clients with their connection pools, connections and message channels
// (engine/quic/endpoint.hpp, connection_pool.hpp, stream_table.hpp).
#include <cerrno>
#include <cstddef>
#include <cstdio>
#include <cstring>
#include <memory>
#include <new>
#include <string>
#include <vector>

#include "chronofabric/quic.h"
#include "engine/capi/counts.hpp"
#include "engine/capi/status.hpp"
#include "engine/quic/connection_pool.hpp"
#include "engine/quic/endpoint.hpp"
#include "engine/quic/tls_context.hpp"
#include "platform/os/last_error.hpp"
#include "platform/os/monotonic_clock.hpp"

using cf::platform::fail;
using cf::quic::Connection;
using cf::quic::StreamId;

namespace {

// The smallest struct_size a caller may pass: the first published version of each struct.
constexpr std::size_t kConfigV1 = offsetof(cf_quic_config_t, handshake_timeout_ns) + sizeof(uint64_t);
constexpr std::size_t kStatsV1 = offsetof(cf_quic_connection_stats_t, bytes_received) + sizeof(uint64_t);

constexpr uint32_t kDefaultMaxChannels = 8;
constexpr uint64_t kMaxStreamWindow = 16u << 20;
constexpr uint64_t kMaxConnectionWindow = uint64_t{1} << 40;
constexpr uint32_t kMaxMessageBytes = 1u << 20;
constexpr uint32_t kMinRingBytes = 64 * 1024;
constexpr uint64_t kHour = 3'600'000'000'000ULL;
constexpr uint32_t kUdpBuffers = 1024;   // receive and send buffers of the endpoint's socket
constexpr uint64_t kMaxAlpnBytes = 255;

bool usable(const Connection& connection) noexcept {
    return connection.state() == cf::quic::ConnectionState::established ||
           connection.state() == cf::quic::ConnectionState::confirmed;
}

uint32_t ring_for(uint64_t window) noexcept {
    uint32_t ring = kMinRingBytes;
    while (ring < window) ring <<= 1;
    return ring;
}

// Prefixes the message an internal parser left with the C function's name; the message is copied first (fail()
// formats into the buffer last_error_message() points at).
int fail_with_prefix(int errnum, const char* prefix) noexcept {
    char detail[256];
    std::snprintf(detail, sizeof detail, "%s", cf::platform::last_error_message());
    return fail(errnum, "%s: %s", prefix, detail);
}

int hex_digit(char c) noexcept {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

// "hex,hex,..." into pins: 64 hex digits each, spaces around commas allowed.
int parse_pins(const char* function, const char* text, std::vector<cf::quic::PublicKeyPin>& out) noexcept {
    const char* p = text;
    while (*p != '\0') {
        while (*p == ' ') ++p;
        cf::quic::PublicKeyPin pin{};
        std::size_t digits = 0;
        while (*p != '\0' && *p != ',' && *p != ' ') {
            const int value = hex_digit(*p);
            if (value < 0 || digits == 2 * pin.size()) {
                return fail(EINVAL, "%s: pinned_keys must be SHA-256 pins of 64 hex digits, separated by commas "
                                    "(bad at offset %zu)", function, static_cast<std::size_t>(p - text));
            }
            pin[digits / 2] = static_cast<std::uint8_t>((pin[digits / 2] << 4) | value);
            ++digits;
            ++p;
        }
        if (digits != 2 * pin.size()) {
            return fail(EINVAL, "%s: a pin in pinned_keys has %zu hex digits, not 64", function, digits);
        }
        out.push_back(pin);
        while (*p == ' ') ++p;
        if (*p == ',') {
            ++p;
            if (*p == '\0') return fail(EINVAL, "%s: pinned_keys ends with a comma", function);
        } else if (*p != '\0') {
            return fail(EINVAL, "%s: pins in pinned_keys are separated by commas (offset %zu)", function,
                        static_cast<std::size_t>(p - text));
        }
    }
    return 0;
}

int parse_alpn(const char* function, const char* text, std::vector<std::string>& out) noexcept {
    const char* p = text;
    do {
        const char* end = std::strchr(p, ',');
        const std::size_t length = end != nullptr ? static_cast<std::size_t>(end - p) : std::strlen(p);
        if (length == 0 || length > kMaxAlpnBytes) {
            return fail(EINVAL, "%s: alpn must be comma-separated names of 1 to 255 bytes ('%s')", function, text);
        }
        out.emplace_back(p, length);
        p = end != nullptr ? end + 1 : nullptr;
    } while (p != nullptr);
    return 0;
}

// What a listener and a client share: the TLS context, the connections' settings and the endpoint.
struct QuicSide {
    std::unique_ptr<cf::quic::TlsContext> tls;
    cf::quic::ConnectionConfig connection;
    std::unique_ptr<cf::quic::Endpoint> endpoint;
    cf::quic::ConnectionPoolConfig pool;   // client only
};

// Checks a C config and builds everything but the endpoint's socket. 0 or a CF_E* status with a message.
int prepare(const char* function, const cf_quic_config_t* config, cf::quic::EndpointRole role,
            cf::quic::EndpointConfig& endpoint, QuicSide& side) noexcept {
    if (config->struct_size < kConfigV1 || config->struct_size > sizeof(cf_quic_config_t)) {
        return fail(EINVAL, "%s: struct_size %u is not a cf_quic_config_t this library knows (use "
                            "cf_quic_config_init)", function, config->struct_size);
    }
    if (config->max_connections == 0 || config->max_connections > 65536) {
        return fail(EINVAL, "%s: max_connections %u is outside 1..65536", function, config->max_connections);
    }
    if (config->max_channels == 0 || config->max_channels > cf::quic::StreamTable::kMaxStreamsPerType) {
        return fail(EINVAL, "%s: max_channels %u is outside 1..65536", function, config->max_channels);
    }
    if (config->max_message_bytes == 0 || config->max_message_bytes > kMaxMessageBytes) {
        return fail(EINVAL, "%s: max_message_bytes %u is outside 1..%u", function, config->max_message_bytes,
                    kMaxMessageBytes);
    }
    const uint64_t framed = uint64_t{config->max_message_bytes} + 8;   // with its length prefix, rounded up
    if (config->stream_window < 2 * framed || config->stream_window > kMaxStreamWindow) {
        return fail(EINVAL, "%s: stream_window %llu must be %llu (twice max_message_bytes plus 8) .. 16 MiB",
                    function, static_cast<unsigned long long>(config->stream_window),
                    static_cast<unsigned long long>(2 * framed));
    }
    if (config->connection_window < config->stream_window || config->connection_window > kMaxConnectionWindow) {
        return fail(EINVAL, "%s: connection_window %llu must be stream_window .. 2^40", function,
                    static_cast<unsigned long long>(config->connection_window));
    }
    if (config->idle_timeout_ns != 0 && (config->idle_timeout_ns < 1'000'000 || config->idle_timeout_ns > kHour)) {
        return fail(EINVAL, "%s: idle_timeout_ns must be 0 or 1 ms .. 1 hour", function);
    }
    cf::quic::CongestionAlgorithm congestion = cf::quic::CongestionAlgorithm::cubic;
    if (config->congestion != nullptr && std::strcmp(config->congestion, "cubic") != 0) {
        if (std::strcmp(config->congestion, "newreno") != 0) {
            return fail(EINVAL, "%s: unknown congestion controller '%s' (newreno or cubic)", function,
                        config->congestion);
        }
        congestion = cf::quic::CongestionAlgorithm::new_reno;
    }
    if (config->pinned_key_count != 0 && config->pinned_key_bytes == nullptr) {
        return fail(EINVAL, "%s: pinned_key_count is %u but pinned_key_bytes is NULL", function,
                    config->pinned_key_count);
    }
    if (config->pinned_key_count > 1024) {
        return fail(EINVAL, "%s: pinned_key_count %u is above 1024", function, config->pinned_key_count);
    }
    if (role == cf::quic::EndpointRole::client) {
        if (config->pool_max_per_peer == 0 || config->pool_max_per_peer > cf::quic::ConnectionPool::kMaxPerPeer ||
            config->pool_min_idle > config->pool_max_per_peer) {
            return fail(EINVAL, "%s: pool_max_per_peer must be 1..%u and pool_min_idle at most that (%u, %u)", function,
                        cf::quic::ConnectionPool::kMaxPerPeer, config->pool_max_per_peer, config->pool_min_idle);
        }
        if (config->max_peers == 0 || config->max_peers > 4096) {
            return fail(EINVAL, "%s: max_peers %u is outside 1..4096", function, config->max_peers);
        }
        if (config->handshake_timeout_ns < 1'000'000 || config->handshake_timeout_ns > kHour) {
            return fail(EINVAL, "%s: handshake_timeout_ns must be 1 ms .. 1 hour", function);
        }
    }

    cf::quic::TlsConfig tls;
    tls.role = role;
    try {   // the strings and lists allocate; creation is not a hot path, and nothing may throw through C
        if (config->certificate_file != nullptr) tls.certificate_file = config->certificate_file;
        if (config->key_file != nullptr) tls.key_file = config->key_file;
        if (config->ca_file != nullptr) tls.ca_file = config->ca_file;
        if (config->server_name != nullptr) tls.server_name = config->server_name;
        if (const int rc = parse_alpn(function, config->alpn != nullptr ? config->alpn : "chronofabric", tls.alpn);
            rc != 0) {
            return rc;
        }
        if (config->pinned_keys != nullptr) {
            if (const int rc = parse_pins(function, config->pinned_keys, tls.pinned_keys); rc != 0) return rc;
        }
        for (uint32_t i = 0; i < config->pinned_key_count; ++i) {
            cf::quic::PublicKeyPin pin;
            std::memcpy(pin.data(), config->pinned_key_bytes + std::size_t{i} * CF_QUIC_PIN_BYTES, pin.size());
            tls.pinned_keys.push_back(pin);
        }
    } catch (const std::bad_alloc&) {
        return fail(ENOMEM, "%s: out of memory", function);
    }
    tls.verify_peer = config->verify_peer != 0;
    tls.require_client_certificate = config->require_client_certificate != 0;
    if (const int rc = cf::quic::TlsContext::create(tls, side.tls); rc != 0) return fail_with_prefix(-rc, function);

    cf::quic::ConnectionConfig& connection = side.connection;
    connection.tls = side.tls.get();
    connection.congestion = congestion;
    connection.parameters.max_idle_timeout_ms = (config->idle_timeout_ns + 999'999) / 1'000'000;
    cf::quic::StreamTableConfig& streams = connection.streams;
    streams.local_bidi_streams = streams.peer_bidi_streams = config->max_channels;
    streams.local_uni_streams = streams.peer_uni_streams = 0;   // channels are bidirectional
    streams.send_ring_bytes = streams.receive_ring_bytes = ring_for(config->stream_window);
    streams.stream_window = config->stream_window;
    streams.connection_window = config->connection_window;
    streams.max_message_bytes = config->max_message_bytes;

    if (cf::drivers::parse_driver_kind(config->driver != nullptr ? config->driver : "auto", endpoint.driver) != 0) {
        return fail_with_prefix(EINVAL, function);
    }
    if (cf::drivers::PeerAddress::parse(config->bind != nullptr ? config->bind : "0.0.0.0:0", endpoint.udp.bind) !=
        0) {
        return fail_with_prefix(EINVAL, function);
    }
    endpoint.udp.pool.count = kUdpBuffers;
    endpoint.udp.pool.prefer_hugepages = false;
    endpoint.connection = connection;
    endpoint.max_connections = config->max_connections;

    side.pool.max_peers = config->max_peers;
    side.pool.max_per_peer = config->pool_max_per_peer;
    side.pool.min_idle = config->pool_min_idle;
    side.pool.handshake_timeout_ns = config->handshake_timeout_ns;
    return 0;
}

enum class HandleState : std::uint8_t { free, pending, held };

}  // namespace

// A connection handle: preallocated with its listener or client (one per pool entry, or per endpoint slot), so
// acquire and accept allocate nothing and a released handle is recognised.
struct cf_quic_connection {
    cf_quic_client* client = nullptr;        // one of the two
    cf_quic_listener* listener = nullptr;
    std::uint32_t lease = 0;                 // client: the pool's lease
    Connection* server_connection = nullptr; // listener: nullptr once it closed
    HandleState state = HandleState::free;
    std::uint64_t accept_order = 0;          // listener: established connections are accepted oldest first
    // Receiving: the channel last read from (tried first: it may hold more complete messages), and the one whose
    // message is out.
    bool has_current = false;
    StreamId current = 0;
    bool message_out = false;
    StreamId message_channel = 0;
};

struct cf_quic_listener {
    QuicSide side;
    std::unique_ptr<cf_quic_connection[]> handles;   // as many as the endpoint has slots
    std::unique_ptr<std::int32_t[]> tracked;         // per endpoint slot: the handle of its connection, or -1
    std::uint32_t capacity = 0;
    std::uint64_t next_order = 0;
};

struct cf_quic_client {
    // A peer with a server name of its own has its own TLS context and connection settings.
    struct Peer {
        cf::drivers::PeerAddress address;
        std::string server_name;                     // empty: the config's
        std::unique_ptr<cf::quic::TlsContext> tls;
        cf::quic::ConnectionConfig connection;
    };
    QuicSide side;
    std::unique_ptr<Peer[]> peers;                   // max_peers, filled in order
    std::unique_ptr<cf::quic::ConnectionPool> pool;  // declared after what its connections use: destroyed first
    std::unique_ptr<cf_quic_connection[]> handles;   // one per pool lease

    // The endpoint's connections use the peers' TLS contexts: they go first.
    ~cf_quic_client() {
        pool.reset();
        side.endpoint.reset();
    }
};

namespace {

// The live connection behind a held handle: 0 with `out`, or a status with a message.
int live(const char* function, const cf_quic_connection* handle, Connection*& out) noexcept {
    if (handle == nullptr) return fail(EINVAL, "%s: connection is NULL", function);
    if (handle->state != HandleState::held) return fail(EINVAL, "%s: the connection was released", function);
    Connection* connection = handle->client != nullptr ? handle->client->pool->connection(handle->lease)
                                                       : handle->server_connection;
    if (connection == nullptr || connection->closed()) {
        return fail(ECONNRESET, "%s: the connection closed%s%s", function,
                    connection != nullptr && !connection->error_message().empty() ? ": " : "",
                    connection != nullptr ? connection->error_message().c_str() : "");
    }
    out = connection;
    return 0;
}

// A stream table's status as the C API's, with a message naming the channel.
int channel_status(const char* function, int status, uint64_t channel) noexcept {
    switch (status) {
        case 0: return 0;
        case -EAGAIN: return fail(EAGAIN, "%s: channel %llu has no room or flow-control credit now", function,
                                  static_cast<unsigned long long>(channel));
        case -EMSGSIZE: return fail(EMSGSIZE, "%s: the message is above max_message_bytes", function);
        case -ENOENT: return fail(ENOENT, "%s: no open channel %llu", function,
                                  static_cast<unsigned long long>(channel));
        case -EINVAL: return fail(EINVAL, "%s: %llu is not a channel this side sends on", function,
                                  static_cast<unsigned long long>(channel));
        case -EPIPE: return fail(ECONNRESET, "%s: channel %llu was closed or stopped", function,
                                 static_cast<unsigned long long>(channel));
        default: return fail(EIO, "%s: channel %llu failed (%d)", function, static_cast<unsigned long long>(channel),
                             status);
    }
}

int local_address(const char* function, const cf::quic::Endpoint& endpoint, char* buffer, size_t size) noexcept {
    if (buffer == nullptr) return fail(EINVAL, "%s: buffer is NULL", function);
    if (const int status = cf::capi::check_count(function, "size", size, 1); status != 0) return status;
    char text[64];
    endpoint.local_address().format(text, sizeof text);
    const std::size_t length = std::strlen(text);
    if (length >= size) {
        return fail(EINVAL, "%s: '%s' needs %zu bytes, the buffer has %zu", function, text, length + 1, size);
    }
    std::memcpy(buffer, text, length + 1);
    return 0;
}

// After every poll of a listener's endpoint: connections that closed are forgotten (their memory is the
// endpoint's, freed later), established ones not seen before wait for accept.
void track(cf_quic_listener& listener) noexcept {
    const cf::quic::Endpoint& endpoint = *listener.side.endpoint;
    for (std::uint32_t slot = 0; slot < listener.capacity; ++slot) {
        Connection* connection = endpoint.connection(slot);
        std::int32_t& tracked = listener.tracked[slot];
        if (tracked >= 0) {
            cf_quic_connection& handle = listener.handles[tracked];
            if (connection == handle.server_connection && !connection->closed()) continue;
            handle.server_connection = nullptr;   // a held handle now reports CF_ECONNRESET
            if (handle.state == HandleState::pending) handle.state = HandleState::free;
            tracked = -1;
        }
        if (connection == nullptr || connection->closed() || !usable(*connection)) continue;
        for (std::uint32_t h = 0; h < listener.capacity; ++h) {
            cf_quic_connection& handle = listener.handles[h];
            if (handle.state != HandleState::free) continue;
            handle = cf_quic_connection{};
            handle.listener = &listener;
            handle.server_connection = connection;
            handle.state = HandleState::pending;
            handle.accept_order = listener.next_order++;
            tracked = static_cast<std::int32_t>(h);
            break;
        }
    }
}

}  // namespace

extern "C" {

void cf_quic_config_init(cf_quic_config_t* config) {
    if (config == nullptr) return;
    const cf::quic::ConnectionPoolConfig pool;
    *config = cf_quic_config_t{};
    config->struct_size = sizeof(cf_quic_config_t);
    config->max_connections = 16;
    config->verify_peer = 1;
    config->max_channels = kDefaultMaxChannels;
    config->stream_window = 32 * 1024;
    config->connection_window = 1024 * 1024;
    config->max_message_bytes = 8 * 1024;
    config->pool_max_per_peer = pool.max_per_peer;
    config->pool_min_idle = pool.min_idle;
    config->max_peers = pool.max_peers;
    config->idle_timeout_ns = 30'000'000'000ULL;
    config->handshake_timeout_ns = pool.handshake_timeout_ns;
}

int cf_quic_listener_create(const cf_quic_config_t* config, cf_quic_listener_t** listener) {
    if (config == nullptr || listener == nullptr) {
        return fail(EINVAL, "cf_quic_listener_create: config or listener is NULL");
    }
    std::unique_ptr<cf_quic_listener> handle(new (std::nothrow) cf_quic_listener());
    if (handle == nullptr) return fail(ENOMEM, "cf_quic_listener_create: out of memory");
    cf::quic::EndpointConfig endpoint;
    if (const int rc = prepare("cf_quic_listener_create", config, cf::quic::EndpointRole::server, endpoint,
                               handle->side);
        rc != 0) {
        return cf::capi::api_status(rc);
    }
    handle->capacity = config->max_connections;
    handle->handles.reset(new (std::nothrow) cf_quic_connection[handle->capacity]);
    handle->tracked.reset(new (std::nothrow) std::int32_t[handle->capacity]);
    if (handle->handles == nullptr || handle->tracked == nullptr) {
        return fail(ENOMEM, "cf_quic_listener_create: out of memory");
    }
    for (std::uint32_t i = 0; i < handle->capacity; ++i) handle->tracked[i] = -1;
    const cf::capi::Call status_of("cf_quic_listener_create");
    if (const int rc = cf::quic::Endpoint::open(endpoint, handle->side.endpoint); rc != 0) {
        return rc == -EINVAL ? fail_with_prefix(EINVAL, "cf_quic_listener_create") : status_of(rc);
    }
    *listener = handle.release();
    return 0;
}

int cf_quic_listener_destroy(cf_quic_listener_t* listener) {
    delete listener;
    return 0;
}

int cf_quic_listener_poll(cf_quic_listener_t* listener) {
    if (listener == nullptr) return fail(EINVAL, "cf_quic_listener_poll: listener is NULL");
    const int moved = listener->side.endpoint->poll(cf::platform::monotonic_ns());
    track(*listener);
    return moved;
}

int cf_quic_listener_accept(cf_quic_listener_t* listener, cf_quic_connection_t** connection) {
    if (listener == nullptr || connection == nullptr) {
        return fail(EINVAL, "cf_quic_listener_accept: listener or connection is NULL");
    }
    cf_quic_connection* oldest = nullptr;
    for (std::uint32_t h = 0; h < listener->capacity; ++h) {
        cf_quic_connection& handle = listener->handles[h];
        if (handle.state != HandleState::pending || handle.server_connection->closed()) continue;
        if (oldest == nullptr || handle.accept_order < oldest->accept_order) oldest = &handle;
    }
    if (oldest == nullptr) return fail(EAGAIN, "cf_quic_listener_accept: no new connection");
    oldest->state = HandleState::held;
    *connection = oldest;
    return 0;
}

int cf_quic_listener_local_address(const cf_quic_listener_t* listener, char* buffer, size_t size) {
    if (listener == nullptr) return fail(EINVAL, "cf_quic_listener_local_address: listener is NULL");
    return local_address("cf_quic_listener_local_address", *listener->side.endpoint, buffer, size);
}

int cf_quic_client_create(const cf_quic_config_t* config, cf_quic_client_t** client) {
    if (config == nullptr || client == nullptr) return fail(EINVAL, "cf_quic_client_create: config or client is NULL");
    std::unique_ptr<cf_quic_client> handle(new (std::nothrow) cf_quic_client());
    if (handle == nullptr) return fail(ENOMEM, "cf_quic_client_create: out of memory");
    cf::quic::EndpointConfig endpoint;
    if (const int rc = prepare("cf_quic_client_create", config, cf::quic::EndpointRole::client, endpoint,
                               handle->side);
        rc != 0) {
        return cf::capi::api_status(rc);
    }
    const cf::capi::Call status_of("cf_quic_client_create");
    if (const int rc = cf::quic::Endpoint::open(endpoint, handle->side.endpoint); rc != 0) {
        return rc == -EINVAL ? fail_with_prefix(EINVAL, "cf_quic_client_create") : status_of(rc);
    }
    if (const int rc = cf::quic::ConnectionPool::create(*handle->side.endpoint, handle->side.pool, handle->pool);
        rc != 0) {
        return fail_with_prefix(-rc, "cf_quic_client_create");
    }
    const std::size_t leases = std::size_t{config->max_peers} * config->pool_max_per_peer;
    handle->peers.reset(new (std::nothrow) cf_quic_client::Peer[config->max_peers]);
    handle->handles.reset(new (std::nothrow) cf_quic_connection[leases]);
    if (handle->peers == nullptr || handle->handles == nullptr) {
        return fail(ENOMEM, "cf_quic_client_create: out of memory");
    }
    for (std::size_t i = 0; i < leases; ++i) {
        handle->handles[i].client = handle.get();
        handle->handles[i].lease = static_cast<std::uint32_t>(i);
    }
    *client = handle.release();
    return 0;
}

int cf_quic_client_destroy(cf_quic_client_t* client) {
    delete client;
    return 0;
}

int cf_quic_client_poll(cf_quic_client_t* client) {
    if (client == nullptr) return fail(EINVAL, "cf_quic_client_poll: client is NULL");
    return client->pool->poll(cf::platform::monotonic_ns());
}

int cf_quic_client_add_peer(cf_quic_client_t* client, const char* address, const char* server_name, uint32_t* peer) {
    if (client == nullptr || address == nullptr || peer == nullptr) {
        return fail(EINVAL, "cf_quic_client_add_peer: client, address or peer is NULL");
    }
    cf::drivers::PeerAddress parsed;
    if (cf::drivers::PeerAddress::parse(address, parsed) != 0) {
        return fail_with_prefix(EINVAL, "cf_quic_client_add_peer");
    }
    cf::quic::ConnectionPool& pool = *client->pool;
    const char* name = server_name != nullptr ? server_name : "";
    // The same address under another server name is another peer (another TLS context): compare both here.
    for (std::uint32_t i = 0; i < pool.peers(); ++i) {
        const cf_quic_client::Peer& known = client->peers[i];
        if (known.address == parsed && known.server_name == name) {
            *peer = i;
            return fail(EEXIST, "cf_quic_client_add_peer: %s is peer %u already", address, i);
        }
    }
    if (pool.peers() == client->side.pool.max_peers) {
        return fail(ENOSPC, "cf_quic_client_add_peer: all %u peers are in use", client->side.pool.max_peers);
    }
    cf_quic_client::Peer& slot = client->peers[pool.peers()];
    cf_quic_client::Peer made;
    made.address = parsed;
    try {
        made.server_name = name;
        if (server_name != nullptr) {
            cf::quic::TlsConfig tls = client->side.tls->config();
            tls.server_name = server_name;
            if (const int rc = cf::quic::TlsContext::create(tls, made.tls); rc != 0) {
                return fail_with_prefix(-rc, "cf_quic_client_add_peer");
            }
            made.connection = client->side.connection;
            made.connection.tls = made.tls.get();
        }
    } catch (const std::bad_alloc&) {
        return fail(ENOMEM, "cf_quic_client_add_peer: out of memory");
    }
    std::uint32_t index = 0;
    const cf::capi::Call status_of("cf_quic_client_add_peer");
    // The pool keeps a pointer to the slot's connection settings: move them in before handing it over.
    slot = std::move(made);
    if (const int rc = pool.add_peer(parsed, slot.tls != nullptr ? &slot.connection : nullptr, index); rc != 0) {
        slot = cf_quic_client::Peer{};
        return status_of(rc);
    }
    *peer = index;
    return 0;
}

int cf_quic_client_local_address(const cf_quic_client_t* client, char* buffer, size_t size) {
    if (client == nullptr) return fail(EINVAL, "cf_quic_client_local_address: client is NULL");
    return local_address("cf_quic_client_local_address", *client->side.endpoint, buffer, size);
}

int cf_quic_connection_acquire(cf_quic_client_t* client, uint32_t peer, cf_quic_connection_t** connection) {
    if (client == nullptr || connection == nullptr) {
        return fail(EINVAL, "cf_quic_connection_acquire: client or connection is NULL");
    }
    std::uint32_t lease = 0;
    const cf::capi::Call status_of("cf_quic_connection_acquire");
    if (const int rc = client->pool->acquire(peer, lease); rc != 0) return status_of(rc);
    cf_quic_connection& handle = client->handles[lease];
    // The same connection as the last holder's keeps its receive state; a new one in this entry starts afresh.
    handle.state = HandleState::held;
    *connection = &handle;
    return 0;
}

int cf_quic_connection_release(cf_quic_connection_t* connection) {
    if (connection == nullptr) return fail(EINVAL, "cf_quic_connection_release: connection is NULL");
    if (connection->state != HandleState::held) {
        return fail(EINVAL, "cf_quic_connection_release: the connection was released already");
    }
    if (connection->client != nullptr) {
        Connection* live_connection = connection->client->pool->connection(connection->lease);
        if (connection->message_out && live_connection != nullptr) {
            (void)live_connection->streams().release_message(connection->message_channel);
        }
        const cf::capi::Call status_of("cf_quic_connection_release");
        if (const int rc = connection->client->pool->release(connection->lease); rc != 0) return status_of(rc);
        connection->state = HandleState::free;
        connection->message_out = false;
        // A connection that closed while held is gone: whatever comes next in this entry is another one.
        if (live_connection == nullptr) connection->has_current = false;
        return 0;
    }
    if (connection->server_connection == nullptr) {   // closed and forgotten already
        connection->state = HandleState::free;
        return 0;
    }
    if (!connection->server_connection->closed()) connection->server_connection->close(0, true, "released");
    // The listener frees the handle when it sees the connection closed (track()); accept skips closed ones.
    connection->state = HandleState::pending;
    connection->message_out = false;
    connection->has_current = false;
    return 0;
}

int cf_quic_connection_close(cf_quic_connection_t* connection, uint64_t error_code, const char* reason) {
    Connection* live_connection = nullptr;
    if (const int rc = live("cf_quic_connection_close", connection, live_connection); rc != 0) return rc;
    if (error_code >= (uint64_t{1} << 62)) {
        return fail(EINVAL, "cf_quic_connection_close: error_code must be below 2^62");
    }
    live_connection->close(error_code, true, reason != nullptr ? reason : "");
    return 0;
}

int cf_quic_connection_stats(const cf_quic_connection_t* connection, cf_quic_connection_stats_t* stats) {
    if (stats == nullptr) return fail(EINVAL, "cf_quic_connection_stats: stats is NULL");
    if (stats->struct_size < kStatsV1 || stats->struct_size > sizeof(cf_quic_connection_stats_t)) {
        return fail(EINVAL, "cf_quic_connection_stats: set struct_size = sizeof(cf_quic_connection_stats_t)");
    }
    Connection* c = nullptr;
    if (const int rc = live("cf_quic_connection_stats", connection, c); rc != 0) return rc;
    const cf::quic::LossDetection& recovery = c->recovery();
    stats->streams_open = c->streams().open_streams();
    stats->smoothed_rtt_ns = recovery.rtt().smoothed_rtt();
    stats->rtt_variance_ns = recovery.rtt().rttvar();
    stats->min_rtt_ns = recovery.rtt().min_rtt();
    stats->congestion_window = recovery.congestion().congestion_window();
    stats->bytes_in_flight = recovery.bytes_in_flight();
    stats->packets_sent = c->packets_sent();
    stats->packets_received = c->packets_received();
    stats->packets_lost = recovery.stats().packets_lost;
    stats->packets_retransmitted = c->packets_retransmitted();
    stats->bytes_sent = c->bytes_sent();
    stats->bytes_received = c->bytes_received();
    return 0;
}

int cf_quic_channel_open(cf_quic_connection_t* connection, uint64_t* channel) {
    if (channel == nullptr) return fail(EINVAL, "cf_quic_channel_open: channel is NULL");
    Connection* c = nullptr;
    if (const int rc = live("cf_quic_channel_open", connection, c); rc != 0) return rc;
    const std::int64_t id = c->streams().open_stream(cf::quic::StreamDirection::bidirectional);
    if (id == -EAGAIN) return fail(EAGAIN, "cf_quic_channel_open: the peer allows no more channels now");
    if (id == -ENOBUFS) return fail(ENOSPC, "cf_quic_channel_open: all max_channels channels of ours are open");
    if (id < 0) return fail(EIO, "cf_quic_channel_open: failed (%lld)", static_cast<long long>(id));
    *channel = static_cast<uint64_t>(id);
    return 0;
}

int cf_quic_channel_send(cf_quic_connection_t* connection, uint64_t channel, const void* data, size_t length) {
    if (data == nullptr && length != 0) return fail(EINVAL, "cf_quic_channel_send: data is NULL");
    if (const int status = cf::capi::check_count("cf_quic_channel_send", "length", length, 1); status != 0) {
        return status;
    }
    Connection* c = nullptr;
    if (const int rc = live("cf_quic_channel_send", connection, c); rc != 0) return rc;
    static const std::uint8_t kNothing = 0;
    return channel_status("cf_quic_channel_send",
                          c->streams().send_message(channel, data != nullptr ? data : &kNothing, length), channel);
}

int cf_quic_channel_poll(cf_quic_connection_t* connection, uint64_t* channel, const uint8_t** data, size_t* length) {
    if (channel == nullptr || data == nullptr || length == nullptr) {
        return fail(EINVAL, "cf_quic_channel_poll: channel, data or length is NULL");
    }
    Connection* c = nullptr;
    if (const int rc = live("cf_quic_channel_poll", connection, c); rc != 0) return rc;
    if (connection->message_out) {
        return fail(EBUSY, "cf_quic_channel_poll: release the message of channel %llu first",
                    static_cast<unsigned long long>(connection->message_channel));
    }
    cf::quic::StreamTable& streams = c->streams();
    // The channel last read from first: it may hold more whole messages without being readable anew.
    StreamId id = connection->current;
    bool have = connection->has_current;
    for (;;) {
        if (!have) {
            if (!streams.next_readable(id)) break;
        }
        have = false;
        const std::uint8_t* message = nullptr;
        std::size_t size = 0;
        const int rc = streams.next_message(id, message, size);
        if (rc == 1) {
            connection->current = id;
            connection->has_current = true;
            connection->message_out = true;
            connection->message_channel = id;
            *channel = id;
            *data = message;
            *length = size;
            return 1;
        }
        if (rc == -EMSGSIZE) {   // the peer broke the channel's framing: stop it both ways
            (void)streams.stop_sending(id, 0);
            (void)streams.reset(id, 0);
        } else if (rc == -ENODATA) {   // the peer closed it and every message was read: close our side too
            (void)streams.finish(id);
        } else if (rc == -ECONNRESET) {   // the peer reset it: so do we (a stream closes when both parts are done)
            (void)streams.reset(id, 0);
        }
        // 0 (nothing whole yet) or any of the above: on to the next readable channel.
    }
    connection->has_current = false;
    return 0;
}

int cf_quic_channel_release(cf_quic_connection_t* connection, uint64_t channel) {
    Connection* c = nullptr;
    if (const int rc = live("cf_quic_channel_release", connection, c); rc != 0) return rc;
    if (!connection->message_out || connection->message_channel != channel) {
        return fail(EINVAL, "cf_quic_channel_release: no message of channel %llu is out",
                    static_cast<unsigned long long>(channel));
    }
    connection->message_out = false;
    return channel_status("cf_quic_channel_release", c->streams().release_message(channel), channel);
}

int cf_quic_channel_close(cf_quic_connection_t* connection, uint64_t channel) {
    Connection* c = nullptr;
    if (const int rc = live("cf_quic_channel_close", connection, c); rc != 0) return rc;
    return channel_status("cf_quic_channel_close", c->streams().finish(channel), channel);
}

}  // extern "C"
