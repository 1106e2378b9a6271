#include "engine/quic/packet_header_writer.hpp"

#include <doctest/doctest.h>

#include <cerrno>
#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include "engine/quic/packet_number.hpp"
#include "engine/quic/retry_packet.hpp"
#include "engine/quic/stateless_reset.hpp"
#include "engine/quic/version_negotiation.hpp"

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

Bytes span_bytes(std::span<const std::uint8_t> span) { return Bytes(span.begin(), span.end()); }

ConnectionId cid(const Bytes& bytes) { return ConnectionId::from(bytes); }

PacketParseOptions at(EndpointRole receiver, std::size_t dcid_length = 0) {
    PacketParseOptions options;
    options.receiver = receiver;
    options.short_header_dcid_length = dcid_length;
    return options;
}

ConnectionId random_cid(std::mt19937_64& random, std::size_t length) {
    Bytes bytes(length);
    for (auto& byte : bytes) byte = static_cast<std::uint8_t>(random());
    return cid(bytes);
}

}  // namespace

TEST_CASE("packet writer: the RFC 9001 appendix A.2 client Initial header, Length patched") {
    std::uint8_t datagram[1200];
    ByteWriter writer(datagram, sizeof datagram);
    LongHeaderFields fields;
    fields.type = PacketType::initial;
    fields.dcid = cid(hex("8394c8f03e515708"));
    fields.packet_number = 2;
    fields.packet_number_length = 4;
    LongHeaderLayout layout;
    REQUIRE(write_long_header(writer, fields, layout) == 0);
    CHECK(layout.start == 0);
    CHECK(layout.length_offset == 16);
    CHECK(layout.pn_offset == 18);
    writer.zeros(initial_datagram_padding(writer.size() + 16));   // padding, then room for the AEAD tag
    CHECK(writer.size() == 1184);
    REQUIRE(patch_long_header_length(datagram, layout, writer.size() + 16) == 0);
    CHECK(Bytes(datagram, datagram + 22) == hex("c300000001088394c8f03e5157080000449e00000002"));
}

TEST_CASE("packet writer: bad fields are refused and nothing is written; what does not fit fails") {
    std::uint8_t buffer[64];
    LongHeaderLayout layout;
    LongHeaderFields fields;
    const std::uint8_t token[3] = {1, 2, 3};
    fields.packet_number_length = 0;
    ByteWriter writer(buffer, sizeof buffer);
    CHECK(write_long_header(writer, fields, layout) == -EINVAL);
    fields.packet_number_length = 5;
    CHECK(write_long_header(writer, fields, layout) == -EINVAL);
    fields.packet_number_length = 1;
    fields.type = PacketType::retry;
    CHECK(write_long_header(writer, fields, layout) == -EINVAL);
    fields.type = PacketType::one_rtt;
    CHECK(write_long_header(writer, fields, layout) == -EINVAL);
    fields.type = PacketType::handshake;
    fields.token = token;   // only an Initial has a token
    CHECK(write_long_header(writer, fields, layout) == -EINVAL);
    fields.token = {};
    fields.version = 0;
    CHECK(write_long_header(writer, fields, layout) == -EINVAL);
    CHECK(writer.size() == 0);
    CHECK_FALSE(writer.failed());

    fields.version = kVersion1;
    fields.dcid = cid(Bytes(20, 7));
    ByteWriter small(buffer, 20);
    CHECK(write_long_header(small, fields, layout) == -ENOBUFS);
    CHECK(small.failed());

    ShortHeaderFields short_fields;
    short_fields.packet_number_length = 0;
    std::size_t pn_offset = 0;
    CHECK(write_short_header(writer, short_fields, pn_offset) == -EINVAL);
    short_fields.packet_number_length = 4;
    short_fields.dcid = cid(Bytes(20, 7));
    ByteWriter tiny(buffer, 24);
    CHECK(write_short_header(tiny, short_fields, pn_offset) == -ENOBUFS);

    // Length: at least the packet number, at most what two varint bytes hold.
    ByteWriter ok(buffer, sizeof buffer);
    fields.packet_number_length = 2;
    REQUIRE(write_long_header(ok, fields, layout) == 0);
    CHECK(patch_long_header_length(buffer, layout, layout.pn_offset + 1) == -EINVAL);
    CHECK(patch_long_header_length(buffer, layout, layout.pn_offset + 2) == 0);
    CHECK(patch_long_header_length(buffer, layout, layout.pn_offset + kMaxPatchableLength) == 0);
    CHECK(buffer[layout.length_offset] == 0x7f);
    CHECK(buffer[layout.length_offset + 1] == 0xff);
    CHECK(patch_long_header_length(buffer, layout, layout.pn_offset + kMaxPatchableLength + 1) == -EINVAL);
}

