#include "platform/cpu/affinity.hpp"

#include <sched.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>

#include "platform/os/last_error.hpp"

namespace cf::platform {
namespace {

std::string read_first_line(const std::string& path) {
    std::ifstream file(path);
    std::string line;
    if (!file || !std::getline(file, line)) return "n/a";
    return line;
}

}  // namespace

std::vector<int> allowed_cpus() {
    std::vector<int> cpus;
    cpu_set_t set;
    CPU_ZERO(&set);
    if (sched_getaffinity(0, sizeof set, &set) != 0) return cpus;
    for (int cpu = 0; cpu < CPU_SETSIZE; ++cpu) {
        if (CPU_ISSET(cpu, &set)) cpus.push_back(cpu);
    }
    return cpus;
}

int pin_current_thread(int cpu) noexcept {
    if (cpu < 0 || cpu >= CPU_SETSIZE) return fail(EINVAL, "cannot pin to cpu %d: not a valid CPU number", cpu);
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(cpu, &set);
    if (sched_setaffinity(0, sizeof set, &set) != 0) {
        const int err = errno;
        if (err == EINVAL) {
            const std::string allowed = format_cpu_list(allowed_cpus());
            return fail(EINVAL, "cannot pin to cpu %d: it is offline or outside this process's allowed CPUs (%s)",
                        cpu, allowed.c_str());
        }
        return fail(err, "cannot pin to cpu %d: sched_setaffinity: %s", cpu, std::strerror(err));
    }
    return 0;
}

int current_cpu() noexcept { return sched_getcpu(); }

std::string format_cpu_list(const std::vector<int>& cpus) {
    std::ostringstream out;
    for (std::size_t i = 0; i < cpus.size();) {
        std::size_t j = i;
        while (j + 1 < cpus.size() && cpus[j + 1] == cpus[j] + 1) ++j;
        if (out.tellp() > 0) out << ',';
        out << cpus[i];
        if (j > i) out << '-' << cpus[j];
        i = j + 1;
    }
    return out.str();
}

bool parse_cpu_list(const std::string& text, std::vector<int>& cpus) {
    cpus.clear();
    std::size_t pos = 0;
    while (pos < text.size()) {
        std::size_t end = text.find(',', pos);
        if (end == std::string::npos) end = text.size();
        const std::string item = text.substr(pos, end - pos);
        int first = 0, last = 0;
        char tail = 0;
        if (std::sscanf(item.c_str(), "%d-%d%c", &first, &last, &tail) == 2) {
        } else if (std::sscanf(item.c_str(), "%d%c", &first, &tail) == 1) {
            last = first;
        } else {
            return false;
        }
        if (first < 0 || last < first || last >= CPU_SETSIZE) return false;
        for (int cpu = first; cpu <= last; ++cpu) cpus.push_back(cpu);
        pos = end + 1;
    }
    return true;
}

std::string isolated_cpus() {
    std::string list = read_first_line("/sys/devices/system/cpu/isolated");
    return list.empty() ? "none" : list;
}

std::string smt_state() {
    const std::string control = read_first_line("/sys/devices/system/cpu/smt/control");
    const std::string active = read_first_line("/sys/devices/system/cpu/smt/active");
    if (control == "n/a") return "n/a";
    return control + (active == "1" ? " (active)" : " (inactive)");
}

std::string scaling_governor(int cpu) {
    return read_first_line("/sys/devices/system/cpu/cpu" + std::to_string(cpu) + "/cpufreq/scaling_governor");
}

}  // namespace cf::platform
