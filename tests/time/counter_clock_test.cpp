// CounterClock: calibrated, steered, and never backwards, also across threads and recalibrations.
#include <doctest/doctest.h>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <thread>
#include <vector>

#include "engine/time/counter_clock.hpp"
#include "platform/cpu/cpu_info.hpp"
#include "platform/os/last_error.hpp"

using cf::CounterClock;
using cf::Duration;
using cf::Instant;

namespace {

Instant read_clock(clockid_t id) {
    timespec ts{};
    clock_gettime(id, &ts);
    return Instant::from_timespec(ts);
}

// A reference that is the real CLOCK_REALTIME shifted by an offset the test changes.
struct ShiftedReference {
    std::atomic<std::int64_t> offset_ns{0};
    static Instant read(void* context) {
        auto* self = static_cast<ShiftedReference*>(context);
        return read_clock(CLOCK_REALTIME) + Duration::from_nanos(self->offset_ns.load());
    }
    // A clock configuration steered to this reference.
    CounterClock::Config config() {
        CounterClock::Config config;
        config.reference = &ShiftedReference::read;
        config.reference_context = this;
        return config;
    }
};

// Rate of `clock` against CLOCK_MONOTONIC_RAW over `span`, both read back to back at each end.
double measured_rate(const CounterClock& clock, Duration span) {
    const Instant raw0 = read_clock(CLOCK_MONOTONIC_RAW);
    const Instant ours0 = clock.now();
    while (read_clock(CLOCK_MONOTONIC_RAW) - raw0 < span) {
    }
    const Instant raw1 = read_clock(CLOCK_MONOTONIC_RAW);
    const Instant ours1 = clock.now();
    return (ours1 - ours0).to_seconds_f64() / (raw1 - raw0).to_seconds_f64();
}

void check_bracketed_by_realtime(const CounterClock& clock, Duration slack) {
    const Instant before = read_clock(CLOCK_REALTIME);
    const Instant ours = clock.now();
    const Instant after = read_clock(CLOCK_REALTIME);
    CHECK(ours >= before - slack);
    CHECK(ours <= after + slack);
}

}  // namespace

TEST_CASE("default config calibrates against the system clock") {
    CounterClock clock;
    REQUIRE(clock.init(CounterClock::Config{}) == 0);
    CHECK(clock.uses_cycle_counter() == cf::platform::cpu_info().invariant_counter);
    // Offset right after calibration: within the bracket of two CLOCK_REALTIME reads (1 ms of slack for the
    // rate error and the sample brackets, far above what they are, far below a wrong epoch or unit).
    check_bracketed_by_realtime(clock, Duration::from_millis(1));
    CHECK(clock.stats().counter_hz > 1e6);
    // ticks_to_duration agrees with elapsed time on the clock itself.
    const std::uint64_t t0 = clock.read_ticks();
    const Instant c0 = clock.now();
    while (clock.now() - c0 < Duration::from_millis(5)) {
    }
    const Duration by_ticks = clock.ticks_to_duration(clock.read_ticks() - t0);
    CHECK(by_ticks.to_seconds_f64() == doctest::Approx(0.005).epsilon(0.2));
}

TEST_CASE("the clock_gettime fallback follows the same contract") {
    CounterClock clock;
    CounterClock::Config config;
    config.source = cf::CounterSource::clock_gettime;
    REQUIRE(clock.init(config) == 0);
    CHECK_FALSE(clock.uses_cycle_counter());
    check_bracketed_by_realtime(clock, Duration::from_millis(1));
    Instant previous = clock.now();
    for (int i = 0; i < 200'000; ++i) {
        const Instant current = clock.now();
        REQUIRE(current >= previous);
        previous = current;
    }
}

TEST_CASE("TAI timescale tracks CLOCK_TAI") {
    CounterClock clock;
    CounterClock::Config config;
    config.timescale = cf::Timescale::tai;
    REQUIRE(clock.init(config) == 0);
    const Instant before = read_clock(CLOCK_TAI);
    const Instant ours = clock.now();
    const Instant after = read_clock(CLOCK_TAI);
    CHECK(ours >= before - Duration::from_millis(1));
    CHECK(ours <= after + Duration::from_millis(1));
}