TEST_CASE("packet writer: short header bits") {
    std::uint8_t buffer[64];
    ByteWriter writer(buffer, sizeof buffer);
    ShortHeaderFields fields;
    fields.dcid = cid(hex("aabbcc"));
    fields.packet_number = 0x123456789;
    fields.packet_number_length = 3;
    fields.spin_bit = true;
    fields.key_phase = true;
    std::size_t pn_offset = 0;
    REQUIRE(write_short_header(writer, fields, pn_offset) == 0);
    CHECK(pn_offset == 4);
    CHECK(Bytes(buffer, buffer + writer.size()) == hex("66aabbcc456789"));
    CHECK(check_reserved_bits(buffer[0]) == TransportError::no_error);
    CHECK(key_phase_of(buffer[0]));
    CHECK(packet_number_length_of(buffer[0]) == 3);
}

TEST_CASE("packet writer: Initial padding to 1200 bytes (section 14.1)") {
    CHECK(datagram_needs_expanding(EndpointRole::client, true, false));
    CHECK(datagram_needs_expanding(EndpointRole::client, true, true));
    CHECK_FALSE(datagram_needs_expanding(EndpointRole::client, false, false));
    CHECK(datagram_needs_expanding(EndpointRole::server, true, true));
    CHECK_FALSE(datagram_needs_expanding(EndpointRole::server, true, false));
    CHECK(initial_datagram_padding(0) == 1200);
    CHECK(initial_datagram_padding(1199) == 1);
    CHECK(initial_datagram_padding(1200) == 0);
    CHECK(initial_datagram_padding(1500) == 0);
}

