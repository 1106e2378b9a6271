#include "bench/cf-latency/options.hpp"

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string_view>

#include "bench/cf-latency/scenario.hpp"
#include "chronofabric/version.h"

namespace cf::latency {
namespace {

void print_usage(std::FILE* out) {
    std::fprintf(out,
                 "usage: cf-latency [options]\n"
                 "Qualifies a host for ChronoFabric: clock cost, timer wake-up jitter, allocation and message latency,\n"
                 "and prints percentile tables with host facts.\n\n"
                 "options:\n"
                 "  --scenario LIST    comma-separated scenarios, or 'all' (default: %s)\n"
                 "  --duration SEC     seconds per scenario, 0.05 .. 86400 (default: 3)\n"
                 "  --cpu N            pin the measuring thread to CPU N (default: the last allowed CPU)\n"
                 "  --no-pin           do not pin\n"
                 "  --interval-us N    period of the timer scenario's deadline loop, 10 .. 1000000 (default: 200)\n"
                 "  --json FILE        also write the results as JSON\n"
                 "  --svg FILE         also write a percentile-distribution plot as SVG\n"
                 "  --quiet            no progress on stderr\n"
                 "  --list             list scenarios and exit\n"
                 "  --version          print the version and exit\n"
                 "  --help             this text\n",
                 "clock,timer,hlc");
}

void usage_error(const char* format, const char* value) {
    std::fprintf(stderr, "cf-latency: ");
    std::fprintf(stderr, format, value);
    std::fprintf(stderr, "\nrun 'cf-latency --help' for the options\n");
}

bool parse_double(const char* text, double& out) {
    char* end = nullptr;
    errno = 0;
    out = std::strtod(text, &end);
    return errno == 0 && end != text && *end == '\0';
}

bool parse_int(const char* text, int& out) {
    char* end = nullptr;
    errno = 0;
    const long value = std::strtol(text, &end, 10);
    if (errno != 0 || end == text || *end != '\0' || value < INT32_MIN || value > INT32_MAX) return false;
    out = static_cast<int>(value);
    return true;
}

bool split_scenarios(const std::string& list, std::vector<std::string>& names) {
    names.clear();
    if (list == "all") {
        for (const ScenarioEntry& entry : all_scenarios()) names.emplace_back(entry.name);
        return true;
    }
    std::size_t pos = 0;
    while (pos <= list.size()) {
        std::size_t comma = list.find(',', pos);
        if (comma == std::string::npos) comma = list.size();
        const std::string name = list.substr(pos, comma - pos);
        if (find_scenario(name) == nullptr) {
            std::string known;
            for (const ScenarioEntry& entry : all_scenarios()) known += std::string(known.empty() ? "" : ", ") + entry.name;
            std::fprintf(stderr, "cf-latency: unknown scenario '%s' (known: %s, or all)\n", name.c_str(), known.c_str());
            return false;
        }
        names.push_back(name);
        pos = comma + 1;
    }
    return true;
}

}  // namespace

ParseOutcome parse_options(int argc, char** argv, Options& options) {
    options.scenarios = default_scenarios();
    for (int i = 1; i < argc; ++i) {
        const std::string_view arg = argv[i];
        // Options that take a value accept "--opt value" and "--opt=value".
        std::string value;
        bool has_inline_value = false;
        std::string_view key = arg;
        if (const std::size_t eq = arg.find('='); arg.rfind("--", 0) == 0 && eq != std::string_view::npos) {
            key = arg.substr(0, eq);
            value = std::string(arg.substr(eq + 1));
            has_inline_value = true;
        }
        auto take_value = [&]() -> bool {
            if (has_inline_value) return true;
            if (i + 1 >= argc) {
                usage_error("%s needs a value", std::string(key).c_str());
                return false;
            }
            value = argv[++i];
            return true;
        };
        if (key == "--help" || key == "-h") {
            print_usage(stdout);
            return ParseOutcome::exit_success;
        } else if (key == "--version") {
            std::printf("cf-latency %s\n", CF_VERSION_STRING);
            return ParseOutcome::exit_success;
        } else if (key == "--list") {
            int width = 0;
            for (const ScenarioEntry& entry : all_scenarios()) width = std::max(width, static_cast<int>(std::strlen(entry.name)));
            for (const ScenarioEntry& entry : all_scenarios()) std::printf("%-*s  %s\n", width, entry.name, entry.summary);
            return ParseOutcome::exit_success;
        } else if (key == "--scenario" || key == "--scenarios") {
            if (!take_value() || !split_scenarios(value, options.scenarios)) return ParseOutcome::exit_usage_error;
        } else if (key == "--duration") {
            if (!take_value()) return ParseOutcome::exit_usage_error;
            if (!parse_double(value.c_str(), options.duration_s) || !(options.duration_s >= 0.05) ||
                options.duration_s > 86400) {
                usage_error("--duration wants seconds between 0.05 and 86400, not '%s'", value.c_str());
                return ParseOutcome::exit_usage_error;
            }
        } else if (key == "--cpu") {
            if (!take_value()) return ParseOutcome::exit_usage_error;
            if (!parse_int(value.c_str(), options.cpu) || options.cpu < 0) {
                usage_error("--cpu wants a CPU number, not '%s'", value.c_str());
                return ParseOutcome::exit_usage_error;
            }
            options.pin = true;
        } else if (key == "--no-pin") {
            options.pin = false;
        } else if (key == "--interval-us") {
            if (!take_value()) return ParseOutcome::exit_usage_error;
            if (!parse_int(value.c_str(), options.timer_interval_us) || options.timer_interval_us < 10 ||
                options.timer_interval_us > 1'000'000) {
                usage_error("--interval-us wants microseconds between 10 and 1000000, not '%s'", value.c_str());
                return ParseOutcome::exit_usage_error;
            }
        } else if (key == "--json") {
            if (!take_value()) return ParseOutcome::exit_usage_error;
            options.json_path = value;
        } else if (key == "--svg") {
            if (!take_value()) return ParseOutcome::exit_usage_error;
            options.svg_path = value;
        } else if (key == "--quiet" || key == "-q") {
            options.quiet = true;
        } else {
            usage_error("unknown option '%s'", argv[i]);
            return ParseOutcome::exit_usage_error;
        }
    }
    if (options.scenarios.empty()) {
        usage_error("%s", "no scenario to run");
        return ParseOutcome::exit_usage_error;
    }
    return ParseOutcome::run;
}

}  // namespace cf::latency
