// QUIC frames (RFC 9000 section 19, and RFC 9221's DATAGRAM): one struct per frame, a tagged `Frame` holding any
// of them, a parser over a decrypted packet payload, and encoders with the sizes a packet builder needs.
//
// Zero copy. STREAM, CRYPTO and DATAGRAM data, NEW_TOKEN's token and CONNECTION_CLOSE's reason are spans into the
// payload the parser read: they stay valid as long as that buffer does (copy what must outlive the packet). Fixed
// small fields (a connection ID, a reset token, PATH_CHALLENGE data) are copied into the frame. No allocation.
//
// Parsing. FrameParser yields one frame per next() and stops for good at the first bad one, with the RFC's error
// (the connection then closes with that code and error_frame_type()). Checks, in this order, for each frame:
//   1. the type varint is truncated                                                       FRAME_ENCODING_ERROR
//   2. the type is not in its shortest encoding (section 12.4 allows PROTOCOL_VIOLATION)  PROTOCOL_VIOLATION
//   3. the type is unknown (not section 19 nor RFC 9221's 0x30/0x31)                      FRAME_ENCODING_ERROR
//   4. the type is not allowed in this packet type (section 12.4's table, below)          PROTOCOL_VIOLATION
//   5. a field is truncated, or a length runs past the payload                             FRAME_ENCODING_ERROR
//   6. an impossible value                                                                 FRAME_ENCODING_ERROR
//      - STREAM or CRYPTO offset + length above 2^62 - 1 (for CRYPTO the RFC also allows CRYPTO_BUFFER_EXCEEDED;
//        we say FRAME_ENCODING_ERROR because the frame itself cannot exist, whatever the buffer; how much crypto
//        data the connection buffers is its own check, with CRYPTO_BUFFER_EXCEEDED)
//      - ACK: a first range or a gap/range below packet number 0
//      - MAX_STREAMS or STREAMS_BLOCKED above 2^60
//      - NEW_CONNECTION_ID: length 0 or above 20, or retire_prior_to > sequence_number
//      - NEW_TOKEN with an empty token
// An empty payload is a PROTOCOL_VIOLATION (section 12.4: a packet holds at least one frame).
// Consecutive PADDING bytes come back as one PaddingFrame with their count (an Initial carries ~1000 of them).
//
// Permitted frames per packet type (section 12.4, table 3; "0" = 0-RTT, "1" = 1-RTT):
//   PADDING, PING, CONNECTION_CLOSE 0x1c                                  Initial, 0, Handshake, 1
//   ACK, CRYPTO                                                           Initial, Handshake, 1
//   NEW_TOKEN, PATH_RESPONSE, HANDSHAKE_DONE                              1
//   everything else, with CONNECTION_CLOSE 0x1d and DATAGRAM (RFC 9221)   0, 1
//
// Left to the connection (it has the state these need): rules that depend on who sent the frame (NEW_TOKEN and
// HANDSHAKE_DONE come only from servers: frame_sent_only_by_server()), on stream IDs (direction, limits), on flow
// control, on connection ID counts, and DATAGRAM without our max_datagram_frame_size transport parameter or
// larger than it (RFC 9221: PROTOCOL_VIOLATION).
//
// ACK ranges. AckFrame keeps at most kMaxAckRanges ranges, the highest ones (the wire lists them from the largest
// packet number down); the parser still walks and checks every range and counts the ones it drops. Dropping the
// lowest is safe: a packet whose acknowledgement is dropped stays unacknowledged on our side, so at worst it is
// declared lost and its data sent again; nothing is ever taken as acknowledged that was not.
//
// Encoding. encode_frame() and the per-frame encode() append one frame to a ByteWriter and return false, writing
// nothing, when the frame is invalid (every value the parser rejects is refused, so what we write parses back to
// the same frame) or does not fit (then the writer is failed()). frame_size() says beforehand how many bytes a
// frame takes (0: invalid), and stream_data_that_fits() / crypto_data_that_fits() / ack_ranges_that_fit() how much
// of a frame fits in the room left in a packet. Types are always written in their shortest encoding; STREAM's
// offset field is left out when the offset is 0.
//
// Not thread-safe (one parser per payload); nothing here blocks or allocates.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <span>
#include <variant>

