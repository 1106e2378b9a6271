// Congestion control (RFC 9002 section 7 and appendix B, RFC 9438) and pacing (RFC 9002 section 7.7): NewReno's
// window trajectories, CUBIC against a slow reference written from the RFC's formulas in segments and double,
// and the pacer's bound over random send attempts.
#include "engine/quic/congestion_controller.hpp"

#include <doctest/doctest.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdint>
#include <deque>
#include <random>
#include <vector>

#include "engine/quic/pacer.hpp"

using namespace cf::quic;

namespace {

constexpr std::uint64_t ms(std::uint64_t value) { return value * 1'000'000; }
constexpr std::uint64_t kMss = 1200;

// A sender in front of one controller: records what it sent, acknowledges the oldest packets.
struct Flow {
    explicit Flow(CongestionConfig config) : cc(config) {}

    void send(std::uint64_t now, std::uint64_t count = 1) {
        for (std::uint64_t i = 0; i < count; ++i) {
            SentPacket p;
            p.packet_number = next++;
            p.time_sent_ns = now;
            p.size = static_cast<std::uint32_t>(kMss);
            p.ack_eliciting = true;
            p.in_flight = true;
            cc.on_packet_sent(p.size);
            outstanding.push_back(p);
        }
    }
    void fill(std::uint64_t now) {
        while (cc.can_send(kMss)) send(now);
    }
    // Acknowledges the `count` oldest outstanding packets in one ACK.
    void ack(std::uint64_t count, std::uint64_t now, std::uint64_t srtt) {
        std::vector<SentPacket> acked;
        for (std::uint64_t i = 0; i < count && !outstanding.empty(); ++i) {
            acked.push_back(outstanding.front());
            outstanding.pop_front();
        }
        cc.on_packets_acked(acked, now, srtt);
    }
    void lose_oldest(std::uint64_t now) {
        const SentPacket p = outstanding.front();
        outstanding.pop_front();
        cc.remove_from_flight(p.size);
        cc.on_congestion_event(p.time_sent_ns, now);
    }

    CongestionController cc;
    std::deque<SentPacket> outstanding;
    std::uint64_t next = 0;
};

CongestionConfig reno() { return {CongestionAlgorithm::new_reno, static_cast<std::uint32_t>(kMss), true}; }
CongestionConfig cubic(bool fast_convergence = true) {
    return {CongestionAlgorithm::cubic, static_cast<std::uint32_t>(kMss), fast_convergence};
}

// RFC 9438 sections 4.2 to 4.7 written out in segments and seconds, the slow way.
struct CubicReference {
    static constexpr double C = 0.4;
    static constexpr double beta = 0.7;
    double cwnd;   // segments
    double w_max = 0;
    double k = 0;
    double w_est = 0;
    double cwnd_prior = 0;
    double epoch_start = -1;
    bool fast_convergence = true;

    double w_cubic(double t) const { return C * std::pow(t - k, 3.0) + w_max; }
    void congestion_event() {
        cwnd_prior = cwnd;
        w_max = (fast_convergence && cwnd < w_max) ? cwnd * (1 + beta) / 2 : cwnd;
        cwnd = std::floor(cwnd * beta * kMss) / kMss;   // the controller keeps whole bytes at the reduction
        epoch_start = -1;
    }
    void ack(double segments, double now, double rtt) {
        if (epoch_start < 0) {
            epoch_start = now;
            w_est = cwnd;
            if (w_max <= cwnd) {
                w_max = cwnd;
                k = 0;
            } else {
                k = std::pow((w_max - cwnd) / C, 1.0 / 3.0);
            }
        }
        const double alpha = w_est >= cwnd_prior ? 1.0 : 3 * (1 - beta) / (1 + beta);
        w_est += alpha * segments / cwnd;
        const double t = now - epoch_start;
        if (w_cubic(t) < w_est) {
            cwnd = std::max(cwnd, w_est);
            return;
        }
        const double target = std::min(std::max(w_cubic(t + rtt), cwnd), 1.5 * cwnd);
        cwnd += (target - cwnd) / cwnd * segments;
    }
};

// Slow start to `packets` segments, then one loss: the controller enters congestion avoidance at time `now`.
void grow_then_lose(Flow& flow, std::uint64_t packets, std::uint64_t& now) {
    while (flow.cc.congestion_window() < packets * kMss) {
        flow.fill(now);
        now += ms(1);
        flow.ack(1, now, ms(100));
    }
    REQUIRE(flow.cc.congestion_window() == packets * kMss);
    flow.fill(now);
    now += ms(1);
    flow.lose_oldest(now);
    now += ms(1);   // what is sent from here on is outside the recovery period
}

}  // namespace

