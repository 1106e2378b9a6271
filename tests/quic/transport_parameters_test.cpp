#include "engine/quic/transport_parameters.hpp"

#include <doctest/doctest.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include "engine/quic/varint.hpp"

using namespace cf::quic;

namespace {

using Bytes = std::vector<std::uint8_t>;
constexpr TransportError kOk = TransportError::no_error;
constexpr TransportError kError = TransportError::transport_parameter_error;

Bytes hex(const std::string& text) {
    Bytes out;
    for (std::size_t i = 0; i + 1 < text.size(); i += 2) {
        out.push_back(static_cast<std::uint8_t>(std::stoul(text.substr(i, 2), nullptr, 16)));
    }
    return out;
}

ConnectionId cid(const std::string& text) { return ConnectionId::from(hex(text)); }

TransportError decode(const Bytes& bytes, EndpointRole sender, TransportParameters& out) {
    return decode_transport_parameters(bytes.data(), bytes.size(), sender, out);
}

TransportError decode(const Bytes& bytes, EndpointRole sender = EndpointRole::server) {
    TransportParameters out;
    return decode(bytes, sender, out);
}

Bytes encode(const TransportParameters& parameters, EndpointRole sender,
             std::uint64_t reserved_id = kNoReservedParameter) {
    Bytes out(512);
    const int size = encode_transport_parameters(parameters, sender, out.data(), out.size(), reserved_id);
    REQUIRE(size >= 0);
    out.resize(static_cast<std::size_t>(size));
    return out;
}

// One parameter: ID, Length, value.
Bytes parameter(std::uint64_t id, const Bytes& value) {
    Bytes out(16 + value.size());
    ByteWriter writer(out.data(), out.size());
    writer.varint(id);
    writer.varint(value.size());
    writer.bytes(value.data(), value.size());
    out.resize(writer.size());
    return out;
}

Bytes integer(std::uint64_t id, std::uint64_t value) {
    Bytes encoded(8);
    ByteWriter writer(encoded.data(), encoded.size());
    writer.varint(value);
    encoded.resize(writer.size());
    return parameter(id, encoded);
}

Bytes concat(Bytes a, const Bytes& b) {
    a.insert(a.end(), b.begin(), b.end());
    return a;
}

PreferredAddress sample_preferred_address() {
    PreferredAddress address;
    address.ipv4_address = {192, 0, 2, 1};
    address.ipv4_port = 4433;
    address.ipv6_address = {0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1};
    address.ipv6_port = 4434;
    address.connection_id = cid("c0ffee");
    address.stateless_reset_token.bytes.fill(0x77);
    return address;
}

TransportParameters full_server_set() {
    TransportParameters p;
    p.original_destination_connection_id = cid("8394c8f03e515708");
    p.max_idle_timeout_ms = 30000;
    p.stateless_reset_token.emplace();
    p.stateless_reset_token->bytes.fill(0x5a);
    p.max_udp_payload_size = 1472;
    p.initial_max_data = 1 << 20;
    p.initial_max_stream_data_bidi_local = 1 << 18;
    p.initial_max_stream_data_bidi_remote = 1 << 17;
    p.initial_max_stream_data_uni = 1 << 16;
    p.initial_max_streams_bidi = 100;
    p.initial_max_streams_uni = 3;
    p.ack_delay_exponent = 10;
    p.max_ack_delay_ms = 40;
    p.disable_active_migration = true;
    p.preferred_address = sample_preferred_address();
    p.active_connection_id_limit = 8;
    p.initial_source_connection_id = cid("f067a5502a4262b5");
    p.retry_source_connection_id = cid("0102030405");
    p.max_datagram_frame_size = 65535;
    return p;
}

}  // namespace

TEST_CASE("transport parameters: the RFC's defaults, and an empty extension decodes to them") {
    const TransportParameters defaults;
    CHECK(defaults.max_idle_timeout_ms == 0);
    CHECK(defaults.max_udp_payload_size == 65527);
    CHECK(defaults.ack_delay_exponent == 3);
    CHECK(defaults.max_ack_delay_ms == 25);
    CHECK(defaults.active_connection_id_limit == 2);
    CHECK(defaults.max_datagram_frame_size == 0);
    CHECK_FALSE(defaults.disable_active_migration);
    CHECK_FALSE(defaults.initial_source_connection_id.has_value());
    TransportParameters decoded = full_server_set();
    CHECK(decode({}, EndpointRole::client, decoded) == kOk);
    CHECK(decoded == defaults);
    CHECK(encode(defaults, EndpointRole::client).empty());
}