#include "engine/quic/ack_range.hpp"
#include "engine/quic/connection_id.hpp"
#include "engine/quic/stream_id.hpp"
#include "engine/quic/transport_error.hpp"
#include "engine/quic/varint.hpp"

namespace cf::quic {

// The packet types that carry frames, as far as frames care (section 12.4's table has one column per type).
enum class FramePacketType : std::uint8_t { initial, zero_rtt, handshake, one_rtt };

// Wire frame types (the lowest of each family; STREAM adds kStreamBit* to 0x08).
namespace frame_type {
inline constexpr std::uint64_t padding = 0x00;
inline constexpr std::uint64_t ping = 0x01;
inline constexpr std::uint64_t ack = 0x02;
inline constexpr std::uint64_t ack_ecn = 0x03;
inline constexpr std::uint64_t reset_stream = 0x04;
inline constexpr std::uint64_t stop_sending = 0x05;
inline constexpr std::uint64_t crypto = 0x06;
inline constexpr std::uint64_t new_token = 0x07;
inline constexpr std::uint64_t stream = 0x08;   // .. 0x0f
inline constexpr std::uint64_t max_data = 0x10;
inline constexpr std::uint64_t max_stream_data = 0x11;
inline constexpr std::uint64_t max_streams_bidi = 0x12;
inline constexpr std::uint64_t max_streams_uni = 0x13;
inline constexpr std::uint64_t data_blocked = 0x14;
inline constexpr std::uint64_t stream_data_blocked = 0x15;
inline constexpr std::uint64_t streams_blocked_bidi = 0x16;
inline constexpr std::uint64_t streams_blocked_uni = 0x17;
inline constexpr std::uint64_t new_connection_id = 0x18;
inline constexpr std::uint64_t retire_connection_id = 0x19;
inline constexpr std::uint64_t path_challenge = 0x1a;
inline constexpr std::uint64_t path_response = 0x1b;
inline constexpr std::uint64_t connection_close = 0x1c;      // a QUIC-layer error (or none)
inline constexpr std::uint64_t connection_close_app = 0x1d;  // an application's error
inline constexpr std::uint64_t handshake_done = 0x1e;
inline constexpr std::uint64_t datagram = 0x30;              // RFC 9221: data to the end of the packet
inline constexpr std::uint64_t datagram_len = 0x31;          // RFC 9221: with a length
}  // namespace frame_type

// STREAM type bits (section 19.8).
inline constexpr std::uint64_t kStreamBitFin = 0x01;
inline constexpr std::uint64_t kStreamBitLen = 0x02;
inline constexpr std::uint64_t kStreamBitOff = 0x04;

inline constexpr std::size_t kStatelessResetTokenBytes = 16;
inline constexpr std::size_t kPathDataBytes = 8;
inline constexpr std::size_t kMaxAckRanges = 64;

using Bytes = std::span<const std::uint8_t>;

// Content equality of two byte spans (frames compare what they carry, not where it lies).
bool same_bytes(Bytes a, Bytes b) noexcept;

// A run of `length` (>= 1) PADDING bytes.
struct PaddingFrame {
    std::size_t length = 1;
    friend bool operator==(const PaddingFrame&, const PaddingFrame&) noexcept = default;
};

struct PingFrame {
    friend bool operator==(const PingFrame&, const PingFrame&) noexcept = default;
};

// ranges[0, range_count) from the highest packet numbers down, disjoint and not adjacent (the wire cannot say
// otherwise); ranges[0].largest is the Largest Acknowledged. range_count >= 1 in every parsed frame.
struct AckFrame {
    std::uint64_t ack_delay = 0;          // as on the wire: the connection scales it by 2^ack_delay_exponent us
    std::size_t range_count = 0;
    std::uint64_t ranges_dropped = 0;     // lowest ranges beyond kMaxAckRanges, checked and not kept
    bool has_ecn = false;                 // type 0x03
    EcnCounts ecn;
    std::array<AckRange, kMaxAckRanges> ranges{};