TEST_CASE("window: the initial and minimum windows of section 7.2") {
    CHECK(initial_congestion_window(1200) == 12000);
    CHECK(initial_congestion_window(1472) == 14720);
    CHECK(initial_congestion_window(1500) == 14720);
    CHECK(initial_congestion_window(9000) == 18000);
    CHECK(minimum_congestion_window(1200) == 2400);
    CongestionController cc(reno());
    CHECK(cc.congestion_window() == 12000);
    CHECK(cc.can_send(12000));
    cc.on_packet_sent(11000);
    CHECK(cc.can_send(1000));
    CHECK_FALSE(cc.can_send(1001));
    // A new datagram size: larger keeps the window, smaller restarts from its initial window; bounds refused.
    CongestionController mtu(reno());
    CHECK(mtu.set_max_datagram_size(1199) == -EINVAL);
    CHECK(mtu.set_max_datagram_size(65528) == -EINVAL);
    CHECK(mtu.set_max_datagram_size(1500) == 0);
    CHECK(mtu.congestion_window() == 12000);
    CHECK(mtu.max_datagram_size() == 1500);
    mtu.on_persistent_congestion();
    CHECK(mtu.congestion_window() == 3000);
    CHECK(mtu.set_max_datagram_size(1300) == 0);
    CHECK(mtu.congestion_window() == 13000);
        CongestionController defaulted(CongestionConfig{CongestionAlgorithm::cubic, 0, true});
    CHECK(defaulted.max_datagram_size() == kDefaultMaxDatagramSize);
    CHECK(defaulted.algorithm() == CongestionAlgorithm::cubic);
}

TEST_CASE("newreno: slow start doubles the window every round trip, in one ACK or ACK-clocked") {
    Flow batch(reno());
    std::uint64_t expected = 12000;
    for (int round = 0; round < 5; ++round) {
        batch.fill(ms(100) * round);
        CHECK(batch.cc.bytes_in_flight() == expected);
        batch.ack(batch.outstanding.size(), ms(100) * (round + 1), ms(100));
        expected *= 2;
        CHECK(batch.cc.congestion_window() == expected);
        CHECK(batch.cc.bytes_in_flight() == 0);
    }
    // ACK clocking: each ACK frees room the sender fills at once.
    Flow clocked(reno());
    clocked.fill(0);
    for (int round = 0; round < 4; ++round) {
        const std::uint64_t in_round = clocked.outstanding.size();
        const std::uint64_t before = clocked.cc.congestion_window();
        for (std::uint64_t i = 0; i < in_round; ++i) {
            clocked.ack(1, ms(100) * (round + 1), ms(100));
            clocked.fill(ms(100) * (round + 1));
        }
        CHECK(clocked.cc.congestion_window() == 2 * before);
    }
}

