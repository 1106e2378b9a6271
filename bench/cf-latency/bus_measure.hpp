// The measuring loops every bus contender runs through, templated on the channel (see bus_peers.hpp for the
// interface) so that each contender's calls are inlined and nothing else differs between them.
//  - ping_pong:   A sends, B echoes on a second channel, A times the round trip; a sample is RTT/2.
//  - one_way:     open loop at a fixed rate. The sender stamps each message with its *intended* send time (the
//                 schedule, not the moment it got through), so a stall delays every message behind it in the
//                 samples too: the coordinated-omission correction of HdrHistogram/wrk2.
//  - throughput:  producers send as fast as the channel takes messages, the consumer counts; messages per second
//                 over fixed windows, median window reported.
// Time is the cycle counter, which is one synchronised clock across the cores of an invariant-TSC host (the
// harness header says whether the host has one). Receivers read it after the message load has completed.
#pragma once

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <string>
#include <thread>
#include <vector>

#include "bench/cf-latency/series.hpp"
#include "platform/cpu/affinity.hpp"
#include "platform/os/cycle_counter.hpp"

namespace cf::latency {

struct BusLoopSetup {
    const TickRuler& ruler;
    double ticks_per_second;
    double seconds;          // how long the loop runs
    int partner_cpu;         // CPU of the second thread (-1: not pinned)
};

// Counts what went wrong in a loop; a correct channel leaves it at zero.
struct BusLoopErrors {
    std::uint64_t out_of_order = 0;
    std::uint64_t stalled = 0;   // waits given up after stall_ticks: a peer died or a transport lost a message
};

// Waits that never give up (threads of one process, which cannot lose a message).
inline constexpr std::uint64_t kNeverStall = ~std::uint64_t{0};

// Retries `attempt` until it succeeds (true) or `stall_ticks` pass (false). The clock is read only after a failed
// attempt, every 64 attempts, so a message that is there at once costs nothing extra and one that arrives during
// the wait is seen within a few polls.
template <class F>
bool retry_until_stall(F&& attempt, std::uint64_t stall_ticks) {
    if (attempt()) return true;
    const std::uint64_t start = platform::read_cycles();
    for (std::uint32_t spins = 1;; ++spins) {
        if (attempt()) return true;
        if ((spins & 63) == 0 && stall_ticks != kNeverStall && platform::read_cycles() - start > stall_ticks) {
            return false;
        }
    }
}

namespace bus_detail {

inline void pin(int cpu) {
    if (cpu >= 0) (void)platform::pin_current_thread(cpu);
}

inline void wait_for(const std::atomic<bool>& flag) {
    while (!flag.load(std::memory_order_acquire)) platform::cpu_relax();
}

}  // namespace bus_detail

// The sequence number of the message that ends an echo loop (and, between processes, a sender's wait).
inline constexpr std::uint64_t kStopSequence = UINT64_MAX;

// The echoing side of ping-pong: returns every message from `there` on `back` until the stop message (or until
// nothing came or went for stall_ticks).
template <class There, class Back>
void echo_until_stop(There& there, Back& back, std::uint64_t stall_ticks = kNeverStall) {
    std::uint64_t stamp = 0, sequence = 0;
    for (;;) {
        if (!retry_until_stall([&] { return there.try_receive(stamp, sequence); }, stall_ticks)) return;
        if (sequence == kStopSequence) return;
        if (!retry_until_stall([&] { return back.try_send(stamp, sequence); }, stall_ticks)) return;
    }
}

// The timing side of ping-pong: one message out, wait for its echo, RTT/2 recorded after a warm-up of 2000 round
// trips (connections, first faults; fewer if they take longer than setup.seconds, as on a starved host), for
// setup.seconds; then the stop message for the echoing side.
template <class There, class Back>
void time_round_trips(There& there, Back& back, const BusLoopSetup& setup, LatencyHistogram& half_rtt_ps,
                      BusLoopErrors& errors, std::uint64_t stall_ticks = kNeverStall) {
    const auto span = static_cast<std::uint64_t>(setup.seconds * setup.ticks_per_second);
    std::uint64_t end = UINT64_MAX;   // set once the warm-up is over
    constexpr std::uint64_t kWarmup = 2000;
    const std::uint64_t warmup_end = platform::read_cycles() + span;
    std::uint64_t measuring_from = UINT64_MAX;   // the first round trip recorded
    for (std::uint64_t i = 0;; ++i) {
        const std::uint64_t t0 = platform::read_cycles_ordered();
        std::uint64_t stamp = 0, sequence = 0;
        if (!retry_until_stall([&] { return there.try_send(t0, i); }, stall_ticks) ||
            !retry_until_stall([&] { return back.try_receive(stamp, sequence); }, stall_ticks)) {
            ++errors.stalled;   // the echo never came: no stop message either (the peer may be gone)
            return;
        }
        const std::uint64_t t1 = platform::read_cycles_end();
        if (sequence != i || stamp != t0) ++errors.out_of_order;
        if (measuring_from == UINT64_MAX && (i == kWarmup || t1 > warmup_end)) {
            measuring_from = i;
            end = t1 + span;
        }
        if (i >= measuring_from) half_rtt_ps.record(setup.ruler.to_picos(t1 - t0) / 2);
        if ((i & 255) == 0 && t1 > end) break;
    }
    if (!retry_until_stall([&] { return there.try_send(0, kStopSequence); }, stall_ticks)) ++errors.stalled;
}

// The sending side of the open loop: message i at tick first + i * interval, stamped with that intended time. A
// refused send is retried, at most max_attempts times (a ring refuses until the receiver catches up; a datagram
// socket may refuse for good).
template <class Channel>
void send_on_schedule(Channel& channel, std::uint64_t first, std::uint64_t interval_ticks, std::uint64_t count,
                      std::uint64_t max_attempts = ~std::uint64_t{0}) {
    for (std::uint64_t i = 0; i < count; ++i) {
        const std::uint64_t intended = first + i * interval_ticks;
        while (platform::read_cycles() < intended) {
        }
        for (std::uint64_t attempt = 0; attempt < max_attempts && !channel.try_send(intended, i); ++attempt) {
        }
    }
}

// The sending thread of an open loop, on setup.partner_cpu: it runs send(first) once start() has fixed the first
// intended tick, 16 intervals after the call (time for the receiving thread to get going). Constructed, the thread
// is pinned and waiting.
class ScheduledSender {
public:
    template <class Send>
    ScheduledSender(const BusLoopSetup& setup, Send send)
        : thread_([this, cpu = setup.partner_cpu, send]() mutable {
              bus_detail::pin(cpu);
              ready_.store(true, std::memory_order_release);
              std::uint64_t first = 0;
              while ((first = first_.load(std::memory_order_acquire)) == 0) {
              }
              send(first);
          }) {
        bus_detail::wait_for(ready_);
    }
    ScheduledSender(const ScheduledSender&) = delete;
    ScheduledSender& operator=(const ScheduledSender&) = delete;