    std::uint64_t largest_acknowledged() const noexcept { return ranges[0].largest; }
    std::span<const AckRange> kept_ranges() const noexcept { return {ranges.data(), range_count}; }
    friend bool operator==(const AckFrame& a, const AckFrame& b) noexcept;
};

struct ResetStreamFrame {
    std::uint64_t stream_id = 0;
    std::uint64_t application_error_code = 0;
    std::uint64_t final_size = 0;
    friend bool operator==(const ResetStreamFrame&, const ResetStreamFrame&) noexcept = default;
};

struct StopSendingFrame {
    std::uint64_t stream_id = 0;
    std::uint64_t application_error_code = 0;
    friend bool operator==(const StopSendingFrame&, const StopSendingFrame&) noexcept = default;
};

struct CryptoFrame {
    std::uint64_t offset = 0;
    Bytes data;
    friend bool operator==(const CryptoFrame& a, const CryptoFrame& b) noexcept {
        return a.offset == b.offset && same_bytes(a.data, b.data);
    }
};

struct NewTokenFrame {
    Bytes token;   // never empty
    friend bool operator==(const NewTokenFrame& a, const NewTokenFrame& b) noexcept {
        return same_bytes(a.token, b.token);
    }
};

struct StreamFrame {
    std::uint64_t stream_id = 0;
    std::uint64_t offset = 0;
    Bytes data;
    bool fin = false;
    // With a Length field; without one the data runs to the end of the packet, so such a frame must be last.
    bool has_length = true;
    friend bool operator==(const StreamFrame& a, const StreamFrame& b) noexcept {
        return a.stream_id == b.stream_id && a.offset == b.offset && a.fin == b.fin &&
               a.has_length == b.has_length && same_bytes(a.data, b.data);
    }
};

struct MaxDataFrame {
    std::uint64_t maximum_data = 0;
    friend bool operator==(const MaxDataFrame&, const MaxDataFrame&) noexcept = default;
};

struct MaxStreamDataFrame {
    std::uint64_t stream_id = 0;
    std::uint64_t maximum_stream_data = 0;
    friend bool operator==(const MaxStreamDataFrame&, const MaxStreamDataFrame&) noexcept = default;
};

struct MaxStreamsFrame {
    bool bidirectional = true;
    std::uint64_t maximum_streams = 0;   // <= kMaxStreamsLimit
    friend bool operator==(const MaxStreamsFrame&, const MaxStreamsFrame&) noexcept = default;
};

struct DataBlockedFrame {
    std::uint64_t maximum_data = 0;
    friend bool operator==(const DataBlockedFrame&, const DataBlockedFrame&) noexcept = default;
};

struct StreamDataBlockedFrame {
    std::uint64_t stream_id = 0;
    std::uint64_t maximum_stream_data = 0;
    friend bool operator==(const StreamDataBlockedFrame&, const StreamDataBlockedFrame&) noexcept = default;
};

struct StreamsBlockedFrame {
    bool bidirectional = true;
    std::uint64_t maximum_streams = 0;   // <= kMaxStreamsLimit
    friend bool operator==(const StreamsBlockedFrame&, const StreamsBlockedFrame&) noexcept = default;
};

struct NewConnectionIdFrame {
    std::uint64_t sequence_number = 0;
    std::uint64_t retire_prior_to = 0;   // <= sequence_number
    std::uint8_t connection_id_length = 0;   // 1..20
    std::array<std::uint8_t, kMaxConnectionIdBytes> connection_id{};   // bytes past the length are 0
    std::array<std::uint8_t, kStatelessResetTokenBytes> stateless_reset_token{};

