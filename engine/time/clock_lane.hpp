// One lane of a hybrid logical clock (hlc.hpp): the HLC state that one thread stamps from.
//
// A thread's own lane is a word only that thread writes: relaxed loads and stores (plain moves on x86 and ARM),
// so a stamp costs the physical-time read and a few compares. The clock's shared lane (id 0) is the same word
// updated with a compare-and-swap, for any number of threads. Either way each lane's stamps strictly increase,
// and the lane id in the stamp keeps stamps of different lanes apart.
//
// Lanes are 128 bytes apart, so neither false sharing nor the adjacent-line prefetcher couples two threads.
//
// The receive rule: a thread that gets a message stamped m calls observe(m) (or merge(m) to stamp the receive
// event itself), so every stamp it takes afterwards is larger than m. The drift bound holds on both: a remote
// stamp whose physical time is more than max_drift ahead of ours is rejected (-ERANGE) and counted.
#pragma once

#include <atomic>
#include <cerrno>
#include <cstdint>

namespace cf {

class alignas(128) ClockLane {
public:
    // A local or send event.
    HlcStamp now() noexcept { return now_batch(1); }

    // `count` (>= 1) consecutive stamps: first.word + 0 .. count - 1, all above every earlier stamp of this lane
    // (the logical counter carries into l). Returns the first.
    HlcStamp now_batch(std::uint32_t count) noexcept {
        const std::uint64_t physical = parameters_->physical_word();
        return HlcStamp{advance(physical, count > 1 ? count - 1 : 0), parameters_->node_id, id_};
    }

    // A receive event: merges `remote` and stamps the event in `out` (> remote). 0, or -ERANGE (drift; `out`
    // untouched, the remote stamp ignored and counted).
    int merge(const HlcStamp& remote, HlcStamp& out) noexcept {
        const std::uint64_t physical = parameters_->physical_word();
        if (!parameters_->within_drift(remote.word, physical)) return reject();
        const std::uint64_t remote_successor = remote.word == UINT64_MAX ? UINT64_MAX : remote.word + 1;
        out = HlcStamp{advance(physical > remote_successor ? physical : remote_successor, 0), parameters_->node_id, id_};
        return 0;
    }

    // The receive rule without stamping the receive: every later stamp of this lane is larger than `remote`. On a
    // thread's own lane this reads no clock unless `remote` is ahead of the lane, and then only when it is also
    // beyond max_drift of the last physical time the lane read. 0 or -ERANGE (as merge).
    int observe(const HlcStamp& remote) noexcept {
        std::uint64_t word = state_.load(std::memory_order_relaxed);
        if (remote.word <= word) [[likely]] return 0;
        if (!parameters_->within_drift(remote.word, physical_seen_)) {
            const std::uint64_t physical = parameters_->physical_word();
            if (!shared_) physical_seen_ = physical;
            if (!parameters_->within_drift(remote.word, physical)) return reject();
        }
        if (!shared_) {
            state_.store(remote.word, std::memory_order_relaxed);
            return 0;
        }
        while (word < remote.word &&
               !state_.compare_exchange_weak(word, remote.word, std::memory_order_acq_rel, std::memory_order_relaxed)) {
        }
        return 0;
    }

    // The latest stamp issued or observed (any thread may read it).
    HlcStamp last() const noexcept {
        return HlcStamp{state_.load(std::memory_order_acquire), parameters_->node_id, id_};
    }
    std::uint16_t id() const noexcept { return id_; }
    bool shared() const noexcept { return shared_; }
    std::uint64_t rejected() const noexcept { return rejected_.load(std::memory_order_relaxed); }

private:
    friend class HybridLogicalClock;

    // Installs max(floor, state + 1) + extra and returns it minus extra (see hlc_advance).
    std::uint64_t advance(std::uint64_t floor, std::uint64_t extra) noexcept {
        std::uint64_t word = state_.load(std::memory_order_relaxed);
        std::uint64_t last = 0;
        if (!shared_) [[likely]] {
            if (floor > physical_seen_) physical_seen_ = floor;
            const std::uint64_t first = hlc_advance(word, floor, extra, last);
            state_.store(last, std::memory_order_release);
            return first;
        }
        std::uint64_t first = 0;
        do {
            first = hlc_advance(word, floor, extra, last);
        } while (!state_.compare_exchange_weak(word, last, std::memory_order_acq_rel, std::memory_order_relaxed));
        return first;
    }

    int reject() noexcept {
        if (shared_) rejected_.fetch_add(1, std::memory_order_relaxed);
        else rejected_.store(rejected_.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
        return -ERANGE;
    }

    std::atomic<std::uint64_t> state_{0};
    std::atomic<std::uint64_t> rejected_{0};
    std::uint64_t physical_seen_ = 0;            // own lanes: the largest physical word read (observe's cheap check)
    const HlcParameters* parameters_ = nullptr;
    std::uint16_t id_ = 0;
    bool shared_ = false;
    std::atomic<bool> taken_{false};             // own lanes: held by a thread
};

}  // namespace cf
