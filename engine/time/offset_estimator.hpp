// The clock offset of a peer engine from ours, from NTP-style four-timestamp exchanges, with a bound that holds.
//
// An exchange: t1 = we send (our clock), t2 = peer receives, t3 = peer sends (peer's clock), t4 = we receive.
// Model: remote(t) = t + theta(t) with theta(t) = theta0 + r * (t - t_ref) over the window (r = relative drift,
// |r| <= max_drift), and propagation delays >= 0. Then every exchange gives two exact linear constraints on the line
// theta, with no approximation even under skew (remote() is increasing because 1 + r > 0):
//     the request arrived at a >= t1, so t2 = remote(a) >= remote(t1):   theta(t1) <= t2 - t1   (an upper point)
//     the reply left at b <= t4, so t3 = remote(b) <= remote(t4):        theta(t4) >= t3 - t4   (a lower point)
// The lines (theta0, r) that satisfy every constraint of the window form a convex polygon (a 2-variable LP), and the
// true line is in it. At a query time t the true offset lies in [lo, hi] = [min, max] of theta(t) over the polygon,
// computed exactly: only the lower convex hull of the upper points and the upper convex hull of the lower points
// matter; walking the drift r across the hulls' edge slopes gives the polygon's vertices (the feasible drift range
// [r_lo, r_hi] is where the highest allowed line of slope r still clears the lowest one), and theta(t) is linear on
// the polygon, so its extremes are at those vertices. Slopes, gaps and line values are computed from exact
// femtosecond differences (128-bit), so doubles never hold an absolute time or the whole offset (3 days of offset
// cost no precision): each rounding is relative to a difference that matters.
//
// The point estimate: minimum-RTT filtering (the window, in local-time order, is cut into sub-windows of
// filter_group exchanges and the filter_keep with the smallest round trip (t4 - t1) - (t3 - t2), the least queued,
// are kept), then a least-squares line through their midpoint offsets ((t2 - t1) + (t3 - t4)) / 2 against their
// midpoint local times. Its slope, clamped into [r_lo, r_hi], is the drift estimate; its value at t, clamped into
// [lo, hi], is the offset estimate, and bound = max(estimate - lo, hi - estimate) + margin, so
// |true offset - estimate| <= bound holds by construction whenever the model holds. The margin is kRoundingMargin
// (1 ns) plus 2^-40 * max_drift * (distance of t from the window), many times the floating-point error (which is
// below 2^-50 of the same product, plus femtoseconds); timestamps themselves are taken as exact.
//
// One exchange already gives a bound (valid from the first sample): the max_drift assumption limits how fast the
// interval widens away from it. Far from the window the interval widens at up to 2 * max_drift per second.
//
// When no line fits the window any more (the drift changed, a clock stepped, or a timestamp was wrong), add() drops
// the oldest samples until one does (fewest dropped, by bisection: a subset of a feasible set is feasible) and counts
// a restart. A step smaller than what max_drift allows across the window (max_drift * window span) can go
// unnoticed, and an exchange in flight across a step fits neither line: both belong to the caller's assumptions.
// Malformed exchanges are refused and counted: t4 < t1, t3 < t2, or a peer hold t3 - t2 longer than the round trip
// t4 - t1 allows at the largest drift, (1 + max_drift) * (t4 - t1) (so every accepted exchange fits some line).
//
// Cost: create() allocates every array (sized by the window); add() is O(n log n) for a window of n (a sort and two
// hulls, times log n on a restart) and estimate_at() O(h) for the h hull vertices, without allocating. Not
// thread-safe: one shard owns an estimator.
#pragma once

#include <cstdint>
#include <memory>

#include "engine/time/instant.hpp"

namespace cf {

class OffsetEstimator {
public:
    static constexpr std::uint32_t kMinWindow = 8;
    static constexpr std::uint32_t kMaxWindow = 4096;
    static constexpr double kMaxDriftPpmLimit = 100'000;    // 10 %: beyond it the clocks are not clocks
    static constexpr Duration kRoundingMargin = Duration::from_nanos(1);

    struct Config {
        std::uint32_t window = 128;        // exchanges kept, the most recent ones, kMinWindow..kMaxWindow
        double max_drift_ppm = 500;        // assumed bound on |r|, 0..kMaxDriftPpmLimit (crystals: tens of ppm)
        std::uint32_t filter_group = 8;    // min-RTT filter: sub-windows of this many exchanges, 1..window,
        std::uint32_t filter_keep = 2;     // of which this many (the smallest round trips) feed the regression
    };

    struct Exchange {
        Instant t1, t2, t3, t4;   // t1, t4 on our clock; t2, t3 on the peer's
    };

    struct Estimate {
        bool valid = false;        // false until the first sample
        Instant at;                // the local time asked about
        Duration offset;           // remote - local at `at`
        Duration bound;            // |true offset - offset| <= bound while the model holds
        Duration offset_low;       // the exact interval the true offset lies in (bound already covers it)
        Duration offset_high;
        double drift_ppm = 0;      // (remote rate / local rate - 1) * 1e6, inside [drift_low_ppm, drift_high_ppm]
        double drift_low_ppm = 0;  // every drift consistent with the window
        double drift_high_ppm = 0;
        Duration best_rtt;         // smallest round trip in the window
        std::uint32_t samples = 0; // exchanges in the window
    };