    Bytes id() const noexcept { return {connection_id.data(), connection_id_length}; }
    friend bool operator==(const NewConnectionIdFrame& a, const NewConnectionIdFrame& b) noexcept {
        return a.sequence_number == b.sequence_number && a.retire_prior_to == b.retire_prior_to &&
               same_bytes(a.id(), b.id()) && a.stateless_reset_token == b.stateless_reset_token;
    }
};

struct RetireConnectionIdFrame {
    std::uint64_t sequence_number = 0;
    friend bool operator==(const RetireConnectionIdFrame&, const RetireConnectionIdFrame&) noexcept = default;
};

struct PathChallengeFrame {
    std::array<std::uint8_t, kPathDataBytes> data{};
    friend bool operator==(const PathChallengeFrame&, const PathChallengeFrame&) noexcept = default;
};

struct PathResponseFrame {
    std::array<std::uint8_t, kPathDataBytes> data{};
    friend bool operator==(const PathResponseFrame&, const PathResponseFrame&) noexcept = default;
};

struct ConnectionCloseFrame {
    bool application = false;      // type 0x1d: an application error code, and no frame_type on the wire
    std::uint64_t error_code = 0;
    std::uint64_t frame_type = 0;  // the frame that triggered the error (0 if unknown); always 0 when application
    Bytes reason;                  // UTF-8 by the RFC; not checked here
    friend bool operator==(const ConnectionCloseFrame& a, const ConnectionCloseFrame& b) noexcept {
        return a.application == b.application && a.error_code == b.error_code && a.frame_type == b.frame_type &&
               same_bytes(a.reason, b.reason);
    }
};

struct HandshakeDoneFrame {
    friend bool operator==(const HandshakeDoneFrame&, const HandshakeDoneFrame&) noexcept = default;
};

struct DatagramFrame {
    Bytes data;
    bool has_length = true;   // type 0x31; without it (0x30) the data runs to the end of the packet
    friend bool operator==(const DatagramFrame& a, const DatagramFrame& b) noexcept {
        return a.has_length == b.has_length && same_bytes(a.data, b.data);
    }
};

// Which frame a Frame holds: its variant index.
enum class FrameKind : std::uint8_t {
    padding, ping, ack, reset_stream, stop_sending, crypto, new_token, stream, max_data, max_stream_data,
    max_streams, data_blocked, stream_data_blocked, streams_blocked, new_connection_id, retire_connection_id,
    path_challenge, path_response, connection_close, handshake_done, datagram,
};

// Any frame, in place (the largest alternative, AckFrame, is ~1.1 KiB: parse into one Frame and reuse it).
using Frame = std::variant<PaddingFrame, PingFrame, AckFrame, ResetStreamFrame, StopSendingFrame, CryptoFrame,
                           NewTokenFrame, StreamFrame, MaxDataFrame, MaxStreamDataFrame, MaxStreamsFrame,
                           DataBlockedFrame, StreamDataBlockedFrame, StreamsBlockedFrame, NewConnectionIdFrame,
                           RetireConnectionIdFrame, PathChallengeFrame, PathResponseFrame, ConnectionCloseFrame,
                           HandshakeDoneFrame, DatagramFrame>;

inline FrameKind kind_of(const Frame& frame) noexcept { return static_cast<FrameKind>(frame.index()); }
// "STREAM", "ACK", ... (for logs).
const char* frame_kind_name(FrameKind kind) noexcept;
// The type this frame is written with (STREAM with its OFF/LEN/FIN bits, ACK 0x02/0x03, ...).
std::uint64_t wire_type_of(const Frame& frame) noexcept;

// Section 12.4's table for a wire frame type (false for unknown types).
bool frame_allowed_in(std::uint64_t wire_type, FramePacketType packet) noexcept;
// Everything but ACK, PADDING and CONNECTION_CLOSE asks for an acknowledgement (section 13.2.1).
constexpr bool is_ack_eliciting(FrameKind kind) noexcept {
    return kind != FrameKind::padding && kind != FrameKind::ack && kind != FrameKind::connection_close;
}
// Frames a probing packet may hold (section 9.1): PADDING, NEW_CONNECTION_ID, PATH_CHALLENGE, PATH_RESPONSE.
constexpr bool is_probing(FrameKind kind) noexcept {
    return kind == FrameKind::padding || kind == FrameKind::new_connection_id ||
           kind == FrameKind::path_challenge || kind == FrameKind::path_response;
}
// NEW_TOKEN and HANDSHAKE_DONE: a server receiving one closes with PROTOCOL_VIOLATION (sections 19.7, 19.20).
constexpr bool frame_sent_only_by_server(FrameKind kind) noexcept {
    return kind == FrameKind::new_token || kind == FrameKind::handshake_done;
}

// Reads the frames of one decrypted packet payload, front to back:
//     FrameParser parser(payload, FramePacketType::one_rtt);
//     Frame frame;
//     while (parser.next(frame)) handle(frame);
//     if (parser.failed()) close_connection(parser.error(), parser.error_frame_type());
class FrameParser {
public:
    FrameParser(Bytes payload, FramePacketType packet) noexcept
        : reader_(payload.data(), payload.size()), packet_(packet) {}

