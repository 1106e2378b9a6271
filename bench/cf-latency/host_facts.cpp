#include "bench/cf-latency/host_facts.hpp"

#include "engine/compute/dispatch.hpp"
#include "platform/cpu/affinity.hpp"
#include "platform/cpu/cpu_info.hpp"
#include "platform/os/cycle_counter.hpp"
#include "platform/os/kernel_info.hpp"

namespace cf::latency {

HostFacts collect_host_facts(const CounterClock& clock, int pinned_cpu, double duration_s) {
    const platform::CpuInfo& cpu = platform::cpu_info();
    HostFacts facts;
    facts.cpu_model = cpu.model_name;
    facts.vendor = cpu.vendor;
    facts.family = cpu.family;
    facts.model = cpu.model;
    facts.isa_level = platform::isa_level_name(cpu.isa_level);
    facts.compute_isa = platform::isa_level_name(compute::active_isa());
    facts.kernel = platform::kernel_release();
    facts.governor = platform::scaling_governor(pinned_cpu >= 0 ? pinned_cpu : 0);
    facts.isolated_cpus = platform::isolated_cpus();
    facts.smt = platform::smt_state();
    facts.clocksource = platform::current_clocksource();
    facts.invariant_tsc = cpu.invariant_counter;
    facts.counter = clock.uses_cycle_counter() ? platform::kCycleCounterName : "clock_gettime (fallback)";
    facts.counter_ghz = clock.uses_cycle_counter() ? clock.stats().counter_hz / 1e9 : 0;
    facts.pinned_cpu = pinned_cpu;
    facts.duration_s = duration_s;
    return facts;
}

}  // namespace cf::latency
