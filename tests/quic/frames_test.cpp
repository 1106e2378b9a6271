#include "engine/quic/frames.hpp"

#include <doctest/doctest.h>

#include <algorithm>
#include <array>
#include <cstdint>
#include <cstring>
#include <deque>
#include <initializer_list>
#include <random>
#include <string>
#include <variant>
#include <vector>

using namespace cf::quic;

namespace {

using TE = TransportError;
using Buffer = std::vector<std::uint8_t>;

constexpr FramePacketType kPacketTypes[] = {FramePacketType::initial, FramePacketType::zero_rtt,
                                            FramePacketType::handshake, FramePacketType::one_rtt};

// Raw wire bytes built by hand (a varint of a chosen width lets a test write non-shortest encodings).
struct Wire {
    Buffer bytes;
    Wire& u8(std::uint8_t value) {
        bytes.push_back(value);
        return *this;
    }
    Wire& v(std::uint64_t value, std::size_t width = 0) {
        std::uint8_t buffer[8];
        ByteWriter writer(buffer, sizeof buffer);
        writer.varint(value, width);
        REQUIRE_FALSE(writer.failed());
        bytes.insert(bytes.end(), buffer, buffer + writer.size());
        return *this;
    }
    Wire& raw(std::initializer_list<std::uint8_t> values) {
        bytes.insert(bytes.end(), values);
        return *this;
    }
    Wire& fill(std::size_t count, std::uint8_t value) {
        bytes.insert(bytes.end(), count, value);
        return *this;
    }
};

Buffer encoded(const Frame& frame) {
    Buffer out(frame_size(frame) + 16);
    ByteWriter writer(out.data(), out.size());
    REQUIRE(encode_frame(writer, frame));
    out.resize(writer.size());
    return out;
}

struct Parsed {
    std::vector<Frame> frames;
    bool failed = false;
    TE error = TE::no_error;
    std::uint64_t error_frame_type = 0;
    std::size_t error_offset = 0;
};

Parsed parse_all(const Buffer& payload, FramePacketType packet = FramePacketType::one_rtt) {
    FrameParser parser(Bytes(payload.data(), payload.size()), packet);
    Parsed parsed;
    Frame frame;
    while (parser.next(frame)) parsed.frames.push_back(frame);
    CHECK_FALSE(parser.next(frame));   // stays done
    parsed.failed = parser.failed();
    parsed.error = parser.error();
    parsed.error_frame_type = parser.error_frame_type();
    parsed.error_offset = parser.error_offset();
    if (!parsed.failed) CHECK(parsed.error == TE::no_error);
    return parsed;
}

// The error a one-frame payload is rejected with (no_error when it is accepted).
TE rejection(const Buffer& payload, FramePacketType packet = FramePacketType::one_rtt) {
    return parse_all(payload, packet).error;
}

Bytes as_bytes(const char* text) { return Bytes(reinterpret_cast<const std::uint8_t*>(text), std::strlen(text)); }

// Random frames with fixed seeds; the data they point to lives in `storage`.
struct FrameGenerator {
    std::mt19937_64 random;
    std::deque<Buffer> storage;

    explicit FrameGenerator(std::uint64_t seed) : random(seed) {}

    // Any varint, every width about as often.
    std::uint64_t varint() { return random() >> (2 + random() % 62); }
    std::uint64_t below(std::uint64_t bound) { return bound == 0 ? 0 : random() % bound; }
    std::uint64_t small() { return below(std::uint64_t{1} << below(20)); }
    Bytes bytes(std::size_t min_length = 0) {
        // Mostly short, sometimes past 63 bytes so 2-byte lengths come up.
        const std::size_t length = min_length + (below(8) == 0 ? below(400) : below(40));
        Buffer& buffer = storage.emplace_back(length);
        for (auto& byte : buffer) byte = static_cast<std::uint8_t>(random());
        return Bytes(buffer.data(), buffer.size());
    }
    template <std::size_t N> std::array<std::uint8_t, N> array() {
        std::array<std::uint8_t, N> out{};
        for (auto& byte : out) byte = static_cast<std::uint8_t>(random());
        return out;
    }

    AckFrame ack() {
        AckFrame frame;
        frame.ack_delay = varint();
        const std::size_t wanted = 1 + below(below(4) == 0 ? kMaxAckRanges : 4);
        std::uint64_t largest = below(3) == 0 ? small() : varint();
        while (frame.range_count < wanted) {
            const std::uint64_t smallest = largest - std::min(largest, small());
            frame.ranges[frame.range_count++] = {smallest, largest};
            if (smallest < 2) break;
            largest = smallest - 2 - below(std::min<std::uint64_t>(smallest - 1, small() + 1));
        }
        if (below(2) == 0) {
            frame.has_ecn = true;
            frame.ecn = {varint(), varint(), varint()};
        }
        return frame;
    }