TEST_CASE("transport parameters: the exact encoding, in ID order, defaults left out") {
    TransportParameters p;
    p.max_idle_timeout_ms = 30000;
    p.initial_max_data = 1 << 20;
    p.initial_max_streams_bidi = 100;
    p.ack_delay_exponent = 3;    // the default: not written
    p.disable_active_migration = true;
    p.initial_source_connection_id = ConnectionId{};   // present but empty
    p.max_datagram_frame_size = 1200;
    CHECK(encode(p, EndpointRole::client) == hex("01" "04" "80007530"     // max_idle_timeout 30000
                                                 "04" "04" "80100000"     // initial_max_data 2^20
                                                 "08" "02" "4064"         // initial_max_streams_bidi 100
                                                 "0c" "00"                // disable_active_migration
                                                 "0f" "00"                // initial_source_connection_id
                                                 "20" "02" "44b0"));      // max_datagram_frame_size 1200
    TransportParameters decoded;
    REQUIRE(decode(encode(p, EndpointRole::client), EndpointRole::client, decoded) == kOk);
    CHECK(decoded == p);
    // Non-shortest varints are valid values too, as long as they fill the Length.
    REQUIRE(decode(hex("0108c000000000007530"), EndpointRole::client, decoded) == kOk);
    CHECK(decoded.max_idle_timeout_ms == 30000);
}

TEST_CASE("transport parameters: a full server set round trips, with a reserved parameter ignored") {
    const TransportParameters p = full_server_set();
    const Bytes bytes = encode(p, EndpointRole::server, 31 * 5 + 27);
    CHECK(bytes[0] == 0x40);   // 182 as a 2-byte varint, empty value
    CHECK(bytes[1] == 182);
    CHECK(bytes[2] == 0x00);
    TransportParameters decoded;
    REQUIRE(decode(bytes, EndpointRole::server, decoded) == kOk);
    CHECK(decoded == p);
    Bytes out(512);
    CHECK(encode_transport_parameters(p, EndpointRole::server, out.data(), out.size(), 28) == -EINVAL);
    CHECK(encode_transport_parameters(p, EndpointRole::server, out.data(), 40, kNoReservedParameter) == -ENOBUFS);
    // The same set from a client carries server-only parameters: refused both ways.
    CHECK(encode_transport_parameters(p, EndpointRole::client, out.data(), out.size(), kNoReservedParameter) ==
          -EINVAL);
    CHECK(decode(bytes, EndpointRole::client) == kError);
}

TEST_CASE("transport parameters: unknown and reserved IDs are ignored, however often") {
    const Bytes grease = concat(concat(parameter(27, hex("0102")), parameter(27, {})), parameter(0x3fff, hex("ff")));
    const Bytes big_id = parameter(kMaxVarint, hex("00"));
    TransportParameters decoded;
    REQUIRE(decode(concat(concat(grease, big_id), integer(0x04, 77)), EndpointRole::client, decoded) == kOk);
    CHECK(decoded.initial_max_data == 77);
    CHECK(is_reserved_transport_parameter(27));
    CHECK(is_reserved_transport_parameter(31 * 1000 + 27));
    CHECK_FALSE(is_reserved_transport_parameter(0x20));
}

