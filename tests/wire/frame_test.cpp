// The wire frame codec: one frame against hand-written bytes (CRC from a bitwise reference), random round trips
// (fixed seed), every rejection reason produced on purpose and counted once, truncation at every offset, every
// single-bit flip, no read past the datagram (a PROT_NONE guard page right behind it), and the writer's errors.
#include <doctest/doctest.h>

#include <sys/mman.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <cstdint>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "engine/wire/frame.hpp"
#include "platform/os/last_error.hpp"

using namespace cf::wire;
using cf::HlcStamp;

namespace {

using Bytes = std::vector<std::byte>;

// Bit at a time, reflected polynomial 0x82F63B78, init and final xor all ones: independent of ISA-L.
std::uint32_t ref_crc32c(std::uint32_t crc, const std::byte* data, std::size_t size) {
    crc = ~crc;
    for (std::size_t i = 0; i < size; ++i) {
        crc ^= std::to_integer<std::uint32_t>(data[i]);
        for (int bit = 0; bit < 8; ++bit) crc = (crc >> 1) ^ (0x82F63B78u & (0u - (crc & 1u)));
    }
    return ~crc;
}

std::uint32_t get_le32(const std::byte* p) {
    return std::to_integer<std::uint32_t>(p[0]) | std::to_integer<std::uint32_t>(p[1]) << 8 |
           std::to_integer<std::uint32_t>(p[2]) << 16 | std::to_integer<std::uint32_t>(p[3]) << 24;
}
void put_le32(std::byte* p, std::uint32_t value) {
    for (int i = 0; i < 4; ++i) p[i] = static_cast<std::byte>(value >> (8 * i));
}

// Recomputes the CRC of the frame at `frame` with the reference, after a test changed its header on purpose.
void reseal(std::byte* frame) {
    const std::uint32_t length = get_le32(frame + 28);
    put_le32(frame + 36, ref_crc32c(ref_crc32c(0, frame, 36), frame + 40, length));
}

Bytes payload_bytes(std::uint32_t length, std::uint8_t seed) {
    Bytes payload(length);
    for (std::uint32_t i = 0; i < length; ++i) payload[i] = static_cast<std::byte>(seed + i * 7u);
    return payload;
}

FrameFields fields_for(std::uint32_t n) {
    return FrameFields{.topic_id = 100 + n,
                       .sequence = 0x1000'0000'0000ull + n,
                       .stamp = HlcStamp{0xABCD'0000'0000ull + n, static_cast<std::uint16_t>(7 + n)},
                       .session = 0x5E55'0000u + n,
                       .flags = static_cast<std::uint8_t>(n % 2 == 0 ? 0 : kFrameControl)};
}

// A datagram of frames with these payload lengths (fields_for(i), payload_bytes(length, i)).
Bytes datagram(const std::vector<std::uint32_t>& lengths) {
    Bytes out(kMaxUdpPayloadBytes);
    DatagramWriter writer(out.data(), out.size());
    for (std::uint32_t i = 0; i < lengths.size(); ++i) {
        const Bytes payload = payload_bytes(lengths[i], static_cast<std::uint8_t>(i));
        const int used = writer.append(fields_for(i), payload.data(), lengths[i]);
        REQUIRE(used == static_cast<int>(frame_bytes(lengths[i])));
    }
    out.resize(writer.size());
    return out;
}

std::vector<std::size_t> frame_starts(const std::vector<std::uint32_t>& lengths) {
    std::vector<std::size_t> starts;
    std::size_t at = 0;
    for (const std::uint32_t length : lengths) {
        starts.push_back(at);
        at += frame_bytes(length);
    }
    starts.push_back(at);   // the end
    return starts;
}

struct Walk {
    std::vector<DecodedFrame> frames;
    int end = 1;                         // 0 clean end, -EBADMSG rejected
    FrameReject reason = FrameReject::truncated;
    std::size_t offset = 0;
};

Walk walk(const std::byte* data, std::size_t size, std::uint32_t max_payload, WireCounters& counters) {
    DatagramReader reader(data, size, max_payload, counters);
    Walk result;
    DecodedFrame frame;
    int status;
    while ((status = reader.next(frame)) == 1) result.frames.push_back(frame);
    result.end = status;
    if (status == -EBADMSG) result.reason = reader.last_reject();
    result.offset = reader.offset();
    // Sticky: asking again changes nothing and counts nothing.
    const WireCounters before = counters;
    CHECK(reader.next(frame) == status);
    CHECK(counters.rejected_datagrams == before.rejected_datagrams);
    CHECK(counters.frames == before.frames);
    return result;
}

void check_frame(const DecodedFrame& frame, std::uint32_t index, std::uint32_t length) {
    CAPTURE(index);
    CHECK(frame.fields == fields_for(index));
    REQUIRE(frame.length == length);
    const Bytes expected = payload_bytes(length, static_cast<std::uint8_t>(index));
    if (length != 0) CHECK(std::memcmp(frame.payload, expected.data(), length) == 0);
}

// Exactly one rejection, for `reason`, and nothing else.
void check_rejected_once(const WireCounters& counters, FrameReject reason) {
    CHECK(counters.rejected_datagrams == 1);
    for (std::size_t kind = 0; kind < kRejectKinds; ++kind) {
        CAPTURE(frame_reject_name(static_cast<FrameReject>(kind)));
        CHECK(counters.rejected[kind] == (kind == static_cast<std::size_t>(reason) ? 1u : 0u));
    }
}

}  // namespace