    Frame make(FrameKind kind) {
        switch (kind) {
            case FrameKind::padding: return PaddingFrame{1 + below(50)};
            case FrameKind::ping: return PingFrame{};
            case FrameKind::ack: return ack();
            case FrameKind::reset_stream: return ResetStreamFrame{varint(), varint(), varint()};
            case FrameKind::stop_sending: return StopSendingFrame{varint(), varint()};
            case FrameKind::crypto: {
                const Bytes data = bytes();
                return CryptoFrame{std::min(varint(), kMaxVarint - data.size()), data};
            }
            case FrameKind::new_token: return NewTokenFrame{bytes(1)};
            case FrameKind::stream: {
                StreamFrame frame;
                frame.stream_id = varint();
                frame.data = bytes();
                frame.offset = below(4) == 0 ? 0 : std::min(varint(), kMaxVarint - frame.data.size());
                frame.fin = below(2) == 0;
                frame.has_length = below(2) == 0;
                return frame;
            }
            case FrameKind::max_data: return MaxDataFrame{varint()};
            case FrameKind::max_stream_data: return MaxStreamDataFrame{varint(), varint()};
            case FrameKind::max_streams: return MaxStreamsFrame{below(2) == 0, below(kMaxStreamsLimit + 1)};
            case FrameKind::data_blocked: return DataBlockedFrame{varint()};
            case FrameKind::stream_data_blocked: return StreamDataBlockedFrame{varint(), varint()};
            case FrameKind::streams_blocked: return StreamsBlockedFrame{below(2) == 0, below(kMaxStreamsLimit + 1)};
            case FrameKind::new_connection_id: {
                NewConnectionIdFrame frame;
                frame.sequence_number = varint();
                frame.retire_prior_to = below(frame.sequence_number + 1);
                frame.connection_id_length = static_cast<std::uint8_t>(1 + below(kMaxConnectionIdBytes));
                for (std::size_t i = 0; i < frame.connection_id_length; ++i)
                    frame.connection_id[i] = static_cast<std::uint8_t>(random());
                frame.stateless_reset_token = array<kStatelessResetTokenBytes>();
                return frame;
            }
            case FrameKind::retire_connection_id: return RetireConnectionIdFrame{varint()};
            case FrameKind::path_challenge: return PathChallengeFrame{array<kPathDataBytes>()};
            case FrameKind::path_response: return PathResponseFrame{array<kPathDataBytes>()};
            case FrameKind::connection_close: {
                ConnectionCloseFrame frame;
                frame.application = below(2) == 0;
                frame.error_code = varint();
                frame.frame_type = frame.application ? 0 : varint();
                frame.reason = bytes();
                return frame;
            }
            case FrameKind::handshake_done: return HandshakeDoneFrame{};
            case FrameKind::datagram: return DatagramFrame{bytes(), below(2) == 0};
        }
        FAIL("unknown kind");
        return PingFrame{};
    }
};

constexpr std::size_t kKinds = std::variant_size_v<Frame>;

FrameKind kind_at(std::size_t index) { return static_cast<FrameKind>(index); }

bool runs_to_end(const Frame& frame) {
    if (const auto* stream = std::get_if<StreamFrame>(&frame)) return !stream->has_length;
    if (const auto* datagram = std::get_if<DatagramFrame>(&frame)) return !datagram->has_length;
    return kind_of(frame) == FrameKind::padding;   // a shorter run of zeros is still PADDING
}

}  // namespace

TEST_CASE("quic frames: every frame type round trips with random fields, and frame_size is exact") {
    FrameGenerator generator(9000);
    for (std::size_t index = 0; index < kKinds; ++index) {
        CAPTURE(frame_kind_name(kind_at(index)));
        for (int i = 0; i < 300; ++i) {
            const Frame frame = generator.make(kind_at(index));
            REQUIRE(kind_of(frame) == kind_at(index));
            const Buffer bytes = encoded(frame);
            REQUIRE(bytes.size() == frame_size(frame));
            REQUIRE(bytes[0] == wire_type_of(frame));   // every type is one byte in its shortest encoding
            const Parsed parsed = parse_all(bytes);
            REQUIRE_FALSE(parsed.failed);
            REQUIRE(parsed.frames.size() == 1);
            REQUIRE(parsed.frames[0] == frame);
        }
    }
}

TEST_CASE("quic frames: a payload of many random frames parses back in order, spans pointing into it") {
    FrameGenerator generator(42);
    for (int round = 0; round < 200; ++round) {
        std::vector<Frame> frames;
        Buffer payload;
        const int count = 1 + static_cast<int>(generator.below(12));
        for (int i = 0; i < count; ++i) {
            Frame frame = generator.make(kind_at(generator.below(kKinds)));
            // Only the last frame may run to the end; two PADDING runs side by side are one run.
            if (runs_to_end(frame) && kind_of(frame) != FrameKind::padding && i + 1 != count) continue;
            if (kind_of(frame) == FrameKind::padding && !frames.empty() && kind_of(frames.back()) == FrameKind::padding)
                continue;
            const Buffer bytes = encoded(frame);
            payload.insert(payload.end(), bytes.begin(), bytes.end());
            frames.push_back(frame);
        }
        if (frames.empty()) continue;
        const Parsed parsed = parse_all(payload);
        REQUIRE_FALSE(parsed.failed);
        REQUIRE(parsed.frames == frames);
        for (const Frame& frame : parsed.frames) {
            if (const auto* stream = std::get_if<StreamFrame>(&frame)) {
                CHECK(stream->data.data() >= payload.data());
                CHECK(stream->data.data() + stream->data.size() <= payload.data() + payload.size());
            }
        }
    }
}

