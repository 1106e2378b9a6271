// Facts about the running kernel that affect latency.
#pragma once

#include <string>

namespace cf::platform {

std::string kernel_release();        // uname -r, e.g. "6.1.0-27-amd64"
std::string current_clocksource();   // what the kernel's clock_gettime reads: "tsc", "kvm-clock", "arch_sys_counter"

}  // namespace cf::platform