    // true: `out` holds the next frame. false: the payload is done, cleanly or (failed()) on a bad frame; every
    // later call returns false too. `out` is unspecified after false.
    bool next(Frame& out) noexcept;

    bool failed() const noexcept { return failed_; }
    TransportError error() const noexcept { return error_; }      // no_error unless failed()
    // The type of the frame that failed, for CONNECTION_CLOSE's Frame Type field (0 if the type itself was bad).
    std::uint64_t error_frame_type() const noexcept { return error_frame_type_; }
    // Where the bad frame starts in the payload.
    std::size_t error_offset() const noexcept { return error_offset_; }
    // Payload bytes read so far: after a true next(), where the frame just returned ends.
    std::size_t offset() const noexcept { return reader_.offset(); }

    // About the frames read so far (the whole packet once next() returned false without failing):
    bool ack_eliciting() const noexcept { return ack_eliciting_; }
    // RFC 9002 section 2: ack-eliciting or carrying PADDING counts towards bytes in flight.
    bool in_flight() const noexcept { return ack_eliciting_ || padded_; }
    // Only probing frames (section 9.1): such a packet does not migrate the connection.
    bool probing_only() const noexcept { return probing_only_ && frames_ != 0; }
    std::size_t frames() const noexcept { return frames_; }

private:
    bool fail(TransportError error, std::uint64_t type, std::size_t start) noexcept;

