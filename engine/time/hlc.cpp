#include "engine/time/hlc.hpp"

#include <cerrno>

namespace cf {
namespace {

constexpr std::uint64_t kMaxUnits = (std::uint64_t{1} << (64 - HlcStamp::kLogicalBits)) - 1;

// The stamps' order comes from the compare-and-swap, not from the clock read, so the cheaper unordered read will do.
Instant default_source(void*) noexcept { return default_clock().now_unordered(); }

}  // namespace

std::uint64_t hlc_units_from_instant(Instant time) noexcept {
    const Femtos fs = time.femtos();
    if (fs <= 0) return 0;
    // The quotient fits in 64 bits for any time before 2106, so this is a single 128/64-bit division.
    const Femtos units = (fs << 24) / 1'000'000'000'000'000;
    return units > static_cast<Femtos>(kMaxUnits) ? kMaxUnits : static_cast<std::uint64_t>(units);
}

HybridLogicalClock::HybridLogicalClock(const Config& config) noexcept
    : max_drift_units_(config.max_drift <= Duration::zero()
                           ? 0
                           : hlc_units_from_instant(Instant::epoch() + config.max_drift)),
      source_(config.source != nullptr ? config.source : default_source),
      source_context_(config.source_context),
      node_id_(config.node_id) {}

std::uint64_t HybridLogicalClock::physical_word() const noexcept {
    return hlc_units_from_instant(source_(source_context_)) << HlcStamp::kLogicalBits;
}

std::uint64_t HybridLogicalClock::advance(std::uint64_t floor, std::uint64_t extra) noexcept {
    std::uint64_t current = state_.load(std::memory_order_relaxed);
    std::uint64_t first, last;
    do {
        // Past UINT64_MAX (the year 2106) a word would wrap below every earlier stamp: stay at the top instead.
        const std::uint64_t successor = current == UINT64_MAX ? UINT64_MAX : current + 1;
        first = floor > successor ? floor : successor;
        last = first > UINT64_MAX - extra ? UINT64_MAX : first + extra;
    } while (!state_.compare_exchange_weak(current, last, std::memory_order_acq_rel, std::memory_order_relaxed));
    return last - extra;   // first, unless the batch hit the top (then it ends at UINT64_MAX)
}

HlcStamp HybridLogicalClock::now() noexcept { return {advance(physical_word()), node_id_}; }

HlcStamp HybridLogicalClock::now_batch(std::uint32_t count) noexcept {
    return {advance(physical_word(), count > 1 ? count - 1 : 0), node_id_};
}

int HybridLogicalClock::update(const HlcStamp& remote, HlcStamp& out) noexcept {
    const std::uint64_t physical = physical_word();
    const std::uint64_t physical_units = physical >> HlcStamp::kLogicalBits;
    if (remote.physical_units() > physical_units && remote.physical_units() - physical_units > max_drift_units_) {
        rejected_.fetch_add(1, std::memory_order_relaxed);
        return -ERANGE;
    }
    const std::uint64_t remote_successor = remote.word == UINT64_MAX ? UINT64_MAX : remote.word + 1;
    out = {advance(physical > remote_successor ? physical : remote_successor), node_id_};
    return 0;
}

}  // namespace cf
