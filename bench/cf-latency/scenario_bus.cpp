// bus: message latency between two pinned threads, ours against the peers, same message sizes and pinning.
//  - ping-pong RTT/2 at 64 B and 1 KiB;
//  - one-way open loop at a fixed rate (one message every 2 us), corrected for coordinated omission.
// bus-throughput: messages per second at 64 B, SPSC (one producer) and MPSC (three producers, one consumer);
//                 SPSC also in bursts of 32 (one claim and commit per burst, and one HLC reservation for a topic).
#include <cstdio>
#include <functional>
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
    double slice_s;          // time per loop of one slice (ping-pong or one-way)
    int partner_cpu;
    double done_s = 0;       // for progress
    ScenarioResult result;
#if CF_HAVE_ZMQ
    void* zmq = nullptr;
#endif

    BusLoopSetup setup() const { return BusLoopSetup{ruler, ticks_per_second, slice_s, partner_cpu}; }
    void advance() {
        done_s += 2 * slice_s;
        scenario.progress.update(done_s);
    }
};

// One contender of the latency loops: its channels (made once), and what its slices accumulate.
struct LatencyContender {
    std::string name;
    LatencyHistogram half_rtt = make_picosecond_histogram();
    LatencyHistogram one_way = make_picosecond_histogram();
    BusLoopErrors errors;
    std::function<void(LatencyContender&, const BusLoopSetup&, std::uint64_t interval)> run_slice;
};

// `make(i)` builds a fresh channel: 0 and 1 for ping-pong (there and back), 2 for one-way.
template <class Make>
void add_contender(BusContext& bus, std::vector<LatencyContender>& contenders, const std::string& name, Make&& make) {
    std::shared_ptr<typename decltype(make(0))::element_type> there = make(0), back = make(1), single = make(2);
    for (auto* channel : {there.get(), back.get(), single.get()}) {
        if (!channel->ok()) {
            bus.result.notes.push_back(name + " skipped: " + channel->error());
            return;
        }
    }
    LatencyContender contender;
    contender.name = name;
    contender.run_slice = [there, back, single](LatencyContender& self, const BusLoopSetup& setup,
                                                std::uint64_t interval) {
        ping_pong(*there, *back, setup, self.half_rtt, self.errors);
        one_way(*single, setup, interval, self.one_way, self.errors);
    };
    contenders.push_back(std::move(contender));
}

// Contenders take turns in short slices, round after round, so that a spell of bad luck on a shared host (a vCPU
// moved to a far core, a noisy neighbour) hits them all alike instead of whoever ran at the time.
constexpr int kRounds = 4;

template <std::size_t N>
void latency_at_size(BusContext& bus) {
    std::vector<LatencyContender> contenders;
    add_contender(bus, contenders, CfSpscChannel<N>::kName, [](int) { return std::make_unique<CfSpscChannel<N>>(kDepth); });
    add_contender(bus, contenders, CfTopicChannel<N>::kName, [](int) { return std::make_unique<CfTopicChannel<N>>(kDepth); });
    add_contender(bus, contenders, BoostSpscChannel<N>::kName,
                  [](int) { return std::make_unique<BoostSpscChannel<N>>(kDepth); });
    add_contender(bus, contenders, MoodycamelChannel<N>::kName,
                  [](int) { return std::make_unique<MoodycamelChannel<N>>(kDepth); });
#if CF_HAVE_ZMQ
    add_contender(bus, contenders, "zeromq inproc:// (PAIR, DONTWAIT)", [&](int which) {
        return std::make_unique<ZmqChannel<N>>(bus.zmq, "inproc://cf-bus-" + std::to_string(N) + "-" +
                                                             std::to_string(which), kDepth);
    });
#else
    bus.result.notes.push_back("zeromq not built in (libzmq3-dev missing when configured)");
#endif
    const auto interval = static_cast<std::uint64_t>(kOneWayIntervalUs * 1e-6 * bus.ticks_per_second);
    for (int round = 0; round < kRounds; ++round) {
        for (LatencyContender& contender : contenders) {
            contender.run_slice(contender, bus.setup(), interval);
            bus.advance();
        }
    }
    std::vector<Series> ping, one;
    for (const LatencyContender& contender : contenders) {
        if (contender.errors.out_of_order != 0) {
            bus.result.notes.push_back(contender.name + " " + size_label(N) + ": " +
                                       std::to_string(contender.errors.out_of_order) + " messages out of order or corrupt");
        }
        ping.push_back(make_series(size_label(N) + " ping-pong RTT/2: " + contender.name, contender.half_rtt));
        one.push_back(make_series(size_label(N) + " one-way: " + contender.name, contender.one_way));
    }
    bus.result.series.insert(bus.result.series.end(), ping.begin(), ping.end());
    bus.result.series.insert(bus.result.series.end(), one.begin(), one.end());
    // Ours (the topic, what users call) against every peer.
    std::size_t ours = contenders.size();
    for (std::size_t i = 0; i < contenders.size(); ++i) {
        if (contenders[i].name == CfTopicChannel<N>::kName) ours = i;
    }
    if (ours == contenders.size()) return;
    for (std::size_t i = 0; i < contenders.size(); ++i) {
        if (i == ours || contenders[i].name == CfSpscChannel<N>::kName) continue;
        const std::string versus = contenders[ours].name + " / " + contenders[i].name;
        bus.result.ratios.push_back(make_ratio(size_label(N) + " RTT/2 " + versus, ping[ours], ping[i]));
        bus.result.ratios.push_back(make_ratio(size_label(N) + " one-way " + versus, one[ours], one[i]));
    }
}

