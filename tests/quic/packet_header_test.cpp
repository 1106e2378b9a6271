#include "engine/quic/packet_header.hpp"

#include <doctest/doctest.h>

#include <cstdint>
#include <string>
#include <vector>

using namespace cf::quic;

namespace {

using Bytes = std::vector<std::uint8_t>;

Bytes hex(const std::string& text) {
    Bytes out;
    for (std::size_t i = 0; i + 1 < text.size(); i += 2) {
        out.push_back(static_cast<std::uint8_t>(std::stoul(text.substr(i, 2), nullptr, 16)));
    }
    return out;
}

Bytes concat(Bytes a, const Bytes& b) {
    a.insert(a.end(), b.begin(), b.end());
    return a;
}

Bytes span_bytes(std::span<const std::uint8_t> span) { return Bytes(span.begin(), span.end()); }

PacketParseOptions at(EndpointRole receiver, std::size_t dcid_length = 0) {
    PacketParseOptions options;
    options.receiver = receiver;
    options.short_header_dcid_length = dcid_length;
    return options;
}

HeaderStatus parse(const Bytes& bytes, const PacketParseOptions& options, PacketHeader& out) {
    return parse_packet_header(bytes.data(), bytes.size(), options, out);
}

HeaderStatus parse(const Bytes& bytes, const PacketParseOptions& options) {
    PacketHeader out;
    return parse(bytes, options, out);
}

// An Initial with DCID 8394c8f03e515708, no SCID, no token, Length 1182, packet number 2: the unprotected header of
// the RFC 9001 appendix A.2 client Initial, padded to its 1200 bytes.
const Bytes kClientInitialHeader = hex("c300000001088394c8f03e5157080000449e00000002");

Bytes client_initial() {
    Bytes datagram = kClientInitialHeader;
    datagram.resize(1200, 0);
    return datagram;
}

// A Handshake packet to `dcid` with Length `length` and zeros for packet number and payload.
Bytes handshake_packet(const Bytes& dcid, std::size_t length) {
    // Built byte by byte: gcc 12 -O3 flags vector::insert after a short initializer list (-Warray-bounds).
    Bytes out = {0xe0, 0, 0, 0, 1, static_cast<std::uint8_t>(dcid.size())};
    for (const std::uint8_t byte : dcid) out.push_back(byte);
    out.push_back(0);   // SCID length
    out.push_back(static_cast<std::uint8_t>(0x40 | length >> 8));
    out.push_back(static_cast<std::uint8_t>(length));
    out.resize(out.size() + length, 0);
    return out;
}

Bytes short_packet(const Bytes& dcid, std::size_t after_dcid) {
    Bytes out = {0x41};
    for (const std::uint8_t byte : dcid) out.push_back(byte);
    out.resize(out.size() + after_dcid, 0x5a);
    return out;
}

}  // namespace

TEST_CASE("packet header: the RFC 9001 appendix A client and server Initial headers") {
    const Bytes datagram = client_initial();
    PacketHeader header;
    REQUIRE(parse(datagram, at(EndpointRole::server), header) == HeaderStatus::ok);
    CHECK(header.type == PacketType::initial);
    CHECK(header.version == kVersion1);
    CHECK(header.first_byte == 0xc3);
    CHECK(span_bytes(header.dcid) == hex("8394c8f03e515708"));
    CHECK(header.scid.empty());
    CHECK(header.token.empty());
    CHECK(header.pn_offset == 18);
    CHECK(header.size == 1200);
    CHECK(header.packet == datagram.data());
    CHECK(packet_number_length_of(header.first_byte) == 4);

    // A.3: the server's Initial, SCID f067a5502a4262b5, Length 0x75, as a client receives it.
    Bytes server = hex("c1000000010008f067a5502a4262b50040750001");
    server.resize(18 + 0x75, 0);
    REQUIRE(parse(server, at(EndpointRole::client), header) == HeaderStatus::ok);
    CHECK(header.type == PacketType::initial);
    CHECK(header.dcid.empty());
    CHECK(span_bytes(header.scid) == hex("f067a5502a4262b5"));
    CHECK(header.pn_offset == 18);
    CHECK(header.size == server.size());
}

