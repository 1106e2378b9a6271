#include "engine/quic/packet_header.hpp"

#include <cstring>

#include "engine/quic/connection_id.hpp"
#include "engine/quic/varint.hpp"

namespace cf::quic {

namespace {

// Long header type bits for version 1 (section 17.2).
constexpr PacketType kLongTypes[4] = {PacketType::initial, PacketType::zero_rtt, PacketType::handshake,
                                      PacketType::retry};

// A CID length byte then the CID; false if the bytes are not there or the length is above `max_length`.
HeaderStatus read_connection_id(ByteReader& reader, std::size_t max_length, std::span<const std::uint8_t>& out) {
    const std::size_t length = reader.u8();
    if (reader.failed()) return HeaderStatus::truncated;
    if (length > max_length) return HeaderStatus::connection_id_too_long;
    const std::uint8_t* bytes = reader.bytes(length);
    if (bytes == nullptr) return HeaderStatus::truncated;
    out = {bytes, length};
    return HeaderStatus::ok;
}

HeaderStatus read_both_connection_ids(ByteReader& reader, std::size_t max_length, PacketHeader& out) {
    const HeaderStatus dcid = read_connection_id(reader, max_length, out.dcid);
    if (dcid != HeaderStatus::ok) return dcid;
    return read_connection_id(reader, max_length, out.scid);
}

HeaderStatus parse_version_negotiation(ByteReader& reader, const PacketParseOptions& options, PacketHeader& out) {
    // Version-independent format (RFC 8999): the fixed bit is not defined here, and CIDs may be up to 255 bytes.
    const HeaderStatus ids = read_both_connection_ids(reader, 255, out);
    if (ids != HeaderStatus::ok) return ids;
    if (options.receiver == EndpointRole::server) return HeaderStatus::unexpected_packet_type;
    const std::size_t list_bytes = reader.remaining();
    if (list_bytes == 0 || list_bytes % 4 != 0) return HeaderStatus::malformed_version_negotiation;
    out.type = PacketType::version_negotiation;
    out.supported_versions = reader.current();
    out.supported_version_count = list_bytes / 4;
    return HeaderStatus::ok;
}

HeaderStatus parse_long_header(ByteReader& reader, std::size_t size, const PacketParseOptions& options,
                               PacketHeader& out) {
    reader.u8();
    out.version = reader.u32();
    if (reader.failed()) return HeaderStatus::truncated;
    if (out.version == kVersionNegotiationVersion) return parse_version_negotiation(reader, options, out);
    if (out.version != kVersion1) {
        // Enough for a server to answer with Version Negotiation (section 6.1); the rest is another version's.
        const HeaderStatus ids = read_both_connection_ids(reader, 255, out);
        return ids != HeaderStatus::ok ? ids : HeaderStatus::unsupported_version;
    }
    if ((out.first_byte & kFixedBit) == 0 && !options.fixed_bit_may_be_zero) return HeaderStatus::fixed_bit_zero;
    out.type = kLongTypes[(out.first_byte >> 4) & 0x03];
    const bool at_client = options.receiver == EndpointRole::client;
    if ((out.type == PacketType::retry && !at_client) || (out.type == PacketType::zero_rtt && at_client)) {
        return HeaderStatus::unexpected_packet_type;
    }
    const HeaderStatus ids = read_both_connection_ids(reader, ConnectionId::kMaxLength, out);
    if (ids != HeaderStatus::ok) return ids;

    if (out.type == PacketType::retry) {
        if (reader.remaining() < kRetryIntegrityTagSize) return HeaderStatus::truncated;
        const std::size_t token_length = reader.remaining() - kRetryIntegrityTagSize;
        if (token_length == 0) return HeaderStatus::empty_retry_token;
        out.token = {reader.current(), token_length};
        out.retry_tag_offset = size - kRetryIntegrityTagSize;
        return HeaderStatus::ok;
    }
    if (out.type == PacketType::initial) {
        const std::uint64_t token_length = reader.varint();
        if (reader.failed() || token_length > reader.remaining()) return HeaderStatus::truncated;
        // A server's Initial never carries a token (section 17.2.2).
        if (at_client && token_length != 0) return HeaderStatus::token_from_server;
        out.token = {reader.bytes(static_cast<std::size_t>(token_length)), static_cast<std::size_t>(token_length)};
    }
    const std::uint64_t length = reader.varint();
    if (reader.failed()) return HeaderStatus::truncated;
    if (length > reader.remaining()) return HeaderStatus::length_past_datagram;
    if (length < kMinBytesFromPacketNumber) return HeaderStatus::too_short_to_unprotect;
    out.pn_offset = reader.offset();
    out.size = out.pn_offset + static_cast<std::size_t>(length);
    return HeaderStatus::ok;
}

HeaderStatus parse_short_header(std::size_t size, const PacketParseOptions& options, PacketHeader& out) {
    if ((out.first_byte & kFixedBit) == 0 && !options.fixed_bit_may_be_zero) return HeaderStatus::fixed_bit_zero;
    const std::size_t dcid_length = options.short_header_dcid_length;
    if (dcid_length > ConnectionId::kMaxLength || size - 1 < dcid_length) return HeaderStatus::truncated;
    out.type = PacketType::one_rtt;
    out.dcid = {out.packet + 1, dcid_length};
    out.pn_offset = 1 + dcid_length;
    if (size - out.pn_offset < kMinBytesFromPacketNumber) return HeaderStatus::too_short_to_unprotect;
    return HeaderStatus::ok;
}

}  // namespace

std::uint32_t PacketHeader::supported_version(std::size_t index) const noexcept {
    if (index >= supported_version_count) return 0;
    const std::uint8_t* p = supported_versions + 4 * index;
    return std::uint32_t{p[0]} << 24 | std::uint32_t{p[1]} << 16 | std::uint32_t{p[2]} << 8 | p[3];
}

HeaderStatus parse_packet_header(const std::uint8_t* data, std::size_t size, const PacketParseOptions& options,
                                 PacketHeader& out) noexcept {
    out = PacketHeader{};
    if (size == 0) return HeaderStatus::truncated;
    out.first_byte = data[0];
    out.packet = data;
    out.size = size;   // types without a Length take the rest of the datagram
    if (!is_long_header(data[0])) return parse_short_header(size, options, out);
    ByteReader reader(data, size);
    return parse_long_header(reader, size, options, out);
}

bool PacketWalker::next(PacketHeader& out) noexcept {
    if (done_) return false;
    if (offset_ == size_) {
        // A datagram with no packet at all is not a clean end.
        status_ = packets_ == 0 ? HeaderStatus::truncated : HeaderStatus::ok;
        done_ = true;
        return false;
    }
    HeaderStatus status = parse_packet_header(datagram_ + offset_, size_ - offset_, options_, out);
    if (status == HeaderStatus::ok) {
        if (out.type == PacketType::initial && options_.receiver == EndpointRole::server &&
            size_ < kMinInitialDatagramSize) {
            status = HeaderStatus::initial_datagram_too_small;
        } else if (packets_ != 0 && (out.dcid.size() != first_dcid_.size() ||
                                     (!out.dcid.empty() &&
                                      std::memcmp(out.dcid.data(), first_dcid_.data(), out.dcid.size()) != 0))) {
            status = HeaderStatus::different_connection_id;
        }
    }
    if (status != HeaderStatus::ok) {
        status_ = status;
        done_ = true;
        return false;
    }
    if (packets_ == 0) first_dcid_ = out.dcid;
    ++packets_;
    offset_ += out.size;
    return true;
}

const char* packet_type_name(PacketType type) noexcept {
    switch (type) {
        case PacketType::initial: return "Initial";
        case PacketType::zero_rtt: return "0-RTT";
        case PacketType::handshake: return "Handshake";
        case PacketType::retry: return "Retry";
        case PacketType::version_negotiation: return "Version Negotiation";
        case PacketType::one_rtt: return "1-RTT";
    }
    return "unknown";
}

const char* header_status_name(HeaderStatus status) noexcept {
    switch (status) {
        case HeaderStatus::ok: return "ok";
        case HeaderStatus::truncated: return "truncated";
        case HeaderStatus::unsupported_version: return "unsupported_version";
        case HeaderStatus::connection_id_too_long: return "connection_id_too_long";
        case HeaderStatus::fixed_bit_zero: return "fixed_bit_zero";
        case HeaderStatus::unexpected_packet_type: return "unexpected_packet_type";
        case HeaderStatus::token_from_server: return "token_from_server";
        case HeaderStatus::empty_retry_token: return "empty_retry_token";
        case HeaderStatus::malformed_version_negotiation: return "malformed_version_negotiation";
        case HeaderStatus::length_past_datagram: return "length_past_datagram";
        case HeaderStatus::too_short_to_unprotect: return "too_short_to_unprotect";
        case HeaderStatus::initial_datagram_too_small: return "initial_datagram_too_small";
        case HeaderStatus::different_connection_id: return "different_connection_id";
    }
    return "unknown";
}

}  // namespace cf::quic
