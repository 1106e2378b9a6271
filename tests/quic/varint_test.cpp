#include "engine/quic/varint.hpp"

#include <doctest/doctest.h>

#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include "engine/quic/transport_error.hpp"

using cf::quic::ByteReader;
using cf::quic::ByteWriter;
using cf::quic::kMaxVarint;

namespace {

std::vector<std::uint8_t> encode(std::uint64_t value, std::size_t width = 0) {
    std::vector<std::uint8_t> out(8);
    ByteWriter writer(out.data(), out.size());
    writer.varint(value, width);
    REQUIRE_FALSE(writer.failed());
    out.resize(writer.size());
    return out;
}

// The slow reference: the encoding spelled out from RFC 9000 section 16's table.
std::vector<std::uint8_t> reference_encoding(std::uint64_t value) {
    int bytes = value <= 63 ? 1 : value <= 16383 ? 2 : value <= 1073741823 ? 4 : 8;
    std::vector<std::uint8_t> out;
    for (int i = bytes - 1; i >= 0; --i) out.push_back(static_cast<std::uint8_t>(value >> (8 * i)));
    const std::uint8_t prefix = bytes == 1 ? 0x00 : bytes == 2 ? 0x40 : bytes == 4 ? 0x80 : 0xc0;
    out[0] |= prefix;
    return out;
}

}  // namespace

TEST_CASE("varint: the RFC 9000 appendix A.1 examples, both ways") {
    const struct {
        std::vector<std::uint8_t> bytes;
        std::uint64_t value;
    } examples[] = {
        {{0xc2, 0x19, 0x7c, 0x5e, 0xff, 0x14, 0xe8, 0x8c}, 151288809941952652ull},
        {{0x9d, 0x7f, 0x3e, 0x7d}, 494878333},
        {{0x7b, 0xbd}, 15293},
        {{0x25}, 37},
        {{0x40, 0x25}, 37},   // not the shortest, still valid
    };
    for (const auto& example : examples) {
        ByteReader reader(example.bytes.data(), example.bytes.size());
        CHECK(reader.varint() == example.value);
        CHECK_FALSE(reader.failed());
        CHECK(reader.empty());
    }
    CHECK(encode(151288809941952652ull) == examples[0].bytes);
    CHECK(encode(494878333) == examples[1].bytes);
    CHECK(encode(15293) == examples[2].bytes);
    CHECK(encode(37) == examples[3].bytes);
    CHECK(encode(37, 2) == examples[4].bytes);
}

TEST_CASE("varint: random values round trip and match the reference encoding, at every width") {
    std::mt19937_64 random(9000);
    for (int i = 0; i < 100000; ++i) {
        const std::uint64_t value = random() >> (2 + random() % 62);
        const std::vector<std::uint8_t> bytes = encode(value);
        REQUIRE(bytes == reference_encoding(value));
        REQUIRE(bytes.size() == cf::quic::varint_size(value));
        for (const std::size_t width : {1u, 2u, 4u, 8u}) {
            std::uint8_t buffer[8];
            ByteWriter writer(buffer, sizeof buffer);
            writer.varint(value, width);
            REQUIRE(writer.failed() == (width < cf::quic::varint_size(value)));
            if (writer.failed()) continue;
            REQUIRE(writer.size() == width);
            ByteReader reader(buffer, writer.size());
            REQUIRE(reader.varint() == value);
            REQUIRE(reader.empty());
        }
    }
}

TEST_CASE("varint: the edges of each width") {
    for (const std::uint64_t value : {std::uint64_t{0}, std::uint64_t{63}, std::uint64_t{64}, std::uint64_t{16383}, std::uint64_t{16384},
                                      std::uint64_t{1073741823}, std::uint64_t{1073741824}, kMaxVarint}) {
        const std::vector<std::uint8_t> bytes = encode(value);
        CHECK(bytes == reference_encoding(value));
        ByteReader reader(bytes.data(), bytes.size());
        CHECK(reader.varint() == value);
    }
    std::uint8_t buffer[8];
    ByteWriter too_large(buffer, sizeof buffer);
    too_large.varint(kMaxVarint + 1);
    CHECK(too_large.failed());
    CHECK(too_large.size() == 0);
    ByteWriter bad_width(buffer, sizeof buffer);
    bad_width.varint(1, 3);
    CHECK(bad_width.failed());
}

TEST_CASE("reader: a truncated varint or field fails, reads nothing outside the buffer, and stays failed") {
    const std::uint8_t eight[] = {0xc2, 0x19, 0x7c, 0x5e, 0xff, 0x14, 0xe8, 0x8c};
    for (std::size_t size = 0; size < sizeof eight; ++size) {
        ByteReader reader(eight, size);
        CHECK(reader.varint() == 0);
        CHECK(reader.failed());
        CHECK(reader.remaining() == 0);
        CHECK(reader.u8() == 0);   // and every later read
        CHECK(reader.failed());
    }
    ByteReader reader(eight, 3);
    CHECK(reader.u8() == 0xc2);
    CHECK(reader.bytes(3) == nullptr);
    CHECK(reader.failed());
    ByteReader fixed(eight, sizeof eight);
    CHECK(fixed.uint(4) == 0xc2197c5eu);
    CHECK(fixed.uint(0) == 0);
    CHECK(fixed.failed());
    ByteReader skipping(eight, sizeof eight);
    CHECK(skipping.skip(8));
    CHECK(skipping.empty());
    CHECK_FALSE(skipping.skip(1));
}

TEST_CASE("writer: what does not fit is not written, and later writes fail too") {
    std::uint8_t buffer[4] = {0xaa, 0xaa, 0xaa, 0xaa};
    ByteWriter writer(buffer, 3);
    writer.u8(1);
    writer.varint(494878333);   // 4 bytes: does not fit in the 2 left
    CHECK(writer.failed());
    writer.u8(2);
    CHECK(writer.size() == 1);
    CHECK(buffer[1] == 0xaa);
    CHECK(buffer[3] == 0xaa);
    ByteWriter narrow(buffer, sizeof buffer);
    narrow.uint(0x1ff, 1);   // does not fit in one byte
    CHECK(narrow.failed());
    ByteWriter fixed(buffer, sizeof buffer);
    fixed.u32(0x01020304);
    CHECK(buffer[0] == 1);
    CHECK(buffer[3] == 4);
}

TEST_CASE("transport errors: the RFC's names and the crypto error range") {
    CHECK(std::string(cf::quic::transport_error_name(0x07)) == "FRAME_ENCODING_ERROR");
    CHECK(std::string(cf::quic::transport_error_name(0x10)) == "NO_VIABLE_PATH");
    CHECK(cf::quic::crypto_error(120) == 0x0178);   // no_application_protocol
    CHECK(std::string(cf::quic::transport_error_name(0x0178)) == "CRYPTO_ERROR");
    CHECK(std::string(cf::quic::transport_error_name(0x11)) == "unknown");
    CHECK(std::string(cf::quic::transport_error_name(0x0200)) == "unknown");
}