TEST_CASE("constants and frame sizes") {
    CHECK(kFrameMagic == 0xC7F1);
    CHECK(kFrameVersion == 1);
    CHECK(kFrameHeaderBytes == 40);
    CHECK(kFrameControl == 1);
    CHECK(frame_bytes(0) == 40);
    CHECK(frame_bytes(1) == 48);
    CHECK(frame_bytes(7) == 48);
    CHECK(frame_bytes(8) == 48);
    CHECK(frame_bytes(9) == 56);
    // The largest frame fits one IPv4 UDP datagram (65507 bytes); one more payload byte would not.
    CHECK(kMaxPayloadBytes == 65464);
    CHECK(frame_bytes(kMaxPayloadBytes) == 65504);
    CHECK(frame_bytes(kMaxPayloadBytes + 1) == 65512);
    // A hostile 32-bit length does not wrap.
    CHECK(frame_bytes(0xFFFF'FFFFu) == 0x1'0000'0028ull);
}

TEST_CASE("a fixed frame encodes to exactly the bytes of the format table") {
    const FrameFields fields{.topic_id = 0x01020304,
                             .sequence = 0x1122334455667788ull,
                             .stamp = HlcStamp{0x99AABBCCDDEEFF00ull, 0x1234},
                             .session = 0xCAFEBABE,
                             .flags = kFrameControl};
    const char payload[] = "hello";
    std::array<std::uint8_t, 48> expected_raw = {
        0xF1, 0xC7,                                        // magic
        0x01,                                              // version
        0x01,                                              // flags: control
        0x04, 0x03, 0x02, 0x01,                            // topic id
        0x88, 0x77, 0x66, 0x55, 0x44, 0x33, 0x22, 0x11,    // sequence
        0x00, 0xFF, 0xEE, 0xDD, 0xCC, 0xBB, 0xAA, 0x99,    // HLC word
        0x34, 0x12,                                        // HLC node
        0x00, 0x00,                                        // reserved
        0x05, 0x00, 0x00, 0x00,                            // payload length
        0xBE, 0xBA, 0xFE, 0xCA,                            // session
        0x00, 0x00, 0x00, 0x00,                            // CRC: filled in below from the reference
        'h', 'e', 'l', 'l', 'o',                           // payload
        0x00, 0x00, 0x00,                                  // padding to 48
    };
    Bytes expected(expected_raw.size());
    std::memcpy(expected.data(), expected_raw.data(), expected_raw.size());
    const std::uint32_t crc = ref_crc32c(ref_crc32c(0, expected.data(), 36), expected.data() + 40, 5);
    CHECK(crc == 0x4163D393u);   // also computed by hand with a separate (Python) bitwise CRC-32C
    put_le32(expected.data() + 36, crc);

    Bytes buffer(64, std::byte{0xEE});
    DatagramWriter writer(buffer.data(), buffer.size());
    REQUIRE(writer.append(fields, payload, 5) == 48);
    CHECK(writer.size() == 48);
    CHECK(writer.frames() == 1);
    for (std::size_t i = 0; i < expected.size(); ++i) {
        CAPTURE(i);
        CHECK(std::to_integer<int>(buffer[i]) == std::to_integer<int>(expected[i]));
    }
    for (std::size_t i = 48; i < buffer.size(); ++i) CHECK(buffer[i] == std::byte{0xEE});   // nothing beyond

    // And the hand-written bytes decode to the same fields.
    WireCounters counters;
    const Walk result = walk(expected.data(), expected.size(), kMaxPayloadBytes, counters);
    REQUIRE(result.frames.size() == 1);
    CHECK(result.end == 0);
    CHECK(result.frames[0].fields == fields);
    CHECK(result.frames[0].length == 5);
    CHECK(result.frames[0].payload == expected.data() + 40);
    CHECK(std::memcmp(result.frames[0].payload, "hello", 5) == 0);
    CHECK(counters.datagrams == 1);
    CHECK(counters.frames == 1);
    CHECK(counters.rejected_datagrams == 0);
}

TEST_CASE("random round trips give back every field and payload byte (fixed seed)") {
    std::mt19937_64 rng(0xC7F1'0001);
    const std::uint32_t special[] = {0, 1, 7, 8, 9, kMaxPayloadBytes};
    Bytes buffer(kMaxUdpPayloadBytes + 8);
    WireCounters counters;
    std::uint64_t total_frames = 0;
    constexpr int kDatagrams = 400;
    for (int d = 0; d < kDatagrams; ++d) {
        CAPTURE(d);
        const std::size_t misalign = rng() % 8;   // the buffer needs no alignment
        DatagramWriter writer(buffer.data() + misalign, kMaxUdpPayloadBytes);
        const int wanted = 1 + static_cast<int>(rng() % 12);
        struct Sent {
            FrameFields fields;
            Bytes payload;
        };
        std::vector<Sent> sent;
        for (int f = 0; f < wanted; ++f) {
            std::uint32_t length;
            if (f == 0 && d < 2 * static_cast<int>(std::size(special))) {
                length = special[d % std::size(special)];          // every special length, as first frame
            } else {
                switch (rng() % 4) {
                    case 0: length = special[rng() % std::size(special)]; break;
                    case 1: length = static_cast<std::uint32_t>(rng() % 17); break;
                    case 2: length = static_cast<std::uint32_t>(rng() % 1500); break;
                    default: length = static_cast<std::uint32_t>(rng() % (kMaxPayloadBytes + 1)); break;
                }
            }
            FrameFields fields{.topic_id = static_cast<std::uint32_t>(rng()),
                               .sequence = rng(),
                               .stamp = HlcStamp{rng(), static_cast<std::uint16_t>(rng())},
                               .session = static_cast<std::uint32_t>(rng()),
                               .flags = static_cast<std::uint8_t>(rng() % 2 == 0 ? 0 : kFrameControl)};
            Bytes payload(length);
            for (auto& b : payload) b = static_cast<std::byte>(rng());
            const std::size_t before = writer.size();
            const bool fits = frame_bytes(length) <= kMaxUdpPayloadBytes - before;
            if (rng() % 2 == 0) {
                const int used = writer.append(fields, payload.data(), length);
                if (!fits) {
                    CHECK(used == -ENOSPC);
                    CHECK(writer.size() == before);
                    break;
                }
                REQUIRE(used == static_cast<int>(frame_bytes(length)));
            } else {
                std::byte* room = writer.begin_frame(fields, length);
                if (!fits) {
                    CHECK(room == nullptr);
                    CHECK(writer.size() == before);
                    break;
                }
                REQUIRE(room != nullptr);
                if (length != 0) std::memcpy(room, payload.data(), length);
                writer.end_frame();
            }
            CHECK(writer.size() == before + frame_bytes(length));
            sent.push_back({fields, std::move(payload)});
        }
        REQUIRE(!sent.empty());   // the first frame always fits an empty datagram
        CHECK(writer.frames() == sent.size());

        const Walk result = walk(writer.data(), writer.size(), kMaxPayloadBytes, counters);
        CHECK(result.end == 0);
        REQUIRE(result.frames.size() == sent.size());
        for (std::size_t i = 0; i < sent.size(); ++i) {
            CAPTURE(i);
            CHECK(result.frames[i].fields == sent[i].fields);
            REQUIRE(result.frames[i].length == sent[i].payload.size());
            if (!sent[i].payload.empty()) {
                CHECK(std::memcmp(result.frames[i].payload, sent[i].payload.data(), sent[i].payload.size()) == 0);
            }
        }
        total_frames += sent.size();
    }
    CHECK(counters.datagrams == kDatagrams);
    CHECK(counters.frames == total_frames);
    CHECK(counters.rejected_datagrams == 0);
}

TEST_CASE("every rejection reason, produced on purpose, is counted once and stops the walk") {
    // Three frames; the second one is spoiled. Frame 2 has 13 payload bytes, so 3 bytes of padding.
    const std::vector<std::uint32_t> lengths = {5, 13, 0};
    const auto starts = frame_starts(lengths);
    const std::size_t second = starts[1];

    struct Case {
        const char* what;
        FrameReject reason;
        std::size_t size;               // datagram bytes handed to the reader
        std::uint32_t max_payload;
        void (*spoil)(std::byte* frame);
        bool reseal;   // recompute the CRC, so only the check under test can reject it (where the CRC's bytes exist)
    };
    const std::size_t full = starts.back();
    const Case cases[] = {
        {"magic", FrameReject::bad_magic, full, kMaxPayloadBytes, [](std::byte* f) { f[1] = std::byte{0xC8}; },
         true},
        {"version 2", FrameReject::bad_version, full, kMaxPayloadBytes, [](std::byte* f) { f[2] = std::byte{2}; },
         true},
        {"version 0", FrameReject::bad_version, full, kMaxPayloadBytes, [](std::byte* f) { f[2] = std::byte{0}; },
         true},
        {"flag bit 1", FrameReject::bad_flags, full, kMaxPayloadBytes, [](std::byte* f) { f[3] = std::byte{0x03}; },
         true},
        {"flag bit 7", FrameReject::bad_flags, full, kMaxPayloadBytes, [](std::byte* f) { f[3] = std::byte{0x80}; },
         true},
        {"reserved", FrameReject::bad_reserved, full, kMaxPayloadBytes,
         [](std::byte* f) { f[27] = std::byte{0x01}; }, true},
        {"length above max_payload", FrameReject::oversized, full, 12, [](std::byte*) {}, false},
        {"length 0xFFFFFFFF", FrameReject::oversized, full, kMaxPayloadBytes,
         [](std::byte* f) { put_le32(f + 28, 0xFFFF'FFFFu); }, false},   // (no reseal: the CRC would read 4 GiB)
        {"length past the datagram's end", FrameReject::truncated, full, kMaxPayloadBytes,
         [](std::byte* f) { put_le32(f + 28, 13 + 48 + 1); }, false},
        {"datagram ends inside the payload", FrameReject::truncated, second + 45, kMaxPayloadBytes,
         [](std::byte*) {}, false},
        {"datagram ends inside the padding", FrameReject::truncated, second + 54, kMaxPayloadBytes,
         [](std::byte*) {}, false},
        {"datagram ends inside the header", FrameReject::truncated, second + 20, kMaxPayloadBytes,
         [](std::byte*) {}, false},
        {"payload bit", FrameReject::corrupt, full, kMaxPayloadBytes, [](std::byte* f) { f[45] ^= std::byte{0x10}; },
         false},
        {"crc bit", FrameReject::corrupt, full, kMaxPayloadBytes, [](std::byte* f) { f[38] ^= std::byte{0x01}; },
         false},
        {"padding byte", FrameReject::bad_padding, full, kMaxPayloadBytes,
         [](std::byte* f) { f[55] = std::byte{0x01}; }, false},
    };
    for (const Case& c : cases) {
        CAPTURE(c.what);
        Bytes bytes = datagram(lengths);
        c.spoil(bytes.data() + second);
        if (c.reseal) reseal(bytes.data() + second);
        Bytes exact(bytes.begin(), bytes.begin() + static_cast<std::ptrdiff_t>(c.size));   // nothing to over-read
        WireCounters counters;
        const Walk result = walk(exact.data(), exact.size(), c.max_payload, counters);
        CHECK(result.end == -EBADMSG);
        CHECK(frame_reject_name(result.reason) == std::string(frame_reject_name(c.reason)));
        REQUIRE(result.frames.size() == 1);   // the good frame before it, nothing after it
        check_frame(result.frames[0], 0, lengths[0]);
        CHECK(result.offset == second);
        CHECK(counters.datagrams == 1);
        CHECK(counters.frames == 1);
        check_rejected_once(counters, c.reason);
    }
}

TEST_CASE("short datagrams are truncated: empty, under one header, 1..39 bytes after a good frame") {
    SUBCASE("empty (also with a null pointer)") {
        WireCounters counters;
        const Walk empty = walk(nullptr, 0, kMaxPayloadBytes, counters);
        CHECK(empty.end == -EBADMSG);
        CHECK(empty.reason == FrameReject::truncated);
        std::byte one{0};
        const Walk zero = walk(&one, 0, kMaxPayloadBytes, counters);
        CHECK(zero.end == -EBADMSG);
        CHECK(counters.datagrams == 2);
        CHECK(counters.rejected_datagrams == 2);
        CHECK(counters.rejected_for(FrameReject::truncated) == 2);
    }
    SUBCASE("trailing bytes after a good frame") {
        const Bytes good = datagram({9});
        for (std::size_t extra = 1; extra < kFrameHeaderBytes; ++extra) {
            CAPTURE(extra);
            Bytes bytes = good;
            bytes.resize(good.size() + extra, std::byte{0});
            WireCounters counters;
            const Walk result = walk(bytes.data(), bytes.size(), kMaxPayloadBytes, counters);
            REQUIRE(result.frames.size() == 1);
            check_frame(result.frames[0], 0, 9);
            CHECK(result.end == -EBADMSG);
            CHECK(result.reason == FrameReject::truncated);
            check_rejected_once(counters, FrameReject::truncated);
        }
    }
    SUBCASE("a rejected frame leaves the output alone") {
        const Bytes bytes = datagram({3});
        WireCounters counters;
        DatagramReader reader(bytes.data(), bytes.size() - 1, kMaxPayloadBytes, counters);
        DecodedFrame out;
        out.length = 777;
        CHECK(reader.next(out) == -EBADMSG);
        CHECK(out.length == 777);
        CHECK(out.payload == nullptr);
    }
    SUBCASE("max_payload above the format's maximum is clamped to it") {
        Bytes header = datagram({0});
        put_le32(header.data() + 28, kMaxPayloadBytes + 1);
        WireCounters counters;
        const Walk result = walk(header.data(), header.size(), 0xFFFF'FFFFu, counters);
        CHECK(result.end == -EBADMSG);
        CHECK(result.reason == FrameReject::oversized);
    }
}

TEST_CASE("truncation at every byte offset of a three-frame datagram") {
    const std::vector<std::uint32_t> lengths = {0, 13, 8};
    const Bytes full = datagram(lengths);
    const auto starts = frame_starts(lengths);
    REQUIRE(full.size() == starts.back());
    WireCounters counters;
    std::uint64_t expected_frames = 0, expected_rejects = 0;
    for (std::size_t n = 0; n <= full.size(); ++n) {
        CAPTURE(n);
        const Bytes prefix(full.begin(), full.begin() + static_cast<std::ptrdiff_t>(n));   // exactly n bytes
        const Walk result = walk(prefix.data(), prefix.size(), kMaxPayloadBytes, counters);
        std::size_t whole = 0;   // frames that end at or before n
        while (whole < lengths.size() && starts[whole + 1] <= n) ++whole;
        REQUIRE(result.frames.size() == whole);
        for (std::uint32_t i = 0; i < whole; ++i) check_frame(result.frames[i], i, lengths[i]);
        const bool boundary = n != 0 && n == starts[whole];
        if (boundary) {
            CHECK(result.end == 0);
        } else {
            CHECK(result.end == -EBADMSG);
            CHECK(result.reason == FrameReject::truncated);
            ++expected_rejects;
        }
        expected_frames += whole;
    }
    CHECK(counters.datagrams == full.size() + 1);
    CHECK(counters.frames == expected_frames);
    CHECK(counters.rejected_datagrams == expected_rejects);
    CHECK(counters.rejected_for(FrameReject::truncated) == expected_rejects);
    CHECK(expected_rejects == full.size() + 1 - 3);   // all but the three boundaries
}

TEST_CASE("every single-bit flip is rejected") {
    // Two frames with padding; flips in header, payload, CRC and padding of either one.
    const std::vector<std::uint32_t> lengths = {13, 6};
    const Bytes good = datagram(lengths);
    const auto starts = frame_starts(lengths);
    WireCounters counters;
    std::uint64_t flips = 0;
    for (std::size_t byte = 0; byte < good.size(); ++byte) {
        const std::size_t frame = byte < starts[1] ? 0 : 1;
        const std::size_t at = byte - starts[frame];   // offset inside the frame
        for (int bit = 0; bit < 8; ++bit) {
            CAPTURE(byte);
            CAPTURE(bit);
            Bytes bytes = good;
            bytes[byte] ^= static_cast<std::byte>(1u << bit);
            const Walk result = walk(bytes.data(), bytes.size(), kMaxPayloadBytes, counters);
            ++flips;
            CHECK(result.end == -EBADMSG);
            REQUIRE(result.frames.size() == frame);   // the frames before the flipped one still decode
            if (frame == 1) check_frame(result.frames[0], 0, lengths[0]);
            const FrameReject r = result.reason;
            if (at < 2) {
                CHECK(r == FrameReject::bad_magic);
            } else if (at == 2) {
                CHECK(r == FrameReject::bad_version);
            } else if (at == 3 && bit != 0) {
                CHECK(r == FrameReject::bad_flags);
            } else if (at == 26 || at == 27) {
                CHECK(r == FrameReject::bad_reserved);
            } else if (at >= 28 && at < 32) {
                CHECK((r == FrameReject::oversized || r == FrameReject::truncated || r == FrameReject::corrupt));
            } else if (at >= kFrameHeaderBytes + lengths[frame]) {
                CHECK(r == FrameReject::bad_padding);
            } else {
                CHECK(r == FrameReject::corrupt);   // topic, sequence, HLC, session, CRC, payload, control flag
            }
        }
    }
    CHECK(counters.rejected_datagrams == flips);
    CHECK(counters.frames == 8 * (good.size() - starts[1]));   // frame 1 decoded before each flip in frame 2
}

TEST_CASE("no read past the datagram: it ends right before a PROT_NONE page") {
    const long page_size = sysconf(_SC_PAGESIZE);
    REQUIRE(page_size > 0);
    const auto page = static_cast<std::size_t>(page_size);
    void* map = mmap(nullptr, 2 * page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (map == MAP_FAILED) {
        MESSAGE("mmap failed (errno " << errno << "): guard-page test not run");
        return;
    }
    auto* base = static_cast<std::byte*>(map);
    if (mprotect(base + page, page, PROT_NONE) != 0) {
        MESSAGE("mprotect failed (errno " << errno << "): guard-page test not run");
        munmap(map, 2 * page);
        return;
    }
    std::byte* const guard = base + page;
    // Copies `bytes` (first n) so they end at the guard page and walks them.
    auto walk_at_edge = [&](const Bytes& bytes, std::size_t n, std::uint32_t max_payload, WireCounters& counters) {
        REQUIRE(n <= page);
        std::byte* start = guard - n;
        if (n != 0) std::memcpy(start, bytes.data(), n);
        return walk(start, n, max_payload, counters);
    };

    const std::vector<std::uint32_t> lengths = {7, 0, 21};
    const Bytes full = datagram(lengths);
    WireCounters counters;
    SUBCASE("whole and every prefix") {
        std::uint64_t clean = 0;
        for (std::size_t n = 0; n <= full.size(); ++n) {
            CAPTURE(n);
            const Walk result = walk_at_edge(full, n, kMaxPayloadBytes, counters);
            if (result.end == 0) ++clean;
            else CHECK(result.reason == FrameReject::truncated);
        }
        CHECK(clean == 3);
    }
    SUBCASE("every single-bit flip") {
        for (std::size_t bit = 0; bit < 8 * full.size(); ++bit) {
            CAPTURE(bit);
            Bytes bytes = full;
            bytes[bit / 8] ^= static_cast<std::byte>(1u << (bit % 8));
            CHECK(walk_at_edge(bytes, bytes.size(), kMaxPayloadBytes, counters).end == -EBADMSG);
        }
    }
    SUBCASE("lengths that point past the end") {
        // The last frame has 21 payload bytes in 64; from 25 bytes on, its frame would end past the guard.
        for (const std::uint32_t claimed : {25u, 26u, 1000u, kMaxPayloadBytes, 0xFFFF'FFFFu}) {
            CAPTURE(claimed);
            Bytes bytes = full;
            const std::size_t last = frame_starts(lengths)[2];
            put_le32(bytes.data() + last + 28, claimed);   // no reseal: the CRC over that length must never run
            const Walk result = walk_at_edge(bytes, bytes.size(), 0xFFFF'FFFFu, counters);
            CHECK(result.end == -EBADMSG);
            CHECK(result.frames.size() == 2);
            CHECK((result.reason == FrameReject::truncated || result.reason == FrameReject::oversized));
        }
    }
    SUBCASE("a lone header claiming a payload") {
        Bytes header = datagram({0});
        put_le32(header.data() + 28, 1);
        const Walk result = walk_at_edge(header, header.size(), kMaxPayloadBytes, counters);
        CHECK(result.end == -EBADMSG);
        CHECK(result.reason == FrameReject::truncated);
    }
    munmap(map, 2 * page);
}

TEST_CASE("writer: a frame that does not fit is -ENOSPC and writes nothing") {
    Bytes buffer(100, std::byte{0xAB});
    DatagramWriter writer(buffer.data(), buffer.size());
    const Bytes payload = payload_bytes(13, 1);
    REQUIRE(writer.append(fields_for(0), payload.data(), 13) == 56);
    CHECK(writer.append(fields_for(1), payload.data(), 5) == -ENOSPC);    // 56 + 48 > 100
    CHECK(writer.begin_frame(fields_for(1), 5) == nullptr);
    CHECK(writer.size() == 56);
    CHECK(writer.frames() == 1);
    for (std::size_t i = 56; i < buffer.size(); ++i) CHECK(buffer[i] == std::byte{0xAB});
    REQUIRE(writer.append(fields_for(1), nullptr, 0) == 40);               // exactly 96: still fits
    CHECK(writer.append(fields_for(2), nullptr, 0) == -ENOSPC);
    CHECK(writer.size() == 96);
    CHECK(writer.frames() == 2);
    for (std::size_t i = 96; i < buffer.size(); ++i) CHECK(buffer[i] == std::byte{0xAB});

    Bytes exact(96);   // a buffer that the two frames fill to the last byte
    DatagramWriter exact_writer(exact.data(), exact.size());
    CHECK(exact_writer.append(fields_for(0), payload.data(), 13) == 56);
    CHECK(exact_writer.append(fields_for(1), nullptr, 0) == 40);
    CHECK(exact_writer.size() == 96);
    CHECK(std::memcmp(exact.data(), buffer.data(), 96) == 0);

    DatagramWriter tiny(buffer.data(), 39);
    CHECK(tiny.append(fields_for(0), nullptr, 0) == -ENOSPC);
    CHECK(tiny.size() == 0);
    DatagramWriter none(nullptr, 0);
    CHECK(none.append(fields_for(0), nullptr, 0) == -ENOSPC);

    writer.reset();
    CHECK(writer.size() == 0);
    CHECK(writer.frames() == 0);
    CHECK(writer.append(fields_for(0), payload.data(), 5) == 48);
}

TEST_CASE("writer: invalid frames are -EINVAL with a message and write nothing") {
    Bytes buffer(frame_bytes(kMaxPayloadBytes) + 64, std::byte{0xAB});
    const Bytes big(kMaxPayloadBytes + 1, std::byte{1});
    DatagramWriter writer(buffer.data(), buffer.size());
    struct Bad {
        const char* what;
        FrameFields fields;
        const void* payload;
        std::uint32_t length;
    };
    FrameFields flag2 = fields_for(0);
    flag2.flags = 0x02;
    FrameFields flag80 = fields_for(0);
    flag80.flags = 0x81;
    const Bad bad[] = {
        {"payload one byte over the maximum", fields_for(0), big.data(), kMaxPayloadBytes + 1},
        {"payload of 4 GiB - 1", fields_for(0), big.data(), 0xFFFF'FFFFu},
        {"flag bit 1", flag2, big.data(), 4},
        {"flag bit 7", flag80, big.data(), 4},
        {"null payload with a length", fields_for(0), nullptr, 4},
    };
    for (const Bad& b : bad) {
        CAPTURE(b.what);
        cf::platform::clear_last_error();
        CHECK(writer.append(b.fields, b.payload, b.length) == -EINVAL);
        CHECK(std::strlen(cf::platform::last_error_message()) > 0);
        if (b.payload != nullptr) {
            cf::platform::clear_last_error();
            CHECK(writer.begin_frame(b.fields, b.length) == nullptr);
            CHECK(std::strlen(cf::platform::last_error_message()) > 0);
        }
        CHECK(writer.size() == 0);
        CHECK(writer.frames() == 0);
    }
    for (const std::byte b : buffer) REQUIRE(b == std::byte{0xAB});

    // The maximum itself is fine, and decodes.
    const int used = writer.append(fields_for(0), big.data(), kMaxPayloadBytes);
    REQUIRE(used == static_cast<int>(frame_bytes(kMaxPayloadBytes)));
    WireCounters counters;
    const Walk result = walk(writer.data(), writer.size(), kMaxPayloadBytes, counters);
    CHECK(result.end == 0);
    REQUIRE(result.frames.size() == 1);
    CHECK(result.frames[0].length == kMaxPayloadBytes);

    // One frame open at a time.
    writer.reset();
    std::byte* room = writer.begin_frame(fields_for(0), 3);
    REQUIRE(room != nullptr);
    CHECK(writer.append(fields_for(1), nullptr, 0) == -EINVAL);
    CHECK(writer.begin_frame(fields_for(1), 0) == nullptr);
    writer.end_frame();
    CHECK(writer.frames() == 1);
    CHECK(writer.append(fields_for(1), nullptr, 0) == 40);
}

TEST_CASE("writer: begin_frame/end_frame produce the same bytes as append") {
    for (const std::uint32_t length : {0u, 1u, 7u, 8u, 9u, 100u, kMaxPayloadBytes}) {
        CAPTURE(length);
        const Bytes payload = payload_bytes(length, 3);
        Bytes by_copy(frame_bytes(length) + 48, std::byte{0x5A});
        Bytes in_place(frame_bytes(length) + 48, std::byte{0xA5});   // different junk: padding must be written
        DatagramWriter copy_writer(by_copy.data(), by_copy.size());
        DatagramWriter place_writer(in_place.data(), in_place.size());
        for (std::uint32_t n = 0; n < 2; ++n) {   // a second, empty frame behind it
            const std::uint32_t len = n == 0 ? length : 0;
            REQUIRE(copy_writer.append(fields_for(n), payload.data(), len) == static_cast<int>(frame_bytes(len)));
            std::byte* room = place_writer.begin_frame(fields_for(n), len);
            REQUIRE(room != nullptr);
            CHECK(room == in_place.data() + place_writer.size() + kFrameHeaderBytes);
            CHECK(place_writer.size() == copy_writer.size() - frame_bytes(len));   // the open frame is not counted
            CHECK(place_writer.frames() == n);
            if (len != 0) std::memcpy(room, payload.data(), len);
            place_writer.end_frame();
            place_writer.end_frame();   // a second end_frame is a no-op
        }
        REQUIRE(place_writer.size() == copy_writer.size());
        CHECK(place_writer.frames() == 2);
        CHECK(std::memcmp(in_place.data(), by_copy.data(), copy_writer.size()) == 0);
    }
    // reset() drops an open frame.
    Bytes buffer(128);
    DatagramWriter writer(buffer.data(), buffer.size());
    REQUIRE(writer.begin_frame(fields_for(0), 8) != nullptr);
    writer.reset();
    writer.end_frame();
    CHECK(writer.size() == 0);
    CHECK(writer.frames() == 0);
}

TEST_CASE("reject reasons have distinct names") {
    std::vector<std::string> names;
    for (std::size_t kind = 0; kind < kRejectKinds; ++kind) {
        names.emplace_back(frame_reject_name(static_cast<FrameReject>(kind)));
        CHECK(names.back() != "unknown");
        for (std::size_t other = 0; other < kind; ++other) CHECK(names[other] != names.back());
    }
    CHECK(std::string(frame_reject_name(FrameReject::corrupt)) == "corrupt");
    CHECK(std::string(frame_reject_name(static_cast<FrameReject>(kRejectKinds))) == "unknown");
}
