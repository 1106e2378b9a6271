// The scenarios cf-latency can run, and what each gets to run with.
#pragma once

#include <chrono>
#include <cstdio>
#include <string>
#include <vector>

#include "bench/cf-latency/report.hpp"
#include "engine/time/counter_clock.hpp"

namespace cf::latency {

// Progress on stderr for long runs: at most one line a second, rewritten in place on a terminal.
class Progress {
public:
    explicit Progress(bool enabled);
    void begin(const std::string& what, double total_s);
    void update(double elapsed_s);
    void end();

private:
    bool enabled_, terminal_;
    std::string what_;
    double total_s_ = 0;
    std::chrono::steady_clock::time_point last_print_{};
};

struct ScenarioContext {
    CounterClock& clock;
    Progress& progress;
    double duration_s;
    int cpu;                  // the CPU the harness thread is pinned to, -1 if not pinned
    std::vector<int> cpus;    // CPUs available for helper threads (pinned cpu first)
    int timer_interval_us;
};

struct ScenarioEntry {
    const char* name;
    const char* summary;
    ScenarioResult (*run)(ScenarioContext& context);
};

const std::vector<ScenarioEntry>& all_scenarios();
const ScenarioEntry* find_scenario(const std::string& name);
std::vector<std::string> default_scenarios();

ScenarioResult run_clock_scenario(ScenarioContext& context);
ScenarioResult run_timer_scenario(ScenarioContext& context);
ScenarioResult run_hlc_scenario(ScenarioContext& context);
ScenarioResult run_alloc_scenario(ScenarioContext& context);
ScenarioResult run_bus_scenario(ScenarioContext& context);
ScenarioResult run_bus_throughput_scenario(ScenarioContext& context);
ScenarioResult run_ipc_scenario(ScenarioContext& context);
ScenarioResult run_compute_scenario(ScenarioContext& context);
ScenarioResult run_udp_scenario(ScenarioContext& context);
ScenarioResult run_udp_throughput_scenario(ScenarioContext& context);
ScenarioResult run_tcp_scenario(ScenarioContext& context);
ScenarioResult run_bridge_scenario(ScenarioContext& context);
ScenarioResult run_quic_scenario(ScenarioContext& context);

}  // namespace cf::latency
