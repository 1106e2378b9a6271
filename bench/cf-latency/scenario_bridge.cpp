// bridge: two engines in this process, each with a bridge (engine/runtime/bridge.hpp) over 127.0.0.1. Engine A's
// topic is forwarded to B, whose bridge republishes it on B's topic. A thread on a second pinned CPU publishes on
// A's topic on a fixed schedule (one 64 B message every 20 us) and polls bridge A between messages; this thread
// polls bridge B and B's subscriber. Over our io_uring driver and our socket driver, per message:
//  - one-way: B's subscriber has it - its intended send time, on the cycle counter (one clock on one host). Timed
//    from the schedule, not from when it got out, so a stall delays every message behind it in the samples too
//    (the coordinated-omission correction of bus_measure.hpp's one_way);
//  - one-way via offset estimate: what a receiver on another host computes. The payload also carries the intended
//    send time on A's clock; B maps it to its own clock with the offset its bridge estimated from probes
//    (OffsetEstimator::remote_to_local) and subtracts it from its clock at receipt;
//  - overhead outside the driver calls: see StepClock. A lower bound on what the bridge adds to a plain
//    driver-to-driver one-way (that figure is the udp scenario's, not repeated here).
// At the end, B's estimate of A's clock offset, its bound and the drift. Both bridges read the same process clock,
// so the true offset is 0 and the true drift 0: a bound that misses them is a bug, reported as an ERROR note (as is
// a conversion whose error exceeds its own bound).
// UDP may lose datagrams: every wait has a deadline, and what never arrived is counted.
#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "bench/cf-latency/bus_measure.hpp"
#include "bench/cf-latency/scenario.hpp"
#include "bench/cf-latency/series.hpp"
#include "engine/bus/publisher.hpp"
#include "engine/bus/subscriber.hpp"
#include "engine/runtime/bridge.hpp"
#include "engine/runtime/engine.hpp"
#include "platform/os/cycle_counter.hpp"
#include "platform/os/last_error.hpp"

namespace cf::latency {
namespace {

constexpr std::uint32_t kBytes = 64;
constexpr double kIntervalUs = 20.0;
constexpr double kDrainS = 0.1;            // after the last intended send: what has not arrived by then is lost
constexpr std::uint32_t kTopicId = 1;
constexpr std::uint32_t kTopicDepth = 1024;
constexpr std::uint64_t kNone = UINT64_MAX;   // a per-message time that was never taken

const char* const kUringName = "bridge over cf uring driver";
const char* const kSocketName = "bridge over cf socket driver";
const char* const kKeyedName = "keyed bridge (HMAC) over cf socket driver";

// The bridges' time source: the process's clock (both bridges read the same one, so A's true offset from B is 0),
// noting the cycle counter at each read. Bridge::poll reads its time source last for the probe check at the start
// of its send step (step 3 in bridge.hpp: after receiving and republishing, before draining forwarded topics), so
// the last read of a poll marks where its send step began. That gives the overhead series, per message:
//   on A: intended send time -> the start of the send step of the poll that took the message: waiting for the
//         poll in progress to end, publishing, and that poll's receive step (a bridge receives before it sends);
//   on B: the end of the receive step of the poll that republished it -> B's subscriber has it: the rest of that
//         poll (a probe it may send) and the subscriber's poll.
// Not in it: framing, decoding and republishing, which run between the drivers' calls inside the steps and cannot
// be timed from outside; hence a lower bound.
struct alignas(64) StepClock {
    std::uint64_t last_read_ticks = 0;
    static Instant now(void* self) noexcept {
        static_cast<StepClock*>(self)->last_read_ticks = platform::read_cycles();
        return default_clock().now();
    }
};

// Payload: intended send time (cycle counter), sequence, intended send time on A's clock (femtoseconds).
void write_payload(std::byte* data, std::uint64_t intended_ticks, std::uint64_t sequence, Instant intended_a) {
    const Femtos femtos = intended_a.femtos();
    std::memcpy(data, &intended_ticks, 8);
    std::memcpy(data + 8, &sequence, 8);
    std::memcpy(data + 16, &femtos, 16);
}

void read_payload(const std::byte* data, std::uint64_t& intended_ticks, std::uint64_t& sequence,
                  Instant& intended_a) {
    Femtos femtos = 0;
    std::memcpy(&intended_ticks, data, 8);
    std::memcpy(&sequence, data + 8, 8);
    std::memcpy(&femtos, data + 16, 16);
    intended_a = Instant::from_femtos(femtos);
}

// Two engines, a topic and a bridge each, wired A -> B. Members are destroyed in reverse: endpoints, bridges, then
// the engines that hold the topics.
struct BridgePair {
    std::unique_ptr<Engine> a, b;
    StepClock clock_a, clock_b;   // written by the thread polling each bridge
    EngineTopic* source = nullptr;
    EngineTopic* target = nullptr;
    std::unique_ptr<Bridge> bridge_a, bridge_b;
    bus::Publisher publisher;     // on A's topic, used by the sending thread
    bus::Subscriber subscriber;   // on B's topic, used by this thread