    ByteReader reader_;
    FramePacketType packet_;
    bool done_ = false;
    bool failed_ = false;
    bool ack_eliciting_ = false;
    bool padded_ = false;
    bool probing_only_ = true;
    std::size_t frames_ = 0;
    TransportError error_ = TransportError::no_error;
    std::uint64_t error_frame_type_ = 0;
    std::size_t error_offset_ = 0;
};

// A whole payload checked at once, without acting on it (what FrameParser's accessors say at the end).
struct PayloadSummary {
    TransportError error = TransportError::no_error;
    std::uint64_t error_frame_type = 0;
    std::size_t frames = 0;
    bool ack_eliciting = false;
    bool in_flight = false;
    bool probing_only = false;
};
PayloadSummary scan_payload(Bytes payload, FramePacketType packet) noexcept;

// --- Encoding ---------------------------------------------------------------------------------------------------

// Bytes `frame` takes on the wire, or 0 if it is invalid (would not parse).
std::size_t frame_size(const Frame& frame) noexcept;
// Appends `frame`; false if it is invalid or does not fit (see the top comment).
bool encode_frame(ByteWriter& out, const Frame& frame) noexcept;

// An ACK frame from `ranges` (highest first, disjoint, not adjacent: each next.largest + 1 < previous.smallest),
// the raw ack delay and, when `ecn` is not null, ECN counts (type 0x03). false if the ranges are not so ordered,
// empty, or do not fit.
bool encode_ack(ByteWriter& out, std::span<const AckRange> ranges, std::uint64_t ack_delay,
                const EcnCounts* ecn) noexcept;
// Its size (0 if the ranges are invalid).
std::size_t ack_frame_size(std::span<const AckRange> ranges, std::uint64_t ack_delay, const EcnCounts* ecn) noexcept;
// How many of the highest `ranges` fit in `available` bytes as one ACK frame (0: not even the first one).
std::size_t ack_ranges_that_fit(std::span<const AckRange> ranges, std::uint64_t ack_delay, const EcnCounts* ecn,
                                std::size_t available) noexcept;

// The bytes of a STREAM frame before its data (type, stream ID, offset when not 0, length when `with_length`).
std::size_t stream_frame_overhead(std::uint64_t stream_id, std::uint64_t offset, std::size_t data_length,
                                  bool with_length) noexcept;
// The most data bytes a STREAM frame for (stream_id, offset) can carry in `available` bytes (0 if not even an
// empty frame fits; a FIN-only frame needs stream_frame_overhead(id, offset, 0, with_length) <= available). Also
// kept within offset + length <= 2^62 - 1.
std::size_t stream_data_that_fits(std::uint64_t stream_id, std::uint64_t offset, std::size_t available,
                                  bool with_length) noexcept;
// The same for CRYPTO (always with its length).
std::size_t crypto_frame_overhead(std::uint64_t offset, std::size_t data_length) noexcept;
std::size_t crypto_data_that_fits(std::uint64_t offset, std::size_t available) noexcept;
// A DATAGRAM frame's size.
constexpr std::size_t datagram_frame_size(std::size_t data_length, bool with_length) noexcept {
    return 1 + (with_length ? varint_size(data_length) : 0) + data_length;
}

bool encode(ByteWriter& out, const PaddingFrame& frame) noexcept;
bool encode(ByteWriter& out, const PingFrame& frame) noexcept;
bool encode(ByteWriter& out, const AckFrame& frame) noexcept;   // the kept ranges
bool encode(ByteWriter& out, const ResetStreamFrame& frame) noexcept;
bool encode(ByteWriter& out, const StopSendingFrame& frame) noexcept;
bool encode(ByteWriter& out, const CryptoFrame& frame) noexcept;
bool encode(ByteWriter& out, const NewTokenFrame& frame) noexcept;
bool encode(ByteWriter& out, const StreamFrame& frame) noexcept;
bool encode(ByteWriter& out, const MaxDataFrame& frame) noexcept;
bool encode(ByteWriter& out, const MaxStreamDataFrame& frame) noexcept;
bool encode(ByteWriter& out, const MaxStreamsFrame& frame) noexcept;
bool encode(ByteWriter& out, const DataBlockedFrame& frame) noexcept;
bool encode(ByteWriter& out, const StreamDataBlockedFrame& frame) noexcept;
bool encode(ByteWriter& out, const StreamsBlockedFrame& frame) noexcept;
bool encode(ByteWriter& out, const NewConnectionIdFrame& frame) noexcept;
bool encode(ByteWriter& out, const RetireConnectionIdFrame& frame) noexcept;
bool encode(ByteWriter& out, const PathChallengeFrame& frame) noexcept;
bool encode(ByteWriter& out, const PathResponseFrame& frame) noexcept;
bool encode(ByteWriter& out, const ConnectionCloseFrame& frame) noexcept;
bool encode(ByteWriter& out, const HandshakeDoneFrame& frame) noexcept;
bool encode(ByteWriter& out, const DatagramFrame& frame) noexcept;

}  // namespace cf::quic
