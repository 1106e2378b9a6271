// Hybrid logical clock: the rules of Kulkarni et al. (2014) case by case, against an unpacked reference
// implementation on random event sequences, drift rejection, and uniqueness under concurrent ticking.
#include <doctest/doctest.h>

#include <algorithm>
#include <cstdio>
#include <cerrno>
#include <random>
#include <thread>
#include <vector>

#include "engine/time/hlc.hpp"
#include "tests/time/fake_physical.hpp"

namespace doctest {
template <>
struct StringMaker<cf::HlcStamp> {
    static String convert(const cf::HlcStamp& s) {
        char text[64];
        std::snprintf(text, sizeof text, "(%llu, %u, node %u)", static_cast<unsigned long long>(s.physical_units()),
                      s.logical(), static_cast<unsigned>(s.node));
        return text;
    }
};
}  // namespace doctest

using cf::Duration;
using cf::HlcStamp;
using cf::HybridLogicalClock;
using cf::Instant;

namespace {

using cf::test::FakePhysical;
using cf::test::kUnitsPerSecond;

HybridLogicalClock::Config fake_config(FakePhysical& physical, Duration max_drift = Duration::from_seconds(1)) {
    return cf::test::fake_config(physical, 7, max_drift);
}

HlcStamp stamp(std::uint64_t l, std::uint32_t c, std::uint16_t node = 1) { return HlcStamp::from_parts(l, c, node); }

// The paper's algorithm with l and c as separate integers (Figure 5 of the paper).
struct ReferenceHlc {
    std::uint64_t l = 0, c = 0;
    void send(std::uint64_t pt) {
        const std::uint64_t old_l = l;
        l = std::max(old_l, pt);
        c = (l == old_l) ? c + 1 : 0;
    }
    void receive(std::uint64_t pt, std::uint64_t lm, std::uint64_t cm) {
        const std::uint64_t old_l = l;
        l = std::max({old_l, lm, pt});
        if (l == old_l && l == lm) c = std::max(c, cm) + 1;
        else if (l == old_l) c = c + 1;
        else if (l == lm) c = cm + 1;
        else c = 0;
    }
};

}  // namespace

TEST_CASE("units: 2^24 per second since the Unix epoch, exact both ways") {
    CHECK(cf::hlc_units_from_instant(Instant::epoch()) == 0);
    CHECK(cf::hlc_units_from_instant(Instant::epoch() - Duration::from_seconds(1)) == 0);
    CHECK(cf::hlc_units_from_instant(Instant::epoch() + Duration::from_seconds(1)) == kUnitsPerSecond);
    CHECK(cf::hlc_units_from_instant(Instant::epoch() + Duration::from_seconds(1) - Duration::from_femtos(1)) ==
          kUnitsPerSecond - 1);
    CHECK(stamp(kUnitsPerSecond * 1000, 0).physical_time() == Instant::epoch() + Duration::from_seconds(1000));
    // 2^32 s after 1970 (year 2106) is the end of the 56-bit field: saturates instead of wrapping.
    const std::uint64_t top = (std::uint64_t{1} << 56) - 1;
    CHECK(cf::hlc_units_from_instant(Instant::epoch() + Duration::from_seconds(std::int64_t{1} << 33)) == top);
    // A realistic time maps to the unit that contains it, whose first femtosecond maps back to the same unit.
    const Instant now = Instant::from_unix_nanos(1'795'000'000'123'456'789);
    const std::uint64_t units = cf::hlc_units_from_instant(now);
    const Instant back = stamp(units, 0).physical_time();
    CHECK(back <= now);
    CHECK(now - back < Duration::from_nanos(60));
    CHECK(cf::hlc_units_from_instant(back) == units);
    CHECK(cf::hlc_units_from_instant(back - Duration::from_femtos(1)) == units - 1);
}

