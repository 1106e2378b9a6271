#include "bench/cf-latency/scenario.hpp"

#include <unistd.h>

namespace cf::latency {

const std::vector<ScenarioEntry>& all_scenarios() {
    static const std::vector<ScenarioEntry> entries = {
        {"clock", "cost of one clock read: cf::CounterClock::now vs clock_gettime", run_clock_scenario},
        {"timer", "wake-up jitter of a deadline loop: busy-poll on our clock vs clock_nanosleep", run_timer_scenario},
        {"hlc", "cost of an HLC stamp: shared lane (CAS) and own clock lane, one and two threads", run_hlc_scenario},
        {"alloc", "allocation cost: cf::mem::Pool vs glibc malloc, mimalloc, jemalloc; same-thread and cross-thread",
         run_alloc_scenario},
        {"bus", "thread-to-thread latency, ping-pong and open-loop one-way, ours vs Boost/moodycamel/ZeroMQ",
         run_bus_scenario},
        {"bus-throughput", "64 B messages per second, SPSC and 3-producer MPSC, ours vs the peers",
         run_bus_throughput_scenario},
        {"ipc", "process-to-process latency over shared memory, ours vs ZeroMQ ipc://", run_ipc_scenario},
        {"compute", "single-core ddot/dgemv/dgemm GFLOP/s, ours vs OpenBLAS, BLIS, Eigen; Morton encode ns/point",
         run_compute_scenario},
        {"udp", "loopback UDP RTT and one-way: our io_uring and socket drivers vs plain non-blocking and blocking "
         "sockets", run_udp_scenario},
        {"udp-throughput", "loopback UDP messages/s, Gbit/s and system calls per message, 64 B and 1 KiB, batched",
         run_udp_throughput_scenario},
        {"tcp", "loopback TCP RTT, messages/s and system calls per message: our io_uring and socket stream drivers "
         "vs plain non-blocking sockets", run_tcp_scenario},
        {"bridge", "engine A to engine B through two bridges over 127.0.0.1: one-way, also via B's clock offset "
         "estimate", run_bridge_scenario},
        {"quic", "a whole QUIC handshake: TLS 1.3 alone vs our QUIC in memory (the transport's share) and over UDP",
         run_quic_scenario},
    };
    return entries;
}

const ScenarioEntry* find_scenario(const std::string& name) {
    for (const ScenarioEntry& entry : all_scenarios()) {
        if (name == entry.name) return &entry;
    }
    return nullptr;
}

std::vector<std::string> default_scenarios() { return {"clock", "timer", "hlc"}; }

Progress::Progress(bool enabled) : enabled_(enabled), terminal_(isatty(STDERR_FILENO) == 1) {}

void Progress::begin(const std::string& what, double total_s) {
    what_ = what;
    total_s_ = total_s;
    last_print_ = std::chrono::steady_clock::now();
    if (enabled_) std::fprintf(stderr, "cf-latency: %s (%.1f s)%s", what_.c_str(), total_s_, terminal_ ? "" : "\n");
}

void Progress::update(double elapsed_s) {
    if (!enabled_) return;
    const auto now = std::chrono::steady_clock::now();
    if (now - last_print_ < std::chrono::seconds(1)) return;
    last_print_ = now;
    if (terminal_) {
        std::fprintf(stderr, "\rcf-latency: %s %.0f/%.0f s ", what_.c_str(), elapsed_s, total_s_);
    } else {
        std::fprintf(stderr, "cf-latency: %s %.0f/%.0f s\n", what_.c_str(), elapsed_s, total_s_);
    }
}

void Progress::end() {
    if (enabled_ && terminal_) std::fprintf(stderr, "\rcf-latency: %s done%20s\n", what_.c_str(), "");
}

}  // namespace cf::latency
