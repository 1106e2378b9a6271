// Collects the host facts printed at the top of every report.
#pragma once

#include "bench/cf-latency/report.hpp"
#include "engine/time/counter_clock.hpp"

namespace cf::latency {

HostFacts collect_host_facts(const CounterClock& clock, int pinned_cpu, double duration_s);

}  // namespace cf::latency