TEST_CASE("packet writer: 10^4 random coalesced datagrams parse back to the fields written") {
    std::mt19937_64 random(9000);
    std::vector<std::uint8_t> datagram(4096);
    for (int round = 0; round < 10000; ++round) {
        const EndpointRole sender = random() % 2 ? EndpointRole::client : EndpointRole::server;
        const ConnectionId dcid = random_cid(random, random() % 21);
        const ConnectionId scid = random_cid(random, random() % 21);
        Bytes token(sender == EndpointRole::client ? random() % 80 : 0);
        for (auto& byte : token) byte = static_cast<std::uint8_t>(random());
        ByteWriter writer(datagram.data(), datagram.size());
        struct Written {
            PacketType type;
            std::size_t start, pn_offset, end, pn_length;
            std::uint64_t pn;
            bool key_phase;
        };
        std::vector<Written> written;
        const PacketType long_types[] = {PacketType::initial,
                                         sender == EndpointRole::client ? PacketType::zero_rtt : PacketType::initial,
                                         PacketType::handshake};
        const std::size_t long_count = random() % 4;
        for (std::size_t i = 0; i < long_count; ++i) {
            LongHeaderFields fields;
            fields.type = long_types[random() % 3];
            fields.dcid = dcid;
            fields.scid = scid;
            if (fields.type == PacketType::initial) fields.token = token;
            fields.packet_number = random() & kMaxPacketNumber;
            fields.packet_number_length = 1 + random() % 4;
            LongHeaderLayout layout;
            REQUIRE(write_long_header(writer, fields, layout) == 0);
            writer.zeros(20 + random() % 300);   // payload and tag, at least a sample's worth
            REQUIRE(patch_long_header_length(datagram.data(), layout, writer.size()) == 0);
            written.push_back({fields.type, layout.start, layout.pn_offset, writer.size(), fields.packet_number_length,
                               fields.packet_number, false});
        }
        if (random() % 2) {
            ShortHeaderFields fields;
            fields.dcid = dcid;
            fields.packet_number = random() & kMaxPacketNumber;
            fields.packet_number_length = 1 + random() % 4;
            fields.key_phase = random() % 2;
            const std::size_t start = writer.size();
            std::size_t pn_offset = 0;
            REQUIRE(write_short_header(writer, fields, pn_offset) == 0);
            writer.zeros(20 + random() % 300);
            written.push_back({PacketType::one_rtt, start, pn_offset, writer.size(), fields.packet_number_length,
                               fields.packet_number, fields.key_phase});
        }
        REQUIRE_FALSE(writer.failed());
        const std::size_t size = writer.size();
        const EndpointRole receiver = sender == EndpointRole::client ? EndpointRole::server : EndpointRole::client;
        PacketParseOptions options = at(receiver, dcid.size());
        PacketWalker walker(datagram.data(), size, options);
        PacketHeader header;
        for (const Written& expected : written) {
            const bool server_drops_small_initial = receiver == EndpointRole::server && size < 1200 &&
                                                    expected.type == PacketType::initial;
            if (server_drops_small_initial) {
                REQUIRE_FALSE(walker.next(header));
                REQUIRE(walker.status() == HeaderStatus::initial_datagram_too_small);
                break;
            }
            REQUIRE(walker.next(header));
            REQUIRE(header.type == expected.type);
            REQUIRE(header.packet == datagram.data() + expected.start);
            REQUIRE(header.packet + header.size == datagram.data() + expected.end);
            REQUIRE(header.packet + header.pn_offset == datagram.data() + expected.pn_offset);
            REQUIRE(equals(dcid, header.dcid));
            // The header is written unprotected here: its packet number reads back.
            REQUIRE(packet_number_length_of(header.first_byte) == expected.pn_length);
            REQUIRE(check_reserved_bits(header.first_byte) == TransportError::no_error);
            ByteReader pn(header.packet + header.pn_offset, expected.pn_length);
            REQUIRE(pn.uint(expected.pn_length) == truncate_packet_number(expected.pn, expected.pn_length));
            if (expected.type == PacketType::one_rtt) {
                REQUIRE(key_phase_of(header.first_byte) == expected.key_phase);
            } else {
                REQUIRE(header.version == kVersion1);
                REQUIRE(equals(scid, header.scid));
                REQUIRE(span_bytes(header.token) == (expected.type == PacketType::initial ? token : Bytes{}));
            }
        }
        if (walker.status() == HeaderStatus::ok) {
            REQUIRE_FALSE(walker.next(header));
            REQUIRE(walker.status() == (written.empty() ? HeaderStatus::truncated : HeaderStatus::ok));
        }
    }
}

