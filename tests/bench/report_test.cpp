// cf-latency's writers: exact text for known reports.
#include <doctest/doctest.h>

#include <cmath>
#include <regex>
#include <string>

#include "bench/cf-latency/report.hpp"
#include "bench/cf-latency/report_scale.hpp"

using namespace cf::latency;

namespace {

Series make(const std::string& name, double base_ns) {
    Series s;
    s.name = name;
    s.count = 1000;
    s.min_ns = base_ns;
    s.mean_ns = base_ns * 1.1;
    s.p50_ns = base_ns;
    s.p90_ns = base_ns * 1.5;
    s.p99_ns = base_ns * 2;
    s.p999_ns = base_ns * 4;
    s.p9999_ns = base_ns * 8;
    s.max_ns = base_ns * 100;
    s.curve = {{0, base_ns}, {50, base_ns}, {90, base_ns * 1.5}, {99, base_ns * 2}, {99.9, base_ns * 4}, {100, s.max_ns}};
    return s;
}

Report sample_report() {
    Report report;
    report.host.cpu_model = "Test CPU & Co <v2>";
    report.host.vendor = "AuthenticAMD";
    report.host.family = 0x19;
    report.host.model = 0x11;
    report.host.isa_level = "avx512";
    report.host.kernel = "Linux 6.1";
    report.host.counter = "rdtsc";
    report.host.counter_ghz = 2.6;
    report.host.pinned_cpu = 1;
    report.host.duration_s = 3;
    ScenarioResult clock;
    clock.scenario = "clock";
    clock.description = "cost";
    clock.series = {make("ours", 10), make("peer \"quoted\"\\path\n", 20)};
    clock.ratios = {{"ours / peer", 0.43, 0.5}, {"tiny", 0.000229, 1234.5}};
    clock.figures = {{"SPSC 64 B: ours", 41.25, "M msg/s"}, {"ours / peer", 1.5, "x"}};
    clock.notes = {"peer \"z\" not built"};
    ScenarioResult timer;
    timer.scenario = "timer";
    timer.description = "jitter";
    timer.series = {make("busy", 50), make("sleep", 60'000), Series{}};   // the last one is empty
    timer.series[2].name = "empty";
    report.scenarios = {clock, timer};
    return report;
}

std::size_t occurrences(const std::string& text, const std::string& what) {
    std::size_t count = 0;
    for (std::size_t pos = text.find(what); pos != std::string::npos; pos = text.find(what, pos + 1)) ++count;
    return count;
}

}  // namespace

TEST_CASE("table: host facts, every series, ratios, adaptive units") {
    const std::string table = format_table(sample_report());
    CHECK(table.find("Test CPU & Co <v2>") != std::string::npos);
    CHECK(table.find("AuthenticAMD, family 0x19, model 0x11") != std::string::npos);
    CHECK(table.find("rdtsc at 2.6000 GHz") != std::string::npos);
    CHECK(table.find("CPU 1") != std::string::npos);
    CHECK(table.find("[clock] cost") != std::string::npos);
    CHECK(table.find("ratio ours / peer:  p50 0.43x  p99 0.5x") != std::string::npos);
    CHECK(table.find("ratio tiny:  p50 0.000229x  p99 1.23e+03x") != std::string::npos);
    CHECK(table.find("  SPSC 64 B: ours: 41.25 M msg/s\n") != std::string::npos);
    CHECK(table.find("  ours / peer: 1.5 x\n") != std::string::npos);
    CHECK(table.find("  note: peer \"z\" not built\n") != std::string::npos);
    CHECK(table.find("10.00 ns") != std::string::npos);
    CHECK(table.find("60.00 us") != std::string::npos);   // 60 000 ns
    CHECK(table.find("6.00 ms") != std::string::npos);    // its max, 6e6 ns
    // Columns line up: every row of a scenario's table has the same length.
    std::regex row("\\n  (ours|busy|sleep|empty) [^\\n]*");
    std::size_t width = 0;
    for (auto it = std::sregex_iterator(table.begin(), table.end(), row); it != std::sregex_iterator(); ++it) {
        if (it->str().find("busy") != std::string::npos) width = it->str().size();
        if (it->str().find("sleep") != std::string::npos || it->str().find("empty") != std::string::npos) {
            CHECK(it->str().size() == width);
        }
    }
}

TEST_CASE("table: figures that name a table print as one grid, in the order given, '-' for a missing cell") {
    Report report;
    ScenarioResult scenario;
    scenario.scenario = "compute";
    scenario.figures = {
        {"probe: 59.1", 59.1, "GFLOP/s"},
        {"dot n=64: ours", 18.25, "GFLOP/s", "GFLOP/s", "dot n=64", "ours"},
        {"dot n=64: peer", 15.5, "GFLOP/s", "GFLOP/s", "dot n=64", "peer"},
        {"dot n=64: ratio", 1.177, "x", "GFLOP/s", "dot n=64", "ours/peer"},
        {"gemm 1024x1024x1024: ours", 52.8, "GFLOP/s", "GFLOP/s", "gemm 1024x1024x1024", "ours"},
        {"dot n=64: ours bandwidth", 26.4, "GB/s", "memory", "dot n=64", "ours GB/s"},
    };
    report.scenarios.push_back(scenario);
    const std::string table = format_table(report);
    CHECK(table.find("  probe: 59.1: 59.1 GFLOP/s\n") != std::string::npos);   // not in a table: a line
    CHECK(table.find("dot n=64: ours:") == std::string::npos);                 // in a table: no line of its own
    CHECK(table.find("  GFLOP/s\n"
                     "                             ours      peer  ours/peer\n"
                     "    dot n=64                18.25      15.5      1.177\n"
                     "    gemm 1024x1024x1024      52.8         -          -\n"
                     "  memory\n"
                     "              ours GB/s\n"
                     "    dot n=64       26.4\n") != std::string::npos);
    const std::string json = format_json(report);
    CHECK(json.find("\"table\": \"GFLOP/s\", \"row\": \"dot n=64\", \"column\": \"ours/peer\"") != std::string::npos);
    CHECK(json.find("{\"label\": \"probe: 59.1\", \"value\": 59.100000000000001, \"unit\": \"GFLOP/s\"}") !=
          std::string::npos);   // no table fields on a plain figure
}

TEST_CASE("json: escaped strings, every percentile, null for non-finite numbers") {
    Report report = sample_report();
    report.scenarios[0].ratios[0].p99 = NAN;
    const std::string json = format_json(report);
    CHECK(json.find("\"name\": \"peer \\\"quoted\\\"\\\\path\\n\"") != std::string::npos);
    CHECK(json.find("\"cpu_model\": \"Test CPU & Co <v2>\"") != std::string::npos);
    CHECK(json.find("\"p99\": null") != std::string::npos);
    CHECK(json.find("\"p50\": 0.42999999999999999") != std::string::npos);   // %.17g: exact round trip
    CHECK(json.find("\"p99.99\": 80") != std::string::npos);
    CHECK(json.find("{\"percentile\": 99.900000000000006, \"value\": 40}") != std::string::npos);
    CHECK(json.find("\"invariant_tsc\": false") != std::string::npos);
    CHECK(json.find("{\"label\": \"SPSC 64 B: ours\", \"value\": 41.25, \"unit\": \"M msg/s\"}") != std::string::npos);
    CHECK(json.find("\"notes\": [\n        \"peer \\\"z\\\" not built\"\n      ]") != std::string::npos);
    CHECK(json.find("\"figures\": [],\n      \"notes\": []") != std::string::npos);   // the timer scenario
    CHECK(json.find("\"percentiles\": []") != std::string::npos);   // the empty series
    CHECK(occurrences(json, "\"scenario\":") == 2);
    CHECK(occurrences(json, "\"name\":") == 5);
    // Balanced brackets outside strings.
    int depth = 0;
    bool in_string = false, escaped = false, never_negative = true;
    for (const char c : json) {
        if (in_string) {
            if (escaped) escaped = false;
            else if (c == '\\') escaped = true;
            else if (c == '"') in_string = false;
            CHECK(c != '\n');   // raw newlines never appear inside strings
            continue;
        }
        if (c == '"') in_string = true;
        else if (c == '{' || c == '[') ++depth;
        else if (c == '}' || c == ']') never_negative = never_negative && --depth >= 0;
    }
    CHECK(depth == 0);
    CHECK(never_negative);
    CHECK_FALSE(in_string);
}

TEST_CASE("json: an empty report is valid") {
    const std::string json = format_json(Report{});
    CHECK(json.find("\"scenarios\": []") != std::string::npos);
}

TEST_CASE("svg: one line per non-empty series, escaped text, HdrHistogram x scale") {
    const std::string svg = format_svg(sample_report());
    CHECK(svg.rfind("<svg", 0) == 0);
    CHECK(svg.size() > 7);
    CHECK(svg.substr(svg.size() - 7) == "</svg>\n");
    CHECK(occurrences(svg, "<polyline") == 4);   // the empty series is skipped
    CHECK(svg.find("Test CPU &amp; Co &lt;v2&gt;") != std::string::npos);
    CHECK(svg.find("clock: peer &quot;quoted&quot;") != std::string::npos);
    CHECK(svg.find(">99.9%<") != std::string::npos);
    CHECK(svg.find(">90%<") != std::string::npos);
    CHECK(svg.find(">1 us<") != std::string::npos);
    CHECK(svg.find(">10 ms<") != std::string::npos);
    CHECK(percentile_to_log_x(0) == 0);
    CHECK(percentile_to_log_x(90) == doctest::Approx(1.0));
    CHECK(percentile_to_log_x(99) == doctest::Approx(2.0));   // twice as far from 0% as 90%
    CHECK(percentile_to_log_x(99.99) == doctest::Approx(4.0));
    CHECK(std::isinf(percentile_to_log_x(100)));
    // A report with nothing to plot is still a valid picture.
    const std::string empty = format_svg(Report{});
    CHECK(occurrences(empty, "<polyline") == 0);
    CHECK(empty.substr(empty.size() - 7) == "</svg>\n");
}
