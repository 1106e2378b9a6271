// Helpers shared by the SPSC, MPSC and broadcast ring tests: heap and shared-memory blocks to put rings in, a
// formatted ring in its own block, and whole-slot payload patterns that show any byte that differs.
#pragma once

#include <doctest/doctest.h>

#include <sys/mman.h>
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <string>

#include "engine/bus/ring_layout.hpp"
#include "platform/os/last_error.hpp"

namespace cf::test {

// A 64-byte aligned heap block.
struct Block {
    explicit Block(std::size_t size)
        : bytes(size), data(static_cast<std::byte*>(std::aligned_alloc(64, (size + 63) / 64 * 64))) {}
    ~Block() { std::free(data); }
    Block(const Block&) = delete;
    Block& operator=(const Block&) = delete;
    std::size_t bytes;
    std::byte* data;
};

// One shared-memory object mapped twice: two addresses for the same bytes, as two processes would see them.
struct DoubleMapping {
    explicit DoubleMapping(std::size_t size) : bytes(size) {
        fd = memfd_create("cf-ring-test", 0);
        REQUIRE(fd >= 0);
        REQUIRE(ftruncate(fd, static_cast<off_t>(bytes)) == 0);
        first = mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
        second = mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
        REQUIRE(first != MAP_FAILED);
        REQUIRE(second != MAP_FAILED);
    }
    ~DoubleMapping() {
        munmap(first, bytes);
        munmap(second, bytes);
        close(fd);
    }
    DoubleMapping(const DoubleMapping&) = delete;
    DoubleMapping& operator=(const DoubleMapping&) = delete;
    std::size_t bytes;
    int fd = -1;
    void* first = nullptr;
    void* second = nullptr;
};

// A `Ring` (SpscRing or MpscRing) formatted in its own heap block, with one view attached.
template <class Ring>
struct FormattedRing {
    explicit FormattedRing(const cf::bus::RingGeometry& geometry) : block(Ring::bytes_needed(geometry)) {
        REQUIRE(Ring::format(block.data, block.bytes, geometry) == 0);
        REQUIRE(Ring::attach(block.data, block.bytes, ring) == 0);
    }
    Block block;
    Ring ring;
};

// Byte `i` of the pattern for message `value`.
inline std::uint8_t pattern_byte(std::uint64_t value, std::size_t i) {
    const std::uint64_t x = (value + 1) * 0x9E3779B97F4A7C15ull + (i + 1) * 0xBF58476D1CE4E5B9ull;
    return static_cast<std::uint8_t>((x ^ (x >> 29)) >> 24);
}

// Payload: the value in the first 8 bytes (when they fit), a pattern derived from it in the rest.
inline void fill_pattern(std::byte* payload, std::size_t bytes, std::uint64_t value) {
    std::size_t i = 0;
    if (bytes >= 8) {
        std::memcpy(payload, &value, 8);
        i = 8;
    }
    for (; i < bytes; ++i) payload[i] = static_cast<std::byte>(pattern_byte(value, i));
}

// Whether `payload` holds exactly what fill_pattern(payload, bytes, value) wrote.
inline bool check_pattern(const std::byte* payload, std::size_t bytes, std::uint64_t value) {
    std::size_t i = 0;
    if (bytes >= 8) {
        std::uint64_t stored;
        std::memcpy(&stored, payload, 8);
        if (stored != value) return false;
        i = 8;
    }
    for (; i < bytes; ++i) {
        if (payload[i] != static_cast<std::byte>(pattern_byte(value, i))) return false;
    }
    return true;
}

// The value fill_pattern stored in the first 8 bytes of a payload.
inline std::uint64_t value_of(const std::byte* payload) {
    std::uint64_t value;
    std::memcpy(&value, payload, 8);
    return value;
}

// The calling thread's last error message from the library, as a string to search.
inline std::string last_error() { return cf::platform::last_error_message(); }

}  // namespace cf::test
