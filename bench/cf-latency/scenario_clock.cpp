// clock: what one read of the time costs. Each sample is one bracket (ordered counter reads) around a batch of
// consecutive calls, minus the bracket's own cost, divided by the batch size: the per-call cost with the
// ruler's overhead amortised. The contenders take turns in short rounds so machine noise hits them alike.
#include <ctime>

#include "bench/cf-latency/scenario.hpp"
#include "bench/cf-latency/series.hpp"
#include "platform/os/cycle_counter.hpp"

namespace cf::latency {
namespace {

constexpr int kBatch = 32;
constexpr int kBatchesPerRound = 1000;

template <class Read>
void measure_round(Read read, const TickRuler& ruler, LatencyHistogram& histogram) {
    for (int b = 0; b < kBatchesPerRound; ++b) {
        const std::uint64_t start = platform::read_cycles_ordered();
        for (int i = 0; i < kBatch; ++i) keep(read());
        const std::uint64_t end = platform::read_cycles_end();
        const std::uint64_t ticks = end - start;
        const std::uint64_t net = ticks > ruler.overhead_ticks() ? ticks - ruler.overhead_ticks() : 0;
        histogram.record(ruler.to_picos(net) / kBatch);
    }
}

timespec read_clock(clockid_t id) {
    timespec ts;
    clock_gettime(id, &ts);
    return ts;
}

}  // namespace

ScenarioResult run_clock_scenario(ScenarioContext& context) {
    const TickRuler ruler;
    CounterClock& clock = context.clock;
    LatencyHistogram ours = make_picosecond_histogram();
    LatencyHistogram monotonic = make_picosecond_histogram();
    LatencyHistogram realtime = make_picosecond_histogram();
    LatencyHistogram raw_counter = make_picosecond_histogram();

    context.progress.begin("clock", context.duration_s);
    const Instant start = clock.now();
    const Duration total = Duration::from_femtos(static_cast<Femtos>(context.duration_s * 1e15));
    for (Duration elapsed; elapsed < total; elapsed = clock.now() - start) {
        measure_round([&] { return clock.now(); }, ruler, ours);
        measure_round([] { return read_clock(CLOCK_MONOTONIC); }, ruler, monotonic);
        measure_round([] { return read_clock(CLOCK_REALTIME); }, ruler, realtime);
        measure_round([] { return platform::read_cycles_ordered(); }, ruler, raw_counter);
        context.progress.update(elapsed.to_seconds_f64());
    }
    context.progress.end();

    ScenarioResult result;
    result.scenario = "clock";
    result.description = "cost of one clock read (ns), batches of 32 back-to-back calls timed by the cycle counter";
    result.series.push_back(make_series("cf::CounterClock::now", ours));
    result.series.push_back(make_series("clock_gettime(CLOCK_MONOTONIC)", monotonic));
    result.series.push_back(make_series("clock_gettime(CLOCK_REALTIME)", realtime));
    result.series.push_back(make_series(std::string("raw ") + platform::kCycleCounterName + " (ordered, floor)",
                                        raw_counter));
    result.ratios.push_back(make_ratio("cf::CounterClock::now / clock_gettime(CLOCK_MONOTONIC)", result.series[0],
                                       result.series[1]));
    return result;
}

}  // namespace cf::latency