TEST_CASE("units: the division-free conversion equals the generic 128-bit division, at random and at the edges") {
    // The reference: what hlc_units_from_instant computed before (fs * 2^24 / 10^15 with the compiler's 128-bit
    // division, saturating at 2^56 - 1).
    const auto reference = [](cf::Femtos fs) -> std::uint64_t {
        const cf::Femtos top = (cf::Femtos{1} << 56) - 1;
        if (fs <= 0) return 0;
        if (fs >= cf::Femtos{1} << 100) return static_cast<std::uint64_t>(top);   // fs << 24 would overflow
        const cf::Femtos units = (fs << 24) / 1'000'000'000'000'000;
        return static_cast<std::uint64_t>(units > top ? top : units);
    };
    const auto at = [](cf::Femtos fs) { return Instant::epoch() + Duration::from_femtos(fs); };
    std::mt19937_64 random(20261207);
    for (int i = 0; i < 200000; ++i) {
        // Every magnitude from 1 fs to past the saturation point (2^82 fs, 2106) and the divide guard (2^88).
        const int bits = 1 + static_cast<int>(random() % 95);
        const cf::Femtos fs = (cf::Femtos{random() >> 1} << 64 | random()) & ((cf::Femtos{1} << bits) - 1);
        INFO("bits ", bits);
        REQUIRE(cf::hlc_units_from_instant(at(fs)) == reference(fs));
    }
    const cf::Femtos edges[] = {1, 59'604'644, 59'604'645, (cf::Femtos{1} << 81), (cf::Femtos{1} << 82),
                                (cf::Femtos{1} << 88) - 1, cf::Femtos{1} << 88, cf::time_detail::kMaxFemtos};
    for (const cf::Femtos fs : edges) {
        CHECK(cf::hlc_units_from_instant(at(fs)) == reference(fs));
        CHECK(cf::hlc_units_from_instant(at(fs - 1)) == reference(fs - 1));
    }
}

