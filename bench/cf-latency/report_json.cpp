// The machine-readable report: one JSON document, one object per scenario with every percentile.
#include <cmath>
#include <cstdio>
#include <string>

#include "bench/cf-latency/report.hpp"

namespace cf::latency {
namespace {

std::string quoted(const std::string& text) {
    std::string out = "\"";
    for (const char c : text) {
        switch (c) {
            case '"': out += "\\\""; break;
            case '\\': out += "\\\\"; break;
            case '\n': out += "\\n"; break;
            case '\r': out += "\\r"; break;
            case '\t': out += "\\t"; break;
            default:
                if (static_cast<unsigned char>(c) < 0x20) {
                    char escape[8];
                    std::snprintf(escape, sizeof escape, "\\u%04x", static_cast<unsigned>(c));
                    out += escape;
                } else {
                    out += c;
                }
        }
    }
    return out + "\"";
}

// JSON has no NaN or infinity: such a value is written as null.
std::string number(double value) {
    if (!std::isfinite(value)) return "null";
    char text[40];
    std::snprintf(text, sizeof text, "%.17g", value);
    return text;
}

std::string field(const char* key, const std::string& json_value) { return quoted(key) + ": " + json_value; }

}  // namespace

std::string format_json(const Report& report) {
    const HostFacts& h = report.host;
    std::string out = "{\n  \"host\": {\n";
    const std::string host_fields[] = {
        field("cpu_model", quoted(h.cpu_model)),       field("vendor", quoted(h.vendor)),
        field("family", std::to_string(h.family)),     field("model", std::to_string(h.model)),
        field("isa_level", quoted(h.isa_level)),       field("compute_isa", quoted(h.compute_isa)),
        field("kernel", quoted(h.kernel)),
        field("governor", quoted(h.governor)),         field("isolated_cpus", quoted(h.isolated_cpus)),
        field("smt", quoted(h.smt)),                   field("clocksource", quoted(h.clocksource)),
        field("invariant_tsc", h.invariant_tsc ? "true" : "false"),
        field("counter", quoted(h.counter)),           field("counter_ghz", number(h.counter_ghz)),
        field("pinned_cpu", std::to_string(h.pinned_cpu)), field("duration_s", number(h.duration_s)),
    };
    for (std::size_t i = 0; i < std::size(host_fields); ++i) {
        out += "    " + host_fields[i] + (i + 1 < std::size(host_fields) ? ",\n" : "\n");
    }
    out += "  },\n  \"scenarios\": [";
    for (std::size_t s = 0; s < report.scenarios.size(); ++s) {
        const ScenarioResult& scenario = report.scenarios[s];
        out += s == 0 ? "\n" : ",\n";
        out += "    {\n      " + field("scenario", quoted(scenario.scenario)) + ",\n      " +
               field("description", quoted(scenario.description)) + ",\n      \"series\": [";
        for (std::size_t i = 0; i < scenario.series.size(); ++i) {
            const Series& series = scenario.series[i];
            out += i == 0 ? "\n" : ",\n";
            out += "        {\n          " + field("name", quoted(series.name)) + ", " +
                   field("unit", quoted(series.unit)) + ", " + field("count", std::to_string(series.count)) +
                   ",\n          " + field("min", number(series.min_ns)) + ", " + field("mean", number(series.mean_ns)) +
                   ", " + field("max", number(series.max_ns)) + ",\n          " + field("p50", number(series.p50_ns)) +
                   ", " + field("p90", number(series.p90_ns)) + ", " + field("p99", number(series.p99_ns)) + ", " +
                   field("p99.9", number(series.p999_ns)) + ", " + field("p99.99", number(series.p9999_ns)) +
                   ",\n          \"percentiles\": [";
            for (std::size_t k = 0; k < series.curve.size(); ++k) {
                out += k == 0 ? "\n" : ",\n";
                out += "            {" + field("percentile", number(series.curve[k].percentile)) + ", " +
                       field("value", number(series.curve[k].value_ns)) + "}";
            }
            out += series.curve.empty() ? "]\n        }" : "\n          ]\n        }";
        }
        out += scenario.series.empty() ? "],\n      \"ratios\": [" : "\n      ],\n      \"ratios\": [";
        for (std::size_t r = 0; r < scenario.ratios.size(); ++r) {
            const Ratio& ratio = scenario.ratios[r];
            out += r == 0 ? "\n" : ",\n";
            out += "        {" + field("label", quoted(ratio.label)) + ", " + field("p50", number(ratio.p50)) + ", " +
                   field("p99", number(ratio.p99)) + "}";
        }
        out += scenario.ratios.empty() ? "],\n      \"figures\": [" : "\n      ],\n      \"figures\": [";
        for (std::size_t f = 0; f < scenario.figures.size(); ++f) {
            const Figure& figure = scenario.figures[f];
            out += f == 0 ? "\n" : ",\n";
            out += "        {" + field("label", quoted(figure.label)) + ", " + field("value", number(figure.value)) +
                   ", " + field("unit", quoted(figure.unit));
            if (!figure.table.empty()) {
                out += ", " + field("table", quoted(figure.table)) + ", " + field("row", quoted(figure.row)) + ", " +
                       field("column", quoted(figure.column));
            }
            out += "}";
        }
        out += scenario.figures.empty() ? "],\n      \"notes\": [" : "\n      ],\n      \"notes\": [";
        for (std::size_t n = 0; n < scenario.notes.size(); ++n) {
            out += (n == 0 ? "\n        " : ",\n        ") + quoted(scenario.notes[n]);
        }
        out += scenario.notes.empty() ? "]\n    }" : "\n      ]\n    }";
    }
    out += report.scenarios.empty() ? "]\n}\n" : "\n  ]\n}\n";
    return out;
}

}  // namespace cf::latency