TEST_CASE("quic frames: byte-exact encodings, checked by hand against RFC 9000 section 19") {
    const std::uint8_t token[kStatelessResetTokenBytes] = {0xaa, 0xaa, 0xaa, 0xaa, 0xaa, 0xaa, 0xaa, 0xaa,
                                                            0xaa, 0xaa, 0xaa, 0xaa, 0xaa, 0xaa, 0xaa, 0xaa};
    CHECK(encoded(PingFrame{}) == Buffer{0x01});
    CHECK(encoded(PaddingFrame{3}) == Buffer{0x00, 0x00, 0x00});
    CHECK(encoded(HandshakeDoneFrame{}) == Buffer{0x1e});
    // STREAM 0x08 | LEN | FIN, stream 4, no offset (0), 2 bytes.
    CHECK(encoded(StreamFrame{4, 0, as_bytes("hi"), true, true}) == Buffer{0x0b, 0x04, 0x02, 'h', 'i'});
    // STREAM 0x08 | OFF, offset 1000 as a 2-byte varint (0x43e8), data to the end.
    CHECK(encoded(StreamFrame{4, 1000, as_bytes("xy"), false, false}) == Buffer{0x0c, 0x04, 0x43, 0xe8, 'x', 'y'});
    // ACK: largest 10, delay 100 (0x4064), one more range; first range 10-8 = 2, gap 8-5-2 = 1, length 5-2 = 3.
    const AckRange ranges[] = {{8, 10}, {2, 5}};
    Buffer ack(32);
    ByteWriter writer(ack.data(), ack.size());
    REQUIRE(encode_ack(writer, ranges, 100, nullptr));
    ack.resize(writer.size());
    CHECK(ack == Buffer{0x02, 0x0a, 0x40, 0x64, 0x01, 0x02, 0x01, 0x03});
    const EcnCounts ecn{1, 2, 300};
    Buffer ack_ecn(32);
    ByteWriter ecn_writer(ack_ecn.data(), ack_ecn.size());
    REQUIRE(encode_ack(ecn_writer, std::span(ranges, 1), 0, &ecn));
    ack_ecn.resize(ecn_writer.size());
    CHECK(ack_ecn == Buffer{0x03, 0x0a, 0x00, 0x00, 0x02, 0x01, 0x02, 0x41, 0x2c});
    CHECK(encoded(ConnectionCloseFrame{false, 0x0a, 0x08, as_bytes("bad")}) ==
          Buffer{0x1c, 0x0a, 0x08, 0x03, 'b', 'a', 'd'});
    CHECK(encoded(ConnectionCloseFrame{true, 0x0100, 0, {}}) == Buffer{0x1d, 0x41, 0x00, 0x00});
    NewConnectionIdFrame new_id;
    new_id.sequence_number = 1;
    new_id.connection_id_length = 4;
    new_id.connection_id = {1, 2, 3, 4};
    std::copy(std::begin(token), std::end(token), new_id.stateless_reset_token.begin());
    Buffer expected_new_id{0x18, 0x01, 0x00, 0x04, 0x01, 0x02, 0x03, 0x04};
    expected_new_id.insert(expected_new_id.end(), std::begin(token), std::end(token));
    CHECK(encoded(new_id) == expected_new_id);
    // MAX_STREAMS (unidirectional) at its limit 2^60: an 8-byte varint, 0xc0 | 0x10 first.
    CHECK(encoded(MaxStreamsFrame{false, kMaxStreamsLimit}) == Buffer{0x13, 0xd0, 0, 0, 0, 0, 0, 0, 0});
    CHECK(encoded(DatagramFrame{as_bytes("abc"), true}) == Buffer{0x31, 0x03, 'a', 'b', 'c'});
    CHECK(encoded(DatagramFrame{as_bytes("abc"), false}) == Buffer{0x30, 'a', 'b', 'c'});
    CHECK(encoded(CryptoFrame{0, as_bytes("z")}) == Buffer{0x06, 0x00, 0x01, 'z'});
    CHECK(encoded(PathChallengeFrame{{1, 2, 3, 4, 5, 6, 7, 8}}) == Buffer{0x1a, 1, 2, 3, 4, 5, 6, 7, 8});
}

