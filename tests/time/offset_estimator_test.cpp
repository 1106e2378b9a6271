// OffsetEstimator against a simulated peer whose clock is deliberately offset, skewed and (once) stepped, with
// asymmetric, queued and spiky delays: the estimate must lie within its own bound at every check, the bound must be
// as tight as the delays allow, the drift must come out right, and the polygon must match a brute-force LP.
#include <doctest/doctest.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <memory>
#include <random>
#include <vector>

#include "engine/time/offset_estimator.hpp"
#include "platform/os/last_error.hpp"

using cf::Duration;
using cf::Femtos;
using cf::Instant;
using cf::OffsetEstimator;

namespace {

constexpr Femtos kFsPerNs = 1'000'000;
constexpr Femtos kFsPerUs = 1'000'000'000;
constexpr Femtos kFsPerMs = 1'000'000'000'000;
constexpr Femtos kFsPerS = 1'000'000'000'000'000;
constexpr Femtos kNever = cf::time_detail::kMaxFemtos;

const Femtos kStart = Instant::from_unix_nanos(1'700'000'000'000'000'000).femtos();

Femtos absolute(Femtos v) { return v < 0 ? -v : v; }
double us(Femtos v) { return static_cast<double>(v) / 1e9; }
Instant at(Femtos fs) { return Instant::from_femtos(fs); }

// The injectable time source: the peer's clock as a function of our local time t,
//     remote(t) = t + theta(t),  theta(t) = theta0 + skew * (t - start)  (+ step from step_at on),
// exact to the femtosecond (floor) and increasing. Skew in parts per billion.
struct PeerClock {
    Femtos theta0 = 0;
    std::int64_t skew_ppb = 0;
    Femtos step = 0;
    Femtos step_at = kNever;

    Femtos theta(Femtos t) const {
        const Femtos drift = cf::time_detail::floor_div((t - kStart) * skew_ppb, 1'000'000'000);
        return theta0 + drift + (t >= step_at ? step : 0);
    }
    Femtos remote(Femtos t) const { return t + theta(t); }
    double skew_ppm() const { return static_cast<double>(skew_ppb) / 1000; }
};

struct DelayModel {
    double forward_us = 30;     // base one-way delays, different each way
    double back_us = 45;
    double queue_mean_us = 20;  // plus exponential queueing in each direction
    int spike_one_in = 20;      // one exchange in this many gets a spike in one direction (0: never)
    double spike_us = 5000;
};

struct SimExchange {
    OffsetEstimator::Exchange exchange;
    Femtos forward, back;       // what the delays really were
};

// Probes every `interval` (plus up to 100 us of jitter), timestamps computed exactly from the model:
// a = t1 + forward, t2 = remote(a); the peer holds it 2..50 us; b = a + hold, t3 = remote(b); t4 = b + back.
class Simulation {
public:
    Simulation(const PeerClock& clock, const DelayModel& delays, Femtos interval, std::uint64_t seed)
        : clock_(clock), delays_(delays), interval_(interval), rng_(seed) {}

    SimExchange next() {
        const Femtos t1 = kStart + index_++ * interval_ + uniform_fs(100 * kFsPerUs);
        Femtos forward = delay(delays_.forward_us), back = delay(delays_.back_us);
        if (delays_.spike_one_in > 0 && rng_() % delays_.spike_one_in == 0) {
            (rng_() % 2 == 0 ? forward : back) += micros(delays_.spike_us);
        }
        const Femtos a = t1 + forward;
        const Femtos b = a + 2 * kFsPerUs + uniform_fs(48 * kFsPerUs);
        const Femtos t4 = b + back;
        return {{at(t1), at(clock_.remote(a)), at(clock_.remote(b)), at(t4)}, forward, back};
    }
    const PeerClock& clock() const { return clock_; }

private:
    static Femtos micros(double value) { return static_cast<Femtos>(std::llround(value * 1e6)) * 1000; }
    double unit() { return static_cast<double>(rng_() >> 11) * 0x1p-53; }
    Femtos uniform_fs(Femtos span) { return static_cast<Femtos>(rng_() % static_cast<std::uint64_t>(span)); }
    Femtos delay(double base_us) {
        return micros(base_us) + micros(-delays_.queue_mean_us * std::log1p(-unit()));
    }