TEST_CASE("newreno: one halving per recovery period, keyed on the send time; then congestion avoidance") {
    Flow flow(reno());
    flow.fill(ms(0));
    flow.ack(10, ms(100), ms(100));
    REQUIRE(flow.cc.congestion_window() == 24000);
    flow.fill(ms(100));   // 20 packets sent at 100 ms
    flow.lose_oldest(ms(200));
    CHECK(flow.cc.congestion_window() == 12000);
    CHECK(flow.cc.ssthresh() == 12000);
    // More losses of packets sent before 200 ms: same recovery period.
    flow.lose_oldest(ms(201));
    flow.lose_oldest(ms(202));
    CHECK(flow.cc.congestion_window() == 12000);
    // Their ACKs do not grow the window either.
    flow.ack(5, ms(203), ms(100));
    CHECK(flow.cc.congestion_window() == 12000);
    // Packets sent after the period began: congestion avoidance, one datagram per window of acknowledged bytes.
    flow.ack(flow.outstanding.size(), ms(204), ms(100));
    flow.fill(ms(210));
    REQUIRE(flow.outstanding.size() == 10);
    flow.ack(9, ms(300), ms(100));
    CHECK(flow.cc.congestion_window() == 12000);
    flow.fill(ms(300));   // ACK clocking keeps the window in use
    flow.ack(1, ms(301), ms(100));
    CHECK(flow.cc.congestion_window() == 13200);
    flow.fill(ms(301));
    REQUIRE(flow.outstanding.size() == 11);
    flow.ack(11, ms(400), ms(100));
    CHECK(flow.cc.congestion_window() == 14400);
    // A loss of a packet sent after the first period: a new period, another halving.
    flow.fill(ms(400));
    flow.lose_oldest(ms(450));
    CHECK(flow.cc.congestion_window() == 7200);
    // Persistent congestion: the minimum window, and the recovery period is over.
    flow.cc.on_persistent_congestion();
    CHECK(flow.cc.congestion_window() == 2400);
    CHECK_FALSE(flow.cc.in_congestion_recovery(ms(400)));
    // Never below the minimum window.
    flow.cc.on_congestion_event(ms(460), ms(470));
    CHECK(flow.cc.congestion_window() == 2400);
}

TEST_CASE("newreno: an application-limited sender does not grow the window") {
    Flow flow(reno());
    flow.send(0, 2);   // 2400 of 12000: under half the window in slow start
    flow.ack(2, ms(100), ms(100));
    CHECK(flow.cc.congestion_window() == 12000);
    flow.send(ms(100), 5);   // 6000: half the window counts as used
    flow.ack(5, ms(200), ms(100));
    CHECK(flow.cc.congestion_window() == 18000);
    // Congestion avoidance: used means within 3 datagrams of the window.
    flow.fill(ms(200));
    flow.lose_oldest(ms(250));
    REQUIRE(flow.cc.congestion_window() == 9000);
    flow.ack(flow.outstanding.size(), ms(260), ms(100));
    flow.send(ms(300), 4);   // 4800 + 3600 < 9000
    flow.ack(4, ms(400), ms(100));
    flow.send(ms(400), 4);
    flow.ack(4, ms(500), ms(100));
    CHECK(flow.cc.congestion_window() == 9000);
    flow.send(ms(500), 5);   // 6000 + 3600 >= 9000
    flow.ack(5, ms(600), ms(100));
    flow.send(ms(600), 5);
    flow.ack(5, ms(700), ms(100));
    CHECK(flow.cc.congestion_window() == 10200);
}

