// Loss recovery (RFC 9002 sections 5, 6, 7.6 and appendix A; RFC 9000 section 13.4.2): the RTT estimator against
// hand-computed sequences, the sent-packet ring's edges, the RFC's loss scenarios with exact timer values, and a
// fixed-seed random run checked against a recount of the records.
#include "engine/quic/loss_detection.hpp"

#include <doctest/doctest.h>

#include <cerrno>
#include <cstdint>
#include <memory>
#include <random>
#include <vector>

#include "engine/quic/rtt_estimator.hpp"
#include "engine/quic/sent_packets.hpp"

using namespace cf::quic;

namespace {

constexpr std::uint64_t ms(std::uint64_t value) { return value * 1'000'000; }
constexpr std::uint64_t us(std::uint64_t value) { return value * 1'000; }
constexpr PacketNumberSpace kInitial = PacketNumberSpace::initial;
constexpr PacketNumberSpace kHandshake = PacketNumberSpace::handshake;
constexpr PacketNumberSpace kApp = PacketNumberSpace::application;

SentPacket packet(std::uint64_t number, std::uint64_t time, std::uint32_t size = 1200, bool ack_eliciting = true,
                  bool in_flight = true, EcnCodepoint ecn = EcnCodepoint::not_ect) {
    SentPacket p;
    p.packet_number = number;
    p.time_sent_ns = time;
    p.frames = 1000 + number;
    p.size = size;
    p.ack_eliciting = ack_eliciting;
    p.in_flight = in_flight;
    p.ecn = ecn;
    return p;
}

std::unique_ptr<LossDetection> make(bool is_server = true, bool confirmed = true,
                                    CongestionAlgorithm algorithm = CongestionAlgorithm::new_reno) {
    LossDetectionConfig config;
    config.is_server = is_server;
    config.congestion.algorithm = algorithm;
    std::unique_ptr<LossDetection> detector;
    REQUIRE(LossDetection::create(config, detector) == 0);
    if (confirmed) detector->on_handshake_confirmed(0);
    return detector;
}

TransportError ack(LossDetection& d, PacketNumberSpace space, std::vector<AckRange> ranges, std::uint64_t now,
                   std::uint64_t delay = 0, const EcnCounts* ecn = nullptr) {
    AckFrameInfo info;
    info.ranges = ranges;
    info.ack_delay_ns = delay;
    info.ecn = ecn;
    return d.on_ack_received(space, info, now);
}

std::vector<std::uint64_t> numbers(std::span<const SentPacket> packets) {
    std::vector<std::uint64_t> out;
    for (const SentPacket& p : packets) out.push_back(p.packet_number);
    return out;
}

}  // namespace

TEST_CASE("rtt: before a sample, the first sample, then hand-computed updates") {
    RttEstimator rtt;
    CHECK_FALSE(rtt.has_sample());
    CHECK(rtt.smoothed_rtt() == ms(333));
    CHECK(rtt.rttvar() == us(166'500));
    CHECK(rtt.pto_base() == ms(333) + ms(666));
    CHECK(rtt.loss_delay() == ms(333) + ms(333) / 8);

    // First sample: the ACK delay is not applied, rttvar is half the sample.
    rtt.on_sample(ms(100), ms(10), false, ms(25));
    CHECK(rtt.min_rtt() == ms(100));
    CHECK(rtt.smoothed_rtt() == ms(100));
    CHECK(rtt.rttvar() == ms(50));

    // Not confirmed: the 10 ms delay is applied uncapped; 120 - 10 = 110.
    rtt.on_sample(ms(120), ms(10), false, ms(25));
    CHECK(rtt.min_rtt() == ms(100));
    CHECK(rtt.rttvar() == ms(40));              // (3 * 50 + |100 - 110|) / 4
    CHECK(rtt.smoothed_rtt() == us(101'250));   // (7 * 100 + 110) / 8

    // 90 - 25 would go below min_rtt (now 90): the sample stays 90 and min_rtt is the raw sample.
    rtt.on_sample(ms(90), ms(30), true, ms(25));
    CHECK(rtt.min_rtt() == ms(90));
    CHECK(rtt.rttvar() == 32'812'500);          // (3 * 40 + 11.25) / 4 ms
    CHECK(rtt.smoothed_rtt() == 99'843'750);    // (7 * 101.25 + 90) / 8 ms

    // Confirmed: the 40 ms delay is capped at max_ack_delay 25 ms; 150 - 25 = 125.
    rtt.on_sample(ms(150), ms(40), true, ms(25));
    CHECK(rtt.min_rtt() == ms(90));
    CHECK(rtt.rttvar() == 30'898'437);          // (3 * 32812500 + 25156250) / 4, truncated
    CHECK(rtt.smoothed_rtt() == 102'988'281);   // (7 * 99843750 + 125000000) / 8, truncated
    CHECK(rtt.latest_rtt() == ms(150));
    CHECK(rtt.loss_delay() == ms(150) + ms(150) / 8);   // latest above smoothed
    CHECK(rtt.pto_base() == 102'988'281 + 4 * 30'898'437);
}

TEST_CASE("rtt: the ACK delay uncapped before confirmation, capped after; min_rtt never adjusted") {
    RttEstimator before;
    before.on_sample(ms(100), 0, false, ms(25));
    before.on_sample(ms(200), ms(80), false, ms(25));   // 200 - 80 = 120
    CHECK(before.smoothed_rtt() == (7 * ms(100) + ms(120)) / 8);
    RttEstimator after;
    after.on_sample(ms(100), 0, true, ms(25));
    after.on_sample(ms(200), ms(80), true, ms(25));     // 200 - 25 = 175
    CHECK(after.smoothed_rtt() == (7 * ms(100) + ms(175)) / 8);
    CHECK(after.min_rtt() == ms(100));
    after.on_sample(ms(50), ms(40), true, ms(25));      // min_rtt takes the raw 50, not 25
    CHECK(after.min_rtt() == ms(50));
    // Granularity floors: a zero RTT still gives 1 ms.
    RttEstimator zero;
    zero.on_sample(0, 0, true, 0);
    CHECK(zero.loss_delay() == kGranularityNs);
    CHECK(zero.pto_base() == kGranularityNs);
}

TEST_CASE("sent packets: capacity, full without overwrite, tombstone reuse, order rules, wrap-around") {
    SentPackets sent;
    CHECK(sent.reserve(3) == -EINVAL);
    CHECK(sent.reserve(SentPackets::kMaxCapacity + 1) == -EINVAL);
    REQUIRE(sent.reserve(5) == 0);
    CHECK(sent.reserve(8) == -EALREADY);
    CHECK(sent.capacity() == 8);
    for (std::uint64_t n = 0; n < 8; ++n) REQUIRE(sent.add(packet(n * 2, n)) == 0);   // gaps are fine
    CHECK(sent.full());
    CHECK(sent.add(packet(100, 100)) == -ENOBUFS);
    CHECK(sent.size() == 8);
    CHECK(sent.largest_sent() == 14);
    CHECK(sent.bytes_in_flight() == 8 * 1200);
    // Numbers must grow, times must not go back.
    sent.mark_acked(sent.find(0));
    CHECK(sent.add(packet(14, 100)) == -EINVAL);
    CHECK(sent.add(packet(15, 6)) == -EINVAL);
    // Acking the oldest frees one slot: the tombstone is reused.
    CHECK_FALSE(sent.full());
    REQUIRE(sent.add(packet(15, 8)) == 0);
    CHECK(sent.at(0).packet_number == 2);
    CHECK(sent.full());
    // Acking a middle record does not free a slot.
    sent.mark_acked(sent.find(6));
    CHECK(sent.full());
    CHECK(sent.find(7) == sent.size());
    CHECK(sent.lower_bound(7) == sent.find(8));
    CHECK(sent.bytes_in_flight() == 7 * 1200);
    CHECK(sent.outstanding() == 7);

    // Many laps around the ring: every record found where it should be.
    SentPackets ring;
    REQUIRE(ring.reserve(4) == 0);
    for (std::uint64_t n = 0; n < 1000; ++n) {
        REQUIRE(ring.add(packet(n, n)) == 0);
        REQUIRE(ring.find(n) < ring.size());
        if (n >= 2) ring.mark_lost(ring.find(n - 2));
        REQUIRE(ring.outstanding() == (n >= 2 ? 2u : n + 1));
    }
    CHECK(ring.at(ring.size() - 1).packet_number == 999);
    CHECK(ring.bytes_in_flight() == 2 * 1200);
}

TEST_CASE("loss detection: packet threshold, then the time threshold from the loss timer") {
    auto d = make();
    for (std::uint64_t n = 0; n < 5; ++n) REQUIRE(d->on_packet_sent(kApp, packet(n, ms(n))) == 0);
    CHECK(d->bytes_in_flight() == 5 * 1200);
    // ACK of 4 at 104 ms: 0 and 1 are 3 below it; 2 and 3 are not, and only 100 ms old (< 9/8 * 100 ms).
    REQUIRE(ack(*d, kApp, {{4, 4}}, ms(104)) == TransportError::no_error);
    CHECK(numbers(d->acked()) == std::vector<std::uint64_t>{4});
    CHECK(d->acked()[0].frames == 1004);
    CHECK(numbers(d->lost()) == std::vector<std::uint64_t>{0, 1});
    CHECK(d->lost()[1].frames == 1001);
    CHECK(d->rtt().latest_rtt() == ms(100));
    CHECK(d->loss_time(kApp) == ms(2) + us(112'500));
    CHECK(d->timer_deadline() == ms(2) + us(112'500));
    CHECK(d->bytes_in_flight() == 2 * 1200);

    CHECK(d->on_timeout(ms(114)).kind == TimeoutKind::none);   // early: nothing happens
    const TimeoutResult fired = d->on_timeout(ms(2) + us(112'500));
    CHECK(fired.kind == TimeoutKind::loss);
    CHECK(fired.space == kApp);
    CHECK(numbers(d->lost()) == std::vector<std::uint64_t>{2});
    CHECK(d->timer_deadline() == ms(3) + us(112'500));
    CHECK(d->on_timeout(ms(3) + us(112'500)).kind == TimeoutKind::loss);
    CHECK(numbers(d->lost()) == std::vector<std::uint64_t>{3});
    CHECK(d->bytes_in_flight() == 0);
    CHECK(d->stats().packets_lost == 4);
    // One congestion event: every loss was of a packet sent before the recovery period began.
    CHECK(d->stats().congestion_events == 1);
    CHECK(d->congestion().congestion_window() == 6000);
    CHECK(d->timer_deadline() == kNoDeadline);   // nothing in flight, address validated
}

TEST_CASE("loss detection: a packet declared lost and acknowledged later is a spurious loss") {
    auto d = make();
    for (std::uint64_t n = 0; n < 4; ++n) REQUIRE(d->on_packet_sent(kApp, packet(n, ms(n))) == 0);
    REQUIRE(ack(*d, kApp, {{3, 3}}, ms(50)) == TransportError::no_error);
    CHECK(numbers(d->lost()) == std::vector<std::uint64_t>{0});
    REQUIRE(d->on_packet_sent(kApp, packet(4, ms(60))) == 0);
    // The late ACK of 0 (and of 4) reports only 4 as acknowledged; 0 counts as spurious and is not reported again.
    REQUIRE(ack(*d, kApp, {{4, 4}, {0, 0}}, ms(100)) == TransportError::no_error);
    CHECK(numbers(d->acked()) == std::vector<std::uint64_t>{4});
    CHECK(d->stats().spurious_losses == 1);
    // Acknowledging it again changes nothing.
    REQUIRE(ack(*d, kApp, {{4, 4}, {0, 0}}, ms(101)) == TransportError::no_error);
    CHECK(d->acked().empty());
    CHECK(d->stats().spurious_losses == 1);
}

TEST_CASE("loss detection: RTT sample only when the largest is newly acked and something newly acked elicits") {
    auto d = make();
    REQUIRE(d->on_packet_sent(kApp, packet(0, ms(0))) == 0);
    REQUIRE(d->on_packet_sent(kApp, packet(1, ms(1), 50, false, false)) == 0);   // an ACK-only packet
    REQUIRE(d->on_packet_sent(kApp, packet(2, ms(2))) == 0);
    REQUIRE(ack(*d, kApp, {{1, 1}}, ms(50)) == TransportError::no_error);   // largest newly acked, not eliciting
    CHECK(numbers(d->acked()) == std::vector<std::uint64_t>{1});
    CHECK_FALSE(d->rtt().has_sample());
    REQUIRE(ack(*d, kApp, {{2, 2}}, ms(60)) == TransportError::no_error);
    CHECK(d->rtt().latest_rtt() == ms(58));
    REQUIRE(ack(*d, kApp, {{0, 2}}, ms(70)) == TransportError::no_error);   // 0 newly acked, but 2 is not
    CHECK(numbers(d->acked()) == std::vector<std::uint64_t>{0});
    CHECK(d->rtt().latest_rtt() == ms(58));
    // The Initial space ignores the ACK delay.
    auto i = make(true, false);
    REQUIRE(i->on_packet_sent(kInitial, packet(0, ms(0))) == 0);
    REQUIRE(i->on_packet_sent(kInitial, packet(1, ms(10))) == 0);
    REQUIRE(ack(*i, kInitial, {{0, 0}}, ms(100), ms(20)) == TransportError::no_error);
    REQUIRE(ack(*i, kInitial, {{1, 1}}, ms(210), ms(50)) == TransportError::no_error);
    CHECK(i->rtt().smoothed_rtt() == (7 * ms(100) + ms(200)) / 8);
}

TEST_CASE("loss detection: malformed or impossible ACK frames are refused and change nothing") {
    auto d = make();
    for (std::uint64_t n = 0; n < 10; ++n) REQUIRE(d->on_packet_sent(kApp, packet(n, ms(n))) == 0);
    CHECK(ack(*d, kApp, {}, ms(20)) == TransportError::frame_encoding_error);
    CHECK(ack(*d, kApp, {{5, 4}}, ms(20)) == TransportError::frame_encoding_error);
    CHECK(ack(*d, kApp, {{2, 3}, {5, 6}}, ms(20)) == TransportError::frame_encoding_error);   // ascending
    CHECK(ack(*d, kApp, {{5, 6}, {3, 4}}, ms(20)) == TransportError::frame_encoding_error);   // no gap
    CHECK(ack(*d, kApp, {{1, 6}, {0, 0}}, ms(20)) == TransportError::frame_encoding_error);   // below 0
    CHECK(ack(*d, kApp, {{8, 10}}, ms(20)) == TransportError::protocol_violation);            // never sent
    CHECK(ack(*d, kHandshake, {{0, 0}}, ms(20)) == TransportError::protocol_violation);      // nothing sent there
    CHECK(ack(*d, kApp, {{~std::uint64_t{0}, ~std::uint64_t{0}}}, ms(20)) == TransportError::protocol_violation);
    CHECK(d->bytes_in_flight() == 10 * 1200);
    CHECK_FALSE(d->rtt().has_sample());
    std::uint64_t largest = 0;
    CHECK_FALSE(d->largest_acked(kApp, largest));
    CHECK(ack(*d, kApp, {{7, 9}, {5, 5}, {0, 2}}, ms(20)) == TransportError::no_error);
    CHECK(numbers(d->acked()) == std::vector<std::uint64_t>{0, 1, 2, 5, 7, 8, 9});
    CHECK(numbers(d->lost()) == std::vector<std::uint64_t>{3, 4, 6});
}

TEST_CASE("pto: exact deadlines with exponential backoff, reset by an ACK") {
    auto d = make();
    REQUIRE(d->on_packet_sent(kApp, packet(0, 0)) == 0);
    // No sample: 333 + 4 * 166.5 = 999 ms, plus max_ack_delay 25 ms in the application space.
    CHECK(d->timer_deadline() == ms(1024));
    TimeoutResult fired = d->on_timeout(ms(1024));
    CHECK(fired.kind == TimeoutKind::probe);
    CHECK(fired.space == kApp);
    CHECK_FALSE(fired.anti_deadlock);
    CHECK(d->pto_count() == 1);
    CHECK(d->probe_credits() == 2);
    CHECK(d->timer_deadline() == ms(2048));
    CHECK(d->bytes_in_flight() == 1200);   // a PTO declares nothing lost
    // Probes may exceed the window.
    for (std::uint64_t n = 1; n <= 10; ++n) REQUIRE(d->on_packet_sent(kApp, packet(n, ms(1024), 1200, false)) == 0);
    CHECK_FALSE(d->congestion().can_send(1200));   // the window (12000) is full ...
    CHECK(d->can_send(kApp, 1200));                // ... but the probe credits are not spent:
    CHECK(d->probe_credits() == 2);                // non-eliciting packets take none
    REQUIRE(d->on_packet_sent(kApp, packet(11, ms(1024))) == 0);
    REQUIRE(d->on_packet_sent(kApp, packet(12, ms(1024))) == 0);
    CHECK(d->probe_credits() == 0);
    CHECK_FALSE(d->can_send(kApp, 1200));
    CHECK(d->can_send(kApp, 1200, false));   // ACK-only packets are never blocked by the window
    CHECK(d->timer_deadline() == ms(1024) + ms(2048));
    fired = d->on_timeout(ms(3072));
    CHECK(fired.kind == TimeoutKind::probe);
    CHECK(d->pto_count() == 2);
    CHECK(d->timer_deadline() == ms(1024) + ms(4096));
    CHECK(d->on_timeout(ms(5120)).kind == TimeoutKind::probe);
    CHECK(d->pto_count() == 3);
    CHECK(d->timer_deadline() == ms(1024) + ms(8192));
    CHECK(d->stats().pto_expirations == 3);
    REQUIRE(ack(*d, kApp, {{12, 12}}, ms(5200)) == TransportError::no_error);
    CHECK(d->pto_count() == 0);
}

TEST_CASE("pto: per-space rules, anti-deadlock, amplification limit, discarding a space") {
    SUBCASE("no application PTO before the handshake is confirmed") {
        auto server = make(true, false);
        REQUIRE(server->on_packet_sent(kApp, packet(0, 0)) == 0);
        CHECK(server->timer_deadline() == kNoDeadline);
        REQUIRE(server->on_packet_sent(kHandshake, packet(0, ms(5))) == 0);
        CHECK(server->timer_deadline() == ms(5) + ms(999));   // no max_ack_delay outside the application space
        server->on_handshake_confirmed(ms(6));
        // Both armed now; the earliest wins: handshake 5 + 999 ms before application 0 + 1024 ms.
        PacketNumberSpace space{};
        CHECK(server->pto_deadline(space, ms(6)) == ms(1004));
        CHECK(space == kHandshake);
        server->discard_space(kHandshake, ms(6));
        CHECK(numbers(server->discarded()) == std::vector<std::uint64_t>{0});
        CHECK(server->timer_deadline() == ms(1024));
        CHECK(server->bytes_in_flight() == 1200);
        CHECK(server->on_packet_sent(kHandshake, packet(1, ms(7))) == -EINVAL);
        CHECK_FALSE(server->can_send(kHandshake, 1200));
    }
    SUBCASE("a client with nothing in flight and an unvalidated address probes from now") {
        auto client = make(false, false);
        REQUIRE(client->on_packet_sent(kInitial, packet(0, 0)) == 0);
        CHECK(client->timer_deadline() == ms(999));
        REQUIRE(ack(*client, kInitial, {{0, 0}}, ms(100)) == TransportError::no_error);
        // Nothing in flight, yet the timer runs: 100 + (100 + 4 * 50) ms.
        CHECK(client->timer_deadline() == ms(400));
        // An ACK-only packet does not move it.
        REQUIRE(client->on_packet_sent(kInitial, packet(1, ms(150), 50, false, false)) == 0);
        CHECK(client->timer_deadline() == ms(400));
        TimeoutResult fired = client->on_timeout(ms(400));
        CHECK(fired.kind == TimeoutKind::probe);
        CHECK(fired.anti_deadlock);
        CHECK(fired.space == kInitial);
        CHECK(client->pto_count() == 1);
        CHECK(client->timer_deadline() == ms(400) + ms(600));
        client->on_handshake_keys();
        client->discard_space(kInitial, ms(450));
        CHECK(client->pto_count() == 0);
        CHECK(client->timer_deadline() == ms(450) + ms(300));
        fired = client->on_timeout(ms(750));
        CHECK(fired.space == kHandshake);
        CHECK(fired.anti_deadlock);
        // An ACK does not reset the backoff while the server may not have validated the address.
        REQUIRE(client->on_packet_sent(kHandshake, packet(0, ms(760))) == 0);
        REQUIRE(client->on_packet_sent(kHandshake, packet(1, ms(770))) == 0);
        REQUIRE(ack(*client, kHandshake, {{0, 0}}, ms(860)) == TransportError::no_error);
        CHECK(client->pto_count() == 1);
        client->on_peer_address_validated(ms(861));
        REQUIRE(ack(*client, kHandshake, {{1, 1}}, ms(870)) == TransportError::no_error);
        CHECK(client->pto_count() == 0);
        CHECK(client->timer_deadline() == kNoDeadline);
    }
    SUBCASE("a server at its amplification limit arms no timer until unblocked") {
        auto server = make(true, false);
        server->set_amplification_limited(true, 0);
        REQUIRE(server->on_packet_sent(kInitial, packet(0, 0)) == 0);
        CHECK(server->timer_deadline() == kNoDeadline);
        server->set_amplification_limited(false, ms(10));
        CHECK(server->timer_deadline() == ms(999));
    }
}

TEST_CASE("persistent congestion: a lost span longer than 3 PTOs after an RTT sample, and its exclusions") {
    // After two 100 ms samples: smoothed 100, rttvar 37.5, so (100 + 150 + 25) * 3 = 825 ms.
    struct Case {
        const char* name;
        std::uint64_t span_ms;
        bool sample_first;
        bool ack_between;
        bool expected;
    };
    const Case cases[] = {
        {"longer than the period", 826, true, false, true},
        {"exactly the period", 825, true, false, false},
        {"no RTT sample before the losses", 2000, false, false, false},
        {"an acknowledged packet between", 2000, true, true, false},
    };
    for (const Case& c : cases) {
        CAPTURE(c.name);
        auto d = make();
        std::uint64_t next = 0;
        if (c.sample_first) {
            REQUIRE(d->on_packet_sent(kApp, packet(next++, 0)) == 0);
            REQUIRE(ack(*d, kApp, {{0, 0}}, ms(100)) == TransportError::no_error);
        }
        const std::uint64_t t1 = ms(1000);
        const std::uint64_t first = next;
        REQUIRE(d->on_packet_sent(kApp, packet(next++, t1)) == 0);
        REQUIRE(d->on_packet_sent(kApp, packet(next++, t1 + ms(1))) == 0);
        REQUIRE(d->on_packet_sent(kApp, packet(next++, t1 + ms(c.span_ms))) == 0);
        const std::uint64_t t4 = t1 + ms(c.span_ms) + ms(100);
        const std::uint64_t fourth = next;
        REQUIRE(d->on_packet_sent(kApp, packet(next++, t4)) == 0);
        std::vector<AckRange> ranges{{fourth, fourth}};
        if (c.ack_between) ranges.push_back({first + 1, first + 1});
        REQUIRE(ack(*d, kApp, ranges, t4 + ms(100)) == TransportError::no_error);
        CHECK(d->lost().size() == (c.ack_between ? 2u : 3u));
        CHECK(d->stats().persistent_congestion == (c.expected ? 1u : 0u));
        // Persistent: the minimum window, and the recovery period is over, so the acknowledged packet then grows
        // it in slow start (2400 + 1200). Otherwise: halved once, and the ACK is for a packet sent before recovery.
        CHECK(d->congestion().congestion_window() == (c.expected ? 3600u : 6000u));
    }
}

TEST_CASE("ecn: validation, CE as a congestion event, and the failure rules") {
    SUBCASE("counts that match make the path capable; a CE rise is one congestion event") {
        auto d = make();
        CHECK(d->ecn().next_codepoint() == EcnCodepoint::ect0);
        for (std::uint64_t n = 0; n < 4; ++n) {
            REQUIRE(d->on_packet_sent(kApp, packet(n, ms(n), 1200, true, true, EcnCodepoint::ect0)) == 0);
        }
        const EcnCounts first{2, 0, 0};
        REQUIRE(ack(*d, kApp, {{0, 1}}, ms(50), 0, &first) == TransportError::no_error);
        CHECK(d->ecn().state() == EcnState::capable);
        const EcnCounts marked{3, 0, 1};
        REQUIRE(ack(*d, kApp, {{0, 3}}, ms(60), 0, &marked) == TransportError::no_error);
        CHECK(d->stats().ecn_ce_events == 1);
        CHECK(d->stats().congestion_events == 1);
        CHECK(d->congestion().congestion_window() == 6000);
        CHECK(d->ecn().state() == EcnState::capable);
    }
    SUBCASE("an ACK of marked packets without counts fails validation") {
        auto d = make();
        REQUIRE(d->on_packet_sent(kApp, packet(0, 0, 1200, true, true, EcnCodepoint::ect0)) == 0);
        REQUIRE(ack(*d, kApp, {{0, 0}}, ms(50)) == TransportError::no_error);
        CHECK(d->ecn().state() == EcnState::failed);
        CHECK(d->ecn().next_codepoint() == EcnCodepoint::not_ect);
    }
    SUBCASE("too few ECT(0) + CE for the newly acked marked packets") {
        auto d = make();
        for (std::uint64_t n = 0; n < 3; ++n) {
            REQUIRE(d->on_packet_sent(kApp, packet(n, ms(n), 1200, true, true, EcnCodepoint::ect0)) == 0);
        }
        const EcnCounts short_counts{1, 0, 1};
        REQUIRE(ack(*d, kApp, {{0, 2}}, ms(50), 0, &short_counts) == TransportError::no_error);
        CHECK(d->ecn().state() == EcnState::failed);
        CHECK(d->stats().ecn_ce_events == 0);
    }
    SUBCASE("more reported than sent, or a count going down") {
        auto more = make();
        REQUIRE(more->on_packet_sent(kApp, packet(0, 0, 1200, true, true, EcnCodepoint::ect0)) == 0);
        const EcnCounts too_many{2, 0, 0};
        REQUIRE(ack(*more, kApp, {{0, 0}}, ms(50), 0, &too_many) == TransportError::no_error);
        CHECK(more->ecn().state() == EcnState::failed);

        auto down = make();
        for (std::uint64_t n = 0; n < 3; ++n) {
            REQUIRE(down->on_packet_sent(kApp, packet(n, ms(n), 1200, true, true, EcnCodepoint::ect0)) == 0);
        }
        const EcnCounts two{2, 0, 0};
        const EcnCounts one{1, 0, 0};
        REQUIRE(ack(*down, kApp, {{0, 1}}, ms(50), 0, &two) == TransportError::no_error);
        CHECK(down->ecn().state() == EcnState::capable);
        REQUIRE(ack(*down, kApp, {{0, 2}}, ms(51), 0, &one) == TransportError::no_error);
        CHECK(down->ecn().state() == EcnState::failed);
    }
    SUBCASE("testing stops marking after 10 packets until an ACK validates; all of them lost fails") {
        EcnValidator ecn;
        for (std::uint32_t n = 0; n < EcnValidator::kTestingPackets; ++n) {
            CHECK(ecn.next_codepoint() == EcnCodepoint::ect0);
            ecn.on_packet_sent(kApp, ecn.next_codepoint());
        }
        CHECK(ecn.state() == EcnState::unknown);
        CHECK(ecn.next_codepoint() == EcnCodepoint::not_ect);
        for (std::uint32_t n = 0; n < EcnValidator::kTestingPackets; ++n) ecn.on_marked_packet_lost();
        CHECK(ecn.state() == EcnState::failed);
    }
}

TEST_CASE("recovery property: bytes in flight equal the in-flight records' sum, never below zero") {
    std::mt19937_64 rng(0x9002);
    LossDetectionConfig config;
    config.is_server = false;
    config.initial_capacity = 8;
    config.handshake_capacity = 8;
    config.application_capacity = 32;
    for (int round = 0; round < 4; ++round) {
        config.congestion.algorithm = round % 2 == 0 ? CongestionAlgorithm::new_reno : CongestionAlgorithm::cubic;
        std::unique_ptr<LossDetection> d;
        REQUIRE(LossDetection::create(config, d) == 0);
        d->on_handshake_keys();
        std::uint64_t now = 0;
        std::uint64_t next_number[3] = {0, 0, 0};
        std::uint64_t refused_full = 0;
        for (int step = 0; step < 3000; ++step) {
            now += rng() % ms(30);
            const auto space = static_cast<PacketNumberSpace>(rng() % 3);
            const std::size_t s = space_index(space);
            const unsigned op = rng() % 10;
            if (op < 5) {
                const bool eliciting = rng() % 4 != 0;
                SentPacket p = packet(next_number[s], now, 40 + rng() % 1400, eliciting, eliciting || rng() % 2 == 0);
                const bool full = d->sent(space).full();
                const int rc = d->on_packet_sent(space, p);
                if (d->space_discarded(space)) {
                    REQUIRE(rc == -EINVAL);
                } else if (full) {
                    REQUIRE(rc == -ENOBUFS);
                    ++refused_full;
                } else {
                    REQUIRE(rc == 0);
                    next_number[s] += 1 + rng() % 2;
                }
            } else if (op < 8 && next_number[s] > 0 && !d->space_discarded(space)) {
                // Up to three random ranges below the largest sent.
                std::vector<AckRange> ranges;
                std::uint64_t top = d->sent(space).largest_sent();
                for (int r = 0; r < 3; ++r) {
                    const std::uint64_t largest = top - rng() % (top + 1);
                    const std::uint64_t smallest = largest - rng() % (largest + 1) % 6;
                    ranges.push_back({smallest, largest});
                    if (smallest < 2) break;
                    top = smallest - 2;
                }
                REQUIRE(ack(*d, space, ranges, now, rng() % ms(30)) == TransportError::no_error);
            } else if (op < 9) {
                if (d->timer_deadline() <= now) d->on_timeout(now);
            } else if (rng() % 50 == 0 && space != kApp) {
                d->discard_space(space, now);
            }
            std::uint64_t recount = 0;
            for (PacketNumberSpace sp : {kInitial, kHandshake, kApp}) {
                const SentPackets& sent = d->sent(sp);
                std::uint64_t here = 0;
                for (std::size_t i = 0; i < sent.size(); ++i) {
                    const SentPacket& p = sent.at(i);
                    if (p.state == PacketState::outstanding && p.in_flight) here += p.size;
                }
                REQUIRE(here == sent.bytes_in_flight());
                REQUIRE(sent.outstanding() <= sent.capacity());
                recount += here;
            }
            REQUIRE(d->bytes_in_flight() == recount);
            REQUIRE(d->congestion().congestion_window() >= 2400);
        }
        CHECK(refused_full > 0);   // the run did reach the full state
        CHECK(d->stats().packets_lost > 0);
    }
}
