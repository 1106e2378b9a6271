// LatencyHistogram against exact statistics of the same samples.
#include <doctest/doctest.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <numeric>
#include <random>
#include <vector>

#include "engine/metrics/latency_histogram.hpp"

using cf::LatencyHistogram;

namespace {

// Percentiles in hundredths of a percent, so the exact rank is integer arithmetic: ceil(p * n / 10000).
constexpr std::int64_t kPercentilesX100[] = {1, 100, 1000, 2500, 5000, 7500, 9000, 9900, 9990, 9999};

std::int64_t exact_percentile(const std::vector<std::int64_t>& sorted, std::int64_t percentile_x100) {
    const auto n = static_cast<std::int64_t>(sorted.size());
    std::int64_t rank = (percentile_x100 * n + 9999) / 10000;
    if (rank < 1) rank = 1;
    return sorted[static_cast<std::size_t>(rank - 1)];
}

void check_against_exact(LatencyHistogram& histogram, std::vector<std::int64_t> samples) {
    const int digits = histogram.config().significant_digits;
    const double precision = std::pow(10.0, -digits);
    for (const std::int64_t v : samples) REQUIRE(histogram.record(v));
    std::sort(samples.begin(), samples.end());
    REQUIRE(histogram.count() == samples.size());
    CHECK(histogram.min() == samples.front());
    CHECK(histogram.max() == samples.back());
    CHECK(histogram.value_at_percentile(0) == samples.front());
    CHECK(histogram.value_at_percentile(100) == samples.back());
    for (const std::int64_t p : kPercentilesX100) {
        CAPTURE(p);
        const std::int64_t exact = exact_percentile(samples, p);
        const std::int64_t reported = histogram.value_at_percentile(static_cast<double>(p) / 100.0);
        CAPTURE(exact);
        CAPTURE(reported);
        // The reported value is the top of the sub-bucket holding the exact value (capped at max)...
        CHECK(reported >= histogram.lowest_equivalent(exact));
        CHECK(reported == std::min(histogram.highest_equivalent(exact), samples.back()));
        // ...so it is within the stated relative precision.
        CHECK(static_cast<double>(std::llabs(reported - exact)) <= static_cast<double>(exact) * precision);
    }
    const long double exact_mean =
        std::accumulate(samples.begin(), samples.end(), 0.0L) / static_cast<long double>(samples.size());
    CHECK(histogram.mean() == doctest::Approx(static_cast<double>(exact_mean)).epsilon(precision));
}

}  // namespace

TEST_CASE("small values are exact") {
    LatencyHistogram histogram;
    REQUIRE(histogram.status() == 0);
    for (std::int64_t v = 1; v <= 1000; ++v) histogram.record(v);
    CHECK(histogram.count() == 1000);
    CHECK(histogram.min() == 1);
    CHECK(histogram.max() == 1000);
    CHECK(histogram.value_at_percentile(50) == 500);
    CHECK(histogram.value_at_percentile(90) == 900);
    CHECK(histogram.value_at_percentile(99.9) == 999);
    CHECK(histogram.mean() == doctest::Approx(500.5));
    CHECK(histogram.stddev() == doctest::Approx(288.67).epsilon(0.001));
}

