// Clock lanes: per-thread HLC state. Stamps stay unique across threads without a shared word, the receive rule
// (observe / merge) makes every later stamp larger than the message's, and the drift bound holds on both.
#include <doctest/doctest.h>

#include <atomic>
#include <cerrno>
#include <random>
#include <thread>
#include <vector>

#include "engine/time/hlc.hpp"
#include "tests/time/fake_physical.hpp"

using cf::ClockLane;
using cf::Duration;
using cf::HlcStamp;
using cf::HybridLogicalClock;
using cf::Instant;

namespace {

using cf::test::fake_config;
using cf::test::FakePhysical;
using cf::test::kUnitsPerSecond;

}  // namespace

TEST_CASE("8 threads x 10^6 stamps from their own lanes: no two equal, each lane strictly increasing") {
    HybridLogicalClock clock(HybridLogicalClock::Config{.node_id = 3});
    constexpr int kThreads = 8;
    constexpr std::size_t kStamps = 1'000'000;
    std::vector<std::vector<std::uint64_t>> words(kThreads);
    std::vector<std::uint16_t> lanes(kThreads);
    std::atomic<int> ready{0};
    std::vector<std::thread> threads;
    for (int t = 0; t < kThreads; ++t) {
        threads.emplace_back([&, t] {
            std::vector<std::uint64_t>& mine = words[static_cast<std::size_t>(t)];
            mine.reserve(kStamps);
            ClockLane& lane = clock.this_thread_lane();
            lanes[static_cast<std::size_t>(t)] = lane.id();
            ready.fetch_add(1);
            while (ready.load() < kThreads) {}   // all stamping at once
            for (std::size_t i = 0; i < kStamps; ++i) {
                const HlcStamp stamp = clock.this_thread_lane().now();
                if (stamp.lane != lane.id() || stamp.node != 3) break;   // caught below: too few stamps
                mine.push_back(stamp.word);
            }
        });
    }
    for (std::thread& thread : threads) thread.join();
    // k-way merge of the (word, lane) sequences: any equal pair would sit next to each other.
    std::vector<std::size_t> next(kThreads, 0);
    HlcStamp previous{};
    bool first = true;
    std::size_t total = 0, duplicates = 0, out_of_order = 0;
    for (int t = 0; t < kThreads; ++t) {
        REQUIRE(words[static_cast<std::size_t>(t)].size() == kStamps);
        CHECK(lanes[static_cast<std::size_t>(t)] != 0);   // 8 threads, 64 lanes: nobody needed the shared one
        for (std::size_t i = 1; i < kStamps; ++i) {
            if (words[static_cast<std::size_t>(t)][i] <= words[static_cast<std::size_t>(t)][i - 1]) ++out_of_order;
        }
    }
    for (;;) {
        int best = -1;
        HlcStamp best_stamp{};
        for (int t = 0; t < kThreads; ++t) {
            const auto u = static_cast<std::size_t>(t);
            if (next[u] == kStamps) continue;
            const HlcStamp candidate{words[u][next[u]], 3, lanes[u]};
            if (best < 0 || candidate < best_stamp) {
                best = t;
                best_stamp = candidate;
            }
        }
        if (best < 0) break;
        ++next[static_cast<std::size_t>(best)];
        if (!first && best_stamp == previous) ++duplicates;
        previous = best_stamp;
        first = false;
        ++total;
    }
    CHECK(total == kThreads * kStamps);
    CHECK(duplicates == 0);
    CHECK(out_of_order == 0);
    CHECK(clock.lanes_in_use() == 0);   // every thread gave its lane back at exit
}

TEST_CASE("a thread's lane is reused by the next thread, which continues above the last stamp") {
    FakePhysical physical{100 * kUnitsPerSecond};
    HybridLogicalClock clock(fake_config(physical, 1, Duration::from_seconds(1)));
    HlcStamp last_of_first{};
    std::thread([&] {
        for (int i = 0; i < 1000; ++i) last_of_first = clock.this_thread_lane().now();
    }).join();
    HlcStamp first_of_second{};
    std::thread([&] { first_of_second = clock.this_thread_lane().now(); }).join();
    CHECK(first_of_second.lane == last_of_first.lane);
    CHECK(first_of_second.word == last_of_first.word + 1);   // physical time stood still: the counter goes on
}

TEST_CASE("more threads than lanes: the rest stamp from the shared lane, still unique") {
    HybridLogicalClock::Config config;
    config.max_lanes = 1;
    HybridLogicalClock clock(config);
    ClockLane* held = clock.open_lane();
    REQUIRE(held != nullptr);
    CHECK(held->id() == 1);
    CHECK(clock.open_lane() == nullptr);
    HlcStamp a{}, b{};
    std::thread([&] { a = clock.this_thread_lane().now(); }).join();
    std::thread([&] { b = clock.this_thread_lane().now(); }).join();
    CHECK(a.lane == 0);
    CHECK(b.lane == 0);
    CHECK(b > a);
    clock.close_lane(*held);
    CHECK(clock.lanes_in_use() == 0);
}