TEST_CASE("cubic: the window follows the RFC 9438 reference step by step; W_cubic and K at fixed times") {
    Flow flow(cubic());
    std::uint64_t now = 0;
    grow_then_lose(flow, 100, now);
    const Cubic& state = *flow.cc.cubic();
    CHECK(flow.cc.congestion_window() == 84000);
    CHECK(flow.cc.ssthresh() == 84000);
    CHECK(state.w_max() == 120000.0);
    CubicReference ref{84000.0 / kMss};
    ref.w_max = 100;
    ref.cwnd_prior = 100;

    // Clear the packets sent before the loss (their ACKs do not count), then ACK-clock for 10 s with a 100 ms
    // round trip, ACKs every 5 ms.
    flow.ack(flow.outstanding.size(), now, ms(100));
    const std::uint64_t rtt = ms(100);
    const double k_expected = std::pow(100 * 0.3 / 0.4, 1.0 / 3.0);
    bool checked_k = false;
    for (int step = 0; step < 2000; ++step) {
        flow.fill(now);
        now += ms(5);
        const std::uint64_t count = std::max<std::uint64_t>(1, flow.cc.congestion_window() / kMss / 20);
        flow.ack(count, now, rtt);
        ref.ack(static_cast<double>(count), static_cast<double>(now) * 1e-9, 0.1);
        REQUIRE(std::fabs(static_cast<double>(flow.cc.congestion_window()) - ref.cwnd * kMss) <= 1.0);
        if (step == 0) {
            CHECK(state.k_seconds() == doctest::Approx(k_expected).epsilon(1e-12));
            for (const double t : {0.0, 1.0, k_expected, 6.0, 10.0}) {
                const double formula = (0.4 * std::pow(t - k_expected, 3.0) + 100) * kMss;
                CHECK(state.w_cubic(t, kMss) == doctest::Approx(formula).epsilon(1e-12));
            }
            CHECK(state.w_cubic(k_expected, kMss) == doctest::Approx(120000.0).epsilon(1e-12));
        }
        const double t = static_cast<double>(now - state.epoch_start_ns()) * 1e-9;
        if (!checked_k && t >= k_expected) {
            // At t = K the window has come back to W_max (it aims one RTT ahead, so it is just above).
            checked_k = true;
            CHECK(flow.cc.congestion_window() >= 118800);
            CHECK(flow.cc.congestion_window() <= 121200);
        }
    }
    CHECK(checked_k);
    CHECK(flow.cc.congestion_window() > 180000);   // convex growth past W_max
}

TEST_CASE("cubic: the target is capped at 1.5 * cwnd on a long round trip") {
    Flow flow(cubic());
    std::uint64_t now = 0;
    grow_then_lose(flow, 10, now);   // W_max 10 segments, cwnd 7, K = cbrt(7.5) s
    flow.ack(flow.outstanding.size(), now, ms(4000));
    REQUIRE(flow.cc.congestion_window() == 8400);
    flow.fill(now);
    // The epoch's first ACK: t = 0, W_cubic(0) = cwnd_epoch is below W_est, so the Reno-friendly step.
    flow.ack(1, now + ms(50), ms(4000));
    const double first = 8400 + Cubic::kAlpha * kMss * kMss / 8400;
    CHECK(flow.cc.congestion_window() == static_cast<std::uint64_t>(first));
    flow.fill(now + ms(50));
    // t = 50 ms: W_cubic(t) is above W_est, and W_cubic(t + 4 s) (about 13.7 segments) beyond 1.5 * cwnd, so the
    // step is (1.5 * cwnd - cwnd) * 1200 / cwnd = 600 bytes.
    flow.ack(1, now + ms(100), ms(4000));
    CHECK(flow.cc.congestion_window() == static_cast<std::uint64_t>(first + 600));
}