    PeerClock clock_;
    DelayModel delays_;
    Femtos interval_;
    std::mt19937_64 rng_;
    Femtos index_ = 0;
};

struct Tally {
    std::uint64_t checks = 0;
    std::uint64_t violations = 0;
};

// |truth - estimate| <= bound, truth within the stated interval (give or take the rounding margin), and the true
// drift within the stated drift range.
void check_at(const OffsetEstimator& estimator, const PeerClock& clock, Femtos t, Tally& tally) {
    const OffsetEstimator::Estimate e = estimator.estimate_at(at(t));
    REQUIRE(e.valid);
    const Femtos truth = clock.theta(t);
    const Femtos margin = OffsetEstimator::kRoundingMargin.femtos();
    const bool within_bound = absolute(truth - e.offset.femtos()) <= e.bound.femtos();
    const bool within_interval = truth >= e.offset_low.femtos() - margin && truth <= e.offset_high.femtos() + margin;
    const bool drift_within = clock.step_at != kNever || (clock.skew_ppm() >= e.drift_low_ppm - 1e-6 &&
                                                          clock.skew_ppm() <= e.drift_high_ppm + 1e-6);
    ++tally.checks;
    if (!within_bound || !within_interval || !drift_within) {
        if (++tally.violations <= 5) {
            MESSAGE("violation at t = start + " << us(t - kStart) << " us: truth " << us(truth) << " us, estimate "
                    << us(e.offset.femtos()) << " +- " << us(e.bound.femtos()) << " us, interval ["
                    << us(e.offset_low.femtos()) << ", " << us(e.offset_high.femtos()) << "], drift "
                    << e.drift_low_ppm << " .. " << e.drift_high_ppm << " ppm (true " << clock.skew_ppm() << ")");
        }
    }
}

struct Scenario {
    Scenario(const char* name_, const PeerClock& clock_, const DelayModel& delays_, Femtos interval_ = 10 * kFsPerMs,
             int exchanges_ = 400, const OffsetEstimator::Config& config_ = {})
        : name(name_), clock(clock_), delays(delays_), interval(interval_), exchanges(exchanges_), config(config_) {}

