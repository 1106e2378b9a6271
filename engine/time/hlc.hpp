// Hybrid logical clock (Kulkarni, Demirbas et al., "Logical Physical Clocks", OPODIS 2014), stamped from
// per-thread clock lanes.
//
// A stamp is (l, c, node, lane): l tracks the largest physical time seen, c counts events that share that l, and
// (node, lane) breaks ties, so stamps of different nodes, and of different threads of one node, are totally
// ordered. l and c live in one 64-bit word:
//     word = l << 8 | c,   l = physical time in units of 2^-24 s (~59.6 ns) since 1970-01-01 (56 bits: until 2106)
// which turns the paper's rules into integer maxima:
//     send/local event:  word = max(pt << 8, word + 1)
//     receive(m):        word = max(pt << 8, word + 1, m.word + 1)
// These are exactly the paper's cases, except that a counter overflow (c = 255) carries into l, moving l one unit
// (~60 ns) ahead of the largest physical time seen instead of failing: it keeps the order and a bounded drift.
//
// Lanes (clock_lane.hpp). A clock owns up to kMaxClockLanes - 1 lanes, each a plain word that only the thread
// holding it writes: a stamp costs a physical-time read and two compares, no atomic read-modify-write and no
// cache line shared with other threads. Lane ids are the stamp's tie-breaker after the node, so stamps stay
// unique across threads. Lane 0 is the clock's shared lane: one atomic word updated with a compare-and-swap, for
// threads that hold no lane (housekeeping, or more threads than lanes).
//
// What the order means. Within one lane stamps strictly increase (program order). Across threads and hosts, a
// stamp taken after receiving message m is larger than m's (the receive rule, applied by whoever delivers m to the
// thread), so HLC order is consistent with causality; two stamps with no causal path between them are ordered
// arbitrarily (by physical time, then node, then lane). Ring order on a topic is its sequence number, not the HLC.
#pragma once

#include <atomic>
#include <compare>
#include <cstdint>

#include "engine/time/counter_clock.hpp"

namespace cf {

struct HlcStamp {
    static constexpr int kLogicalBits = 8;
    static constexpr std::uint64_t kLogicalMask = (std::uint64_t{1} << kLogicalBits) - 1;

    std::uint64_t word = 0;
    std::uint16_t node = 0;
    std::uint16_t lane = 0;   // the clock lane that issued it (0: the shared lane, or a merge result)

    constexpr std::uint64_t physical_units() const noexcept { return word >> kLogicalBits; }
    constexpr std::uint32_t logical() const noexcept { return static_cast<std::uint32_t>(word & kLogicalMask); }
    // l as a point in time: the first femtosecond that belongs to unit l (units * 10^15 / 2^24, rounded up), so
    // hlc_units_from_instant(physical_time()) == physical_units() exactly.
    constexpr Instant physical_time() const noexcept {
        const Femtos scaled = Femtos{static_cast<std::int64_t>(physical_units())} * 1'000'000'000'000'000;
        return Instant::from_femtos((scaled + (Femtos{1} << 24) - 1) >> 24);
    }
    static constexpr HlcStamp from_parts(std::uint64_t physical_units, std::uint32_t logical,
                                         std::uint16_t node, std::uint16_t lane = 0) noexcept {
        return HlcStamp{(physical_units << kLogicalBits) | (logical & kLogicalMask), node, lane};
    }

