// Wall-clock time read from the CPU's cycle counter: a few nanoseconds per read, femtosecond units,
// never backwards, steered to the system clock.
//
// How it works. The counter (RDTSC / CNTVCT_EL0) is mapped to time by a straight line
//     t = base_fs + ((ticks - base_ticks) * mult) >> 32
// whose parameters a single writer (recalibrate()) publishes through a seqlock; readers never lock or write.
// The slope comes from the counter's rate measured against CLOCK_MONOTONIC_RAW over an ever longer baseline;
// the line is steered to CLOCK_REALTIME (or CLOCK_TAI) by slewing: for the next `slew_window` the rate is
// changed by at most `max_slew_ppm` so the offset error shrinks to zero, after which the line continues at the
// plain measured rate (so a clock nobody recalibrates does not keep slewing). A clock found behind the reference
// by more than `step_threshold` steps forward at once; a clock ahead is only ever slewed back, never stepped.
//
// Never backwards, also across threads. Readers read the counter only after their earlier loads completed
// (LFENCE;RDTSC / ISB;MRS), so a value another thread published is never newer than the tick read after loading
// it. Each new line starts where the old one is at an anchor tick the writer reads *after* making the seqlock
// odd, so readers of the new line hold ticks past the anchor. Readers of the old line may, through out-of-order
// execution of their final sequence check, hold a tick slightly past the anchor (no trailing fence: it would
// cost a fifth of the read); when the new line is less steep, the writer raises its start by the slope
// difference over a 2 us reorder window (at most ~1 ns at the largest slew, forward only), which covers them.
// This needs a counter that is synchronised across CPUs, as the invariant-TSC flag and the ARM timer promise.
//
// Without an invariant counter (or when asked), the same machinery runs on clock_gettime(CLOCK_MONOTONIC_RAW)
// as its "counter": slower (a vDSO call per read) but still monotonic and steered.
//
// Resolution vs accuracy: values are in femtoseconds, but one TSC tick is ~0.2-0.4 ns, a read costs several
// nanoseconds, and the offset to the system clock is as good as the system clock (NTP: ~ms; PTP: ~100 ns).
#pragma once

#include <atomic>
#include <cstdint>

#include "engine/time/duration.hpp"
#include "engine/time/instant.hpp"
#include "platform/os/cycle_counter.hpp"

namespace cf {

enum class Timescale { utc, tai };                              // CLOCK_REALTIME or CLOCK_TAI
enum class CounterSource { automatic, cycle_counter, clock_gettime };

class CounterClock {
public:
    struct Config {
        Timescale timescale = Timescale::utc;
        CounterSource source = CounterSource::automatic;       // automatic: the cycle counter when invariant
        Duration calibration_window = Duration::from_millis(20);  // first rate measurement at init()
        Duration slew_window = Duration::from_seconds(1);     // an offset error is removed over this span
        std::int64_t max_slew_ppm = 500;                        // fastest rate change allowed, parts per million
        Duration step_threshold = Duration::from_millis(1);   // behind by more than this: step forward
        // Test hook: where "the reference" comes from. Default: clock_gettime of the timescale's clock.
        Instant (*reference)(void* context) = nullptr;
        void* reference_context = nullptr;
    };

    struct Stats {
        std::uint64_t recalibrations = 0;
        std::uint64_t forward_steps = 0;
        Duration last_offset_error;   // reference - ours at the last recalibration (positive: we were behind)
        double counter_hz = 0;        // measured counter frequency against CLOCK_MONOTONIC_RAW
    };

    // A usable but uncalibrated clock (clock_gettime source, offset zero). Call init().
    CounterClock() noexcept;
    CounterClock(const CounterClock&) = delete;
    CounterClock& operator=(const CounterClock&) = delete;

    // Measures the counter rate for config.calibration_window and sets the offset. Not thread-safe against
    // readers: call once before the clock is shared. 0, or a negative errno (last_error_message() says why).
    int init(const Config& config) noexcept;

    // Re-measures the rate and steers toward the reference. Call periodically (about every slew_window) from
    // one housekeeping thread; concurrent callers get -EBUSY. Readers are never blocked.
    int recalibrate() noexcept;

    // The current time on the configured timescale. Lock-free, wait-free unless a recalibration is publishing.
    Instant now() const noexcept { return read_time<true>(); }

    // The same without ordering the counter read after earlier loads (no LFENCE/ISB): ~10 ns cheaper, for callers
    // that need a time but no happens-before guarantee from it, like the HLC (its compare-and-swap orders stamps).
    Instant now_unordered() const noexcept { return read_time<false>(); }