    // Allocates everything the estimator will ever use. 0, or -EINVAL (a field out of range) / -ENOMEM, with
    // last_error_message() saying why; `out` is empty on failure.
    static int create(const Config& config, std::unique_ptr<OffsetEstimator>& out) noexcept;

    OffsetEstimator(const OffsetEstimator&) = delete;
    OffsetEstimator& operator=(const OffsetEstimator&) = delete;
    ~OffsetEstimator();

    // Adds one exchange, dropping the oldest one when the window is full (and more on a restart). 0, or -EINVAL for
    // a malformed exchange: counted in rejected(), message set, nothing else changes.
    int add(const Exchange& exchange) noexcept;

    // The offset at local time `local_time` (inside the window, or extrapolated along the drift). Not valid before
    // the first sample.
    Estimate estimate_at(Instant local_time) const noexcept;

    // The local time at which the peer's clock read `remote` (e.g. a peer's send timestamp, for one-way latency),
    // and a bound on that local time's error: the peer's clock runs at 1 + r >= 1 - max_drift of ours, so an
    // offset error e at the answer is a local-time error of at most e / (1 - max_drift). 0, or -EAGAIN with no
    // samples yet.
    int remote_to_local(Instant remote, Instant& local, Duration& bound) const noexcept;

    // Forgets every sample (after a known clock change); the counters stay.
    void reset() noexcept;

    std::uint64_t accepted() const noexcept { return accepted_; }
    std::uint64_t rejected() const noexcept { return rejected_; }
    std::uint64_t restarts() const noexcept { return restarts_; }
    std::uint32_t samples() const noexcept { return count_; }
    const Config& config() const noexcept { return config_; }

private:
    // up = t2 - t1: theta(t1) <= up.  low = t3 - t4: theta(t4) >= low.  round trip = up - low.
    struct Sample {
        Femtos t1, t4, up, low;
    };
    struct Point {
        Femtos x, y;
    };
    // A vertex of the feasible polygon, kept as the drift and a point each extreme line runs through: the highest
    // line of that drift through `top`, the lowest through `bottom`.
    struct Vertex {
        double slope;
        Point top, bottom;
    };

    explicit OffsetEstimator(const Config& config) noexcept;
    const Sample& sample_at(std::uint32_t i) const noexcept { return ring_[(head_ + i) % config_.window]; }
    // Builds the hulls and the polygon of samples skip..count_-1; false when no line fits them.
    bool solve(std::uint32_t skip) noexcept;
    void fit_regression() noexcept;
    // The estimate at `t` in femtoseconds: offset, interval and the bound.
    void evaluate(Femtos t, Femtos& offset, Femtos& low, Femtos& high, Femtos& bound) const noexcept;
    int reject(const char* why) noexcept;

    Config config_;
    double max_drift_;   // max_drift_ppm * 1e-6

    std::unique_ptr<Sample[]> ring_;        // arrival order, count_ of them from head_
    std::unique_ptr<Sample[]> sorted_;      // the solved samples by t1
    std::unique_ptr<Point[]> upper_points_; // (t1, up) by t1
    std::unique_ptr<Point[]> lower_points_; // (t4, low) by t4
    std::unique_ptr<Point[]> hull_up_;      // lower convex hull of the (t1, up) points
    std::unique_ptr<Point[]> hull_low_;     // upper convex hull of the (t4, low) points
    std::unique_ptr<double[]> slopes_up_;   // edge slopes of hull_up_ (ascending)
    std::unique_ptr<double[]> slopes_low_;  // edge slopes of hull_low_ (descending)
    std::unique_ptr<double[]> breaks_;      // candidate drifts: -max, hull slopes in between, +max
    std::unique_ptr<Vertex[]> vertices_;
    std::unique_ptr<std::uint32_t[]> order_;   // filter scratch
    std::unique_ptr<std::uint32_t[]> kept_;    // indices into sorted_ that feed the regression

    std::uint32_t head_ = 0;
    std::uint32_t count_ = 0;
    std::uint32_t hull_up_size_ = 0;
    std::uint32_t hull_low_size_ = 0;
    std::uint32_t vertex_count_ = 0;
    std::uint32_t kept_count_ = 0;

    double drift_low_ = 0;
    double drift_high_ = 0;
    double drift_ = 0;
    Point anchor_{};       // the regression line passes through it (the centroid of the kept midpoints)
    Femtos first_x_ = 0;   // local-time span of the window
    Femtos last_x_ = 0;
    Femtos best_rtt_ = 0;

    std::uint64_t accepted_ = 0;
    std::uint64_t rejected_ = 0;
    std::uint64_t restarts_ = 0;
};

}  // namespace cf