TEST_CASE("version negotiation: build, parse, and a client's verdict (section 6.2)") {
    const Bytes client_dcid = hex("0011223344556677");
    const Bytes client_scid = hex("aabbccdd");
    const std::uint32_t versions[] = {0x1a2a3a4a, 0x6b3343cf, 0xff00001d};   // grease, v2, draft-29
    std::uint8_t buffer[64];
    ByteWriter writer(buffer, sizeof buffer);
    REQUIRE(write_version_negotiation(writer, 0x15, client_scid, client_dcid, versions) == 0);
    CHECK(Bytes(buffer, buffer + writer.size()) ==
          hex("d500000000" "04aabbccdd" "080011223344556677" "1a2a3a4a6b3343cfff00001d"));
    PacketHeader header;
    REQUIRE(parse_packet_header(buffer, writer.size(), at(EndpointRole::client), header) == HeaderStatus::ok);
    REQUIRE(header.type == PacketType::version_negotiation);
    REQUIRE(header.supported_version_count == 3);
    CHECK(header.supported_version(1) == 0x6b3343cfu);

    const ConnectionId sent_dcid = cid(client_dcid), sent_scid = cid(client_scid);
    CHECK(client_version_negotiation_verdict(header, kVersion1, sent_dcid, sent_scid, false) ==
          VersionNegotiationVerdict::abandon);
    CHECK(client_version_negotiation_verdict(header, kVersion1, sent_dcid, sent_scid, true) ==
          VersionNegotiationVerdict::ignore);
    CHECK(client_version_negotiation_verdict(header, 0x6b3343cf, sent_dcid, sent_scid, false) ==
          VersionNegotiationVerdict::ignore);   // lists the version we chose
    CHECK(client_version_negotiation_verdict(header, kVersion1, sent_scid, sent_dcid, false) ==
          VersionNegotiationVerdict::ignore);   // CIDs not echoed
    CHECK(client_version_negotiation_verdict(header, kVersion1, sent_dcid, cid(hex("aabbccde")), false) ==
          VersionNegotiationVerdict::ignore);

    // Our own version listed.
    const std::uint32_t with_ours[] = {kVersion1};
    ByteWriter again(buffer, sizeof buffer);
    REQUIRE(write_version_negotiation(again, 0, client_scid, client_dcid, with_ours) == 0);
    CHECK(buffer[0] == 0xc0);   // the unused bit 0x40 is always set
    REQUIRE(parse_packet_header(buffer, again.size(), at(EndpointRole::client), header) == HeaderStatus::ok);
    CHECK(client_version_negotiation_verdict(header, kVersion1, sent_dcid, sent_scid, false) ==
          VersionNegotiationVerdict::ignore);

    // Long CIDs of another version are echoed (up to 255), empty lists and longer CIDs refused.
    const Bytes long_id(255, 0x42);
    std::uint8_t large[600];
    ByteWriter echo(large, sizeof large);
    CHECK(write_version_negotiation(echo, 0, long_id, long_id, with_ours) == 0);
    REQUIRE(parse_packet_header(large, echo.size(), at(EndpointRole::client), header) == HeaderStatus::ok);
    CHECK(header.dcid.size() == 255);
    ByteWriter refused(large, sizeof large);
    CHECK(write_version_negotiation(refused, 0, Bytes(256, 0), long_id, with_ours) == -EINVAL);
    CHECK(write_version_negotiation(refused, 0, long_id, long_id, {}) == -EINVAL);
    ByteWriter small(large, 20);
    CHECK(write_version_negotiation(small, 0, long_id, long_id, with_ours) == -ENOBUFS);

    CHECK(should_send_version_negotiation(1200));
    CHECK_FALSE(should_send_version_negotiation(1199));
}