TEST_CASE("cubic: fast convergence lowers W_max when the window has not recovered") {
    for (const bool fast : {true, false}) {
        CAPTURE(fast);
        Flow flow(cubic(fast));
        std::uint64_t now = 0;
        grow_then_lose(flow, 100, now);
        flow.ack(flow.outstanding.size(), now, ms(100));
        for (int step = 0; step < 20; ++step) {
            flow.fill(now);
            now += ms(10);
            flow.ack(5, now, ms(100));
        }
        const std::uint64_t before = flow.cc.congestion_window();
        REQUIRE(before < 120000);
        flow.fill(now);
        now += ms(1);
        flow.lose_oldest(now);
        const Cubic& state = *flow.cc.cubic();
        const double w_max = fast ? static_cast<double>(before) * 0.85 : static_cast<double>(before);
        CHECK(state.w_max() == doctest::Approx(w_max).epsilon(1e-12));
        CHECK(flow.cc.congestion_window() == static_cast<std::uint64_t>(static_cast<double>(before) * 0.7));
        // K comes from the window the epoch starts with.
        flow.ack(flow.outstanding.size(), now, ms(100));
        flow.fill(now + ms(1));
        flow.ack(1, now + ms(2), ms(100));
        const double cwnd_epoch = static_cast<double>(static_cast<std::uint64_t>(static_cast<double>(before) * 0.7));
        CHECK(state.k_seconds() == doctest::Approx(std::cbrt((w_max - cwnd_epoch) / (0.4 * kMss))).epsilon(1e-12));
    }
}

TEST_CASE("cubic: the Reno-friendly region on a short round trip, and alpha becoming 1 at cwnd_prior") {
    Flow flow(cubic());
    std::uint64_t now = 0;
    grow_then_lose(flow, 20, now);   // W_max 20 segments, cwnd 14; K = cbrt(15) s, far beyond a few RTTs of 1 ms
    flow.ack(flow.outstanding.size(), now, ms(1));
    CubicReference ref{16800.0 / kMss};
    ref.w_max = 20;
    ref.cwnd_prior = 20;
    const Cubic& state = *flow.cc.cubic();
    double last_est = 0;
    int reno_steps = 0;
    for (int step = 0; step < 200; ++step) {
        flow.fill(now);
        now += ms(1);
        const std::uint64_t count = flow.outstanding.size();   // one ACK per round trip, for the whole window
        const std::uint64_t cwnd_before = flow.cc.congestion_window();
        const double est_before = step == 0 ? 0 : state.w_est();
        flow.ack(count, now, ms(1));
        ref.ack(static_cast<double>(count), static_cast<double>(now) * 1e-9, 0.001);
        REQUIRE(std::fabs(static_cast<double>(flow.cc.congestion_window()) - ref.cwnd * kMss) <= 1.0);
        const double t = static_cast<double>(now - state.epoch_start_ns()) * 1e-9;
        if (state.w_cubic(t, kMss) < state.w_est()) {
            ++reno_steps;
            CHECK(flow.cc.congestion_window() == static_cast<std::uint64_t>(state.w_est()));
        }
        if (step > 0) {
            // W_est grows by alpha segments per window of acknowledged bytes.
            const double acked = static_cast<double>(count * kMss);
            const double alpha = est_before >= 24000.0 ? 1.0 : Cubic::kAlpha;
            CHECK(state.w_est() - est_before ==
                  doctest::Approx(alpha * kMss * acked / static_cast<double>(cwnd_before))
                  .epsilon(1e-3));
        }
        last_est = state.w_est();
    }
    CHECK(reno_steps > 150);
    CHECK(last_est > 24000.0 + 100 * kMss);   // well past cwnd_prior, so alpha = 1 was exercised
}

TEST_CASE("cubic: persistent congestion and application-limited ACKs") {
    Flow flow(cubic());
    std::uint64_t now = 0;
    grow_then_lose(flow, 50, now);
    flow.ack(flow.outstanding.size(), now, ms(100));
    const Cubic& state = *flow.cc.cubic();
    flow.fill(now);
    now += ms(5);
    flow.ack(flow.outstanding.size(), now, ms(100));
    REQUIRE(state.in_epoch());
    const std::uint64_t epoch = state.epoch_start_ns();
    const std::uint64_t window = flow.cc.congestion_window();
    // 200 ms with one packet out: the window was not used, so it does not grow and t does not advance.
    flow.send(now);
    now += ms(200);
    flow.ack(1, now, ms(100));
    CHECK(flow.cc.congestion_window() == window);
    CHECK(state.epoch_start_ns() == epoch + ms(200));
    flow.cc.on_persistent_congestion();
    CHECK(flow.cc.congestion_window() == 2400);
    CHECK_FALSE(state.in_epoch());
}

