// libFuzzer target for the QUIC packet header parser (engine/quic/packet_header.hpp). Built and run by
// run_fuzz.sh with clang++.
//
// The input's first byte picks the receiver's options (bit 0: client, else server; bit 1: the peer greases the
// fixed bit; bits 2-7 modulo 21: the local CID length for short headers); the rest is one received datagram,
// copied to end right before a PROT_NONE page so that any read past it faults. The datagram's coalesced packets
// are walked. Oracles, any failure abort()s:
//   - each packet starts where the previous one ended, is not empty, and ends inside the datagram; its CIDs,
//     token, packet number start (with 20 bytes of sample room), Retry tag and version list lie inside it;
//   - the walk ends with status ok exactly when it consumed the whole datagram (and found a packet);
//   - a packet parsed on its own (just its bytes) gives the same view as inside the datagram;
//   - an Initial, 0-RTT or Handshake header written again by write_long_header() from the parsed fields (with
//     the same Length) parses back to the same fields;
// and the stateless reset scan of the datagram's tail runs on every input.

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "engine/quic/packet_header.hpp"
#include "engine/quic/packet_header_writer.hpp"
#include "engine/quic/stateless_reset.hpp"
#include "tests/fuzz/guarded_buffer.hpp"

using namespace cf::quic;

