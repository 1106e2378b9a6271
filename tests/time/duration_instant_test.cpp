// Duration and Instant: exact femtosecond arithmetic, conversions and their range limits.
#include <doctest/doctest.h>

#include <random>

#include "engine/time/instant.hpp"

using cf::Duration;
using cf::Femtos;
using cf::Instant;

namespace {
constexpr Femtos kFsPerSecond = 1'000'000'000'000'000;
constexpr std::int64_t kSecondsPer300Years = 300LL * 36525 * 86400 / 100;  // Julian years

bool same(const timespec& a, const timespec& b) { return a.tv_sec == b.tv_sec && a.tv_nsec == b.tv_nsec; }
}  // namespace

TEST_CASE("unit constructors are exact") {
    CHECK(Duration::from_picos(1).femtos() == 1'000);
    CHECK(Duration::from_nanos(1).femtos() == 1'000'000);
    CHECK(Duration::from_micros(-3).femtos() == -3'000'000'000);
    CHECK(Duration::from_millis(7).femtos() == 7'000'000'000'000);
    CHECK(Duration::from_seconds(2).femtos() == 2 * kFsPerSecond);
    CHECK(Instant::from_unix_nanos(1'700'000'000'123'456'789).femtos() ==
          Femtos{1'700'000'000'123'456'789} * 1'000'000);
}

TEST_CASE("timespec conversion floors toward negative infinity and stays normalised") {
    CHECK(same(Duration::from_femtos(1'500'000).to_timespec(), timespec{0, 1}));
    CHECK(same(Duration::from_femtos(-1).to_timespec(), timespec{-1, 999'999'999}));
    CHECK(same(Duration::from_nanos(-1).to_timespec(), timespec{-1, 999'999'999}));
    CHECK(same(Duration::from_femtos(-1'000'001).to_timespec(), timespec{-1, 999'999'998}));
    CHECK(Duration::from_timespec(timespec{-1, 999'999'999}).femtos() == -1'000'000);
    // Unnormalised input is still exact.
    CHECK(Duration::from_timespec(timespec{1, 2'000'000'000}) == Duration::from_seconds(3));
    CHECK(Duration::from_timespec(timespec{2, -500'000'000}) == Duration::from_millis(1500));
}

TEST_CASE("random timespecs round-trip exactly") {
    std::mt19937_64 rng(20261125);
    std::uniform_int_distribution<std::int64_t> seconds(-kSecondsPer300Years * 10, kSecondsPer300Years * 10);
    std::uniform_int_distribution<long> nanos(0, 999'999'999);
    for (int i = 0; i < 100'000; ++i) {
        const timespec ts{seconds(rng), nanos(rng)};
        REQUIRE(same(Instant::from_timespec(ts).to_timespec(), ts));
        REQUIRE(same(Duration::from_timespec(ts).to_timespec(), ts));
        std::int64_t ns = 0;
        const Instant t = Instant::from_timespec(ts);
        if (t.to_unix_nanos(ns)) REQUIRE(Instant::from_unix_nanos(ns) == t);
    }
}

TEST_CASE("plus or minus 300 years is in range and converts exactly") {
    const Duration span = Duration::from_seconds(kSecondsPer300Years) + Duration::from_femtos(123);
    const Instant future = Instant::epoch() + span;
    const Instant past = Instant::epoch() - span;
    CHECK(future - past == span * 2);
    CHECK(same(future.to_timespec(), timespec{kSecondsPer300Years, 0}));
    CHECK(same(past.to_timespec(), timespec{-kSecondsPer300Years - 1, 999'999'999}));
    // int64 nanoseconds cover only about +-292 years: the checked conversion says so instead of wrapping.
    std::int64_t ns = 0;
    CHECK_FALSE(future.to_unix_nanos(ns));
    CHECK_FALSE(past.to_unix_nanos(ns));
    CHECK((Instant::epoch() + Duration::from_seconds(200LL * 31'557'600)).to_unix_nanos(ns));
    CHECK(ns == 200LL * 31'557'600 * 1'000'000'000);
}

TEST_CASE("checked arithmetic reports overflow at the range limits") {
    Duration out;
    CHECK_FALSE(Duration::checked_add(Duration::max(), Duration::from_femtos(1), out));
    CHECK(Duration::checked_add(Duration::max(), Duration::from_femtos(-1), out));
    CHECK(out.femtos() == Duration::max().femtos() - 1);
    CHECK_FALSE(Duration::checked_sub(Duration::min(), Duration::from_femtos(1), out));
    CHECK_FALSE(Duration::checked_mul(Duration::max(), 2, out));
    CHECK(Duration::checked_mul(Duration::from_seconds(1), INT64_MAX, out));  // 9.2e18 s is still in range
    CHECK(out == Duration::from_seconds(INT64_MAX));
    CHECK(Duration::checked_mul(Duration::from_seconds(2), -3, out));
    CHECK(out == Duration::from_seconds(-6));
    Instant t;
    CHECK_FALSE(Instant::checked_add(Instant::max(), Duration::from_femtos(1), t));
    CHECK_FALSE(Instant::checked_sub(Instant::min(), Duration::from_femtos(1), t));
    CHECK(Instant::checked_add(Instant::epoch(), Duration::from_nanos(5), t));
    CHECK(t == Instant::from_unix_nanos(5));
    Duration diff;
    CHECK_FALSE(Instant::checked_diff(Instant::max(), Instant::min(), diff));
    CHECK(Instant::checked_diff(Instant::from_unix_nanos(10), Instant::from_unix_nanos(3), diff));
    CHECK(diff == Duration::from_nanos(7));
}

TEST_CASE("operators saturate instead of overflowing") {
    CHECK(Duration::max() + Duration::from_femtos(1) == Duration::max());
    CHECK(Duration::min() - Duration::from_femtos(1) == Duration::min());
    CHECK(Duration::max() * 3 == Duration::max());
    CHECK(Duration::max() * -3 == Duration::min());
    CHECK(Duration::min() * -1 == Duration::max());
    CHECK(Duration::from_seconds(1) / 0 == Duration::max());
    CHECK(Duration::from_seconds(-1) / 0 == Duration::min());
    CHECK(Duration::zero() / 0 == Duration::zero());
    CHECK(Duration::from_nanos(7) / 2 == Duration::from_femtos(3'500'000));
    CHECK(Duration::from_femtos(-7) / 2 == Duration::from_femtos(-3));  // truncates toward zero
    CHECK(Instant::max() + Duration::from_seconds(1) == Instant::max());
    CHECK(Instant::max() - Instant::min() == Duration::max());
    CHECK(Duration::from_femtos(Duration::max().femtos() * 4) == Duration::max());
}

TEST_CASE("extreme timespecs") {
    const timespec top{INT64_MAX, 999'999'999};
    CHECK(same(Instant::from_timespec(top).to_timespec(), top));
    const timespec bottom{INT64_MIN, 0};
    CHECK(same(Instant::from_timespec(bottom).to_timespec(), bottom));
    CHECK(Instant::from_timespec(bottom) == Instant::min());
}

TEST_CASE("comparisons and mixed arithmetic") {
    const Instant a = Instant::from_unix_nanos(1000);
    const Instant b = a + Duration::from_femtos(1);
    CHECK(a < b);
    CHECK(b - a == Duration::from_femtos(1));
    CHECK(a - b == Duration::from_femtos(-1));
    Instant c = b;
    c -= Duration::from_femtos(1);
    CHECK(c == a);
    CHECK(-Duration::max() == Duration::min());
    CHECK(Duration::from_nanos(3).to_nanos_f64() == doctest::Approx(3.0));
}