TEST_CASE("quic frames: hand-written payloads decode to the fields the RFC says") {
    // A STREAM frame whose offset uses a longer varint than needed (allowed for fields, only types must be short).
    const Buffer payload = Wire().u8(0x0f).v(7).v(0, 8).v(2, 4).raw({'o', 'k'}).bytes;   // spans point into it
    Parsed parsed = parse_all(payload);
    REQUIRE(parsed.frames.size() == 1);
    const auto& stream = std::get<StreamFrame>(parsed.frames[0]);
    CHECK(stream.stream_id == 7);
    CHECK(stream.offset == 0);
    CHECK(stream.fin);
    CHECK(stream.has_length);
    CHECK(same_bytes(stream.data, as_bytes("ok")));
    // An Initial's shape: CRYPTO then 1000 bytes of PADDING, which come back as one run.
    parsed = parse_all(Wire().u8(0x06).v(0).v(3).raw({1, 2, 3}).fill(1000, 0).bytes, FramePacketType::initial);
    REQUIRE(parsed.frames.size() == 2);
    CHECK(std::get<PaddingFrame>(parsed.frames[1]).length == 1000);
    // PADDING between frames ends at the next non-zero byte.
    parsed = parse_all(Wire().fill(3, 0).u8(0x01).fill(2, 0).bytes);
    REQUIRE(parsed.frames.size() == 3);
    CHECK(std::get<PaddingFrame>(parsed.frames[0]).length == 3);
    CHECK(kind_of(parsed.frames[1]) == FrameKind::ping);
    CHECK(std::get<PaddingFrame>(parsed.frames[2]).length == 2);
    // An ACK down to packet 0 exactly: largest 5, first range 2 (3..5), gap 0 (next largest 1), length 1 (0..1).
    parsed = parse_all(Wire().u8(0x02).v(5).v(0).v(1).v(2).v(0).v(1).bytes);
    REQUIRE(parsed.frames.size() == 1);
    const auto& ack = std::get<AckFrame>(parsed.frames[0]);
    REQUIRE(ack.range_count == 2);
    CHECK(ack.ranges[0] == AckRange{3, 5});
    CHECK(ack.ranges[1] == AckRange{0, 1});
    CHECK(ack.largest_acknowledged() == 5);
    // The largest offsets the RFC allows: offset + length == 2^62 - 1.
    CHECK(rejection(Wire().u8(0x0e).v(0).v(kMaxVarint - 1).v(1).u8(9).bytes) == TE::no_error);
    CHECK(rejection(Wire().u8(0x06).v(kMaxVarint).v(0).bytes, FramePacketType::handshake) == TE::no_error);
    CHECK(rejection(Wire().u8(0x12).v(kMaxStreamsLimit).bytes) == TE::no_error);
    CHECK(rejection(Wire().u8(0x17).v(kMaxStreamsLimit).bytes) == TE::no_error);
    CHECK(rejection(Wire().u8(0x18).v(3).v(3).u8(20).fill(20 + 16, 7).bytes) == TE::no_error);
}

