// cf-latency: the harness users run to qualify a host for ChronoFabric.
// Exit status: 0 done, 1 a run-time failure (pinning, clock, output file), 2 bad command line.
#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>

#include <unistd.h>

#include "bench/cf-latency/host_facts.hpp"
#include "bench/cf-latency/options.hpp"
#include "bench/cf-latency/scenario.hpp"
#include "platform/cpu/affinity.hpp"
#include "platform/os/last_error.hpp"

namespace {

using FileHandle = std::unique_ptr<std::FILE, int (*)(std::FILE*)>;

// Opened before any measuring so a bad path fails in the first second, not after the whole run.
bool open_output(const std::string& path, FileHandle& file) {
    if (path.empty()) return true;
    file.reset(std::fopen(path.c_str(), "w"));
    if (!file) {
        std::fprintf(stderr, "cf-latency: cannot write '%s': %s\n", path.c_str(), std::strerror(errno));
        return false;
    }
    return true;
}

bool write_output(FileHandle& file, const std::string& path, const std::string& text) {
    if (!file) return true;
    const bool ok = std::fwrite(text.data(), 1, text.size(), file.get()) == text.size() && std::fflush(file.get()) == 0;
    if (!ok) std::fprintf(stderr, "cf-latency: writing '%s' failed: %s\n", path.c_str(), std::strerror(errno));
    return ok;
}

// Debian's libjemalloc.so.2 uses initial-exec TLS, which a dlopen() after start-up only gets if glibc reserves
// optional static TLS for it. The alloc scenario loads it at run time, so the harness restarts itself once with that
// tunable set; if the restart fails the scenario reports jemalloc as not loadable, never silently.
void reserve_static_tls_for_peers(const cf::latency::Options& options, char** argv) {
    if (std::find(options.scenarios.begin(), options.scenarios.end(), "alloc") == options.scenarios.end()) return;
    const char* tunables = std::getenv("GLIBC_TUNABLES");
    if (tunables != nullptr && std::strstr(tunables, "optional_static_tls") != nullptr) return;
    std::string value = "glibc.rtld.optional_static_tls=16384";
    if (tunables != nullptr && tunables[0] != '\0') value = std::string(tunables) + ":" + value;
    if (setenv("GLIBC_TUNABLES", value.c_str(), 1) != 0) return;
    execv("/proc/self/exe", argv);   // returns only on failure: carry on without
}

}  // namespace

int main(int argc, char** argv) {
    using namespace cf::latency;
    Options options;
    switch (parse_options(argc, argv, options)) {
        case ParseOutcome::exit_success: return 0;
        case ParseOutcome::exit_usage_error: return 2;
        case ParseOutcome::run: break;
    }
    reserve_static_tls_for_peers(options, argv);
    FileHandle json_file(nullptr, &std::fclose), svg_file(nullptr, &std::fclose);
    if (!open_output(options.json_path, json_file) || !open_output(options.svg_path, svg_file)) return 1;

    std::vector<int> cpus = cf::platform::allowed_cpus();
    int pinned_cpu = -1;
    if (options.pin) {
        const bool explicit_cpu = options.cpu >= 0;
        const int cpu = explicit_cpu ? options.cpu : (cpus.empty() ? 0 : cpus.back());
        if (cf::platform::pin_current_thread(cpu) == 0) {
            pinned_cpu = cpu;
        } else if (explicit_cpu) {
            std::fprintf(stderr, "cf-latency: %s\n", cf::platform::last_error_message());
            return 1;
        } else {
            std::fprintf(stderr, "cf-latency: warning: running unpinned: %s\n", cf::platform::last_error_message());
        }
    }
    // Helper threads (two-thread scenarios) take the pinned CPU's neighbours first.
    if (pinned_cpu >= 0) {
        std::erase(cpus, pinned_cpu);
        cpus.insert(cpus.begin(), pinned_cpu);
    }

    cf::CounterClock clock;
    if (clock.init(cf::CounterClock::Config{}) != 0) {
        std::fprintf(stderr, "cf-latency: clock calibration failed: %s\n", cf::platform::last_error_message());
        return 1;
    }
    if (!clock.uses_cycle_counter()) {
        std::fprintf(stderr, "cf-latency: warning: no invariant cycle counter; the clock falls back to clock_gettime\n");
    }

    Report report;
    report.host = collect_host_facts(clock, pinned_cpu, options.duration_s);
    Progress progress(!options.quiet);
    for (const std::string& name : options.scenarios) {
        clock.recalibrate();  // keep the clock steered between scenarios, never during a measurement
        ScenarioContext context{clock, progress, options.duration_s, pinned_cpu, cpus, options.timer_interval_us};
        report.scenarios.push_back(find_scenario(name)->run(context));
    }

    std::fputs(format_table(report).c_str(), stdout);
    std::fflush(stdout);
    bool ok = write_output(json_file, options.json_path, format_json(report));
    ok = write_output(svg_file, options.svg_path, format_svg(report)) && ok;
    return ok ? 0 : 1;
}
