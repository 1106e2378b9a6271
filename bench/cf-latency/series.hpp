// From measurements to report rows: picosecond histograms, the rdtsc ruler, ratios.
#pragma once

#include <cstdint>
#include <string>

#include "bench/cf-latency/report.hpp"
#include "engine/metrics/latency_histogram.hpp"

namespace cf::latency {

// Picosecond values from 1 ps to 1 hour at 3 significant digits: sub-nanosecond costs keep their precision.
LatencyHistogram make_picosecond_histogram();

// A report row from a picosecond histogram (values converted to nanoseconds).
Series make_series(const std::string& name, const LatencyHistogram& picoseconds);

// "64 B", "1 KiB": message and block sizes in series names.
std::string size_label(std::size_t bytes);

// ours / peer at p50 and p99.
Ratio make_ratio(const std::string& label, const Series& ours, const Series& peer);

// Converts cycle-counter ticks to picoseconds, calibrated on its own against CLOCK_MONOTONIC_RAW so that the
// ruler does not depend on the clock under test. The bracket it measures with costs `overhead_ticks`.
class TickRuler {
public:
    TickRuler();  // ~20 ms of calibration
    std::int64_t to_picos(std::uint64_t ticks) const noexcept {
        return static_cast<std::int64_t>(static_cast<double>(ticks) * picos_per_tick_);
    }
    std::uint64_t overhead_ticks() const noexcept { return overhead_ticks_; }
    double ticks_per_second() const noexcept { return 1e12 / picos_per_tick_; }

private:
    double picos_per_tick_ = 0;
    std::uint64_t overhead_ticks_ = 0;
};

// Keeps a value alive so the compiler cannot drop the call that produced it.
template <class T>
inline void keep(const T& value) noexcept {
    asm volatile("" : : "m"(value) : "memory");
}

}  // namespace cf::latency
