// The kernel's start time of a process (/proc/PID/stat field 22), read independently of the code under test.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <fstream>
#include <sstream>
#include <string>

namespace cf::test {

// "/proc/./" keeps qemu-user from substituting its fake stat file for the calling process's own pid.
inline std::uint64_t start_time_of(pid_t pid) {
    std::ifstream file("/proc/./" + std::to_string(pid) + "/stat");
    std::string line;
    std::getline(file, line);
    std::istringstream fields(line.substr(line.rfind(')') + 2));
    std::string field;
    for (int i = 3; i <= 22; ++i) fields >> field;
    return std::stoull(field);
}

}  // namespace cf::test