    const char* name;
    PeerClock clock;
    DelayModel delays;
    Femtos interval;
    int exchanges;
    OffsetEstimator::Config config;
    std::uint64_t seed = 1;
};

struct Outcome {
    Tally tally;
    std::vector<SimExchange> history;
    OffsetEstimator::Estimate last;   // at the newest exchange's t4
};

// Feeds every exchange and, from the second on, checks the bound inside the window, at the newest exchange and a
// little and a lot into the future. Queries on the other side of a clock step from the newest exchange are
// skipped: no single line describes both sides.
Outcome run(const Scenario& s, std::unique_ptr<OffsetEstimator>* keep = nullptr) {
    std::unique_ptr<OffsetEstimator> estimator;
    REQUIRE(OffsetEstimator::create(s.config, estimator) == 0);
    Simulation sim(s.clock, s.delays, s.interval, s.seed);
    Outcome out;
    for (int i = 0; i < s.exchanges; ++i) {
        out.history.push_back(sim.next());
        const auto& x = out.history.back().exchange;
        REQUIRE(estimator->add(x) == 0);
        if (i == 0) continue;
        const Femtos newest = x.t4.femtos();
        const auto back = static_cast<std::size_t>(std::min<std::uint32_t>(estimator->samples(), i + 1) / 2);
        const Femtos queries[] = {out.history[out.history.size() - 1 - back].exchange.t1.femtos(), newest,
                                  x.t1.femtos(), newest + 100 * kFsPerMs, newest + kFsPerS};
        for (const Femtos t : queries) {
            if ((t >= s.clock.step_at) != (x.t1.femtos() >= s.clock.step_at)) continue;
            check_at(*estimator, s.clock, t, out.tally);
        }
    }
    out.last = estimator->estimate_at(out.history.back().exchange.t4);
    if (keep != nullptr) *keep = std::move(estimator);
    return out;
}

// Smallest true delays among the last `count` exchanges.
void min_delays(const std::vector<SimExchange>& history, std::size_t count, Femtos& forward, Femtos& back) {
    forward = back = kNever;
    for (std::size_t i = history.size() - std::min(count, history.size()); i < history.size(); ++i) {
        forward = std::min(forward, history[i].forward);
        back = std::min(back, history[i].back);
    }
}

OffsetEstimator::Config window_config(std::uint32_t window) {
    OffsetEstimator::Config config;
    config.window = window;
    return config;
}

}  // namespace

TEST_CASE("create refuses bad configurations") {
    const auto refused = [](const OffsetEstimator::Config& config) {
        std::unique_ptr<OffsetEstimator> out;
        const int status = OffsetEstimator::create(config, out);
        const bool empty = out == nullptr;
        const bool has_message = std::strlen(cf::platform::last_error_message()) > 0;
        return status == -EINVAL && empty && has_message;
    };
    OffsetEstimator::Config c;
    c.window = 7;
    CHECK(refused(c));
    c.window = 4097;
    CHECK(refused(c));
    c = {};
    c.max_drift_ppm = -1;
    CHECK(refused(c));
    c.max_drift_ppm = 100'001;
    CHECK(refused(c));
    c.max_drift_ppm = std::nan("");
    CHECK(refused(c));
    c = {};
    c.filter_group = 0;
    CHECK(refused(c));
    c.filter_group = c.window + 1;
    CHECK(refused(c));
    c = {};
    c.filter_keep = 0;
    CHECK(refused(c));
    c.filter_keep = c.filter_group + 1;
    CHECK(refused(c));

    std::unique_ptr<OffsetEstimator> out;
    c = {};
    c.window = 8;
    c.max_drift_ppm = 0;
    c.filter_group = 8;
    c.filter_keep = 8;
    CHECK(OffsetEstimator::create(c, out) == 0);
    REQUIRE(out != nullptr);
    c.window = 4096;
    c.max_drift_ppm = 100'000;
    c.filter_keep = 1;
    CHECK(OffsetEstimator::create(c, out) == 0);
    CHECK(out != nullptr);
}

TEST_CASE("no estimate before the first exchange") {
    std::unique_ptr<OffsetEstimator> estimator;
    REQUIRE(OffsetEstimator::create({}, estimator) == 0);
    CHECK_FALSE(estimator->estimate_at(at(kStart)).valid);
    CHECK(estimator->estimate_at(at(kStart)).samples == 0);
    Instant local;
    Duration bound;
    CHECK(estimator->remote_to_local(at(kStart), local, bound) == -EAGAIN);
}

TEST_CASE("one exchange: the interval follows from the constraints and max_drift, exactly") {
    // theta(t1) <= t2 - t1 = 1000 us, theta(t4) >= t3 - t4 = 910 us, |r| <= 500 ppm, t1 = 0, t4 = 100 us.
    std::unique_ptr<OffsetEstimator> estimator;
    REQUIRE(OffsetEstimator::create({}, estimator) == 0);
    const Femtos t0 = kStart;
    REQUIRE(estimator->add({at(t0), at(t0 + 1000 * kFsPerUs), at(t0 + 1010 * kFsPerUs), at(t0 + 100 * kFsPerUs)}) ==
            0);
    CHECK(estimator->samples() == 1);
    CHECK(estimator->accepted() == 1);

    // At t4: [910 us, 1000 us + 500e-6 * 100 us]; the midpoint offset 955 us at 50 us, drift 0.
    auto e = estimator->estimate_at(at(t0 + 100 * kFsPerUs));
    REQUIRE(e.valid);
    CHECK(e.offset_low.femtos() == 910 * kFsPerUs);
    CHECK(e.offset_high.femtos() == 1000 * kFsPerUs + 50 * kFsPerNs);
    CHECK(e.offset.femtos() == 955 * kFsPerUs);
    CHECK(e.drift_ppm == 0);
    CHECK(e.drift_low_ppm == doctest::Approx(-500).epsilon(1e-12));
    CHECK(e.drift_high_ppm == doctest::Approx(500).epsilon(1e-12));
    CHECK(e.best_rtt.femtos() == 90 * kFsPerUs);
    // bound = max(955 - 910, 1000.05 - 955) us + the rounding margin (1 ns, and its distance term rounded up: 1 fs).
    CHECK(e.bound.femtos() == 45 * kFsPerUs + 50 * kFsPerNs + OffsetEstimator::kRoundingMargin.femtos() + 1);

    // One second later the interval has widened by 500 ppm of the distance on each side.
    e = estimator->estimate_at(at(t0 + kFsPerS));
    CHECK(e.offset_low.femtos() == 910 * kFsPerUs - (kFsPerS - 100 * kFsPerUs) / 2000);
    CHECK(e.offset_high.femtos() == 1000 * kFsPerUs + kFsPerS / 2000);
}

TEST_CASE("malformed exchanges are refused, counted, and change nothing") {
    std::unique_ptr<OffsetEstimator> estimator;
    REQUIRE(OffsetEstimator::create({}, estimator) == 0);
    Simulation sim({37 * kFsPerMs, 120'000}, {}, 10 * kFsPerMs, 7);
    for (int i = 0; i < 50; ++i) REQUIRE(estimator->add(sim.next().exchange) == 0);
    const Instant probe = at(kStart + 600 * kFsPerMs);
    const auto before = estimator->estimate_at(probe);

    const Femtos t = kStart + 700 * kFsPerMs;
    const Femtos theta = 37 * kFsPerMs;
    const Femtos rtt = kFsPerMs;
    const OffsetEstimator::Exchange bad[] = {
        // t4 before t1
        {at(t), at(t + theta + 10 * kFsPerUs), at(t + theta + 20 * kFsPerUs), at(t - kFsPerNs)},
        // t3 before t2
        {at(t), at(t + theta + 20 * kFsPerUs), at(t + theta + 10 * kFsPerUs), at(t + rtt)},
        // the peer held it longer than the round trip, even at +500 ppm: (1 + 500e-6) * 1 ms + 1 ns
        {at(t), at(t + theta), at(t + theta + rtt + rtt / 2000 + kFsPerNs), at(t + rtt)},
    };
    for (const auto& exchange : bad) {
        const auto rejected = estimator->rejected();
        CHECK(estimator->add(exchange) == -EINVAL);
        CHECK(std::strlen(cf::platform::last_error_message()) > 0);
        CHECK(estimator->rejected() == rejected + 1);
    }
    CHECK(estimator->accepted() == 50);
    CHECK(estimator->samples() == 50);
    CHECK(estimator->restarts() == 0);
    const auto after = estimator->estimate_at(probe);
    CHECK(after.offset == before.offset);
    CHECK(after.bound == before.bound);
    CHECK(after.offset_low == before.offset_low);
    CHECK(after.offset_high == before.offset_high);
    CHECK(after.drift_ppm == before.drift_ppm);
    CHECK(after.samples == before.samples);

    // Exactly the longest hold +500 ppm allows is fine (a peer clock that fast holding it the whole round trip).
    std::unique_ptr<OffsetEstimator> fresh;
    REQUIRE(OffsetEstimator::create({}, fresh) == 0);
    CHECK(fresh->add({at(t), at(t + theta), at(t + theta + rtt + rtt / 2000), at(t + rtt)}) == 0);
    CHECK(fresh->rejected() == 0);
    // A zero round trip with a zero hold pins the offset exactly (up to the rounding margin).
    std::unique_ptr<OffsetEstimator> pinned;
    REQUIRE(OffsetEstimator::create({}, pinned) == 0);
    CHECK(pinned->add({at(t), at(t + theta), at(t + theta), at(t)}) == 0);
    const auto e = pinned->estimate_at(at(t));
    CHECK(e.offset_low.femtos() == theta);
    CHECK(e.offset_high.femtos() == theta);
    CHECK(e.offset.femtos() == theta);
    CHECK(e.bound == OffsetEstimator::kRoundingMargin);
}

TEST_CASE("the estimate lies within its own bound: offset, negative, huge, skewed, pipelined") {
    DelayModel typical;   // 30 / 45 us base, 20 us mean queueing, 1 in 20 with +5 ms one way
    Scenario scenarios[] = {
        {"+37.25 ms, +120 ppm", {37'250 * kFsPerUs, 120'000}, typical},
        {"-37.25 ms, -80 ppm", {-37'250 * kFsPerUs, -80'000}, typical},
        {"+3 days, 0 ppm", {3 * 86'400 * kFsPerS, 0}, typical},
        {"+3 days, -480 ppm", {3 * 86'400 * kFsPerS, -480'000}, typical},
        {"pipelined: probes every 1 ms, 5 ms spikes", {-5 * kFsPerS, 250'000}, typical, kFsPerMs, 2000},
        {"window 8", {12 * kFsPerMs, 60'000}, typical, 10 * kFsPerMs, 300, window_config(8)},
        {"window 1024", {-2 * kFsPerMs, -300'000}, typical, 10 * kFsPerMs, 1500, window_config(1024)},
        {"window 4096", {7 * kFsPerMs, 33'000}, typical, 10 * kFsPerMs, 4300, window_config(4096)},
    };
    for (const auto& s : scenarios) {
        const Outcome out = run(s);
        MESSAGE(doctest::String(s.name) << ": " << out.tally.checks << " checks, " << out.tally.violations
                << " violations; last bound " << us(out.last.bound.femtos()) << " us, offset error "
                << us(s.clock.theta(out.last.at.femtos()) - out.last.offset.femtos()) << " us, drift "
                << out.last.drift_ppm << " ppm (true " << s.clock.skew_ppm() << ")");
        CHECK(out.tally.checks >= 4 * static_cast<std::uint64_t>(s.exchanges - 1));
        CHECK(out.tally.violations == 0);
    }
}

TEST_CASE("random peers and configurations: zero violations") {
    std::mt19937_64 rng(0x0FF5E7);
    const std::uint32_t windows[] = {8, 16, 64, 128, 256};
    Tally total;
    for (int trial = 0; trial < 16; ++trial) {
        Scenario s{"random", {}, {}};
        s.config.window = windows[rng() % 5];
        s.config.max_drift_ppm = (trial % 2 == 0) ? 500 : 50;
        s.config.filter_group = 1 + static_cast<std::uint32_t>(rng() % std::min<std::uint32_t>(16, s.config.window));
        s.config.filter_keep = 1 + static_cast<std::uint32_t>(rng() % s.config.filter_group);
        const auto max_ppb = static_cast<std::int64_t>(s.config.max_drift_ppm * 1000);
        s.clock.theta0 = static_cast<Femtos>(static_cast<std::int64_t>(rng() % 20'000'000) - 10'000'000) * kFsPerUs;
        s.clock.skew_ppb = static_cast<std::int64_t>(rng() % (2 * max_ppb + 1)) - max_ppb;
        s.delays.forward_us = 1 + static_cast<double>(rng() % 500);
        s.delays.back_us = 1 + static_cast<double>(rng() % 500);
        s.delays.queue_mean_us = static_cast<double>(rng() % 100);
        s.delays.spike_one_in = static_cast<int>(rng() % 30);
        s.interval = static_cast<Femtos>(1 + rng() % 20) * kFsPerMs;
        s.exchanges = 300;
        s.seed = rng();
        const Outcome out = run(s);
        total.checks += out.tally.checks;
        total.violations += out.tally.violations;
    }
    MESSAGE("random: " << total.checks << " checks, " << total.violations << " violations");
    CHECK(total.checks >= 16 * 299 * 4);
    CHECK(total.violations == 0);
}

TEST_CASE("the bound is as tight as the delays allow") {
    SUBCASE("symmetric small delays: about the one-way delay") {
        Scenario s{"symmetric 1 us", {37'250 * kFsPerUs, 120'000}, {1, 1, 0.1, 0, 0}};
        const Outcome out = run(s);
        Femtos forward, back;
        min_delays(out.history, s.config.window, forward, back);
        MESSAGE("symmetric: min delays " << us(forward) << " / " << us(back) << " us, bound "
                << us(out.last.bound.femtos()) << " us, error "
                << us(s.clock.theta(out.last.at.femtos()) - out.last.offset.femtos()) << " us, interval width "
                << us(out.last.offset_high.femtos() - out.last.offset_low.femtos()) << " us");
        CHECK(out.tally.violations == 0);
        CHECK(out.last.bound.femtos() < 3 * kFsPerUs);
        CHECK(out.last.bound.femtos() <= (forward + back) / 2 + 200 * kFsPerNs);
    }
    SUBCASE("all-asymmetric delays: about half the round trip, the asymmetry cannot be seen") {
        Scenario s{"asymmetric 200 / 20 us", {-37'250 * kFsPerUs, -80'000}, {200, 20, 0.1, 0, 0}};
        const Outcome out = run(s);
        Femtos forward, back;
        min_delays(out.history, s.config.window, forward, back);
        const Femtos error = s.clock.theta(out.last.at.femtos()) - out.last.offset.femtos();
        MESSAGE("asymmetric: min delays " << us(forward) << " / " << us(back) << " us, bound "
                << us(out.last.bound.femtos()) << " us, error " << us(error) << " us");
        CHECK(out.tally.violations == 0);
        CHECK(out.last.bound.femtos() <= (forward + back) / 2 + 200 * kFsPerNs);
        // The midpoint is off by half the asymmetry, (200 - 20) / 2 us, and the bound must (and does) cover it.
        CHECK(absolute(error) >= 89 * kFsPerUs);
    }
}

TEST_CASE("drift comes out within a few ppm of the true skew") {
    DelayModel typical;
    const std::int64_t skews[] = {120'000, -80'000, 0, 430'000};
    for (const std::int64_t skew : skews) {
        Scenario s{"drift", {37'250 * kFsPerUs, skew}, typical, 10 * kFsPerMs, 600, window_config(256)};
        s.seed = 11 + static_cast<std::uint64_t>(skew);
        const Outcome out = run(s);
        const double error = out.last.drift_ppm - s.clock.skew_ppm();
        MESSAGE("skew " << s.clock.skew_ppm() << " ppm: estimate " << out.last.drift_ppm << " ppm (error " << error
                << "), exact range " << out.last.drift_low_ppm << " .. " << out.last.drift_high_ppm);
        CHECK(out.tally.violations == 0);
        CHECK(std::fabs(error) <= 3.0);
    }
}

TEST_CASE("a clock step restarts the estimator and the bound holds again after it") {
    Scenario s{"step", {37'250 * kFsPerUs, 120'000}, {}};
    s.exchanges = 400;
    // +1 ms between two exchanges (every probe starts at or after k * 10 ms and is back within 10 ms).
    s.clock.step = kFsPerMs;
    s.clock.step_at = kStart + 200 * s.interval - kFsPerUs;

    // Up to the step: no restart.
    Scenario before = s;
    before.exchanges = 200;
    std::unique_ptr<OffsetEstimator> estimator;
    const Outcome first = run(before, &estimator);
    CHECK(estimator->restarts() == 0);
    CHECK(first.tally.violations == 0);

    const Outcome out = run(s, &estimator);
    MESSAGE("step: " << estimator->restarts() << " restarts, " << out.tally.checks << " checks, "
            << out.tally.violations << " violations, window " << estimator->samples() << ", last bound "
            << us(out.last.bound.femtos()) << " us");
    CHECK(estimator->restarts() >= 1);
    CHECK(out.tally.violations == 0);
    CHECK(estimator->samples() == s.config.window);   // refilled since
    // After the restart the offset is the new one, not something between.
    const Femtos error = s.clock.theta(out.last.at.femtos()) - out.last.offset.femtos();
    CHECK(absolute(error) < 100 * kFsPerUs);
}

TEST_CASE("a bad timestamp: the estimator restarts around it, then drops it, and the bound holds after") {
    const PeerClock clock{37'250 * kFsPerUs, 120'000};
    Simulation sim(clock, {}, 10 * kFsPerMs, 5);
    std::unique_ptr<OffsetEstimator> estimator;
    REQUIRE(OffsetEstimator::create({}, estimator) == 0);
    for (int i = 0; i < 50; ++i) REQUIRE(estimator->add(sim.next().exchange) == 0);
    CHECK(estimator->samples() == 50);

    // The peer stamped one exchange 1 ms early (both t2 and t3, so the hold looks fine): theta(t1) <= t2 - t1 now
    // cuts 1 ms below the truth. No line with |r| <= 500 ppm fits it and the exchange 10 ms before it, so
    // everything before it goes.
    OffsetEstimator::Exchange bad = sim.next().exchange;
    bad.t2 -= Duration::from_millis(1);
    bad.t3 -= Duration::from_millis(1);
    REQUIRE(estimator->add(bad) == 0);
    CHECK(estimator->restarts() == 1);
    CHECK(estimator->samples() == 1);
    // The next good exchange contradicts it in turn: the bad one goes.
    REQUIRE(estimator->add(sim.next().exchange) == 0);
    CHECK(estimator->restarts() == 2);
    CHECK(estimator->samples() == 1);
    Tally tally;
    for (int i = 0; i < 100; ++i) {
        const auto x = sim.next().exchange;
        REQUIRE(estimator->add(x) == 0);
        check_at(*estimator, clock, x.t4.femtos(), tally);
        check_at(*estimator, clock, x.t4.femtos() + 100 * kFsPerMs, tally);
    }
    CHECK(estimator->restarts() == 2);
    CHECK(estimator->samples() == 101);
    CHECK(tally.violations == 0);
}

TEST_CASE("remote_to_local: the local time the peer's clock read a timestamp, within the bound") {
    Scenario s{"remote to local", {3 * 86'400 * kFsPerS + 37'250 * kFsPerUs, -80'000}, {}};
    std::unique_ptr<OffsetEstimator> estimator;
    REQUIRE(OffsetEstimator::create(s.config, estimator) == 0);
    Simulation sim(s.clock, s.delays, s.interval, 99);
    Tally tally;
    Femtos widest = 0;
    for (int i = 0; i < 300; ++i) {
        const SimExchange x = sim.next();
        REQUIRE(estimator->add(x.exchange) == 0);
        const Femtos newest = x.exchange.t4.femtos();
        for (const Femtos truth : {x.exchange.t1.femtos(), newest, newest + 100 * kFsPerMs, newest - kFsPerMs}) {
            Instant local;
            Duration bound;
            REQUIRE(estimator->remote_to_local(at(s.clock.remote(truth)), local, bound) == 0);
            ++tally.checks;
            if (absolute(local.femtos() - truth) > bound.femtos()) ++tally.violations;
            widest = std::max(widest, bound.femtos());
            // Round trip: local + offset(local) gives back the remote reading (the iteration converged).
            const auto e = estimator->estimate_at(local);
            CHECK(absolute(local.femtos() + e.offset.femtos() - s.clock.remote(truth)) <= kFsPerNs);
            // The local bound is the offset bound scaled by 1 / (1 - max_drift), not more.
            CHECK(bound.femtos() <= e.bound.femtos() + e.bound.femtos() / 1000 + kFsPerNs);
        }
    }
    MESSAGE("remote_to_local: " << tally.checks << " checks, " << tally.violations << " violations, widest bound "
            << us(widest) << " us");
    CHECK(tally.violations == 0);
}

TEST_CASE("the window slides: old exchanges leave, reset() forgets them all") {
    Scenario s{"window 8", {5 * kFsPerMs, 10'000}, {}, 10 * kFsPerMs, 100, window_config(8)};
    std::unique_ptr<OffsetEstimator> estimator;
    const Outcome out = run(s, &estimator);
    CHECK(out.tally.violations == 0);
    CHECK(estimator->samples() == 8);
    CHECK(estimator->accepted() == 100);
    CHECK(out.last.samples == 8);
    estimator->reset();
    CHECK(estimator->samples() == 0);
    CHECK_FALSE(estimator->estimate_at(at(kStart)).valid);
    CHECK(estimator->accepted() == 100);
}

namespace {

// The slow reference: the 2-variable LP by enumerating every vertex. Lines theta(x) = c + r x, x and theta in
// seconds (long double) relative to the first exchange; constraints a c + b r <= rhs.
struct Halfplane {
    long double a, b, rhs;
};

struct Reference {
    bool feasible = false;
    long double low = 0, high = 0, drift_low = 0, drift_high = 0;
};

Reference brute_force(const std::vector<OffsetEstimator::Exchange>& exchanges, double max_drift_ppm, Femtos query) {
    const Femtos x0 = exchanges.front().t1.femtos();
    const Femtos y0 = exchanges.front().t2.femtos() - exchanges.front().t1.femtos();
    const auto seconds = [](Femtos v) { return static_cast<long double>(v) / 1e15L; };
    std::vector<Halfplane> planes;
    const long double r_max = max_drift_ppm * 1e-6L;
    planes.push_back({0, 1, r_max});
    planes.push_back({0, -1, r_max});
    for (const auto& x : exchanges) {
        const long double x1 = seconds(x.t1.femtos() - x0), x4 = seconds(x.t4.femtos() - x0);
        const long double up = seconds(x.t2.femtos() - x.t1.femtos() - y0);
        const long double low = seconds(x.t3.femtos() - x.t4.femtos() - y0);
        planes.push_back({1, x1, up});       // c + r x1 <= up
        planes.push_back({-1, -x4, -low});   // c + r x4 >= low
    }
    const long double xq = seconds(query - x0);
    Reference ref;
    for (std::size_t i = 0; i < planes.size(); ++i) {
        for (std::size_t j = i + 1; j < planes.size(); ++j) {
            const Halfplane& p = planes[i];
            const Halfplane& q = planes[j];
            const long double det = p.a * q.b - q.a * p.b;
            if (std::fabs(det) < 1e-15L) continue;
            const long double c = (p.rhs * q.b - q.rhs * p.b) / det;
            const long double r = (p.a * q.rhs - q.a * p.rhs) / det;
            bool ok = true;
            for (const Halfplane& h : planes) ok = ok && h.a * c + h.b * r <= h.rhs + 1e-16L;
            if (!ok) continue;
            const long double value = c + r * xq;
            if (!ref.feasible) {
                ref = {true, value, value, r, r};
            } else {
                ref.low = std::min(ref.low, value);
                ref.high = std::max(ref.high, value);
                ref.drift_low = std::min(ref.drift_low, r);
                ref.drift_high = std::max(ref.drift_high, r);
            }
        }
    }
    ref.low = ref.low * 1e15L + static_cast<long double>(y0);   // back to femtoseconds
    ref.high = ref.high * 1e15L + static_cast<long double>(y0);
    return ref;
}

}  // namespace

TEST_CASE("the interval and the drift range equal a brute-force LP on random windows") {
    std::mt19937_64 rng(0xB0A7);
    const double drifts[] = {0, 50, 500, 5000};
    int compared = 0;
    for (int trial = 0; trial < 400; ++trial) {
        OffsetEstimator::Config config;
        config.window = 16;
        config.max_drift_ppm = drifts[trial % 4];
        std::unique_ptr<OffsetEstimator> estimator;
        REQUIRE(OffsetEstimator::create(config, estimator) == 0);
        const auto max_ppb = static_cast<std::int64_t>(config.max_drift_ppm * 1000);
        PeerClock clock{static_cast<Femtos>(static_cast<std::int64_t>(rng() % 2'000'000) - 1'000'000) * kFsPerUs,
                        static_cast<std::int64_t>(rng() % (2 * max_ppb + 1)) - max_ppb};
        // Irregular, often overlapping exchanges: many hull shapes, interleaved ceilings and floors.
        DelayModel delays{static_cast<double>(rng() % 300), static_cast<double>(rng() % 300),
                          static_cast<double>(1 + rng() % 200), 5, 3000};
        Simulation sim(clock, delays, static_cast<Femtos>(1 + rng() % 3000) * kFsPerUs, rng());
        // Every third window has coarse local stamps (t1 rounded down, t4 up, to 500 us: still true constraints),
        // so several exchanges share a t1 or a t4, as replies stamped by one batched receive do.
        const bool coarse = trial % 3 == 0;
        const Femtos grid = 500 * kFsPerUs;
        std::vector<OffsetEstimator::Exchange> window;
        const int count = 1 + static_cast<int>(rng() % 12);
        for (int i = 0; i < count; ++i) {
            OffsetEstimator::Exchange x = sim.next().exchange;
            if (coarse) {
                x.t1 = at(kStart + cf::time_detail::floor_div(x.t1.femtos() - kStart, grid) * grid);
                x.t4 = at(kStart - cf::time_detail::floor_div(kStart - x.t4.femtos(), grid) * grid);
            }
            window.push_back(x);
            REQUIRE(estimator->add(window.back()) == 0);
        }
        REQUIRE(estimator->restarts() == 0);
        const Femtos first = window.front().t1.femtos(), last = window.back().t4.femtos();
        for (const Femtos query : {first - 10 * kFsPerMs, first + (last - first) / 3, last, last + kFsPerS}) {
            const Reference ref = brute_force(window, config.max_drift_ppm, query);
            REQUIRE(ref.feasible);
            const auto e = estimator->estimate_at(at(query));
            // Femtoseconds apart at most (long double rounding against double rounding), on microsecond bounds.
            CHECK(std::fabs(static_cast<long double>(e.offset_low.femtos()) - ref.low) <= 1000);
            CHECK(std::fabs(static_cast<long double>(e.offset_high.femtos()) - ref.high) <= 1000);
            CHECK(std::fabs(e.drift_low_ppm - static_cast<double>(ref.drift_low * 1e6L)) <= 1e-6);
            CHECK(std::fabs(e.drift_high_ppm - static_cast<double>(ref.drift_high * 1e6L)) <= 1e-6);
            // And the estimate sits inside, with the bound reaching the far end plus the margin.
            CHECK(e.offset >= e.offset_low);
            CHECK(e.offset <= e.offset_high);
            const Femtos spread = std::max(e.offset - e.offset_low, e.offset_high - e.offset).femtos() +
                                  OffsetEstimator::kRoundingMargin.femtos();
            CHECK(e.bound.femtos() >= spread);
            CHECK(e.bound.femtos() <= spread + 1000);   // the margin's distance term: femtoseconds here
            ++compared;
        }
    }
    MESSAGE(compared << " windows x queries compared with the brute-force LP");
}

TEST_CASE("a restart drops the fewest oldest exchanges that leave a fitting window, as the brute-force LP says") {
    std::mt19937_64 rng(0x5E7);
    int restarted = 0, kept_all = 0;
    for (int trial = 0; trial < 300; ++trial) {
        OffsetEstimator::Config config;
        config.window = 16;
        config.max_drift_ppm = 100;
        std::unique_ptr<OffsetEstimator> estimator;
        REQUIRE(OffsetEstimator::create(config, estimator) == 0);
        const PeerClock clock{static_cast<Femtos>(rng() % 1'000'000) * kFsPerUs,
                              static_cast<std::int64_t>(rng() % 200'001) - 100'000};
        Simulation sim(clock, {20, 20, 5, 0, 0}, static_cast<Femtos>(1 + rng() % 20) * kFsPerMs, rng());
        std::vector<OffsetEstimator::Exchange> window;
        const int count = 2 + static_cast<int>(rng() % 10);
        for (int i = 0; i < count; ++i) {
            window.push_back(sim.next().exchange);
            REQUIRE(estimator->add(window.back()) == 0);
        }
        REQUIRE(estimator->restarts() == 0);
        // The newest exchange's peer stamps are both late by up to 200 us: its floor rises above the truth by as
        // much, which some windows absorb by tilting the line and others cannot.
        OffsetEstimator::Exchange late = sim.next().exchange;
        const Duration shift = Duration::from_nanos(static_cast<std::int64_t>(rng() % 200'000));
        late.t2 += shift;
        late.t3 += shift;
        window.push_back(late);
        REQUIRE(estimator->add(late) == 0);
        std::size_t drop = 0;
        while (!brute_force({window.begin() + static_cast<std::ptrdiff_t>(drop), window.end()},
                            config.max_drift_ppm, late.t4.femtos()).feasible) {
            ++drop;
        }
        CHECK(estimator->samples() == window.size() - drop);
        CHECK(estimator->restarts() == (drop > 0 ? 1u : 0u));
        (drop > 0 ? restarted : kept_all) += 1;
    }
    MESSAGE(restarted << " windows restarted, " << kept_all << " absorbed the late stamps");
    CHECK(restarted >= 30);
    CHECK(kept_all >= 30);
}
