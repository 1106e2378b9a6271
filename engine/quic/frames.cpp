// Frame parser, names and the permitted-frames table (frames.hpp).
#include "engine/quic/frames.hpp"

#include <algorithm>
#include <cstring>
#include <type_traits>

namespace cf::quic {

bool same_bytes(Bytes a, Bytes b) noexcept {
    return a.size() == b.size() && (a.empty() || std::memcmp(a.data(), b.data(), a.size()) == 0);
}

bool operator==(const AckFrame& a, const AckFrame& b) noexcept {
    if (a.ack_delay != b.ack_delay || a.range_count != b.range_count || a.ranges_dropped != b.ranges_dropped ||
        a.has_ecn != b.has_ecn || (a.has_ecn && a.ecn != b.ecn) || a.range_count > kMaxAckRanges)
        return false;
    return std::equal(a.ranges.begin(), a.ranges.begin() + static_cast<std::ptrdiff_t>(a.range_count),
                      b.ranges.begin());
}

const char* frame_kind_name(FrameKind kind) noexcept {
    switch (kind) {
        case FrameKind::padding: return "PADDING";
        case FrameKind::ping: return "PING";
        case FrameKind::ack: return "ACK";
        case FrameKind::reset_stream: return "RESET_STREAM";
        case FrameKind::stop_sending: return "STOP_SENDING";
        case FrameKind::crypto: return "CRYPTO";
        case FrameKind::new_token: return "NEW_TOKEN";
        case FrameKind::stream: return "STREAM";
        case FrameKind::max_data: return "MAX_DATA";
        case FrameKind::max_stream_data: return "MAX_STREAM_DATA";
        case FrameKind::max_streams: return "MAX_STREAMS";
        case FrameKind::data_blocked: return "DATA_BLOCKED";
        case FrameKind::stream_data_blocked: return "STREAM_DATA_BLOCKED";
        case FrameKind::streams_blocked: return "STREAMS_BLOCKED";
        case FrameKind::new_connection_id: return "NEW_CONNECTION_ID";
        case FrameKind::retire_connection_id: return "RETIRE_CONNECTION_ID";
        case FrameKind::path_challenge: return "PATH_CHALLENGE";
        case FrameKind::path_response: return "PATH_RESPONSE";
        case FrameKind::connection_close: return "CONNECTION_CLOSE";
        case FrameKind::handshake_done: return "HANDSHAKE_DONE";
        case FrameKind::datagram: return "DATAGRAM";
    }
    return "unknown";
}

bool frame_allowed_in(std::uint64_t wire_type, FramePacketType packet) noexcept {
    namespace t = frame_type;
    const bool application = packet == FramePacketType::zero_rtt || packet == FramePacketType::one_rtt;
    switch (wire_type) {
        case t::padding:
        case t::ping:
        case t::connection_close: return true;
        case t::ack:
        case t::ack_ecn:
        case t::crypto: return packet != FramePacketType::zero_rtt;
        case t::new_token:
        case t::path_response:
        case t::handshake_done: return packet == FramePacketType::one_rtt;
        case t::reset_stream:
        case t::stop_sending:
        case t::max_data:
        case t::max_stream_data:
        case t::max_streams_bidi:
        case t::max_streams_uni:
        case t::data_blocked:
        case t::stream_data_blocked:
        case t::streams_blocked_bidi:
        case t::streams_blocked_uni:
        case t::new_connection_id:
        case t::retire_connection_id:
        case t::path_challenge:
        case t::connection_close_app:
        case t::datagram:
        case t::datagram_len: return application;
        default: return wire_type >= t::stream && wire_type <= (t::stream | 0x07) && application;
    }
}

// --- Parsing ----------------------------------------------------------------------------------------------------

namespace {

bool known_type(std::uint64_t type) noexcept {
    return type <= frame_type::handshake_done || type == frame_type::datagram || type == frame_type::datagram_len;
}

// `length` bytes announced by the frame, in place; false if they run past the payload.
bool read_span(ByteReader& in, std::uint64_t length, Bytes& out) noexcept {
    if (in.failed() || length > in.remaining()) return false;
    const std::uint8_t* at = in.bytes(static_cast<std::size_t>(length));
    out = Bytes(at, static_cast<std::size_t>(length));
    return at != nullptr;
}

// A length-prefixed span.
bool read_prefixed(ByteReader& in, Bytes& out) noexcept { return read_span(in, in.varint(), out); }

}  // namespace

bool FrameParser::fail(TransportError error, std::uint64_t type, std::size_t start) noexcept {
    done_ = true;
    failed_ = true;
    error_ = error;
    error_frame_type_ = type;
    error_offset_ = start;
    return false;
}

bool FrameParser::next(Frame& out) noexcept {
    using TE = TransportError;
    namespace t = frame_type;
    if (done_) return false;
    ByteReader& in = reader_;
    const std::size_t start = in.offset();
    if (in.empty()) {
        done_ = true;
        return frames_ == 0 ? fail(TE::protocol_violation, 0, 0) : false;
    }
    const std::size_t type_bytes = varint_size_from_first_byte(*in.current());
    const std::uint64_t type = in.varint();
    if (in.failed()) return fail(TE::frame_encoding_error, 0, start);
    if (type_bytes != varint_size(type)) return fail(TE::protocol_violation, type, start);
    if (!known_type(type)) return fail(TE::frame_encoding_error, type, start);
    if (!frame_allowed_in(type, packet_)) return fail(TE::protocol_violation, type, start);

    // Each case reads its fields and leaves `bad` set on an impossible value; truncation shows in in.failed().
    bool bad = false;
    if (type >= t::stream && type <= (t::stream | 0x07)) {
        StreamFrame& frame = out.emplace<StreamFrame>();
        frame.stream_id = in.varint();
        frame.offset = (type & kStreamBitOff) != 0 ? in.varint() : 0;
        frame.fin = (type & kStreamBitFin) != 0;
        frame.has_length = (type & kStreamBitLen) != 0;
        bad = !read_span(in, frame.has_length ? in.varint() : in.remaining(), frame.data) ||
              frame.data.size() > kMaxVarint - frame.offset;
    } else {
        switch (type) {
            case t::padding: {
                // Coalesce the run: the type byte was one 0x00, count the ones after it.
                const std::uint8_t* at = in.current();
                std::size_t length = 0;
                while (length < in.remaining() && at[length] == 0) ++length;
                in.skip(length);
                out.emplace<PaddingFrame>().length = length + 1;
                break;
            }
            case t::ping: out.emplace<PingFrame>(); break;
            case t::ack:
            case t::ack_ecn: {
                AckFrame& frame = out.emplace<AckFrame>();
                const std::uint64_t largest = in.varint();
                frame.ack_delay = in.varint();
                const std::uint64_t count = in.varint();
                const std::uint64_t first = in.varint();
                // Every further range takes at least two bytes: a count beyond that is a lie, not a long loop.
                if (in.failed() || first > largest || count > in.remaining() / 2) {
                    bad = true;
                    break;
                }
                std::uint64_t smallest = largest - first;
                frame.ranges[0] = {smallest, largest};
                frame.range_count = 1;
                for (std::uint64_t i = 0; i < count && !bad; ++i) {
                    const std::uint64_t gap = in.varint();
                    const std::uint64_t length = in.varint();
                    // The next range's largest is smallest - gap - 2, and its smallest that minus length.
                    if (in.failed() || gap + 2 > smallest || length > smallest - gap - 2) {
                        bad = true;
                        break;
                    }
                    const std::uint64_t range_largest = smallest - gap - 2;
                    smallest = range_largest - length;
                    if (frame.range_count < kMaxAckRanges)
                        frame.ranges[frame.range_count++] = {smallest, range_largest};
                    else
                        ++frame.ranges_dropped;
                }
                if (type == t::ack_ecn) {
                    frame.has_ecn = true;
                    frame.ecn.ect0 = in.varint();
                    frame.ecn.ect1 = in.varint();
                    frame.ecn.ce = in.varint();
                }
                break;
            }
            case t::reset_stream: {
                ResetStreamFrame& frame = out.emplace<ResetStreamFrame>();
                frame.stream_id = in.varint();
                frame.application_error_code = in.varint();
                frame.final_size = in.varint();
                break;
            }
            case t::stop_sending: {
                StopSendingFrame& frame = out.emplace<StopSendingFrame>();
                frame.stream_id = in.varint();
                frame.application_error_code = in.varint();
                break;
            }
            case t::crypto: {
                CryptoFrame& frame = out.emplace<CryptoFrame>();
                frame.offset = in.varint();
                bad = !read_prefixed(in, frame.data) || frame.data.size() > kMaxVarint - frame.offset;
                break;
            }
            case t::new_token: {
                NewTokenFrame& frame = out.emplace<NewTokenFrame>();
                bad = !read_prefixed(in, frame.token) || frame.token.empty();
                break;
            }
            case t::max_data: out.emplace<MaxDataFrame>().maximum_data = in.varint(); break;
            case t::max_stream_data: {
                MaxStreamDataFrame& frame = out.emplace<MaxStreamDataFrame>();
                frame.stream_id = in.varint();
                frame.maximum_stream_data = in.varint();
                break;
            }
            case t::max_streams_bidi:
            case t::max_streams_uni: {
                MaxStreamsFrame& frame = out.emplace<MaxStreamsFrame>();
                frame.bidirectional = type == t::max_streams_bidi;
                frame.maximum_streams = in.varint();
                bad = frame.maximum_streams > kMaxStreamsLimit;
                break;
            }
            case t::data_blocked: out.emplace<DataBlockedFrame>().maximum_data = in.varint(); break;
            case t::stream_data_blocked: {
                StreamDataBlockedFrame& frame = out.emplace<StreamDataBlockedFrame>();
                frame.stream_id = in.varint();
                frame.maximum_stream_data = in.varint();
                break;
            }
            case t::streams_blocked_bidi:
            case t::streams_blocked_uni: {
                StreamsBlockedFrame& frame = out.emplace<StreamsBlockedFrame>();
                frame.bidirectional = type == t::streams_blocked_bidi;
                frame.maximum_streams = in.varint();
                bad = frame.maximum_streams > kMaxStreamsLimit;
                break;
            }
            case t::new_connection_id: {
                NewConnectionIdFrame& frame = out.emplace<NewConnectionIdFrame>();
                frame.sequence_number = in.varint();
                frame.retire_prior_to = in.varint();
                const std::uint8_t length = in.u8();
                if (in.failed() || length == 0 || length > kMaxConnectionIdBytes ||
                    frame.retire_prior_to > frame.sequence_number) {
                    bad = true;
                    break;
                }
                const std::uint8_t* id = in.bytes(length);
                const std::uint8_t* token = in.bytes(kStatelessResetTokenBytes);
                if (token == nullptr) break;   // truncated
                frame.connection_id_length = length;
                std::memcpy(frame.connection_id.data(), id, length);
                std::memcpy(frame.stateless_reset_token.data(), token, kStatelessResetTokenBytes);
                break;
            }
            case t::retire_connection_id:
                out.emplace<RetireConnectionIdFrame>().sequence_number = in.varint();
                break;
            case t::path_challenge:
            case t::path_response: {
                const std::uint8_t* data = in.bytes(kPathDataBytes);
                if (data == nullptr) break;
                auto& bytes = type == t::path_challenge ? out.emplace<PathChallengeFrame>().data
                                                        : out.emplace<PathResponseFrame>().data;
                std::memcpy(bytes.data(), data, kPathDataBytes);
                break;
            }
            case t::connection_close:
            case t::connection_close_app: {
                ConnectionCloseFrame& frame = out.emplace<ConnectionCloseFrame>();
                frame.application = type == t::connection_close_app;
                frame.error_code = in.varint();
                frame.frame_type = frame.application ? 0 : in.varint();
                bad = !read_prefixed(in, frame.reason);
                break;
            }
            case t::handshake_done: out.emplace<HandshakeDoneFrame>(); break;
            case t::datagram:
            case t::datagram_len: {
                DatagramFrame& frame = out.emplace<DatagramFrame>();
                frame.has_length = type == t::datagram_len;
                bad = !read_span(in, frame.has_length ? in.varint() : in.remaining(), frame.data);
                break;
            }
            default: return fail(TE::frame_encoding_error, type, start);   // known_type() let through no other
        }
    }
    if (bad || in.failed()) return fail(TE::frame_encoding_error, type, start);

    const FrameKind kind = kind_of(out);
    ++frames_;
    ack_eliciting_ = ack_eliciting_ || is_ack_eliciting(kind);
    padded_ = padded_ || kind == FrameKind::padding;
    probing_only_ = probing_only_ && is_probing(kind);
    return true;
}

PayloadSummary scan_payload(Bytes payload, FramePacketType packet) noexcept {
    FrameParser parser(payload, packet);
    Frame frame;
    while (parser.next(frame)) {
    }
    PayloadSummary summary;
    summary.error = parser.error();
    summary.error_frame_type = parser.error_frame_type();
    summary.frames = parser.frames();
    summary.ack_eliciting = parser.ack_eliciting();
    summary.in_flight = parser.in_flight();
    summary.probing_only = parser.probing_only();
    return summary;
}

}  // namespace cf::quic