TEST_CASE("quic frames: every malformed-frame rule is rejected with the RFC's error") {
    SUBCASE("an empty payload is a PROTOCOL_VIOLATION") {
        const Parsed parsed = parse_all({});
        CHECK(parsed.failed);
        CHECK(parsed.error == TE::protocol_violation);
        CHECK(parsed.error_frame_type == 0);
    }
    SUBCASE("a truncated frame type") {
        CHECK(rejection({0x40}) == TE::frame_encoding_error);
        CHECK(rejection({0x80, 0x00, 0x00}) == TE::frame_encoding_error);
    }
    SUBCASE("a frame type in a longer encoding than needed is a PROTOCOL_VIOLATION") {
        CHECK(rejection(Wire().v(0x01, 2).bytes) == TE::protocol_violation);
        CHECK(rejection(Wire().v(0x00, 2).bytes) == TE::protocol_violation);
        CHECK(rejection(Wire().v(0x1e, 4).bytes) == TE::protocol_violation);
        CHECK(rejection(Wire().u8(0x01).v(0x06, 8).v(0).v(0).bytes) == TE::protocol_violation);
        const Parsed parsed = parse_all(Wire().u8(0x01).v(0x01, 2).bytes);
        CHECK(parsed.frames.size() == 1);
        CHECK(parsed.error_offset == 1);
        CHECK(parsed.error_frame_type == 0x01);
    }
    SUBCASE("unknown frame types are a FRAME_ENCODING_ERROR") {
        const std::uint64_t unknown[] = {0x1f, 0x20, 0x2f, 0x32, 0x3f, 0x40, 0x4000, 0x40000000, kMaxVarint};
        for (const std::uint64_t type : unknown) {
            CAPTURE(type);
            const Parsed parsed = parse_all(Wire().v(type).fill(16, 0).bytes);
            CHECK(parsed.error == TE::frame_encoding_error);
            CHECK(parsed.error_frame_type == type);
        }
    }
    SUBCASE("STREAM offset + length above 2^62 - 1") {
        CHECK(rejection(Wire().u8(0x0e).v(0).v(kMaxVarint).v(1).u8(9).bytes) == TE::frame_encoding_error);
        CHECK(rejection(Wire().u8(0x0c).v(0).v(kMaxVarint).u8(9).bytes) == TE::frame_encoding_error);
        CHECK(rejection(Wire().u8(0x0e).v(0).v(kMaxVarint - 1).v(2).raw({9, 9}).bytes) == TE::frame_encoding_error);
    }
    SUBCASE("CRYPTO offset + length above 2^62 - 1 (FRAME_ENCODING_ERROR, not CRYPTO_BUFFER_EXCEEDED)") {
        CHECK(rejection(Wire().u8(0x06).v(kMaxVarint).v(1).u8(9).bytes) == TE::frame_encoding_error);
        CHECK(rejection(Wire().u8(0x06).v(kMaxVarint - 2).v(3).raw({1, 2, 3}).bytes) == TE::frame_encoding_error);
    }
    SUBCASE("MAX_STREAMS and STREAMS_BLOCKED above 2^60") {
        for (const std::uint8_t type : {0x12, 0x13, 0x16, 0x17}) {
            CAPTURE(type);
            CHECK(rejection(Wire().u8(type).v(kMaxStreamsLimit + 1).bytes) == TE::frame_encoding_error);
            CHECK(rejection(Wire().u8(type).v(kMaxVarint).bytes) == TE::frame_encoding_error);
        }
    }
    SUBCASE("NEW_CONNECTION_ID: length 0 or above 20, retire_prior_to above the sequence number") {
        CHECK(rejection(Wire().u8(0x18).v(1).v(0).u8(0).fill(16, 7).bytes) == TE::frame_encoding_error);
        CHECK(rejection(Wire().u8(0x18).v(1).v(0).u8(21).fill(21 + 16, 7).bytes) == TE::frame_encoding_error);
        CHECK(rejection(Wire().u8(0x18).v(1).v(0).u8(255).fill(255 + 16, 7).bytes) == TE::frame_encoding_error);
        CHECK(rejection(Wire().u8(0x18).v(1).v(2).u8(8).fill(8 + 16, 7).bytes) == TE::frame_encoding_error);
    }
    SUBCASE("NEW_TOKEN with an empty token") {
        CHECK(rejection(Wire().u8(0x07).v(0).bytes) == TE::frame_encoding_error);
    }
    SUBCASE("ACK ranges that go below packet 0") {
        // First range larger than the largest acknowledged.
        CHECK(rejection(Wire().u8(0x02).v(5).v(0).v(0).v(6).bytes) == TE::frame_encoding_error);
        // A gap below 0: smallest 3, gap 2 means the next largest is 3 - 2 - 2 = -1.
        CHECK(rejection(Wire().u8(0x02).v(5).v(0).v(1).v(2).v(2).v(0).bytes) == TE::frame_encoding_error);
        // A range below 0: smallest 3, gap 0 gives largest 1, a length of 2 goes to -1.
        CHECK(rejection(Wire().u8(0x02).v(5).v(0).v(1).v(2).v(0).v(2).bytes) == TE::frame_encoding_error);
        // The same in an ACK with ECN counts.
        CHECK(rejection(Wire().u8(0x03).v(5).v(0).v(1).v(2).v(0).v(2).v(0).v(0).v(0).bytes) ==
              TE::frame_encoding_error);
        // A range count the payload cannot hold (each range takes two bytes at least).
        CHECK(rejection(Wire().u8(0x02).v(1000).v(0).v(kMaxVarint).v(0).fill(64, 0).bytes) ==
              TE::frame_encoding_error);
    }
    SUBCASE("lengths that run past the payload") {
        CHECK(rejection(Wire().u8(0x06).v(0).v(10).raw({1, 2, 3}).bytes) == TE::frame_encoding_error);
        CHECK(rejection(Wire().u8(0x0a).v(0).v(kMaxVarint).raw({1}).bytes) == TE::frame_encoding_error);
        CHECK(rejection(Wire().u8(0x1c).v(0).v(0).v(5).raw({'a'}).bytes) == TE::frame_encoding_error);
        CHECK(rejection(Wire().u8(0x1d).v(0).v(2).raw({'a'}).bytes) == TE::frame_encoding_error);
        CHECK(rejection(Wire().u8(0x31).v(4).raw({'a', 'b', 'c'}).bytes) == TE::frame_encoding_error);
        CHECK(rejection(Wire().u8(0x07).v(9).raw({'a'}).bytes) == TE::frame_encoding_error);
    }
    SUBCASE("the first bad frame stops the parser; the frames before it were delivered") {
        const Parsed parsed = parse_all(Wire().u8(0x01).u8(0x10).v(5).u8(0x07).v(0).u8(0x01).bytes);
        CHECK(parsed.frames.size() == 2);
        CHECK(parsed.error == TE::frame_encoding_error);
        CHECK(parsed.error_frame_type == 0x07);
        CHECK(parsed.error_offset == 3);
    }
}

