#include "engine/time/offset_estimator.hpp"

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <functional>
#include <new>

#include "platform/os/last_error.hpp"

namespace cf {
namespace {

// A gap within this many femtoseconds below zero still counts as met. The gap is computed from exact differences,
// so its rounding is far below this; a real violation of the model is far above it.
constexpr double kGapTolerance = 1.0;

double to_double(Femtos value) noexcept { return static_cast<double>(value); }

// Nearest femtosecond, saturating far beyond every Instant instead of overflowing the conversion.
Femtos to_femtos(double value) noexcept {
    constexpr double kLimit = 1e36;
    if (std::isnan(value)) return 0;
    return static_cast<Femtos>(std::clamp(std::round(value), -kLimit, kLimit));
}

// theta(x) on the line through `anchor` with slope `slope`. Only the product is rounded (to about 2^-53 of it).
template <typename P>
Femtos line_at(const P& anchor, double slope, Femtos x) noexcept {
    return anchor.y + to_femtos(slope * to_double(x - anchor.x));
}

// > 0 when o -> a -> b turns counter-clockwise. Differences are exact; rounding can only misjudge points within
// about 2^-52 of a hull edge, which moves a bound by as little.
template <typename P>
double cross(const P& o, const P& a, const P& b) noexcept {
    return to_double(a.x - o.x) * to_double(b.y - o.y) - to_double(a.y - o.y) * to_double(b.x - o.x);
}

// Lower convex hull of points sorted by x, equal x by ascending y (the lowest of equal x is the one that binds).
template <typename P>
std::uint32_t lower_hull(const P* points, std::uint32_t n, P* hull) noexcept {
    std::uint32_t m = 0;
    for (std::uint32_t i = 0; i < n; ++i) {
        if (i > 0 && points[i].x == points[i - 1].x) continue;
        while (m >= 2 && cross(hull[m - 2], hull[m - 1], points[i]) <= 0) --m;
        hull[m++] = points[i];
    }
    return m;
}

// Upper convex hull of points sorted by x, equal x by descending y.
template <typename P>
std::uint32_t upper_hull(const P* points, std::uint32_t n, P* hull) noexcept {
    std::uint32_t m = 0;
    for (std::uint32_t i = 0; i < n; ++i) {
        if (i > 0 && points[i].x == points[i - 1].x) continue;
        while (m >= 2 && cross(hull[m - 2], hull[m - 1], points[i]) >= 0) --m;
        hull[m++] = points[i];
    }
    return m;
}

template <typename P>
void edge_slopes(const P* hull, std::uint32_t size, double* slopes) noexcept {
    for (std::uint32_t k = 0; k + 1 < size; ++k) {
        slopes[k] = to_double(hull[k + 1].y - hull[k].y) / to_double(hull[k + 1].x - hull[k].x);
    }
}

// The vertex where a line of slope r touches a lower hull from below: the first whose right edge rises at least r.
std::uint32_t support_below(const double* slopes, std::uint32_t size, double r) noexcept {
    return static_cast<std::uint32_t>(std::lower_bound(slopes, slopes + (size - 1), r) - slopes);
}

// The vertex where a line of slope r touches an upper hull from above (edge slopes descend).
std::uint32_t support_above(const double* slopes, std::uint32_t size, double r) noexcept {
    return static_cast<std::uint32_t>(std::lower_bound(slopes, slopes + (size - 1), r, std::greater<double>()) -
                                      slopes);
}

// How far the highest allowed line of slope r (through `top`) clears the lowest required one (through `bottom`):
// (top.y - r top.x) - (bottom.y - r bottom.x). Out of line so that add()'s check of a single exchange and solve()
// compute it with the very same instructions.
template <typename P>
[[gnu::noinline]] double gap(const P& top, const P& bottom, double r) noexcept {
    return to_double(top.y - bottom.y) + r * to_double(bottom.x - top.x);
}

}  // namespace

OffsetEstimator::OffsetEstimator(const Config& config) noexcept
    : config_(config), max_drift_(config.max_drift_ppm * 1e-6) {}

OffsetEstimator::~OffsetEstimator() = default;

int OffsetEstimator::create(const Config& config, std::unique_ptr<OffsetEstimator>& out) noexcept {
    out.reset();
    if (config.window < kMinWindow || config.window > kMaxWindow) {
        return platform::fail(EINVAL, "offset estimator: window %u (%u..%u allowed)", config.window, kMinWindow,
                              kMaxWindow);
    }
    if (!(config.max_drift_ppm >= 0 && config.max_drift_ppm <= kMaxDriftPpmLimit)) {
        return platform::fail(EINVAL, "offset estimator: max_drift_ppm %g (0..%g allowed)", config.max_drift_ppm,
                              kMaxDriftPpmLimit);
    }
    if (config.filter_group == 0 || config.filter_group > config.window) {
        return platform::fail(EINVAL, "offset estimator: filter_group %u (1..window = %u allowed)",
                              config.filter_group, config.window);
    }
    if (config.filter_keep == 0 || config.filter_keep > config.filter_group) {
        return platform::fail(EINVAL, "offset estimator: filter_keep %u (1..filter_group = %u allowed)",
                              config.filter_keep, config.filter_group);
    }

    std::unique_ptr<OffsetEstimator> created(new (std::nothrow) OffsetEstimator(config));
    if (!created) return platform::fail(ENOMEM, "offset estimator: out of memory");
    OffsetEstimator& e = *created;
    const std::size_t n = config.window;
    const std::size_t breaks = 2 * n + 2;    // +-max and at most n - 1 edge slopes per hull
    const std::size_t vertices = breaks + 2; // and the two ends of the feasible drift range
    e.ring_.reset(new (std::nothrow) Sample[n]);
    e.sorted_.reset(new (std::nothrow) Sample[n]);
    e.upper_points_.reset(new (std::nothrow) Point[n]);
    e.lower_points_.reset(new (std::nothrow) Point[n]);
    e.hull_up_.reset(new (std::nothrow) Point[n]);
    e.hull_low_.reset(new (std::nothrow) Point[n]);
    e.slopes_up_.reset(new (std::nothrow) double[n]);
    e.slopes_low_.reset(new (std::nothrow) double[n]);
    e.breaks_.reset(new (std::nothrow) double[breaks]);
    e.vertices_.reset(new (std::nothrow) Vertex[vertices]);
    e.order_.reset(new (std::nothrow) std::uint32_t[n]);
    e.kept_.reset(new (std::nothrow) std::uint32_t[n]);
    if (!e.ring_ || !e.sorted_ || !e.upper_points_ || !e.lower_points_ || !e.hull_up_ || !e.hull_low_ ||
        !e.slopes_up_ || !e.slopes_low_ || !e.breaks_ || !e.vertices_ || !e.order_ || !e.kept_) {
        return platform::fail(ENOMEM, "offset estimator: out of memory for a window of %u", config.window);
    }
    out = std::move(created);
    return 0;
}

int OffsetEstimator::reject(const char* why) noexcept {
    ++rejected_;
    return platform::fail(EINVAL, "offset estimator: exchange rejected: %s", why);
}

void OffsetEstimator::reset() noexcept {
    head_ = 0;
    count_ = 0;
    vertex_count_ = 0;
    kept_count_ = 0;
}

int OffsetEstimator::add(const Exchange& exchange) noexcept {
    if (exchange.t4 < exchange.t1) return reject("t4 (reply received) is before t1 (request sent)");
    if (exchange.t3 < exchange.t2) return reject("t3 (peer sent) is before t2 (peer received)");
    // Raw differences: every Instant is within +-2^113 fs, so they cannot overflow, and Duration would saturate.
    const Sample sample{exchange.t1.femtos(), exchange.t4.femtos(), exchange.t2.femtos() - exchange.t1.femtos(),
                        exchange.t3.femtos() - exchange.t4.femtos()};
    // Alone, the exchange fits a line iff its gap at the steepest allowed drift is >= 0, which is exactly
    // (t3 - t2) <= (1 + max_drift) * (t4 - t1). Same test as solve() makes, so an accepted exchange always fits.
    if (gap(Point{sample.t1, sample.up}, Point{sample.t4, sample.low}, max_drift_) < -kGapTolerance) {
        return reject("the peer held the probe longer than the round trip allows at max_drift_ppm");
    }

    const std::uint32_t window = config_.window;
    if (count_ == window) {
        head_ = (head_ + 1) % window;
        --count_;
    }
    ring_[(head_ + count_) % window] = sample;
    ++count_;
    ++accepted_;

    if (!solve(0)) {
        // Fewest oldest samples to drop: feasibility only grows as samples go, and the newest alone fits.
        std::uint32_t low = 1, high = count_ - 1;
        while (low < high) {
            const std::uint32_t middle = low + (high - low) / 2;
            if (solve(middle)) {
                high = middle;
            } else {
                low = middle + 1;
            }
        }
        head_ = (head_ + low) % window;
        count_ -= low;
        ++restarts_;
        if (!solve(0)) {   // unreachable: the newest exchange passed the very same test above
            reset();
            return platform::fail(EPROTO, "offset estimator: a single exchange does not fit (internal error)");
        }
    }
    fit_regression();
    return 0;
}

bool OffsetEstimator::solve(std::uint32_t skip) noexcept {
    const std::uint32_t n = count_ - skip;
    for (std::uint32_t i = 0; i < n; ++i) sorted_[i] = sample_at(skip + i);
    std::sort(sorted_.get(), sorted_.get() + n,
              [](const Sample& a, const Sample& b) { return a.t1 != b.t1 ? a.t1 < b.t1 : a.up < b.up; });
    for (std::uint32_t i = 0; i < n; ++i) {
        upper_points_[i] = {sorted_[i].t1, sorted_[i].up};
        lower_points_[i] = {sorted_[i].t4, sorted_[i].low};
    }
    std::sort(lower_points_.get(), lower_points_.get() + n,
              [](const Point& a, const Point& b) { return a.x != b.x ? a.x < b.x : a.y > b.y; });

    // Only the lower hull of the ceilings and the upper hull of the floors can bind a line.
    hull_up_size_ = lower_hull(upper_points_.get(), n, hull_up_.get());
    hull_low_size_ = upper_hull(lower_points_.get(), n, hull_low_.get());
    edge_slopes(hull_up_.get(), hull_up_size_, slopes_up_.get());
    edge_slopes(hull_low_.get(), hull_low_size_, slopes_low_.get());

    // Candidate drifts: between two consecutive ones the touching vertices do not change, so the gap (highest
    // allowed minus lowest required line) is linear there and concave overall: it is >= 0 on one interval of r.
    std::uint32_t breaks = 0;
    breaks_[breaks++] = -max_drift_;
    for (std::uint32_t k = 0; k + 1 < hull_up_size_; ++k) {
        if (slopes_up_[k] > -max_drift_ && slopes_up_[k] < max_drift_) breaks_[breaks++] = slopes_up_[k];
    }
    for (std::uint32_t k = 0; k + 1 < hull_low_size_; ++k) {
        if (slopes_low_[k] > -max_drift_ && slopes_low_[k] < max_drift_) breaks_[breaks++] = slopes_low_[k];
    }
    breaks_[breaks++] = max_drift_;
    std::sort(breaks_.get() + 1, breaks_.get() + breaks - 1);

    auto top_at = [&](double r) -> const Point& { return hull_up_[support_below(slopes_up_.get(), hull_up_size_, r)]; };
    auto bottom_at = [&](double r) -> const Point& {
        return hull_low_[support_above(slopes_low_.get(), hull_low_size_, r)];
    };
    std::uint32_t first = breaks, last = 0;
    for (std::uint32_t k = 0; k < breaks; ++k) {
        if (gap(top_at(breaks_[k]), bottom_at(breaks_[k]), breaks_[k]) >= -kGapTolerance) {
            if (first == breaks) first = k;
            last = k;
        }
    }
    if (first == breaks) return false;

    // The polygon's vertices, by ascending drift. Where the feasible range ends inside a segment, the highest and
    // the lowest line meet: the line through the two touching points.
    vertex_count_ = 0;
    auto add_crossing = [&](double from, double to, double fallback) {
        const double middle = from + (to - from) / 2;
        const Point& top = top_at(middle);
        const Point& bottom = bottom_at(middle);
        const Femtos dx = bottom.x - top.x;
        const double r = dx != 0 ? to_double(bottom.y - top.y) / to_double(dx) : fallback;
        vertices_[vertex_count_++] = {std::clamp(r, from, to), top, bottom};
    };
    if (first > 0) add_crossing(breaks_[first - 1], breaks_[first], breaks_[first]);
    for (std::uint32_t k = first; k <= last; ++k) {
        vertices_[vertex_count_++] = {breaks_[k], top_at(breaks_[k]), bottom_at(breaks_[k])};
    }
    if (last + 1 < breaks) add_crossing(breaks_[last], breaks_[last + 1], breaks_[last]);
    drift_low_ = vertices_[0].slope;
    drift_high_ = vertices_[vertex_count_ - 1].slope;
    return true;
}

void OffsetEstimator::fit_regression() noexcept {
    const std::uint32_t n = count_;   // sorted_ holds the window by t1: solve(0) ran last
    const auto round_trip = [&](std::uint32_t i) { return sorted_[i].up - sorted_[i].low; };
    best_rtt_ = round_trip(0);
    first_x_ = sorted_[0].t1;
    last_x_ = sorted_[0].t4;
    for (std::uint32_t i = 1; i < n; ++i) {
        best_rtt_ = std::min(best_rtt_, round_trip(i));
        last_x_ = std::max(last_x_, sorted_[i].t4);
    }

    // Minimum-RTT filter: the least queued exchanges of each sub-window.
    kept_count_ = 0;
    const std::uint32_t group = config_.filter_group;
    for (std::uint32_t start = 0; start < n; start += group) {
        const std::uint32_t size = std::min(group, n - start);
        const std::uint32_t keep = std::min(config_.filter_keep, size);
        for (std::uint32_t j = 0; j < size; ++j) order_[j] = start + j;
        std::partial_sort(order_.get(), order_.get() + keep, order_.get() + size,
                          [&](std::uint32_t a, std::uint32_t b) { return round_trip(a) < round_trip(b); });
        for (std::uint32_t j = 0; j < keep; ++j) kept_[kept_count_++] = order_[j];
    }

    // Least squares of the midpoint offsets against the midpoint times, relative to the first kept exchange.
    const auto mid_x = [&](std::uint32_t i) { return sorted_[i].t1 + (sorted_[i].t4 - sorted_[i].t1) / 2; };
    const auto mid_y = [&](std::uint32_t i) { return (sorted_[i].up + sorted_[i].low) / 2; };
    const Femtos x0 = mid_x(kept_[0]);
    const Femtos y0 = mid_y(kept_[0]);
    double sum_x = 0, sum_y = 0;
    for (std::uint32_t j = 0; j < kept_count_; ++j) {
        sum_x += to_double(mid_x(kept_[j]) - x0);
        sum_y += to_double(mid_y(kept_[j]) - y0);
    }
    const double mean_x = sum_x / kept_count_;
    const double mean_y = sum_y / kept_count_;
    double sxx = 0, sxy = 0;
    for (std::uint32_t j = 0; j < kept_count_; ++j) {
        const double dx = to_double(mid_x(kept_[j]) - x0) - mean_x;
        const double dy = to_double(mid_y(kept_[j]) - y0) - mean_y;
        sxx += dx * dx;
        sxy += dx * dy;
    }
    const double slope = sxx > 0 ? sxy / sxx : 0;
    drift_ = std::clamp(slope, drift_low_, drift_high_);
    anchor_ = {x0 + to_femtos(mean_x), y0 + to_femtos(mean_y)};   // the fit runs through the centroid
}

void OffsetEstimator::evaluate(Femtos t, Femtos& offset, Femtos& low, Femtos& high, Femtos& bound) const noexcept {
    high = line_at(vertices_[0].top, vertices_[0].slope, t);
    low = line_at(vertices_[0].bottom, vertices_[0].slope, t);
    for (std::uint32_t k = 1; k < vertex_count_; ++k) {
        high = std::max(high, line_at(vertices_[k].top, vertices_[k].slope, t));
        low = std::min(low, line_at(vertices_[k].bottom, vertices_[k].slope, t));
    }
    if (high < low) std::swap(low, high);   // a polygon thinner than the gap tolerance, rounded inside out
    offset = std::clamp(line_at(anchor_, drift_, t), low, high);
    // Rounding grows with |slope * (t - anchor)|, anchors lying in the window: cover it many times over.
    const double reach = std::fabs(to_double(t - first_x_)) + std::fabs(to_double(t - last_x_));
    const Femtos margin = kRoundingMargin.femtos() + to_femtos(std::ceil(max_drift_ * reach * 0x1p-40));
    bound = std::max(offset - low, high - offset) + margin;
}

OffsetEstimator::Estimate OffsetEstimator::estimate_at(Instant local_time) const noexcept {
    Estimate estimate;
    estimate.at = local_time;
    estimate.samples = count_;
    if (count_ == 0) return estimate;
    Femtos offset, low, high, bound;
    evaluate(local_time.femtos(), offset, low, high, bound);
    estimate.valid = true;
    estimate.offset = Duration::from_femtos(offset);
    estimate.bound = Duration::from_femtos(bound);
    estimate.offset_low = Duration::from_femtos(low);
    estimate.offset_high = Duration::from_femtos(high);
    estimate.drift_ppm = drift_ * 1e6;
    estimate.drift_low_ppm = drift_low_ * 1e6;
    estimate.drift_high_ppm = drift_high_ * 1e6;
    estimate.best_rtt = Duration::from_femtos(best_rtt_);
    return estimate;
}

int OffsetEstimator::remote_to_local(Instant remote, Instant& local, Duration& bound) const noexcept {
    if (count_ == 0) return platform::fail(EAGAIN, "offset estimator: no exchanges yet");
    // Solve t + offset(t) = remote by fixed-point iteration: offset(t) changes by at most max_drift per unit of t,
    // so every step shrinks the error by that factor. Whatever is left is counted in the bound below.
    const Femtos target = remote.femtos();
    Femtos offset, low, high, error;
    evaluate(last_x_, offset, low, high, error);
    Femtos t = target - offset;
    for (int i = 0; i < 8; ++i) {
        evaluate(t, offset, low, high, error);
        const Femtos next = target - offset;
        if (next == t) break;
        t = next;
    }
    evaluate(t, offset, low, high, error);
    // The peer's clock reads t + theta(t) at t, with |theta(t) - offset| <= error, and advances at >= 1 - max_drift
    // per unit of ours, so it reads `remote` within (|residual| + error) / (1 - max_drift) of t.
    Femtos residual = target - t - offset;
    if (residual < 0) residual = -residual;
    const double scaled = to_double(residual + error) / (1.0 - max_drift_);
    local = Instant::from_femtos(t);
    bound = Duration::from_femtos(to_femtos(std::ceil(scaled)) + 1);   // +1 fs: the conversion and the division
    return 0;
}

}  // namespace cf
