// An HDR-style log-linear histogram of integer values (latencies), after Gil Tene's HdrHistogram.
//
// Layout: values are grouped in buckets by their power of two; each bucket is split into `half_count` equal
// sub-buckets, with half_count = 2^(ceil(log2(2 * 10^digits)) - 1) >= 10^digits. So any value v lands in a
// sub-bucket narrower than v / half_count: a reported value differs from the recorded one by less than
// v * 10^-digits (values below 2 * half_count * lowest are exact multiples of the lowest unit).
// Memory is fixed at construction: for 1 ns .. 1 hour at 3 digits, 31 buckets of 1024 counters (~250 KiB);
// for 1 ps .. 1 hour (3.6e15) 41 buckets (~330 KiB). Recording is O(1) (count-leading-zeros, shifts, no
// division), allocation-free and not thread-safe: keep one histogram per thread and merge() them to report.
#pragma once

#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <utility>
#include <vector>

namespace cf {

class LatencyHistogram {
public:
    struct Config {
        std::int64_t lowest_discernible = 1;                  // smallest value told apart from 0 (1 ns)
        std::int64_t highest_trackable = 3'600'000'000'000;   // 1 hour in nanoseconds
        int significant_digits = 3;                           // 1 .. 5
        friend bool operator==(const Config&, const Config&) = default;
    };

    // 0, or -EINVAL with last_error_message() saying which field is wrong.
    static int validate(const Config& config) noexcept;

    // Allocates the counters. An invalid config yields an empty histogram whose status() is -EINVAL and that
    // records nothing (check status(), or validate() first).
    explicit LatencyHistogram(const Config& config);
    LatencyHistogram();  // 1 ns .. 1 hour, 3 digits
    LatencyHistogram(LatencyHistogram&&) noexcept = default;
    LatencyHistogram& operator=(LatencyHistogram&&) noexcept = default;
    LatencyHistogram(const LatencyHistogram&) = delete;
    LatencyHistogram& operator=(const LatencyHistogram&) = delete;

    int status() const noexcept { return counts_ ? 0 : -EINVAL; }
    const Config& config() const noexcept { return config_; }

    // Records one value. Negative values are rejected (false, counted in rejected_count()); values above
    // highest_trackable are recorded as highest_trackable and counted in saturated_count(), never dropped.
    bool record(std::int64_t value) noexcept { return record_n(value, 1); }
    bool record_n(std::int64_t value, std::uint64_t count) noexcept {
        if (value < 0 || !counts_) [[unlikely]] {
            rejected_ += count;
            return false;
        }
        if (value > config_.highest_trackable) [[unlikely]] {
            saturated_ += count;
            value = config_.highest_trackable;
        }
        counts_[index_of(value)] += count;
        total_ += count;
        if (value < min_) min_ = value;
        if (value > max_) max_ = value;
        return true;
    }

    // Coordinated-omission correction: a sample that took `value` when one was expected every `expected_interval`
    // stands for the samples that could not be sent meanwhile: value - interval, value - 2 * interval, ... down to
    // the interval. Costs value / interval records; interval <= 0 records the value alone.
    void record_corrected(std::int64_t value, std::int64_t expected_interval) noexcept;

    // Adds another histogram's samples. 0, or -EINVAL (nothing changed) when the configurations differ.
    int merge(const LatencyHistogram& other) noexcept;
    void reset() noexcept;

    std::uint64_t count() const noexcept { return total_; }
    std::uint64_t saturated_count() const noexcept { return saturated_; }
    std::uint64_t rejected_count() const noexcept { return rejected_; }
    std::int64_t min() const noexcept { return total_ == 0 ? 0 : min_; }   // exact, not rounded to a bucket
    std::int64_t max() const noexcept { return total_ == 0 ? 0 : max_; }
    double mean() const noexcept;      // from sub-bucket midpoints
    double stddev() const noexcept;

    // The value at percentile p (0..100): the smallest sub-bucket holding the sample of rank ceil(p/100 * count)
    // (at least 1), reported as that sub-bucket's highest value but never above max(). p <= 0 gives min(),
    // p >= 100 max(), an empty histogram 0.
    std::int64_t value_at_percentile(double percentile) const noexcept;

    // HdrHistogram's percentile iteration for plots: points at 0, 50, 75, 87.5, ... percent, each halving of the
    // remaining distance split into `ticks_per_half_distance` steps, ending with (100, max()). Both coordinates
    // ascend. Allocates: not for the hot path.
    std::vector<std::pair<double, std::int64_t>> percentile_curve(int ticks_per_half_distance = 5) const;

    std::int64_t lowest_equivalent(std::int64_t value) const noexcept;
    std::int64_t highest_equivalent(std::int64_t value) const noexcept;
    std::int64_t equivalent_range(std::int64_t value) const noexcept;
    std::size_t memory_bytes() const noexcept { return sizeof(*this) + counts_length_ * sizeof(std::uint64_t); }

private:
    int bucket_of(std::int64_t value) const noexcept {
        const auto bits = static_cast<std::uint64_t>(value) | sub_bucket_mask_;
        return 64 - __builtin_clzll(bits) - unit_magnitude_ - (half_count_magnitude_ + 1);
    }
    std::size_t index_of(std::int64_t value) const noexcept {
        const int bucket = bucket_of(value);
        const auto sub_bucket = static_cast<std::int64_t>(static_cast<std::uint64_t>(value) >> (bucket + unit_magnitude_));
        return static_cast<std::size_t>((static_cast<std::int64_t>(bucket + 1) << half_count_magnitude_) +
                                        (sub_bucket - half_count_));
    }
    std::int64_t value_at_index(std::size_t index) const noexcept;
    std::uint64_t rank_at(double percentile) const noexcept;

    Config config_;
    int unit_magnitude_ = 0;            // log2 of the lowest unit
    int half_count_magnitude_ = 0;      // log2(half_count)
    std::int64_t half_count_ = 0;
    std::uint64_t sub_bucket_mask_ = 0;
    std::size_t counts_length_ = 0;
    std::unique_ptr<std::uint64_t[]> counts_;
    std::uint64_t total_ = 0, saturated_ = 0, rejected_ = 0;
    std::int64_t min_ = INT64_MAX, max_ = 0;
};

}  // namespace cf