TEST_CASE("transport parameters: every rejection is a TRANSPORT_PARAMETER_ERROR") {
    SUBCASE("duplicates of known parameters") {
        CHECK(decode(concat(integer(0x04, 1), integer(0x04, 1))) == kError);
        CHECK(decode(concat(integer(0x20, 1), integer(0x20, 2))) == kError);
        CHECK(decode(concat(parameter(0x0c, {}), parameter(0x0c, {}))) == kError);
        CHECK(decode(concat(parameter(0x0f, {}), parameter(0x0f, hex("01")))) == kError);
    }
    SUBCASE("Lengths that do not match the value") {
        CHECK(decode(hex("04" "02" "05" "00")) == kError);    // a 1-byte varint in a 2-byte value
        CHECK(decode(hex("04" "01" "40")) == kError);         // a 2-byte varint in a 1-byte value
        CHECK(decode(hex("04" "00")) == kError);              // no varint at all
        CHECK(decode(hex("04" "05" "0000")) == kError);       // Length past the end
        CHECK(decode(hex("04")) == kError);                   // no Length
        CHECK(decode(hex("40")) == kError);                   // half an ID
        CHECK(decode(parameter(0x0c, hex("00"))) == kError);  // disable_active_migration has no value
        CHECK(decode(parameter(0x02, Bytes(15, 1))) == kError);
        CHECK(decode(parameter(0x02, Bytes(17, 1))) == kError);
        CHECK(decode(parameter(0x02, Bytes(16, 1))) == kOk);
        CHECK(decode(parameter(0x00, Bytes(21, 1))) == kError);
        CHECK(decode(parameter(0x0f, Bytes(21, 1))) == kError);
        CHECK(decode(parameter(0x10, Bytes(21, 1))) == kError);
        CHECK(decode(parameter(0x10, Bytes(20, 1))) == kOk);
    }
    SUBCASE("values out of range, each at its edge") {
        CHECK(decode(integer(0x03, 1199)) == kError);
        CHECK(decode(integer(0x03, 1200)) == kOk);
        CHECK(decode(integer(0x0a, 21)) == kError);
        CHECK(decode(integer(0x0a, 20)) == kOk);
        CHECK(decode(integer(0x0b, 1 << 14)) == kError);
        CHECK(decode(integer(0x0b, (1 << 14) - 1)) == kOk);
        CHECK(decode(integer(0x0e, 0)) == kError);
        CHECK(decode(integer(0x0e, 1)) == kError);
        CHECK(decode(integer(0x0e, 2)) == kOk);
        for (const std::uint64_t id : {0x08u, 0x09u}) {
            CHECK(decode(integer(id, (std::uint64_t{1} << 60) + 1)) == kError);
            CHECK(decode(integer(id, std::uint64_t{1} << 60)) == kOk);
        }
        CHECK(decode(integer(0x04, kMaxVarint)) == kOk);
    }
    SUBCASE("server-only parameters from a client") {
        const Bytes server_only[] = {parameter(0x00, hex("0102")), parameter(0x02, Bytes(16, 9)),
                                     parameter(0x10, hex("0102")), Bytes{}};
        for (std::size_t i = 0; i + 1 < std::size(server_only); ++i) {
            CHECK(decode(server_only[i], EndpointRole::client) == kError);
            CHECK(decode(server_only[i], EndpointRole::server) == kOk);
        }
        TransportParameters p;
        p.preferred_address = sample_preferred_address();
        const Bytes preferred = encode(p, EndpointRole::server);
        CHECK(decode(preferred, EndpointRole::client) == kError);
        CHECK(decode(preferred, EndpointRole::server) == kOk);
    }
    SUBCASE("preferred_address: exact size, a CID of 1..20 bytes") {
        TransportParameters p;
        p.preferred_address = sample_preferred_address();
        const Bytes good = encode(p, EndpointRole::server);
        REQUIRE(good.size() == 2 + 41 + 3);
        Bytes value(good.begin() + 2, good.end());
        CHECK(decode(parameter(0x0d, value)) == kOk);
        Bytes longer = value;
        longer.push_back(0);
        CHECK(decode(parameter(0x0d, longer)) == kError);
        CHECK(decode(parameter(0x0d, Bytes(value.begin(), value.end() - 1))) == kError);
        Bytes zero_cid = value;
        zero_cid[24] = 0;   // the CID length byte
        zero_cid.erase(zero_cid.begin() + 25, zero_cid.begin() + 28);
        CHECK(decode(parameter(0x0d, zero_cid)) == kError);
        Bytes long_cid = value;
        long_cid[24] = 21;
        long_cid.insert(long_cid.begin() + 25, 18, 0xcc);
        CHECK(decode(parameter(0x0d, long_cid)) == kError);
        CHECK(decode(parameter(0x0d, Bytes(40, 0))) == kError);
        // The encoder refuses it too.
        p.preferred_address->connection_id = ConnectionId{};
        Bytes out(128);
        CHECK(encode_transport_parameters(p, EndpointRole::server, out.data(), out.size()) == -EINVAL);
    }
}

TEST_CASE("transport parameters: every truncation decodes only at a parameter boundary") {
    const Bytes bytes = encode(full_server_set(), EndpointRole::server);
    std::vector<std::size_t> boundaries = {0};
    ByteReader reader(bytes.data(), bytes.size());
    while (!reader.empty()) {
        reader.varint();
        reader.skip(static_cast<std::size_t>(reader.varint()));
        REQUIRE_FALSE(reader.failed());
        boundaries.push_back(reader.offset());
    }
    CHECK(boundaries.size() == 19);   // 18 parameters
    for (std::size_t size = 0; size <= bytes.size(); ++size) {
        const Bytes prefix(bytes.begin(), bytes.begin() + static_cast<std::ptrdiff_t>(size));
        const bool boundary = std::find(boundaries.begin(), boundaries.end(), size) != boundaries.end();
        CAPTURE(size);
        CHECK((decode(prefix, EndpointRole::server) == kOk) == boundary);
    }
}

