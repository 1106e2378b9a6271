// timer: how late a deadline loop wakes up, the measure cyclictest reports. A periodic loop sets absolute
// deadlines `interval` apart; each sample is (time observed on waking) - (deadline). Two ways to wait:
//  - busy-poll: spin on cf::CounterClock::now until the deadline passes (what a pinned shard does);
//  - clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME): the kernel timer, as cyclictest measures it.
#include <cerrno>
#include <ctime>

#include "bench/cf-latency/scenario.hpp"
#include "bench/cf-latency/series.hpp"
#include "platform/os/cycle_counter.hpp"

namespace cf::latency {
namespace {

// The deadline sequence both loops share: record how late a wake-up was, move to the next deadline, and skip
// the ones the wake-up already passed (counted) so one stall is one sample.
struct Deadlines {
    Instant next;
    Duration interval;
    std::uint64_t overruns = 0;

    void woke(Instant when, LatencyHistogram& histogram) {
        histogram.record((when - next).femtos() / 1000);
        next += interval;
        while (next <= when) {
            next += interval;
            ++overruns;
        }
    }
};

std::uint64_t busy_poll_loop(ScenarioContext& context, Duration interval, double seconds, LatencyHistogram& histogram,
                             double progress_offset_s) {
    CounterClock& clock = context.clock;
    const Instant start = clock.now();
    const Instant end = start + Duration::from_femtos(static_cast<Femtos>(seconds * 1e15));
    Deadlines deadlines{start + interval, interval};
    while (deadlines.next < end) {
        Instant woke = clock.now();
        while (woke < deadlines.next) {
            platform::cpu_relax();
            woke = clock.now();
        }
        deadlines.woke(woke, histogram);
        context.progress.update(progress_offset_s + (woke - start).to_seconds_f64());
    }
    return deadlines.overruns;
}

std::uint64_t nanosleep_loop(ScenarioContext& context, Duration interval, double seconds, LatencyHistogram& histogram,
                             double progress_offset_s) {
    timespec now_ts;
    clock_gettime(CLOCK_MONOTONIC, &now_ts);
    const Instant start = Instant::from_timespec(now_ts);
    const Instant end = start + Duration::from_femtos(static_cast<Femtos>(seconds * 1e15));
    Deadlines deadlines{start + interval, interval};
    while (deadlines.next < end) {
        const timespec deadline_ts = deadlines.next.to_timespec();
        while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &deadline_ts, nullptr) == EINTR) {
        }
        clock_gettime(CLOCK_MONOTONIC, &now_ts);
        const Instant woke = Instant::from_timespec(now_ts);
        deadlines.woke(woke, histogram);
        context.progress.update(progress_offset_s + (woke - start).to_seconds_f64());
    }
    return deadlines.overruns;
}

}  // namespace

ScenarioResult run_timer_scenario(ScenarioContext& context) {
    const Duration interval = Duration::from_micros(context.timer_interval_us);
    const double half = context.duration_s / 2;
    LatencyHistogram busy = make_picosecond_histogram();
    LatencyHistogram sleeping = make_picosecond_histogram();

    context.progress.begin("timer", context.duration_s);
    const std::uint64_t busy_overruns = busy_poll_loop(context, interval, half, busy, 0);
    const std::uint64_t sleep_overruns = nanosleep_loop(context, interval, half, sleeping, half);
    context.progress.end();

    ScenarioResult result;
    result.scenario = "timer";
    result.description = "wake-up latency (ns) after each deadline of a " + std::to_string(context.timer_interval_us) +
                         " us periodic loop; overruns skipped: busy-poll " + std::to_string(busy_overruns) +
                         ", clock_nanosleep " + std::to_string(sleep_overruns);
    result.series.push_back(make_series("busy-poll on cf::CounterClock", busy));
    result.series.push_back(make_series("clock_nanosleep(TIMER_ABSTIME)", sleeping));
    result.ratios.push_back(make_ratio("busy-poll / clock_nanosleep", result.series[0], result.series[1]));
    return result;
}

}  // namespace cf::latency
