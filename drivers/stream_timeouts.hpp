// The two timers of an accepted TCP connection (TcpConfig::first_frame_timeout and idle_timeout), in one place so
// that both stream drivers close the same connections, for the same reasons, at the same moments. No system calls
// here: the drivers stamp receives, call sweep() from poll_events() and close what it names.
//
// Time: CLOCK_MONOTONIC_COARSE, read once per polling call through the vDSO (no system call, a few ns: it is the
// time of the kernel's last tick, 1 to 10 ms old). Every stamp and every check use it, so a timer fires within a
// tick of its duration (plus at most kSweepGap late).
//
// Cost: a polling call reads the clock and compares it with the earliest deadline the last sweep saw; only past
// it does sweep() walk the slot table. Receives push deadlines later, never earlier, so that bound stays safe
// without being touched per receive; a new connection can only lower it (start()). A walk happens at most once
// per kSweepGap.
#pragma once

#include <time.h>

#include <cstdint>

#include "drivers/stream_connections.hpp"
#include "drivers/stream_driver.hpp"

namespace cf::drivers {

class StreamTimeouts {
public:
    // Takes the durations from `config`. 0, or -EINVAL with the message set when one is negative.
    int configure(const TcpConfig& config) noexcept;
    bool enabled() const noexcept { return first_frame_ns_ != 0 || idle_ns_ != 0; }

    // Reads the clock: once per polling call, before anything is stamped or checked.
    void tick() noexcept {
        if (enabled()) now_ = coarse_now();
    }

    // An accepted connection: its timers start now.
    void start(StreamConnection& connection) noexcept;
    // Bytes arrived on the connection.
    void received(StreamConnection& connection) const noexcept { connection.last_rx_at = now_; }

    // Calls expire(slot, reason) for each open, timed connection past a deadline (reason kFirstFrameTimeout or
    // kIdleTimeout). The driver closes it with that reason, or finds bytes waiting after all (and calls
    // received()), or leaves it to a close already on its way. One comparison when nothing can be due.
    template <class Expire>
    void sweep(StreamConnections& connections, Expire&& expire) noexcept {
        if (now_ < next_sweep_) [[likely]] return;
        std::int64_t next = kNever;
        for (std::uint32_t slot = 0; slot < connections.capacity(); ++slot) {
            StreamConnection& connection = connections.at(slot);
            if (!timed_and_open(connection)) continue;
            if (const int reason = overdue(connections, connection); reason != 0) expire(slot, reason);
            if (timed_and_open(connection) && deadline(connection) < next) next = deadline(connection);
        }
        // A connection the driver left open past its deadline is looked at again after kSweepGap, not per call.
        next_sweep_ = next > now_ + kSweepGap ? next : now_ + kSweepGap;
    }

    // Counts a close by `reason` (one sweep() named) in the driver's stats.
    static void count(int reason, StreamStats& stats) noexcept {
        ++(reason == kFirstFrameTimeout ? stats.first_frame_timeouts : stats.idle_timeouts);
    }

    static constexpr std::int64_t kSweepGap = 1'000'000;   // ns

private:
    static constexpr std::int64_t kNever = INT64_MAX;

    static std::int64_t coarse_now() noexcept {
        timespec now{};
        clock_gettime(CLOCK_MONOTONIC_COARSE, &now);
        return std::int64_t{now.tv_sec} * 1'000'000'000 + now.tv_nsec;
    }
    static bool timed_and_open(const StreamConnection& connection) noexcept {
        return connection.timed && connection.state == StreamState::open;
    }
    // The reason the connection is past a deadline, or 0.
    int overdue(const StreamConnections& connections, StreamConnection& connection) const noexcept;
    // Its earliest deadline (kNever with none).
    std::int64_t deadline(const StreamConnection& connection) const noexcept;

    std::int64_t first_frame_ns_ = 0, idle_ns_ = 0;   // 0: disabled
    std::int64_t now_ = 0;
    std::int64_t next_sweep_ = kNever;
};

}  // namespace cf::drivers
