#include "engine/metrics/latency_histogram.hpp"

#include <cerrno>
#include <cmath>

#include "platform/os/last_error.hpp"

namespace cf {
namespace {

int floor_log2(std::uint64_t value) { return 63 - __builtin_clzll(value); }
int ceil_log2(std::uint64_t value) { return value <= 1 ? 0 : 64 - __builtin_clzll(value - 1); }

}  // namespace

int LatencyHistogram::validate(const Config& config) noexcept {
    if (config.significant_digits < 1 || config.significant_digits > 5) {
        return platform::fail(EINVAL, "histogram: significant_digits must be 1..5 (got %d)", config.significant_digits);
    }
    if (config.lowest_discernible < 1) {
        return platform::fail(EINVAL, "histogram: lowest_discernible must be >= 1 (got %lld)",
                              static_cast<long long>(config.lowest_discernible));
    }
    if (config.highest_trackable < 2 * config.lowest_discernible) {
        return platform::fail(EINVAL, "histogram: highest_trackable (%lld) must be at least twice lowest_discernible",
                              static_cast<long long>(config.highest_trackable));
    }
    // The top bucket must still fit in 63 bits after rounding the unit down to a power of two.
    int digits_magnitude = ceil_log2(2 * static_cast<std::uint64_t>(std::pow(10, config.significant_digits)));
    if (floor_log2(static_cast<std::uint64_t>(config.lowest_discernible)) + digits_magnitude > 61) {
        return platform::fail(EINVAL, "histogram: lowest_discernible too large for %d significant digits",
                              config.significant_digits);
    }
    return 0;
}

LatencyHistogram::LatencyHistogram() : LatencyHistogram(Config{}) {}

LatencyHistogram::LatencyHistogram(const Config& config) : config_(config) {
    if (validate(config) != 0) return;
    std::uint64_t single_unit_values = 2;
    for (int d = 0; d < config.significant_digits; ++d) single_unit_values *= 10;
    const int sub_bucket_count_magnitude = ceil_log2(single_unit_values);
    half_count_magnitude_ = sub_bucket_count_magnitude - 1;
    half_count_ = std::int64_t{1} << half_count_magnitude_;
    unit_magnitude_ = floor_log2(static_cast<std::uint64_t>(config.lowest_discernible));
    const std::uint64_t sub_bucket_count = std::uint64_t{1} << sub_bucket_count_magnitude;
    sub_bucket_mask_ = (sub_bucket_count - 1) << unit_magnitude_;

    // Buckets until the first value the histogram cannot hold is above highest_trackable.
    std::uint64_t smallest_untrackable = sub_bucket_count << unit_magnitude_;
    int buckets = 1;
    while (smallest_untrackable <= static_cast<std::uint64_t>(config.highest_trackable)) {
        if (smallest_untrackable > (std::uint64_t{1} << 62)) {
            ++buckets;
            break;
        }
        smallest_untrackable <<= 1;
        ++buckets;
    }
    counts_length_ = static_cast<std::size_t>(buckets + 1) * static_cast<std::size_t>(half_count_);
    counts_ = std::make_unique<std::uint64_t[]>(counts_length_);  // zeroed
}

std::int64_t LatencyHistogram::value_at_index(std::size_t index) const noexcept {
    int bucket = static_cast<int>(index >> half_count_magnitude_) - 1;
    std::int64_t sub_bucket = static_cast<std::int64_t>(index & static_cast<std::size_t>(half_count_ - 1)) + half_count_;
    if (bucket < 0) {
        sub_bucket -= half_count_;
        bucket = 0;
    }
    return sub_bucket << (bucket + unit_magnitude_);
}

std::int64_t LatencyHistogram::lowest_equivalent(std::int64_t value) const noexcept {
    if (!counts_ || value < 0) return 0;
    const int bucket = bucket_of(value);
    const std::int64_t sub_bucket = value >> (bucket + unit_magnitude_);
    return sub_bucket << (bucket + unit_magnitude_);
}

std::int64_t LatencyHistogram::equivalent_range(std::int64_t value) const noexcept {
    if (!counts_ || value < 0) return 1;
    const int bucket = bucket_of(value);
    const std::int64_t sub_bucket = value >> (bucket + unit_magnitude_);
    // The top half of bucket 0 has the same width as bucket 1.
    const int adjusted = sub_bucket >= 2 * half_count_ ? bucket + 1 : bucket;
    return std::int64_t{1} << (unit_magnitude_ + adjusted);
}

std::int64_t LatencyHistogram::highest_equivalent(std::int64_t value) const noexcept {
    return lowest_equivalent(value) + equivalent_range(value) - 1;
}

void LatencyHistogram::record_corrected(std::int64_t value, std::int64_t expected_interval) noexcept {
    if (!record(value) || expected_interval <= 0) return;
    for (std::int64_t missing = value - expected_interval; missing >= expected_interval; missing -= expected_interval) {
        record(missing);
    }
}

int LatencyHistogram::merge(const LatencyHistogram& other) noexcept {
    if (!counts_ || !other.counts_ || !(config_ == other.config_)) {
        return platform::fail(EINVAL, "histogram: cannot merge histograms of different configurations");
    }
    for (std::size_t i = 0; i < counts_length_; ++i) counts_[i] += other.counts_[i];
    total_ += other.total_;
    saturated_ += other.saturated_;
    rejected_ += other.rejected_;
    if (other.total_ != 0) {
        if (other.min_ < min_) min_ = other.min_;
        if (other.max_ > max_) max_ = other.max_;
    }
    return 0;
}

void LatencyHistogram::reset() noexcept {
    for (std::size_t i = 0; i < counts_length_; ++i) counts_[i] = 0;
    total_ = saturated_ = rejected_ = 0;
    min_ = INT64_MAX;
    max_ = 0;
}

double LatencyHistogram::mean() const noexcept {
    if (total_ == 0) return 0;
    long double sum = 0;
    for (std::size_t i = 0; i < counts_length_; ++i) {
        if (counts_[i] == 0) continue;
        const std::int64_t low = value_at_index(i);
        sum += static_cast<long double>(counts_[i]) * static_cast<long double>(low + equivalent_range(low) / 2);
    }
    return static_cast<double>(sum / total_);
}

double LatencyHistogram::stddev() const noexcept {
    if (total_ == 0) return 0;
    const long double average = mean();
    long double squares = 0;
    for (std::size_t i = 0; i < counts_length_; ++i) {
        if (counts_[i] == 0) continue;
        const std::int64_t low = value_at_index(i);
        const long double deviation = static_cast<long double>(low + equivalent_range(low) / 2) - average;
        squares += deviation * deviation * static_cast<long double>(counts_[i]);
    }
    return std::sqrt(static_cast<double>(squares / total_));
}

// ceil(p/100 * count), at least 1; the tolerance keeps 99.99 % of 100000 at rank 99990 despite binary fractions.
std::uint64_t LatencyHistogram::rank_at(double percentile) const noexcept {
    const long double exact = static_cast<long double>(percentile) / 100.0L * static_cast<long double>(total_);
    auto rank = static_cast<std::uint64_t>(exact);
    if (exact - static_cast<long double>(rank) > 1e-9L * (exact > 1 ? exact : 1)) ++rank;
    if (rank < 1) rank = 1;
    return rank > total_ ? total_ : rank;
}

std::int64_t LatencyHistogram::value_at_percentile(double percentile) const noexcept {
    if (total_ == 0) return 0;
    if (!(percentile > 0)) return min_;
    if (percentile >= 100) return max_;
    const std::uint64_t rank = rank_at(percentile);
    std::uint64_t seen = 0;
    for (std::size_t i = 0; i < counts_length_; ++i) {
        seen += counts_[i];
        if (seen >= rank) {
            const std::int64_t value = highest_equivalent(value_at_index(i));
            if (value > max_) return max_;
            return value < min_ ? min_ : value;
        }
    }
    return max_;
}

std::vector<std::pair<double, std::int64_t>> LatencyHistogram::percentile_curve(int ticks_per_half_distance) const {
    std::vector<std::pair<double, std::int64_t>> points;
    if (total_ == 0) return points;
    if (ticks_per_half_distance < 1) ticks_per_half_distance = 1;
    double percentile = 0;
    // Stop once the next target's rank is the last sample: finer targets would all read max().
    while (percentile < 100 && rank_at(percentile) < total_) {
        points.emplace_back(percentile, value_at_percentile(percentile));
        const double halvings = std::floor(std::log2(100.0 / (100.0 - percentile))) + 1;
        percentile += 100.0 / (ticks_per_half_distance * std::pow(2.0, halvings));
    }
    points.emplace_back(100.0, max_);
    return points;
}

}  // namespace cf