TEST_CASE("retry: the RFC 9001 appendix A.4 packet laid out with its pseudo-packet") {
    RetryFields fields;
    fields.original_dcid = cid(hex("8394c8f03e515708"));
    fields.scid = cid(hex("f067a5502a4262b5"));
    const Bytes token = hex("746f6b656e");
    fields.token = token;
    fields.unused_bits = 0x0f;
    std::uint8_t buffer[128];
    RetryPacketLayout layout;
    REQUIRE(write_retry_packet(buffer, sizeof buffer, fields, layout) == 0);
    CHECK(layout.packet_offset == 9);
    CHECK(Bytes(buffer, buffer + layout.tag_offset) ==
          hex("088394c8f03e515708" "ff000000010008f067a5502a4262b5746f6b656e"));
    CHECK(layout.size == layout.tag_offset + 16);
    CHECK(Bytes(buffer + layout.tag_offset, buffer + layout.size) == Bytes(16, 0));

    // The packet as received (with the RFC's tag): parsed, and its pseudo-packet rebuilt.
    const Bytes received = hex("ff000000010008f067a5502a4262b5746f6b656e04a265ba2eff4d829058fb3f0f2496ba");
    PacketHeader header;
    REQUIRE(parse_packet_header(received.data(), received.size(), at(EndpointRole::client), header) ==
            HeaderStatus::ok);
    std::uint8_t pseudo[128];
    const int size = build_retry_pseudo_packet(fields.original_dcid, header, pseudo, sizeof pseudo);
    REQUIRE(size == static_cast<int>(layout.tag_offset));
    CHECK(Bytes(pseudo, pseudo + size) == Bytes(buffer, buffer + layout.tag_offset));
    CHECK(build_retry_pseudo_packet(fields.original_dcid, header, pseudo, 20) == -ENOBUFS);
    PacketHeader not_retry;
    not_retry.type = PacketType::initial;
    CHECK(build_retry_pseudo_packet(fields.original_dcid, not_retry, pseudo, sizeof pseudo) == -EINVAL);

    fields.token = {};
    CHECK(write_retry_packet(buffer, sizeof buffer, fields, layout) == -EINVAL);
    fields.token = token;
    CHECK(write_retry_packet(buffer, 40, fields, layout) == -ENOBUFS);
}

TEST_CASE("stateless reset: sizes, layout and detection by the trailing token (section 10.3)") {
    CHECK(stateless_reset_size(21) == 0);
    CHECK(stateless_reset_size(22) == 21);
    CHECK(stateless_reset_size(43) == 42);
    CHECK(stateless_reset_size(44) == 43);
    CHECK(stateless_reset_size(1500) == 43);

    StatelessResetToken token;
    for (std::size_t i = 0; i < 16; ++i) token.bytes[i] = static_cast<std::uint8_t>(0xe0 + i);
    Bytes unpredictable(27, 0xff);
    std::uint8_t reset[43];
    REQUIRE(write_stateless_reset(reset, sizeof reset, 43, unpredictable, token) == 0);
    CHECK(reset[0] == 0x7f);   // short header form, fixed bit set, 6 unpredictable bits
    CHECK(Bytes(reset + 1, reset + 27) == Bytes(26, 0xff));
    CHECK(Bytes(reset + 27, reset + 43) == Bytes(token.bytes.begin(), token.bytes.end()));
    unpredictable.assign(27, 0x00);
    REQUIRE(write_stateless_reset(reset, sizeof reset, 21, unpredictable, token) == 0);
    CHECK(reset[0] == 0x40);
    CHECK(write_stateless_reset(reset, sizeof reset, 20, unpredictable, token) == -EINVAL);
    CHECK(write_stateless_reset(reset, sizeof reset, 44, unpredictable, token) == -EINVAL);
    CHECK(write_stateless_reset(reset, sizeof reset, 43, Bytes(26, 0), token) == -EINVAL);

    // It parses as a 1-RTT packet (indistinguishable without the token) and is found by its last 16 bytes.
    REQUIRE(write_stateless_reset(reset, sizeof reset, 43, Bytes(27, 0x5c), token) == 0);
    PacketHeader header;
    CHECK(parse_packet_header(reset, sizeof reset, at(EndpointRole::client, 8), header) == HeaderStatus::ok);
    StatelessResetToken tokens[3] = {};
    tokens[0].bytes.fill(1);
    tokens[2] = token;
    CHECK(find_stateless_reset_token(reset, sizeof reset, tokens) == 2);
    CHECK(find_stateless_reset_token(reset, sizeof reset, std::span(tokens, 2)) == -1);
    CHECK(find_stateless_reset_token(reset, sizeof reset, {}) == -1);
    // The token must be last; under 21 bytes there is no reset.
    CHECK(find_stateless_reset_token(reset, sizeof reset - 1, tokens) == -1);
    CHECK(find_stateless_reset_token(reset + 22, 21, tokens) == 2);
    CHECK(find_stateless_reset_token(reset + 23, 20, tokens) == -1);
}
