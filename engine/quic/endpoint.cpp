#include "engine/quic/endpoint.hpp"

#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <new>

#include "engine/quic/address_token.hpp"
#include "engine/quic/packet_header.hpp"
#include "engine/quic/retry_integrity.hpp"
#include "engine/quic/retry_packet.hpp"
#include "engine/quic/stateless_reset.hpp"
#include "engine/quic/version_negotiation.hpp"
#include "platform/os/last_error.hpp"

namespace cf::quic {
namespace {

constexpr std::size_t kConnectionIdBytes = 8;
constexpr std::uint64_t kMinClosingNs = 100'000'000;   // a closed connection lingers at least this long

int random_connection_id(ConnectionId& out) noexcept {
    std::uint8_t bytes[kConnectionIdBytes];
    if (gnutls_rnd(GNUTLS_RND_NONCE, bytes, sizeof bytes) != 0) {
        return platform::fail(EIO, "QUIC: no random bytes for a connection ID");
    }
    (void)out.assign(bytes, sizeof bytes);
    return 0;
}

}  // namespace

struct Endpoint::Slot {
    std::unique_ptr<Connection> connection;
    drivers::PeerAddress peer;
    std::uint64_t closed_at_ns = 0;   // when it was first seen closed (0: open)
};

int Endpoint::open(const EndpointConfig& config, std::unique_ptr<Endpoint>& out) noexcept {
    if (config.connection.tls == nullptr) return platform::fail(EINVAL, "QUIC endpoint: no TLS context");
    if (config.max_connections == 0 || config.max_connections > 65536) {
        return platform::fail(EINVAL, "QUIC endpoint: max_connections must be 1..65536");
    }
    if (config.udp.pool.buffer_bytes < Connection::kMaxDatagramBytes) {
        return platform::fail(EINVAL, "QUIC endpoint: driver buffers must hold %zu bytes",
                              Connection::kMaxDatagramBytes);
    }
    std::unique_ptr<Endpoint> endpoint(new (std::nothrow) Endpoint());
    if (endpoint == nullptr) return platform::fail(ENOMEM, "QUIC endpoint: out of memory");
    endpoint->config_ = config;
    if (config.stateless_reset_key) {
        endpoint->reset_key_.open(*config.stateless_reset_key);
    } else if (const int rc = endpoint->reset_key_.open(); rc != 0) {
        return rc;
    }
    endpoint->config_.connection.reset_key = &endpoint->reset_key_;   // the endpoint does not move: it is on the heap
    endpoint->slots_.reset(new (std::nothrow) Slot[config.max_connections]);
    if (endpoint->slots_ == nullptr) return platform::fail(ENOMEM, "QUIC endpoint: out of memory");
    endpoint->capacity_ = config.max_connections;
    if (config.retry) {
        if (config.connection.tls->config().role != EndpointRole::server) {
            return platform::fail(EINVAL, "QUIC endpoint: only a server sends Retry");
        }
        endpoint->tokens_.reset(new (std::nothrow) AddressTokenIssuer());
        endpoint->retry_tags_.reset(new (std::nothrow) RetryIntegrity());
        if (endpoint->tokens_ == nullptr || endpoint->retry_tags_ == nullptr) {
            return platform::fail(ENOMEM, "QUIC endpoint: out of memory");
        }
        if (const int rc = endpoint->tokens_->open(config.retry_token_lifetime_ns); rc != 0) return rc;
        if (const int rc = endpoint->retry_tags_->open(); rc != 0) return rc;
    }
    if (const int rc = drivers::open_udp(config.driver, config.udp, endpoint->driver_); rc != 0) return rc;
    // io_uring keeps rx_posted buffers in the kernel's hands: without a burst's worth left, nothing could be sent.
    if (endpoint->driver_->kind() == drivers::DriverKind::uring &&
        std::uint64_t{config.udp.rx_posted} + kBurst > config.udp.pool.count) {
        return platform::fail(EINVAL, "QUIC endpoint: io_uring posts %u of %u buffers for receive, leaving fewer than "
                              "%u to send with: raise udp.pool.count or lower udp.rx_posted",
                              config.udp.rx_posted, config.udp.pool.count, kBurst);
    }
    // The kernel takes at most 64 segments and 64 KiB per send.
    if (config.udp.gso) {
        const std::uint32_t fit = std::min<std::uint32_t>(config.udp.pool.buffer_bytes, 65507) /
                                  static_cast<std::uint32_t>(Connection::kMaxDatagramBytes);
        endpoint->gso_segments_ = std::clamp<std::uint32_t>(fit, 1, 64);
    }
    out = std::move(endpoint);
    return 0;
}

Endpoint::~Endpoint() = default;

Connection* Endpoint::connection(std::uint32_t i) const noexcept {
    return i < capacity_ ? slots_[i].connection.get() : nullptr;
}

std::uint32_t Endpoint::connections() const noexcept {
    std::uint32_t count = 0;
    for (std::uint32_t i = 0; i < capacity_; ++i) count += slots_[i].connection != nullptr;
    return count;
}

Endpoint::Slot* Endpoint::free_slot() noexcept {
    for (std::uint32_t i = 0; i < capacity_; ++i) {
        if (slots_[i].connection == nullptr) return &slots_[i];
    }
    return nullptr;
}

int Endpoint::connect(const drivers::PeerAddress& server, std::uint64_t now_ns, Connection*& out,
                      const ConnectionConfig* connection) noexcept {
    const ConnectionConfig& config = connection != nullptr ? *connection : config_.connection;
    if (config_.connection.tls->config().role != EndpointRole::client || config.tls == nullptr ||
        config.tls->config().role != EndpointRole::client) {
        return platform::fail(EINVAL, "QUIC endpoint: connect() needs a client TLS context");
    }
    Slot* slot = free_slot();
    if (slot == nullptr) return platform::fail(EUSERS, "QUIC endpoint: all %u connection slots are in use", capacity_);
    ConnectionId local, original;
    if (const int rc = random_connection_id(local); rc != 0) return rc;
    if (const int rc = random_connection_id(original); rc != 0) return rc;
    if (const int rc = Connection::connect(config, local, original, now_ns, slot->connection); rc != 0) {
        return rc;
    }
    slot->peer = server;
    slot->closed_at_ns = 0;
    out = slot->connection.get();
    return 0;
}

Endpoint::Slot* Endpoint::find(const std::uint8_t* datagram, std::size_t size) noexcept {
    PacketParseOptions options;
    options.receiver = config_.connection.tls->config().role;
    options.short_header_dcid_length = kConnectionIdBytes;
    PacketHeader header;
    if (parse_packet_header(datagram, size, options, header) != HeaderStatus::ok) return nullptr;
    for (std::uint32_t i = 0; i < capacity_; ++i) {
        Connection* connection = slots_[i].connection.get();
        if (connection != nullptr && connection->owns_cid(header.dcid)) return &slots_[i];
    }
    return nullptr;
}

// A datagram for no connection: at a server, a client's first Initial opens one (after a Retry, with `retry`), and
// one in a version we do not speak gets Version Negotiation.
void Endpoint::accept(drivers::PacketBuffer& buffer, std::uint64_t now_ns) noexcept {
    const auto* datagram = reinterpret_cast<const std::uint8_t*>(buffer.data);
    if (config_.connection.tls->config().role != EndpointRole::server) {
        ++stats_.unmatched_datagrams;
        return;
    }
    PacketParseOptions options;
    options.receiver = EndpointRole::server;
    options.short_header_dcid_length = kConnectionIdBytes;
    PacketHeader header;
    const HeaderStatus status = parse_packet_header(datagram, buffer.length, options, header);
    if (status == HeaderStatus::unsupported_version && should_send_version_negotiation(buffer.length)) {
        send_version_negotiation(buffer, header);
        return;
    }
    if (status != HeaderStatus::ok || header.type != PacketType::initial || header.dcid.size() < 8) {
        ++stats_.unmatched_datagrams;
        return;
    }
    RetryContext retry;
    if (tokens_ != nullptr) {
        if (header.token.empty()) {
            send_retry(buffer, header, now_ns);
            return;
        }
        retry.retry_scid = ConnectionId::from(header.dcid);
        if (tokens_->check(header.token.data(), header.token.size(), buffer.peer, retry.retry_scid, now_ns,
                           retry.original_dcid) != 0) {
            ++stats_.invalid_tokens;   // forged, expired or from another address: dropped (section 8.1.3)
            return;
        }
    }
    Slot* slot = free_slot();
    ConnectionId local;
    if (slot == nullptr || random_connection_id(local) != 0 ||
        Connection::accept(config_.connection, local, ConnectionId::from(header.dcid), ConnectionId::from(header.scid),
                           now_ns, slot->connection, tokens_ != nullptr ? &retry : nullptr) != 0) {
        ++stats_.connections_refused;
        return;
    }
    ++stats_.connections_accepted;
    slot->peer = buffer.peer;
    slot->closed_at_ns = 0;
    slot->connection->receive_datagram(reinterpret_cast<std::uint8_t*>(buffer.data), buffer.length, now_ns);
}

// A Retry with a token bound to the client's address and a new connection ID for it to use (RFC 9000 section 8.1.2).
void Endpoint::send_retry(const drivers::PacketBuffer& initial, const PacketHeader& header,
                          std::uint64_t now_ns) noexcept {
    RetryFields fields;
    fields.original_dcid = ConnectionId::from(header.dcid);
    fields.dcid = ConnectionId::from(header.scid);
    std::uint8_t token[AddressTokenIssuer::kMaxTokenBytes];
    if (random_connection_id(fields.scid) != 0) return;
    const int token_size = tokens_->issue(initial.peer, fields.original_dcid, fields.scid, now_ns, token, sizeof token);
    if (token_size <= 0) return;
    fields.token = {token, static_cast<std::size_t>(token_size)};
    std::uint8_t scratch[1 + kMaxConnectionIdBytes + 256];   // the pseudo-packet prefix, then the Retry packet
    RetryPacketLayout layout;
    if (write_retry_packet(scratch, sizeof scratch, fields, layout) != 0) return;
    std::uint8_t tag[kRetryIntegrityTagBytes];
    if (retry_tags_->compute(fields.original_dcid.data(), fields.original_dcid.size(), scratch + layout.packet_offset,
                             layout.tag_offset - layout.packet_offset, tag) != 0) {
        return;
    }
    std::memcpy(scratch + layout.tag_offset, tag, sizeof tag);
    drivers::PacketBuffer* buffer = driver_->allocate();
    if (buffer == nullptr) {
        ++stats_.send_failures;
        return;
    }
    const std::size_t size = layout.size - layout.packet_offset;
    std::memcpy(buffer->data, scratch + layout.packet_offset, size);
    buffer->length = static_cast<std::uint32_t>(size);
    buffer->peer = initial.peer;
    send_now(buffer);
    ++stats_.retries_sent;
}

void Endpoint::send_version_negotiation(const drivers::PacketBuffer& datagram, const PacketHeader& header) noexcept {
    drivers::PacketBuffer* buffer = driver_->allocate();
    if (buffer == nullptr) {
        ++stats_.send_failures;
        return;
    }
    std::uint8_t unused = 0;
    (void)gnutls_rnd(GNUTLS_RND_NONCE, &unused, 1);
    ByteWriter writer(reinterpret_cast<std::uint8_t*>(buffer->data), buffer->capacity);
    const std::uint32_t versions[] = {kVersion1};
    if (write_version_negotiation(writer, unused, header.scid, header.dcid, versions) != 0) {
        driver_->release(buffer);
        return;
    }
    buffer->length = static_cast<std::uint32_t>(writer.size());
    buffer->peer = datagram.peer;
    send_now(buffer);
    ++stats_.version_negotiations_sent;
}

void Endpoint::send_now(drivers::PacketBuffer* buffer) noexcept {
    if (driver_->tx_burst(&buffer, 1) != 1) {
        driver_->release(buffer);
        ++stats_.send_failures;
        return;
    }
    ++stats_.datagrams_sent;
}

// A datagram no connection's ID names: a stateless reset for one of ours, a short header packet for a connection
// we do not have (answered with a reset), or what accept() looks at.
void Endpoint::receive_unmatched(drivers::PacketBuffer& buffer, std::uint64_t now_ns) noexcept {
    const auto* datagram = reinterpret_cast<const std::uint8_t*>(buffer.data);
    if (buffer.length == 0 || (datagram[0] & 0x80) != 0) {   // a long header (or nothing)
        accept(buffer, now_ns);
        return;
    }
    for (std::uint32_t i = 0; i < capacity_; ++i) {
        Connection* connection = slots_[i].connection.get();
        if (connection != nullptr && connection->receive_stateless_reset(datagram, buffer.length)) {
            ++stats_.stateless_resets_received;
            return;
        }
    }
    ++stats_.unmatched_datagrams;
    send_stateless_reset(buffer, now_ns);
}

// Section 10.3: the token of the DCID the datagram names, from the static key; smaller than the trigger.
void Endpoint::send_stateless_reset(const drivers::PacketBuffer& trigger, std::uint64_t now_ns) noexcept {
    const std::size_t size = stateless_reset_size(trigger.length);
    if (size == 0 || trigger.length < 1 + kConnectionIdBytes || config_.stateless_resets_per_second == 0) return;
    if (now_ns - reset_window_start_ns_ >= 1'000'000'000 || now_ns < reset_window_start_ns_) {
        reset_window_start_ns_ = now_ns;
        resets_in_window_ = 0;
    }
    if (resets_in_window_ >= config_.stateless_resets_per_second) {
        ++stats_.stateless_resets_suppressed;
        return;
    }
    ConnectionId dcid;
    (void)dcid.assign(reinterpret_cast<const std::uint8_t*>(trigger.data) + 1, kConnectionIdBytes);
    StatelessResetToken token;
    std::uint8_t unpredictable[kStatelessResetSizeCap];
    if (reset_key_.token(dcid, token) != 0 || gnutls_rnd(GNUTLS_RND_NONCE, unpredictable, sizeof unpredictable) != 0) {
        return;
    }
    drivers::PacketBuffer* buffer = driver_->allocate();
    if (buffer == nullptr) {
        ++stats_.send_failures;
        return;
    }
    if (write_stateless_reset(reinterpret_cast<std::uint8_t*>(buffer->data), buffer->capacity, size,
                              {unpredictable, sizeof unpredictable}, token) != 0) {
        driver_->release(buffer);
        return;
    }
    buffer->length = static_cast<std::uint32_t>(size);
    buffer->peer = trigger.peer;
    ++resets_in_window_;
    send_now(buffer);
    ++stats_.stateless_resets_sent;
}

int Endpoint::poll(std::uint64_t now_ns) noexcept {
    // What the application queued since the last turn goes out before we wait on the socket again: one receive
    // system call less between a write and its datagram.
    int sent = flush(now_ns);
    drivers::PacketBuffer* received[kBurst];
    const int count = driver_->rx_burst(received, kBurst);
    for (int i = 0; i < count; ++i) {
        drivers::PacketBuffer& buffer = *received[i];
        if (buffer.segment_size == 0 || buffer.length <= buffer.segment_size) {
            receive(buffer, now_ns);
        } else {
            // A GRO receive: equal datagrams back to back (the last may be shorter), each handled on its own.
            drivers::PacketBuffer segment = buffer;
            for (std::uint32_t offset = 0; offset < buffer.length; offset += buffer.segment_size) {
                segment.data = buffer.data + offset;
                segment.length = std::min<std::uint32_t>(buffer.segment_size, buffer.length - offset);
                segment.capacity = segment.length;
                receive(segment, now_ns);
            }
        }
        driver_->release(&buffer);
    }
    for (std::uint32_t i = 0; i < capacity_; ++i) {
        Slot& slot = slots_[i];
        if (slot.connection == nullptr) continue;
        if (slot.connection->next_timeout() <= now_ns) slot.connection->on_timeout(now_ns);
    }
    sent += flush(now_ns);
    // Free the slots of connections closed long enough ago (three probe timeouts, at least kMinClosingNs).
    for (std::uint32_t i = 0; i < capacity_; ++i) {
        Slot& slot = slots_[i];
        if (slot.connection == nullptr || !slot.connection->closed()) continue;
        if (slot.closed_at_ns == 0) slot.closed_at_ns = now_ns;
        const RttEstimator& rtt = slot.connection->recovery().rtt();
        const std::uint64_t pto = rtt.smoothed_rtt() + 4 * rtt.rttvar();
        const std::uint64_t linger = 3 * pto > kMinClosingNs ? 3 * pto : kMinClosingNs;
        if (now_ns - slot.closed_at_ns >= linger) slot.connection.reset();
    }
    return (count > 0 ? count : 0) + sent;
}

void Endpoint::receive(drivers::PacketBuffer& datagram, std::uint64_t now_ns) noexcept {
    ++stats_.datagrams_received;
    Slot* slot = find(reinterpret_cast<const std::uint8_t*>(datagram.data), datagram.length);
    if (slot == nullptr) {
        receive_unmatched(datagram, now_ns);
        return;
    }
    Connection& connection = *slot->connection;
    const std::uint64_t opened_before = connection.packets_received();
    connection.receive_datagram(reinterpret_cast<std::uint8_t*>(datagram.data), datagram.length, now_ns);
    // Replies follow the peer to a new address only on a datagram that carried a packet that opened: anyone who
    // merely saw the connection ID must not redirect them (path validation is not done yet).
    if (connection.packets_received() != opened_before) slot->peer = datagram.peer;
}

// Every datagram the connections have due, written in place into driver buffers and sent in bursts.
int Endpoint::flush(std::uint64_t now_ns) noexcept {
    drivers::PacketBuffer* batch[kBurst];
    std::uint32_t datagrams_in[kBurst];   // more than one with GSO; read before the driver owns the buffer
    std::uint32_t batched = 0;
    int sent = 0;
    const auto send = [&] {
        const int accepted = driver_->tx_burst(batch, batched);
        const std::uint32_t taken = accepted > 0 ? static_cast<std::uint32_t>(accepted) : 0;
        for (std::uint32_t i = 0; i < taken; ++i) stats_.datagrams_sent += datagrams_in[i];
        for (std::uint32_t i = taken; i < batched; ++i) {   // the queue was full: these are lost like on a wire
            driver_->release(batch[i]);
            stats_.send_failures += datagrams_in[i];
        }
        sent += static_cast<int>(taken);
        batched = 0;
    };
    for (std::uint32_t i = 0; i < capacity_; ++i) {
        Slot& slot = slots_[i];
        if (slot.connection == nullptr) continue;
        for (int guard = 0; guard < 64; ++guard) {
            drivers::PacketBuffer* buffer = driver_->allocate();
            if (buffer == nullptr) {
                ++stats_.send_failures;
                break;
            }
            const std::size_t size = slot.connection->write_datagram(reinterpret_cast<std::uint8_t*>(buffer->data),
                                                                     buffer->capacity, now_ns);
            if (size == 0) {
                driver_->release(buffer);
                break;
            }
            buffer->length = static_cast<std::uint32_t>(size);
            buffer->peer = slot.peer;
            const bool full = size == Connection::kMaxDatagramBytes;
            datagrams_in[batched] = full ? coalesce(*slot.connection, *buffer, now_ns) : 1;
            batch[batched++] = buffer;
            if (batched == kBurst) send();
        }
    }
    if (batched != 0) send();
    return sent;
}

}  // namespace cf::quic

namespace cf::quic {

// GSO: behind a full-size datagram, more of the connection's datagrams go into the same buffer, sent as one with
// UDP_SEGMENT. Every segment but the last must be full size, so a shorter one ends the buffer.
// Returns how many datagrams the buffer holds.
std::uint32_t Endpoint::coalesce(Connection& connection, drivers::PacketBuffer& buffer, std::uint64_t now_ns) noexcept {
    constexpr std::uint32_t kSegment = Connection::kMaxDatagramBytes;
    std::uint32_t segments = 1;
    while (segments < gso_segments_ && buffer.capacity - buffer.length >= kSegment) {
        const std::size_t size =
            connection.write_datagram(reinterpret_cast<std::uint8_t*>(buffer.data) + buffer.length, kSegment, now_ns);
        if (size == 0) break;
        buffer.length += static_cast<std::uint32_t>(size);
        ++segments;
        if (size != kSegment) break;
    }
    if (segments == 1) return 1;
    buffer.segment_size = kSegment;
    stats_.datagrams_coalesced += segments - 1;
    return segments;
}

}  // namespace cf::quic
