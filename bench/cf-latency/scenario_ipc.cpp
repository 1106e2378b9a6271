// ipc: message latency between two processes on two pinned CPUs: our shared-memory topics against ZeroMQ ipc://
// (PAIR over a Unix socket, polled with ZMQ_DONTWAIT). The parent measures; a forked child echoes (ping-pong,
// RTT/2) or sends on a fixed schedule (one-way, one message every 2 us, timed from the intended send time). The
// child opens the topics by name after the fork, so the segment is mapped at its own address, as in a real peer.
#include <csignal>
#include <cstdio>
#include <cstring>
#include <string>

#include <sys/wait.h>
#include <unistd.h>

#include "bench/cf-latency/bus_measure.hpp"
#include "bench/cf-latency/bus_ours.hpp"
#include "bench/cf-latency/bus_peers.hpp"
#include "bench/cf-latency/scenario.hpp"
#include "bench/cf-latency/series.hpp"
#include "engine/bus/shared_topic.hpp"
#include "platform/cpu/affinity.hpp"
#include "platform/os/cycle_counter.hpp"

namespace cf::latency {
namespace {

constexpr std::uint32_t kDepth = 1024;
constexpr double kOneWayIntervalUs = 2.0;
// Between processes a peer can die and a transport can lose a message (ZeroMQ's PAIR was seen to, on a loaded
// host): a wait with no progress for this long gives up, and the run ends with a note instead of hanging.
constexpr double kStallSeconds = 2.0;

// One process's end of a two-way link over two shared topics ("<base>.a" parent -> child, "<base>.b" back).
template <std::size_t N>
class CfIpcEnd {
public:
    static constexpr const char* kName = "cf shared-memory topic";
    CfIpcEnd(const std::string& base, bool parent) {
        const std::string out = base + (parent ? ".a" : ".b"), in = base + (parent ? ".b" : ".a");
        if (open(out, out_topic_) != 0 || open(in, in_topic_) != 0 ||
            out_topic_.open_publisher(bench_process_clock(), ends_.publisher) != 0 ||
            in_topic_.open_subscriber(ends_.subscriber) != 0) {
            error_ = platform::last_error_message();
        }
        ends_.subscriber.set_clock(&bench_process_clock());   // the receive rule, as the C API applies it
    }
    ~CfIpcEnd() {
        out_topic_.close_publisher(ends_.publisher);
        in_topic_.close_subscriber(ends_.subscriber);
        (void)out_topic_.unlink();
    }
    bool ok() const { return error_.empty(); }
    std::string error() const { return error_; }
    bool try_send(std::uint64_t stamp, std::uint64_t sequence) noexcept { return ends_.try_send(stamp, sequence); }
    bool try_receive(std::uint64_t& stamp, std::uint64_t& sequence) noexcept {
        return ends_.try_receive(stamp, sequence);
    }

private:
    static int open(const std::string& name, bus::SharedTopic& topic) {
        bus::TopicConfig config;
        config.name = name.c_str();
        config.max_message_bytes = static_cast<std::uint32_t>(N);
        config.depth = kDepth;
        return bus::SharedTopic::open(config, 0600, topic);
    }
    bus::SharedTopic out_topic_, in_topic_;
    TopicEnds<N> ends_;
    std::string error_;
};

#if CF_HAVE_ZMQ
template <std::size_t N>
class ZmqIpcEnd {
public:
    static constexpr const char* kName = "zeromq ipc:// (PAIR, DONTWAIT)";
    ZmqIpcEnd(const std::string& base, bool parent) : context_(zmq_ctx_new()) {
        socket_ = zmq_socket(context_, ZMQ_PAIR);
        const int hwm = static_cast<int>(kDepth);
        const std::string endpoint = "ipc:///tmp/cf-latency-" + base + ".sock";
        if (socket_ == nullptr || zmq_setsockopt(socket_, ZMQ_SNDHWM, &hwm, sizeof hwm) != 0 ||
            zmq_setsockopt(socket_, ZMQ_RCVHWM, &hwm, sizeof hwm) != 0 ||
            (parent ? zmq_bind(socket_, endpoint.c_str()) : zmq_connect(socket_, endpoint.c_str())) != 0) {
            error_ = endpoint + ": " + zmq_strerror(zmq_errno());
        }
        std::memset(&outgoing_, 0x5a, sizeof outgoing_);
    }
    ~ZmqIpcEnd() {
        const int linger = 0;
        if (socket_ != nullptr) {
            zmq_setsockopt(socket_, ZMQ_LINGER, &linger, sizeof linger);
            zmq_close(socket_);
        }
        zmq_ctx_term(context_);
    }
    bool ok() const { return error_.empty(); }
    std::string error() const { return error_; }
    bool try_send(std::uint64_t stamp, std::uint64_t sequence) noexcept {
        outgoing_.stamp = stamp;
        outgoing_.sequence = sequence;
        return zmq_send(socket_, &outgoing_, N, ZMQ_DONTWAIT) == static_cast<int>(N);
    }
    bool try_receive(std::uint64_t& stamp, std::uint64_t& sequence) noexcept {
        if (zmq_recv(socket_, &incoming_, N, ZMQ_DONTWAIT) != static_cast<int>(N)) return false;
        read_message<N>(reinterpret_cast<const std::byte*>(&incoming_), stamp, sequence);
        return true;
    }

private:
    void* context_;
    void* socket_ = nullptr;
    std::string error_;
    alignas(64) BusMessage<N> outgoing_;
    alignas(64) BusMessage<N> incoming_;
};
#endif

// The child: open its end, then echo (mode 'p') or send `count` messages on schedule from the first intended time
// the parent's go message carries, then wait for the stop (mode 'o'). Exit status 0 ok.
template <class End>
[[noreturn]] void child_main(const std::string& base, char mode, std::uint64_t count, std::uint64_t interval_ticks,
                             std::uint64_t stall_ticks, int cpu, int ready_fd) {
    if (cpu >= 0) (void)platform::pin_current_thread(cpu);
    int status = 0;
    {
        End end(base, false);
        const char ready = end.ok() ? 1 : 0;
        if (write(ready_fd, &ready, 1) != 1 || !end.ok()) _exit(3);
        if (mode == 'p') {
            echo_until_stop(end, end, stall_ticks);
        } else {
            std::uint64_t first = 0, sequence = 0;
            if (!retry_until_stall([&] { return end.try_receive(first, sequence); }, stall_ticks)) _exit(4);
            send_on_schedule(end, first, interval_ticks, count);
            const auto stopped = [&] { return end.try_receive(first, sequence) && sequence == kStopSequence; };
            if (!retry_until_stall(stopped, stall_ticks)) status = 4;
        }
    }
    _exit(status);
}

// Runs one contender: ping-pong then one-way, each for half of setup.seconds, the child on setup.partner_cpu.
// Returns false (with a note) if it could not run.
template <class End>
bool run_contender(const BusLoopSetup& setup, const std::string& base, LatencyHistogram& half_rtt,
                   LatencyHistogram& one_way, std::string& note) {
    const BusLoopSetup half{setup.ruler, setup.ticks_per_second, setup.seconds / 2, setup.partner_cpu};
    const auto interval = static_cast<std::uint64_t>(kOneWayIntervalUs * 1e-6 * setup.ticks_per_second);
    const std::uint64_t count = static_cast<std::uint64_t>(half.seconds * half.ticks_per_second) / interval;
    const auto stall = static_cast<std::uint64_t>(kStallSeconds * setup.ticks_per_second);
    for (const char mode : {'p', 'o'}) {
        const std::string name = base + mode;
        End end(name, true);
        if (!end.ok()) {
            note = std::string(End::kName) + " skipped: " + end.error();
            return false;
        }
        int ready[2];
        if (pipe(ready) != 0) {
            note = "pipe failed";
            return false;
        }
        std::fflush(nullptr);
        const pid_t child = fork();
        if (child < 0) {
            note = "fork failed";
            return false;
        }
        if (child == 0) child_main<End>(name, mode, count, interval, stall, setup.partner_cpu, ready[1]);
        char status = 0;
        const bool child_ready = read(ready[0], &status, 1) == 1 && status == 1;
        close(ready[0]);
        close(ready[1]);
        if (!child_ready) {
            waitpid(child, nullptr, 0);
            note = std::string(End::kName) + ": the child could not open its end";
            return false;
        }
        BusLoopErrors errors;
        if (mode == 'p') {
            time_round_trips(end, end, half, half_rtt, errors, stall);   // ends with the stop message
        } else {
            const std::uint64_t go = platform::read_cycles() + interval * 64;   // the first intended send time
            if (retry_until_stall([&] { return end.try_send(go, 0); }, stall)) {
                receive_on_schedule(end, count, count / 20, setup.ruler, one_way, errors, stall);
            } else {
                ++errors.stalled;
            }
            if (!retry_until_stall([&] { return end.try_send(0, kStopSequence); }, stall)) ++errors.stalled;
        }
        if (errors.stalled != 0) ::kill(child, SIGKILL);   // it may wait for what will never come
        int child_status = 0;
        waitpid(child, &child_status, 0);
        if (errors.stalled != 0) {
            note = std::string(End::kName) + ": stalled " + std::to_string(errors.stalled) + " time(s) for " +
                   std::to_string(static_cast<int>(kStallSeconds)) + " s (a lost message or a dead peer); the " +
                   (mode == 'p' ? "ping-pong" : "one-way") + " run was cut short";
        } else if (errors.out_of_order != 0 || !WIFEXITED(child_status) || WEXITSTATUS(child_status) != 0) {
            note = std::string(End::kName) + ": " + std::to_string(errors.out_of_order) +
                   " messages out of order, child status " + std::to_string(child_status);
        }
    }
    return true;
}

// Contenders take turns, round after round (as in the bus scenario), each round a fresh pair of processes.
constexpr int kRounds = 4;

template <std::size_t N>
void ipc_at_size(ScenarioContext& context, const BusLoopSetup& run, ScenarioResult& result, double& done) {
    const std::string size = size_label(N);
    const std::string base = "cflat" + std::to_string(getpid()) + "." + std::to_string(N);
    const BusLoopSetup slice{run.ruler, run.ticks_per_second, run.seconds / kRounds, run.partner_cpu};
    LatencyHistogram ours_rtt = make_picosecond_histogram(), ours_one = make_picosecond_histogram();
    bool ours_ran = true;
#if CF_HAVE_ZMQ
    LatencyHistogram zmq_rtt = make_picosecond_histogram(), zmq_one = make_picosecond_histogram();
    bool zmq_ran = true;
#endif
    std::string ours_note, zmq_note;
    for (int round = 0; round < kRounds; ++round) {
        if (ours_ran) ours_ran = run_contender<CfIpcEnd<N>>(slice, base + "cf", ours_rtt, ours_one, ours_note);
        done += slice.seconds;
        context.progress.update(done);
#if CF_HAVE_ZMQ
        if (zmq_ran) zmq_ran = run_contender<ZmqIpcEnd<N>>(slice, base + "zmq", zmq_rtt, zmq_one, zmq_note);
        done += slice.seconds;
        context.progress.update(done);
#endif
    }
    for (const std::string& note : {ours_note, zmq_note}) {
        if (!note.empty()) result.notes.push_back(size + " " + note);
    }
    if (!ours_ran) return;
    const Series ours_ping = make_series(size + " ping-pong RTT/2: " + CfIpcEnd<N>::kName, ours_rtt);
    const Series ours_way = make_series(size + " one-way: " + CfIpcEnd<N>::kName, ours_one);
    result.series.push_back(ours_ping);
    result.series.push_back(ours_way);
#if CF_HAVE_ZMQ
    if (!zmq_ran) return;
    const Series zmq_ping = make_series(size + " ping-pong RTT/2: " + ZmqIpcEnd<N>::kName, zmq_rtt);
    const Series zmq_way = make_series(size + " one-way: " + ZmqIpcEnd<N>::kName, zmq_one);
    result.series.push_back(zmq_ping);
    result.series.push_back(zmq_way);
    result.ratios.push_back(make_ratio(size + " RTT/2 ours / zeromq ipc://", ours_ping, zmq_ping));
    result.ratios.push_back(make_ratio(size + " one-way ours / zeromq ipc://", ours_way, zmq_way));
#else
    result.notes.push_back("zeromq not built in (libzmq3-dev missing when configured)");
#endif
}

}  // namespace

ScenarioResult run_ipc_scenario(ScenarioContext& context) {
    const TickRuler ruler;
    const double ticks_per_second = ruler.ticks_per_second();
    const int child_cpu = context.cpus.size() > 1 ? context.cpus[1] : -1;
    const BusLoopSetup run{ruler, ticks_per_second, context.duration_s / 4, child_cpu};
    ScenarioResult result;
    result.scenario = "ipc";
    result.description = std::string("two processes") + (child_cpu >= 0 ? " on two pinned CPUs" : " on one CPU") +
                         ": ping-pong RTT/2 and open-loop one-way (one message every 2 us, from its intended send "
                         "time), ns; depth 1024; both sides spin";
    double done = 0;
    context.progress.begin("ipc", context.duration_s);
    ipc_at_size<64>(context, run, result, done);
    ipc_at_size<1024>(context, run, result, done);
    context.progress.end();
    return result;
}

}  // namespace cf::latency