    friend constexpr auto operator<=>(const HlcStamp&, const HlcStamp&) noexcept = default;  // word, node, lane
};

namespace hlc_detail {
inline constexpr std::uint64_t kMaxUnits = (std::uint64_t{1} << (64 - HlcStamp::kLogicalBits)) - 1;
__extension__ using U128 = unsigned __int128;

// units = fs * 2^24 / 10^15 = (fs << 9) / 5^15. A 128-bit division, even the one DIV instruction x86-64 has, costs
// tens of cycles on every stamp (and a libgcc call elsewhere); a multiply by the reciprocal and one correction give
// the same floor. With n = fs << 9 < 2^97, the estimate q0 = (fs >> 24) * floor(2^97 / d) >> 64 is below n / d by
// less than 2^33 / d (the bits the shift drops, 0.29) plus frac(2^97 / d) (the truncated reciprocal, 0.54), so it is
// the quotient or one less, and n - q0 * d < 2d < 2^64 is exact in the low 64 bits.
inline constexpr std::uint64_t kUnitDivisor = 30'517'578'125;   // 5^15
inline constexpr std::uint64_t kUnitReciprocal = static_cast<std::uint64_t>((U128{1} << 97) / kUnitDivisor);
static_assert((U128{1} << 97) / kUnitDivisor < (U128{1} << 64), "the reciprocal fits in 64 bits");
static_assert((U128{1} << 97) % kUnitDivisor * 100 / kUnitDivisor + 29 < 100, "the estimate is off by at most one");

// floor((fs << 9) / 5^15) for 0 <= fs < 2^88, given fs >> 24 and the low 64 bits of fs << 9.
inline std::uint64_t units_from_femtos(std::uint64_t fs_high, std::uint64_t fs_low_shifted) noexcept {
    const auto estimate = static_cast<std::uint64_t>((U128{fs_high} * kUnitReciprocal) >> 64);
    const std::uint64_t remainder = fs_low_shifted - estimate * kUnitDivisor;   // mod 2^64, exact: below 2 * 5^15
    return estimate + (remainder >= kUnitDivisor ? 1 : 0);
}
}  // namespace hlc_detail

// Physical time -> HLC units (floor); times before 1970 read as 0 and after 2106 saturate. On every stamp, so
// inline and without a division (hlc_detail::units_from_femtos).
inline std::uint64_t hlc_units_from_instant(Instant time) noexcept {
    const Femtos fs = time.femtos();
    if (fs <= 0) return 0;
    if (fs >= (Femtos{1} << 88)) return hlc_detail::kMaxUnits;
    const auto magnitude = static_cast<hlc_detail::U128>(fs);
    const std::uint64_t units = hlc_detail::units_from_femtos(static_cast<std::uint64_t>(magnitude >> 24),
                                                              static_cast<std::uint64_t>(magnitude) << 9);
    return units > hlc_detail::kMaxUnits ? hlc_detail::kMaxUnits : units;
}

// What every lane of a clock reads: the node id, the drift bound and the physical time source. Immutable once the
// clock is constructed.
struct HlcParameters {
    using PhysicalSource = Instant (*)(void* context);

    std::uint16_t node_id = 0;
    std::uint64_t max_drift_units = 0;
    PhysicalSource source = nullptr;
    void* source_context = nullptr;
    const CounterClock* counter = nullptr;   // the default source, read inline (no call through `source`)

    // The physical time as an HLC word (units << 8, counter 0).
    std::uint64_t physical_word() const noexcept {
        const Instant now = counter != nullptr ? counter->now_unordered() : source(source_context);
        return hlc_units_from_instant(now) << HlcStamp::kLogicalBits;
    }
    // Whether a remote stamp's physical time is within max_drift of `physical` (a word from physical_word()).
    bool within_drift(std::uint64_t remote_word, std::uint64_t physical) const noexcept {
        const std::uint64_t remote_units = remote_word >> HlcStamp::kLogicalBits;
        const std::uint64_t units = physical >> HlcStamp::kLogicalBits;
        return remote_units <= units || remote_units - units <= max_drift_units;
    }
};

// max(floor, word + 1) + extra without wrapping: past UINT64_MAX (2106) a word would wrap below every earlier
// stamp, so it stays at the top. Returns the first of the extra + 1 consecutive words; `last` gets the last.
inline std::uint64_t hlc_advance(std::uint64_t word, std::uint64_t floor, std::uint64_t extra,
                                 std::uint64_t& last) noexcept {
    const std::uint64_t successor = word == UINT64_MAX ? UINT64_MAX : word + 1;
    const std::uint64_t first = floor > successor ? floor : successor;
    last = first > UINT64_MAX - extra ? UINT64_MAX : first + extra;
    return last - extra;   // first, unless the batch hit the top (then it ends at UINT64_MAX)
}

}  // namespace cf