TEST_CASE("quic frames: truncation at every byte of every frame type is a FRAME_ENCODING_ERROR") {
    FrameGenerator generator(77);
    for (std::size_t index = 0; index < kKinds; ++index) {
        CAPTURE(frame_kind_name(kind_at(index)));
        for (int i = 0; i < 25; ++i) {
            const Frame frame = generator.make(kind_at(index));
            const Buffer bytes = encoded(frame);
            for (std::size_t cut = 1; cut < bytes.size(); ++cut) {
                CAPTURE(cut);
                const Parsed parsed = parse_all(Buffer(bytes.begin(), bytes.begin() + static_cast<long>(cut)));
                if (runs_to_end(frame) && !parsed.failed) {
                    // PADDING, STREAM without a length and DATAGRAM 0x30 cut in their data are shorter frames.
                    REQUIRE(parsed.frames.size() == 1);
                    REQUIRE(kind_of(parsed.frames[0]) == kind_of(frame));
                    REQUIRE(frame_size(parsed.frames[0]) == cut);
                    continue;
                }
                REQUIRE(parsed.failed);
                REQUIRE(parsed.error == TE::frame_encoding_error);
                REQUIRE(parsed.error_frame_type == wire_type_of(frame));
                REQUIRE(parsed.error_offset == 0);
            }
        }
    }
}

TEST_CASE("quic frames: the permitted-frames table of RFC 9000 section 12.4, for each packet type") {
    // The RFC's table, written out again: I = Initial, 0 = 0-RTT, H = Handshake, 1 = 1-RTT, '_' = not allowed.
    const struct {
        std::uint64_t type;
        const char* allowed;   // in the order of kPacketTypes: I 0 H 1
    } table[] = {
        {0x00, "I0H1"}, {0x01, "I0H1"}, {0x02, "I_H1"}, {0x03, "I_H1"}, {0x04, "_0_1"}, {0x05, "_0_1"},
        {0x06, "I_H1"}, {0x07, "___1"}, {0x08, "_0_1"}, {0x09, "_0_1"}, {0x0a, "_0_1"}, {0x0b, "_0_1"},
        {0x0c, "_0_1"}, {0x0d, "_0_1"}, {0x0e, "_0_1"}, {0x0f, "_0_1"}, {0x10, "_0_1"}, {0x11, "_0_1"},
        {0x12, "_0_1"}, {0x13, "_0_1"}, {0x14, "_0_1"}, {0x15, "_0_1"}, {0x16, "_0_1"}, {0x17, "_0_1"},
        {0x18, "_0_1"}, {0x19, "_0_1"}, {0x1a, "_0_1"}, {0x1b, "___1"}, {0x1c, "I0H1"}, {0x1d, "_0_1"},
        {0x1e, "___1"}, {0x30, "_0_1"}, {0x31, "_0_1"},
    };
    // A valid body for each type: enough zero bytes, except where zero is not valid.
    auto payload_for = [](std::uint64_t type) {
        Wire wire;
        wire.u8(static_cast<std::uint8_t>(type));
        if (type == 0x07) wire.v(1).u8(0xee);                                   // token of one byte
        else if (type == 0x18) wire.v(0).v(0).u8(1).fill(1 + 16, 0x55);        // 1-byte connection ID
        else if (type != 0x00 && type != 0x01 && type != 0x1e) wire.fill(8, 0); // ids, lengths, 8 bytes of path data
        return wire.bytes;
    };
    std::size_t covered = 0;
    for (const auto& row : table) {
        for (std::size_t p = 0; p < 4; ++p) {
            CAPTURE(row.type);
            CAPTURE(p);
            const bool allowed = row.allowed[p] != '_';
            CHECK(frame_allowed_in(row.type, kPacketTypes[p]) == allowed);
            const Parsed parsed = parse_all(payload_for(row.type), kPacketTypes[p]);
            if (allowed) {
                CHECK_FALSE(parsed.failed);
                CHECK(parsed.frames.size() >= 1);
                // STREAM's OFF bit comes back only with a non-zero offset (here 0).
                const bool stream = row.type >= frame_type::stream && row.type <= (frame_type::stream | 0x07);
                CHECK(wire_type_of(parsed.frames[0]) == (stream ? row.type & ~kStreamBitOff : row.type));
            } else {
                CHECK(parsed.error == TE::protocol_violation);
                CHECK(parsed.error_frame_type == row.type);
            }
        }
        ++covered;
    }
    CHECK(covered == 33);
    // Unknown types are in no packet type.
    const std::uint64_t unknown[] = {0x1f, 0x2f, 0x32, 0x1000};
    for (const std::uint64_t type : unknown)
        for (const FramePacketType packet : kPacketTypes) CHECK_FALSE(frame_allowed_in(type, packet));
}

