// The human-readable report: host facts, then one aligned percentile table per scenario.
#include <algorithm>
#include <cstdio>
#include <string>
#include <vector>

#include "bench/cf-latency/report.hpp"

namespace cf::latency {
namespace {

// Nanoseconds with a precision that suits their size: "12.34 ns", "512.3 ns", "5.67 us", "2.34 ms", "1.20 s".
std::string format_ns(double ns) {
    char text[32];
    if (ns < 100) std::snprintf(text, sizeof text, "%.2f ns", ns);
    else if (ns < 1e3) std::snprintf(text, sizeof text, "%.1f ns", ns);
    else if (ns < 1e6) std::snprintf(text, sizeof text, "%.2f us", ns / 1e3);
    else if (ns < 1e9) std::snprintf(text, sizeof text, "%.2f ms", ns / 1e6);
    else std::snprintf(text, sizeof text, "%.2f s", ns / 1e9);
    return text;
}

std::string pad_right(const std::string& text, std::size_t width) {
    return text.size() >= width ? text : text + std::string(width - text.size(), ' ');
}
std::string pad_left(const std::string& text, std::size_t width) {
    return text.size() >= width ? text : std::string(width - text.size(), ' ') + text;
}

void add_fact(std::string& out, const char* label, const std::string& value) {
    out += "  " + pad_right(label, 15) + value + "\n";
}

// Names in first-seen order, each once.
void add_once(std::vector<std::string>& names, const std::string& name) {
    if (std::find(names.begin(), names.end(), name) == names.end()) names.push_back(name);
}

// Each table the figures name, as a grid: rows and columns in the order the scenario gave them, "-" where a row
// has no value for a column.
void add_grids(std::string& out, const std::vector<Figure>& figures) {
    std::vector<std::string> tables;
    for (const Figure& figure : figures) {
        if (!figure.table.empty()) add_once(tables, figure.table);
    }
    for (const std::string& table : tables) {
        std::vector<std::string> rows, columns;
        std::size_t row_width = 0;
        for (const Figure& figure : figures) {
            if (figure.table != table) continue;
            add_once(rows, figure.row);
            add_once(columns, figure.column);
            row_width = std::max(row_width, figure.row.size());
        }
        std::vector<std::size_t> widths;
        for (const std::string& column : columns) widths.push_back(std::max<std::size_t>(column.size(), 8) + 2);
        out += "  " + table + "\n    " + pad_right("", row_width);
        for (std::size_t c = 0; c < columns.size(); ++c) out += pad_left(columns[c], widths[c]);
        out += "\n";
        for (const std::string& row : rows) {
            out += "    " + pad_right(row, row_width);
            for (std::size_t c = 0; c < columns.size(); ++c) {
                std::string cell = "-";
                for (const Figure& figure : figures) {
                    if (figure.table == table && figure.row == row && figure.column == columns[c]) {
                        char text[32];
                        std::snprintf(text, sizeof text, "%.4g", figure.value);
                        cell = text;
                    }
                }
                out += pad_left(cell, widths[c]);
            }
            out += "\n";
        }
    }
}

}  // namespace

std::string format_table(const Report& report) {
    const HostFacts& host = report.host;
    std::string out = "cf-latency host report\n";
    char text[160];
    add_fact(out, "CPU", host.cpu_model);
    std::snprintf(text, sizeof text, "%s, family 0x%x, model 0x%x", host.vendor.c_str(), host.family, host.model);
    add_fact(out, "vendor", text);
    add_fact(out, "ISA level", host.isa_level);
    add_fact(out, "compute ISA", host.compute_isa + " (cf::compute dispatcher)");
    add_fact(out, "kernel", host.kernel);
    add_fact(out, "governor", host.governor);
    add_fact(out, "isolated CPUs", host.isolated_cpus);
    add_fact(out, "SMT", host.smt);
    add_fact(out, "clocksource", host.clocksource);
    add_fact(out, "invariant TSC", host.invariant_tsc ? "yes" : "no");
    std::snprintf(text, sizeof text, "%s at %.4f GHz", host.counter.c_str(), host.counter_ghz);
    add_fact(out, "counter", host.counter_ghz > 0 ? text : host.counter);
    add_fact(out, "pinned to", host.pinned_cpu >= 0 ? "CPU " + std::to_string(host.pinned_cpu) : "not pinned");
    std::snprintf(text, sizeof text, "%.2f s per scenario", host.duration_s);
    add_fact(out, "duration", text);

    static const char* const kColumns[] = {"p50", "p90", "p99", "p99.9", "p99.99", "max", "count"};
    constexpr std::size_t kValueWidth = 11;
    for (const ScenarioResult& scenario : report.scenarios) {
        out += "\n[" + scenario.scenario + "] " + scenario.description + "\n";
        std::size_t name_width = 6;
        for (const Series& series : scenario.series) name_width = std::max(name_width, series.name.size());
        if (!scenario.series.empty()) {
            out += "  " + pad_right("series", name_width);
            for (const char* column : kColumns) out += pad_left(column, kValueWidth);
            out += "\n";
        }
        for (const Series& series : scenario.series) {
            out += "  " + pad_right(series.name, name_width);
            for (const double value : {series.p50_ns, series.p90_ns, series.p99_ns, series.p999_ns, series.p9999_ns,
                                       series.max_ns}) {
                out += pad_left(format_ns(value), kValueWidth);
            }
            out += pad_left(std::to_string(series.count), kValueWidth) + "\n";
        }
        for (const Ratio& ratio : scenario.ratios) {
            // Three significant digits: ratios of 0.95 and of 0.00023 (busy-poll vs a kernel timer) both read.
            std::snprintf(text, sizeof text, "  p50 %.3gx  p99 %.3gx", ratio.p50, ratio.p99);
            out += "  ratio " + ratio.label + ":" + text + "\n";
        }
        for (const Figure& figure : scenario.figures) {
            if (!figure.table.empty()) continue;
            std::snprintf(text, sizeof text, "%.4g %s", figure.value, figure.unit.c_str());
            out += "  " + figure.label + ": " + text + "\n";
        }
        add_grids(out, scenario.figures);
        for (const std::string& note : scenario.notes) out += "  note: " + note + "\n";
    }
    return out;
}

}  // namespace cf::latency