#include "engine/time/clock_lane.hpp"

namespace cf {

inline constexpr std::uint32_t kMaxClockLanes = 256;   // lane ids 1..255; 0 is the shared lane

// Which lane a thread holds of each clock it stamped from: a constinit table, so the hot lookup needs no TLS guard.
struct ThreadLaneEntry {
    std::uint64_t clock_serial = 0;   // 0: free; serials are never reused, so a dead clock's entry never matches
    ClockLane* lane = nullptr;
};
struct ThreadLanes {
    static constexpr int kMaxClocksPerThread = 8;
    ThreadLaneEntry entries[kMaxClocksPerThread];
    bool exiting = false;
};
inline thread_local constinit ThreadLanes tl_thread_lanes{};

class HybridLogicalClock {
public:
    using PhysicalSource = HlcParameters::PhysicalSource;

    struct Config {
        std::uint16_t node_id = 0;
        Duration max_drift = Duration::from_millis(100);   // reject remote stamps further ahead of our time
        PhysicalSource source = nullptr;                   // default: default_clock(); tests inject their own
        void* source_context = nullptr;
        std::uint32_t max_lanes = 64;                      // 0 .. kMaxClockLanes - 1 lanes besides the shared one
    };

    explicit HybridLogicalClock(const Config& config) noexcept;
    ~HybridLogicalClock();
    HybridLogicalClock(const HybridLogicalClock&) = delete;
    HybridLogicalClock& operator=(const HybridLogicalClock&) = delete;

    // ---- lanes ----

    // The calling thread's lane: taken on the thread's first call, given back when the thread exits (or the
    // clock is destroyed first). The shared lane when every lane is taken (or max_lanes is 0). Hot after the first
    // call: a compare on thread-local memory.
    ClockLane& this_thread_lane() noexcept {
        const ThreadLaneEntry& first = tl_thread_lanes.entries[0];
        if (first.clock_serial == serial_) [[likely]] return *first.lane;
        return bind_thread_lane();
    }

    // A lane for a thread that manages its own (the caller makes sure one thread at a time uses it), or nullptr
    // when none is free. Give it back with close_lane(); its next holder continues above its last stamp.
    ClockLane* open_lane() noexcept;
    void close_lane(ClockLane& lane) noexcept;
    std::uint32_t lanes_in_use() const noexcept;

    // ---- the shared lane (lane 0): any thread, lock-free ----

    // A local or send event: a stamp larger than every stamp this lane issued or merged.
    HlcStamp now() noexcept { return shared_.now(); }
    // `count` (>= 1) consecutive stamps at once: first.word + 0 .. count - 1, all above every earlier stamp of the
    // lane. Returns the first. For batches published together.
    HlcStamp now_batch(std::uint32_t count) noexcept { return shared_.now_batch(count); }
    // A receive event: merges `remote` and returns the new stamp in `out`. 0, or -ERANGE when the remote physical
    // time is more than max_drift ahead of ours (the stamp is ignored, counted, and `out` untouched).
    int update(const HlcStamp& remote, HlcStamp& out) noexcept { return shared_.merge(remote, out); }
    // The latest stamp the shared lane issued or merged, without issuing a new one.
    HlcStamp last() const noexcept { return shared_.last(); }

    // Remote stamps rejected for drift, by every lane.
    std::uint64_t rejected_count() const noexcept;
    std::uint16_t node_id() const noexcept { return parameters_.node_id; }

private:
    ClockLane& bind_thread_lane() noexcept;
    static void release_thread_lanes() noexcept;
    friend struct ThreadLaneRelease;

    HlcParameters parameters_;
    std::uint64_t serial_ = 0;
    std::uint32_t max_lanes_ = 0;
    ClockLane shared_;
    ClockLane* lanes_ = nullptr;   // lanes_[1 .. max_lanes], index = lane id (allocated at construction)
};

}  // namespace cf