TEST_CASE("transport parameters: 10^4 random valid sets round trip, from either role") {
    std::mt19937_64 random(18);
    auto any_varint = [&random] { return random() >> (2 + random() % 62); };
    auto maybe_cid = [&random]() -> std::optional<ConnectionId> {
        if (random() % 3 == 0) return std::nullopt;
        Bytes bytes(random() % 21);
        for (auto& byte : bytes) byte = static_cast<std::uint8_t>(random());
        return ConnectionId::from(bytes);
    };
    for (int round = 0; round < 10000; ++round) {
        const EndpointRole sender = random() % 2 ? EndpointRole::client : EndpointRole::server;
        TransportParameters p;
        p.max_idle_timeout_ms = any_varint();
        p.max_udp_payload_size = 1200 + any_varint() % (kMaxVarint - 1200);
        p.initial_max_data = any_varint();
        p.initial_max_stream_data_bidi_local = any_varint();
        p.initial_max_stream_data_bidi_remote = any_varint();
        p.initial_max_stream_data_uni = any_varint();
        p.initial_max_streams_bidi = any_varint() % (kMaxStreamsLimit + 1);
        p.initial_max_streams_uni = any_varint() % (kMaxStreamsLimit + 1);
        p.ack_delay_exponent = random() % 21;
        p.max_ack_delay_ms = random() % (1 << 14);
        p.disable_active_migration = random() % 2;
        p.active_connection_id_limit = 2 + any_varint() % (kMaxVarint - 2);
        p.initial_source_connection_id = maybe_cid();
        p.max_datagram_frame_size = random() % 2 ? any_varint() : 0;
        if (sender == EndpointRole::server) {
            p.original_destination_connection_id = maybe_cid();
            p.retry_source_connection_id = maybe_cid();
            if (random() % 2) {
                p.stateless_reset_token.emplace();
                for (auto& byte : p.stateless_reset_token->bytes) byte = static_cast<std::uint8_t>(random());
            }
            if (random() % 2) {
                PreferredAddress address = sample_preferred_address();
                address.ipv4_port = static_cast<std::uint16_t>(random());
                Bytes id(1 + random() % 20, static_cast<std::uint8_t>(random()));
                address.connection_id = ConnectionId::from(id);
                p.preferred_address = address;
            }
        }
        const std::uint64_t reserved = random() % 2 ? 31 * (random() % 1000) + 27 : kNoReservedParameter;
        TransportParameters decoded;
        REQUIRE(decode(encode(p, sender, reserved), sender, decoded) == kOk);
        REQUIRE(decoded == p);
    }
}

TEST_CASE("transport parameters: the section 7.3 connection ID checks after the handshake") {
    TransportParameters server = full_server_set();
    HandshakeConnectionIds seen;
    seen.peer_initial_scid = cid("f067a5502a4262b5");
    seen.original_dcid = cid("8394c8f03e515708");
    seen.retry_received = true;
    seen.retry_scid = cid("0102030405");
    CHECK(check_handshake_connection_ids(server, EndpointRole::client, seen) == kOk);

    HandshakeConnectionIds wrong = seen;
    wrong.peer_initial_scid = cid("f067a5502a4262b6");
    CHECK(check_handshake_connection_ids(server, EndpointRole::client, wrong) == kError);
    wrong = seen;
    wrong.original_dcid = cid("8394c8f03e5157");
    CHECK(check_handshake_connection_ids(server, EndpointRole::client, wrong) == kError);
    wrong = seen;
    wrong.retry_scid = cid("01020304");
    CHECK(check_handshake_connection_ids(server, EndpointRole::client, wrong) == kError);
    wrong = seen;
    wrong.retry_received = false;   // retry_source_connection_id without a Retry
    CHECK(check_handshake_connection_ids(server, EndpointRole::client, wrong) == kError);
    TransportParameters no_retry = server;
    no_retry.retry_source_connection_id.reset();
    CHECK(check_handshake_connection_ids(no_retry, EndpointRole::client, seen) == kError);   // Retry, no parameter
    CHECK(check_handshake_connection_ids(no_retry, EndpointRole::client, wrong) == kOk);
    TransportParameters missing = server;
    missing.initial_source_connection_id.reset();
    CHECK(check_handshake_connection_ids(missing, EndpointRole::client, seen) == kError);
    missing = server;
    missing.original_destination_connection_id.reset();
    CHECK(check_handshake_connection_ids(missing, EndpointRole::client, seen) == kError);

    // At a server, only the client's initial_source_connection_id is checked; an empty CID is a value.
    TransportParameters client;
    HandshakeConnectionIds at_server;
    CHECK(check_handshake_connection_ids(client, EndpointRole::server, at_server) == kError);
    client.initial_source_connection_id = ConnectionId{};
    CHECK(check_handshake_connection_ids(client, EndpointRole::server, at_server) == kOk);
    at_server.peer_initial_scid = cid("aa");
    CHECK(check_handshake_connection_ids(client, EndpointRole::server, at_server) == kError);
}
