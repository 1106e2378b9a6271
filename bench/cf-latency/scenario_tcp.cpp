// tcp: one loopback TCP connection between two threads on two pinned CPUs, our io_uring and socket stream drivers
// side by side with plain non-blocking sockets (tcp_endpoints.hpp), in one run, through the udp scenarios' loops
// (net_measure.hpp):
//  - ping-pong round trips of 64 B frames (RTT, not halved, as in udp), ratios against plain sockets, RTT tail;
//  - throughput: one sender thread sends bursts of 32 frames as fast as the connection takes them, this thread
//    receives; messages per second (median of 50 ms windows), payload Gbit/s, system calls per message (both
//    sides), 64 B and 1 KiB, and each driver's rate over plain sockets'.
// TCP loses nothing and pushes back (a full send buffer makes send return false, the sender retries), so there is
// no dropped share; a connection that does not come up is a note, not a hang (the handshake has a deadline).
#include <algorithm>
#include <string>
#include <utility>
#include <vector>

#include "bench/cf-latency/bus_measure.hpp"
#include "bench/cf-latency/net_measure.hpp"
#include "bench/cf-latency/scenario.hpp"
#include "bench/cf-latency/series.hpp"
#include "bench/cf-latency/tcp_endpoints.hpp"

namespace cf::latency {
namespace {

const char* const kUringName = "cf uring driver";
const char* const kSocketName = "cf socket driver";
const char* const kPlainName = "plain sockets, non-blocking busy-poll";

// Each contender gets three equal slices of the scenario's time: ping-pong, 64 B and 1 KiB throughput.
constexpr int kContenders = 3;
constexpr int kLoopsPerContender = 3;

// A connected pair of endpoints of type E: `open(E&, listener, error)` opens the listening side (listener null),
// then the side that connects to it; `measure(name, listening, connecting)` runs a loop on them. Noted if they do
// not open.
template <class E, class Open, class Measure>
void run_contender(ScenarioResult& result, const char* name, Open&& open, Measure&& measure) {
    E listening, connecting;
    std::string error;
    if (open(listening, nullptr, error) == 0 && open(connecting, &listening.address(), error) == 0) {
        measure(name, listening, connecting);
    } else {
        result.notes.push_back(std::string(name) + " skipped: " + error);
    }
}

template <std::size_t N, class Measure>
void for_each_contender(ScenarioResult& result, Measure&& measure) {
    const auto driver = [](drivers::DriverKind kind) {
        return [kind](StreamDriverEndpoint<N>& endpoint, const drivers::PeerAddress* listener, std::string& why) {
            return endpoint.open(kind, listener, why);
        };
    };
    const auto plain = [](PlainTcpEndpoint<N>& endpoint, const drivers::PeerAddress* listener, std::string& why) {
        return endpoint.open(listener, why);
    };
    run_contender<StreamDriverEndpoint<N>>(result, kUringName, driver(drivers::DriverKind::uring), measure);
    run_contender<StreamDriverEndpoint<N>>(result, kSocketName, driver(drivers::DriverKind::socket), measure);
    run_contender<PlainTcpEndpoint<N>>(result, kPlainName, plain, measure);
}

// Why a loop measured nothing: one side's connection did not come up.
template <class A, class B>
std::string not_connected(const char* name, const std::string& what, const A& a, const B& b) {
    std::string why = a.failure().empty() ? "" : "listening side: " + a.failure();
    if (!b.failure().empty()) why += (why.empty() ? "" : "; ") + std::string("connecting side: ") + b.failure();
    return std::string(name) + ": " + what + " not measured, no connection (" + why + ")";
}

void round_trips(ScenarioContext& context, const BusLoopSetup& slice, ScenarioResult& result, double& done) {
    constexpr std::size_t kBytes = 64;
    const std::string size = size_label(kBytes);
    std::vector<std::string> problems;
    for_each_contender<kBytes>(result, [&](const char* name, auto& a, auto& b) {
        LatencyHistogram rtt = make_picosecond_histogram();
        LoopCounts counts;
        const bool connected = net_ping_pong(a, b, slice, rtt, counts);
        context.progress.update(done += slice.seconds);
        if (!connected) {
            problems.push_back(not_connected(name, "RTT", a, b));
            return;
        }
        result.series.push_back(make_series(size + " RTT: " + name, rtt));
        if (counts.lost + counts.stale != 0) {
            problems.push_back(std::string(name) + ": " + std::to_string(counts.lost) + " pings without a reply, " +
                               std::to_string(counts.stale) + " late replies");
        }
    });
    result.notes.insert(result.notes.end(), problems.begin(), problems.end());

    const Series* baseline = find_series(result, size + " RTT: " + kPlainName);
    for (const char* name : {kUringName, kSocketName}) {
        const Series* rtt = find_series(result, size + " RTT: " + name);
        if (rtt != nullptr && baseline != nullptr) {
            result.ratios.push_back(make_ratio(size + " RTT " + name + " / " + kPlainName, *rtt, *baseline));
        }
    }
    for (const char* name : {kUringName, kSocketName, kPlainName}) {
        if (const Series* rtt = find_series(result, size + " RTT: " + name); rtt != nullptr && rtt->p50_ns > 0) {
            result.figures.emplace_back(size + " RTT p99.9 / p50: " + name, rtt->p999_ns / rtt->p50_ns, "x",
                                        "RTT tail", name, "p99.9 / p50");
        }
    }
}

template <std::size_t N>
void throughput_at_size(ScenarioContext& context, const BusLoopSetup& slice, ScenarioResult& result, double& done) {
    const std::string size = size_label(N);
    const std::string table = "tcp-throughput";
    ScenarioResult again;   // the ping-pong pass noted what was skipped already: only a new reason is added
    std::vector<std::pair<std::string, double>> rates;   // messages per second, by contender
    for_each_contender<N>(again, [&](const char* name, auto& a, auto& b) {
        ThroughputOutcome out;
        const bool connected = net_throughput(a, b, slice, out);
        context.progress.update(done += slice.seconds);
        if (!connected) {
            result.notes.push_back(not_connected(name, size + " throughput", a, b));
            return;
        }
        const double rate = median(out.rates);
        const double per_message = out.received == 0 ? 0 : static_cast<double>(out.syscalls) / out.received;
        rates.emplace_back(name, rate);
        result.figures.emplace_back(size + " " + name + ": messages", rate / 1e6, "M msg/s", table, name,
                                    size + " M msg/s");
        result.figures.emplace_back(size + " " + name + ": payload", rate * N * 8 / 1e9, "Gbit/s", table, name,
                                    size + " Gbit/s");
        result.figures.emplace_back(size + " " + name + ": system calls", per_message, "per msg", table, name,
                                    size + " syscalls/msg");
    });
    for (const std::string& note : again.notes) {
        if (std::find(result.notes.begin(), result.notes.end(), note) == result.notes.end()) {
            result.notes.push_back(note);
        }
    }
    const auto plain = std::find_if(rates.begin(), rates.end(), [](const auto& entry) {
        return entry.first == kPlainName;
    });
    if (plain == rates.end() || plain->second <= 0) return;
    for (const auto& [name, rate] : rates) {
        if (name == kPlainName || rate <= 0) continue;
        result.figures.emplace_back(size + " " + name + " / " + kPlainName + ": messages", rate / plain->second,
                                    "x", table, name, size + " x plain");
    }
}

}  // namespace

ScenarioResult run_tcp_scenario(ScenarioContext& context) {
    const TickRuler ruler;
    const BusLoopSetup slice = contender_slice(context, ruler, kContenders, kLoopsPerContender);
    ScenarioResult result;
    result.scenario = "tcp";
    result.description = "one TCP connection over 127.0.0.1 between two threads" + between_threads(slice) +
                         ": 64 B frames ping-pong (RTT, ns); one sender thread (bursts of 32) to one receiver: "
                         "median messages per second over 50 ms windows, payload Gbit/s, system calls per message "
                         "received (sender and receiver), 64 B and 1 KiB frames";
    context.progress.begin("tcp", context.duration_s);
    double done = 0;
    round_trips(context, slice, result, done);
    throughput_at_size<64>(context, slice, result, done);
    throughput_at_size<1024>(context, slice, result, done);
    context.progress.end();
    return result;
}

}  // namespace cf::latency