    // Lets the thread go; returns the first intended tick.
    std::uint64_t start(std::uint64_t interval_ticks) {
        const std::uint64_t first = platform::read_cycles() + interval_ticks * 16;
        first_.store(first, std::memory_order_release);
        return first;
    }
    void join() { thread_.join(); }

private:
    std::atomic<bool> ready_{false};
    std::atomic<std::uint64_t> first_{0};
    std::thread thread_;   // last: it starts once the atomics exist
};

// The receiving side of the open loop: `count` messages, samples (receive time - intended send time) after the
// first `warmup`.
template <class Channel>
void receive_on_schedule(Channel& channel, std::uint64_t count, std::uint64_t warmup, const TickRuler& ruler,
                         LatencyHistogram& latency_ps, BusLoopErrors& errors,
                         std::uint64_t stall_ticks = kNeverStall) {
    for (std::uint64_t expected = 0; expected < count;) {
        std::uint64_t stamp = 0, sequence = 0;
        if (!retry_until_stall([&] { return channel.try_receive(stamp, sequence); }, stall_ticks)) {
            ++errors.stalled;   // the rest never came
            return;
        }
        const std::uint64_t now = platform::read_cycles_after_loads();
        if (sequence != expected) ++errors.out_of_order;
        if (expected >= warmup) latency_ps.record(ruler.to_picos(now > stamp ? now - stamp : 0));
        expected = sequence + 1;
    }
}

// Ping-pong between this thread and a partner thread on setup.partner_cpu.
template <class Channel>
void ping_pong(Channel& there, Channel& back, const BusLoopSetup& setup, LatencyHistogram& half_rtt_ps,
               BusLoopErrors& errors) {
    std::atomic<bool> ready{false};
    std::thread partner([&] {
        bus_detail::pin(setup.partner_cpu);
        ready.store(true, std::memory_order_release);
        echo_until_stop(there, back);
    });
    bus_detail::wait_for(ready);
    time_round_trips(there, back, setup, half_rtt_ps, errors);
    partner.join();
}

// Open loop from a sender thread on setup.partner_cpu to this thread: one message every `interval_ticks`.
template <class Channel>
void one_way(Channel& channel, const BusLoopSetup& setup, std::uint64_t interval_ticks, LatencyHistogram& latency_ps,
             BusLoopErrors& errors) {
    const std::uint64_t count = static_cast<std::uint64_t>(setup.seconds * setup.ticks_per_second) / interval_ticks;
    ScheduledSender sender(setup,
                           [&](std::uint64_t first) { send_on_schedule(channel, first, interval_ticks, count); });
    sender.start(interval_ticks);
    receive_on_schedule(channel, count, std::min<std::uint64_t>(count / 20, 1000), setup.ruler, latency_ps, errors);
    sender.join();
}

// Messages per second: `producers` threads (on `producer_cpus`, cycling) send through `send(p, seq)` (returns how
// many messages it sent, with sequences seq, seq + 1, ...), this thread
// receives through `receive(producer, seq)` and checks per-producer order. Appends one rate per window to `rates`
// and leaves the channel empty.
template <class Send, class Receive>
void throughput(int producers, const std::vector<int>& producer_cpus, const BusLoopSetup& setup, Send&& send,
                Receive&& receive, BusLoopErrors& errors, std::vector<double>& rates) {
    std::atomic<bool> stop{false};
    std::atomic<int> ready{0};
    std::vector<std::thread> threads;
    for (int p = 0; p < producers; ++p) {
        threads.emplace_back([&, p] {
            if (!producer_cpus.empty()) bus_detail::pin(producer_cpus[static_cast<std::size_t>(p) % producer_cpus.size()]);
            ready.fetch_add(1, std::memory_order_acq_rel);
            for (std::uint64_t sequence = 0; !stop.load(std::memory_order_relaxed);) {
                sequence += send(p, sequence);   // a message (true) or a burst (its count)
            }
        });
    }
    while (ready.load(std::memory_order_acquire) < producers) platform::cpu_relax();
    std::vector<std::uint64_t> next(static_cast<std::size_t>(producers), 0);
    std::vector<double> window_rates;
    // 50 ms windows, shorter for short runs so that there are always a few.
    const auto window_ticks = static_cast<std::uint64_t>(std::min(0.05, setup.seconds / 4) * setup.ticks_per_second);
    const std::uint64_t end =
        platform::read_cycles() + static_cast<std::uint64_t>(setup.seconds * setup.ticks_per_second);
    std::uint64_t window_start = platform::read_cycles(), window_count = 0;
    bool warm = false;
    for (std::uint64_t polls = 1;; ++polls) {
        std::uint64_t producer = 0, sequence = 0;
        if (receive(producer, sequence)) {
            if (producer >= next.size() || sequence != next[producer]) ++errors.out_of_order;
            if (producer < next.size()) next[producer] = sequence + 1;
            ++window_count;
        }
        if ((polls & 1023) != 0) continue;
        const std::uint64_t now = platform::read_cycles();
        if (now - window_start < window_ticks) continue;
        if (warm) window_rates.push_back(static_cast<double>(window_count) * setup.ticks_per_second /
                                         static_cast<double>(now - window_start));
        warm = true;   // the first window includes thread start-up
        window_start = now;
        window_count = 0;
        if (now > end && !window_rates.empty()) break;
    }
    stop.store(true, std::memory_order_relaxed);
    for (std::thread& thread : threads) thread.join();   // producers only try: a full channel does not hold them
    for (std::uint64_t producer = 0, sequence = 0; receive(producer, sequence);) {
    }  // empty for the next run
    rates.insert(rates.end(), window_rates.begin(), window_rates.end());
}

inline double median(std::vector<double> values) {
    if (values.empty()) return 0;
    std::nth_element(values.begin(), values.begin() + static_cast<long>(values.size() / 2), values.end());
    return values[values.size() / 2];
}

}  // namespace cf::latency