    // 0, or a negative errno with `error` saying why (io_uring unavailable, no free port...).
    int open(drivers::DriverKind kind, bool keyed, std::string& error) {
        int status = 0;
        const auto failed = [&](const char* what) {
            error = std::string(what) + ": " + platform::last_error_message();
            return status;
        };
        EngineConfig engine_config;
        engine_config.pool_bytes_per_class = 64 << 10;   // the bridges and topics do not use the pool
        engine_config.prefer_hugepages = false;
        engine_config.node_id = 1;
        if ((status = Engine::create(engine_config, a)) != 0) return failed("engine A");
        engine_config.node_id = 2;
        if ((status = Engine::create(engine_config, b)) != 0) return failed("engine B");
        bus::TopicConfig topic;
        topic.max_message_bytes = kBytes;
        topic.depth = kTopicDepth;
        topic.name = "bench.bridge.a";
        if ((status = a->create_topic(topic, false, 0, source)) != 0) return failed("topic on A");
        topic.name = "bench.bridge.b";
        if ((status = b->create_topic(topic, false, 0, target)) != 0) return failed("topic on B");

        BridgeConfig config;
        config.driver = kind;
        (void)drivers::PeerAddress::parse("127.0.0.1:0", config.udp.bind);
        config.udp.pool.count = 1024;
        config.udp.pool.prefer_hugepages = false;
        config.udp.zerocopy_min_bytes = 0;   // 64 B messages: copying is cheaper than notifications
        config.max_topics = 1;
        config.now = &StepClock::now;
        config.now_context = &clock_a;
        if (keyed) {   // the same pre-shared key on both sides: every datagram sealed and verified
            config.key.set = true;
            config.key.id = 1;
            for (std::size_t i = 0; i < sizeof config.key.bytes; ++i) {
                config.key.bytes[i] = static_cast<std::uint8_t>(i);
            }
        }
        if ((status = Bridge::create(*a, config, bridge_a)) != 0) return failed("bridge A");
        config.peer = bridge_a->local_address();
        config.now_context = &clock_b;
        if ((status = Bridge::create(*b, config, bridge_b)) != 0) return failed("bridge B");
        if ((status = bridge_a->set_peer(bridge_b->local_address())) != 0) return failed("bridge A peer");
        if ((status = bridge_a->forward(source, kTopicId)) != 0) return failed("bridge A forward");
        if ((status = bridge_b->republish(kTopicId, target)) != 0) return failed("bridge B republish");
        if ((status = bus::Publisher::open(source->topic(), a->clock(), publisher)) != 0) return failed("publisher");
        if ((status = bus::Subscriber::open(target->topic(), subscriber)) != 0) return failed("subscriber");
        return 0;
    }
};

struct Outcome {
    LatencyHistogram one_way = make_picosecond_histogram();
    LatencyHistogram via_offset = make_picosecond_histogram();
    LatencyHistogram overhead = make_picosecond_histogram();
    LatencyHistogram conversion_bound = make_picosecond_histogram();
    std::uint64_t scheduled = 0, sent = 0, received = 0;
    std::uint64_t malformed = 0;        // a message of the wrong length or an unknown sequence: a bug
    std::uint64_t not_converted = 0;    // measured messages that arrived before B had an offset estimate
    std::uint64_t negative = 0;         // one-way via the estimate below zero (recorded as 0)
    std::uint64_t outside_bound = 0;    // conversions off the truth (offset 0) by more than their bound: a bug
};

std::int64_t picos_of(Duration duration) { return static_cast<std::int64_t>(duration.femtos() / 1000); }

// The sending thread's loop (on setup.partner_cpu): message i at tick first + i * interval, bridge A polled while
// waiting and once right after publishing; afterwards bridge A keeps answering B's probes until `done` or `give_up`.
// Message i is the i-th data frame bridge A sends (the topic starts empty and each message becomes one frame), so
// after every poll the frames it took get that poll's send-step tick, however far behind the bridge is.
void send_on_schedule(BridgePair& pair, const BusLoopSetup& setup, std::uint64_t first, std::uint64_t interval,
                      std::uint64_t count, std::uint64_t give_up, const std::atomic<bool>& done,
                      std::vector<std::uint64_t>& send_step, std::uint64_t& sent) {
    Bridge& bridge = *pair.bridge_a;
    std::uint64_t taken = 0;
    const auto poll = [&] {
        (void)bridge.poll();
        const std::uint64_t frames = std::min(bridge.stats().frames_out, count);
        for (; taken < frames; ++taken) send_step[taken] = pair.clock_a.last_read_ticks;
    };
    alignas(16) std::byte payload[kBytes];
    std::memset(payload, 0x5a, sizeof payload);
    for (std::uint64_t i = 0; i < count; ++i) {
        const std::uint64_t intended = first + i * interval;
        while (platform::read_cycles() < intended) poll();
        // A's clock at the intended time: read now, less the lateness A's own counter measured (as a sender on its
        // own host would stamp its schedule).
        const std::uint64_t ticks = platform::read_cycles();
        const Instant late_a = default_clock().now();
        write_payload(payload, intended, i, late_a - Duration::from_picos(setup.ruler.to_picos(ticks - intended)));
        bool published = false;
        while (!(published = pair.publisher.publish(payload, kBytes) == 0) && platform::read_cycles() < give_up) {
            poll();   // back-pressure: the bridge drains the topic
        }
        if (!published) break;
        ++sent;
        poll();
    }
    while (!done.load(std::memory_order_relaxed) && platform::read_cycles() < give_up) poll();
}

void measure(BridgePair& pair, const BusLoopSetup& setup, std::uint64_t interval, Outcome& out) {
    const std::uint64_t count = static_cast<std::uint64_t>(setup.seconds * setup.ticks_per_second) / interval;
    const std::uint64_t warmup = std::min<std::uint64_t>(count / 20, 1000);
    const auto drain_ticks = static_cast<std::uint64_t>(kDrainS * setup.ticks_per_second);
    // Per message, filled by the two threads and combined after the join (allocated here, not per message).
    std::vector<std::uint64_t> send_step(count, kNone), receive_part(count, kNone);
    std::atomic<bool> done{false};
    std::uint64_t sent = 0;
    ScheduledSender sender(setup, [&](std::uint64_t first) {
        send_on_schedule(pair, setup, first, interval, count, first + count * interval + 2 * drain_ticks, done,
                         send_step, sent);
    });
    const std::uint64_t first = sender.start(interval);
    const std::uint64_t deadline = first + count * interval + drain_ticks;

    Bridge& bridge = *pair.bridge_b;
    const OffsetEstimator& estimator = bridge.offset_estimator();
    std::uint64_t receive_step_end = 0;
    const auto on_message = [&](const bus::Message& message) {
        const std::uint64_t now = platform::read_cycles_after_loads();
        const Instant now_b = default_clock().now();
        std::uint64_t intended = 0, sequence = 0;
        Instant intended_a;
        if (message.length != kBytes) {
            ++out.malformed;
            return;
        }
        read_payload(message.data, intended, sequence, intended_a);
        if (sequence >= count || receive_part[sequence] != kNone) {
            ++out.malformed;
            return;
        }
        ++out.received;
        receive_part[sequence] = now > receive_step_end ? now - receive_step_end : 0;
        if (sequence < warmup) return;
        out.one_way.record(setup.ruler.to_picos(now > intended ? now - intended : 0));
        Instant local;
        Duration bound;
        if (estimator.remote_to_local(intended_a, local, bound) != 0) {
            ++out.not_converted;
            return;
        }
        const Duration via_offset = now_b - local;
        if (via_offset < Duration{}) ++out.negative;
        out.via_offset.record(via_offset < Duration{} ? 0 : picos_of(via_offset));
        out.conversion_bound.record(picos_of(bound));
        const Duration error = local - intended_a;   // both bridges read one clock: the true local time is remote
        if (error > bound || -error > bound) ++out.outside_bound;
    };
    while (out.received < count && platform::read_cycles() < deadline) {
        (void)bridge.poll();
        receive_step_end = pair.clock_b.last_read_ticks;
        while (pair.subscriber.poll(bus::kMaxPollBatch, on_message) != 0) {
        }
    }
    done.store(true, std::memory_order_relaxed);
    sender.join();

    for (std::uint64_t i = warmup; i < count; ++i) {
        if (send_step[i] == kNone || receive_part[i] == kNone) continue;
        const std::uint64_t intended = first + i * interval;
        const std::uint64_t on_a = send_step[i] > intended ? send_step[i] - intended : 0;
        out.overhead.record(setup.ruler.to_picos(on_a + receive_part[i]));
    }
    out.scheduled += count;
    out.sent += sent;
}

// One contender: its bridges, the loop, and what it found as series, figures and notes.
void run_contender(ScenarioResult& result, const char* name, drivers::DriverKind kind, bool keyed,
                   const BusLoopSetup& setup, std::uint64_t interval) {
    BridgePair pair;
    std::string error;
    if (pair.open(kind, keyed, error) != 0) {
        result.notes.push_back(std::string(name) + " skipped: " + error);
        return;
    }
    Outcome out;
    measure(pair, setup, interval, out);

    const std::string size = size_label(kBytes);
    const std::string who = std::string(name) + ": ";
    const auto add_series = [&](const std::string& what, const LatencyHistogram& histogram) {
        if (histogram.count() != 0) result.series.push_back(make_series(size + " " + what + ": " + name, histogram));
        else result.notes.push_back(who + "no samples for '" + what + "'");
    };
    add_series("one-way", out.one_way);
    add_series("one-way via offset estimate", out.via_offset);
    // The overhead's send side takes message i to be bridge A's i-th frame: true unless A dropped one.
    BridgeTopicStats sent;
    if (pair.bridge_a->topic_stats(kTopicId, sent) == 0 && sent.forward_too_large + sent.forward_dropped == 0) {
        add_series("overhead outside the driver calls", out.overhead);
    } else {
        result.notes.push_back(who + "bridge A dropped " + std::to_string(sent.forward_too_large) + " too large, " +
                               std::to_string(sent.forward_dropped) + " without a buffer: no overhead series");
    }

    if (out.received < out.scheduled) {
        result.notes.push_back(who + std::to_string(out.scheduled - out.received) + " of " +
                               std::to_string(out.scheduled) + " messages lost (" +
                               std::to_string(out.scheduled - out.sent) + " never published in time)");
    }
    if (out.malformed != 0) {
        result.notes.push_back("ERROR: " + who + std::to_string(out.malformed) + " messages malformed or repeated");
    }
    if (out.not_converted != 0) {
        result.notes.push_back(who + std::to_string(out.not_converted) +
                               " measured messages arrived before B had a clock offset estimate (not converted)");
    }
    if (out.negative != 0) {
        result.notes.push_back(who + std::to_string(out.negative) +
                               " one-way values via the offset estimate were negative (recorded as 0)");
    }
    if (out.outside_bound != 0) {
        result.notes.push_back("ERROR: " + who + std::to_string(out.outside_bound) +
                               " send stamps converted with remote_to_local were off the truth by more than their "
                               "bound");
    }

    BridgeTopicStats in;
    if (pair.bridge_b->topic_stats(kTopicId, in) == 0 &&
        in.gaps + in.duplicates + in.late + in.publish_full + in.session_resets != 0) {
        result.notes.push_back(who + "bridge B counted " + std::to_string(in.gaps) + " gaps, " +
                               std::to_string(in.duplicates) + " duplicates, " + std::to_string(in.late) +
                               " late, " + std::to_string(in.publish_full) + " dropped (topic full), " +
                               std::to_string(in.session_resets) + " session resets");
    }
    const BridgeStats& a = pair.bridge_a->stats();
    const BridgeStats& b = pair.bridge_b->stats();
    if (a.tx_errors + a.rx_errors + b.tx_errors + b.rx_errors + a.control_dropped + b.control_dropped != 0) {
        result.notes.push_back(who + "driver errors: A tx " + std::to_string(a.tx_errors) + " rx " +
                               std::to_string(a.rx_errors) + ", B tx " + std::to_string(b.tx_errors) + " rx " +
                               std::to_string(b.rx_errors) + "; control frames not sent: A " +
                               std::to_string(a.control_dropped) + ", B " + std::to_string(b.control_dropped));
    }

    OffsetEstimator::Estimate estimate;
    if (pair.bridge_b->clock_offset(estimate) != 0) {
        result.notes.push_back(who + "no clock offset estimate: " + platform::last_error_message());
        return;
    }
    const double offset_ns = estimate.offset.to_nanos_f64();
    const double bound_ns = estimate.bound.to_nanos_f64();
    // The figures hold magnitudes (the report's figures are positive); the signs are in the note below.
    const std::string table = "bridge: B's estimate of A's clock (true offset 0, drift 0)";
    if (offset_ns != 0) result.figures.emplace_back(who + "offset estimate, magnitude", std::fabs(offset_ns), "ns",
                                                    table, name, "|offset| ns");
    result.figures.emplace_back(who + "offset bound", bound_ns, "ns", table, name, "bound ns");
    if (estimate.drift_ppm != 0) result.figures.emplace_back(who + "drift estimate, magnitude",
                                                             std::fabs(estimate.drift_ppm), "ppm", table, name,
                                                             "|drift| ppm");
    if (out.conversion_bound.count() != 0) {
        result.figures.emplace_back(who + "one-way via offset estimate, median bound",
                                    static_cast<double>(out.conversion_bound.value_at_percentile(50)) / 1e3, "ns",
                                    table, name, "one-way bound p50 ns");
    }
    char text[320];
    std::snprintf(text, sizeof text,
                  "B's estimate of A's clock offset %+.1f ns +- %.1f ns (interval [%+.1f, %+.1f] ns), drift %+.4f ppm "
                  "in [%+.4f, %+.4f], %llu probes answered, best round trip %.1f ns",
                  offset_ns, bound_ns, estimate.offset_low.to_nanos_f64(), estimate.offset_high.to_nanos_f64(),
                  estimate.drift_ppm, estimate.drift_low_ppm, estimate.drift_high_ppm,
                  static_cast<unsigned long long>(b.probes_answered), estimate.best_rtt.to_nanos_f64());
    result.notes.push_back(who + text);
    if (std::fabs(offset_ns) > bound_ns) {
        result.notes.push_back("ERROR: " + who + "the offset bound does not contain the true offset 0");
    }
    // The drift interval is exact up to rounding in doubles; 0 (the truth) must be inside it.
    if (estimate.drift_low_ppm > 1e-3 || estimate.drift_high_ppm < -1e-3) {
        result.notes.push_back("ERROR: " + who + "the drift interval does not contain the true drift 0");
    }
}

}  // namespace

ScenarioResult run_bridge_scenario(ScenarioContext& context) {
    const TickRuler ruler;
    constexpr int kContenders = 3;
    const int partner_cpu = context.cpus.size() > 1 ? context.cpus[1] : -1;
    const BusLoopSetup setup{ruler, ruler.ticks_per_second(), context.duration_s / kContenders, partner_cpu};
    const auto interval = static_cast<std::uint64_t>(kIntervalUs * 1e-6 * setup.ticks_per_second);
    ScenarioResult result;
    result.scenario = "bridge";
    result.description =
        "64 B messages published on engine A, forwarded by A's bridge over 127.0.0.1, republished by B's bridge and "
        "read by B's subscriber, between two threads" +
        std::string(partner_cpu >= 0 ? " on two pinned CPUs" : " on one CPU") +
        ", one every 20 us: one-way from the intended send time (ns) on the cycle counter, and as across hosts via "
        "B's clock offset estimate; overhead = the part of the one-way outside the drivers' send and receive calls "
        "(on A: intended send -> the poll's send step, on B: the poll's receive step -> subscriber; framing and "
        "decoding not counted, so a lower bound). The keyed bridge seals and verifies every datagram with "
        "HMAC-SHA-256. The plain driver one-way is the udp scenario's.";
    context.progress.begin("bridge", context.duration_s);
    run_contender(result, kUringName, drivers::DriverKind::uring, false, setup, interval);
    context.progress.update(setup.seconds);
    run_contender(result, kSocketName, drivers::DriverKind::socket, false, setup, interval);
    context.progress.update(2 * setup.seconds);
    run_contender(result, kKeyedName, drivers::DriverKind::socket, true, setup, interval);
    context.progress.update(3 * setup.seconds);
    context.progress.end();

    const std::string size = size_label(kBytes);
    const Series* uring = nullptr;
    const Series* socket = nullptr;
    const Series* keyed = nullptr;
    for (const Series& series : result.series) {
        if (series.name == size + " one-way: " + kUringName) uring = &series;
        if (series.name == size + " one-way: " + kSocketName) socket = &series;
        if (series.name == size + " one-way: " + kKeyedName) keyed = &series;
    }
    if (uring != nullptr && socket != nullptr) {
        result.ratios.push_back(make_ratio(size + " one-way " + kUringName + " / " + kSocketName, *uring, *socket));
    }
    if (keyed != nullptr && socket != nullptr) {
        result.ratios.push_back(make_ratio(size + " one-way " + kKeyedName + " / " + kSocketName, *keyed, *socket));
    }
    return result;
}

}  // namespace cf::latency
