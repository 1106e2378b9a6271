#include "engine/quic/connection.hpp"

#include <cerrno>
#include <algorithm>
#include <cstring>
#include <new>
#include <span>

#include "engine/quic/frames.hpp"
#include "engine/quic/initial_secrets.hpp"
#include "engine/quic/loss_detection.hpp"
#include "engine/quic/packet_header.hpp"
#include "engine/quic/packet_header_writer.hpp"
#include "engine/quic/packet_number.hpp"
#include "engine/quic/retry_integrity.hpp"
#include "engine/quic/retry_packet.hpp"
#include "engine/quic/version_negotiation.hpp"
#include "platform/os/last_error.hpp"

namespace cf::quic {
namespace {

constexpr int kInitial = 0, kHandshake = 1, kApplication = 2;

constexpr EncryptionLevel kLevelOf[3] = {EncryptionLevel::initial, EncryptionLevel::handshake,
                                         EncryptionLevel::application};
constexpr FramePacketType kFrameTypeOf[3] = {FramePacketType::initial, FramePacketType::handshake,
                                             FramePacketType::one_rtt};
constexpr PacketNumberSpace kRecoverySpaceOf[3] = {PacketNumberSpace::initial, PacketNumberSpace::handshake,
                                                   PacketNumberSpace::application};
constexpr std::uint64_t kAmplificationFactor = 3;   // RFC 9000 section 8.1

int space_of(EncryptionLevel level) noexcept {
    switch (level) {
        case EncryptionLevel::initial: return kInitial;
        case EncryptionLevel::handshake: return kHandshake;
        default: return kApplication;
    }
}

}  // namespace

const char* connection_state_name(ConnectionState state) noexcept {
    switch (state) {
        case ConnectionState::handshaking: return "handshaking";
        case ConnectionState::established: return "established";
        case ConnectionState::confirmed: return "confirmed";
        case ConnectionState::closing: return "closing";
        case ConnectionState::draining: return "draining";
        case ConnectionState::timed_out: return "timed out";
        case ConnectionState::abandoned: return "abandoned";
    }
    return "?";
}

namespace {

// Packets in flight that can be tracked (powers of two). 1-RTT: 2048 full datagrams are 2.9 MB, a 2.4 Gbit/s path at
// 10 ms of round trip (24 Gbit/s at 1 ms); its frame records are left uninitialised until packets use them, so a
// connection's start does not pay for them. Initial and Handshake: a handful.
constexpr std::uint32_t kApplicationSentLog = 2048;
constexpr std::uint32_t kHandshakeSentLog = 64;

// Where a 1-RTT packet's frame records are (stream_records_, cid_records_).
std::size_t record_index(std::uint64_t packet_number) noexcept { return packet_number & (kApplicationSentLog - 1); }

}  // namespace

// One packet number space: its keys, what arrived (acknowledgements), its CRYPTO stream both ways, and a log of the
// packets sent in it (what each carried, to act on its acknowledgement).
struct Connection::Space {
    struct Sent {
        std::uint64_t packet_number = kNoPacketNumber;   // kNoPacketNumber: the entry is free
        std::uint64_t crypto_offset = 0;
        std::uint32_t crypto_length = 0;
        std::uint64_t largest_in_our_ack = kNoPacketNumber;   // the ACK frame it carried, if any
        bool handshake_done = false;
        bool streams = false;      // application space: stream_records_[record_index(packet_number)] holds its frames
        bool cid_frames = false;   // application space: cid_records_[record_index(packet_number)] holds them
    };

    int index = 0;
    PacketProtector read, write;
    AckTracker acks;
    SendBuffer crypto_out;
    ReceiveBuffer crypto_in;
    std::uint64_t next_packet_number = 0;
    std::uint64_t largest_received = kNoPacketNumber;
    std::uint32_t probes_due = 0;   // ack-eliciting packets a PTO asks for
    bool discarded = false;
    UninitializedArray<Sent> sent_memory;
    std::span<Sent> sent;

    Sent& entry(std::uint64_t packet_number) noexcept { return sent[packet_number & (sent.size() - 1)]; }
    // The entries written so far: every packet number sent writes its own (write_packet), so until the log wraps
    // the ones beyond next_packet_number are still uninitialised and must not be read.
    std::span<Sent> written() noexcept {
        return sent.first(static_cast<std::size_t>(std::min<std::uint64_t>(next_packet_number, sent.size())));
    }
};


// What TLS hands the connection.
class Connection::TlsGlue final : public TlsEvents {
public:
    explicit TlsGlue(Connection& connection) noexcept : connection_(connection) {}