TEST_CASE("quic frames: packet-level facts: ack-eliciting, in flight, probing only") {
    const Buffer ack = Wire().u8(0x02).v(3).v(0).v(0).v(0).bytes;
    const Buffer padding = Wire().fill(5, 0).bytes;
    const Buffer ping = Wire().u8(0x01).bytes;
    const Buffer close = Wire().u8(0x1c).v(0).v(0).v(0).bytes;
    const Buffer challenge = Wire().u8(0x1a).fill(8, 1).bytes;
    const Buffer new_id = Wire().u8(0x18).v(1).v(0).u8(4).fill(4 + 16, 2).bytes;
    auto join = [](std::initializer_list<Buffer> parts) {
        Buffer out;
        for (const Buffer& part : parts) out.insert(out.end(), part.begin(), part.end());
        return out;
    };
    const struct {
        Buffer payload;
        bool ack_eliciting, in_flight, probing_only;
    } cases[] = {
        {ack, false, false, false},
        {join({ack, padding}), false, true, false},
        {close, false, false, false},
        {join({ack, close}), false, false, false},
        {ping, true, true, false},
        {join({ack, ping}), true, true, false},
        {join({challenge, padding}), true, true, true},
        {join({new_id, challenge}), true, true, true},
        {join({challenge, ping}), true, true, false},
        {padding, false, true, true},
    };
    for (const auto& c : cases) {
        const PayloadSummary summary =
            scan_payload(Bytes(c.payload.data(), c.payload.size()), FramePacketType::one_rtt);
        CHECK(summary.error == TE::no_error);
        CHECK(summary.ack_eliciting == c.ack_eliciting);
        CHECK(summary.in_flight == c.in_flight);
        CHECK(summary.probing_only == c.probing_only);
    }
    const PayloadSummary empty = scan_payload({}, FramePacketType::initial);
    CHECK(empty.error == TE::protocol_violation);
    CHECK(empty.frames == 0);
    CHECK(is_ack_eliciting(FrameKind::datagram));
    CHECK(frame_sent_only_by_server(FrameKind::new_token));
    CHECK(frame_sent_only_by_server(FrameKind::handshake_done));
    CHECK_FALSE(frame_sent_only_by_server(FrameKind::ping));
}

TEST_CASE("quic frames: ACK ranges beyond kMaxAckRanges: the highest are kept, the rest checked and counted") {
    std::vector<AckRange> ranges;
    std::uint64_t largest = 100000;
    for (int i = 0; i < 100; ++i) {
        ranges.push_back({largest - 10, largest});
        largest -= 13 + i;
    }
    Buffer payload(2048);
    ByteWriter writer(payload.data(), payload.size());
    REQUIRE(encode_ack(writer, ranges, 7, nullptr));
    payload.resize(writer.size());
    const Parsed parsed = parse_all(payload);
    REQUIRE(parsed.frames.size() == 1);
    const auto& ack = std::get<AckFrame>(parsed.frames[0]);
    CHECK(ack.range_count == kMaxAckRanges);
    CHECK(ack.ranges_dropped == 100 - kMaxAckRanges);
    for (std::size_t i = 0; i < kMaxAckRanges; ++i) CHECK(ack.ranges[i] == ranges[i]);
    // A bad range beyond the cap is still found: the last range's length (one byte), made to reach below 0.
    payload.pop_back();
    Wire bad{payload};
    CHECK(rejection(bad.v(kMaxVarint).bytes) == TE::frame_encoding_error);
}

TEST_CASE("quic frames: ACK encoder refuses ranges that are empty, unsorted, overlapping or adjacent") {
    Buffer out(64);
    auto refuses = [&](std::vector<AckRange> ranges) {
        ByteWriter writer(out.data(), out.size());
        return !encode_ack(writer, ranges, 0, nullptr) && !writer.failed() && ack_frame_size(ranges, 0, nullptr) == 0;
    };
    CHECK(refuses({}));
    CHECK(refuses({{5, 4}}));
    CHECK(refuses({{5, 9}, {4, 4}}));       // adjacent: 4 and 5 are one range
    CHECK(refuses({{5, 9}, {3, 5}}));       // overlapping
    CHECK(refuses({{1, 2}, {5, 9}}));       // lowest first
    CHECK(refuses({{0, kMaxVarint + 1}}));
    CHECK_FALSE(refuses({{5, 9}, {3, 3}}));
    EcnCounts bad_ecn{kMaxVarint + 1, 0, 0};
    const AckRange one[] = {{1, 1}};
    ByteWriter writer(out.data(), out.size());
    CHECK_FALSE(encode_ack(writer, one, 0, &bad_ecn));
    CHECK_FALSE(encode_ack(writer, one, kMaxVarint + 1, nullptr));
}

