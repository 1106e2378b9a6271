#include "engine/time/hlc.hpp"

#include <mutex>
#include <new>

namespace cf {
namespace {


// The stamps' order comes from the lane's word, not from the clock read, so the cheaper unordered read will do.
Instant default_source(void*) noexcept { return default_clock().now_unordered(); }

// Clocks that threads may still hold lanes of. Touched only when a clock is created or destroyed, when a thread
// takes its first lane of a clock, and at thread exit: never per stamp.
std::mutex g_live_clocks_mutex;
std::uint64_t g_next_serial = 1;
struct LiveClock {
    std::uint64_t serial;
    HybridLogicalClock* clock;
};
constexpr int kMaxLiveClocks = 256;
LiveClock g_live_clocks[kMaxLiveClocks];

HybridLogicalClock* live_clock(std::uint64_t serial) {
    for (const LiveClock& live : g_live_clocks) {
        if (live.serial == serial) return live.clock;
    }
    return nullptr;
}

}  // namespace


HybridLogicalClock::HybridLogicalClock(const Config& config) noexcept {
    parameters_.node_id = config.node_id;
    parameters_.max_drift_units =
        config.max_drift <= Duration::zero() ? 0 : hlc_units_from_instant(Instant::epoch() + config.max_drift);
    parameters_.source = config.source != nullptr ? config.source : default_source;
    if (config.source == nullptr) parameters_.counter = &default_clock();
    parameters_.source_context = config.source_context;
    shared_.parameters_ = &parameters_;
    shared_.shared_ = true;
    const std::uint32_t wanted = config.max_lanes < kMaxClockLanes ? config.max_lanes : kMaxClockLanes - 1;
    if (wanted != 0) {
        lanes_ = new (std::nothrow) ClockLane[wanted + 1];
        if (lanes_ != nullptr) max_lanes_ = wanted;
    }
    for (std::uint32_t id = 1; id <= max_lanes_; ++id) {
        lanes_[id].parameters_ = &parameters_;
        lanes_[id].id_ = static_cast<std::uint16_t>(id);
    }
    std::lock_guard<std::mutex> lock(g_live_clocks_mutex);
    serial_ = g_next_serial++;
    for (LiveClock& live : g_live_clocks) {
        if (live.clock == nullptr) {
            live = LiveClock{serial_, this};
            return;
        }
    }
    // The registry is full: no thread lanes for this clock (threads use the shared lane), but stamps stay right.
    max_lanes_ = 0;
}

HybridLogicalClock::~HybridLogicalClock() {
    {
        std::lock_guard<std::mutex> lock(g_live_clocks_mutex);
        for (LiveClock& live : g_live_clocks) {
            if (live.serial == serial_) live = LiveClock{0, nullptr};
        }
    }
    delete[] lanes_;
}

ClockLane* HybridLogicalClock::open_lane() noexcept {
    for (std::uint32_t id = 1; id <= max_lanes_; ++id) {
        bool expected = false;
        // Acquire pairs with close_lane's release: the previous holder's last word is visible, so the new holder
        // continues above it.
        if (lanes_[id].taken_.compare_exchange_strong(expected, true, std::memory_order_acquire,
                                                      std::memory_order_relaxed)) {
            lanes_[id].physical_seen_ = 0;
            return &lanes_[id];
        }
    }
    return nullptr;
}

void HybridLogicalClock::close_lane(ClockLane& lane) noexcept {
    if (lane.shared_) return;
    lane.taken_.store(false, std::memory_order_release);
}

std::uint32_t HybridLogicalClock::lanes_in_use() const noexcept {
    std::uint32_t count = 0;
    for (std::uint32_t id = 1; id <= max_lanes_; ++id) count += lanes_[id].taken_.load(std::memory_order_relaxed);
    return count;
}

std::uint64_t HybridLogicalClock::rejected_count() const noexcept {
    std::uint64_t count = shared_.rejected();
    for (std::uint32_t id = 1; id <= max_lanes_; ++id) count += lanes_[id].rejected();
    return count;
}

// Gives a thread's lanes back when it exits (a thread_local with a destructor, armed on the first binding).
struct ThreadLaneRelease {
    ~ThreadLaneRelease() { HybridLogicalClock::release_thread_lanes(); }
};

void HybridLogicalClock::release_thread_lanes() noexcept {
    ThreadLanes& lanes = tl_thread_lanes;
    lanes.exiting = true;
    std::lock_guard<std::mutex> lock(g_live_clocks_mutex);
    for (ThreadLaneEntry& entry : lanes.entries) {
        if (entry.clock_serial == 0) continue;
        // A clock destroyed first took its lanes with it.
        if (HybridLogicalClock* clock = live_clock(entry.clock_serial); clock != nullptr) clock->close_lane(*entry.lane);
        entry = ThreadLaneEntry{};
    }
}

ClockLane& HybridLogicalClock::bind_thread_lane() noexcept {
    ThreadLanes& lanes = tl_thread_lanes;
    for (ThreadLaneEntry& entry : lanes.entries) {
        if (entry.clock_serial == serial_) return *entry.lane;
    }
    if (lanes.exiting) return shared_;
    std::lock_guard<std::mutex> lock(g_live_clocks_mutex);
    // A free entry, or one of a clock that is gone.
    ThreadLaneEntry* slot = nullptr;
    for (ThreadLaneEntry& entry : lanes.entries) {
        if (entry.clock_serial == 0 || live_clock(entry.clock_serial) == nullptr) {
            slot = &entry;
            break;
        }
    }
    if (slot == nullptr) return shared_;
    ClockLane* lane = open_lane();
    if (lane == nullptr) lane = &shared_;   // remembered, so the thread does not retry on every stamp
    static thread_local ThreadLaneRelease release_at_exit;
    (void)&release_at_exit;
    *slot = ThreadLaneEntry{serial_, lane};
    // The hot check looks at the first entry only: keep the most recent binding there.
    if (slot != &lanes.entries[0]) {
        const ThreadLaneEntry previous = lanes.entries[0];
        lanes.entries[0] = *slot;
        *slot = previous;
    }
    return *lane;
}

}  // namespace cf
