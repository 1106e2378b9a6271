// The plot's axes, shared by the SVG writer and its tests.
#pragma once

#include <cmath>

namespace cf::latency {

// HdrHistogram's percentile axis: log10(1 / (1 - p/100)), so 0% -> 0, 90% -> 1, 99% -> 2, 99.9% -> 3, ...
// 100% has no finite position; callers clip it to the last decade they show.
inline double percentile_to_log_x(double percentile) {
    if (percentile >= 100) return INFINITY;
    return -std::log10(1.0 - percentile / 100.0);
}

}  // namespace cf::latency
