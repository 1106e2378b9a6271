// bridge_peer: one side of netns_bridge.sh. One engine with one bridge: it forwards a local topic (--send-topic
// id) to the peer and republishes the peer's (--receive-topic id) on a second local topic, publishes --count
// messages at --rate, reads what the peer's messages became locally, and prints one line of JSON: what it sent,
// what it received and whether the bytes were right, the bridge's counters for both ids, its datagram counters,
// and the clock offset estimate. The script judges the numbers; this program only refuses to run on bad input.
//
// Payloads are a function of (topic id, sequence), so the receiver checks every byte without being told what was
// sent: 8..256 bytes, the sequence little-endian in the first 8, then a splitmix64 stream seeded from both.
//
// The run:
//   1. Wait until the peer answers a clock probe: its bridge is polling, so nothing published from now on is sent
//      to a port nobody listens on yet. Probes that go nowhere before that are just retried.
//   2. Publish message i at start + i / rate (back-pressure topic: when the bridge lags, the publisher waits),
//      polling the bridge and draining the received topic all along.
//   3. Done when every message is forwarded, the peer's stream is complete (its last sequence, count - 1, came)
//      or has been quiet for --quiet-ms (the tail was lost), and the offset has an estimate; then keep polling for
//      --linger-ms so late frames and duplicates are counted and the peer's last probes answered. Or --timeout.
//
// The clock. By default the bridge's time source is CLOCK_REALTIME: both processes read the same kernel clock,
// so the true offset is exactly 0 and "the bound contains 0" is a sharp check. --clock engine uses the engine's
// default clock instead (what an application gets); each process calibrates its own counter line against
// CLOCK_REALTIME, so the two differ by that calibration's error and 0 need not be inside the bound.
// Every answered probe is checked (|offset| <= bound, the truth being 0), and the estimate reported is the one at
// the time of the last answer (later, its bound only widens with the time since: the peer may have gone).
//
// Exit status: 0 when it ran (whatever the numbers), 2 on a usage error, 1 on a setup error, 77 when the driver
// asked for (uring) cannot be opened on this kernel; a message on stderr for all but 0.
#include <time.h>

#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>

#include "drivers/datagram_driver.hpp"
#include "engine/bus/publisher.hpp"
#include "engine/bus/subscriber.hpp"
#include "engine/runtime/bridge.hpp"
#include "engine/runtime/engine.hpp"
#include "platform/os/last_error.hpp"

