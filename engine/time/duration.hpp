// A span of time in femtoseconds, stored as a signed 128-bit count.
//
// Range: +-(2^63 - 1) seconds plus the sub-second part (about +-292 billion years), so every timespec is
// representable exactly and sums of two in-range values cannot overflow the 128-bit storage.
// Resolution is 1 fs; what a measurement is worth is the clock's accuracy, not this type's resolution.
//
// Arithmetic comes in two kinds: the operators saturate at the range limits (defined behaviour, never UB),
// and the checked_* functions report overflow instead. Conversions that may not fit (to int64 nanoseconds
// beyond +-292 years) are checked; conversions to coarser units round toward negative infinity, so a
// timespec is always normalised (0 <= tv_nsec < 1e9) and whole-nanosecond values round-trip exactly.
#pragma once

#include <compare>
#include <cstdint>
#include <ctime>

namespace cf {

__extension__ using Femtos = __int128;

namespace time_detail {

inline constexpr Femtos kFemtosPerSecond = 1'000'000'000'000'000;
inline constexpr Femtos kFemtosPerNano = 1'000'000;
inline constexpr Femtos kMaxFemtos = Femtos{INT64_MAX} * kFemtosPerSecond + (kFemtosPerSecond - 1);
inline constexpr Femtos kMinFemtos = -kMaxFemtos;

constexpr bool in_range(Femtos value) noexcept { return value >= kMinFemtos && value <= kMaxFemtos; }
constexpr Femtos clamp(Femtos value) noexcept {
    return value > kMaxFemtos ? kMaxFemtos : (value < kMinFemtos ? kMinFemtos : value);
}
// Floor division and its non-negative remainder (C++ '/' truncates toward zero).
constexpr Femtos floor_div(Femtos value, Femtos divisor) noexcept {
    const Femtos quotient = value / divisor;
    return (value % divisor != 0 && value < 0) ? quotient - 1 : quotient;
}
constexpr Femtos floor_mod(Femtos value, Femtos divisor) noexcept { return value - floor_div(value, divisor) * divisor; }

constexpr timespec to_timespec(Femtos value) noexcept {
    timespec ts{};
    ts.tv_sec = static_cast<std::time_t>(floor_div(value, kFemtosPerSecond));
    ts.tv_nsec = static_cast<long>(floor_mod(value, kFemtosPerSecond) / kFemtosPerNano);
    return ts;
}
// Exact for any timespec, normalised or not: |tv_sec| * 1e15 + |tv_nsec| * 1e6 stays far inside 128 bits.
constexpr Femtos from_timespec(const timespec& ts) noexcept {
    return clamp(Femtos{ts.tv_sec} * kFemtosPerSecond + Femtos{ts.tv_nsec} * kFemtosPerNano);
}
constexpr bool to_int64(Femtos value, Femtos unit, std::int64_t& out) noexcept {
    const Femtos units = floor_div(value, unit);
    if (units > INT64_MAX || units < INT64_MIN) return false;
    out = static_cast<std::int64_t>(units);
    return true;
}

}  // namespace time_detail

class Duration {
public:
    constexpr Duration() noexcept = default;

    static constexpr Duration from_femtos(Femtos fs) noexcept { return Duration(time_detail::clamp(fs)); }
    static constexpr Duration from_picos(std::int64_t ps) noexcept { return Duration(Femtos{ps} * 1'000); }
    static constexpr Duration from_nanos(std::int64_t ns) noexcept { return Duration(Femtos{ns} * 1'000'000); }
    static constexpr Duration from_micros(std::int64_t us) noexcept { return Duration(Femtos{us} * 1'000'000'000); }
    static constexpr Duration from_millis(std::int64_t ms) noexcept {
        return Duration(Femtos{ms} * 1'000'000'000'000);
    }
    static constexpr Duration from_seconds(std::int64_t s) noexcept {
        return Duration(Femtos{s} * time_detail::kFemtosPerSecond);
    }
    static constexpr Duration from_timespec(const timespec& ts) noexcept {
        return Duration(time_detail::from_timespec(ts));
    }
    static constexpr Duration zero() noexcept { return Duration(); }
    static constexpr Duration max() noexcept { return Duration(time_detail::kMaxFemtos); }
    static constexpr Duration min() noexcept { return Duration(time_detail::kMinFemtos); }

    constexpr Femtos femtos() const noexcept { return fs_; }
    constexpr timespec to_timespec() const noexcept { return time_detail::to_timespec(fs_); }
    // Whole nanoseconds (floor); false when the result does not fit in int64 (beyond about +-292 years).
    [[nodiscard]] constexpr bool to_nanos(std::int64_t& ns) const noexcept {
        return time_detail::to_int64(fs_, time_detail::kFemtosPerNano, ns);
    }
    // For reports and statistics, not for arithmetic: doubles lose femtoseconds beyond about 9 seconds.
    constexpr double to_nanos_f64() const noexcept { return static_cast<double>(fs_) / 1e6; }
    constexpr double to_seconds_f64() const noexcept { return static_cast<double>(fs_) / 1e15; }

    [[nodiscard]] static constexpr bool checked_add(Duration a, Duration b, Duration& out) noexcept {
        return assign_if_in_range(a.fs_ + b.fs_, out);
    }
    [[nodiscard]] static constexpr bool checked_sub(Duration a, Duration b, Duration& out) noexcept {
        return assign_if_in_range(a.fs_ - b.fs_, out);
    }
    [[nodiscard]] static constexpr bool checked_mul(Duration a, std::int64_t factor, Duration& out) noexcept {
        Femtos product = 0;
        if (__builtin_mul_overflow(a.fs_, Femtos{factor}, &product)) return false;
        return assign_if_in_range(product, out);
    }

    constexpr Duration operator-() const noexcept { return Duration(-fs_); }  // the range is symmetric
    constexpr Duration& operator+=(Duration other) noexcept { return *this = *this + other; }
    constexpr Duration& operator-=(Duration other) noexcept { return *this = *this - other; }
    friend constexpr Duration operator+(Duration a, Duration b) noexcept {
        return Duration(time_detail::clamp(a.fs_ + b.fs_));
    }
    friend constexpr Duration operator-(Duration a, Duration b) noexcept {
        return Duration(time_detail::clamp(a.fs_ - b.fs_));
    }
    friend constexpr Duration operator*(Duration a, std::int64_t factor) noexcept {
        Duration out;
        if (checked_mul(a, factor, out)) return out;
        return ((a.fs_ < 0) != (factor < 0)) ? min() : max();
    }
    // Truncates toward zero like integer division; dividing by zero saturates instead of trapping.
    friend constexpr Duration operator/(Duration a, std::int64_t divisor) noexcept {
        if (divisor == 0) return a.fs_ < 0 ? min() : (a.fs_ > 0 ? max() : zero());
        return Duration(a.fs_ / divisor);
    }
    friend constexpr auto operator<=>(Duration, Duration) noexcept = default;

private:
    explicit constexpr Duration(Femtos fs) noexcept : fs_(fs) {}
    static constexpr bool assign_if_in_range(Femtos value, Duration& out) noexcept {
        if (!time_detail::in_range(value)) return false;
        out = Duration(value);
        return true;
    }

    Femtos fs_ = 0;
};

}  // namespace cf