TEST_CASE("quic frames: ack_ranges_that_fit against trying every count") {
    FrameGenerator generator(5);
    for (int i = 0; i < 400; ++i) {
        const AckFrame frame = generator.ack();
        const auto ranges = frame.kept_ranges();
        const EcnCounts* ecn = frame.has_ecn ? &frame.ecn : nullptr;
        const std::size_t available = generator.below(ack_frame_size(ranges, frame.ack_delay, ecn) + 10);
        std::size_t reference = 0;
        for (std::size_t n = 1; n <= ranges.size(); ++n)
            if (ack_frame_size(ranges.first(n), frame.ack_delay, ecn) <= available) reference = n;
        CHECK(ack_ranges_that_fit(ranges, frame.ack_delay, ecn, available) == reference);
    }
}

TEST_CASE("quic frames: STREAM and CRYPTO data that fits, against growing the frame byte by byte") {
    FrameGenerator generator(11);
    static const Buffer zeros(20000, 0);
    for (int i = 0; i < 300; ++i) {
        const std::uint64_t id = generator.varint();
        // Near the 2^62 - 1 limit the answer is small and the search below long, so `available` stays small there.
        const bool near_limit = generator.below(10) == 0;
        const std::uint64_t offset = near_limit ? kMaxVarint - generator.below(100) : generator.varint();
        const std::size_t available = near_limit || generator.below(2) == 0 ? generator.below(300)
                                                                            : generator.below(17000);
        const bool with_length = generator.below(2) == 0;
        CAPTURE(id);
        CAPTURE(offset);
        CAPTURE(available);
        CAPTURE(with_length);
        // The reference: the largest n whose frame is valid and at most `available` bytes, searched from the top
        // (a frame takes more than n bytes, so the search starts at `available` and ends within ~30 steps unless
        // the 2^62 - 1 limit cuts n shorter).
        auto largest_fitting = [&](auto size_of) {
            for (std::size_t n = available + 1; n-- > 0;) {
                const std::size_t size = size_of(n);
                if (size != 0 && size <= available) return n;
            }
            return std::size_t{0};
        };
        auto stream_size = [&](std::size_t n) {
            return frame_size(StreamFrame{id, offset, Bytes(zeros.data(), n), false, with_length});
        };
        std::size_t reference = largest_fitting(stream_size);
        CHECK(stream_data_that_fits(id, offset, available, with_length) == reference);
        if (stream_size(reference) <= available)
            CHECK(stream_frame_overhead(id, offset, reference, with_length) + reference == stream_size(reference));

        auto crypto_size = [&](std::size_t n) { return frame_size(CryptoFrame{offset, Bytes(zeros.data(), n)}); };
        reference = largest_fitting(crypto_size);
        CHECK(crypto_data_that_fits(offset, available) == reference);
        if (crypto_size(reference) <= available)
            CHECK(crypto_frame_overhead(offset, reference) + reference == crypto_size(reference));
    }
    CHECK(datagram_frame_size(100, true) == 1 + 2 + 100);
    CHECK(datagram_frame_size(100, false) == 1 + 100);
    CHECK(datagram_frame_size(100, true) == frame_size(DatagramFrame{Bytes(zeros.data(), 100), true}));
}

TEST_CASE("quic frames: the encoders refuse frames the parser would reject, and frames that do not fit") {
    const Frame invalid[] = {
        PaddingFrame{0},
        NewTokenFrame{},
        MaxStreamsFrame{true, kMaxStreamsLimit + 1},
        StreamsBlockedFrame{false, kMaxStreamsLimit + 1},
        StreamFrame{0, kMaxVarint, as_bytes("x"), false, true},
        StreamFrame{kMaxVarint + 1, 0, {}, false, true},
        CryptoFrame{kMaxVarint, as_bytes("x")},
        NewConnectionIdFrame{},                                   // length 0
        NewConnectionIdFrame{1, 2, 4, {}, {}},                    // retire_prior_to > sequence
        NewConnectionIdFrame{1, 0, 21, {}, {}},
        ConnectionCloseFrame{true, 1, 7, {}},                     // an application close has no frame type
        ConnectionCloseFrame{false, kMaxVarint + 1, 0, {}},
        MaxDataFrame{kMaxVarint + 1},
        ResetStreamFrame{0, 0, kMaxVarint + 1},
        AckFrame{},                                               // no range
    };
    for (const Frame& frame : invalid) {
        CAPTURE(frame_kind_name(kind_of(frame)));
        CHECK(frame_size(frame) == 0);
        Buffer out(64);
        ByteWriter writer(out.data(), out.size());
        CHECK_FALSE(encode_frame(writer, frame));
        CHECK(writer.size() == 0);
    }
    // Too big for the room left: false, the writer failed, nothing written.
    FrameGenerator generator(3);
    for (std::size_t index = 0; index < kKinds; ++index) {
        const Frame frame = generator.make(kind_at(index));
        const std::size_t size = frame_size(frame);
        Buffer out(size);
        ByteWriter short_writer(out.data(), size - 1);
        CHECK_FALSE(encode_frame(short_writer, frame));
        CHECK(short_writer.failed());
        CHECK(short_writer.size() == 0);
        ByteWriter exact(out.data(), size);
        CHECK(encode_frame(exact, frame));
        CHECK(exact.size() == size);
    }
}