namespace {

using cf::drivers::DriverKind;
using cf::drivers::PeerAddress;

constexpr std::uint32_t kMinPayload = 8;
constexpr std::uint32_t kMaxPayload = 256;
constexpr std::uint32_t kSendDepth = 1024;
constexpr std::uint32_t kReceiveDepth = 4096;
constexpr int kExitSetup = 1;
constexpr int kExitUsage = 2;
constexpr int kExitDriverUnavailable = 77;

struct Options {
    PeerAddress bind, peer;
    DriverKind driver = DriverKind::automatic;
    std::uint32_t send_topic = 0, receive_topic = 0;
    bool have_send = false, have_receive = false;
    std::uint64_t count = 1000;
    double rate = 10000;        // messages per second; 0: as fast as the topic takes them
    double timeout_s = 20;
    std::uint64_t quiet_ms = 1000;   // long: a busy machine can pause a sender for a few hundred ms
    std::uint64_t linger_ms = 150;
    bool realtime_clock = true;
};

std::uint64_t splitmix(std::uint64_t& state) noexcept {
    std::uint64_t z = (state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

// The payload of message `sequence` on topic `topic_id`, into out[0 .. kMaxPayload); returns its length.
std::uint32_t make_payload(std::uint32_t topic_id, std::uint64_t sequence, std::byte* out) noexcept {
    std::uint64_t state = (std::uint64_t{topic_id} << 40) ^ sequence;
    const std::uint64_t first = splitmix(state);
    const auto length = kMinPayload + static_cast<std::uint32_t>(first % (kMaxPayload - kMinPayload + 1));
    for (int i = 0; i < 8; ++i) out[i] = static_cast<std::byte>(sequence >> (8 * i));
    for (std::uint32_t at = 8; at < length; at += 8) {
        const std::uint64_t word = splitmix(state);
        for (std::uint32_t i = 0; i < 8 && at + i < length; ++i) out[at + i] = static_cast<std::byte>(word >> (8 * i));
    }
    return length;
}

cf::Instant realtime_now(void*) noexcept {
    timespec now{};
    clock_gettime(CLOCK_REALTIME, &now);
    return cf::Instant::from_timespec(now);
}

double monotonic_s() noexcept {
    timespec now{};
    clock_gettime(CLOCK_MONOTONIC, &now);
    return static_cast<double>(now.tv_sec) + static_cast<double>(now.tv_nsec) * 1e-9;
}

void pause_briefly() noexcept {
    const timespec pause{0, 20'000};   // 20 us: three busy processes share two cores
    nanosleep(&pause, nullptr);
}

void usage(const std::string& why) {
    std::fprintf(stderr,
                 "bridge_peer: %s\n"
                 "usage: bridge_peer --bind IP:PORT --peer IP:PORT --send-topic ID --receive-topic ID\n"
                 "                   [--driver auto|uring|socket] [--count N] [--rate MSG_PER_S] [--timeout S]\n"
                 "                   [--quiet-ms MS] [--linger-ms MS] [--clock realtime|engine]\n",
                 why.c_str());
}

bool parse_unsigned(const std::string& text, std::uint64_t max, std::uint64_t& out) {
    if (text.empty() || text[0] < '0' || text[0] > '9') return false;
    char* end = nullptr;
    errno = 0;
    out = std::strtoull(text.c_str(), &end, 10);
    return errno == 0 && *end == '\0' && out <= max;
}

bool parse_seconds(const std::string& text, double min, double max, double& out) {
    char* end = nullptr;
    out = std::strtod(text.c_str(), &end);
    return end != text.c_str() && *end == '\0' && out >= min && out <= max;
}

int parse_options(int argc, char** argv, Options& options) {
    bool have_bind = false, have_peer = false;
    for (int i = 1; i < argc; ++i) {
        const std::string key = argv[i];
        if (i + 1 >= argc) {
            usage(key + " needs a value");
            return kExitUsage;
        }
        const std::string value = argv[++i];
        std::uint64_t number = 0;
        bool ok = true;
        std::string wants;
        if (key == "--bind" || key == "--peer") {
            ok = PeerAddress::parse(value.c_str(), key == "--bind" ? options.bind : options.peer) == 0;
            wants = cf::platform::last_error_message();
            (key == "--bind" ? have_bind : have_peer) = ok;
        } else if (key == "--driver") {
            ok = cf::drivers::parse_driver_kind(value.c_str(), options.driver) == 0;
            wants = "auto, uring or socket";
        } else if (key == "--send-topic" || key == "--receive-topic") {
            ok = parse_unsigned(value, UINT32_MAX, number);
            wants = "a topic id (0 .. 2^32-1)";
            (key == "--send-topic" ? options.send_topic : options.receive_topic) = static_cast<std::uint32_t>(number);
            (key == "--send-topic" ? options.have_send : options.have_receive) = ok;
        } else if (key == "--count") {
            ok = parse_unsigned(value, 1'000'000'000, options.count) && options.count > 0;
            wants = "a message count, 1 .. 10^9";
        } else if (key == "--rate") {
            ok = parse_seconds(value, 0, 1e9, options.rate);
            wants = "messages per second (0: as fast as possible)";
        } else if (key == "--timeout") {
            ok = parse_seconds(value, 0.1, 3600, options.timeout_s);
            wants = "seconds, 0.1 .. 3600";
        } else if (key == "--quiet-ms" || key == "--linger-ms") {
            ok = parse_unsigned(value, 600'000, key == "--quiet-ms" ? options.quiet_ms : options.linger_ms);
            wants = "milliseconds, 0 .. 600000";
        } else if (key == "--clock") {
            ok = value == "realtime" || value == "engine";
            options.realtime_clock = value == "realtime";
            wants = "realtime or engine";
        } else {
            usage("unknown option '" + key + "'");
            return kExitUsage;
        }
        if (!ok) {
            usage(key + " '" + value + "': wants " + wants);
            return kExitUsage;
        }
    }
    if (!have_bind || !have_peer || !options.have_send || !options.have_receive) {
        usage("--bind, --peer, --send-topic and --receive-topic are required");
        return kExitUsage;
    }
    if (options.send_topic == options.receive_topic) {
        // One id both ways would work for the bridge, but this program's JSON reports them apart.
        usage("--send-topic and --receive-topic must differ");
        return kExitUsage;
    }
    return 0;
}

int setup_error(const char* what) {
    std::fprintf(stderr, "bridge_peer: %s: %s\n", what, cf::platform::last_error_message());
    return kExitSetup;
}

cf::EngineTopic* make_topic(cf::Engine& engine, const char* name, std::uint32_t depth) {
    cf::bus::TopicConfig config;
    config.name = name;
    config.max_message_bytes = kMaxPayload;
    config.depth = depth;
    cf::EngineTopic* topic = nullptr;
    return engine.create_topic(config, false, 0, topic) == 0 ? topic : nullptr;
}

// What this side saw of the peer's messages, on the local topic they were republished on.
struct Received {
    std::uint64_t messages = 0;
    std::uint64_t payload_mismatches = 0;
    std::uint64_t out_of_order = 0;   // a sequence not above the one before
    bool any = false;
    std::uint64_t first = 0, last = 0;
};

// The offset estimate, checked at every answered probe against the truth (0, on one host's clock).
struct OffsetWatch {
    std::uint64_t answered = 0;       // probes answered when last looked at
    std::uint64_t checks = 0;
    std::uint64_t violations = 0;     // |offset| > bound
    cf::OffsetEstimator::Estimate last;   // at the last answer
};

void watch_offset(cf::Bridge& bridge, OffsetWatch& watch) {
    if (bridge.stats().probes_answered == watch.answered) return;
    watch.answered = bridge.stats().probes_answered;
    const cf::OffsetEstimator::Estimate estimate = bridge.offset_estimator().estimate_at(bridge.now());
    if (!estimate.valid) return;
    ++watch.checks;
    const cf::Femtos offset = estimate.offset.femtos();
    if ((offset < 0 ? -offset : offset) > estimate.bound.femtos()) ++watch.violations;
    watch.last = estimate;
}

unsigned long long n(std::uint64_t value) { return static_cast<unsigned long long>(value); }

void print_json(const Options& options, cf::Bridge& bridge, std::uint64_t published, const Received& received,
                const OffsetWatch& watch, double elapsed_s, bool timed_out, bool peer_seen, std::uint64_t poll_errors) {
    char bind[64], peer[64];
    cf::BridgeTopicStats in, out;
    (void)bridge.topic_stats(options.receive_topic, in);
    (void)bridge.topic_stats(options.send_topic, out);
    const cf::BridgeStats& stats = bridge.stats();
    const cf::drivers::DriverStats& driver = bridge.driver_stats();
    std::printf("{\"driver\":\"%s\",\"bind\":\"%s\",\"peer\":\"%s\",\"clock\":\"%s\",\"send_topic\":%u,"
                "\"receive_topic\":%u,\"count\":%llu,\"published\":%llu,\"received\":%llu,"
                "\"payload_mismatches\":%llu,\"out_of_order\":%llu,\"first_sequence\":%lld,\"last_sequence\":%lld,"
                "\"peer_seen\":%s,\"timed_out\":%s,\"elapsed_s\":%.3f,\"poll_errors\":%llu,",
                cf::drivers::driver_kind_name(bridge.driver_kind()), options.bind.format(bind, sizeof bind),
                options.peer.format(peer, sizeof peer), options.realtime_clock ? "realtime" : "engine",
                options.send_topic, options.receive_topic, n(options.count), n(published), n(received.messages),
                n(received.payload_mismatches), n(received.out_of_order),
                received.any ? static_cast<long long>(received.first) : -1LL,
                received.any ? static_cast<long long>(received.last) : -1LL, peer_seen ? "true" : "false",
                timed_out ? "true" : "false", elapsed_s, n(poll_errors));
    std::printf("\"receive\":{\"received\":%llu,\"republished\":%llu,\"gaps\":%llu,\"duplicates\":%llu,\"late\":%llu,"
                "\"session_resets\":%llu,\"publish_full\":%llu,\"too_large\":%llu,\"hlc_rejected\":%llu,"
                "\"misaligned\":%llu,\"filled\":%llu},",
                n(in.received), n(in.republished), n(in.gaps), n(in.duplicates), n(in.late), n(in.session_resets),
                n(in.publish_full), n(in.too_large), n(in.hlc_rejected), n(in.misaligned), n(in.filled));
    std::printf("\"send\":{\"forwarded\":%llu,\"forward_too_large\":%llu,\"forward_dropped\":%llu,"
                "\"source_lost\":%llu},",
                n(out.forwarded), n(out.forward_too_large), n(out.forward_dropped), n(out.source_lost));
    std::printf("\"bridge\":{\"datagrams_in\":%llu,\"datagrams_out\":%llu,\"frames_in\":%llu,\"frames_out\":%llu,"
                "\"foreign_datagrams\":%llu,\"unknown_topic\":%llu,\"rx_errors\":%llu,\"tx_errors\":%llu,"
                "\"probes_sent\":%llu,\"probes_answered\":%llu,\"probes_rejected\":%llu,\"answers_sent\":%llu,"
                "\"control_rejected\":%llu,\"control_dropped\":%llu,\"wire_rejected_datagrams\":%llu},",
                n(stats.datagrams_in), n(stats.datagrams_out), n(stats.frames_in), n(stats.frames_out),
                n(stats.foreign_datagrams), n(stats.unknown_topic), n(stats.rx_errors), n(stats.tx_errors),
                n(stats.probes_sent), n(stats.probes_answered), n(stats.probes_rejected), n(stats.answers_sent),
                n(stats.control_rejected), n(stats.control_dropped), n(stats.wire.rejected_datagrams));
    std::printf("\"driver_stats\":{\"rx_packets\":%llu,\"tx_packets\":%llu,\"rx_no_buffer\":%llu,"
                "\"rx_truncated\":%llu,\"tx_errors\":%llu,\"syscalls\":%llu},",
                n(driver.rx_packets), n(driver.tx_packets), n(driver.rx_no_buffer), n(driver.rx_truncated),
                n(driver.tx_errors), n(driver.syscalls));
    const cf::OffsetEstimator::Estimate& estimate = watch.last;
    std::printf("\"offset\":{\"valid\":%s,\"offset_ns\":%.3f,\"bound_ns\":%.3f,\"low_ns\":%.3f,\"high_ns\":%.3f,"
                "\"drift_ppm\":%.3f,\"best_rtt_ns\":%.3f,\"samples\":%u,\"checks\":%llu,\"violations\":%llu,"
                "\"restarts\":%llu}}\n",
                estimate.valid ? "true" : "false", estimate.offset.to_nanos_f64(), estimate.bound.to_nanos_f64(),
                estimate.offset_low.to_nanos_f64(), estimate.offset_high.to_nanos_f64(), estimate.drift_ppm,
                estimate.best_rtt.to_nanos_f64(), estimate.samples, n(watch.checks), n(watch.violations),
                n(bridge.offset_estimator().restarts()));
}

}  // namespace

int main(int argc, char** argv) {
    Options options;
    if (const int status = parse_options(argc, argv, options); status != 0) return status;

    cf::EngineConfig engine_config;
    engine_config.node_id = static_cast<std::uint16_t>(options.send_topic);
    engine_config.pool_bytes_per_class = 64 << 10;
    engine_config.prefer_hugepages = false;
    std::unique_ptr<cf::Engine> engine;
    if (cf::Engine::create(engine_config, engine) != 0) return setup_error("engine");
    cf::EngineTopic* outgoing = make_topic(*engine, "netns.send", kSendDepth);
    cf::EngineTopic* incoming = outgoing == nullptr ? nullptr : make_topic(*engine, "netns.receive", kReceiveDepth);
    if (incoming == nullptr) return setup_error("topic");

    cf::BridgeConfig config;
    config.driver = options.driver;
    config.udp.bind = options.bind;
    config.udp.pool.count = 2048;
    config.udp.pool.prefer_hugepages = false;
    config.peer = options.peer;
    config.max_topics = 4;
    if (options.realtime_clock) config.now = &realtime_now;
    std::unique_ptr<cf::Bridge> bridge;
    if (const int status = cf::Bridge::create(*engine, config, bridge); status != 0) {
        const bool unusable = status == -ENOSYS || status == -EPERM || status == -EOPNOTSUPP || status == -ENOTSUP;
        if (options.driver == DriverKind::uring && unusable) {
            std::fprintf(stderr, "bridge_peer: io_uring unavailable: %s\n", cf::platform::last_error_message());
            return kExitDriverUnavailable;
        }
        return setup_error("bridge");
    }
    if (bridge->forward(outgoing, options.send_topic) != 0) return setup_error("forward");
    if (bridge->republish(options.receive_topic, incoming) != 0) return setup_error("republish");
    cf::bus::Publisher publisher;
    cf::bus::Subscriber subscriber;
    if (cf::bus::Publisher::open(outgoing->topic(), engine->clock(), publisher) != 0) return setup_error("publisher");
    if (cf::bus::Subscriber::open(incoming->topic(), subscriber) != 0) return setup_error("subscriber");

    Received received;
    OffsetWatch watch;
    std::uint64_t poll_errors = 0;
    std::byte payload[kMaxPayload];
    std::byte expected[kMaxPayload];
    auto check = [&](const cf::bus::Message& message) {
        const std::uint32_t length = make_payload(options.receive_topic, message.sequence, expected);
        if (message.length != length || std::memcmp(message.data, expected, length) != 0) {
            ++received.payload_mismatches;
        }
        if (received.any && message.sequence <= received.last) ++received.out_of_order;
        if (!received.any) received.first = message.sequence;
        received.any = true;
        received.last = message.sequence;
        ++received.messages;
    };
    auto step = [&]() -> std::uint32_t {
        const int handled = bridge->poll();
        if (handled < 0 && poll_errors++ == 0) {
            std::fprintf(stderr, "bridge_peer: poll: %s\n", cf::platform::last_error_message());
        }
        watch_offset(*bridge, watch);
        std::uint32_t work = handled > 0 ? static_cast<std::uint32_t>(handled) : 0;
        while (const std::uint32_t drained = subscriber.poll(64, check)) work += drained;
        return work;
    };

    const double start = monotonic_s();
    const double deadline = start + options.timeout_s;
    bool peer_seen = false;
    while (!(peer_seen = bridge->stats().probes_answered != 0) && monotonic_s() < deadline) {
        if (step() == 0) pause_briefly();
    }

    const double publish_start = monotonic_s();
    std::uint64_t published = 0;
    std::uint64_t frames_seen = 0;   // the receive id's frames, as the bridge counts them (duplicates included)
    double last_frame_at = 0;
    double linger_until = 0;
    bool timed_out = !peer_seen;
    while (peer_seen) {
        const double now = monotonic_s();
        if (now >= deadline) {
            timed_out = true;
            break;
        }
        std::uint64_t due = options.count;
        if (options.rate > 0) {
            const auto paced = static_cast<std::uint64_t>((now - publish_start) * options.rate) + 1;
            if (paced < due) due = paced;
        }
        std::uint32_t work = 0;
        while (published < due) {
            const std::uint32_t length = make_payload(options.send_topic, published, payload);
            if (publisher.publish(payload, length) != 0) break;   // full: the bridge drains it on the next poll
            ++published;
            ++work;
        }
        work += step();

        cf::BridgeTopicStats in, out;
        (void)bridge->topic_stats(options.receive_topic, in);
        (void)bridge->topic_stats(options.send_topic, out);
        if (in.received != frames_seen) {
            frames_seen = in.received;
            last_frame_at = now;
        }
        const bool sent_all = out.forwarded == options.count;
        const bool quiet = frames_seen != 0 && now - last_frame_at >= 1e-3 * static_cast<double>(options.quiet_ms);
        const bool stream_done = (received.any && received.last == options.count - 1) || quiet;
        if (linger_until == 0 && sent_all && stream_done && watch.last.valid) {
            linger_until = now + 1e-3 * static_cast<double>(options.linger_ms);
        }
        if (linger_until != 0 && now >= linger_until) break;
        if (work == 0) pause_briefly();
    }
    if (!peer_seen) std::fprintf(stderr, "bridge_peer: the peer never answered a clock probe\n");
    print_json(options, *bridge, published, received, watch, monotonic_s() - start, timed_out, peer_seen, poll_errors);
    subscriber.close();
    publisher.close();
    return 0;
}