TEST_CASE("packet header: the RFC 9001 appendix A.4 Retry and A.5 short header") {
    const Bytes retry = hex("ff000000010008f067a5502a4262b5746f6b656e04a265ba2eff4d829058fb3f0f2496ba");
    PacketHeader header;
    REQUIRE(parse(retry, at(EndpointRole::client), header) == HeaderStatus::ok);
    CHECK(header.type == PacketType::retry);
    CHECK(header.dcid.empty());
    CHECK(span_bytes(header.scid) == hex("f067a5502a4262b5"));
    CHECK(span_bytes(header.token) == hex("746f6b656e"));   // "token"
    CHECK(header.retry_tag_offset == retry.size() - 16);
    CHECK(header.size == retry.size());
    CHECK_FALSE(header.has_packet_number());

    const Bytes short_header = hex("4cfe4189655e5cd55c41f69080575d7999c25a5bfb");
    REQUIRE(parse(short_header, at(EndpointRole::client, 0), header) == HeaderStatus::ok);
    CHECK(header.type == PacketType::one_rtt);
    CHECK(header.dcid.empty());
    CHECK(header.pn_offset == 1);
    CHECK(header.size == 21);
    CHECK(header.version == 0);
    // Its unprotected first byte: 0x42, packet number 3 bytes, key phase 0, reserved bits 0.
    CHECK(packet_number_length_of(0x42) == 3);
    CHECK_FALSE(key_phase_of(0x42));
    CHECK(check_reserved_bits(0x42) == TransportError::no_error);
}

TEST_CASE("packet header: reserved bits set after unprotection are a PROTOCOL_VIOLATION") {
    CHECK(check_reserved_bits(0xc3) == TransportError::no_error);
    CHECK(check_reserved_bits(0xc3 | 0x04) == TransportError::protocol_violation);
    CHECK(check_reserved_bits(0xc3 | 0x08) == TransportError::protocol_violation);
    CHECK(check_reserved_bits(0x40 | 0x08) == TransportError::protocol_violation);
    CHECK(check_reserved_bits(0x40 | 0x10) == TransportError::protocol_violation);
    CHECK(check_reserved_bits(0x40 | 0x24 | 0x03) == TransportError::no_error);   // spin, key phase, pn length
    CHECK(key_phase_of(0x44));
}

TEST_CASE("packet header: a short header takes the local CID length and the rest of the datagram") {
    const Bytes dcid = hex("0102030405060708");
    const Bytes packet = short_packet(dcid, 20);
    PacketHeader header;
    REQUIRE(parse(packet, at(EndpointRole::server, 8), header) == HeaderStatus::ok);
    CHECK(span_bytes(header.dcid) == dcid);
    CHECK(header.pn_offset == 9);
    CHECK(header.size == 29);
    CHECK(parse(short_packet(dcid, 19), at(EndpointRole::server, 8)) == HeaderStatus::too_short_to_unprotect);
    CHECK(parse(Bytes{0x41, 1, 2}, at(EndpointRole::server, 8)) == HeaderStatus::truncated);
    CHECK(parse(packet, at(EndpointRole::server, 21)) == HeaderStatus::truncated);
}

