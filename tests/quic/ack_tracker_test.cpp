#include "engine/quic/ack_tracker.hpp"

#include <doctest/doctest.h>

#include <random>
#include <set>
#include <vector>

using cf::quic::AckTracker;
using cf::quic::OffsetRange;

TEST_CASE("ack tracker: every second ack-eliciting packet, or max_ack_delay after the first, is acknowledged") {
    AckTracker tracker(25'000'000);
    CHECK_FALSE(tracker.owes_ack());
    CHECK(tracker.deadline_ns() == UINT64_MAX);
    REQUIRE(tracker.on_packet(0, true, false, 1'000'000));
    CHECK_FALSE(tracker.ack_now(1'000'000));
    CHECK(tracker.deadline_ns() == 26'000'000);
    CHECK(tracker.ack_now(26'000'000));
    REQUIRE(tracker.on_packet(1, true, false, 2'000'000));
    CHECK(tracker.ack_now(2'000'000));   // the second one
    CHECK(tracker.ack_delay_ns(2'500'000) == 500'000);
    tracker.on_ack_sent();
    CHECK_FALSE(tracker.owes_ack());
    // ACK-only packets are acknowledged with the next ACK but never cause one.
    REQUIRE(tracker.on_packet(2, false, false, 3'000'000));
    CHECK_FALSE(tracker.owes_ack());
    CHECK(tracker.largest() == 2);
    // CE marks are acknowledged at once.
    REQUIRE(tracker.on_packet(3, false, true, 4'000'000));
    CHECK(tracker.ack_now(4'000'000));
}

TEST_CASE("ack tracker: a gap, or a packet filling one, is acknowledged at once; duplicates are refused") {
    AckTracker tracker;
    REQUIRE(tracker.on_packet(0, true, false, 0));
    tracker.on_ack_sent();
    REQUIRE(tracker.on_packet(2, true, false, 10));   // 1 missing
    CHECK(tracker.ack_now(10));
    tracker.on_ack_sent();
    REQUIRE(tracker.on_packet(1, true, false, 20));   // fills it: the sender is recovering
    CHECK(tracker.ack_now(20));
    CHECK(tracker.received().size() == 1);
    CHECK(tracker.received()[0] == OffsetRange{0, 3});
    CHECK_FALSE(tracker.on_packet(1, true, false, 30));
    CHECK(tracker.duplicates() == 1);
    CHECK(tracker.largest() == 2);
}

TEST_CASE("ack tracker property: against a set of received numbers (fixed seed); the oldest ranges go first") {
    std::mt19937_64 random(1300);
    for (int trial = 0; trial < 100; ++trial) {
        AckTracker tracker;
        std::set<std::uint64_t> seen;
        std::uint64_t next = 0;
        for (int step = 0; step < 3000; ++step) {
            // Mostly in order, sometimes a jump ahead, sometimes a late or duplicate one.
            std::uint64_t pn = next;
            const auto roll = random() % 10;
            if (roll == 0) pn = next + 1 + random() % 5;
            else if (roll == 1 && next > 0) pn = next - 1 - random() % std::min<std::uint64_t>(next, 200);
            const bool fresh = tracker.on_packet(pn, true, false, static_cast<std::uint64_t>(step));
            if (fresh) {
                REQUIRE(seen.count(pn) == 0);   // nothing seen is ever taken twice
                seen.insert(pn);
            }
            if (pn >= next) next = pn + 1;
            REQUIRE(tracker.largest() == *seen.rbegin());
            if (step % 50 != 0) continue;
            // What the tracker reports is exactly what was received, within the ranges it kept.
            const auto& ranges = tracker.received();
            REQUIRE(ranges.size() <= AckTracker::kMaxRanges);
            std::uint64_t wrong = 0;
            for (std::uint64_t x = ranges[0].start; x <= tracker.largest(); ++x) {
                wrong += ranges.contains(x) != (seen.count(x) != 0);
            }
            REQUIRE(wrong == 0);
        }
        // A late packet for a number still inside the kept window but never received is taken.
        CHECK(tracker.duplicates() > 0);
    }
}

TEST_CASE("ack tracker: once our ACK up to N is acknowledged, ranges at or below N are not repeated") {
    AckTracker tracker;
    for (std::uint64_t pn : {0, 1, 2, 5, 6, 9}) REQUIRE(tracker.on_packet(pn, true, false, 0));
    CHECK(tracker.received().size() == 3);
    tracker.on_ack_acknowledged(6);
    CHECK(tracker.received().size() == 1);
    CHECK(tracker.received()[0] == OffsetRange{9, 10});
    CHECK_FALSE(tracker.on_packet(4, true, false, 0));   // below what was dropped: treated as seen
    CHECK(tracker.on_packet(8, true, false, 0));
}
