#include "engine/time/counter_clock.hpp"

#include <algorithm>
#include <cerrno>
#include <ctime>

#include "platform/cpu/cpu_info.hpp"
#include "platform/os/last_error.hpp"

namespace cf {
namespace {

__extension__ using U128 = unsigned __int128;

constexpr std::uint64_t kOneFemtoPerTick = std::uint64_t{1} << 32;   // mult for "1 fs per tick"
constexpr Femtos kFemtosPerNano = 1'000'000;
constexpr int kSampleTries = 9;
// Bound on how far past its last sequence load a reader's counter read can execute (out-of-order window:
// hundreds of cycles at most; interrupts are serialising). Generous on purpose.
constexpr Femtos kReorderWindowFs = 2'000'000'000;  // 2 us

Femtos clock_femtos(clockid_t clock) noexcept {
    timespec ts{};
    clock_gettime(clock, &ts);
    return Femtos{ts.tv_sec} * 1'000'000'000'000'000 + Femtos{ts.tv_nsec} * kFemtosPerNano;
}

// mult adjusted by `error` over `window` (both fs), limited to +-max_ppm. Positive error: run faster.
std::uint64_t slewed(std::uint64_t mult, Femtos error, Femtos window, std::int64_t max_ppm) noexcept {
    const Femtos limit = static_cast<Femtos>(mult) * max_ppm / 1'000'000;
    // Beyond one window of error the limit applies anyway; clamping first keeps mult * error inside 128 bits.
    if (error > window) error = window;
    if (error < -window) error = -window;
    Femtos adjust = window > 0 ? static_cast<Femtos>(mult) * error / window : 0;
    if (adjust > limit) adjust = limit;
    if (adjust < -limit) adjust = -limit;
    return static_cast<std::uint64_t>(static_cast<Femtos>(mult) + adjust);
}

}  // namespace

CounterClock::CounterClock() noexcept {
    // Until init(): MONOTONIC_RAW nanoseconds as ticks, one nanosecond per tick, epoch offset zero.
    store_line(Line{0, 0, kOneFemtoPerTick * 1'000'000, 0, kOneFemtoPerTick * 1'000'000});
}

std::uint64_t CounterClock::read_monotonic_raw_ns() noexcept {
    timespec ts{};
    clock_gettime(CLOCK_MONOTONIC_RAW, &ts);
    // The vDSO read is not ordered against our sequence loads; fence it like the LFENCE-wrapped counter.
    std::atomic_thread_fence(std::memory_order_seq_cst);
    return static_cast<std::uint64_t>(ts.tv_sec) * 1'000'000'000u + static_cast<std::uint64_t>(ts.tv_nsec);
}

Instant CounterClock::read_reference() const noexcept {
    if (config_.reference != nullptr) return config_.reference(config_.reference_context);
    return Instant::from_femtos(clock_femtos(config_.timescale == Timescale::tai ? CLOCK_TAI : CLOCK_REALTIME));
}

// The reference is read between two counter reads; the pair with the narrowest bracket is the one where the
// reference read was least disturbed (no interrupt, no preemption), and its midpoint is the best tick estimate.
CounterClock::Sample CounterClock::sample_monotonic_raw() const noexcept {
    Sample best{0, 0};
    std::uint64_t best_width = UINT64_MAX;
    for (int i = 0; i < kSampleTries; ++i) {
        const std::uint64_t before = read_ticks();
        const Femtos time = clock_femtos(CLOCK_MONOTONIC_RAW);
        const std::uint64_t after = read_ticks();
        if (after >= before && after - before < best_width) {
            best_width = after - before;
            best = {before + (after - before) / 2, time};
        }
    }
    return best;
}

CounterClock::Sample CounterClock::sample_reference() const noexcept {
    Sample best{0, 0};
    std::uint64_t best_width = UINT64_MAX;
    for (int i = 0; i < kSampleTries; ++i) {
        const std::uint64_t before = read_ticks();
        const Femtos time = read_reference().femtos();
        const std::uint64_t after = read_ticks();
        if (after >= before && after - before < best_width) {
            best_width = after - before;
            best = {before + (after - before) / 2, time};
        }
    }
    return best;
}

std::uint64_t CounterClock::rate_between(const Sample& first, const Sample& last) noexcept {
    if (last.ticks <= first.ticks || last.time_fs <= first.time_fs) return 0;
    const U128 elapsed_fs = static_cast<U128>(last.time_fs - first.time_fs);
    const U128 mult = (elapsed_fs << 32) / (last.ticks - first.ticks);
    return mult > UINT64_MAX ? 0 : static_cast<std::uint64_t>(mult);
}

void CounterClock::store_line(const Line& line) noexcept {
    base_ticks_.store(line.base_ticks, std::memory_order_relaxed);
    base_fs_low_.store(static_cast<std::uint64_t>(static_cast<U128>(line.base_fs)), std::memory_order_relaxed);
    base_fs_high_.store(static_cast<std::uint64_t>(static_cast<U128>(line.base_fs) >> 64), std::memory_order_relaxed);
    slewed_mult_.store(line.slewed_mult, std::memory_order_relaxed);
    slew_ticks_.store(line.slew_ticks, std::memory_order_relaxed);
    mult_.store(line.mult, std::memory_order_relaxed);
}

int CounterClock::init(const Config& config) noexcept {
    if (config.calibration_window <= Duration::zero() || config.slew_window <= Duration::zero()) {
        return platform::fail(EINVAL, "clock: calibration_window and slew_window must be positive");
    }
    if (config.max_slew_ppm < 0 || config.max_slew_ppm > 100'000) {
        return platform::fail(EINVAL, "clock: max_slew_ppm must be within 0..100000 (got %lld)",
                              static_cast<long long>(config.max_slew_ppm));
    }
    if (config.step_threshold < Duration::zero()) return platform::fail(EINVAL, "clock: step_threshold is negative");
    timespec probe{};
    if (config.timescale == Timescale::tai && clock_gettime(CLOCK_TAI, &probe) != 0) {
        return platform::fail(ENOTSUP, "clock: this kernel has no CLOCK_TAI");
    }
    const bool invariant = platform::cpu_info().invariant_counter;
    if (config.source == CounterSource::cycle_counter && !invariant) {
        return platform::fail(ENOTSUP,
                              "clock: the cycle counter (%s) is not invariant on this CPU, so it cannot be a clock; "
                              "use CounterSource::automatic or clock_gettime",
                              platform::kCycleCounterName);
    }
    config_ = config;
    uses_cycle_counter_ = config.source == CounterSource::cycle_counter ||
                          (config.source == CounterSource::automatic && invariant);

    // Rate: two MONOTONIC_RAW samples a calibration window apart (busy-waited: sleeping would let the CPU
    // change state in between, and this runs once at start-up).
    rate_origin_ = sample_monotonic_raw();
    const Femtos until = rate_origin_.time_fs + config.calibration_window.femtos();
    while (clock_femtos(CLOCK_MONOTONIC_RAW) < until) platform::cpu_relax();
    const std::uint64_t mult = rate_between(rate_origin_, sample_monotonic_raw());
    if (mult == 0) {
        uses_cycle_counter_ = false;  // keep the clock_gettime line the constructor set up
        return platform::fail(EIO, "clock: the counter did not advance during calibration");
    }

    const Sample reference = sample_reference();
    store_line(Line{reference.ticks, reference.time_fs, mult, 0, mult});
    recalibrations_.store(0, std::memory_order_relaxed);
    forward_steps_.store(0, std::memory_order_relaxed);
    last_error_fs_high_.store(0, std::memory_order_relaxed);
    last_error_fs_low_.store(0, std::memory_order_relaxed);
    sequence_.store(0, std::memory_order_release);
    return 0;
}

int CounterClock::recalibrate() noexcept {
    if (recalibrating_.exchange(true, std::memory_order_acquire)) {
        return platform::fail(EBUSY, "clock: another thread is recalibrating");
    }
    // Rate over the whole baseline since init(): the bracket error shrinks as the baseline grows.
    std::uint64_t mult = rate_between(rate_origin_, sample_monotonic_raw());
    const Line old_line = load_line();
    if (mult == 0) mult = old_line.mult;
    const Sample reference = sample_reference();
    const Femtos error = reference.time_fs - old_line.at(reference.ticks).femtos();

    // Make the sequence odd and only then read the anchor tick (MFENCE before the ordered read): any reader that
    // still validates against the old line read its tick before this point, so old(t) <= old(anchor) = new(anchor).
    const std::uint32_t sequence = sequence_.load(std::memory_order_relaxed);
    sequence_.store(sequence + 1, std::memory_order_relaxed);
    std::atomic_thread_fence(std::memory_order_seq_cst);
    const std::uint64_t anchor = read_ticks();

    Femtos base_fs = old_line.at(anchor).femtos();
    Femtos remaining = error;
    const bool step = error > config_.step_threshold.femtos();
    if (step) {
        base_fs += error;   // behind: jump forward, which cannot break monotonicity
        remaining = 0;
    }
    const Femtos window = config_.slew_window.femtos();
    const std::uint64_t slew_ticks = static_cast<std::uint64_t>((static_cast<U128>(window) << 32) / mult);
    const std::uint64_t new_slope = slewed(mult, remaining, window, config_.max_slew_ppm);
    // Old-line readers may hold a tick up to the reorder window past the anchor: start the new line high enough
    // that it is not below the old one anywhere in that window (see the header).
    const std::uint64_t old_slope = std::max(old_line.slewed_mult, old_line.mult);
    if (old_slope > new_slope) {
        const std::uint64_t window_ticks = static_cast<std::uint64_t>((static_cast<U128>(kReorderWindowFs) << 32) / mult);
        // + 3 fs: both lines round each reading down (at most 1 fs each, and the old line once more where its
        // slew window ends inside this one), so the exact difference of slopes alone can fall short by that much.
        base_fs += Line::scale(window_ticks, old_slope - new_slope) + 3;
    }
    store_line(Line{anchor, base_fs, new_slope, slew_ticks, mult});
    recalibrations_.store(recalibrations_.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
    if (step) forward_steps_.store(forward_steps_.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
    last_error_fs_high_.store(static_cast<std::int64_t>(error >> 64), std::memory_order_relaxed);
    last_error_fs_low_.store(static_cast<std::uint64_t>(static_cast<U128>(error)), std::memory_order_relaxed);
    sequence_.store(sequence + 2, std::memory_order_release);

    recalibrating_.store(false, std::memory_order_release);
    return 0;
}

Duration CounterClock::ticks_to_duration(std::uint64_t ticks) const noexcept {
    return Duration::from_femtos(Line::scale(ticks, mult_.load(std::memory_order_relaxed)));
}

CounterClock::Line CounterClock::line() const noexcept {
    for (;;) {
        const std::uint32_t sequence = sequence_.load(std::memory_order_acquire);
        const Line current = load_line();
        std::atomic_thread_fence(std::memory_order_acquire);
        if ((sequence & 1u) == 0 && sequence == sequence_.load(std::memory_order_relaxed)) return current;
        platform::cpu_relax();
    }
}

CounterClock::Stats CounterClock::stats() const noexcept {
    for (;;) {
        const std::uint32_t sequence = sequence_.load(std::memory_order_acquire);
        Stats stats;
        stats.recalibrations = recalibrations_.load(std::memory_order_relaxed);
        stats.forward_steps = forward_steps_.load(std::memory_order_relaxed);
        const Femtos error =
            static_cast<Femtos>((static_cast<U128>(static_cast<std::uint64_t>(
                                     last_error_fs_high_.load(std::memory_order_relaxed)))
                                 << 64) |
                                last_error_fs_low_.load(std::memory_order_relaxed));
        stats.last_offset_error = Duration::from_femtos(error);
        const std::uint64_t mult = mult_.load(std::memory_order_relaxed);
        stats.counter_hz = mult == 0 ? 0 : 1e15 * 4294967296.0 / static_cast<double>(mult);
        std::atomic_thread_fence(std::memory_order_acquire);
        if ((sequence & 1u) == 0 && sequence == sequence_.load(std::memory_order_relaxed)) return stats;
        platform::cpu_relax();
    }
}

CounterClock& default_clock() noexcept {
    static CounterClock clock;
    static const int status = clock.init(CounterClock::Config{});
    (void)status;  // on failure the clock keeps its clock_gettime line, which is still monotonic
    return clock;
}

}  // namespace cf
