// udp and udp-throughput: loopback UDP between two threads on two pinned CPUs, our io_uring and socket drivers side
// by side with the kernel's plain socket calls (udp_endpoints.hpp), in one run.
//  - udp:            ping-pong round trips (RTT, not halved: that is the figure the target names) and an
//                    open loop one-way (a message every 20 us, timed from its intended send time), 64 B.
//  - udp-throughput: one sender thread sends bursts of 32 as fast as it can, this thread receives; messages per
//                    second (median of 50 ms windows), payload Gbit/s, system calls per message (both sides), and
//                    what the kernel dropped (UDP is lossy: an overrun receive buffer drops, it does not block).
// UDP can lose datagrams, so every wait here has a deadline: a lost ping costs one timeout and is counted.
#include <cstdio>
#include <string>
#include <vector>

#include "bench/cf-latency/bus_measure.hpp"
#include "bench/cf-latency/net_measure.hpp"
#include "bench/cf-latency/scenario.hpp"
#include "bench/cf-latency/series.hpp"
#include "bench/cf-latency/udp_endpoints.hpp"
#include "platform/os/cycle_counter.hpp"

namespace cf::latency {
namespace {

constexpr double kOneWayIntervalUs = 20.0;

// `b` sends from a thread on the partner CPU, one message every interval_ticks; this thread receives on `a`.
// (Each endpoint is used by one thread only: our io_uring driver belongs to the first thread that polls it.)
template <class A, class B>
void udp_one_way(A& a, B& b, const BusLoopSetup& setup, std::uint64_t interval_ticks, LatencyHistogram& latency_ps,
                 LoopCounts& counts) {
    const std::uint64_t count = static_cast<std::uint64_t>(setup.seconds * setup.ticks_per_second) / interval_ticks;
    const std::uint64_t warmup = std::min<std::uint64_t>(count / 20, 1000);
    ScheduledSender sender(setup, [&](std::uint64_t first) {
        // A datagram send can fail for good: after 1000 tries the message is given up (and counted lost).
        struct {
            B& endpoint;
            const drivers::PeerAddress& to;
            bool try_send(std::uint64_t stamp, std::uint64_t sequence) { return endpoint.send(to, stamp, sequence); }
        } channel{b, a.address()};
        send_on_schedule(channel, first, interval_ticks, count, 1000);
    });
    const std::uint64_t first = sender.start(interval_ticks);
    const std::uint64_t deadline =
        first + count * interval_ticks + static_cast<std::uint64_t>(0.1 * setup.ticks_per_second);
    std::uint64_t received = 0;
    while (received < count && platform::read_cycles() < deadline) {
        std::uint64_t stamp = 0, sequence = 0;
        if (!a.receive(stamp, sequence)) continue;
        const std::uint64_t now = platform::read_cycles_after_loads();
        ++received;
        if (sequence >= warmup) latency_ps.record(setup.ruler.to_picos(now > stamp ? now - stamp : 0));
    }
    counts.lost += count - received;
    sender.join();
}

const char* const kUringName = "cf uring driver";
const char* const kSocketName = "cf socket driver";
const char* const kUringGsoName = "cf uring driver, GSO bursts";
const char* const kSocketGsoName = "cf socket driver, GSO bursts";
const char* const kNonBlockingName = "plain sockets, non-blocking busy-poll";
const char* const kBlockingName = "plain sockets, blocking";

// Two endpoints of type E opened by `open(E&, error)`, measured by `measure(name, a, b)`; noted if they do not open.
template <class E, class Open, class Measure>
void run_contender(ScenarioResult& result, const char* name, Open&& open, Measure&& measure) {
    E a, b;
    std::string error;
    if (open(a, error) == 0 && open(b, error) == 0) {
        measure(name, a, b);
    } else {
        result.notes.push_back(std::string(name) + " skipped: " + error);
    }
}

// Our drivers send bursts with GSO when `gso` (the throughput runs); single messages are sent as they are.
template <std::size_t N, class Measure>
void for_each_contender(ScenarioResult& result, bool gso, Measure&& measure) {
    const auto driver = [gso](drivers::DriverKind kind) {
        return [kind, gso](DriverEndpoint<N>& endpoint, std::string& why) { return endpoint.open(kind, gso, why); };
    };
    const auto plain = [](auto& endpoint, std::string& why) { return endpoint.open(why); };
    run_contender<DriverEndpoint<N>>(result, gso ? kUringGsoName : kUringName, driver(drivers::DriverKind::uring),
                                     measure);
    run_contender<DriverEndpoint<N>>(result, gso ? kSocketGsoName : kSocketName, driver(drivers::DriverKind::socket),
                                     measure);
    run_contender<PlainEndpoint<N, false>>(result, kNonBlockingName, plain, measure);
    run_contender<PlainEndpoint<N, true>>(result, kBlockingName, plain, measure);
}

// Each contender gets two equal slices of the scenario's time (ping-pong and one-way, or 64 B and 1 KiB).
constexpr int kContenders = 4;
constexpr int kLoopsPerContender = 2;

}  // namespace

ScenarioResult run_udp_scenario(ScenarioContext& context) {
    constexpr std::size_t kBytes = 64;
    const TickRuler ruler;
    const BusLoopSetup slice = contender_slice(context, ruler, kContenders, kLoopsPerContender);
    const auto interval = static_cast<std::uint64_t>(kOneWayIntervalUs * 1e-6 * slice.ticks_per_second);
    ScenarioResult result;
    result.scenario = "udp";
    result.description = "64 B datagrams over 127.0.0.1 between two threads" + between_threads(slice) +
                         ": ping-pong round trip (RTT, ns) and open-loop one-way (one message every 20 us, from its "
                         "intended send time, ns)";
    context.progress.begin("udp", context.duration_s);
    double done = 0;
    // A fresh pair of endpoints for each loop, so that every endpoint is used by one thread only.
    std::vector<std::string> losses;
    for_each_contender<kBytes>(result, false, [&](const char* name, auto& a, auto& b) {
        LatencyHistogram rtt = make_picosecond_histogram();
        LoopCounts counts;
        net_ping_pong(a, b, slice, rtt, counts);
        context.progress.update(done += slice.seconds);
        result.series.push_back(make_series(size_label(kBytes) + " RTT: " + name, rtt));
        if (counts.lost + counts.stale != 0) {
            losses.push_back(std::string(name) + ": " + std::to_string(counts.lost) + " pings without a reply, " +
                             std::to_string(counts.stale) + " late replies");
        }
    });
    ScenarioResult one_way_pass;   // the same contenders again: keep the first pass's notes on what was skipped
    for_each_contender<kBytes>(one_way_pass, false, [&](const char* name, auto& a, auto& b) {
        LatencyHistogram one_way = make_picosecond_histogram();
        LoopCounts counts;
        udp_one_way(a, b, slice, interval, one_way, counts);
        context.progress.update(done += slice.seconds);
        result.series.push_back(make_series(size_label(kBytes) + " one-way: " + name, one_way));
        if (counts.lost != 0) losses.push_back(std::string(name) + ": " + std::to_string(counts.lost) + " one-way messages lost");
    });
    result.notes.insert(result.notes.end(), losses.begin(), losses.end());
    context.progress.end();

    const std::string size = size_label(kBytes);
    const Series* baseline_rtt = find_series(result, size + " RTT: " + kNonBlockingName);
    const Series* baseline_way = find_series(result, size + " one-way: " + kNonBlockingName);
    for (const char* name : {kUringName, kSocketName, kBlockingName}) {
        const Series* rtt = find_series(result, size + " RTT: " + name);
        const Series* way = find_series(result, size + " one-way: " + name);
        if (rtt != nullptr && baseline_rtt != nullptr) {
            result.ratios.push_back(make_ratio(size + " RTT " + name + " / " + kNonBlockingName, *rtt, *baseline_rtt));
        }
        if (way != nullptr && baseline_way != nullptr) {
            result.ratios.push_back(
                make_ratio(size + " one-way " + name + " / " + kNonBlockingName, *way, *baseline_way));
        }
    }
    for (const char* name : {kUringName, kSocketName, kNonBlockingName}) {
        if (const Series* rtt = find_series(result, size + " RTT: " + name); rtt != nullptr && rtt->p50_ns > 0) {
            result.figures.emplace_back(size + " RTT p99.9 / p50: " + name, rtt->p999_ns / rtt->p50_ns, "x",
                                        "RTT tail", name, "p99.9 / p50");
        }
    }
    return result;
}

namespace {

template <std::size_t N>
void throughput_at_size(ScenarioContext& context, const BusLoopSetup& slice, ScenarioResult& result, double& done) {
    const std::string size = size_label(N);
    for_each_contender<N>(result, true, [&](const char* name, auto& a, auto& b) {
        ThroughputOutcome out;
        net_throughput(a, b, slice, out);
        context.progress.update(done += slice.seconds);
        const double rate = median(out.rates);
        const double per_message = out.received == 0 ? 0 : static_cast<double>(out.syscalls) / out.received;
        const double lost = out.sent == 0 || out.received >= out.sent
                                ? 0
                                : 100.0 * static_cast<double>(out.sent - out.received) / static_cast<double>(out.sent);
        const std::string table = "udp-throughput";
        result.figures.emplace_back(size + " " + name + ": messages", rate / 1e6, "M msg/s", table, name,
                                    size + " M msg/s");
        result.figures.emplace_back(size + " " + name + ": payload", rate * N * 8 / 1e9, "Gbit/s", table, name,
                                    size + " Gbit/s");
        result.figures.emplace_back(size + " " + name + ": system calls", per_message, "per msg", table, name,
                                    size + " syscalls/msg");
        result.figures.emplace_back(size + " " + name + ": dropped by the kernel", lost, "%", table, name,
                                    size + " dropped %");
    });
}

}  // namespace

ScenarioResult run_udp_throughput_scenario(ScenarioContext& context) {
    const TickRuler ruler;
    const BusLoopSetup slice = contender_slice(context, ruler, kContenders, kLoopsPerContender);
    ScenarioResult result;
    result.scenario = "udp-throughput";
    result.description = "datagrams over 127.0.0.1, one sender thread (bursts of 32) to one receiver" +
                         between_threads(slice) +
                         ": median messages per second over 50 ms windows, payload Gbit/s, system calls per "
                         "message received (sender and receiver), share the kernel dropped";
    context.progress.begin("udp-throughput", context.duration_s);
    double done = 0;
    throughput_at_size<64>(context, slice, result, done);
    throughput_at_size<1024>(context, slice, result, done);
    context.progress.end();
    return result;
}

}  // namespace cf::latency
