// hlc: what one stamp costs: from the clock's shared lane (a CAS on one word), alone and with a second thread
// ticking the same word (the CAS then contends for one cache line), and from each thread's own clock lane (plain
// stores, nothing shared), alone and two threads at once. Timed like the clock scenario: batches of calls between
// counter reads.
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

// The shared lane, or the calling thread's own lane.
enum class Lane { shared, own };

void measure_until(HybridLogicalClock& hlc, Lane lane, const TickRuler& ruler, const CounterClock& clock, Instant end,
                   LatencyHistogram& histogram, Progress* progress, Instant start) {
    ClockLane& own = hlc.this_thread_lane();
    while (clock.now() < end) {
        for (int b = 0; b < 256; ++b) {
            const std::uint64_t t0 = platform::read_cycles_ordered();
            if (lane == Lane::shared) {
                for (int i = 0; i < kBatch; ++i) keep(hlc.now());
            } else {
                for (int i = 0; i < kBatch; ++i) keep(own.now());
            }
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
    (void)hlc.this_thread_lane().now();
    const Duration quarter = Duration::from_femtos(static_cast<Femtos>(context.duration_s / 4 * 1e15));
    const int second_cpu = context.cpus.size() > 1 ? context.cpus[1] : -1;
    context.progress.begin("hlc", context.duration_s);
    const Instant start = clock.now();

    // One thread, then two threads started together (the second on the next available CPU), on one lane kind.
    auto measure = [&](Lane lane, LatencyHistogram& alone, LatencyHistogram& both) {
        measure_until(hlc, lane, ruler, clock, clock.now() + quarter, alone, &context.progress, start);
        LatencyHistogram second_thread = make_picosecond_histogram();
        const Instant both_start = clock.now() + Duration::from_millis(5);
        const Instant both_end = both_start + quarter;
        std::thread second([&] {
            if (second_cpu >= 0) (void)platform::pin_current_thread(second_cpu);
            (void)hlc.this_thread_lane().now();
            while (clock.now() < both_start) platform::cpu_relax();
            measure_until(hlc, lane, ruler, clock, both_end, second_thread, nullptr, both_start);
        });
        while (clock.now() < both_start) platform::cpu_relax();
        measure_until(hlc, lane, ruler, clock, both_end, both, &context.progress, start);
        second.join();
        (void)both.merge(second_thread);  // same configuration by construction
    };
    LatencyHistogram shared_alone = make_picosecond_histogram(), shared_both = make_picosecond_histogram();
    LatencyHistogram lane_alone = make_picosecond_histogram(), lane_both = make_picosecond_histogram();
    measure(Lane::shared, shared_alone, shared_both);
    measure(Lane::own, lane_alone, lane_both);
    context.progress.end();

    ScenarioResult result;
    result.scenario = "hlc";
    result.description = "cost of one HLC stamp (ns), batches of 32: the clock's shared lane (CAS) and each thread's "
                         "own lane; 2 threads" +
                         std::string(second_cpu >= 0 ? " on two CPUs" : " (only one CPU available)") +
                         " stamping at once";
    const Series shared_1 = make_series("shared lane (CAS), 1 thread", shared_alone);
    const Series shared_2 = make_series("shared lane (CAS), 2 threads", shared_both);
    const Series own_1 = make_series("own clock lane, 1 thread", lane_alone);
    const Series own_2 = make_series("own clock lane, 2 threads", lane_both);
    result.series = {shared_1, shared_2, own_1, own_2};
    result.ratios.push_back(make_ratio("own lane / shared lane, 1 thread", own_1, shared_1));
    result.ratios.push_back(make_ratio("own lane / shared lane, 2 threads", own_2, shared_2));
    return result;
}

}  // namespace cf::latency
