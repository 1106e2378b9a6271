// The harness's results as plain data, and the three ways it prints them.
// Scenarios fill a Report; the writers never measure anything themselves.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace cf::latency {

// One point of a percentile-distribution curve: `percentile` in [0, 100], `value_ns` in nanoseconds.
struct PercentilePoint {
    double percentile;
    double value_ns;
};

// One measured distribution, e.g. "cf::CounterClock::now" inside scenario "clock".
struct Series {
    std::string name;                    // what was measured
    std::string unit = "ns";             // unit of every value below (always nanoseconds for now)
    std::uint64_t count = 0;             // samples recorded
    double min_ns = 0, mean_ns = 0, max_ns = 0;
    double p50_ns = 0, p90_ns = 0, p99_ns = 0, p999_ns = 0, p9999_ns = 0;
    std::vector<PercentilePoint> curve;  // ascending percentiles, HdrHistogram-style iteration, for plots/JSON
};

// ours / peer at the same percentile (below 1.0 means ours is faster).
struct Ratio {
    std::string label;                   // e.g. "cf::CounterClock::now / clock_gettime(MONOTONIC)"
    double p50 = 0, p99 = 0;
};

// A single number that is not a distribution: a throughput, or a ratio of throughputs.
struct Figure {
    std::string label;                   // e.g. "SPSC 64 B: cf::SpscRing"
    double value = 0;
    std::string unit;                    // e.g. "M msg/s", "x"
    // Optional: figures that name the same `table` print as one grid of rows x columns in the text report (the
    // label, value and unit stay the record, in the JSON and the baselines).
    std::string table, row, column;

    Figure() = default;
    Figure(std::string label_, double value_, std::string unit_, std::string table_ = {}, std::string row_ = {},
           std::string column_ = {})
        : label(std::move(label_)), value(value_), unit(std::move(unit_)), table(std::move(table_)),
          row(std::move(row_)), column(std::move(column_)) {}
};

struct ScenarioResult {
    std::string scenario;                // "clock", "timer", "hlc", ...
    std::string description;             // one line saying what a sample is
    std::vector<Series> series;
    std::vector<Ratio> ratios;
    std::vector<Figure> figures;
    std::vector<std::string> notes;      // what could not be measured and why (a peer not built, no second CPU)
};

// Facts that decide whether a host can hold low latency; printed as the report header.
struct HostFacts {
    std::string cpu_model, vendor, isa_level, kernel, governor, isolated_cpus, smt, clocksource;
    std::string compute_isa;             // the ISA whose kernels cf::compute's dispatcher chose (CF_ISA may force it)
    int family = 0, model = 0;
    bool invariant_tsc = false;
    std::string counter;                 // "rdtsc", "cntvct_el0" or "clock_gettime (fallback)"
    double counter_ghz = 0;              // calibrated counter frequency
    int pinned_cpu = -1;                 // -1: not pinned
    double duration_s = 0;               // per scenario
};

struct Report {
    HostFacts host;
    std::vector<ScenarioResult> scenarios;
};

// Human-readable text: host header, then one percentile table per scenario with its ratios.
std::string format_table(const Report& report);
// One JSON document: {"host": {...}, "scenarios": [{"scenario": ..., "series": [...], "ratios": [...]}]}.
std::string format_json(const Report& report);
// Percentile-distribution plot as standalone SVG, one line per series of every scenario:
// x axis log-scaled in 1/(1-p) like HdrHistogram plots (ticks 0%, 90%, 99%, 99.9%, ...), y axis log-scaled ns.
std::string format_svg(const Report& report);

}  // namespace cf::latency
