// CLOCK_MONOTONIC in nanoseconds: the same clock in every process of the host, so one process can compare
// another's timestamps with its own (heartbeats, stall timeouts). A vDSO call, not a system call, but not
// free either: for housekeeping and timeouts, not per message (cf::CounterClock is the hot path's clock).
#pragma once

#include <cstdint>
#include <ctime>

namespace cf::platform {

inline std::uint64_t monotonic_ns() noexcept {
    timespec ts{};
    ::clock_gettime(CLOCK_MONOTONIC, &ts);
    return static_cast<std::uint64_t>(ts.tv_sec) * 1'000'000'000u + static_cast<std::uint64_t>(ts.tv_nsec);
}

}  // namespace cf::platform