constexpr int kLatencyContenders = 5;

}  // namespace

ScenarioResult run_bus_scenario(ScenarioContext& context) {
    BusContext bus{context, TickRuler{}, 0, 0, context.cpus.size() > 1 ? context.cpus[1] : -1, 0, ScenarioResult{}};
    bus.ticks_per_second = bus.ruler.ticks_per_second();
    bus.slice_s = context.duration_s / (2 * 2 * kLatencyContenders * kRounds);   // ping-pong + one-way, 2 sizes
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

template <class Queue>
bool take_tagged(Queue& queue, std::uint64_t& producer, std::uint64_t& sequence) {
    Tagged message;
    if (!queue.try_dequeue(message)) return false;
    producer = message.producer;
    sequence = message.sequence;
    return true;
}

// boost::lockfree::queue says pop where moodycamel says try_dequeue.
template <>
bool take_tagged(boost::lockfree::queue<Tagged>& queue, std::uint64_t& producer, std::uint64_t& sequence) {
    Tagged message;
    if (!queue.pop(message)) return false;
    producer = message.producer;
    sequence = message.sequence;
    return true;
}

// One thread sends kSingleThreadBatch messages, then receives them: what each side costs the CPU per message with
// no other core involved (no cache line travels between cores). Medians of `rounds` batches, in nanoseconds, for
// each channel in `channels`, the channels taking turns batch by batch. A batch is long enough for coarse
// counters (qemu's, some ARM boards' at tens of ns a tick) to time it.
constexpr std::uint32_t kSingleThreadBatch = 512;
static_assert(kSingleThreadBatch <= kDepth, "a batch must fit in the channels");
struct SideCosts {
    std::vector<double> send_ns, receive_ns;
};

template <class... Channels>
std::vector<SideCosts> single_thread_costs(const TickRuler& ruler, int rounds, Channels&... channels) {
    std::vector<SideCosts> costs(sizeof...(Channels));
    std::uint64_t sequence = 0;
    const auto net_ns = [&](std::uint64_t ticks) {
        const std::uint64_t net = ticks > ruler.overhead_ticks() ? ticks - ruler.overhead_ticks() : 0;
        return static_cast<double>(ruler.to_picos(net)) / 1000.0 / kSingleThreadBatch;
    };
    for (int round = 0; round < rounds; ++round) {
        std::size_t index = 0;
        const auto measure = [&](auto& channel) {
            std::uint64_t stamp = 0, received = 0;
            const std::uint64_t start = platform::read_cycles_ordered();
            for (std::uint32_t i = 0; i < kSingleThreadBatch; ++i) (void)channel.try_send(0, sequence++);
            const std::uint64_t sent = platform::read_cycles_end();
            const std::uint64_t receive_start = platform::read_cycles_ordered();
            for (std::uint32_t i = 0; i < kSingleThreadBatch; ++i) (void)channel.try_receive(stamp, received);
            const std::uint64_t end = platform::read_cycles_end();
            keep(received);
            costs[index].send_ns.push_back(net_ns(sent - start));
            costs[index].receive_ns.push_back(net_ns(end - receive_start));
            ++index;
        };
        (measure(channels), ...);
    }
    return costs;
}

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
    // Contenders take turns in rounds (see kRounds); each figure is the median of all its windows.
    struct Contender {
        std::string label;
        std::function<void(const BusLoopSetup&, std::vector<double>&)> run;
        std::vector<double> rates;
    };
    std::vector<Contender> contenders;
    BusLoopErrors errors;
    // One producer; burst channels (try_send_burst) send kBurst messages per call.
    auto add_spsc = [&](std::string label, auto channel) {
        contenders.push_back({std::move(label), [&errors, &producer_cpus, channel](const BusLoopSetup& setup,
                                                                                     std::vector<double>& rates) {
            throughput(1, producer_cpus, setup,
                       [&](int, std::uint64_t seq) -> std::uint32_t {
                           if constexpr (requires { channel->try_send_burst(seq); }) {
                               return channel->try_send_burst(seq);
                           } else {
                               return channel->try_send(0, seq);
                           }
                       },
                       [&](std::uint64_t& producer, std::uint64_t& seq) { return channel->try_receive(producer, seq); },
                       errors, rates);
        }, {}});
    };
    add_spsc(std::string("SPSC: ") + CfSpscChannel<64>::kName, std::make_shared<CfSpscChannel<64>>(kDepth));
    add_spsc(std::string("SPSC: ") + CfTopicChannel<64>::kName, std::make_shared<CfTopicChannel<64>>(kDepth));
    add_spsc(std::string("SPSC: ") + BoostSpscChannel<64>::kName, std::make_shared<BoostSpscChannel<64>>(kDepth));
    add_spsc(std::string("SPSC: ") + MoodycamelChannel<64>::kName, std::make_shared<MoodycamelChannel<64>>(kDepth));
    // Bursts of kBurst (moodycamel's ReaderWriterQueue has no bulk calls, so it has no burst row).
    const std::string burst = "SPSC burst " + std::to_string(kBurst) + ": ";
    add_spsc(burst + CfSpscBurstChannel<64>::kName, std::make_shared<CfSpscBurstChannel<64>>(kDepth));
    add_spsc(burst + CfTopicBurstChannel<64>::kName, std::make_shared<CfTopicBurstChannel<64>>(kDepth));
    add_spsc(burst + BoostSpscBurstChannel<64>::kName, std::make_shared<BoostSpscBurstChannel<64>>(kDepth));

    using UnclockedTopic = CfTopicChannel<64, false>;   // the topic without the stamp's counter read
    auto ours_mpsc = std::make_shared<CfMpscChannel<64>>(kDepth);
    contenders.push_back({std::string("MPSC: ") + CfMpscChannel<64>::kName,
                          [&, ours_mpsc](const BusLoopSetup& setup, std::vector<double>& rates) {
        throughput(kProducers, producer_cpus, setup,
                   [&](int p, std::uint64_t seq) { return ours_mpsc->try_send(static_cast<std::uint64_t>(p), seq); },
                   [&](std::uint64_t& p, std::uint64_t& seq) { return ours_mpsc->try_receive(p, seq); }, errors, rates);
    }, {}});
    auto boost_queue = std::make_shared<boost::lockfree::queue<Tagged>>(kDepth);
    contenders.push_back({"MPSC: boost::lockfree::queue (bounded_push)",
                          [&, boost_queue](const BusLoopSetup& setup, std::vector<double>& rates) {
        throughput(kProducers, producer_cpus, setup,
                   [&](int p, std::uint64_t seq) {
                       return boost_queue->bounded_push(Tagged{static_cast<std::uint64_t>(p), seq, {}});
                   },
                   [&](std::uint64_t& p, std::uint64_t& seq) { return take_tagged(*boost_queue, p, seq); }, errors,
                   rates);
    }, {}});
    auto moody_queue = std::make_shared<moodycamel::ConcurrentQueue<Tagged>>(kDepth * 2, kProducers, 0);
    auto tokens = std::make_shared<std::vector<std::unique_ptr<moodycamel::ProducerToken>>>();
    for (int p = 0; p < kProducers; ++p) tokens->push_back(std::make_unique<moodycamel::ProducerToken>(*moody_queue));
    contenders.push_back({"MPSC: moodycamel::ConcurrentQueue (producer tokens)",
                          [&, moody_queue, tokens](const BusLoopSetup& setup, std::vector<double>& rates) {
        throughput(kProducers, producer_cpus, setup,
                   [&](int p, std::uint64_t seq) {
                       return moody_queue->try_enqueue(*(*tokens)[static_cast<std::size_t>(p)],
                                                       Tagged{static_cast<std::uint64_t>(p), seq, {}});
                   },
                   [&](std::uint64_t& p, std::uint64_t& seq) { return take_tagged(*moody_queue, p, seq); }, errors,
                   rates);
    }, {}});
    // Last, after the MPSC rows, so that the fixed indices read below stay as they were.
    const std::size_t unclocked_index = contenders.size();
    add_spsc(std::string("SPSC: ") + UnclockedTopic::kName, std::make_shared<UnclockedTopic>(kDepth));

    const BusLoopSetup setup{ruler, ticks_per_second,
                             context.duration_s / static_cast<double>(contenders.size() * kRounds),
                             producer_cpus.empty() ? -1 : producer_cpus[0]};
    double done = 0;
    context.progress.begin("bus-throughput", context.duration_s);
    for (int round = 0; round < kRounds; ++round) {
        for (Contender& contender : contenders) {
            contender.run(setup, contender.rates);
            done += setup.seconds;
            context.progress.update(done);
        }
    }
    for (const Contender& contender : contenders) result.figures.push_back({contender.label, median(contender.rates) / 1e6, "M msg/s"});
    const auto rate = [&](std::size_t i) { return median(contenders[i].rates); };
    const double topic = rate(1), boost = rate(2), moody = rate(3), ring_burst = rate(4), topic_burst = rate(5),
                 boost_burst = rate(6), mpsc = rate(7), boost_mpsc = rate(8), moody_mpsc = rate(9);
    context.progress.end();

    // The same 64 B channels on one thread: the CPU cost of each side per message, apart from what crossing
    // cores adds (batches of kSingleThreadBatch; kDepth holds them). Our topic is stamped from the counter, and from a fixed time (the counter read's share).
    {
        CfTopicChannel<64> topic_channel(kDepth);
        UnclockedTopic unclocked_channel(kDepth);
        CfSpscChannel<64> ring_channel(kDepth);
        BoostSpscChannel<64> boost_channel(kDepth);
        MoodycamelChannel<64> moody_channel(kDepth);
        const std::vector<SideCosts> costs = single_thread_costs(ruler, 2000, topic_channel, unclocked_channel,
                                                                 ring_channel, boost_channel, moody_channel);
        const char* names[] = {CfTopicChannel<64>::kName, UnclockedTopic::kName, CfSpscChannel<64>::kName,
                               BoostSpscChannel<64>::kName, MoodycamelChannel<64>::kName};
        for (std::size_t i = 0; i < costs.size(); ++i) {
            result.figures.push_back({std::string("SPSC one thread, send, per message: ") + names[i],
                                      median(costs[i].send_ns), "ns"});
            result.figures.push_back({std::string("SPSC one thread, receive, per message: ") + names[i],
                                      median(costs[i].receive_ns), "ns"});
        }
    }
    // Throughput ratios: above 1.0 means ours moves more messages per second. A contender that moved nothing
    // (possible in very short runs where producers are time-sliced on one CPU) gets a note instead of a ratio.
    const auto add_ratio = [&](const std::string& label, double ours, double peer) {
        if (ours > 0 && peer > 0) result.figures.push_back({label, ours / peer, "x"});
        else result.notes.push_back(label + ": no ratio (a contender moved no messages in its windows)");
    };
    add_ratio(std::string("SPSC ratio ") + CfTopicChannel<64>::kName + " / boost", topic, boost);
    add_ratio(std::string("SPSC ratio ") + CfTopicChannel<64>::kName + " / moodycamel", topic, moody);
    add_ratio(std::string("SPSC ratio ") + UnclockedTopic::kName + " / moodycamel", rate(unclocked_index), moody);
    add_ratio(std::string("SPSC ratio ") + CfSpscChannel<64>::kName + " / boost", rate(0), boost);
    add_ratio(std::string("SPSC ratio ") + CfSpscChannel<64>::kName + " / moodycamel", rate(0), moody);
    add_ratio(burst + "ratio " + CfTopicBurstChannel<64>::kName + " / boost", topic_burst, boost_burst);
    add_ratio(burst + "ratio " + CfSpscBurstChannel<64>::kName + " / boost", ring_burst, boost_burst);
    add_ratio("MPSC ratio ours / boost::lockfree::queue", mpsc, boost_mpsc);
    add_ratio("MPSC ratio ours / moodycamel::ConcurrentQueue", mpsc, moody_mpsc);
    if (errors.out_of_order != 0) {
        result.notes.push_back(std::to_string(errors.out_of_order) + " messages out of per-producer order");
    }
    return result;
}

}  // namespace cf::latency
