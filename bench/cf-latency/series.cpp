#include "bench/cf-latency/series.hpp"

#include <algorithm>
#include <ctime>
#include <vector>

#include "platform/os/cycle_counter.hpp"

namespace cf::latency {

LatencyHistogram make_picosecond_histogram() {
    return LatencyHistogram(LatencyHistogram::Config{1, 3'600'000'000'000'000, 3});
}

Series make_series(const std::string& name, const LatencyHistogram& picoseconds) {
    constexpr double kNanosPerPico = 1e-3;
    const auto ns = [&](double percentile) {
        return static_cast<double>(picoseconds.value_at_percentile(percentile)) * kNanosPerPico;
    };
    Series series;
    series.name = name;
    series.count = picoseconds.count();
    series.min_ns = static_cast<double>(picoseconds.min()) * kNanosPerPico;
    series.mean_ns = picoseconds.mean() * kNanosPerPico;
    series.max_ns = static_cast<double>(picoseconds.max()) * kNanosPerPico;
    series.p50_ns = ns(50);
    series.p90_ns = ns(90);
    series.p99_ns = ns(99);
    series.p999_ns = ns(99.9);
    series.p9999_ns = ns(99.99);
    for (const auto& [percentile, value] : picoseconds.percentile_curve(5)) {
        series.curve.push_back({percentile, static_cast<double>(value) * kNanosPerPico});
    }
    return series;
}

std::string size_label(std::size_t bytes) {
    return bytes >= 1024 ? std::to_string(bytes / 1024) + " KiB" : std::to_string(bytes) + " B";
}

Ratio make_ratio(const std::string& label, const Series& ours, const Series& peer) {
    Ratio ratio;
    ratio.label = label;
    ratio.p50 = peer.p50_ns > 0 ? ours.p50_ns / peer.p50_ns : 0;
    ratio.p99 = peer.p99_ns > 0 ? ours.p99_ns / peer.p99_ns : 0;
    return ratio;
}

namespace {

double monotonic_raw_ps() {
    timespec ts;
    clock_gettime(CLOCK_MONOTONIC_RAW, &ts);
    return static_cast<double>(ts.tv_sec) * 1e12 + static_cast<double>(ts.tv_nsec) * 1e3;
}

}  // namespace

TickRuler::TickRuler() {
    const double start_ps = monotonic_raw_ps();
    const std::uint64_t start_ticks = platform::read_cycles_ordered();
    while (monotonic_raw_ps() - start_ps < 20e9) platform::cpu_relax();   // 20 ms
    const std::uint64_t end_ticks = platform::read_cycles_ordered();
    const double end_ps = monotonic_raw_ps();
    picos_per_tick_ = (end_ps - start_ps) / static_cast<double>(end_ticks - start_ticks);

    // The bracket's own cost: the median of empty brackets.
    std::vector<std::uint64_t> empty(2001);
    for (auto& ticks : empty) {
        const std::uint64_t t0 = platform::read_cycles_ordered();
        ticks = platform::read_cycles_end() - t0;
    }
    std::nth_element(empty.begin(), empty.begin() + 1000, empty.end());
    overhead_ticks_ = empty[1000];
}

}  // namespace cf::latency
