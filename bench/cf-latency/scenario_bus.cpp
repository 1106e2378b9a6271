// bus: message latency between two pinned threads, ours against the peers, same message sizes and pinning.
//  - ping-pong RTT/2 at 64 B and 1 KiB;
//  - one-way open loop at a fixed rate (one message every 2 us), corrected for coordinated omission.
// bus-throughput: messages per second at 64 B, SPSC (one producer) and MPSC (three producers, one consumer).
#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include <boost/lockfree/queue.hpp>
#include <concurrentqueue/concurrentqueue.h>

#include "bench/cf-latency/bus_measure.hpp"
#include "bench/cf-latency/bus_ours.hpp"
#include "bench/cf-latency/bus_peers.hpp"
#include "bench/cf-latency/scenario.hpp"

namespace cf::latency {
namespace {

constexpr std::uint32_t kDepth = 1024;
constexpr double kOneWayIntervalUs = 2.0;

struct BusContext {
    ScenarioContext& scenario;
    TickRuler ruler;
    double ticks_per_second;
    double slice_s;          // time per measured series
    int partner_cpu;
    double done_s = 0;       // for progress
    ScenarioResult result;
#if CF_HAVE_ZMQ
    void* zmq = nullptr;
#endif

    BusLoopSetup setup() const { return BusLoopSetup{ruler, ticks_per_second, slice_s, partner_cpu}; }
    void advance() {
        done_s += slice_s;
        scenario.progress.update(done_s);
    }
};

std::string size_label(std::size_t bytes) { return bytes >= 1024 ? std::to_string(bytes / 1024) + " KiB" : std::to_string(bytes) + " B"; }

// Runs both latency loops for one contender; `make` builds a fresh channel (twice for ping-pong: there and back).
template <std::size_t N, class Make>
void latency_pair(BusContext& bus, const std::string& name, Make&& make, Series* ping_out, Series* one_way_out) {
    auto there = make(0), back = make(1), single = make(2);
    for (auto* channel : {there.get(), back.get(), single.get()}) {
        if (!channel->ok()) {
            bus.result.notes.push_back(name + " skipped: " + channel->error());
            return;
        }
    }
    BusLoopErrors errors;
    LatencyHistogram half_rtt = make_picosecond_histogram();
    ping_pong(*there, *back, bus.setup(), half_rtt, errors);
    bus.advance();
    LatencyHistogram one = make_picosecond_histogram();
    const auto interval = static_cast<std::uint64_t>(kOneWayIntervalUs * 1e-6 * bus.ticks_per_second);
    one_way(*single, bus.setup(), interval, one, errors);
    bus.advance();
    if (errors.out_of_order != 0) {
        bus.result.notes.push_back(name + " " + size_label(N) + ": " + std::to_string(errors.out_of_order) +
                                   " messages out of order or corrupt");
    }
    *ping_out = make_series(size_label(N) + " ping-pong RTT/2: " + name, half_rtt);
    *one_way_out = make_series(size_label(N) + " one-way: " + name, one);
}

template <std::size_t N>
void latency_at_size(BusContext& bus) {
    struct Row {
        std::string name;
        Series ping, one_way;
    };
    std::vector<Row> rows;
    auto run = [&](const std::string& name, auto&& make) {
        Row row{name, {}, {}};
        latency_pair<N>(bus, name, make, &row.ping, &row.one_way);
        if (!row.ping.name.empty()) rows.push_back(row);   // empty: skipped, with a note saying why
    };
    run(CfSpscChannel<N>::kName, [](int) { return std::make_unique<CfSpscChannel<N>>(kDepth); });
    run(CfTopicChannel<N>::kName, [](int) { return std::make_unique<CfTopicChannel<N>>(kDepth); });
    run(BoostSpscChannel<N>::kName, [](int) { return std::make_unique<BoostSpscChannel<N>>(kDepth); });
    run(MoodycamelChannel<N>::kName, [](int) { return std::make_unique<MoodycamelChannel<N>>(kDepth); });
#if CF_HAVE_ZMQ
    run("zeromq inproc:// (PAIR, DONTWAIT)", [&](int which) {
        return std::make_unique<ZmqChannel<N>>(bus.zmq, "inproc://cf-bus-" + std::to_string(N) + "-" +
                                                             std::to_string(which), kDepth);
    });
#else
    bus.result.notes.push_back("zeromq not built in (libzmq3-dev missing when configured)");
#endif
    for (const Row& row : rows) bus.result.series.push_back(row.ping);
    for (const Row& row : rows) bus.result.series.push_back(row.one_way);
    // Ours (the topic, what users call) against every peer.
    const Row* ours = nullptr;
    for (const Row& row : rows) {
        if (row.name == CfTopicChannel<N>::kName) ours = &row;
    }
    if (ours == nullptr) return;
    for (const Row& row : rows) {
        if (&row == ours || row.name == CfSpscChannel<N>::kName) continue;
        bus.result.ratios.push_back(make_ratio(size_label(N) + " RTT/2 " + ours->name + " / " + row.name, ours->ping,
                                               row.ping));
        bus.result.ratios.push_back(make_ratio(size_label(N) + " one-way " + ours->name + " / " + row.name,
                                               ours->one_way, row.one_way));
    }
}

constexpr int kLatencyContenders = 5;

}  // namespace

ScenarioResult run_bus_scenario(ScenarioContext& context) {
    BusContext bus{context, TickRuler{}, 0, 0, context.cpus.size() > 1 ? context.cpus[1] : -1, 0, ScenarioResult{}};
    bus.ticks_per_second = bus.ruler.ticks_per_second();
    bus.slice_s = context.duration_s / (2 * 2 * kLatencyContenders);
    bus.result.scenario = "bus";
    bus.result.description = "two threads" + std::string(bus.partner_cpu >= 0 ? " on two pinned CPUs" : " (one CPU!)") +
                             ": ping-pong RTT/2 and open-loop one-way (one message every 2 us, timed from its intended "
                             "send time), ns; depth 1024; every contender spins";
#if CF_HAVE_ZMQ
    bus.zmq = zmq_ctx_new();
#endif
    context.progress.begin("bus", context.duration_s);
    latency_at_size<64>(bus);
    latency_at_size<1024>(bus);
    context.progress.end();
#if CF_HAVE_ZMQ
    zmq_ctx_term(bus.zmq);
#endif
    if (bus.partner_cpu < 0) bus.result.notes.push_back("only one CPU available: both threads share it");
    return bus.result;
}

namespace {

// MPSC peers: Boost.Lockfree's bounded MPMC queue and moodycamel's ConcurrentQueue with explicit producer tokens,
// both used without allocation after set-up (bounded_push / try_enqueue into preallocated blocks).
struct Tagged {
    std::uint64_t producer;
    std::uint64_t sequence;
    std::byte body[48];
};
static_assert(sizeof(Tagged) == 64);

}  // namespace

ScenarioResult run_bus_throughput_scenario(ScenarioContext& context) {
    const TickRuler ruler;
    const double ticks_per_second = ruler.ticks_per_second();
    ScenarioResult result;
    result.scenario = "bus-throughput";
    constexpr int kProducers = 3;
    std::vector<int> producer_cpus(context.cpus.begin() + (context.cpus.size() > 1 ? 1 : 0), context.cpus.end());
    result.description = "64 B messages per second, median of 50 ms windows (shorter in runs under 0.2 s); SPSC: one producer thread; MPSC: " +
                         std::to_string(kProducers) + " producers on CPU(s) " + platform::format_cpu_list(producer_cpus) +
                         ", one consumer";
    if (static_cast<int>(producer_cpus.size()) < kProducers) {
        result.notes.push_back("fewer CPUs than MPSC threads: producers share CPUs, so MPSC figures include time-slicing");
    }
    constexpr int kContenders = 7;
    const BusLoopSetup setup{ruler, ticks_per_second, context.duration_s / kContenders,
                             producer_cpus.empty() ? -1 : producer_cpus[0]};
    BusLoopErrors errors;
    double done = 0;
    context.progress.begin("bus-throughput", context.duration_s);
    auto record = [&](const std::string& label, double rate) {
        result.figures.push_back({label, rate / 1e6, "M msg/s"});
        done += setup.seconds;
        context.progress.update(done);
        return rate;
    };
    auto spsc = [&](auto& channel) {
        return throughput(1, producer_cpus, setup, [&](int, std::uint64_t seq) { return channel.try_send(0, seq); },
                          [&](std::uint64_t& producer, std::uint64_t& seq) { return channel.try_receive(producer, seq); },
                          errors);
    };
    CfSpscChannel<64> ours_spsc(kDepth);
    CfTopicChannel<64> ours_topic(kDepth);
    BoostSpscChannel<64> boost_spsc(kDepth);
    MoodycamelChannel<64> moodycamel_spsc(kDepth);
    const double ring = record(std::string("SPSC: ") + CfSpscChannel<64>::kName, spsc(ours_spsc));
    const double topic = record(std::string("SPSC: ") + CfTopicChannel<64>::kName, spsc(ours_topic));
    const double boost = record(std::string("SPSC: ") + BoostSpscChannel<64>::kName, spsc(boost_spsc));
    const double moody = record(std::string("SPSC: ") + MoodycamelChannel<64>::kName, spsc(moodycamel_spsc));

    CfMpscChannel<64> ours_mpsc(kDepth);
    const double mpsc = record(std::string("MPSC: ") + CfMpscChannel<64>::kName,
                               throughput(kProducers, producer_cpus, setup,
                                          [&](int p, std::uint64_t seq) { return ours_mpsc.try_send(static_cast<std::uint64_t>(p), seq); },
                                          [&](std::uint64_t& p, std::uint64_t& seq) { return ours_mpsc.try_receive(p, seq); },
                                          errors));
    boost::lockfree::queue<Tagged> boost_queue(kDepth);
    const double boost_mpsc = record("MPSC: boost::lockfree::queue (bounded_push)",
        throughput(kProducers, producer_cpus, setup,
                   [&](int p, std::uint64_t seq) { return boost_queue.bounded_push(Tagged{static_cast<std::uint64_t>(p), seq, {}}); },
                   [&](std::uint64_t& p, std::uint64_t& seq) {
                       Tagged message;
                       if (!boost_queue.pop(message)) return false;
                       p = message.producer;
                       seq = message.sequence;
                       return true;
                   },
                   errors));
    moodycamel::ConcurrentQueue<Tagged> moody_queue(kDepth * 2, kProducers, 0);
    std::vector<std::unique_ptr<moodycamel::ProducerToken>> tokens;
    for (int p = 0; p < kProducers; ++p) tokens.push_back(std::make_unique<moodycamel::ProducerToken>(moody_queue));
    const double moody_mpsc = record("MPSC: moodycamel::ConcurrentQueue (producer tokens)",
        throughput(kProducers, producer_cpus, setup,
                   [&](int p, std::uint64_t seq) {
                       return moody_queue.try_enqueue(*tokens[static_cast<std::size_t>(p)], Tagged{static_cast<std::uint64_t>(p), seq, {}});
                   },
                   [&](std::uint64_t& p, std::uint64_t& seq) {
                       Tagged message;
                       if (!moody_queue.try_dequeue(message)) return false;
                       p = message.producer;
                       seq = message.sequence;
                       return true;
                   },
                   errors));
    context.progress.end();
    (void)ring;
    // Throughput ratios: above 1.0 means ours moves more messages per second.
    result.figures.push_back({std::string("SPSC ratio ") + CfTopicChannel<64>::kName + " / boost", topic / boost, "x"});
    result.figures.push_back({std::string("SPSC ratio ") + CfTopicChannel<64>::kName + " / moodycamel", topic / moody, "x"});
    result.figures.push_back({"MPSC ratio ours / boost::lockfree::queue", mpsc / boost_mpsc, "x"});
    result.figures.push_back({"MPSC ratio ours / moodycamel::ConcurrentQueue", mpsc / moody_mpsc, "x"});
    if (errors.out_of_order != 0) {
        result.notes.push_back(std::to_string(errors.out_of_order) + " messages out of per-producer order");
    }
    return result;
}

}  // namespace cf::latency
