// CRC-32C and CRC-64/XZ through ISA-L: published check values and RFC 3720 test patterns, empty input, chaining
// over random splits, misaligned buffers, and random data against a slow bitwise reference (fixed seed).
#include <doctest/doctest.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <random>
#include <vector>

#include "engine/compute/checksum.hpp"

using cf::compute::crc32c;
using cf::compute::crc64;

namespace {

// Bit at a time, reflected, with the same chaining convention as the real ones (invert in, invert out).
std::uint32_t ref_crc32c(std::uint32_t crc, const std::uint8_t* data, std::size_t size) {
    crc = ~crc;
    for (std::size_t i = 0; i < size; ++i) {
        crc ^= data[i];
        for (int bit = 0; bit < 8; ++bit) crc = (crc >> 1) ^ (0x82F63B78u & (0u - (crc & 1u)));
    }
    return ~crc;
}
std::uint64_t ref_crc64(std::uint64_t crc, const std::uint8_t* data, std::size_t size) {
    crc = ~crc;
    for (std::size_t i = 0; i < size; ++i) {
        crc ^= data[i];
        for (int bit = 0; bit < 8; ++bit) crc = (crc >> 1) ^ (0xC96C5795D7870F42ull & (0ull - (crc & 1ull)));
    }
    return ~crc;
}

std::vector<std::uint8_t> random_bytes(std::mt19937_64& rng, std::size_t size) {
    std::vector<std::uint8_t> bytes(size);
    for (auto& b : bytes) b = static_cast<std::uint8_t>(rng());
    return bytes;
}

constexpr char kCheck[] = "123456789";

}  // namespace

TEST_CASE("check values of \"123456789\"") {
    CHECK(crc32c(0, kCheck, 9) == 0xE3069283u);
    CHECK(crc32c(0, kCheck, 9) == cf::compute::kCrc32cCheck);
    CHECK(crc64(0, kCheck, 9) == 0x995DC9BBDF1939FAull);
    CHECK(crc64(0, kCheck, 9) == cf::compute::kCrc64Check);
    // The references agree, so they can judge random data below.
    const auto* bytes = reinterpret_cast<const std::uint8_t*>(kCheck);
    CHECK(ref_crc32c(0, bytes, 9) == 0xE3069283u);
    CHECK(ref_crc64(0, bytes, 9) == 0x995DC9BBDF1939FAull);
}

TEST_CASE("crc32c: RFC 3720 B.4 test patterns") {
    std::uint8_t buf[32];
    std::memset(buf, 0, sizeof buf);
    CHECK(crc32c(0, buf, sizeof buf) == 0x8A9136AAu);
    std::memset(buf, 0xFF, sizeof buf);
    CHECK(crc32c(0, buf, sizeof buf) == 0x62A8AB43u);
    for (int i = 0; i < 32; ++i) buf[i] = static_cast<std::uint8_t>(i);
    CHECK(crc32c(0, buf, sizeof buf) == 0x46DD794Eu);
    for (int i = 0; i < 32; ++i) buf[i] = static_cast<std::uint8_t>(31 - i);
    CHECK(crc32c(0, buf, sizeof buf) == 0x113FDB5Cu);
    // An iSCSI SCSI Read (10) command PDU.
    const std::uint8_t read_pdu[48] = {
        0x01, 0xC0, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
        0x14, 0x00, 0x00, 0x00, 0x00, 0x00, 0x04, 0x00, 0x00, 0x00, 0x00, 0x14, 0x00, 0x00, 0x00, 0x18,
        0x28, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x02, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    };
    CHECK(crc32c(0, read_pdu, sizeof read_pdu) == 0xD9963A56u);
}

TEST_CASE("empty input returns the crc it was given, null pointer allowed") {
    CHECK(crc32c(0, nullptr, 0) == 0);
    CHECK(crc64(0, nullptr, 0) == 0);
    CHECK(crc32c(0xE3069283u, nullptr, 0) == 0xE3069283u);
    CHECK(crc64(0x995DC9BBDF1939FAull, kCheck, 0) == 0x995DC9BBDF1939FAull);
    CHECK(crc32c(0x12345678u, kCheck, 0) == 0x12345678u);
}

