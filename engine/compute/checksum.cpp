#include "engine/compute/checksum.hpp"

#include <isa-l/crc.h>
#include <isa-l/crc64.h>

namespace cf::compute {
namespace {

// crc32_iscsi() takes an int length: feed larger buffers in chunks (a multiple of 64 keeps its folding loop whole).
constexpr std::size_t kIscsiChunk = std::size_t{1} << 30;

}  // namespace

std::uint32_t crc32c(std::uint32_t crc, const void* data, std::size_t size) noexcept {
    // ISA-L never writes through the pointer; its prototype just lacks the const.
    auto* bytes = static_cast<unsigned char*>(const_cast<void*>(data));
    std::uint32_t state = ~crc;
    while (size > 0) {
        const std::size_t chunk = size < kIscsiChunk ? size : kIscsiChunk;
        state = crc32_iscsi(bytes, static_cast<int>(chunk), state);
        bytes += chunk;
        size -= chunk;
    }
    return ~state;
}

std::uint64_t crc64(std::uint64_t crc, const void* data, std::size_t size) noexcept {
    if (size == 0) return crc;
    return crc64_ecma_refl(crc, static_cast<const unsigned char*>(data), size);
}

}  // namespace cf::compute