    std::uint64_t on_handshake_bytes(EncryptionLevel level, const std::uint8_t* data,
                                     std::size_t size) noexcept override {
        Space& space = *connection_.spaces_[space_of(level)];
        if (space.crypto_out.write(data, size) != size) return code_of(TransportError::internal_error);
        return 0;
    }
    std::uint64_t on_secret(EncryptionLevel level, SecretDirection direction, CipherSuite suite,
                            const std::uint8_t* secret, std::size_t size) noexcept override {
        if (level == EncryptionLevel::early_data) return 0;   // 0-RTT is not offered yet
        Space& space = *connection_.spaces_[space_of(level)];
        PacketProtector& protector = direction == SecretDirection::read ? space.read : space.write;
        const bool key_update = level == EncryptionLevel::application;
        // Our write side derives the next phase's keys only when it updates; the read side has them ahead.
        const bool read = direction == SecretDirection::read;
        if (protector.install(suite, secret, size, key_update, read) != 0) {
            return code_of(TransportError::internal_error);
        }
        if (level == EncryptionLevel::handshake && direction == SecretDirection::write) {
            connection_.recovery_->on_handshake_keys();
        }
        return 0;
    }
    std::uint64_t on_peer_transport_parameters(const std::uint8_t* data, std::size_t size) noexcept override {
        return connection_.check_peer_parameters(data, size);
    }

private:
    Connection& connection_;
};

Connection::Connection(EndpointRole role) noexcept
    : role_(role), pacer_(initial_congestion_window(kMaxDatagramBytes)) {}
Connection::~Connection() = default;

int Connection::connect(const ConnectionConfig& config, const ConnectionId& local_cid,
                        const ConnectionId& original_dcid, std::uint64_t now_ns,
                        std::unique_ptr<Connection>& out) noexcept {
    if (original_dcid.size() < 8) return platform::fail(EINVAL, "QUIC: a client's first DCID needs 8 to 20 bytes");
    std::unique_ptr<Connection> connection(new (std::nothrow) Connection(EndpointRole::client));
    if (connection == nullptr) return platform::fail(ENOMEM, "QUIC: out of memory");
    connection->peer_cid_ = original_dcid;   // until the server's first Initial names its own
    connection->first_dcid_ = original_dcid;
    if (const int rc = connection->start(config, local_cid, original_dcid, now_ns); rc != 0) return rc;
    out = std::move(connection);
    return 0;
}

int Connection::accept(const ConnectionConfig& config, const ConnectionId& local_cid,
                       const ConnectionId& client_dcid, const ConnectionId& client_cid, std::uint64_t now_ns,
                       std::unique_ptr<Connection>& out, const RetryContext* retry) noexcept {
    std::unique_ptr<Connection> connection(new (std::nothrow) Connection(EndpointRole::server));
    if (connection == nullptr) return platform::fail(ENOMEM, "QUIC: out of memory");
    connection->peer_cid_ = client_cid;
    connection->peer_cid_chosen_ = true;
    if (retry != nullptr) {
        connection->retry_received_ = true;
        connection->first_dcid_ = retry->original_dcid;
        connection->retry_scid_ = retry->retry_scid;
    } else {
        connection->first_dcid_ = client_dcid;
    }
    if (const int rc = connection->start(config, local_cid, client_dcid, now_ns); rc != 0) return rc;
    out = std::move(connection);
    return 0;
}

int Connection::start(const ConnectionConfig& config, const ConnectionId& local_cid,
                      const ConnectionId& original_dcid, std::uint64_t) noexcept {
    if (config.tls == nullptr || config.tls->config().role != role_) {
        return platform::fail(EINVAL, "QUIC: the TLS context is missing or of the other role");
    }
    const std::uint32_t ring = config.crypto_buffer_bytes;
    if (ring < 4096 || (ring & (ring - 1)) != 0) {
        return platform::fail(EINVAL, "QUIC: crypto_buffer_bytes must be a power of two of at least 4096");
    }
    local_cid_ = local_cid;
    original_dcid_ = original_dcid;
    reset_key_ = config.reset_key;
    crypto_memory_.reset(new (std::nothrow) std::uint8_t[std::size_t{ring} * 2 * 3]);
    if (crypto_memory_ == nullptr) return platform::fail(ENOMEM, "QUIC: out of memory");
    for (int i = 0; i < 3; ++i) {
        spaces_[i].reset(new (std::nothrow) Space());
        if (spaces_[i] == nullptr) return platform::fail(ENOMEM, "QUIC: out of memory");
        Space& space = *spaces_[i];
        space.index = i;
        const std::uint32_t log = i == kApplication ? kApplicationSentLog : kHandshakeSentLog;
        space.sent_memory = allocate_uninitialized<Space::Sent>(log);
        if (space.sent_memory == nullptr) return platform::fail(ENOMEM, "QUIC: out of memory");
        space.sent = {space.sent_memory.get(), log};
        space.acks = AckTracker(i == kApplication ? config.parameters.max_ack_delay_ms * 1'000'000 : 0);
        (void)space.crypto_out.init(crypto_memory_.get() + std::size_t{ring} * (2 * i), ring);
        (void)space.crypto_in.init(crypto_memory_.get() + std::size_t{ring} * (2 * i + 1), ring);
    }
    LossDetectionConfig recovery;
    recovery.is_server = role_ == EndpointRole::server;
    recovery.application_capacity = kApplicationSentLog;   // the sent log keeps what the records point to
    recovery.initial_capacity = recovery.handshake_capacity = kHandshakeSentLog;
    recovery.congestion.algorithm = config.congestion;
    if (const int rc = LossDetection::create(recovery, recovery_); rc != 0) {
        return platform::fail(-rc, "QUIC: loss recovery could not be set up");
    }
    address_validated_ = role_ == EndpointRole::client;   // a server validates the client's address (section 8.1)
    if (const int rc = install_initial_keys(original_dcid); rc != 0) return rc;
    const bool server = role_ == EndpointRole::server;
    if (const int rc = StreamTable::create(config.streams, role_, streams_); rc != 0) return rc;
    // Not initialised (uninitialized_array.hpp): write_packet empties a record before a packet uses it, and only a
    // packet that wrote one reads it back.
    stream_records_ = allocate_uninitialized<SentStreamFrames>(kApplicationSentLog);
    cid_records_ = allocate_uninitialized<SentCidFrames>(kApplicationSentLog);
    if (stream_records_ == nullptr || cid_records_ == nullptr) return platform::fail(ENOMEM, "QUIC: out of memory");
    // Our transport parameters: the stream table's limits and windows, and the connection IDs section 7.3 asks for.
    local_parameters_ = config.parameters;
    streams_->local_parameters(local_parameters_);
    local_parameters_.initial_source_connection_id = local_cid;
    if (server) {
        local_parameters_.original_destination_connection_id = first_dcid_;
        if (retry_received_) local_parameters_.retry_source_connection_id = retry_scid_;
    }
    // Our handshake ID is sequence 0 of ours; a server gives its token as a transport parameter (section 10.3).
    local_parameters_.active_connection_id_limit = PeerConnectionIds::kMaxLimit;
    StatelessResetToken handshake_token;
    if (make_reset_token(local_cid, handshake_token) != 0) {
        return platform::fail(EIO, "QUIC: no stateless reset token for the handshake connection ID");
    }
    local_ids_.reset(local_cid, handshake_token);
    if (server && !local_cid.empty()) local_parameters_.stateless_reset_token = handshake_token;
    std::uint8_t encoded[TlsSession::kMaxTransportParameterBytes];
    const int size = encode_transport_parameters(local_parameters_, role_, encoded, sizeof encoded);
    if (size < 0) return platform::fail(EINVAL, "QUIC: our transport parameters do not encode");
    glue_.reset(new (std::nothrow) TlsGlue(*this));
    if (glue_ == nullptr) return platform::fail(ENOMEM, "QUIC: out of memory");
    if (const int rc = TlsSession::create(*config.tls, *glue_, tls_); rc != 0) return rc;
    (void)tls_->set_local_transport_parameters(encoded, static_cast<std::size_t>(size));
    if (!server) {
        if (const std::uint64_t code = tls_->start(); code != 0) fail(code, tls_->error_message().c_str());
    }
    return 0;
}

// Initial keys come from the DCID of the client's Initials (RFC 9001 section 5.2): its first one, or a Retry's SCID.
int Connection::install_initial_keys(const ConnectionId& dcid) noexcept {
    InitialSecrets secrets;
    if (const int rc = derive_initial_secrets(dcid.data(), dcid.size(), secrets); rc != 0) return rc;
    const bool server = role_ == EndpointRole::server;
    Space& initial = *spaces_[kInitial];
    if (initial.write.install(kInitialCipherSuite, secrets.write_secret(server), kInitialSecretBytes, false) != 0 ||
        initial.read.install(kInitialCipherSuite, secrets.read_secret(server), kInitialSecretBytes, false) != 0) {
        return -EIO;
    }
    return 0;
}

std::uint64_t Connection::check_peer_parameters(const std::uint8_t* data, std::size_t size) noexcept {
    const EndpointRole peer = peer_of(role_);
    if (decode_transport_parameters(data, size, peer, peer_parameters_) != TransportError::no_error) {
        set_message("the peer's transport parameters are malformed or out of range");
        return code_of(TransportError::transport_parameter_error);
    }
    HandshakeConnectionIds seen;
    seen.peer_initial_scid = peer_cid_;
    seen.original_dcid = first_dcid_;
    seen.retry_received = retry_received_;
    seen.retry_scid = retry_scid_;
    if (check_handshake_connection_ids(peer_parameters_, role_, seen) != TransportError::no_error) {
        set_message("the peer's connection-ID transport parameters do not match its packets");
        return code_of(TransportError::transport_parameter_error);
    }
    streams_->set_peer_parameters(peer_parameters_);
    recovery_->set_max_ack_delay(peer_parameters_.max_ack_delay_ms * 1'000'000);
    return 0;
}

void Connection::set_message(const char* why) noexcept {
    if (!error_message_.empty()) return;   // the first reason stands
    try {
        error_message_ = why;
    } catch (...) {   // out of memory: the code says enough
    }
}

void Connection::fail(std::uint64_t error_code, const char* why, std::uint64_t frame_type) noexcept {
    if (closed()) return;
    error_code_ = error_code;
    set_message(why);
    close_frame_type_ = frame_type;
    close_application_ = false;
    close_pending_ = true;
    state_ = ConnectionState::closing;
}

void Connection::close(std::uint64_t error_code, bool application, const char* reason) noexcept {
    if (closed()) return;
    fail(error_code, reason);
    close_application_ = application;
    try {
        close_reason_.assign(reason, std::min<std::size_t>(std::strlen(reason), kMaxCloseReasonBytes));
    } catch (...) {   // out of memory: close without a reason
    }
}

void Connection::discard(Space& space) noexcept {
    if (space.discarded) return;
    space.read.clear();
    space.write.clear();
    space.discarded = true;
    if (space.index != kApplication) {
        recovery_->discard_space(kRecoverySpaceOf[space.index], now_ns_);   // in flight no more, nothing to resend
        for (Space::Sent& sent : space.written()) sent = Space::Sent{};
    }
}

// ---- receiving ----

void Connection::receive_datagram(std::uint8_t* data, std::size_t size, std::uint64_t now_ns) noexcept {
    if (state_ == ConnectionState::draining) return;
    now_ns_ = now_ns;
    bytes_received_ += size;
    if (!address_validated_) recovery_->set_amplification_limited(false, now_ns);   // new sending credit
    PacketParseOptions options;
    options.receiver = role_;
    options.short_header_dcid_length = local_cid_.size();
    // A stateless reset is told by its last 16 bytes once nothing in it opened: keep them before decrypting in place.
    std::uint8_t tail[StatelessResetToken::kSize];
    const bool may_be_reset = size >= kMinStatelessResetSize && peer_ids_ready_ && peer_ids_.any_token();
    if (may_be_reset) std::memcpy(tail, data + size - sizeof tail, sizeof tail);
    const std::uint64_t opened_before = packets_received_;
    PacketWalker walker(data, size, options);
    PacketHeader header;
    while (walker.next(header)) {
        // The walker read `data`: the packet is ours to decrypt in place.
        receive_packet(data + (header.packet - data), header, now_ns);
        if (state_ == ConnectionState::draining) return;
    }
    if (walker.status() != HeaderStatus::ok) ++dropped_packets_;
    if (may_be_reset && packets_received_ == opened_before && peer_ids_.matches_reset_token(tail)) {
        on_stateless_reset();
    }
}

void Connection::receive_packet(std::uint8_t* packet, const PacketHeader& header, std::uint64_t now_ns) noexcept {
    int index = -1;
    switch (header.type) {
        case PacketType::initial: index = kInitial; break;
        case PacketType::handshake: index = kHandshake; break;
        case PacketType::one_rtt: index = kApplication; break;
        case PacketType::retry:   // only a client gets them (the parser drops them at a server)
            receive_retry(header);
            return;
        case PacketType::version_negotiation:
            receive_version_negotiation(header);
            return;
        default: break;   // 0-RTT is not offered yet
    }
    // Ours: an active connection ID of ours, or (a server, before the client learned ours) the client's original
    // DCID.
    packet_dcid_sequence_ = local_ids_.find(header.dcid);
    const bool addressed_to_us = packet_dcid_sequence_ != LocalConnectionIds::kNone ||
                                 (role_ == EndpointRole::server && equals(original_dcid_, header.dcid));
    if (index < 0 || !addressed_to_us) {
        ++dropped_packets_;
        return;
    }
    Space& space = *spaces_[index];
    if (space.discarded || !space.read.installed()) {
        ++dropped_packets_;
        return;
    }
    ProtectedFields fields;
    if (space.read.remove_header_protection(packet, header.size, header.pn_offset, &fields) != 0) {
        ++dropped_packets_;
        return;
    }
    const std::uint64_t packet_number =
        decode_packet_number(space.largest_received, fields.truncated_packet_number, fields.packet_number_length);
    // The other Key Phase bit (RFC 9001 section 6.3): an older packet of the previous phase, or the peer's next one.
    KeyGeneration generation = KeyGeneration::current;
    if (index == kApplication && key_phase_of(fields.first_byte) != space.read.key_phase()) {
        const bool older = space.read.has_previous() && packet_number < read_phase_start_;
        generation = older ? KeyGeneration::previous : KeyGeneration::next;
    }
    const std::size_t header_bytes = header.pn_offset + fields.packet_number_length;
    std::size_t payload_bytes = 0;
    if (space.read.open_packet(packet, header_bytes, header.size, packet_number, &payload_bytes, generation) != 0) {
        ++dropped_packets_;
        return;
    }
    if (generation == KeyGeneration::next) {
        // The peer moved to the next phase: so do our read keys and, if we did not start it, our write keys.
        if (space.read.update_keys() != 0) {
            fail(code_of(TransportError::internal_error), "a key update could not be derived");
            return;
        }
        read_phase_start_ = packet_number;
        if (space.write.key_phase() != space.read.key_phase()) {
            if (space.write.update_keys() != 0) {
                fail(code_of(TransportError::internal_error), "a key update could not be derived");
                return;
            }
            write_phase_start_ = space.next_packet_number;
            write_phase_acked_ = false;
        }
    }
    // Authentic from here on.
    if (check_reserved_bits(fields.first_byte) != TransportError::no_error) {
        fail(code_of(TransportError::protocol_violation), "reserved header bits set");
        return;
    }
    if (space.acks.seen(packet_number)) {
        ++dropped_packets_;
        return;
    }
    ++packets_received_;
    restart_idle_timer(now_ns);
    restart_idle_on_send_ = true;
    if (space.largest_received == kNoPacketNumber || packet_number > space.largest_received) {
        space.largest_received = packet_number;
    }
    // A client sends to the server's own connection ID from its first Initial on (section 7.2).
    if (!peer_cid_chosen_ && index == kInitial) {
        peer_cid_.assign(header.scid);
        peer_cid_chosen_ = true;
    }
    FrameParser parser({packet + header_bytes, payload_bytes}, kFrameTypeOf[index]);
    refuse_packet_ = false;
    streams_->set_clock(now_ns, recovery_->rtt().smoothed_rtt());
    process_frames(space, parser, now_ns);
    if (closed()) return;
    // A STREAM frame the receive ring could not keep: unacknowledged, the peer sends it again.
    if (!refuse_packet_) (void)space.acks.on_packet(packet_number, parser.ack_eliciting(), false, now_ns);
    // A server is done with Initial keys once a Handshake packet opened (RFC 9001 section 4.9.1); such a packet
    // also proves the client's address (RFC 9000 section 8.1).
    if (role_ == EndpointRole::server && index == kHandshake) {
        address_validated_ = true;
        discard(*spaces_[kInitial]);
    }
}

// A Retry (RFC 9000 section 17.2.5.2): its tag must verify against our first DCID; only one is followed, and none
// once a server packet was processed. Then Initials go to the Retry's SCID, with new Initial keys and its token,
// and the ClientHello is sent again.
void Connection::receive_retry(const PacketHeader& header) noexcept {
    if (role_ != EndpointRole::client || retry_received_ || packets_received_ != 0 || header.token.empty() ||
        equals(first_dcid_, header.scid) || header.token.size() > kMaxTokenBytes) {
        ++dropped_packets_;
        return;
    }
    RetryIntegrity integrity;
    if (integrity.open() != 0 ||
        integrity.verify(first_dcid_.data(), first_dcid_.size(), header.packet, header.size) != 0) {
        ++dropped_packets_;
        return;
    }
    token_.reset(new (std::nothrow) std::uint8_t[header.token.size()]);
    if (token_ == nullptr) {
        fail(code_of(TransportError::internal_error), "out of memory for the Retry token");
        return;
    }
    std::memcpy(token_.get(), header.token.data(), header.token.size());
    token_size_ = header.token.size();
    retry_received_ = true;
    retry_scid_.assign(header.scid);
    peer_cid_ = retry_scid_;
    original_dcid_ = retry_scid_;
    if (install_initial_keys(retry_scid_) != 0) {
        fail(code_of(TransportError::internal_error), "Initial keys for the Retry could not be derived");
        return;
    }
    // Everything in the Initial CRYPTO stream goes again, under the new keys (packet numbers go on).
    Space& initial = *spaces_[kInitial];
    initial.crypto_out.on_lost(0, static_cast<std::size_t>(initial.crypto_out.sent_offset()), false);
    for (Space::Sent& sent : initial.written()) sent = Space::Sent{};
}

void Connection::receive_version_negotiation(const PacketHeader& header) noexcept {
    if (role_ != EndpointRole::client) {
        ++dropped_packets_;
        return;
    }
    const VersionNegotiationVerdict verdict = client_version_negotiation_verdict(
        header, kVersion1, first_dcid_, local_cid_, packets_received_ != 0 || retry_received_);
    if (verdict == VersionNegotiationVerdict::ignore) {
        ++dropped_packets_;
        return;
    }
    state_ = ConnectionState::abandoned;   // no CONNECTION_CLOSE: the server would not understand it
    set_message("the server speaks none of our QUIC versions");
}

void Connection::process_frames(Space& space, FrameParser& parser, std::uint64_t) noexcept {
    Frame frame;
    while (parser.next(frame)) {
        switch (kind_of(frame)) {
            case FrameKind::padding:
            case FrameKind::ping:
                break;
            case FrameKind::ack:
                on_ack(space, std::get<AckFrame>(frame));
                break;
            case FrameKind::crypto: {
                const auto& crypto = std::get<CryptoFrame>(frame);
                const TransportError error =
                    space.crypto_in.receive(crypto.offset, crypto.data.data(), crypto.data.size(), false);
                if (error == TransportError::flow_control_error) {   // beyond the ring: more than we buffer
                    fail(code_of(TransportError::crypto_buffer_exceeded), "too much CRYPTO data ahead", 0x06);
                } else if (error != TransportError::no_error) {
                    fail(code_of(error), "a bad CRYPTO frame", 0x06);
                } else {
                    feed_tls(space);
                }
                break;
            }
            case FrameKind::connection_close: {
                const auto& close = std::get<ConnectionCloseFrame>(frame);
                error_code_ = close.error_code;
                try {
                    error_message_.assign(reinterpret_cast<const char*>(close.reason.data()),
                                          std::min(close.reason.size(), kMaxCloseReasonBytes));
                } catch (...) {
                }
                close_pending_ = false;
                state_ = ConnectionState::draining;
                return;
            }
            case FrameKind::handshake_done:
                if (role_ == EndpointRole::server) {
                    fail(code_of(TransportError::protocol_violation), "a client sent HANDSHAKE_DONE", 0x1e);
                    return;
                }
                if (state_ == ConnectionState::established || state_ == ConnectionState::handshaking) {
                    state_ = ConnectionState::confirmed;
                    recovery_->on_handshake_confirmed(now_ns_);
                }
                discard(*spaces_[kHandshake]);
                break;
            case FrameKind::new_token:
                if (role_ == EndpointRole::server) {
                    fail(code_of(TransportError::protocol_violation), "a client sent NEW_TOKEN", 0x07);
                    return;
                }
                break;   // address validation tokens are not kept yet
            case FrameKind::stream:
            case FrameKind::reset_stream:
            case FrameKind::stop_sending:
            case FrameKind::max_data:
            case FrameKind::max_stream_data:
            case FrameKind::max_streams:
            case FrameKind::data_blocked:
            case FrameKind::stream_data_blocked:
            case FrameKind::streams_blocked: {
                const TransportError error = on_stream_frame(frame);
                if (error != TransportError::no_error) {
                    fail(code_of(error), "a stream or flow-control frame broke a rule", wire_type_of(frame));
                    return;
                }
                break;
            }
            case FrameKind::new_connection_id:
            case FrameKind::retire_connection_id:
                if (on_connection_id_frame(frame) != TransportError::no_error) return;
                break;
            default:
                ++unhandled_frames_;   // paths, datagrams: later slices
                break;
        }
        if (closed()) return;
    }
    if (parser.failed()) fail(code_of(parser.error()), "a malformed frame", parser.error_frame_type());
}

TransportError Connection::on_stream_frame(const Frame& frame) noexcept {
    StreamTable& table = *streams_;
    switch (kind_of(frame)) {
        case FrameKind::stream: {
            bool stored = true;
            const TransportError error = table.on_stream_frame(std::get<StreamFrame>(frame), &stored);
            if (!stored) refuse_packet_ = true;
            return error;
        }
        case FrameKind::reset_stream: return table.on_reset_stream(std::get<ResetStreamFrame>(frame));
        case FrameKind::stop_sending: return table.on_stop_sending(std::get<StopSendingFrame>(frame));
        case FrameKind::max_data: return table.on_max_data(std::get<MaxDataFrame>(frame));
        case FrameKind::max_stream_data: return table.on_max_stream_data(std::get<MaxStreamDataFrame>(frame));
        case FrameKind::max_streams: return table.on_max_streams(std::get<MaxStreamsFrame>(frame));
        case FrameKind::data_blocked: return table.on_data_blocked(std::get<DataBlockedFrame>(frame));
        case FrameKind::stream_data_blocked:
            return table.on_stream_data_blocked(std::get<StreamDataBlockedFrame>(frame));
        case FrameKind::streams_blocked: return table.on_streams_blocked(std::get<StreamsBlockedFrame>(frame));
        default: return TransportError::no_error;
    }
}

void Connection::feed_tls(Space& space) noexcept {
    for (;;) {
        const ReceiveBuffer::Spans spans = space.crypto_in.peek();
        if (spans.size() == 0) break;
        const std::pair<const std::uint8_t*, std::size_t> parts[] = {{spans.first, spans.first_size},
                                                                      {spans.second, spans.second_size}};
        for (const auto& [data, size] : parts) {
            if (size == 0) continue;
            if (const std::uint64_t code = tls_->receive(kLevelOf[space.index], data, size); code != 0) {
                fail(code, tls_->error_message().c_str());
                return;
            }
        }
        space.crypto_in.consume(spans.size());
    }
    if (tls_->handshake_complete() && state_ == ConnectionState::handshaking) {
        state_ = ConnectionState::established;
        // The peer's handshake ID and parameters are final: its IDs start from them, and ours go out.
        init_peer_cids();
        issue_connection_ids();
        if (role_ == EndpointRole::server) {
            // The server's handshake is confirmed at completion (RFC 9001 section 4.1.2): it tells the client, and
            // its Handshake keys go.
            state_ = ConnectionState::confirmed;
            handshake_done_pending_ = true;
            recovery_->on_handshake_confirmed(now_ns_);
            discard(*spaces_[kHandshake]);
        }
    }
}

void Connection::on_ack(Space& space, const AckFrame& ack) noexcept {
    AckFrameInfo info;
    info.ranges = ack.kept_ranges();
    // The peer's ack_delay_exponent (3 until its transport parameters arrive), microseconds to nanoseconds.
    const std::uint64_t exponent = peer_parameters_.ack_delay_exponent;
    const bool huge = ack.ack_delay > (UINT64_MAX >> 10) >> exponent;   // would overflow: the recovery caps it
    info.ack_delay_ns = huge ? UINT64_MAX : (ack.ack_delay << exponent) * 1000;
    info.ecn = ack.has_ecn ? &ack.ecn : nullptr;
    const TransportError error = recovery_->on_ack_received(kRecoverySpaceOf[space.index], info, now_ns_);
    if (error != TransportError::no_error) {
        fail(code_of(error), "an ACK frame that does not match what was sent", 0x02);
        return;
    }
    for (const SentPacket& packet : recovery_->acked()) {
        if (space.index == kApplication && !write_phase_acked_ && packet.packet_number >= write_phase_start_) {
            write_phase_acked_ = true;
            // RFC 9001 section 6.5: the peer may make its next keys only about a PTO after this update, and drops
            // what it cannot open until then; so the next update waits three PTOs.
            const RttEstimator& rtt = recovery_->rtt();
            next_key_update_ns_ = now_ns_ + 3 * (rtt.pto_base() + peer_parameters_.max_ack_delay_ms * 1'000'000);
        }
        Space::Sent& sent = space.entry(packet.frames);
        if (sent.packet_number != packet.frames) continue;
        if (sent.crypto_length != 0) space.crypto_out.on_acked(sent.crypto_offset, sent.crypto_length, false);
        if (sent.largest_in_our_ack != kNoPacketNumber) space.acks.on_ack_acknowledged(sent.largest_in_our_ack);
        if (sent.streams) streams_->on_acked(stream_records_[record_index(packet.frames)]);
        if (sent.cid_frames) on_connection_id_frames_acked(cid_records_[record_index(packet.frames)]);
        sent = Space::Sent{};
    }
    requeue_lost(space);
    // A client's address is validated once the server acknowledges a Handshake packet (RFC 9002 section 6.2.2.1).
    if (role_ == EndpointRole::client && space.index == kHandshake) recovery_->on_peer_address_validated(now_ns_);
}

// What the recovery declared lost goes again: its CRYPTO data, a HANDSHAKE_DONE.
void Connection::requeue_lost(Space& space) noexcept {
    for (const SentPacket& packet : recovery_->lost()) {
        Space::Sent& sent = space.entry(packet.frames);
        if (sent.packet_number != packet.frames) continue;
        packets_retransmitted_ += sent.crypto_length != 0 || sent.handshake_done || sent.streams;
        if (sent.crypto_length != 0) space.crypto_out.on_lost(sent.crypto_offset, sent.crypto_length, false);
        if (sent.handshake_done) handshake_done_pending_ = true;
        if (sent.streams) streams_->on_lost(stream_records_[record_index(packet.frames)]);
        if (sent.cid_frames) on_connection_id_frames_lost(cid_records_[record_index(packet.frames)]);
        sent = Space::Sent{};
    }
}

// ---- sending ----

std::size_t Connection::write_datagram(std::uint8_t* out, std::size_t capacity, std::uint64_t now_ns) noexcept {
    if (capacity < kMaxDatagramBytes) return 0;
    // Draining, timed out or abandoned: silent. Closing: only the CONNECTION_CLOSE, once.
    if (closed() && !(state_ == ConnectionState::closing && close_pending_)) return 0;
    now_ns_ = now_ns;
    // Before the client's address is validated a server sends at most three times what it received (section 8.1).
    std::size_t limit = kMaxDatagramBytes;
    if (!address_validated_) {
        const std::uint64_t allowed = kAmplificationFactor * bytes_received_;
        const std::uint64_t credit = allowed - std::min(allowed, bytes_sent_);
        if (credit < kMinInitialDatagramSize) {
            recovery_->set_amplification_limited(true, now_ns);
            return 0;
        }
        limit = std::min<std::uint64_t>(limit, credit);
    }
    std::size_t used = 0;
    for (int i = 0; i < 3; ++i) {
        Space& space = *spaces_[i];
        if (space.discarded || !space.write.installed()) continue;
        std::size_t written = 0;
        if (!write_packet(space, out + used, limit - used, used, now_ns, written)) continue;
        used += written;
        ++packets_sent_;
        // A client is done with Initial keys once it sends a Handshake packet (RFC 9001 section 4.9.1).
        if (role_ == EndpointRole::client && i == kHandshake) discard(*spaces_[kInitial]);
        if (limit - used < 64) break;
    }
    bytes_sent_ += used;
    if (used != 0 && state_ == ConnectionState::closing) close_pending_ = false;   // sent once per request
    return used;
}

bool Connection::write_packet(Space& space, std::uint8_t* out, std::size_t capacity, std::size_t datagram_so_far,
                              std::uint64_t now_ns, std::size_t& written) noexcept {
    const bool closing = state_ == ConnectionState::closing;
    const bool application = space.index == kApplication;
    // An ACK alone goes out when the tracker says it is due (RFC 9000 section 13.2.1); one that is merely owed
    // rides along with anything else the packet carries.
    const bool ack_owed = !closing && space.acks.any() && space.acks.owes_ack();
    const bool ack_due = ack_owed && space.acks.ack_now(now_ns);
    SendBuffer::Chunk crypto;
    const bool crypto_due = !closing && space.crypto_out.next_chunk(capacity, UINT64_MAX, crypto);
    const bool done_due = !closing && application && handshake_done_pending_;
    const bool probe_due = !closing && (space.probes_due != 0 || (application && ping_pending_));
    // Streams flow once the handshake completed at this end (1-RTT keys both ways).
    const bool handshake_done = state_ == ConnectionState::established || state_ == ConnectionState::confirmed;
    if (application && handshake_done) streams_->set_clock(now_ns, recovery_->rtt().smoothed_rtt());
    const bool streams_due =
        !closing && application && handshake_done && streams_->wants_to_send() && pacer_allows(now_ns);
    const bool cids_due = !closing && application && handshake_done && connection_id_frames_due();
    if (!ack_due && !crypto_due && !done_due && !probe_due && !streams_due && !cids_due && !closing) return false;
    // Anything ack-eliciting must fit the congestion window and the recovery's records (or a probe's credit).
    const bool eliciting_wanted = crypto_due || done_due || probe_due || streams_due || cids_due;
    const PacketNumberSpace recovery_space = kRecoverySpaceOf[space.index];
    if (eliciting_wanted && !closing && !recovery_->can_send(recovery_space, capacity) && !ack_due) return false;

    ByteWriter writer(out, capacity);
    const std::uint64_t packet_number = space.next_packet_number;
    std::uint64_t largest_acked = kNoPacketNumber;
    (void)recovery_->largest_acked(recovery_space, largest_acked);
    const std::size_t pn_length = packet_number_length(packet_number, largest_acked);
    const bool may_elicit = closing || recovery_->can_send(recovery_space, capacity);
    LongHeaderLayout layout;
    if (application) {
        ShortHeaderFields fields;
        fields.dcid = peer_cid_;
        fields.packet_number = packet_number;
        fields.packet_number_length = pn_length;
        fields.key_phase = space.write.key_phase();
        std::size_t pn_offset = 0;   // protect_packet finds it from the header length
        if (write_short_header(writer, fields, pn_offset) != 0) return false;
    } else {
        LongHeaderFields fields;
        fields.type = space.index == kInitial ? PacketType::initial : PacketType::handshake;
        fields.dcid = peer_cid_;
        fields.scid = local_cid_;
        if (space.index == kInitial && role_ == EndpointRole::client) fields.token = {token_.get(), token_size_};
        fields.packet_number = packet_number;
        fields.packet_number_length = pn_length;
        if (write_long_header(writer, fields, layout) != 0) return false;
    }
    const std::size_t header_bytes = writer.size();
    if (capacity < header_bytes + kAeadTagBytes + 32) return false;
    ByteWriter payload(out + header_bytes, capacity - header_bytes - kAeadTagBytes);

    Space::Sent record;
    record.packet_number = packet_number;
    bool ack_eliciting = false;
    if (closing) {
        // An application's close becomes a transport APPLICATION_ERROR outside 1-RTT packets (section 10.2.3).
        ConnectionCloseFrame close;
        close.application = close_application_ && application;
        close.error_code =
            close_application_ && !application ? code_of(TransportError::application_error) : error_code_;
        close.frame_type = close.application ? 0 : close_frame_type_;
        close.reason = {reinterpret_cast<const std::uint8_t*>(close_reason_.data()), close_reason_.size()};
        (void)encode(payload, close);
    } else {
        if (ack_owed) {
            // Ranges highest first, as many as fit; Initial and Handshake ACKs carry no delay (section 13.2.5 lets
            // them: the peer's max_ack_delay covers only 1-RTT).
            AckRange ranges[AckTracker::kMaxRanges];
            std::size_t count = 0;
            const auto& received = space.acks.received();
            for (std::uint32_t i = received.size(); i-- > 0;) {
                ranges[count++] = {received[i].start, received[i].end - 1};
            }
            const std::uint64_t delay =
                application ? (space.acks.ack_delay_ns(now_ns) / 1000) >> local_parameters_.ack_delay_exponent : 0;
            const std::size_t fit = ack_ranges_that_fit({ranges, count}, delay, nullptr, payload.remaining());
            if (fit != 0 && encode_ack(payload, {ranges, fit}, delay, nullptr)) {
                record.largest_in_our_ack = ranges[0].largest;
                space.acks.on_ack_sent();
            }
        }
        if (done_due && may_elicit && encode(payload, HandshakeDoneFrame{})) {
            handshake_done_pending_ = false;
            record.handshake_done = true;
            ack_eliciting = true;
        }
        if (crypto_due && may_elicit) {
            // One contiguous range per packet (two frames if it wraps the ring), as much as fits.
            const std::size_t room = payload.remaining() > 8 ? payload.remaining() - 8 : 0;   // 2 frame headers
            const std::size_t fits = crypto_data_that_fits(crypto.offset, room);
            const std::size_t length = crypto.length < fits ? crypto.length : fits;
            if (length != 0) {
                crypto.length = length;
                const std::size_t first = length < crypto.first_size ? length : crypto.first_size;
                bool ok = encode(payload, CryptoFrame{crypto.offset, {crypto.first, first}});
                if (ok && first < length) {
                    ok = encode(payload, CryptoFrame{crypto.offset + first, {crypto.second, length - first}});
                }
                if (ok) {
                    crypto.fin = false;
                    space.crypto_out.on_sent(crypto);
                    record.crypto_offset = crypto.offset;
                    record.crypto_length = static_cast<std::uint32_t>(length);
                    ack_eliciting = true;
                }
            }
        }
    }
    // Connection ID frames before stream data: they are small and the peer needs them to migrate.
    // The records are the application space's: an Initial or Handshake packet number must not clear one.
    SentCidFrames& cid_record = cid_records_[record_index(packet_number)];
    if (application) cid_record = SentCidFrames{};
    if (cids_due && may_elicit && write_connection_id_frames(payload, cid_record)) {
        record.cid_frames = true;
        ack_eliciting = true;
    }
    SentStreamFrames& stream_record = stream_records_[record_index(packet_number)];
    if (application) stream_record.count = 0;
    if (streams_due && may_elicit && streams_->write_frames(payload, stream_record) != 0) {
        record.streams = true;
        ack_eliciting = true;
    }
    if (probe_due && may_elicit && !ack_eliciting && encode(payload, PingFrame{})) ack_eliciting = true;
    if (ack_eliciting && space.probes_due != 0) --space.probes_due;
    if (ack_eliciting && application) ping_pending_ = false;
    if (ack_eliciting && restart_idle_on_send_) {
        restart_idle_timer(now_ns);
        restart_idle_on_send_ = false;
    }
    // Padding: the header protection sample needs 4 bytes from the packet number on, and a datagram with an
    // ack-eliciting Initial (any from a client) is at least 1200 bytes (section 14.1).
    std::size_t padding = payload.size() + pn_length < 4 ? 4 - payload.size() - pn_length : 0;
    if (space.index == kInitial && (ack_eliciting || role_ == EndpointRole::client)) {
        const std::size_t datagram = datagram_so_far + header_bytes + payload.size() + padding + kAeadTagBytes;
        if (datagram < kMinInitialDatagramSize) padding += kMinInitialDatagramSize - datagram;
    }
    payload.zeros(padding);
    if (payload.failed() || payload.size() == 0) return false;
    const std::size_t packet_bytes = header_bytes + payload.size() + kAeadTagBytes;
    if (!application && patch_long_header_length(out, layout, packet_bytes) != 0) return false;
    if (space.write.protect_packet(out, header_bytes, payload.size(), packet_number) != 0) return false;
    ++space.next_packet_number;
    bool recorded = false;
    if (!closing) {
        SentPacket sent;
        sent.packet_number = packet_number;
        sent.time_sent_ns = now_ns;
        sent.frames = packet_number;
        sent.size = static_cast<std::uint32_t>(packet_bytes);
        sent.ack_eliciting = ack_eliciting;
        sent.in_flight = ack_eliciting || padding != 0;
        // An ACK-only packet the records cannot take still goes out, unrecorded (a gap for the recovery).
        recorded = recovery_->on_packet_sent(recovery_space, sent) == 0;
        if (sent.in_flight) pacer_.on_packet_sent(now_ns, packet_bytes);
    }
    space.entry(packet_number) = recorded ? record : Space::Sent{};   // every number writes its entry: written()
    written = packet_bytes;
    return true;
}

std::uint64_t Connection::next_timeout() const noexcept {
    if (closed()) return UINT64_MAX;
    return std::min({recovery_->timer_deadline(), idle_deadline_ns_, ack_deadline(), pacing_deadline_ns_});
}

// Stream data goes when the pacer has a full datagram's tokens; otherwise its time joins next_timeout().
bool Connection::pacer_allows(std::uint64_t now_ns) noexcept {
    const std::uint64_t cwnd = recovery_->congestion().congestion_window();
    const std::uint64_t srtt = recovery_->rtt().smoothed_rtt();
    pacer_.set_rate(now_ns, cwnd, srtt);
    // The burst is a millisecond at the pacing rate, at least an initial window and at most kMaxPacingBurstBytes (one
    // GSO send): a sender polled less often than its packets are due still fills the rate, in sends the kernel can
    // take whole, and a slow path still gets the RFC's initial-window bursts.
    const std::uint64_t initial = initial_congestion_window(kMaxDatagramBytes);
    const double rate_per_ns = double(cwnd) * Pacer::kRateNumerator / Pacer::kRateDenominator;   // / srtt below
    const double per_ms = srtt == 0 ? double(kMaxPacingBurstBytes) : rate_per_ns * 1e6 / double(srtt);
    const std::uint64_t quantum = per_ms >= double(kMaxPacingBurstBytes) ? kMaxPacingBurstBytes
                                                                         : static_cast<std::uint64_t>(per_ms);
    pacer_.set_burst(std::clamp<std::uint64_t>(quantum, initial, kMaxPacingBurstBytes));
    const std::uint64_t at = pacer_.next_send_time(now_ns, kMaxDatagramBytes);
    pacing_deadline_ns_ = at > now_ns ? at : UINT64_MAX;
    return at <= now_ns;
}

std::uint64_t Connection::ack_deadline() const noexcept {
    std::uint64_t next = UINT64_MAX;
    for (const auto& space : spaces_) {
        if (!space->discarded && space->acks.owes_ack()) next = std::min(next, space->acks.deadline_ns());
    }
    return next;
}

// Section 10.1: the smaller of the two max_idle_timeout values that are not 0 (none if both are), and never less
// than three PTOs, so that probes get their chance.
std::uint64_t Connection::idle_timeout_ns() const noexcept {
    std::uint64_t ms = local_parameters_.max_idle_timeout_ms;
    const std::uint64_t peer = peer_parameters_.max_idle_timeout_ms;
    if (ms == 0 || (peer != 0 && peer < ms)) ms = peer;
    if (ms == 0) return UINT64_MAX;
    const RttEstimator& rtt = recovery_->rtt();
    const std::uint64_t three_ptos = 3 * (rtt.smoothed_rtt() + std::max<std::uint64_t>(4 * rtt.rttvar(), 1'000'000));
    return std::max(std::min<std::uint64_t>(ms, UINT64_MAX / 1'000'000) * 1'000'000, three_ptos);
}

void Connection::restart_idle_timer(std::uint64_t now_ns) noexcept {
    const std::uint64_t timeout = idle_timeout_ns();
    idle_deadline_ns_ = timeout == UINT64_MAX || now_ns > UINT64_MAX - timeout ? UINT64_MAX : now_ns + timeout;
}

void Connection::send_ping() noexcept {
    if (!closed()) ping_pending_ = true;
}

int Connection::update_keys() noexcept {
    if (state_ != ConnectionState::confirmed || !write_phase_acked_ || now_ns_ < next_key_update_ns_) return -EAGAIN;
    Space& space = *spaces_[kApplication];
    if (const int rc = space.write.update_keys(); rc != 0) return rc;
    write_phase_start_ = space.next_packet_number;
    write_phase_acked_ = false;
    ping_pending_ = true;   // the peer learns of it from our next packet
    return 0;
}

std::uint64_t Connection::key_updates() const noexcept {
    const Space& space = *spaces_[kApplication];
    return space.write.installed() ? space.write.key_updates() : 0;
}

void Connection::on_timeout(std::uint64_t now_ns) noexcept {
    if (closed()) return;
    now_ns_ = now_ns;
    if (now_ns >= pacing_deadline_ns_) pacing_deadline_ns_ = UINT64_MAX;   // the next write_datagram sends
    if (now_ns >= idle_deadline_ns_) {
        state_ = ConnectionState::timed_out;   // silently: no CONNECTION_CLOSE (section 10.1)
        set_message("idle timeout");
        return;
    }
    const TimeoutResult result = recovery_->on_timeout(now_ns);
    if (result.kind == TimeoutKind::none) return;
    Space& space = *spaces_[static_cast<int>(space_index(result.space))];
    requeue_lost(space);
    if (result.kind != TimeoutKind::probe) return;
    // A probe: one or two ack-eliciting packets. They carry data if any is unacknowledged (sent again: it may be
    // what was lost), else a PING.
    space.probes_due = 2;
    for (Space::Sent& sent : space.written()) {
        if (sent.packet_number == kNoPacketNumber || sent.crypto_length == 0) continue;
        space.crypto_out.on_lost(sent.crypto_offset, sent.crypto_length, false);
        sent.crypto_length = 0;
    }
    if (result.anti_deadlock && space.index == kInitial) space.probes_due = 1;
}

}  // namespace cf::quic