TEST_CASE("units: the reciprocal and its corrections are exact over the whole range, next to every quotient step") {
    // Below the saturation point hlc_units_from_instant only reaches 2^56 units; the helper is meant for all
    // fs < 2^88, so it is checked there directly, at random and where a quotient steps (n = fs << 9 next to k * 5^15,
    // the remainders that need a correction, or none).
    using cf::hlc_detail::U128;
    const auto units = [](U128 fs) {
        return cf::hlc_detail::units_from_femtos(static_cast<std::uint64_t>(fs >> 24), static_cast<std::uint64_t>(fs) << 9);
    };
    const auto reference = [](U128 fs) { return static_cast<std::uint64_t>((fs << 9) / 30'517'578'125); };
    std::mt19937_64 random(7121);
    std::uint64_t corrected = 0;
    for (int i = 0; i < 200000; ++i) {
        const int bits = 1 + static_cast<int>(random() % 88);
        const U128 fs = ((U128{random()} << 64) | random()) & ((U128{1} << bits) - 1);
        REQUIRE(units(fs) == reference(fs));
        const U128 k = U128{random()} >> (2 + random() % 62);   // a quotient below 2^62
        const U128 step = k * 30'517'578'125 / 512;            // fs whose n is just below or at k * 5^15
        for (const U128 near : {step - 1, step, step + 1, step + 2}) {
            if (near >= (U128{1} << 88)) continue;
            REQUIRE(units(near) == reference(near));
            const U128 estimate = ((near >> 24) * cf::hlc_detail::kUnitReciprocal) >> 64;
            if (estimate != reference(near)) ++corrected;
        }
    }
    CHECK(corrected > 1000);   // the corrections were exercised, not only the first estimate
}

TEST_CASE("stamps order by l, then c, then node") {
    CHECK(stamp(5, 0) < stamp(5, 1));
    CHECK(stamp(5, 255) < stamp(6, 0));
    CHECK(stamp(5, 3, 1) < stamp(5, 3, 2));
    CHECK(stamp(5, 3, 2) == stamp(5, 3, 2));
    CHECK(stamp(9, 4).physical_units() == 9);
    CHECK(stamp(9, 4).logical() == 4);
}

TEST_CASE("send: l follows physical time, c counts events that share l") {
    FakePhysical physical{100};
    HybridLogicalClock clock(fake_config(physical));
    CHECK(clock.now() == stamp(100, 0, 7));
    CHECK(clock.now() == stamp(100, 1, 7));   // pt did not advance
    physical.units = 50;                      // pt went backwards: l holds, c counts on
    CHECK(clock.now() == stamp(100, 2, 7));
    physical.units = 200;                     // pt passed l: c resets
    CHECK(clock.now() == stamp(200, 0, 7));
    CHECK(clock.last() == stamp(200, 0, 7));
}

TEST_CASE("receive: the four cases of the paper") {
    SUBCASE("physical time is the largest: l = pt, c = 0") {
        FakePhysical physical{100};
        HybridLogicalClock clock(fake_config(physical));
        for (int i = 0; i < 6; ++i) (void)clock.now();   // (100,5)
        physical.units = 200;
        HlcStamp out;
        REQUIRE(clock.update(stamp(150, 7), out) == 0);
        CHECK(out == stamp(200, 0, 7));
    }
    SUBCASE("l == l_m, both ahead of pt: c = max(c, c_m) + 1") {
        FakePhysical physical{300};
        HybridLogicalClock clock(fake_config(physical));
        for (int i = 0; i < 5; ++i) (void)clock.now();   // (300,4)
        physical.units = 200;
        HlcStamp out;
        REQUIRE(clock.update(stamp(300, 9), out) == 0);
        CHECK(out == stamp(300, 10, 7));
        REQUIRE(clock.update(stamp(300, 2), out) == 0);
        CHECK(out == stamp(300, 11, 7));
    }
    SUBCASE("own l is the largest: c + 1") {
        FakePhysical physical{300};
        HybridLogicalClock clock(fake_config(physical));
        for (int i = 0; i < 5; ++i) (void)clock.now();   // (300,4)
        physical.units = 200;
        HlcStamp out;
        REQUIRE(clock.update(stamp(250, 9), out) == 0);
        CHECK(out == stamp(300, 5, 7));
    }
    SUBCASE("remote l is the largest: l = l_m, c = c_m + 1") {
        FakePhysical physical{250};
        HybridLogicalClock clock(fake_config(physical));
        for (int i = 0; i < 5; ++i) (void)clock.now();   // (250,4)
        physical.units = 200;
        HlcStamp out;
        REQUIRE(clock.update(stamp(300, 9), out) == 0);
        CHECK(out == stamp(300, 10, 7));
    }
    SUBCASE("remote l equals pt: c = c_m + 1") {
        FakePhysical physical{100};
        HybridLogicalClock clock(fake_config(physical));
        (void)clock.now();                               // (100,0)
        physical.units = 200;
        HlcStamp out;
        REQUIRE(clock.update(stamp(200, 3), out) == 0);
        CHECK(out == stamp(200, 4, 7));
    }
}

TEST_CASE("random event sequences match the paper's algorithm exactly") {
    std::mt19937_64 rng(0xC0FFEE);
    for (int trial = 0; trial < 200; ++trial) {
        FakePhysical physical{1'000'000};
        HybridLogicalClock clock(fake_config(physical, Duration::from_seconds(1000)));
        ReferenceHlc reference;
        std::uint64_t max_c = 0;
        for (int event = 0; event < 2000; ++event) {
            // Physical time mostly creeps forward, sometimes stalls or steps back (a slewed or stepped clock).
            // (The mix keeps c below 256, the domain where packed and unpacked agree; overflow is tested apart.)
            const int move = static_cast<int>(rng() % 10);
            if (move < 6) physical.units += rng() % 8;
            else if (move < 7) physical.units -= rng() % 10;
            HlcStamp got;
            if (rng() % 2 == 0) {
                reference.send(physical.units);
                got = clock.now();
            } else {
                // Remote stamps around our time, logical parts small enough never to overflow 8 bits.
                const std::uint64_t lm = physical.units + (rng() % 30) - 25;
                const std::uint64_t cm = rng() % 8;
                reference.receive(physical.units, lm, cm);
                REQUIRE(clock.update(stamp(lm, static_cast<std::uint32_t>(cm)), got) == 0);
            }
            REQUIRE(reference.c < 256);
            max_c = std::max(max_c, reference.c);
            REQUIRE(got.physical_units() == reference.l);
            REQUIRE(got.logical() == reference.c);
            REQUIRE(got.node == 7);
        }
        CHECK(max_c >= 3);  // the sequences exercise the counting cases, not only l = pt
    }
}

TEST_CASE("a logical overflow carries into l instead of repeating a stamp") {
    FakePhysical physical{100};
    HybridLogicalClock clock(fake_config(physical));
    HlcStamp previous = clock.now();
    for (int i = 0; i < 255; ++i) previous = clock.now();
    CHECK(previous == stamp(100, 255, 7));
    CHECK(clock.now() == stamp(101, 0, 7));
}

TEST_CASE("now_batch: consecutive stamps with one update, after everything before and before everything after") {
    FakePhysical physical{100};
    HybridLogicalClock clock(fake_config(physical));
    CHECK(clock.now() == stamp(100, 0, 7));
    CHECK(clock.now_batch(5) == stamp(100, 1, 7));          // stamps (100, 1) .. (100, 5)
    CHECK(clock.last() == stamp(100, 5, 7));
    CHECK(clock.now() == stamp(100, 6, 7));
    CHECK(clock.now_batch(1) == stamp(100, 7, 7));          // a batch of one is now()
    CHECK(clock.now_batch(0) == stamp(100, 8, 7));          // and so is a batch of none
    physical.units = 300;                                   // pt passed l: the batch starts at (300, 0)
    CHECK(clock.now_batch(300) == stamp(300, 0, 7));        // 300 stamps carry into l: the last is (301, 43)
    CHECK(clock.last() == stamp(301, 43, 7));
    CHECK(clock.now() == stamp(301, 44, 7));
    // At the top (the year 2106) the batch ends at the largest word instead of wrapping.
    physical.units = (std::uint64_t{1} << 56) - 1;
    CHECK(clock.now_batch(250).word == UINT64_MAX - 255);   // the last top unit, c = 0 .. 249
    CHECK(clock.now_batch(10).word == UINT64_MAX - 9);      // c = 250 .. 255 would not hold 10 more
    CHECK(clock.last().word == UINT64_MAX);
}

TEST_CASE("remote stamps beyond max drift are rejected and counted") {
    FakePhysical physical{1000 * kUnitsPerSecond};
    HybridLogicalClock clock(fake_config(physical, Duration::from_millis(1)));
    const std::uint64_t drift_units = cf::hlc_units_from_instant(Instant::epoch() + Duration::from_millis(1));
    CHECK(drift_units == 16777);  // 1 ms = 16777.216 units, floored
    const HlcStamp before = clock.now();
    HlcStamp out = stamp(1, 1);
    CHECK(clock.update(stamp(physical.units + drift_units + 1, 0), out) == -ERANGE);
    CHECK(out == stamp(1, 1));                 // untouched
    CHECK(clock.last() == before);             // state untouched
    CHECK(clock.rejected_count() == 1);
    REQUIRE(clock.update(stamp(physical.units + drift_units, 0), out) == 0);   // exactly at the bound: accepted
    CHECK(out == stamp(physical.units + drift_units, 1, 7));
    CHECK(clock.rejected_count() == 1);
    // Stamps from the past are never a drift problem.
    REQUIRE(clock.update(stamp(5, 0), out) == 0);
    CHECK(clock.rejected_count() == 1);
}

TEST_CASE("concurrent ticks never duplicate and never step back") {
    for (const int thread_count : {2, 4}) {
        CAPTURE(thread_count);
        HybridLogicalClock::Config config;
        config.node_id = 3;
        HybridLogicalClock clock(config);                 // real physical time from the process clock
        const int per_thread = thread_count == 2 ? 1'000'000 : 500'000;
        std::vector<std::vector<std::uint64_t>> words(static_cast<std::size_t>(thread_count));
        std::vector<std::thread> threads;
        for (int t = 0; t < thread_count; ++t) {
            threads.emplace_back([&, t] {
                auto& mine = words[static_cast<std::size_t>(t)];
                mine.reserve(static_cast<std::size_t>(per_thread));
                for (int i = 0; i < per_thread; ++i) {
                    if (t == 0 && i % 16 == 0) {
                        // One thread also merges remote stamps slightly ahead of it, as a receiver would.
                        HlcStamp merged;
                        const HlcStamp remote{clock.last().word + 40, 9};
                        if (clock.update(remote, merged) == 0) mine.push_back(merged.word);
                    } else {
                        mine.push_back(clock.now().word);
                    }
                }
            });
        }
        for (auto& thread : threads) thread.join();
        // Read before the (slow, under sanitizers) checks below, so the comparison is with the end of ticking.
        const Instant physical = clock.last().physical_time();
        const Instant now = cf::default_clock().now();
        std::vector<std::uint64_t> all;
        for (const auto& mine : words) {
            for (std::size_t i = 1; i < mine.size(); ++i) REQUIRE(mine[i] > mine[i - 1]);
            all.insert(all.end(), mine.begin(), mine.end());
        }
        CHECK(all.size() >= static_cast<std::size_t>(per_thread * thread_count) * 15 / 16);
        std::sort(all.begin(), all.end());
        CHECK(std::adjacent_find(all.begin(), all.end()) == all.end());
        CHECK(clock.rejected_count() == 0);
        // Physical part tracks the process clock.
        CHECK(physical <= now + Duration::from_millis(1));
        CHECK(now - physical < Duration::from_seconds(5));
    }
}
