#include "platform/os/kernel_info.hpp"

#include <sys/utsname.h>

#include <fstream>

namespace cf::platform {

std::string kernel_release() {
    utsname name{};
    if (uname(&name) != 0) return "n/a";
    return std::string(name.sysname) + " " + name.release + " " + name.machine;
}

std::string current_clocksource() {
    std::ifstream file("/sys/devices/system/clocksource/clocksource0/current_clocksource");
    std::string line;
    if (!file || !std::getline(file, line)) return "n/a";
    return line;
}

}  // namespace cf::platform
