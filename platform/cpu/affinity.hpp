// Pinning threads to CPUs, and the host facts that decide whether a pinned thread runs undisturbed.
#pragma once

#include <string>
#include <vector>

namespace cf::platform {

// Pins the calling thread to `cpu`. 0, or a negative errno with last_error_message() saying why
// (-EINVAL: cpu outside this process's allowed set, e.g. a cgroup or taskset limit; -EPERM: not permitted).
int pin_current_thread(int cpu) noexcept;

// The CPU the calling thread runs on now (-1 if unknown).
int current_cpu() noexcept;

// CPUs this process may run on (sched_getaffinity), ascending.
std::vector<int> allowed_cpus();

// "0-1,4" style list from a set of CPUs.
std::string format_cpu_list(const std::vector<int>& cpus);

// Parses a kernel CPU list ("0-3,8,10-11"); returns false on malformed text.
bool parse_cpu_list(const std::string& text, std::vector<int>& cpus);

// Facts read from sysfs; "n/a" when the file does not exist (VMs often have no cpufreq).
std::string isolated_cpus();                 // /sys/devices/system/cpu/isolated, "none" if empty
std::string smt_state();                     // /sys/devices/system/cpu/smt/control (+ active)
std::string scaling_governor(int cpu);       // cpufreq governor of one CPU

}  // namespace cf::platform