    template <bool kOrdered>
    Instant read_time() const noexcept {
        for (;;) {
            const std::uint32_t sequence = sequence_.load(std::memory_order_acquire);
            const Line line = load_line();
            const std::uint64_t ticks = !uses_cycle_counter_ ? read_monotonic_raw_ns()
                                        : kOrdered          ? platform::read_cycles_after_loads()
                                                            : platform::read_cycles();
            std::atomic_thread_fence(std::memory_order_acquire);
            if ((sequence & 1u) == 0 && sequence == sequence_.load(std::memory_order_relaxed)) {
                return line.at(ticks);
            }
            platform::cpu_relax();
        }
    }

    // The raw counter, ordered, for measuring intervals cheaply; convert differences with ticks_to_duration().
    std::uint64_t read_ticks() const noexcept {
        if (uses_cycle_counter_) return platform::read_cycles_ordered();
        return read_monotonic_raw_ns();
    }
    Duration ticks_to_duration(std::uint64_t ticks) const noexcept;

    // The mapping from counter ticks to time that readers use; published field by field under the seqlock.
    struct Line {
        std::uint64_t base_ticks;
        Femtos base_fs;
        std::uint64_t slewed_mult;   // fs per tick << 32 during the slew window
        std::uint64_t slew_ticks;    // length of the slew window in ticks
        std::uint64_t mult;          // fs per tick << 32 afterwards (the measured rate)

        Instant at(std::uint64_t ticks) const noexcept {
            // A tick before the base (impossible with a synchronised counter) reads as the base, not earlier.
            const std::uint64_t delta = ticks > base_ticks ? ticks - base_ticks : 0;
            // In range by construction: base_fs is a calibrated time and the scaled delta stays below 2^82 fs.
            if (delta <= slew_ticks) [[likely]] {
                return Instant::from_femtos_in_range(base_fs + scale(delta, slewed_mult));
            }
            return Instant::from_femtos_in_range(base_fs + scale(slew_ticks, slewed_mult) +
                                                 scale(delta - slew_ticks, mult));
        }
        static Femtos scale(std::uint64_t ticks, std::uint64_t mult) noexcept {
            __extension__ using U128 = unsigned __int128;
            return static_cast<Femtos>((U128{ticks} * mult) >> 32);
        }
    };

    // The current line (a consistent snapshot): converts ticks from read_ticks() to time later, and lets tests
    // check that a recalibration continues the old line.
    Line line() const noexcept;

    bool uses_cycle_counter() const noexcept { return uses_cycle_counter_; }
    Timescale timescale() const noexcept { return config_.timescale; }
    Stats stats() const noexcept;

private:
    Line load_line() const noexcept {
        Line line;
        line.base_ticks = base_ticks_.load(std::memory_order_relaxed);
        __extension__ using U128 = unsigned __int128;
        line.base_fs = static_cast<Femtos>((U128{base_fs_high_.load(std::memory_order_relaxed)} << 64) |
                                           base_fs_low_.load(std::memory_order_relaxed));
        line.slewed_mult = slewed_mult_.load(std::memory_order_relaxed);
        line.slew_ticks = slew_ticks_.load(std::memory_order_relaxed);
        line.mult = mult_.load(std::memory_order_relaxed);
        return line;
    }
    void store_line(const Line& line) noexcept;
    void publish(const Line& line) noexcept;
    static std::uint64_t read_monotonic_raw_ns() noexcept;

    // Pairs of (ticks, reference time) taken with the tightest bracket of a few tries.
    struct Sample {
        std::uint64_t ticks;
        Femtos time_fs;
    };
    Sample sample_monotonic_raw() const noexcept;
    Sample sample_reference() const noexcept;
    Instant read_reference() const noexcept;
    // fs per tick << 32 between two samples; 0 if they are not ordered.
    static std::uint64_t rate_between(const Sample& first, const Sample& last) noexcept;

    alignas(64) std::atomic<std::uint32_t> sequence_{0};
    std::atomic<std::uint64_t> base_ticks_{0};
    std::atomic<std::uint64_t> base_fs_low_{0};
    std::atomic<std::uint64_t> base_fs_high_{0};
    std::atomic<std::uint64_t> slewed_mult_{0};
    std::atomic<std::uint64_t> slew_ticks_{0};
    std::atomic<std::uint64_t> mult_{0};
    bool uses_cycle_counter_ = false;

    // Writer-only state, on its own line so recalibration does not disturb readers' cache line.
    alignas(64) std::atomic<bool> recalibrating_{false};
    Config config_{};
    Sample rate_origin_{};            // first MONOTONIC_RAW sample: the rate baseline grows from here
    // Published with the line (same seqlock), so stats() can be read from any thread.
    std::atomic<std::uint64_t> recalibrations_{0};
    std::atomic<std::uint64_t> forward_steps_{0};
    std::atomic<std::int64_t> last_error_fs_high_{0};
    std::atomic<std::uint64_t> last_error_fs_low_{0};
};

// The process-wide clock (UTC, automatic source), initialised on first use.
CounterClock& default_clock() noexcept;

}  // namespace cf
