// cf-latency's command line.
#pragma once

#include <string>
#include <vector>

namespace cf::latency {

struct Options {
    std::vector<std::string> scenarios;   // in the order given
    double duration_s = 3.0;              // per scenario
    int cpu = -1;                         // -1: pick the last CPU this process may use
    bool pin = true;
    int timer_interval_us = 200;          // period of the timer scenario's deadline loop
    std::string json_path, svg_path;
    bool quiet = false;                   // no progress on stderr
};

enum class ParseOutcome { run, exit_success, exit_usage_error };

// Parses argv; on help/version/list prints to stdout, on bad input prints "cf-latency: ..." to stderr.
ParseOutcome parse_options(int argc, char** argv, Options& options);

}  // namespace cf::latency
