// Little-endian loads and stores for everything that goes on the wire, whatever the host's byte order.
// Byte by byte, so no alignment is needed; compilers merge these into single loads and stores.
#pragma once

#include <cstddef>

namespace cf::wire {

template <typename T>
inline void store_le(std::byte* out, T value) noexcept {
    for (std::size_t i = 0; i < sizeof(T); ++i) out[i] = static_cast<std::byte>(value >> (8 * i));
}

template <typename T>
inline T load_le(const std::byte* in) noexcept {
    T value = 0;
    for (std::size_t i = 0; i < sizeof(T); ++i) value |= static_cast<T>(static_cast<T>(in[i]) << (8 * i));
    return value;
}

}  // namespace cf::wire
