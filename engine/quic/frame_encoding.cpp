// Frame encoders and sizes (frames.hpp).
#include "engine/quic/frames.hpp"

#include <algorithm>
#include <initializer_list>
#include <variant>

namespace cf::quic {

// --- Encoding ---------------------------------------------------------------------------------------------------
// Each frame is described once, by write(sink, frame) over a sink that is either a ByteWriter or SizeCounter, so
// its size and its bytes cannot disagree; valid(frame) refuses what the parser would refuse.

namespace {

struct SizeCounter {
    std::size_t size = 0;
    void u8(std::uint8_t) noexcept { size += 1; }
    void varint(std::uint64_t value) noexcept { size += varint_size(value); }
    void bytes(const void*, std::size_t length) noexcept { size += length; }
    void zeros(std::size_t length) noexcept { size += length; }
};

constexpr bool varints_ok(std::initializer_list<std::uint64_t> values) noexcept {
    for (const std::uint64_t value : values)
        if (value > kMaxVarint) return false;
    return true;
}

constexpr std::uint8_t type_byte(std::uint64_t type) noexcept { return static_cast<std::uint8_t>(type); }

bool valid_ack(std::span<const AckRange> ranges, std::uint64_t ack_delay, const EcnCounts* ecn) noexcept {
    if (ranges.empty() || ack_delay > kMaxVarint || ranges[0].largest > kMaxVarint) return false;
    if (ecn != nullptr && !varints_ok({ecn->ect0, ecn->ect1, ecn->ce})) return false;
    for (std::size_t i = 0; i < ranges.size(); ++i) {
        if (ranges[i].smallest > ranges[i].largest) return false;
        // At least one packet number between two ranges: the wire's gap is (previous smallest - largest - 2).
        if (i > 0 && (ranges[i].largest >= ranges[i - 1].smallest || ranges[i - 1].smallest - ranges[i].largest < 2))
            return false;
    }
    return true;
}

template <class Sink>
void write_ack(Sink& out, std::span<const AckRange> ranges, std::uint64_t ack_delay, const EcnCounts* ecn) noexcept {
    out.u8(type_byte(ecn != nullptr ? frame_type::ack_ecn : frame_type::ack));
    out.varint(ranges[0].largest);
    out.varint(ack_delay);
    out.varint(ranges.size() - 1);
    out.varint(ranges[0].largest - ranges[0].smallest);
    for (std::size_t i = 1; i < ranges.size(); ++i) {
        out.varint(ranges[i - 1].smallest - ranges[i].largest - 2);
        out.varint(ranges[i].largest - ranges[i].smallest);
    }
    if (ecn != nullptr) {
        out.varint(ecn->ect0);
        out.varint(ecn->ect1);
        out.varint(ecn->ce);
    }
}

bool valid(const PaddingFrame& frame) noexcept { return frame.length >= 1; }
template <class Sink> void write(Sink& out, const PaddingFrame& frame) noexcept { out.zeros(frame.length); }

bool valid(const PingFrame&) noexcept { return true; }
template <class Sink> void write(Sink& out, const PingFrame&) noexcept { out.u8(type_byte(frame_type::ping)); }

bool valid(const AckFrame& frame) noexcept {
    return frame.range_count >= 1 && frame.range_count <= kMaxAckRanges &&
           valid_ack(frame.kept_ranges(), frame.ack_delay, frame.has_ecn ? &frame.ecn : nullptr);
}
template <class Sink> void write(Sink& out, const AckFrame& frame) noexcept {
    write_ack(out, frame.kept_ranges(), frame.ack_delay, frame.has_ecn ? &frame.ecn : nullptr);
}

bool valid(const ResetStreamFrame& frame) noexcept {
    return varints_ok({frame.stream_id, frame.application_error_code, frame.final_size});
}
template <class Sink> void write(Sink& out, const ResetStreamFrame& frame) noexcept {
    out.u8(type_byte(frame_type::reset_stream));
    out.varint(frame.stream_id);
    out.varint(frame.application_error_code);
    out.varint(frame.final_size);
}

bool valid(const StopSendingFrame& frame) noexcept {
    return varints_ok({frame.stream_id, frame.application_error_code});
}
template <class Sink> void write(Sink& out, const StopSendingFrame& frame) noexcept {
    out.u8(type_byte(frame_type::stop_sending));
    out.varint(frame.stream_id);
    out.varint(frame.application_error_code);
}

bool valid(const CryptoFrame& frame) noexcept {
    return frame.offset <= kMaxVarint && frame.data.size() <= kMaxVarint - frame.offset;
}
template <class Sink> void write(Sink& out, const CryptoFrame& frame) noexcept {
    out.u8(type_byte(frame_type::crypto));
    out.varint(frame.offset);
    out.varint(frame.data.size());
    out.bytes(frame.data.data(), frame.data.size());
}

bool valid(const NewTokenFrame& frame) noexcept { return !frame.token.empty(); }
template <class Sink> void write(Sink& out, const NewTokenFrame& frame) noexcept {
    out.u8(type_byte(frame_type::new_token));
    out.varint(frame.token.size());
    out.bytes(frame.token.data(), frame.token.size());
}

bool valid(const StreamFrame& frame) noexcept {
    return varints_ok({frame.stream_id, frame.offset}) && frame.data.size() <= kMaxVarint - frame.offset;
}
std::uint64_t stream_type(const StreamFrame& frame) noexcept {
    return frame_type::stream | (frame.offset != 0 ? kStreamBitOff : 0) | (frame.has_length ? kStreamBitLen : 0) |
           (frame.fin ? kStreamBitFin : 0);
}
template <class Sink> void write(Sink& out, const StreamFrame& frame) noexcept {
    out.u8(type_byte(stream_type(frame)));
    out.varint(frame.stream_id);
    if (frame.offset != 0) out.varint(frame.offset);
    if (frame.has_length) out.varint(frame.data.size());
    out.bytes(frame.data.data(), frame.data.size());
}

bool valid(const MaxDataFrame& frame) noexcept { return varints_ok({frame.maximum_data}); }
template <class Sink> void write(Sink& out, const MaxDataFrame& frame) noexcept {
    out.u8(type_byte(frame_type::max_data));
    out.varint(frame.maximum_data);
}

bool valid(const MaxStreamDataFrame& frame) noexcept {
    return varints_ok({frame.stream_id, frame.maximum_stream_data});
}
template <class Sink> void write(Sink& out, const MaxStreamDataFrame& frame) noexcept {
    out.u8(type_byte(frame_type::max_stream_data));
    out.varint(frame.stream_id);
    out.varint(frame.maximum_stream_data);
}

bool valid(const MaxStreamsFrame& frame) noexcept { return frame.maximum_streams <= kMaxStreamsLimit; }
template <class Sink> void write(Sink& out, const MaxStreamsFrame& frame) noexcept {
    out.u8(type_byte(frame.bidirectional ? frame_type::max_streams_bidi : frame_type::max_streams_uni));
    out.varint(frame.maximum_streams);
}

bool valid(const DataBlockedFrame& frame) noexcept { return varints_ok({frame.maximum_data}); }
template <class Sink> void write(Sink& out, const DataBlockedFrame& frame) noexcept {
    out.u8(type_byte(frame_type::data_blocked));
    out.varint(frame.maximum_data);
}

bool valid(const StreamDataBlockedFrame& frame) noexcept {
    return varints_ok({frame.stream_id, frame.maximum_stream_data});
}
template <class Sink> void write(Sink& out, const StreamDataBlockedFrame& frame) noexcept {
    out.u8(type_byte(frame_type::stream_data_blocked));
    out.varint(frame.stream_id);
    out.varint(frame.maximum_stream_data);
}

bool valid(const StreamsBlockedFrame& frame) noexcept { return frame.maximum_streams <= kMaxStreamsLimit; }
template <class Sink> void write(Sink& out, const StreamsBlockedFrame& frame) noexcept {
    out.u8(type_byte(frame.bidirectional ? frame_type::streams_blocked_bidi : frame_type::streams_blocked_uni));
    out.varint(frame.maximum_streams);
}

bool valid(const NewConnectionIdFrame& frame) noexcept {
    return frame.sequence_number <= kMaxVarint && frame.retire_prior_to <= frame.sequence_number &&
           frame.connection_id_length >= 1 && frame.connection_id_length <= kMaxConnectionIdBytes;
}
template <class Sink> void write(Sink& out, const NewConnectionIdFrame& frame) noexcept {
    out.u8(type_byte(frame_type::new_connection_id));
    out.varint(frame.sequence_number);
    out.varint(frame.retire_prior_to);
    out.u8(frame.connection_id_length);
    out.bytes(frame.connection_id.data(), frame.connection_id_length);
    out.bytes(frame.stateless_reset_token.data(), frame.stateless_reset_token.size());
}

bool valid(const RetireConnectionIdFrame& frame) noexcept { return varints_ok({frame.sequence_number}); }
template <class Sink> void write(Sink& out, const RetireConnectionIdFrame& frame) noexcept {
    out.u8(type_byte(frame_type::retire_connection_id));
    out.varint(frame.sequence_number);
}

bool valid(const PathChallengeFrame&) noexcept { return true; }
template <class Sink> void write(Sink& out, const PathChallengeFrame& frame) noexcept {
    out.u8(type_byte(frame_type::path_challenge));
    out.bytes(frame.data.data(), frame.data.size());
}

bool valid(const PathResponseFrame&) noexcept { return true; }
template <class Sink> void write(Sink& out, const PathResponseFrame& frame) noexcept {
    out.u8(type_byte(frame_type::path_response));
    out.bytes(frame.data.data(), frame.data.size());
}

// An application close has no Frame Type field: a non-zero one would not come back, so it is refused.
bool valid(const ConnectionCloseFrame& frame) noexcept {
    return varints_ok({frame.error_code, frame.frame_type}) && (!frame.application || frame.frame_type == 0);
}
template <class Sink> void write(Sink& out, const ConnectionCloseFrame& frame) noexcept {
    out.u8(type_byte(frame.application ? frame_type::connection_close_app : frame_type::connection_close));
    out.varint(frame.error_code);
    if (!frame.application) out.varint(frame.frame_type);
    out.varint(frame.reason.size());
    out.bytes(frame.reason.data(), frame.reason.size());
}

bool valid(const HandshakeDoneFrame&) noexcept { return true; }
template <class Sink> void write(Sink& out, const HandshakeDoneFrame&) noexcept {
    out.u8(type_byte(frame_type::handshake_done));
}

bool valid(const DatagramFrame&) noexcept { return true; }
template <class Sink> void write(Sink& out, const DatagramFrame& frame) noexcept {
    out.u8(type_byte(frame.has_length ? frame_type::datagram_len : frame_type::datagram));
    if (frame.has_length) out.varint(frame.data.size());
    out.bytes(frame.data.data(), frame.data.size());
}

template <class F> std::size_t size_of(const F& frame) noexcept {
    if (!valid(frame)) return 0;
    SizeCounter counter;
    write(counter, frame);
    return counter.size;
}

template <class F> bool encode_one(ByteWriter& out, const F& frame) noexcept {
    const std::size_t size = size_of(frame);
    if (size == 0) return false;
    if (size > out.remaining()) {
        out.zeros(size);   // does not fit: this only marks the writer failed, as any write that does not fit
        return false;
    }
    write(out, frame);
    return !out.failed();
}

// The largest data length whose Length field and data fit in `room` bytes.
std::size_t data_with_length_that_fits(std::size_t room) noexcept {
    std::size_t best = 0;
    for (const std::size_t field : {1u, 2u, 4u, 8u}) {
        if (room < field) break;
        const std::uint64_t most = field == 8 ? kMaxVarint : (std::uint64_t{1} << (8 * field - 2)) - 1;
        best = std::max(best, static_cast<std::size_t>(std::min<std::uint64_t>(room - field, most)));
    }
    return best;
}

}  // namespace

bool encode(ByteWriter& out, const PaddingFrame& frame) noexcept { return encode_one(out, frame); }
bool encode(ByteWriter& out, const PingFrame& frame) noexcept { return encode_one(out, frame); }
bool encode(ByteWriter& out, const AckFrame& frame) noexcept { return encode_one(out, frame); }
bool encode(ByteWriter& out, const ResetStreamFrame& frame) noexcept { return encode_one(out, frame); }
bool encode(ByteWriter& out, const StopSendingFrame& frame) noexcept { return encode_one(out, frame); }
bool encode(ByteWriter& out, const CryptoFrame& frame) noexcept { return encode_one(out, frame); }
bool encode(ByteWriter& out, const NewTokenFrame& frame) noexcept { return encode_one(out, frame); }
bool encode(ByteWriter& out, const StreamFrame& frame) noexcept { return encode_one(out, frame); }
bool encode(ByteWriter& out, const MaxDataFrame& frame) noexcept { return encode_one(out, frame); }
bool encode(ByteWriter& out, const MaxStreamDataFrame& frame) noexcept { return encode_one(out, frame); }
bool encode(ByteWriter& out, const MaxStreamsFrame& frame) noexcept { return encode_one(out, frame); }
bool encode(ByteWriter& out, const DataBlockedFrame& frame) noexcept { return encode_one(out, frame); }
bool encode(ByteWriter& out, const StreamDataBlockedFrame& frame) noexcept { return encode_one(out, frame); }
bool encode(ByteWriter& out, const StreamsBlockedFrame& frame) noexcept { return encode_one(out, frame); }
bool encode(ByteWriter& out, const NewConnectionIdFrame& frame) noexcept { return encode_one(out, frame); }
bool encode(ByteWriter& out, const RetireConnectionIdFrame& frame) noexcept { return encode_one(out, frame); }
bool encode(ByteWriter& out, const PathChallengeFrame& frame) noexcept { return encode_one(out, frame); }
bool encode(ByteWriter& out, const PathResponseFrame& frame) noexcept { return encode_one(out, frame); }
bool encode(ByteWriter& out, const ConnectionCloseFrame& frame) noexcept { return encode_one(out, frame); }
bool encode(ByteWriter& out, const HandshakeDoneFrame& frame) noexcept { return encode_one(out, frame); }
bool encode(ByteWriter& out, const DatagramFrame& frame) noexcept { return encode_one(out, frame); }

std::size_t frame_size(const Frame& frame) noexcept {
    return std::visit([](const auto& alternative) noexcept { return size_of(alternative); }, frame);
}

bool encode_frame(ByteWriter& out, const Frame& frame) noexcept {
    return std::visit([&out](const auto& alternative) noexcept { return encode_one(out, alternative); }, frame);
}

std::uint64_t wire_type_of(const Frame& frame) noexcept {
    namespace t = frame_type;
    switch (kind_of(frame)) {
        case FrameKind::padding: return t::padding;
        case FrameKind::ping: return t::ping;
        case FrameKind::ack: return std::get<AckFrame>(frame).has_ecn ? t::ack_ecn : t::ack;
        case FrameKind::reset_stream: return t::reset_stream;
        case FrameKind::stop_sending: return t::stop_sending;
        case FrameKind::crypto: return t::crypto;
        case FrameKind::new_token: return t::new_token;
        case FrameKind::stream: return stream_type(std::get<StreamFrame>(frame));
        case FrameKind::max_data: return t::max_data;
        case FrameKind::max_stream_data: return t::max_stream_data;
        case FrameKind::max_streams:
            return std::get<MaxStreamsFrame>(frame).bidirectional ? t::max_streams_bidi : t::max_streams_uni;
        case FrameKind::data_blocked: return t::data_blocked;
        case FrameKind::stream_data_blocked: return t::stream_data_blocked;
        case FrameKind::streams_blocked:
            return std::get<StreamsBlockedFrame>(frame).bidirectional ? t::streams_blocked_bidi
                                                                      : t::streams_blocked_uni;
        case FrameKind::new_connection_id: return t::new_connection_id;
        case FrameKind::retire_connection_id: return t::retire_connection_id;
        case FrameKind::path_challenge: return t::path_challenge;
        case FrameKind::path_response: return t::path_response;
        case FrameKind::connection_close:
            return std::get<ConnectionCloseFrame>(frame).application ? t::connection_close_app : t::connection_close;
        case FrameKind::handshake_done: return t::handshake_done;
        case FrameKind::datagram: return std::get<DatagramFrame>(frame).has_length ? t::datagram_len : t::datagram;
    }
    return t::padding;
}

bool encode_ack(ByteWriter& out, std::span<const AckRange> ranges, std::uint64_t ack_delay,
                const EcnCounts* ecn) noexcept {
    const std::size_t size = ack_frame_size(ranges, ack_delay, ecn);
    if (size == 0) return false;
    if (size > out.remaining()) {
        out.zeros(size);
        return false;
    }
    write_ack(out, ranges, ack_delay, ecn);
    return !out.failed();
}

std::size_t ack_frame_size(std::span<const AckRange> ranges, std::uint64_t ack_delay, const EcnCounts* ecn) noexcept {
    if (!valid_ack(ranges, ack_delay, ecn)) return 0;
    SizeCounter counter;
    write_ack(counter, ranges, ack_delay, ecn);
    return counter.size;
}

std::size_t ack_ranges_that_fit(std::span<const AckRange> ranges, std::uint64_t ack_delay, const EcnCounts* ecn,
                                std::size_t available) noexcept {
    if (ranges.empty() || !valid_ack(ranges.first(1), ack_delay, ecn)) return 0;
    // Everything but the Range Count and the further ranges: type, largest, delay, first range, ECN counts.
    std::size_t fixed = 1 + varint_size(ranges[0].largest) + varint_size(ack_delay) +
                        varint_size(ranges[0].largest - ranges[0].smallest);
    if (ecn != nullptr) fixed += varint_size(ecn->ect0) + varint_size(ecn->ect1) + varint_size(ecn->ce);
    std::size_t further = 0;
    std::size_t fitting = 0;
    for (std::size_t count = 1; count <= ranges.size(); ++count) {
        if (count > 1) {
            if (!valid_ack(ranges.subspan(count - 2, 2), 0, nullptr)) break;
            const AckRange& previous = ranges[count - 2];
            const AckRange& range = ranges[count - 1];
            further += varint_size(previous.smallest - range.largest - 2) + varint_size(range.largest - range.smallest);
        }
        if (fixed + varint_size(count - 1) + further > available) break;
        fitting = count;
    }
    return fitting;
}

std::size_t stream_frame_overhead(std::uint64_t stream_id, std::uint64_t offset, std::size_t data_length,
                                  bool with_length) noexcept {
    return 1 + varint_size(stream_id) + (offset != 0 ? varint_size(offset) : 0) +
           (with_length ? varint_size(data_length) : 0);
}

std::size_t stream_data_that_fits(std::uint64_t stream_id, std::uint64_t offset, std::size_t available,
                                  bool with_length) noexcept {
    if (!varints_ok({stream_id, offset})) return 0;
    const std::size_t header = stream_frame_overhead(stream_id, offset, 0, false);
    if (available < header) return 0;
    const std::size_t room = available - header;
    const std::size_t fits = with_length ? data_with_length_that_fits(room) : room;
    return static_cast<std::size_t>(std::min<std::uint64_t>(fits, kMaxVarint - offset));
}

std::size_t crypto_frame_overhead(std::uint64_t offset, std::size_t data_length) noexcept {
    return 1 + varint_size(offset) + varint_size(data_length);
}

std::size_t crypto_data_that_fits(std::uint64_t offset, std::size_t available) noexcept {
    if (offset > kMaxVarint) return 0;
    const std::size_t header = 1 + varint_size(offset);
    if (available < header) return 0;
    return static_cast<std::size_t>(
        std::min<std::uint64_t>(data_with_length_that_fits(available - header), kMaxVarint - offset));
}

}  // namespace cf::quic