TEST_CASE("pacer: a hand-computed wait, unpaced when no rate, packets larger than the burst") {
    Pacer pacer(2400);
    pacer.set_rate(0, 12000, ms(100));   // 15000 bytes per 100 ms: 1200 bytes every 8 ms
    CHECK(pacer.next_send_time(0, 1200) == 0);
    pacer.on_packet_sent(0, 1200);
    pacer.on_packet_sent(0, 1200);
    CHECK(pacer.available(0) == 0);
    CHECK(pacer.next_send_time(0, 1200) == ms(8));
    CHECK(pacer.available(ms(8) - 1) == 1199);
    CHECK(pacer.available(ms(8)) == 1200);
    CHECK(pacer.available(ms(100)) == 2400);   // capped at the burst
    CHECK(pacer.next_send_time(ms(100), 9000) == ms(100));   // larger than the burst: a full bucket lets it go

    Pacer unpaced(2400);
    unpaced.on_packet_sent(0, 2400);
    CHECK(unpaced.next_send_time(5, 1200) == 5);
    unpaced.set_rate(10, 12000, 0);
    CHECK(unpaced.next_send_time(10, 1200) == 10);
}

TEST_CASE("pacer property: bytes released never exceed rate * t + burst, and the wait is exact") {
    std::mt19937_64 rng(0x7707);
    for (int run = 0; run < 8; ++run) {
        const std::uint64_t burst = 1200 * (1 + rng() % 10);
        std::uint64_t cwnd = 2400 + rng() % 200000;
        std::uint64_t srtt = ms(1) + rng() % ms(200);
        Pacer pacer(burst);
        std::uint64_t now = rng() % ms(1000);
        pacer.set_rate(now, cwnd, srtt);
        // The bound, as an exact integral of the rate: sum of 5 * cwnd * dt / (4 * srtt) over rate segments.
        __extension__ using Wide = unsigned __int128;
        double budget = static_cast<double>(burst);
        std::uint64_t segment_start = now;
        std::uint64_t sent = 0;
        std::uint64_t sent_at_segment = 0;
        for (int step = 0; step < 5000; ++step) {
            now += rng() % ms(3);
            if (rng() % 500 == 0) {
                // Rate change: close the segment's budget, open a new one.
                budget += 1.25 * static_cast<double>(cwnd) * static_cast<double>(now - segment_start) /
                          static_cast<double>(srtt);
                cwnd = 2400 + rng() % 200000;
                srtt = ms(1) + rng() % ms(200);
                pacer.set_rate(now, cwnd, srtt);
                segment_start = now;
                sent_at_segment = sent;
            }
            const std::uint64_t bytes = 40 + rng() % 1161;
            const std::uint64_t at = pacer.next_send_time(now, bytes);
            REQUIRE(at >= now);
            if (at > now) {
                Pacer before = pacer;
                REQUIRE(before.available(at - 1) < std::min(bytes, burst));
                Pacer after = pacer;
                REQUIRE(after.available(at) >= std::min(bytes, burst));
                continue;
            }
            pacer.on_packet_sent(now, bytes);
            sent += bytes;
            const double limit = budget + 1.25 * static_cast<double>(cwnd) *
                                              static_cast<double>(now - segment_start) / static_cast<double>(srtt);
            REQUIRE(static_cast<double>(sent) <= limit * (1 + 1e-12));
            // Within one rate segment the bound is exact in integers.
            const Wide lhs = Wide{sent - sent_at_segment} * 4 * srtt;
            const Wide rhs = Wide{5} * cwnd * (now - segment_start) + Wide{burst} * 4 * srtt;
            REQUIRE(lhs <= rhs);
        }
        CHECK(sent > 0);
    }
}
