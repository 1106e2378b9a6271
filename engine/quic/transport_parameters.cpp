#include "engine/quic/transport_parameters.hpp"

#include <cerrno>
#include <climits>
#include <cstring>

#include "engine/quic/varint.hpp"

namespace cf::quic {

namespace {

using Id = TransportParameterId;
constexpr TransportError kError = TransportError::transport_parameter_error;

// A bit per known ID, for the duplicate check: 0x00..0x10 map to bits 0..16, 0x20 to bit 17; -1 for unknown IDs.
int known_bit(std::uint64_t id) {
    if (id <= static_cast<std::uint64_t>(Id::retry_source_connection_id)) return static_cast<int>(id);
    if (id == static_cast<std::uint64_t>(Id::max_datagram_frame_size)) return 17;
    return -1;
}

bool server_only(Id id) {
    return id == Id::original_destination_connection_id || id == Id::stateless_reset_token ||
           id == Id::preferred_address || id == Id::retry_source_connection_id;
}

// An integer parameter: one varint filling the value exactly.
bool read_integer(const std::uint8_t* value, std::size_t length, std::uint64_t& out) {
    ByteReader reader(value, length);
    out = reader.varint();
    return !reader.failed() && reader.empty();
}

bool read_connection_id(const std::uint8_t* value, std::size_t length, std::optional<ConnectionId>& out) {
    ConnectionId id;
    if (!id.assign(value, length)) return false;
    out = id;
    return true;
}

bool read_preferred_address(const std::uint8_t* value, std::size_t length, std::optional<PreferredAddress>& out) {
    if (length < kPreferredAddressFixedSize) return false;
    ByteReader reader(value, length);
    PreferredAddress address;
    std::memcpy(address.ipv4_address.data(), reader.bytes(4), 4);
    address.ipv4_port = static_cast<std::uint16_t>(reader.uint(2));
    std::memcpy(address.ipv6_address.data(), reader.bytes(16), 16);
    address.ipv6_port = static_cast<std::uint16_t>(reader.uint(2));
    const std::size_t cid_length = reader.u8();
    // Section 18.2: a zero-length CID here is an error, as is any length that does not fill the value exactly.
    if (cid_length == 0 || cid_length > ConnectionId::kMaxLength ||
        length != kPreferredAddressFixedSize + cid_length) {
        return false;
    }
    address.connection_id.assign(reader.bytes(cid_length), cid_length);
    std::memcpy(address.stateless_reset_token.bytes.data(), reader.bytes(StatelessResetToken::kSize),
                StatelessResetToken::kSize);
    out = address;
    return true;
}

bool decode_value(Id id, const std::uint8_t* value, std::size_t length, TransportParameters& out) {
    switch (id) {
        case Id::original_destination_connection_id:
            return read_connection_id(value, length, out.original_destination_connection_id);
        case Id::initial_source_connection_id:
            return read_connection_id(value, length, out.initial_source_connection_id);
        case Id::retry_source_connection_id:
            return read_connection_id(value, length, out.retry_source_connection_id);
        case Id::stateless_reset_token:
            if (length != StatelessResetToken::kSize) return false;
            out.stateless_reset_token.emplace();
            std::memcpy(out.stateless_reset_token->bytes.data(), value, length);
            return true;
        case Id::disable_active_migration:
            out.disable_active_migration = true;
            return length == 0;
        case Id::preferred_address: return read_preferred_address(value, length, out.preferred_address);
        case Id::max_idle_timeout: return read_integer(value, length, out.max_idle_timeout_ms);
        case Id::max_udp_payload_size: return read_integer(value, length, out.max_udp_payload_size);
        case Id::initial_max_data: return read_integer(value, length, out.initial_max_data);
        case Id::initial_max_stream_data_bidi_local:
            return read_integer(value, length, out.initial_max_stream_data_bidi_local);
        case Id::initial_max_stream_data_bidi_remote:
            return read_integer(value, length, out.initial_max_stream_data_bidi_remote);
        case Id::initial_max_stream_data_uni: return read_integer(value, length, out.initial_max_stream_data_uni);
        case Id::initial_max_streams_bidi: return read_integer(value, length, out.initial_max_streams_bidi);
        case Id::initial_max_streams_uni: return read_integer(value, length, out.initial_max_streams_uni);
        case Id::ack_delay_exponent: return read_integer(value, length, out.ack_delay_exponent);
        case Id::max_ack_delay: return read_integer(value, length, out.max_ack_delay_ms);
        case Id::active_connection_id_limit: return read_integer(value, length, out.active_connection_id_limit);
        case Id::max_datagram_frame_size: return read_integer(value, length, out.max_datagram_frame_size);
    }
    return false;
}

void write_integer(ByteWriter& writer, Id id, std::uint64_t value, std::uint64_t default_value) {
    if (value == default_value) return;
    writer.varint(static_cast<std::uint64_t>(id));
    writer.varint(varint_size(value));
    writer.varint(value);
}

void write_bytes(ByteWriter& writer, Id id, const std::uint8_t* data, std::size_t length) {
    writer.varint(static_cast<std::uint64_t>(id));
    writer.varint(length);
    writer.bytes(data, length);
}

void write_preferred_address(ByteWriter& writer, const PreferredAddress& address) {
    writer.varint(static_cast<std::uint64_t>(Id::preferred_address));
    writer.varint(kPreferredAddressFixedSize + address.connection_id.size());
    writer.bytes(address.ipv4_address.data(), 4);
    writer.uint(address.ipv4_port, 2);
    writer.bytes(address.ipv6_address.data(), 16);
    writer.uint(address.ipv6_port, 2);
    writer.u8(static_cast<std::uint8_t>(address.connection_id.size()));
    writer.bytes(address.connection_id.data(), address.connection_id.size());
    writer.bytes(address.stateless_reset_token.bytes.data(), StatelessResetToken::kSize);
}

}  // namespace

TransportError validate_transport_parameters(const TransportParameters& p, EndpointRole sender) noexcept {
    if (sender == EndpointRole::client &&
        (p.original_destination_connection_id || p.stateless_reset_token || p.preferred_address ||
         p.retry_source_connection_id)) {
        return kError;
    }
    if (p.max_udp_payload_size < kMinMaxUdpPayloadSize || p.ack_delay_exponent > kMaxAckDelayExponent ||
        p.max_ack_delay_ms >= kMaxAckDelayLimitMs || p.active_connection_id_limit < 2 ||
        p.initial_max_streams_bidi > kMaxStreamsLimit || p.initial_max_streams_uni > kMaxStreamsLimit) {
        return kError;
    }
    if (p.preferred_address && p.preferred_address->connection_id.empty()) return kError;
    // Everything else on the wire is a varint: a value above 2^62 - 1 cannot be sent.
    for (const std::uint64_t value : {p.max_idle_timeout_ms, p.max_udp_payload_size, p.initial_max_data,
                                      p.initial_max_stream_data_bidi_local, p.initial_max_stream_data_bidi_remote,
                                      p.initial_max_stream_data_uni, p.max_datagram_frame_size}) {
        if (value > kMaxVarint) return kError;
    }
    return TransportError::no_error;
}

TransportError decode_transport_parameters(const std::uint8_t* data, std::size_t size, EndpointRole sender,
                                           TransportParameters& out) noexcept {
    out = TransportParameters{};
    ByteReader reader(data, size);
    std::uint32_t seen = 0;
    while (!reader.empty()) {
        const std::uint64_t id = reader.varint();
        const std::uint64_t length = reader.varint();
        if (reader.failed() || length > reader.remaining()) return kError;
        const std::uint8_t* value = reader.bytes(static_cast<std::size_t>(length));
        const int bit = known_bit(id);
        if (bit < 0) continue;   // unknown or reserved: ignored
        if ((seen & (1u << bit)) != 0) return kError;
        seen |= 1u << bit;
        const Id known = static_cast<Id>(id);
        if (sender == EndpointRole::client && server_only(known)) return kError;
        if (!decode_value(known, value, static_cast<std::size_t>(length), out)) return kError;
    }
    return validate_transport_parameters(out, sender);
}

int encode_transport_parameters(const TransportParameters& p, EndpointRole sender, std::uint8_t* out,
                                std::size_t capacity, std::uint64_t reserved_id) noexcept {
    if (validate_transport_parameters(p, sender) != TransportError::no_error) return -EINVAL;
    if (reserved_id != kNoReservedParameter && (!is_reserved_transport_parameter(reserved_id) || reserved_id > kMaxVarint)) {
        return -EINVAL;
    }
    ByteWriter writer(out, capacity < INT_MAX ? capacity : INT_MAX);
    if (reserved_id != kNoReservedParameter) {
        writer.varint(reserved_id);
        writer.varint(0);
    }
    if (p.original_destination_connection_id) {
        write_bytes(writer, Id::original_destination_connection_id, p.original_destination_connection_id->data(),
                    p.original_destination_connection_id->size());
    }
    write_integer(writer, Id::max_idle_timeout, p.max_idle_timeout_ms, 0);
    if (p.stateless_reset_token) {
        write_bytes(writer, Id::stateless_reset_token, p.stateless_reset_token->bytes.data(),
                    StatelessResetToken::kSize);
    }
    write_integer(writer, Id::max_udp_payload_size, p.max_udp_payload_size, kDefaultMaxUdpPayloadSize);
    write_integer(writer, Id::initial_max_data, p.initial_max_data, 0);
    write_integer(writer, Id::initial_max_stream_data_bidi_local, p.initial_max_stream_data_bidi_local, 0);
    write_integer(writer, Id::initial_max_stream_data_bidi_remote, p.initial_max_stream_data_bidi_remote, 0);
    write_integer(writer, Id::initial_max_stream_data_uni, p.initial_max_stream_data_uni, 0);
    write_integer(writer, Id::initial_max_streams_bidi, p.initial_max_streams_bidi, 0);
    write_integer(writer, Id::initial_max_streams_uni, p.initial_max_streams_uni, 0);
    write_integer(writer, Id::ack_delay_exponent, p.ack_delay_exponent, kDefaultAckDelayExponent);
    write_integer(writer, Id::max_ack_delay, p.max_ack_delay_ms, kDefaultMaxAckDelayMs);
    if (p.disable_active_migration) write_bytes(writer, Id::disable_active_migration, nullptr, 0);
    if (p.preferred_address) write_preferred_address(writer, *p.preferred_address);
    write_integer(writer, Id::active_connection_id_limit, p.active_connection_id_limit,
                  kDefaultActiveConnectionIdLimit);
    if (p.initial_source_connection_id) {
        write_bytes(writer, Id::initial_source_connection_id, p.initial_source_connection_id->data(),
                    p.initial_source_connection_id->size());
    }
    if (p.retry_source_connection_id) {
        write_bytes(writer, Id::retry_source_connection_id, p.retry_source_connection_id->data(),
                    p.retry_source_connection_id->size());
    }
    write_integer(writer, Id::max_datagram_frame_size, p.max_datagram_frame_size, 0);
    if (writer.failed()) return -ENOBUFS;
    return static_cast<int>(writer.size());
}

TransportError check_handshake_connection_ids(const TransportParameters& peer, EndpointRole local_role,
                                              const HandshakeConnectionIds& seen) noexcept {
    if (!peer.initial_source_connection_id || *peer.initial_source_connection_id != seen.peer_initial_scid) {
        return kError;
    }
    if (local_role == EndpointRole::server) return TransportError::no_error;
    if (!peer.original_destination_connection_id || *peer.original_destination_connection_id != seen.original_dcid) {
        return kError;
    }
    if (peer.retry_source_connection_id.has_value() != seen.retry_received) return kError;
    if (seen.retry_received && *peer.retry_source_connection_id != seen.retry_scid) return kError;
    return TransportError::no_error;
}

}  // namespace cf::quic
