// The CPU's free-running cycle counter: RDTSC on x86-64, CNTVCT_EL0 on ARM64.
//
// Three reads with different ordering guarantees, because the right one depends on what is measured:
//  - read_cycles():          no ordering. Cheapest; the CPU may execute it before earlier instructions retire.
//  - read_cycles_after_loads(): not before earlier loads have completed (LFENCE;RDTSC / ISB;MRS), so a value
//                            another thread published and this thread loaded is never newer than this read.
//                            Later instructions may still start early. The clock's read.
//  - read_cycles_ordered():  waits until every earlier instruction has completed and keeps later ones from
//                            starting before it (LFENCE;RDTSC;LFENCE / ISB;MRS;ISB). Opens a timed region.
//  - read_cycles_end():      closes a timed region: waits for the measured instructions (RDTSCP, or ISB on ARM)
//                            and fences so later code cannot start early.
// On x86 LFENCE is dispatch-serialising on Intel and on AMD when the OS sets the MSR (Linux does).
#pragma once

#include <cstdint>

#if defined(__x86_64__)
#include <x86intrin.h>
#endif

namespace cf::platform {

#if defined(__x86_64__)
inline constexpr const char* kCycleCounterName = "rdtsc";

inline std::uint64_t read_cycles() noexcept { return __rdtsc(); }

inline std::uint64_t read_cycles_after_loads() noexcept {
    _mm_lfence();
    return __rdtsc();
}

inline std::uint64_t read_cycles_ordered() noexcept {
    _mm_lfence();
    const std::uint64_t ticks = __rdtsc();
    _mm_lfence();
    return ticks;
}

inline std::uint64_t read_cycles_end() noexcept {
    unsigned int aux;
    const std::uint64_t ticks = __rdtscp(&aux);
    _mm_lfence();
    return ticks;
}

inline void cpu_relax() noexcept { _mm_pause(); }

#elif defined(__aarch64__)
inline constexpr const char* kCycleCounterName = "cntvct_el0";

inline std::uint64_t read_cycles() noexcept {
    std::uint64_t ticks;
    asm volatile("mrs %0, cntvct_el0" : "=r"(ticks));
    return ticks;
}

inline std::uint64_t read_cycles_after_loads() noexcept {
    std::uint64_t ticks;
    asm volatile("isb\n\tmrs %0, cntvct_el0" : "=r"(ticks)::"memory");
    return ticks;
}

inline std::uint64_t read_cycles_ordered() noexcept {
    std::uint64_t ticks;
    asm volatile("isb\n\tmrs %0, cntvct_el0\n\tisb" : "=r"(ticks)::"memory");
    return ticks;
}

inline std::uint64_t read_cycles_end() noexcept { return read_cycles_ordered(); }

// CNTFRQ_EL0: the counter's nominal frequency as firmware programmed it (a hint; the clock still calibrates).
inline std::uint64_t counter_frequency_hint_hz() noexcept {
    std::uint64_t hz;
    asm volatile("mrs %0, cntfrq_el0" : "=r"(hz));
    return hz;
}

inline void cpu_relax() noexcept { asm volatile("yield" ::: "memory"); }

#else
#error "ChronoFabric needs x86-64 or ARM64 (a cycle counter it knows how to read)"
#endif

}  // namespace cf::platform
