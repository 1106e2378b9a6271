// libFuzzer target for the QUIC frame parser (engine/quic/frames.hpp). Built and run by run_fuzz.sh with clang++.
//
// The input's first byte picks the packet type (Initial, 0-RTT, Handshake, 1-RTT: byte % 4); the rest is one
// decrypted packet payload. Oracles, any failure abort()s:
//   - every frame the parser accepts is allowed in that packet type, its spans lie inside the payload, and it
//     re-encodes (frame_size() bytes, no more than it took in the input, which may use longer varints) and parses
//     back, alone, to the same frame (an ACK's ranges beyond kMaxAckRanges are not re-encoded: the copy has
//     ranges_dropped 0);
//   - a payload accepted whole re-encodes frame after frame and parses back to the same frames, with the same
//     packet-level facts (ack-eliciting, in flight, probing only);
//   - a rejection carries FRAME_ENCODING_ERROR or PROTOCOL_VIOLATION, and scan_payload() says the same;
// and no crash, AddressSanitizer or UndefinedBehaviorSanitizer report (libFuzzer's input buffer has exactly
// `size` bytes, so ASan sees any read past the payload).
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <vector>

#include "engine/quic/frames.hpp"

using namespace cf::quic;

namespace {

[[noreturn]] void fail(const char* what, unsigned long long a = 0, unsigned long long b = 0) {
    std::fprintf(stderr, "quic_frames_fuzz: %s (%llu, %llu)\n", what, a, b);
    std::abort();
}

bool inside(Bytes span, Bytes payload) {
    if (span.empty()) return true;
    return span.data() >= payload.data() && span.data() + span.size() <= payload.data() + payload.size();
}

void check_spans(const Frame& frame, Bytes payload) {
    bool ok = true;
    if (const auto* f = std::get_if<StreamFrame>(&frame)) ok = inside(f->data, payload);
    if (const auto* f = std::get_if<CryptoFrame>(&frame)) ok = inside(f->data, payload);
    if (const auto* f = std::get_if<NewTokenFrame>(&frame)) ok = inside(f->token, payload);
    if (const auto* f = std::get_if<ConnectionCloseFrame>(&frame)) ok = inside(f->reason, payload);
    if (const auto* f = std::get_if<DatagramFrame>(&frame)) ok = inside(f->data, payload);
    if (!ok) fail("a span points outside the payload", static_cast<unsigned>(kind_of(frame)));
}

// What a re-encoded frame parses back to: the same, except an ACK forgets the ranges it could not keep.
Frame expected_copy(const Frame& frame) {
    Frame copy = frame;
    if (auto* ack = std::get_if<AckFrame>(&copy)) ack->ranges_dropped = 0;
    return copy;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* input, std::size_t size) {
    if (size == 0) return 0;
    const auto packet = static_cast<FramePacketType>(input[0] % 4);
    const Bytes payload(input + 1, size - 1);

    static std::vector<Frame> frames;
    frames.clear();
    FrameParser parser(payload, packet);
    Frame frame;
    std::size_t start = 0;
    while (parser.next(frame)) {
        const std::size_t taken = parser.offset() - start;
        start = parser.offset();
        if (!frame_allowed_in(wire_type_of(frame), packet)) fail("a frame not allowed in the packet type");
        check_spans(frame, payload);
        const std::size_t bytes = frame_size(frame);
        if (bytes == 0 || bytes > taken) fail("frame_size of an accepted frame", bytes, taken);
        // Re-encode alone and parse back.
        static std::uint8_t buffer[1 << 17];
        ByteWriter writer(buffer, sizeof buffer);
        if (!encode_frame(writer, frame) || writer.size() != bytes) fail("re-encoding", writer.size(), bytes);
        FrameParser again(Bytes(buffer, writer.size()), packet);
        Frame back;
        if (!again.next(back)) fail("a re-encoded frame is rejected", code_of(again.error()));
        if (!(back == expected_copy(frame)))
            fail("a re-encoded frame parses to another", static_cast<unsigned>(kind_of(frame)),
                 static_cast<unsigned>(kind_of(back)));
        if (again.next(back) || again.failed()) fail("a re-encoded frame is followed by more");
        frames.push_back(frame);
    }

    const PayloadSummary summary = scan_payload(payload, packet);
    if (summary.error != parser.error() || summary.frames != parser.frames())
        fail("scan_payload disagrees with the parser", code_of(summary.error), code_of(parser.error()));
    if (parser.failed()) {
        if (parser.error() != TransportError::frame_encoding_error &&
            parser.error() != TransportError::protocol_violation)
            fail("an unexpected error code", code_of(parser.error()));
        if (parser.error_offset() > payload.size()) fail("error offset past the payload", parser.error_offset());
        return 0;
    }
    if (frames.empty()) fail("an accepted payload without frames");

    // The whole payload, re-encoded: the same frames and the same packet-level facts.
    static std::uint8_t whole[1 << 17];
    ByteWriter writer(whole, sizeof whole);
    for (const Frame& each : frames)
        if (!encode_frame(writer, each)) fail("re-encoding the payload");
    FrameParser again(Bytes(whole, writer.size()), packet);
    std::size_t index = 0;
    while (again.next(frame)) {
        if (index >= frames.size() || !(frame == expected_copy(frames[index]))) fail("payload round trip", index);
        ++index;
    }
    if (again.failed() || index != frames.size()) fail("payload round trip ends differently", index, frames.size());
    if (again.ack_eliciting() != parser.ack_eliciting() || again.in_flight() != parser.in_flight() ||
        again.probing_only() != parser.probing_only())
        fail("packet-level facts differ after the round trip");
    return 0;
}
