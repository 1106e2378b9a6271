// A point in time: femtoseconds since 1970-01-01T00:00:00 of the clock's timescale (POSIX/UTC for CLOCK_REALTIME,
// TAI for CLOCK_TAI), as a signed 128-bit count with the same range and rounding rules as cf::Duration.
#pragma once

#include "engine/time/duration.hpp"

namespace cf {

class Instant {
public:
    constexpr Instant() noexcept = default;  // the epoch

    static constexpr Instant from_femtos(Femtos fs) noexcept { return Instant(time_detail::clamp(fs)); }
    // For hot paths whose arithmetic keeps the value in range by construction (no clamp).
    static constexpr Instant from_femtos_in_range(Femtos fs) noexcept { return Instant(fs); }
    static constexpr Instant from_unix_nanos(std::int64_t ns) noexcept {
        return Instant(Femtos{ns} * time_detail::kFemtosPerNano);
    }
    static constexpr Instant from_timespec(const timespec& ts) noexcept {
        return Instant(time_detail::from_timespec(ts));
    }
    static constexpr Instant epoch() noexcept { return Instant(); }
    static constexpr Instant max() noexcept { return Instant(time_detail::kMaxFemtos); }
    static constexpr Instant min() noexcept { return Instant(time_detail::kMinFemtos); }

    constexpr Femtos femtos() const noexcept { return fs_; }
    constexpr Duration since_epoch() const noexcept { return Duration::from_femtos(fs_); }
    constexpr timespec to_timespec() const noexcept { return time_detail::to_timespec(fs_); }
    // Whole nanoseconds since the epoch (floor); false beyond about +-292 years (int64 overflow).
    [[nodiscard]] constexpr bool to_unix_nanos(std::int64_t& ns) const noexcept {
        return time_detail::to_int64(fs_, time_detail::kFemtosPerNano, ns);
    }

    [[nodiscard]] static constexpr bool checked_add(Instant t, Duration d, Instant& out) noexcept {
        return assign_if_in_range(t.fs_ + d.femtos(), out);
    }
    [[nodiscard]] static constexpr bool checked_sub(Instant t, Duration d, Instant& out) noexcept {
        return assign_if_in_range(t.fs_ - d.femtos(), out);
    }
    [[nodiscard]] static constexpr bool checked_diff(Instant a, Instant b, Duration& out) noexcept {
        const Femtos diff = a.fs_ - b.fs_;
        if (!time_detail::in_range(diff)) return false;
        out = Duration::from_femtos(diff);
        return true;
    }

    constexpr Instant& operator+=(Duration d) noexcept { return *this = *this + d; }
    constexpr Instant& operator-=(Duration d) noexcept { return *this = *this - d; }
    friend constexpr Instant operator+(Instant t, Duration d) noexcept {
        return Instant(time_detail::clamp(t.fs_ + d.femtos()));
    }
    friend constexpr Instant operator-(Instant t, Duration d) noexcept {
        return Instant(time_detail::clamp(t.fs_ - d.femtos()));
    }
    friend constexpr Duration operator-(Instant a, Instant b) noexcept { return Duration::from_femtos(a.fs_ - b.fs_); }
    friend constexpr auto operator<=>(Instant, Instant) noexcept = default;

private:
    explicit constexpr Instant(Femtos fs) noexcept : fs_(fs) {}
    static constexpr bool assign_if_in_range(Femtos value, Instant& out) noexcept {
        if (!time_detail::in_range(value)) return false;
        out = Instant(value);
        return true;
    }

    Femtos fs_ = 0;
};

}  // namespace cf