TEST_CASE("receive rule: a stamp taken after observing m is greater than m (random, fixed seed)") {
    FakePhysical here{1000 * kUnitsPerSecond}, there{1000 * kUnitsPerSecond};
    HybridLogicalClock receiver(fake_config(here, 1, Duration::from_seconds(1)));
    HybridLogicalClock sender(fake_config(there, 2, Duration::from_seconds(1)));
    ClockLane* in = receiver.open_lane();
    ClockLane* out = sender.open_lane();
    REQUIRE(in != nullptr);
    REQUIRE(out != nullptr);
    std::mt19937_64 random(12);
    int observed = 0, merged = 0;
    for (int i = 0; i < 100000; ++i) {
        // The sender's physical time wanders up to 0.9 s either side of ours (within the 1 s drift bound).
        here.units += random() % 64;
        const auto offset = static_cast<std::int64_t>(random() % (kUnitsPerSecond * 9 / 5)) -
                            static_cast<std::int64_t>(kUnitsPerSecond * 9 / 10);
        there.units = here.units + static_cast<std::uint64_t>(offset);
        const HlcStamp m = out->now_batch(1 + static_cast<std::uint32_t>(random() % 4));
        if (random() % 2 == 0) {
            REQUIRE(in->observe(m) == 0);
            const HlcStamp after = in->now();
            if (!(after > m) || after.word <= m.word) break;
            ++observed;
        } else {
            HlcStamp receive{};
            REQUIRE(in->merge(m, receive) == 0);
            if (!(receive.word > m.word) || !(in->now() > receive)) break;
            ++merged;
        }
    }
    CHECK(observed + merged == 100000);
    CHECK(receiver.rejected_count() == 0);
    receiver.close_lane(*in);
    sender.close_lane(*out);
}

TEST_CASE("receive rule across threads: the receiving thread's next stamp is above the message's") {
    HybridLogicalClock clock(HybridLogicalClock::Config{.node_id = 5});
    std::atomic<std::uint64_t> mailbox{0};
    std::atomic<bool> done{false};
    std::atomic<int> violations{0};
    std::thread receiver([&] {
        ClockLane& lane = clock.this_thread_lane();
        std::uint64_t seen = 0;
        while (!done.load(std::memory_order_acquire)) {
            const std::uint64_t word = mailbox.load(std::memory_order_acquire);
            if (word == seen) continue;
            seen = word;
            const HlcStamp m{word, 5, 0};
            if (lane.observe(m) != 0 || !(lane.now().word > word)) violations.fetch_add(1);
        }
    });
    ClockLane& lane = clock.this_thread_lane();
    for (int i = 0; i < 200000; ++i) mailbox.store(lane.now().word, std::memory_order_release);
    done.store(true, std::memory_order_release);
    receiver.join();
    CHECK(violations.load() == 0);
}

TEST_CASE("drift bound on observe and merge: rejected, counted, lane unchanged") {
    FakePhysical physical{5000 * kUnitsPerSecond};
    HybridLogicalClock clock(fake_config(physical, 1, Duration::from_millis(100)));
    ClockLane* lane = clock.open_lane();
    REQUIRE(lane != nullptr);
    const HlcStamp before = lane->now();
    const std::uint64_t drift_units = kUnitsPerSecond / 10;   // 100 ms
    const HlcStamp too_far = HlcStamp::from_parts(physical.units + drift_units + 2, 0, 9);
    HlcStamp out = before;
    CHECK(lane->observe(too_far) == -ERANGE);
    CHECK(lane->merge(too_far, out) == -ERANGE);
    CHECK(out == before);
    CHECK(lane->last() == before);
    CHECK(clock.rejected_count() == 2);
    // Just inside the bound: accepted, and the next stamp is above it.
    const HlcStamp near = HlcStamp::from_parts(physical.units + drift_units - 1, 3, 9);
    CHECK(lane->observe(near) == 0);
    CHECK(lane->now().word > near.word);
    // The lane's cached physical time is stale: a stamp within the bound of the *current* time is accepted after
    // a fresh read (not rejected against the old one).
    physical.units += 10 * kUnitsPerSecond;
    const HlcStamp later = HlcStamp::from_parts(physical.units + drift_units - 1, 0, 9);
    CHECK(lane->observe(later) == 0);
    CHECK(clock.rejected_count() == 2);
    // The shared lane enforces the same bound.
    CHECK(clock.update(HlcStamp::from_parts(physical.units + drift_units + 2, 0, 9), out) == -ERANGE);
    CHECK(clock.rejected_count() == 3);
    clock.close_lane(*lane);
}

TEST_CASE("stamps order by word, then node, then lane") {
    CHECK(HlcStamp::from_parts(5, 0, 1, 9) < HlcStamp::from_parts(5, 1, 0, 0));
    CHECK(HlcStamp::from_parts(5, 1, 1, 0) < HlcStamp::from_parts(5, 1, 2, 0));
    CHECK(HlcStamp::from_parts(5, 1, 2, 3) < HlcStamp::from_parts(5, 1, 2, 4));
    CHECK(HlcStamp::from_parts(5, 1, 2, 4) == HlcStamp::from_parts(5, 1, 2, 4));
}