TEST_CASE("chained over random splits == one pass") {
    std::mt19937_64 rng(0xC0C0C0C0);
    const std::vector<std::uint8_t> data = random_bytes(rng, 10000);
    const std::uint32_t whole32 = crc32c(0, data.data(), data.size());
    const std::uint64_t whole64 = crc64(0, data.data(), data.size());
    CHECK(crc32c(0, kCheck, 4) != 0);
    CHECK(crc32c(crc32c(0, kCheck, 4), kCheck + 4, 5) == 0xE3069283u);
    CHECK(crc64(crc64(0, kCheck, 4), kCheck + 4, 5) == 0x995DC9BBDF1939FAull);
    for (int round = 0; round < 200; ++round) {
        // A handful of cut points, duplicates allowed (empty pieces).
        std::vector<std::size_t> cuts = {0, data.size()};
        const int pieces = 1 + static_cast<int>(rng() % 12);
        for (int i = 0; i < pieces; ++i) cuts.push_back(rng() % (data.size() + 1));
        std::sort(cuts.begin(), cuts.end());
        std::uint32_t c32 = 0;
        std::uint64_t c64 = 0;
        for (std::size_t i = 0; i + 1 < cuts.size(); ++i) {
            c32 = crc32c(c32, data.data() + cuts[i], cuts[i + 1] - cuts[i]);
            c64 = crc64(c64, data.data() + cuts[i], cuts[i + 1] - cuts[i]);
        }
        REQUIRE(c32 == whole32);
        REQUIRE(c64 == whole64);
    }
    // Byte at a time too.
    std::uint32_t c32 = 0;
    std::uint64_t c64 = 0;
    for (std::uint8_t b : data) {
        c32 = crc32c(c32, &b, 1);
        c64 = crc64(c64, &b, 1);
    }
    CHECK(c32 == whole32);
    CHECK(c64 == whole64);
}

TEST_CASE("misaligned buffers give the same result") {
    std::mt19937_64 rng(0xA11A11);
    const std::vector<std::uint8_t> data = random_bytes(rng, 1500);
    std::vector<std::uint8_t> shifted(data.size() + 64);
    for (std::size_t size : {std::size_t{1}, std::size_t{7}, std::size_t{8}, std::size_t{15}, std::size_t{63},
                             std::size_t{64}, std::size_t{65}, std::size_t{255}, std::size_t{256}, std::size_t{1023},
                             std::size_t{1500}}) {
        const std::uint32_t expected32 = ref_crc32c(0, data.data(), size);
        const std::uint64_t expected64 = ref_crc64(0, data.data(), size);
        for (std::size_t offset = 0; offset < 64; ++offset) {
            CAPTURE(size);
            CAPTURE(offset);
            std::memcpy(shifted.data() + offset, data.data(), size);
            REQUIRE(crc32c(0, shifted.data() + offset, size) == expected32);
            REQUIRE(crc64(0, shifted.data() + offset, size) == expected64);
        }
    }
}

TEST_CASE("random data against the bitwise reference, every length to 1100 and some larger") {
    std::mt19937_64 rng(0x5EEDC4C);
    const std::vector<std::uint8_t> data = random_bytes(rng, 70000);
    std::vector<std::size_t> sizes;
    for (std::size_t n = 0; n <= 1100; ++n) sizes.push_back(n);
    for (std::size_t n : {4095u, 4096u, 4097u, 16384u, 65536u, 70000u}) sizes.push_back(n);
    for (std::size_t size : sizes) {
        CAPTURE(size);
        const std::size_t start = rng() % (data.size() - size + 1);
        const std::uint32_t seed32 = (size % 3 == 0) ? 0u : static_cast<std::uint32_t>(rng());
        const std::uint64_t seed64 = (size % 3 == 0) ? 0u : rng();
        REQUIRE(crc32c(seed32, data.data() + start, size) == ref_crc32c(seed32, data.data() + start, size));
        REQUIRE(crc64(seed64, data.data() + start, size) == ref_crc64(seed64, data.data() + start, size));
    }
}