TEST_CASE("percentiles match sorted random samples within the stated precision") {
    for (int digits = 1; digits <= 5; ++digits) {
        CAPTURE(digits);
        std::mt19937_64 rng(1234 + static_cast<unsigned>(digits));
        SUBCASE("uniform 1 .. 1e6") {
            std::uniform_int_distribution<std::int64_t> uniform(1, 1'000'000);
            std::vector<std::int64_t> samples(100'000);
            for (auto& s : samples) s = uniform(rng);
            LatencyHistogram histogram({1, 3'600'000'000'000, digits});
            check_against_exact(histogram, samples);
        }
        SUBCASE("log-uniform 1 ns .. 1 h") {
            std::uniform_real_distribution<double> exponent(0, std::log(3.6e12));
            std::vector<std::int64_t> samples(100'000);
            for (auto& s : samples) s = static_cast<std::int64_t>(std::exp(exponent(rng)));
            LatencyHistogram histogram({1, 3'600'000'000'000, digits});
            check_against_exact(histogram, samples);
        }
        SUBCASE("exponential with a long tail, in picoseconds") {
            std::exponential_distribution<double> exponential(1.0 / 20'000.0);
            std::vector<std::int64_t> samples(100'000);
            for (auto& s : samples) s = 5'000 + static_cast<std::int64_t>(exponential(rng) * (rng() % 100 == 0 ? 1000 : 1));
            LatencyHistogram histogram({1, 3'600'000'000'000'000, digits});
            check_against_exact(histogram, samples);
        }
    }
}

TEST_CASE("coordinated-omission correction back-fills the samples a stall hid") {
    LatencyHistogram histogram;
    histogram.record_corrected(1000, 100);
    CHECK(histogram.count() == 10);   // 1000, 900, ..., 100
    CHECK(histogram.min() == 100);
    CHECK(histogram.max() == 1000);
    CHECK(histogram.value_at_percentile(50) == 500);
    histogram.reset();
    histogram.record_corrected(50, 100);   // faster than the interval: nothing to fill
    CHECK(histogram.count() == 1);
    histogram.record_corrected(70, 0);     // no interval: no correction
    CHECK(histogram.count() == 2);
    histogram.record_corrected(-5, 10);    // rejected, no correction either
    CHECK(histogram.count() == 2);
    CHECK(histogram.rejected_count() == 1);
}

TEST_CASE("merging two halves equals recording everything in one") {
    std::mt19937_64 rng(99);
    std::uniform_int_distribution<std::int64_t> values(1, 50'000'000);
    LatencyHistogram all, first, second;
    for (int i = 0; i < 50'000; ++i) {
        const std::int64_t v = values(rng);
        all.record(v);
        (i % 2 == 0 ? first : second).record(v);
    }
    first.record(-1);
    REQUIRE(first.merge(second) == 0);
    CHECK(first.count() == all.count());
    CHECK(first.min() == all.min());
    CHECK(first.max() == all.max());
    CHECK(first.rejected_count() == 1);
    for (const double p : {0.0, 1.0, 25.0, 50.0, 90.0, 99.0, 99.9, 99.99, 100.0}) {
        CHECK(first.value_at_percentile(p) == all.value_at_percentile(p));
    }
    CHECK(first.mean() == doctest::Approx(all.mean()));

    LatencyHistogram other_digits({1, 3'600'000'000'000, 2});
    other_digits.record(5);
    const std::uint64_t before = first.count();
    CHECK(first.merge(other_digits) == -EINVAL);
    CHECK(first.count() == before);
    LatencyHistogram empty;
    REQUIRE(empty.merge(LatencyHistogram{}) == 0);
    CHECK(empty.count() == 0);
    CHECK(empty.min() == 0);
}

TEST_CASE("reset empties the histogram") {
    LatencyHistogram histogram;
    histogram.record(42);
    histogram.record(-1);
    histogram.reset();
    CHECK(histogram.count() == 0);
    CHECK(histogram.rejected_count() == 0);
    CHECK(histogram.value_at_percentile(50) == 0);
    CHECK(histogram.max() == 0);
    CHECK(histogram.mean() == 0);
    CHECK(histogram.percentile_curve().empty());
}

TEST_CASE("edges: zero, negative, the top of the range and beyond") {
    LatencyHistogram histogram;
    CHECK(histogram.record(0));
    CHECK(histogram.value_at_percentile(100) == 0);
    CHECK_FALSE(histogram.record(-7));
    CHECK(histogram.rejected_count() == 1);
    CHECK(histogram.count() == 1);
    const std::int64_t hour = 3'600'000'000'000;
    CHECK(histogram.record(hour));
    CHECK(histogram.saturated_count() == 0);
    CHECK(histogram.record(hour * 10));   // clamped, counted, not lost
    CHECK(histogram.saturated_count() == 1);
    CHECK(histogram.count() == 3);
    CHECK(histogram.max() == hour);
    CHECK(histogram.value_at_percentile(100) == hour);
    CHECK(histogram.record(INT64_MAX));
    CHECK(histogram.max() == hour);
    CHECK(histogram.record_n(5, 1000));
    CHECK(histogram.count() == 1004);
    CHECK(histogram.value_at_percentile(50) == 5);
}

TEST_CASE("picosecond range holds 1 ps .. 1 h in fixed memory") {
    LatencyHistogram histogram({1, 3'600'000'000'000'000, 3});
    REQUIRE(histogram.status() == 0);
    CHECK(histogram.memory_bytes() < 400 * 1024);
    CHECK(LatencyHistogram{}.memory_bytes() < 300 * 1024);
    histogram.record(1);
    histogram.record(3'600'000'000'000'000);
    CHECK(histogram.saturated_count() == 0);
    CHECK(histogram.value_at_percentile(50) == 1);
    CHECK(histogram.value_at_percentile(100) == 3'600'000'000'000'000);
    const std::int64_t top = histogram.highest_equivalent(3'600'000'000'000'000);
    CHECK(top >= 3'600'000'000'000'000);
    CHECK(static_cast<double>(top - 3'600'000'000'000'000) < 3.6e15 * 1e-3);
}

TEST_CASE("invalid configurations are refused") {
    CHECK(LatencyHistogram::validate({1, 1000, 0}) == -EINVAL);
    CHECK(LatencyHistogram::validate({1, 1000, 6}) == -EINVAL);
    CHECK(LatencyHistogram::validate({0, 1000, 3}) == -EINVAL);
    CHECK(LatencyHistogram::validate({100, 150, 3}) == -EINVAL);
    CHECK(LatencyHistogram::validate({std::int64_t{1} << 50, INT64_MAX, 5}) == -EINVAL);
    CHECK(LatencyHistogram::validate({1000, 3'600'000'000'000, 3}) == 0);
    LatencyHistogram broken({1, 1000, 9});
    CHECK(broken.status() == -EINVAL);
    CHECK_FALSE(broken.record(5));
    CHECK(broken.count() == 0);
    CHECK(broken.value_at_percentile(50) == 0);
    LatencyHistogram fine;
    CHECK(fine.merge(broken) == -EINVAL);
}

TEST_CASE("a coarser unit: values below the unit share its first bucket") {
    LatencyHistogram histogram({1000, 3'600'000'000'000, 3});   // the unit rounds down to 512
    histogram.record(1500);
    histogram.record(2'000'000);
    CHECK(histogram.lowest_equivalent(1500) == 1024);
    CHECK(histogram.equivalent_range(1500) == 512);
    CHECK(histogram.value_at_percentile(50) == 1535);       // top of 1500's sub-bucket [1024, 1535]
    CHECK(histogram.value_at_percentile(99) == 2'000'000);  // top of its sub-bucket, capped at the exact max
}

TEST_CASE("percentile curve ascends and ends at (100, max)") {
    std::mt19937_64 rng(5);
    std::exponential_distribution<double> exponential(1e-4);
    LatencyHistogram histogram;
    for (int i = 0; i < 200'000; ++i) histogram.record(1 + static_cast<std::int64_t>(exponential(rng)));
    const auto curve = histogram.percentile_curve(5);
    REQUIRE(curve.size() > 20);
    CHECK(curve.front().first == 0.0);
    CHECK(curve.front().second == histogram.min());
    CHECK(curve.back().first == 100.0);
    CHECK(curve.back().second == histogram.max());
    for (std::size_t i = 1; i < curve.size(); ++i) {
        CHECK(curve[i].first > curve[i - 1].first);
        CHECK(curve[i].second >= curve[i - 1].second);
    }
    // 50 % and 75 % are among the points, with the same values value_at_percentile gives.
    const auto at = [&](double p) {
        return std::find_if(curve.begin(), curve.end(), [&](const auto& point) { return point.first == p; });
    };
    REQUIRE(at(50.0) != curve.end());
    CHECK(at(50.0)->second == histogram.value_at_percentile(50.0));
    REQUIRE(at(75.0) != curve.end());
}