TEST_CASE("packet header: every rejection with its exact status") {
    const auto server = at(EndpointRole::server);
    const auto client = at(EndpointRole::client);
    CHECK(parse(Bytes{}, server) == HeaderStatus::truncated);

    SUBCASE("fixed bit") {
        Bytes initial = client_initial();
        initial[0] &= static_cast<std::uint8_t>(~kFixedBit);
        CHECK(parse(initial, server) == HeaderStatus::fixed_bit_zero);
        PacketParseOptions grease = server;
        grease.fixed_bit_may_be_zero = true;
        CHECK(parse(initial, grease) == HeaderStatus::ok);
        const Bytes short_zero = {0x01, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0};
        CHECK(parse(short_zero, server) == HeaderStatus::fixed_bit_zero);
        CHECK(parse(short_zero, grease) == HeaderStatus::ok);
    }
    SUBCASE("connection ID lengths: 20 is the version 1 limit") {
        Bytes long_dcid = hex("c30000000115");   // DCID length 21
        long_dcid.resize(1200, 0);
        CHECK(parse(long_dcid, server) == HeaderStatus::connection_id_too_long);
        Bytes long_scid = hex("c30000000100");
        long_scid.push_back(21);
        long_scid.resize(1200, 0);
        CHECK(parse(long_scid, server) == HeaderStatus::connection_id_too_long);
        Bytes twenty = hex("c30000000114");
        twenty.resize(6 + 20, 0xaa);
        twenty.push_back(20);
        twenty.resize(twenty.size() + 20, 0xbb);
        twenty.push_back(0);                       // token length
        twenty.push_back(0x40);
        twenty.push_back(20);                      // Length 20
        twenty.resize(twenty.size() + 20, 0);
        PacketHeader header;
        REQUIRE(parse(twenty, server, header) == HeaderStatus::ok);
        CHECK(header.dcid.size() == 20);
        CHECK(header.scid.size() == 20);
        CHECK(header.size == twenty.size());
    }
    SUBCASE("unsupported versions: version and CIDs (up to 255 bytes) for Version Negotiation") {
        Bytes other = hex("c3ff00001d");   // draft 29
        other.push_back(40);
        other.resize(other.size() + 40, 0x11);
        other.push_back(3);
        other.resize(other.size() + 3, 0x22);
        other.resize(1200, 0);
        PacketHeader header;
        REQUIRE(parse(other, server, header) == HeaderStatus::unsupported_version);
        CHECK(header.version == 0xff00001du);
        CHECK(header.dcid.size() == 40);
        CHECK(span_bytes(header.scid) == hex("222222"));
        CHECK(header.size == 1200);
        Bytes cut(other.begin(), other.begin() + 20);   // the DCID does not fit
        CHECK(parse(cut, server) == HeaderStatus::truncated);
        // An unknown version's fixed bit is that version's business.
        other[0] = 0x80;
        CHECK(parse(other, server) == HeaderStatus::unsupported_version);
    }
    SUBCASE("packet types a role never receives") {
        const Bytes retry = hex("ff000000010008f067a5502a4262b5746f6b656e04a265ba2eff4d829058fb3f0f2496ba");
        CHECK(parse(retry, server) == HeaderStatus::unexpected_packet_type);
        Bytes zero_rtt = handshake_packet(hex("0102"), 20);
        zero_rtt[0] = 0xd0;
        CHECK(parse(zero_rtt, server) == HeaderStatus::ok);
        CHECK(parse(zero_rtt, client) == HeaderStatus::unexpected_packet_type);
        const Bytes negotiation = hex("80000000000001aa0000000100000002");
        CHECK(parse(negotiation, client) == HeaderStatus::ok);
        CHECK(parse(negotiation, server) == HeaderStatus::unexpected_packet_type);
    }
    SUBCASE("Initial tokens") {
        // A client's Initial with a 3-byte token is fine at a server; a server never sends one.
        Bytes with_token = hex("c300000001" "0100" "00" "03abcdef" "4014");
        with_token.resize(with_token.size() + 20, 0);
        PacketHeader header;
        REQUIRE(parse(with_token, server, header) == HeaderStatus::ok);
        CHECK(span_bytes(header.token) == hex("abcdef"));
        CHECK(header.pn_offset == 14);
        CHECK(parse(with_token, client) == HeaderStatus::token_from_server);
        Bytes long_token = hex("c300000001" "0100" "00" "4100");   // 256 bytes announced
        long_token.resize(200, 0);
        CHECK(parse(long_token, server) == HeaderStatus::truncated);
    }
    SUBCASE("Retry: a token and a 16-byte tag") {
        const Bytes no_token = hex("ff000000010008f067a5502a4262b504a265ba2eff4d829058fb3f0f2496ba");
        CHECK(parse(no_token, client) == HeaderStatus::empty_retry_token);
        const Bytes short_tag = hex("ff000000010008f067a5502a4262b504a265ba2eff4d829058fb3f0f24");
        CHECK(parse(short_tag, client) == HeaderStatus::truncated);
    }
    SUBCASE("Length") {
        Bytes past = client_initial();
        past.pop_back();
        CHECK(parse(past, server) == HeaderStatus::length_past_datagram);
        Bytes huge = hex("e000000001000080ffffff");   // a Handshake with a 4-byte Length of 2^24 - 1
        huge.resize(100, 0);
        CHECK(parse(huge, server) == HeaderStatus::length_past_datagram);
        CHECK(parse(handshake_packet({}, 19), server) == HeaderStatus::too_short_to_unprotect);
        CHECK(parse(handshake_packet({}, 20), server) == HeaderStatus::ok);
        Bytes no_length = hex("e0000000010000");   // ends before the Length
        CHECK(parse(no_length, server) == HeaderStatus::truncated);
        no_length.push_back(0x40);                  // half a 2-byte Length
        CHECK(parse(no_length, server) == HeaderStatus::truncated);
    }
    SUBCASE("Version Negotiation lists") {
        CHECK(parse(hex("80000000000001aa"), client) == HeaderStatus::malformed_version_negotiation);
        CHECK(parse(hex("80000000000001aa000000"), client) == HeaderStatus::malformed_version_negotiation);
        CHECK(parse(hex("80000000000001aa0000000100"), client) == HeaderStatus::malformed_version_negotiation);
        PacketHeader header;
        const Bytes negotiation = hex("ff00000000" "0101" "02aabb" "1a2a3a4a00000001");
        REQUIRE(parse(negotiation, client, header) == HeaderStatus::ok);
        CHECK(header.type == PacketType::version_negotiation);
        CHECK(header.supported_version_count == 2);
        CHECK(header.supported_version(0) == 0x1a2a3a4au);
        CHECK(header.supported_version(1) == kVersion1);
        CHECK(header.supported_version(2) == 0);
        CHECK(span_bytes(header.scid) == hex("aabb"));
    }
}

