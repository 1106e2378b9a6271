// Arrays of records that their owner writes before it reads them (output lists, a ring's free slots, per-packet
// records emptied before a packet uses them): malloc'd and left uninitialised, so that making a connection does
// not write the megabyte of records a fast path needs in flight, nor fault in pages it may never touch.
// Only for aggregates (implicit-lifetime types: malloc's memory holds them) that need no destructor.
#pragma once

#include <cstddef>
#include <cstdlib>
#include <memory>
#include <type_traits>

namespace cf::quic {

struct FreeMemory {
    void operator()(void* memory) const noexcept { std::free(memory); }
};

template <class T>
using UninitializedArray = std::unique_ptr<T[], FreeMemory>;

// nullptr when out of memory.
template <class T>
UninitializedArray<T> allocate_uninitialized(std::size_t count) noexcept {
    static_assert(std::is_aggregate_v<T> && std::is_trivially_destructible_v<T>);
    return UninitializedArray<T>(static_cast<T*>(std::malloc(count * sizeof(T))));
}

}  // namespace cf::quic
