// timer: how late a deadline loop wakes up, the measure cyclictest reports. A periodic loop sets absolute
// deadlines `interval` apart; each sample is (time observed on waking) - (deadline). Two ways to wait:
//  - busy-poll: spin on cf::CounterClock::now until the deadline passes (what a pinned shard does);
//  - clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME): the kernel timer, as cyclictest measures it.
// A deadline the loop overran is skipped (counted in the description), so one stall is one sample.
#include <cerrno>
#include <ctime>

#include "bench/cf-latency/scenario.hpp"
#include "bench/cf-latency/series.hpp"
#include "platform/os/cycle_counter.hpp"

namespace cf::latency {
namespace {

struct LoopStats {
    std::uint64_t overruns = 0;
};

LoopStats busy_poll_loop(ScenarioContext& context, Duration interval, double seconds, LatencyHistogram& histogram,
                         double progress_offset_s) {
    CounterClock& clock = context.clock;
    LoopStats stats;
    const Instant start = clock.now();
    const Instant end = start + Duration::from_femtos(static_cast<Femtos>(seconds * 1e15));
    Instant deadline = start + interval;
    while (deadline < end) {
        Instant woke = clock.now();
        while (woke < deadline) {
            platform::cpu_relax();
            woke = clock.now();
        }
        histogram.record((woke - deadline).femtos() / 1000);
        deadline += interval;
        while (deadline <= woke) {
            deadline += interval;
            ++stats.overruns;
        }
        context.progress.update(progress_offset_s + (woke - start).to_seconds_f64());
    }
    return stats;
}

LoopStats nanosleep_loop(ScenarioContext& context, Duration interval, double seconds, LatencyHistogram& histogram,
                         double progress_offset_s) {
    LoopStats stats;
    timespec now_ts;
    clock_gettime(CLOCK_MONOTONIC, &now_ts);
    const Instant start = Instant::from_timespec(now_ts);
    const Instant end = start + Duration::from_femtos(static_cast<Femtos>(seconds * 1e15));
    Instant deadline = start + interval;
    while (deadline < end) {
        const timespec deadline_ts = deadline.to_timespec();
        while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &deadline_ts, nullptr) == EINTR) {
        }
        clock_gettime(CLOCK_MONOTONIC, &now_ts);
        const Instant woke = Instant::from_timespec(now_ts);
        histogram.record((woke - deadline).femtos() / 1000);
        deadline += interval;
        while (deadline <= woke) {
            deadline += interval;
            ++stats.overruns;
        }
        context.progress.update(progress_offset_s + (woke - start).to_seconds_f64());
    }
    return stats;
}

}  // namespace

ScenarioResult run_timer_scenario(ScenarioContext& context) {
    const Duration interval = Duration::from_micros(context.timer_interval_us);
    const double half = context.duration_s / 2;
    LatencyHistogram busy = make_picosecond_histogram();
    LatencyHistogram sleeping = make_picosecond_histogram();

    context.progress.begin("timer", context.duration_s);
    const LoopStats busy_stats = busy_poll_loop(context, interval, half, busy, 0);
    const LoopStats sleep_stats = nanosleep_loop(context, interval, half, sleeping, half);
    context.progress.end();

    ScenarioResult result;
    result.scenario = "timer";
    result.description = "wake-up latency (ns) after each deadline of a " + std::to_string(context.timer_interval_us) +
                         " us periodic loop; overruns skipped: busy-poll " + std::to_string(busy_stats.overruns) +
                         ", clock_nanosleep " + std::to_string(sleep_stats.overruns);
    result.series.push_back(make_series("busy-poll on cf::CounterClock", busy));
    result.series.push_back(make_series("clock_nanosleep(TIMER_ABSTIME)", sleeping));
    result.ratios.push_back(make_ratio("busy-poll / clock_nanosleep", result.series[0], result.series[1]));
    return result;
}

}  // namespace cf::latency
