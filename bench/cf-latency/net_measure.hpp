// The measuring loops the network scenarios (udp, udp-throughput, tcp) run every contender through, templated on
// the endpoint (udp_endpoints.hpp, tcp_endpoints.hpp: open, address, syscalls, send, send_burst, receive) so that
// each contender's calls are inlined and nothing else differs between them.
//  - net_ping_pong:  this thread sends, a partner thread echoes, this thread times the round trip (not halved).
//  - net_throughput: a partner thread sends bursts as fast as the endpoint takes them, this thread receives and
//                    counts messages per 50 ms window.
// Each endpoint is used by one thread only: our io_uring drivers belong to the first thread that polls them. An
// endpoint that needs a set-up step on that thread (a TCP connection's handshake) has `bool ready()`; each loop
// calls it on the endpoint's own thread before measuring, and returns false, measuring nothing, when either side
// did not get ready. Datagram endpoints have no such step.
#pragma once

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <string>
#include <thread>
#include <vector>

#include "bench/cf-latency/bus_measure.hpp"
#include "bench/cf-latency/report.hpp"
#include "bench/cf-latency/scenario.hpp"
#include "platform/os/cycle_counter.hpp"

namespace cf::latency {

inline constexpr std::uint64_t kNetWarmupRoundTrips = 1000;
inline constexpr double kNetReplyTimeoutS = 0.05;

struct LoopCounts {
    std::uint64_t lost = 0;       // pings without a reply in time, one-way messages that never arrived
    std::uint64_t stale = 0;      // replies to an earlier (timed-out) ping
};

struct ThroughputOutcome {
    std::vector<double> rates;    // messages per second, one per 50 ms window
    std::uint64_t received = 0, sent = 0, syscalls = 0;
};

namespace net_detail {

template <class E>
bool make_ready(E& endpoint) {
    if constexpr (requires { endpoint.ready(); }) {
        return endpoint.ready();
    } else {
        return true;
    }
}

}  // namespace net_detail

// Round trips a -> b -> a for setup.seconds after a warm-up; a lost ping costs one timeout and is counted.
template <class A, class B>
bool net_ping_pong(A& a, B& b, const BusLoopSetup& setup, LatencyHistogram& rtt_ps, LoopCounts& counts) {
    std::atomic<bool> ready{false}, done{false};
    bool partner_ready = false;   // written before `ready` is released
    std::thread partner([&] {
        bus_detail::pin(setup.partner_cpu);
        partner_ready = net_detail::make_ready(b);
        ready.store(true, std::memory_order_release);
        if (!partner_ready) return;
        std::uint64_t stamp = 0, sequence = 0;
        while (!done.load(std::memory_order_relaxed)) {
            if (!b.receive(stamp, sequence)) continue;
            while (!b.send(a.address(), stamp, sequence) && !done.load(std::memory_order_relaxed)) {
            }
        }
    });
    const bool here_ready = net_detail::make_ready(a);   // alongside the partner's: a handshake needs both
    bus_detail::wait_for(ready);
    if (!here_ready || !partner_ready) {
        done.store(true, std::memory_order_relaxed);
        partner.join();
        return false;
    }
    const auto timeout = static_cast<std::uint64_t>(kNetReplyTimeoutS * setup.ticks_per_second);
    const auto span = static_cast<std::uint64_t>(setup.seconds * setup.ticks_per_second);
    // Ends after the measured span, or at the latest after twice that plus a second if replies keep getting lost.
    const std::uint64_t hard_end =
        platform::read_cycles() + 2 * span + static_cast<std::uint64_t>(setup.ticks_per_second);
    std::uint64_t end = hard_end;
    for (std::uint64_t i = 0;; ++i) {
        const std::uint64_t t0 = platform::read_cycles_ordered();
        while (!a.send(b.address(), t0, i)) {
            if (platform::read_cycles() > hard_end) break;
        }
        bool replied = false;
        std::uint64_t stamp = 0, sequence = 0;
        for (;;) {
            if (a.receive(stamp, sequence)) {
                if (sequence == i && stamp == t0) {
                    replied = true;
                    break;
                }
                ++counts.stale;
            } else if (platform::read_cycles() - t0 > timeout) {
                break;
            }
        }
        const std::uint64_t t1 = platform::read_cycles_end();
        if (!replied) ++counts.lost;
        if (i == kNetWarmupRoundTrips) end = std::min(hard_end, t1 + span);
        if (replied && i >= kNetWarmupRoundTrips) rtt_ps.record(setup.ruler.to_picos(t1 - t0));
        if (t1 > end) break;
    }
    done.store(true, std::memory_order_relaxed);
    partner.join();
    return true;
}

// `b` sends from a thread on the partner CPU, this thread receives on `a`. System calls are counted from the
// moment both sides are ready.
template <class A, class B>
bool net_throughput(A& a, B& b, const BusLoopSetup& setup, ThroughputOutcome& out) {
    std::atomic<bool> ready{false}, stop{false};
    std::uint64_t sent = 0;
    bool sender_ready = false;
    std::uint64_t sender_syscalls_before = 0;   // both written before `ready` is released
    std::thread sender([&] {
        bus_detail::pin(setup.partner_cpu);
        sender_ready = net_detail::make_ready(b);
        sender_syscalls_before = b.syscalls();
        ready.store(true, std::memory_order_release);
        if (!sender_ready) return;
        while (!stop.load(std::memory_order_relaxed)) sent += b.send_burst(a.address(), sent);
    });
    const bool here_ready = net_detail::make_ready(a);
    const std::uint64_t receiver_syscalls_before = a.syscalls();
    bus_detail::wait_for(ready);
    if (!here_ready || !sender_ready) {
        stop.store(true, std::memory_order_relaxed);
        sender.join();
        return false;
    }
    const auto window_ticks = static_cast<std::uint64_t>(std::min(0.05, setup.seconds / 4) * setup.ticks_per_second);
    const std::uint64_t end =
        platform::read_cycles() + static_cast<std::uint64_t>(setup.seconds * setup.ticks_per_second);
    std::uint64_t window_start = platform::read_cycles(), window_count = 0, received = 0;
    bool warm = false;
    for (std::uint64_t polls = 1;; ++polls) {
        std::uint64_t stamp = 0, sequence = 0;
        if (a.receive(stamp, sequence)) {
            ++window_count;
            ++received;
        }
        if ((polls & 63) != 0) continue;
        const std::uint64_t now = platform::read_cycles();
        if (now - window_start < window_ticks) continue;
        if (warm) {
            out.rates.push_back(static_cast<double>(window_count) * setup.ticks_per_second /
                                static_cast<double>(now - window_start));
        }
        warm = true;   // the first window includes the sender's start
        window_start = now;
        window_count = 0;
        if (now > end && !out.rates.empty()) break;
    }
    stop.store(true, std::memory_order_relaxed);
    sender.join();
    // What is still queued arrives within a few milliseconds; it counts as received, not lost.
    const std::uint64_t drain_end =
        platform::read_cycles() + static_cast<std::uint64_t>(0.02 * setup.ticks_per_second);
    while (platform::read_cycles() < drain_end) {
        std::uint64_t stamp = 0, sequence = 0;
        if (a.receive(stamp, sequence)) ++received;
    }
    out.received += received;
    out.sent += sent;
    out.syscalls += a.syscalls() + b.syscalls() - receiver_syscalls_before - sender_syscalls_before;
    return true;
}

// Each of `contenders` gets `loops` equal slices of the scenario's time; the partner thread runs on the second
// allowed CPU.
inline BusLoopSetup contender_slice(const ScenarioContext& context, const TickRuler& ruler, int contenders,
                                    int loops) {
    const int partner_cpu = context.cpus.size() > 1 ? context.cpus[1] : -1;
    return BusLoopSetup{ruler, ruler.ticks_per_second(), context.duration_s / (loops * contenders), partner_cpu};
}

inline std::string between_threads(const BusLoopSetup& slice) {
    return slice.partner_cpu >= 0 ? " on two pinned CPUs" : " on one CPU";
}

inline const Series* find_series(const ScenarioResult& result, const std::string& name) {
    for (const Series& series : result.series) {
        if (series.name == name) return &series;
    }
    return nullptr;
}

}  // namespace cf::latency
