// libFuzzer target for the wire frame reader (engine/wire/frame.hpp). Built and run by run_fuzz.sh with clang++.
//
// The input is one received datagram. It is walked twice: with the format's maximum payload, and with a bound
// taken from its last two bytes (so `oversized` and the clamping of large bounds are reached too). Oracles, any
// failure abort()s:
//   - every verdict of the reader (good frame, clean end, or the rejection reason) equals that of a slow
//     reference classifier written here from the format table, with its own table-driven CRC-32C;
//   - every good frame, encoded again by DatagramWriter from what was decoded, gives back exactly the input's
//     bytes of that frame (header, payload, CRC and padding): a round trip, so the reader accepts only canonical
//     frames and the writer writes what the reader reads;
//   - the counters record the datagram, its frames and at most one rejection, under the reason given;
// and nothing past the input is read: the input is copied to end right before a PROT_NONE page, which also
// catches reads inside ISA-L's CRC (assembly that AddressSanitizer does not see).

#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "engine/wire/frame.hpp"
#include "tests/fuzz/guarded_buffer.hpp"

using namespace cf::wire;

namespace {

struct Crc32cTable {
    std::uint32_t entry[256];
    Crc32cTable() {
        for (std::uint32_t i = 0; i < 256; ++i) {
            std::uint32_t crc = i;
            for (int bit = 0; bit < 8; ++bit) crc = (crc >> 1) ^ (0x82F63B78u & (0u - (crc & 1u)));
            entry[i] = crc;
        }
    }
};
const Crc32cTable crc_table;

std::uint32_t ref_crc32c(std::uint32_t crc, const std::uint8_t* data, std::size_t size) {
    crc = ~crc;
    for (std::size_t i = 0; i < size; ++i) crc = (crc >> 8) ^ crc_table.entry[(crc ^ data[i]) & 0xFF];
    return ~crc;
}

std::uint32_t le32(const std::uint8_t* p) {
    return std::uint32_t{p[0]} | std::uint32_t{p[1]} << 8 | std::uint32_t{p[2]} << 16 | std::uint32_t{p[3]} << 24;
}

[[noreturn]] void fail(const char* what, std::size_t offset, std::size_t size, std::uint32_t max_payload) {
    std::fprintf(stderr, "wire_frame_fuzz: %s (frame at offset %zu of %zu, max_payload %u)\n", what, offset, size,
                 max_payload);
    std::abort();
}

struct Verdict {
    bool good;
    FrameReject reason;
};

// The frame at p (left bytes remain), judged straight from the format table in the documented order.
Verdict classify(const std::uint8_t* p, std::size_t left, std::uint32_t max_payload) {
    if (max_payload > kMaxPayloadBytes) max_payload = kMaxPayloadBytes;
    if (left < 40) return {false, FrameReject::truncated};
    if (p[0] != 0xF1 || p[1] != 0xC7) return {false, FrameReject::bad_magic};
    if (p[2] != 1) return {false, FrameReject::bad_version};
    if ((p[3] & 0xFE) != 0) return {false, FrameReject::bad_flags};
    if (p[26] != 0 || p[27] != 0) return {false, FrameReject::bad_reserved};
    const std::uint32_t length = le32(p + 28);
    if (length > max_payload) return {false, FrameReject::oversized};
    const std::size_t padded = (40 + std::size_t{length} + 7) / 8 * 8;
    if (padded > left) return {false, FrameReject::truncated};
    if (ref_crc32c(ref_crc32c(0, p, 36), p + 40, length) != le32(p + 36)) return {false, FrameReject::corrupt};
    for (std::size_t i = 40 + length; i < padded; ++i) {
        if (p[i] != 0) return {false, FrameReject::bad_padding};
    }
    return {true, FrameReject::truncated};
}

std::byte reencoded[kMaxUdpPayloadBytes + 64];

void check_walk(const std::uint8_t* data, std::size_t size, std::uint32_t max_payload) {
    WireCounters counters;
    DatagramReader reader(reinterpret_cast<const std::byte*>(data), size, max_payload, counters);
    std::size_t offset = 0;
    std::uint64_t frames = 0;
    DecodedFrame frame;
    int status;
    while ((status = reader.next(frame)) == 1) {
        if (!classify(data + offset, size - offset, max_payload).good) {
            fail("reader accepted a frame the reference rejects", offset, size, max_payload);
        }
        if (frame.payload != reinterpret_cast<const std::byte*>(data + offset + kFrameHeaderBytes)) {
            fail("payload does not point behind the header", offset, size, max_payload);
        }
        DatagramWriter writer(reencoded, sizeof reencoded);
        const int used = writer.append(frame.fields, frame.payload, frame.length);
        if (used <= 0 || static_cast<std::size_t>(used) > size - offset) {
            fail("decoded frame does not encode again into its own size", offset, size, max_payload);
        }
        if (std::memcmp(reencoded, data + offset, static_cast<std::size_t>(used)) != 0) {
            fail("re-encoded frame differs from the input", offset, size, max_payload);
        }
        offset += static_cast<std::size_t>(used);
        ++frames;
        if (reader.offset() != offset) fail("reader offset disagrees with the frame sizes", offset, size, max_payload);
    }

    if (status == 0) {
        if (size == 0 || offset != size) fail("clean end before the datagram's end", offset, size, max_payload);
    } else if (status == -EBADMSG) {
        const Verdict expected = classify(data + offset, size - offset, max_payload);
        if (expected.good || reader.last_reject() != expected.reason) {
            std::fprintf(stderr, "reader: %s, reference: %s\n", frame_reject_name(reader.last_reject()),
                         expected.good ? "good" : frame_reject_name(expected.reason));
            fail("rejection reason differs from the reference", offset, size, max_payload);
        }
        if (reader.offset() != offset) fail("rejected at another offset", offset, size, max_payload);
    } else {
        fail("next() returned neither 1, 0 nor -EBADMSG", offset, size, max_payload);
    }
    if (reader.next(frame) != status) fail("the end of the walk is not sticky", offset, size, max_payload);

    std::uint64_t rejected = 0;
    for (const std::uint64_t count : counters.rejected) rejected += count;
    const std::uint64_t rejections = status < 0 ? 1 : 0;
    if (counters.datagrams != 1 || counters.frames != frames || counters.rejected_datagrams != rejections ||
        rejected != rejections || (status < 0 && counters.rejected_for(reader.last_reject()) != 1)) {
        fail("counters disagree with the walk", offset, size, max_payload);
    }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* input, std::size_t size) {
    static cf::fuzz::GuardedBuffer guarded;
    const std::uint8_t* data = input;   // longer than the guarded room (a larger -max_len): ASan alone watches
    if (size <= guarded.capacity) {
        std::uint8_t* copy = guarded.end - size;
        if (size != 0) std::memcpy(copy, input, size);
        data = copy;
    }
    check_walk(data, size, kMaxPayloadBytes);
    if (size >= 2) {
        // Small bounds mostly (zero-padded endings give 0), any 16-bit bound when the fuzzer changes them; an
        // all-ones ending asks for more than the format allows.
        std::uint32_t bound = std::uint32_t{data[size - 2]} | std::uint32_t{data[size - 1]} << 8;
        if (bound == 0xFFFF) bound = 0xFFFF'FFFFu;
        check_walk(data, size, bound);
    }
    return 0;
}