namespace {

[[noreturn]] void fail(const char* what, std::size_t offset) {
    std::fprintf(stderr, "quic_packet_header_fuzz: %s (packet at offset %zu)\n", what, offset);
    std::abort();
}

bool inside(std::span<const std::uint8_t> span, const PacketHeader& header) {
    return span.empty() || (span.data() >= header.packet && span.data() + span.size() <= header.end());
}

bool same_span(std::span<const std::uint8_t> a, std::span<const std::uint8_t> b) {
    return a.size() == b.size() && (a.empty() || std::memcmp(a.data(), b.data(), a.size()) == 0);
}

bool same_view(const PacketHeader& a, const PacketHeader& b) {
    return a.type == b.type && a.first_byte == b.first_byte && a.version == b.version && a.packet == b.packet &&
           a.size == b.size && a.pn_offset == b.pn_offset && a.retry_tag_offset == b.retry_tag_offset &&
           a.dcid.data() == b.dcid.data() && a.dcid.size() == b.dcid.size() && a.scid.data() == b.scid.data() &&
           a.scid.size() == b.scid.size() && a.token.data() == b.token.data() && a.token.size() == b.token.size() &&
           a.supported_versions == b.supported_versions && a.supported_version_count == b.supported_version_count;
}

std::uint8_t rewritten[65536 + 64];

void check_rewrite(const PacketHeader& header, const PacketParseOptions& options, std::size_t offset) {
    LongHeaderFields fields;
    fields.type = header.type;
    fields.version = header.version;
    fields.dcid.assign(header.dcid);
    fields.scid.assign(header.scid);
    fields.token = header.token;
    fields.packet_number_length = packet_number_length_of(header.first_byte);
    ByteWriter writer(rewritten, sizeof rewritten);
    LongHeaderLayout layout;
    if (write_long_header(writer, fields, layout) != 0) fail("a parsed long header does not write again", offset);
    const std::size_t length = header.size - header.pn_offset;
    if (length > kMaxPatchableLength) return;   // beyond the 2-byte placeholder: nothing to compare
    writer.zeros(length - fields.packet_number_length);
    if (writer.failed() || patch_long_header_length(rewritten, layout, writer.size()) != 0) {
        fail("the rewritten packet does not fit", offset);
    }
    PacketHeader again;
    PacketParseOptions fixed = options;
    fixed.fixed_bit_may_be_zero = true;   // our writer sets the fixed bit, the input may not have
    if (parse_packet_header(rewritten, writer.size(), fixed, again) != HeaderStatus::ok) {
        fail("the rewritten header does not parse", offset);
    }
    if (again.type != header.type || !same_span(again.dcid, header.dcid) || !same_span(again.scid, header.scid) ||
        !same_span(again.token, header.token) || again.size - again.pn_offset != length) {
        fail("the rewritten header parses to other fields", offset);
    }
}

void check_packet(const PacketHeader& header, const std::uint8_t* datagram, std::size_t size, std::size_t offset,
                  const PacketParseOptions& options) {
    if (header.packet != datagram + offset) fail("packet does not start where the previous ended", offset);
    if (header.size == 0 || header.size > size - offset) fail("packet size outside the datagram", offset);
    if (!inside(header.dcid, header) || !inside(header.scid, header) || !inside(header.token, header)) {
        fail("a field lies outside its packet", offset);
    }
    if (header.type != PacketType::version_negotiation &&
        (header.dcid.size() > ConnectionId::kMaxLength || header.scid.size() > ConnectionId::kMaxLength)) {
        fail("a version 1 CID above 20 bytes accepted", offset);   // only Version Negotiation echoes longer ones
    }
    if (header.has_packet_number() &&
        (header.pn_offset == 0 || header.pn_offset > header.size ||
         header.size - header.pn_offset < kMinBytesFromPacketNumber)) {
        fail("packet number without room for the header protection sample", offset);
    }
    if (header.type == PacketType::retry &&
        (header.retry_tag_offset + kRetryIntegrityTagSize != header.size || header.token.empty())) {
        fail("Retry tag or token misplaced", offset);
    }
    if (header.type == PacketType::version_negotiation &&
        (header.supported_version_count == 0 ||
         header.supported_versions + 4 * header.supported_version_count != header.end())) {
        fail("Version Negotiation list does not fill the packet", offset);
    }
    if (header.type == PacketType::version_negotiation) {
        for (std::size_t i = 0; i < header.supported_version_count; ++i) (void)header.supported_version(i);
    }
    PacketHeader alone;
    if (parse_packet_header(header.packet, header.size, options, alone) != HeaderStatus::ok ||
        !same_view(alone, header)) {
        fail("the packet parsed on its own gives another view", offset);
    }
    if (header.type == PacketType::initial || header.type == PacketType::zero_rtt ||
        header.type == PacketType::handshake) {
        check_rewrite(header, options, offset);
    }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* input, std::size_t size) {
    static cf::fuzz::GuardedBuffer guarded;
    if (size == 0) return 0;
    PacketParseOptions options;
    options.receiver = (input[0] & 1) != 0 ? EndpointRole::client : EndpointRole::server;
    options.fixed_bit_may_be_zero = (input[0] & 2) != 0;
    options.short_header_dcid_length = (input[0] >> 2) % 21;
    ++input;
    --size;
    const std::uint8_t* datagram = input;   // longer than the guarded room: ASan alone watches
    if (size <= guarded.capacity) {
        std::uint8_t* copy = guarded.end - size;
        if (size != 0) std::memcpy(copy, input, size);
        datagram = copy;
    }

    PacketWalker walker(datagram, size, options);
    PacketHeader header;
    std::size_t offset = 0;
    while (walker.next(header)) {
        check_packet(header, datagram, size, offset, options);
        offset += header.size;
        if (walker.offset() != offset) fail("walker offset disagrees with the packet sizes", offset);
    }
    const bool clean = walker.status() == HeaderStatus::ok;
    if (clean != (walker.packets() != 0 && offset == size)) fail("the walk's end status is wrong", offset);
    if (walker.next(header)) fail("the end of the walk is not sticky", offset);

    // The datagram's own tail as the second token: found whenever the datagram is long enough to be a reset.
    StatelessResetToken tokens[2];
    if (size >= StatelessResetToken::kSize) std::memcpy(tokens[1].bytes.data(), datagram + size - 16, 16);
    const int expected = size < kMinStatelessResetSize ? -1 : 1;
    if (find_stateless_reset_token(datagram, size, tokens) != expected) fail("stateless reset scan is wrong", size);
    return 0;
}
