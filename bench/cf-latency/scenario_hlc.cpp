// hlc: what one HybridLogicalClock::now costs, alone and with a second thread ticking the same clock (the CAS
// then contends for one cache line). Timed like the clock scenario: batches of calls between counter reads.
#include <atomic>
#include <thread>

#include "bench/cf-latency/scenario.hpp"
#include "bench/cf-latency/series.hpp"
#include "engine/time/hlc.hpp"
#include "platform/cpu/affinity.hpp"
#include "platform/os/cycle_counter.hpp"

namespace cf::latency {
namespace {

constexpr int kBatch = 32;

void measure_until(HybridLogicalClock& hlc, const TickRuler& ruler, const CounterClock& clock, Instant end,
                   LatencyHistogram& histogram, Progress* progress, Instant start) {
    while (clock.now() < end) {
        for (int b = 0; b < 256; ++b) {
            const std::uint64_t t0 = platform::read_cycles_ordered();
            for (int i = 0; i < kBatch; ++i) keep(hlc.now());
            const std::uint64_t ticks = platform::read_cycles_end() - t0;
            const std::uint64_t net = ticks > ruler.overhead_ticks() ? ticks - ruler.overhead_ticks() : 0;
            histogram.record(ruler.to_picos(net) / kBatch);
        }
        if (progress != nullptr) progress->update((clock.now() - start).to_seconds_f64());
    }
}

}  // namespace

ScenarioResult run_hlc_scenario(ScenarioContext& context) {
    const TickRuler ruler;
    CounterClock& clock = context.clock;
    HybridLogicalClock::Config config;
    config.node_id = 1;
    HybridLogicalClock hlc(config);
    (void)hlc.now();  // first use initialises the process clock: keep that out of the samples
    const Duration half = Duration::from_femtos(static_cast<Femtos>(context.duration_s / 2 * 1e15));

    LatencyHistogram alone = make_picosecond_histogram();
    LatencyHistogram shared_first = make_picosecond_histogram();
    LatencyHistogram shared_second = make_picosecond_histogram();
    context.progress.begin("hlc", context.duration_s);
    const Instant start = clock.now();
    measure_until(hlc, ruler, clock, start + half, alone, &context.progress, start);

    // Two threads on one clock: the second on the next available CPU, both started together.
    const Instant shared_start = clock.now() + Duration::from_millis(5);
    const Instant shared_end = shared_start + half;
    const int second_cpu = context.cpus.size() > 1 ? context.cpus[1] : -1;
    std::thread second([&] {
        if (second_cpu >= 0) (void)platform::pin_current_thread(second_cpu);
        while (clock.now() < shared_start) platform::cpu_relax();
        measure_until(hlc, ruler, clock, shared_end, shared_second, nullptr, shared_start);
    });
    while (clock.now() < shared_start) platform::cpu_relax();
    measure_until(hlc, ruler, clock, shared_end, shared_first, &context.progress, start);
    second.join();
    context.progress.end();
    (void)shared_first.merge(shared_second);  // same configuration by construction

    ScenarioResult result;
    result.scenario = "hlc";
    result.description = "cost of one HybridLogicalClock::now (ns), batches of 32; shared: two threads" +
                         std::string(second_cpu >= 0 ? " on two CPUs" : " (only one CPU available)") +
                         " ticking one clock";
    result.series.push_back(make_series("HybridLogicalClock::now (1 thread)", alone));
    result.series.push_back(make_series("HybridLogicalClock::now (2 threads, shared)", shared_first));
    return result;
}

}  // namespace cf::latency
