// The ceilings the compute scenario states its results against, measured on the same machine in the same run:
//  - FMA peak: one core's floating-point throughput in the ISA the dispatcher chose, from many independent FMA
//    chains (enough to cover the FMA latency on every port), counted as 2 FLOP per lane per FMA;
//  - memory bandwidth beyond the last-level cache: a read (sum of every 64-bit word) and a copy (memcpy, read +
//    written bytes counted) over a buffer several times the LLC.
// Both report the best pass: a ceiling is what the machine can do, not what it usually does.
#pragma once

#include <cstddef>
#include <cstdlib>
#include <memory>
#include <string>

#include "platform/cpu/cpu_info.hpp"

namespace cf::latency {

struct FmaPeak {
    double gflops = 0;
    std::string how;        // e.g. "avx512: 16 chains of 8-lane FMA (2 FLOP/lane)"
};

// Runs for about `seconds` (at least a few short passes).
FmaPeak measure_fma_peak(platform::IsaLevel isa, double seconds);

struct Bandwidth {
    double read_gbs = 0;    // bytes read per second / 1e9
    double copy_gbs = 0;    // (bytes read + bytes written) per second / 1e9
    std::size_t bytes = 0;  // the read buffer's size (the copy moves half of it into a second buffer)
};

// Allocates and touches `bytes` plus half of it again, then runs for about `seconds` (at least two passes each).
Bandwidth measure_bandwidth(std::size_t bytes, double seconds);

// The largest data cache the CPU `cpu` (0 if negative) sees, from sysfs; 0 if unknown.
std::size_t last_level_cache_bytes(int cpu);

// 64-byte aligned, uninitialised storage for `count` values (nullptr only if memory is exhausted).
struct FreeDeleter {
    void operator()(void* block) const noexcept { std::free(block); }
};
template <class T>
using AlignedArray = std::unique_ptr<T[], FreeDeleter>;

template <class T>
AlignedArray<T> make_aligned_array(std::size_t count) {
    const std::size_t bytes = (count * sizeof(T) + 63) / 64 * 64;
    return AlignedArray<T>(static_cast<T*>(std::aligned_alloc(64, bytes > 0 ? bytes : 64)));
}

}  // namespace cf::latency