TEST_CASE("bad configuration is refused with a reason") {
    CounterClock clock;
    CounterClock::Config config;
    config.calibration_window = Duration::zero();
    CHECK(clock.init(config) == -EINVAL);
    CHECK(std::strstr(cf::platform::last_error_message(), "calibration_window") != nullptr);
    config = {};
    config.max_slew_ppm = 1'000'000;
    CHECK(clock.init(config) == -EINVAL);
    CHECK(std::strstr(cf::platform::last_error_message(), "max_slew_ppm") != nullptr);
    config = {};
    config.step_threshold = Duration::from_nanos(-1);
    CHECK(clock.init(config) == -EINVAL);
    // The refused clock still reads a monotonic time.
    const Instant a = clock.now();
    CHECK(clock.now() >= a);
}

TEST_CASE("behind the reference by more than the threshold: steps forward") {
    ShiftedReference reference;
    CounterClock clock;
    CounterClock::Config config = reference.config();
    REQUIRE(clock.init(config) == 0);
    const Instant before = clock.now();
    reference.offset_ns = 10'000'000'000;  // the reference jumps 10 s ahead
    REQUIRE(clock.recalibrate() == 0);
    const Instant after = clock.now();
    CHECK(after - before >= Duration::from_seconds(10));
    CHECK(after - before < Duration::from_seconds(11));
    CHECK(clock.stats().forward_steps == 1);
    CHECK(clock.stats().recalibrations == 1);
    CHECK(clock.stats().last_offset_error > Duration::from_millis(9'999));
}

TEST_CASE("ahead of the reference: slews back at the configured rate, never steps back") {
    ShiftedReference reference;
    CounterClock clock;
    CounterClock::Config config = reference.config();
    config.max_slew_ppm = 50'000;                       // 5 %: large enough to measure on a noisy machine
    config.slew_window = Duration::from_millis(100);
    REQUIRE(clock.init(config) == 0);
    reference.offset_ns = -1'000'000'000;             // the reference is 1 s behind us
    const Instant before = clock.now();
    REQUIRE(clock.recalibrate() == 0);
    CHECK(clock.now() >= before);
    CHECK(clock.stats().forward_steps == 0);
    CHECK(clock.stats().last_offset_error < Duration::from_millis(-999));
    // Inside the window the clock runs 5 % slow; after it, at the measured rate again.
    CHECK(measured_rate(clock, Duration::from_millis(40)) == doctest::Approx(0.95).epsilon(0.01));
    while (clock.now() - before < Duration::from_millis(150)) {
    }
    CHECK(measured_rate(clock, Duration::from_millis(40)) == doctest::Approx(1.0).epsilon(0.01));
}

TEST_CASE("a small error is removed within one slew window") {
    ShiftedReference reference;
    CounterClock clock;
    CounterClock::Config config = reference.config();
    config.slew_window = Duration::from_millis(50);
    config.max_slew_ppm = 10'000;                        // up to 0.5 ms per 50 ms window
    REQUIRE(clock.init(config) == 0);
    reference.offset_ns = 200'000;                      // 200 us ahead of us: below the step threshold
    REQUIRE(clock.recalibrate() == 0);
    CHECK(clock.stats().forward_steps == 0);
    const Instant start = clock.now();
    while (clock.now() - start < Duration::from_millis(80)) {
    }
    // Now ours should read the shifted reference again: the residual error is far below the 200 us we started at.
    const Instant ref_before = ShiftedReference::read(&reference);
    const Instant ours = clock.now();
    const Instant ref_after = ShiftedReference::read(&reference);
    CHECK(ours >= ref_before - Duration::from_micros(50));
    CHECK(ours <= ref_after + Duration::from_micros(50));
}

TEST_CASE("each recalibration continues the old line exactly at its anchor") {
    ShiftedReference reference;
    CounterClock clock;
    CounterClock::Config config = reference.config();
    config.max_slew_ppm = 500;
    REQUIRE(clock.init(config) == 0);
    // behind a little (steeper new line), ahead (shallower: raised over the reorder window), far behind (step)
    for (const std::int64_t offset_ns : {200'000, -300'000, 0, -5'000'000, 40'000'000}) {
        CAPTURE(offset_ns);
        reference.offset_ns = offset_ns;
        const CounterClock::Line before = clock.line();
        REQUIRE(clock.recalibrate() == 0);
        const CounterClock::Line after = clock.line();
        const std::uint64_t anchor = after.base_ticks;
        REQUIRE(anchor > before.base_ticks);
        const Duration jump = after.at(anchor) - before.at(anchor);
        const auto stats = clock.stats();
        if (stats.last_offset_error > Duration::from_millis(1)) {
            CHECK(jump >= stats.last_offset_error);                   // stepped forward by the error...
            CHECK(jump <= stats.last_offset_error + Duration::from_nanos(2));
        } else if (after.slewed_mult >= std::max(before.slewed_mult, before.mult)) {
            CHECK(jump == Duration::zero());                          // continuous to the femtosecond
        } else {
            CHECK(jump > Duration::zero());                           // raised, by at most ~1 ns at 500 ppm
            CHECK(jump <= Duration::from_nanos(2));
        }
        // Across the reorder window (2 us at the rate this recalibration measured, which is how the clock sizes
        // it: under qemu the rate moves by percents between recalibrations) the new line is never below the old.
        const std::uint64_t window_ticks = (std::uint64_t{2'000'000'000} << 32) / after.mult;   // fits: < 2^63
        for (std::uint64_t t = anchor; t <= anchor + window_ticks; t += 1 + window_ticks / 128) {
            REQUIRE(after.at(t) >= before.at(t));
        }
        // And it is the line now() reads.
        CHECK(clock.now() >= after.at(anchor));
    }
}

TEST_CASE("never backwards across threads while recalibrations slew and step") {
    ShiftedReference reference;
    CounterClock clock;
    CounterClock::Config config = reference.config();
    config.slew_window = Duration::from_millis(2);
    config.max_slew_ppm = 100'000;
    REQUIRE(clock.init(config) == 0);

    // Every reader publishes its reading; a later read by any thread must not be below a published one.
    // Published as femtoseconds since `base` so it fits one 64-bit atomic (exact for ~2.5 hours).
    const Instant base = clock.now();
    std::atomic<std::int64_t> published_high{0};
    std::atomic<bool> stop{false};
    std::atomic<std::uint64_t> violations{0}, reads{0};
    auto reader = [&] {
        Instant own_previous = clock.now();
        std::uint64_t local_reads = 0;
        while (!stop.load(std::memory_order_relaxed)) {
            const std::int64_t seen = published_high.load(std::memory_order_acquire);
            const Instant current = clock.now();
            const auto since_base = static_cast<std::int64_t>((current - base).femtos());
            if (current < own_previous || since_base < seen) violations.fetch_add(1);
            own_previous = current;
            std::int64_t expected = seen;
            while (since_base > expected &&
                   !published_high.compare_exchange_weak(expected, since_base, std::memory_order_release)) {
            }
            ++local_reads;
        }
        reads.fetch_add(local_reads);
    };
    std::thread first(reader), second(reader);
    const std::int64_t offsets_ns[] = {300'000, -300'000, 5'000'000, -2'000'000, 0, 1'500'000, -900'000};
    int recalibrations = 0;
    for (int round = 0; round < 400; ++round) {
        reference.offset_ns = offsets_ns[round % 7] * (round % 3 == 0 ? 1 : -1);
        if (clock.recalibrate() == 0) ++recalibrations;
        std::this_thread::sleep_for(std::chrono::microseconds(200));
    }
    stop = true;
    first.join();
    second.join();
    CHECK(recalibrations == 400);
    CHECK(clock.stats().forward_steps > 0);
    CHECK(reads.load() > 1000);
    CHECK(violations.load() == 0);
}

TEST_CASE("concurrent recalibration is refused, not raced") {
    CounterClock clock;
    REQUIRE(clock.init(CounterClock::Config{}) == 0);
    std::atomic<int> busy{0}, done{0};
    auto worker = [&] {
        for (int i = 0; i < 2000; ++i) {
            const int status = clock.recalibrate();
            if (status == -EBUSY) busy.fetch_add(1);
            else if (status == 0) done.fetch_add(1);
        }
    };
    std::thread a(worker), b(worker);
    a.join();
    b.join();
    CHECK(busy.load() + done.load() == 4000);
    CHECK(clock.stats().recalibrations == static_cast<std::uint64_t>(done.load()));
}

TEST_CASE("the process clock is initialised on first use") {
    const Instant a = cf::default_clock().now();
    const Instant b = cf::default_clock().now();
    CHECK(b >= a);
    CHECK(a > Instant::from_unix_nanos(1'600'000'000'000'000'000));  // after 2020: calibrated to the epoch
}
