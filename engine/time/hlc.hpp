// Hybrid logical clock (Kulkarni, Demirbas et al., "Logical Physical Clocks", OPODIS 2014).
//
// A stamp is (l, c, node): l tracks the largest physical time seen, c counts events that share that l, and the
// node id breaks ties so stamps of different nodes are totally ordered. l and c live in one 64-bit word:
//     word = l << 8 | c,   l = physical time in units of 2^-24 s (~59.6 ns) since 1970-01-01 (56 bits: until 2106)
// which turns the paper's rules into integer maxima that one compare-and-swap applies atomically:
//     send/local event:  word = max(pt << 8, word + 1)
//     receive(m):        word = max(pt << 8, word + 1, m.word + 1)
// These are exactly the paper's cases, except that a counter overflow (c = 255) carries into l, moving l one unit
// (~60 ns) ahead of the largest physical time seen instead of failing: it keeps the order and a bounded drift.
// Every successful CAS installs a strictly larger word, so no two calls on one clock ever return the same stamp
// (until 2106, where the word saturates instead of wrapping).
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
    std::uint16_t lane = 0;   // the issuing clock lane of the node; compared after node

    constexpr std::uint64_t physical_units() const noexcept { return word >> kLogicalBits; }
    constexpr std::uint32_t logical() const noexcept { return static_cast<std::uint32_t>(word & kLogicalMask); }
    // l as a point in time: the first femtosecond that belongs to unit l (units * 10^15 / 2^24, rounded up), so
    // hlc_units_from_instant(physical_time()) == physical_units() exactly.
    constexpr Instant physical_time() const noexcept {
        const Femtos scaled = Femtos{static_cast<std::int64_t>(physical_units())} * 1'000'000'000'000'000;
        return Instant::from_femtos((scaled + (Femtos{1} << 24) - 1) >> 24);
    }
    static constexpr HlcStamp from_parts(std::uint64_t physical_units, std::uint32_t logical,
                                         std::uint16_t node) noexcept {
        return HlcStamp{(physical_units << kLogicalBits) | (logical & kLogicalMask), node};
    }

    friend constexpr auto operator<=>(const HlcStamp&, const HlcStamp&) noexcept = default;  // word, then node
};

// Physical time -> HLC units (floor); times before 1970 read as 0 and after 2106 saturate.
std::uint64_t hlc_units_from_instant(Instant time) noexcept;

class HybridLogicalClock {
public:
    // Where physical time comes from. Default: default_clock(). Tests inject their own.
    using PhysicalSource = Instant (*)(void* context);

    struct Config {
        std::uint16_t node_id = 0;
        Duration max_drift = Duration::from_millis(100);   // reject remote stamps further ahead of our time
        PhysicalSource source = nullptr;
        void* source_context = nullptr;
    };

    explicit HybridLogicalClock(const Config& config) noexcept;
    HybridLogicalClock(const HybridLogicalClock&) = delete;
    HybridLogicalClock& operator=(const HybridLogicalClock&) = delete;

    // A local or send event: a stamp larger than every stamp this clock issued or merged. Lock-free.
    HlcStamp now() noexcept;

    // `count` (>= 1) consecutive send events with one compare-and-swap: the stamps are first.word + 0 .. count - 1
    // (the logical counter carries into l as in now()), all larger than every stamp issued or merged before, and
    // every later stamp is larger than the last of them. Returns the first. For batches published together.
    HlcStamp now_batch(std::uint32_t count) noexcept;

    // A receive event: merges `remote` and returns the new local stamp in `out`. 0, or -ERANGE when the remote
    // physical time is more than max_drift ahead of ours (the stamp is ignored, counted, and `out` untouched).
    int update(const HlcStamp& remote, HlcStamp& out) noexcept;

    // The latest stamp issued or merged, without issuing a new one.
    HlcStamp last() const noexcept { return {state_.load(std::memory_order_acquire), node_id_}; }
    std::uint64_t rejected_count() const noexcept { return rejected_.load(std::memory_order_relaxed); }
    std::uint16_t node_id() const noexcept { return node_id_; }

private:
    std::uint64_t physical_word() const noexcept;
    // Installs max(floor, state + 1) + extra and returns it minus extra.
    std::uint64_t advance(std::uint64_t floor, std::uint64_t extra = 0) noexcept;

    alignas(64) std::atomic<std::uint64_t> state_{0};
    alignas(64) std::atomic<std::uint64_t> rejected_{0};
    std::uint64_t max_drift_units_;
    PhysicalSource source_;
    void* source_context_;
    std::uint16_t node_id_;
};

}  // namespace cf