TEST_CASE("packet header: every truncation of a long header packet is rejected, never read past") {
    const Bytes initial = hex("c3000000010401020304" "0305060703aabbcc" "4014");
    Bytes packet = initial;
    packet.resize(packet.size() + 20, 0x33);
    const std::size_t length_end = initial.size();
    REQUIRE(parse(packet, at(EndpointRole::server)) == HeaderStatus::ok);
    for (std::size_t size = 0; size < packet.size(); ++size) {
        // A copy of exactly `size` bytes, so that ASan sees any read past it.
        const Bytes prefix(packet.begin(), packet.begin() + static_cast<std::ptrdiff_t>(size));
        const HeaderStatus expected = size < length_end ? HeaderStatus::truncated : HeaderStatus::length_past_datagram;
        CAPTURE(size);
        CHECK(parse(prefix, at(EndpointRole::server)) == expected);
    }
}

TEST_CASE("packet walker: coalesced packets one by one (section 12.2)") {
    const Bytes dcid = hex("0a0b0c0d");
    Bytes initial = hex("c300000001040a0b0c0d00004100");   // Length 0x100: an Initial padded to...
    initial.resize(initial.size() + 0x100, 0);
    const Bytes handshake = handshake_packet(dcid, 40);
    const Bytes one_rtt = short_packet(dcid, 1200);
    const Bytes datagram = concat(concat(initial, handshake), one_rtt);
    PacketWalker walker(datagram.data(), datagram.size(), at(EndpointRole::server, 4));
    PacketHeader header;
    REQUIRE(walker.next(header));
    CHECK(header.type == PacketType::initial);
    CHECK(header.packet == datagram.data());
    CHECK(header.size == initial.size());
    REQUIRE(walker.next(header));
    CHECK(header.type == PacketType::handshake);
    CHECK(header.packet == datagram.data() + initial.size());
    CHECK(header.size == handshake.size());
    CHECK(header.pn_offset == handshake.size() - 40);
    REQUIRE(walker.next(header));
    CHECK(header.type == PacketType::one_rtt);
    CHECK(header.end() == datagram.data() + datagram.size());
    CHECK_FALSE(walker.next(header));
    CHECK(walker.status() == HeaderStatus::ok);
    CHECK(walker.packets() == 3);
    CHECK(walker.offset() == datagram.size());
    CHECK_FALSE(walker.next(header));   // stays done

    SUBCASE("an empty datagram is not a clean end") {
        PacketWalker empty(datagram.data(), 0, at(EndpointRole::server, 4));
        CHECK_FALSE(empty.next(header));
        CHECK(empty.status() == HeaderStatus::truncated);
        CHECK(empty.packets() == 0);
    }
    SUBCASE("a later packet to another DCID ends the walk") {
        const Bytes mixed = concat(concat(initial, handshake_packet(hex("0a0b0c0e"), 40)), one_rtt);
        PacketWalker other(mixed.data(), mixed.size(), at(EndpointRole::server, 4));
        CHECK(other.next(header));
        CHECK_FALSE(other.next(header));
        CHECK(other.status() == HeaderStatus::different_connection_id);
        CHECK(other.packets() == 1);
        CHECK(other.offset() == initial.size());
    }
    SUBCASE("zero bytes after the last packet (padding outside packets) are dropped as a bad packet") {
        Bytes padded = concat(handshake, Bytes(30, 0));
        PacketWalker trailing(padded.data(), padded.size(), at(EndpointRole::client, 4));
        CHECK(trailing.next(header));
        CHECK_FALSE(trailing.next(header));
        CHECK(trailing.status() == HeaderStatus::fixed_bit_zero);
        CHECK(trailing.packets() == 1);
    }
    SUBCASE("a server drops Initials in datagrams under 1200 bytes, a client does not") {
        const Bytes small = concat(initial, handshake);
        PacketWalker at_server(small.data(), small.size(), at(EndpointRole::server, 4));
        CHECK_FALSE(at_server.next(header));
        CHECK(at_server.status() == HeaderStatus::initial_datagram_too_small);
        PacketWalker at_client(small.data(), small.size(), at(EndpointRole::client, 4));
        CHECK(at_client.next(header));
        CHECK(at_client.next(header));
        CHECK_FALSE(at_client.next(header));
        CHECK(at_client.status() == HeaderStatus::ok);
    }
    SUBCASE("every truncation: the whole packets before the cut are walked, then the cut one is rejected") {
        const std::size_t ends[] = {initial.size(), initial.size() + handshake.size()};
        for (std::size_t size = 1; size <= datagram.size(); ++size) {
            const Bytes prefix(datagram.begin(), datagram.begin() + static_cast<std::ptrdiff_t>(size));
            PacketWalker cut(prefix.data(), prefix.size(), at(EndpointRole::client, 4));
            std::size_t whole = 0;
            while (cut.next(header)) ++whole;
            const std::size_t expected = size < ends[0] ? 0 : size < ends[1] ? 1 : size - ends[1] < 4 + 1 + 20 ? 2 : 3;
            CAPTURE(size);
            REQUIRE(whole == expected);
            const bool at_boundary = size == ends[0] || size == ends[1] || expected == 3;
            CHECK((cut.status() == HeaderStatus::ok) == at_boundary);
        }
    }
}

TEST_CASE("packet header: names for logs") {
    CHECK(std::string(header_status_name(HeaderStatus::length_past_datagram)) == "length_past_datagram");
    CHECK(std::string(header_status_name(HeaderStatus::different_connection_id)) == "different_connection_id");
    CHECK(std::string(packet_type_name(PacketType::zero_rtt)) == "0-RTT");
    CHECK(std::string(packet_type_name(PacketType::one_rtt)) == "1-RTT");
}
