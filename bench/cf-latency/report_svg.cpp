// The percentile-distribution plot: every series of every scenario as one line, x log-scaled in 1/(1-p)
// like HdrHistogram's plots, y log-scaled in nanoseconds. Standalone SVG, no script, no external assets.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <string>

#include "bench/cf-latency/report.hpp"
#include "bench/cf-latency/report_scale.hpp"

namespace cf::latency {
namespace {

constexpr double kWidth = 1000, kHeight = 600;
constexpr double kLeft = 80, kRight = 330, kTop = 60, kBottom = 60;   // the legend sits in the right margin
constexpr const char* kPalette[] = {"#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd",
                                    "#8c564b", "#e377c2", "#17becf", "#7f7f7f", "#bcbd22"};

std::string escaped(const std::string& text) {
    std::string out;
    for (const char c : text) {
        switch (c) {
            case '&': out += "&amp;"; break;
            case '<': out += "&lt;"; break;
            case '>': out += "&gt;"; break;
            case '"': out += "&quot;"; break;
            default: out += c;
        }
    }
    return out;
}

std::string decade_label(int decade) {   // 10^decade nanoseconds
    static const char* const kUnits[] = {"ns", "us", "ms", "s"};
    if (decade < 0) {
        char text[24];
        std::snprintf(text, sizeof text, "%g ns", std::pow(10.0, decade));
        return text;
    }
    const int unit = std::min(decade / 3, 3);
    const int zeros = decade - unit * 3;
    return std::to_string(static_cast<long long>(std::pow(10.0, zeros))) + " " + kUnits[unit];
}

std::string percentile_label(int decade) {   // 0 -> "0%", 1 -> "90%", 2 -> "99%", 3 -> "99.9%", 4 -> "99.99%"
    if (decade == 0) return "0%";
    if (decade == 1) return "90%";
    std::string label = "99";
    if (decade > 2) label.append(".").append(static_cast<std::size_t>(decade - 2), '9');
    return label.append("%");
}

}  // namespace

std::string format_svg(const Report& report) {
    // Axis ranges from the data: x to the deepest finite percentile shown (at least 99.9%, at most 99.9999%),
    // y across the decades the values span.
    double x_max = 3, lowest = INFINITY, highest = 0;
    for (const ScenarioResult& scenario : report.scenarios) {
        for (const Series& series : scenario.series) {
            for (const PercentilePoint& point : series.curve) {
                if (point.percentile < 100) x_max = std::max(x_max, std::ceil(percentile_to_log_x(point.percentile)));
                if (point.value_ns > 0) lowest = std::min(lowest, point.value_ns);
                highest = std::max(highest, point.value_ns);
            }
        }
    }
    x_max = std::min(x_max, 6.0);
    if (!std::isfinite(lowest)) lowest = 1, highest = 10;
    const int y_low = static_cast<int>(std::floor(std::log10(lowest)));
    const int y_high = std::max(y_low + 1, static_cast<int>(std::ceil(std::log10(std::max(highest, lowest)))));

    const double plot_w = kWidth - kLeft - kRight, plot_h = kHeight - kTop - kBottom;
    const auto x_at = [&](double percentile) {
        return kLeft + std::min(percentile_to_log_x(percentile), x_max) / x_max * plot_w;
    };
    const auto y_at = [&](double ns) {
        const double decades = ns > 0 ? std::log10(ns) : y_low;
        return kTop + plot_h - (std::max(decades, double(y_low)) - y_low) / (y_high - y_low) * plot_h;
    };

    char text[512];
    std::string out;
    std::snprintf(text, sizeof text,
                  "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%.0f\" height=\"%.0f\" viewBox=\"0 0 %.0f %.0f\" "
                  "font-family=\"sans-serif\" font-size=\"12\">\n<rect width=\"100%%\" height=\"100%%\" fill=\"white\"/>\n",
                  kWidth, kHeight, kWidth, kHeight);
    out += text;
    out += "<text x=\"" + std::to_string(int(kLeft)) +
           "\" y=\"24\" font-size=\"16\" font-weight=\"bold\">cf-latency percentile distribution</text>\n";
    out += "<text x=\"" + std::to_string(int(kLeft)) + "\" y=\"42\" fill=\"#555\">" +
           escaped(report.host.cpu_model + " | " + report.host.kernel) + "</text>\n";

    for (int decade = 0; decade <= static_cast<int>(x_max); ++decade) {
        const double x = kLeft + decade / x_max * plot_w;
        std::snprintf(text, sizeof text,
                      "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#ddd\"/>\n"
                      "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">%s</text>\n",
                      x, kTop, x, kTop + plot_h, x, kTop + plot_h + 18, percentile_label(decade).c_str());
        out += text;
    }
    for (int decade = y_low; decade <= y_high; ++decade) {
        const double y = y_at(std::pow(10.0, decade));
        std::snprintf(text, sizeof text,
                      "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#ddd\"/>\n"
                      "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"end\">%s</text>\n",
                      kLeft, y, kLeft + plot_w, y, kLeft - 6, y + 4, decade_label(decade).c_str());
        out += text;
    }
    std::snprintf(text, sizeof text,
                  "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" fill=\"none\" stroke=\"#333\"/>\n"
                  "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">percentile</text>\n"
                  "<text x=\"18\" y=\"%.1f\" text-anchor=\"middle\" transform=\"rotate(-90 18 %.1f)\">latency</text>\n",
                  kLeft, kTop, plot_w, plot_h, kLeft + plot_w / 2, kHeight - 14, kTop + plot_h / 2, kTop + plot_h / 2);
    out += text;

    int line = 0;
    for (const ScenarioResult& scenario : report.scenarios) {
        for (const Series& series : scenario.series) {
            if (series.curve.empty()) continue;
            const char* colour = kPalette[line % std::size(kPalette)];
            out += "<polyline fill=\"none\" stroke-width=\"2\" stroke=\"" + std::string(colour) + "\" points=\"";
            for (const PercentilePoint& point : series.curve) {
                std::snprintf(text, sizeof text, "%.1f,%.1f ", x_at(point.percentile), y_at(point.value_ns));
                out += text;
            }
            out += "\"/>\n";
            const double legend_y = kTop + 10 + line * 20;
            std::snprintf(text, sizeof text,
                          "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"%s\" stroke-width=\"3\"/>\n",
                          kWidth - kRight + 16, legend_y, kWidth - kRight + 40, legend_y, colour);
            out += text;
            std::snprintf(text, sizeof text, "<text x=\"%.1f\" y=\"%.1f\">", kWidth - kRight + 46, legend_y + 4);
            out += text + escaped(scenario.scenario + ": " + series.name) + "</text>\n";
            ++line;
        }
    }
    out += "</svg>\n";
    return out;
}

}  // namespace cf::latency
