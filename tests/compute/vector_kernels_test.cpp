// compute/: dot, axpy and gemv on every ISA this machine runs, against long-double references; the dispatcher
// (ISA names, forcing, CF_ISA); blas.hpp's argument checks.
//
// Tolerance. Every ISA computes the same sums, in different orders: scalar keeps 4 partial sums, AVX2 4 x 8
// (f32) or 4 x 4 (f64) lanes, AVX-512 4 x 16 / 4 x 8, NEON 4 x 4 / 4 x 2, gemv 8 vectors per 4 rows (dot form)
// or one running y per column block (axpy form), with or without fused multiply-adds. Whatever the order, a
// sum of k products, scaled by alpha and added to beta * y, is off by at most
//     gamma(k + 3) * (|alpha| * sum_i |a_i x_i| + |beta * y|),   gamma(j) = j u / (1 - j u), u = eps / 2
// (Higham, Accuracy and Stability of Numerical Algorithms, 3.1). The tests use (k + 3) * eps * (...) for every
// ISA: that bound with 2x headroom, eps = 2^-23 (f32) or 2^-52 (f64); axpy's one product and one sum give
// 2 * eps * (|alpha x| + |y|). That bound grows with k, so it cannot see one dropped or doubled element of a
// long f32 sum: the small-integer cases, whose sums are exact in every order, check each element counts once.
#include <doctest/doctest.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "engine/compute/blas.hpp"
#include "engine/compute/dispatch.hpp"
#include "engine/compute/kernels.hpp"
#include "platform/cpu/cpu_info.hpp"
#include "platform/os/last_error.hpp"

namespace c = cf::compute;
using cf::platform::IsaLevel;
using c::Layout;
using c::Transpose;

namespace {

constexpr IsaLevel kAllIsas[] = {IsaLevel::scalar, IsaLevel::avx2_fma, IsaLevel::avx512, IsaLevel::neon};
constexpr Layout kLayouts[] = {Layout::row_major, Layout::col_major};
constexpr Transpose kTransposes[] = {Transpose::none, Transpose::transpose};
constexpr double kScalars[] = {0.0, 1.0, -1.0, 0.37};   // alpha and beta
constexpr std::size_t kLongLengths[] = {1000, 4099, 100003};

bool message_contains(const char* text) { return std::strstr(cf::platform::last_error_message(), text) != nullptr; }

std::vector<IsaLevel> supported_isas() {
    std::vector<IsaLevel> isas;
    for (IsaLevel isa : kAllIsas) {
        if (c::isa_supported(isa)) isas.push_back(isa);
    }
    return isas;
}

// Runs `body` once per ISA the machine supports, with that ISA's kernels active; restores the previous choice.
template <class F>
void for_each_isa(F&& body) {
    const IsaLevel saved = c::active_isa();
    for (IsaLevel isa : supported_isas()) {
        REQUIRE(c::force_isa(isa) == 0);
        REQUIRE(c::active_isa() == isa);
        INFO("ISA ", cf::platform::isa_level_name(isa));
        body(isa);
    }
    REQUIRE(c::force_isa(saved) == 0);
}

template <class T>
const c::KernelSet<T>& kernels() {
    if constexpr (sizeof(T) == sizeof(float)) {
        return c::active_kernels().f32;
    } else {
        return c::active_kernels().f64;
    }
}

template <class T>
constexpr long double kEps = std::numeric_limits<T>::epsilon();

const char* name_of(Layout layout) { return layout == Layout::row_major ? "row-major" : "col-major"; }
const char* name_of(Transpose trans) { return trans == Transpose::none ? "N" : "T"; }

template <class T>
class Rng {
public:
    explicit Rng(std::uint64_t seed) : gen_(seed) {}
    T uniform() { return static_cast<T>(std::uniform_real_distribution<double>(-1.0, 1.0)(gen_)); }
    T small_int(int range) { return static_cast<T>(static_cast<int>(gen_() % (2 * range + 1)) - range); }
    std::size_t index(std::size_t n) { return static_cast<std::size_t>(gen_() % n); }

private:
    std::mt19937_64 gen_;
};

// A vector starting one element past a 16-byte boundary (so never vector-aligned), with `guard` extra elements
// after it holding a canary a kernel must neither change nor let leak into results.
template <class T>
class Buffer {
public:
    static constexpr std::size_t kGuard = 17;
    explicit Buffer(std::size_t n, T canary = std::numeric_limits<T>::quiet_NaN())
        : n_(n), storage_(n + 1 + kGuard, canary) {}
    T* data() { return storage_.data() + 1; }
    T& operator[](std::size_t i) { return data()[i]; }
    std::size_t size() const { return n_; }
    // The guards before and after are still the canary (bitwise, so NaN compares).
    bool guards_intact(T canary = std::numeric_limits<T>::quiet_NaN()) const {
        for (std::size_t i = 0; i < storage_.size(); ++i) {
            if (i >= 1 && i < n_ + 1) continue;
            if (std::memcmp(&storage_[i], &canary, sizeof(T)) != 0) return false;
        }
        return true;
    }

private:
    std::size_t n_;
    std::vector<T> storage_;
};

// Collects mismatches of one sweep into one doctest check (one CHECK per element would be millions).
struct Failures {
    std::size_t count = 0;
    std::string first;
    void add(const std::string& what) {
        if (count++ == 0) first = what;
    }
};

// `got` within `bound` of `want`; NaN expected means NaN required.
template <class T>
bool close(T got, long double want, long double bound) {
    if (std::isnan(want)) return std::isnan(got);
    return std::fabs(static_cast<long double>(got) - want) <= bound;
}

template <class T>
std::string describe(const char* what, std::size_t index, T got, long double want, long double bound) {
    return std::string(what) + " [" + std::to_string(index) + "]: got " + std::to_string(static_cast<double>(got)) +
           ", want " + std::to_string(static_cast<double>(want)) + " +- " + std::to_string(static_cast<double>(bound));
}

// ---- gemv reference -----------------------------------------------------------------------------------------

struct GemvCase {
    Layout layout;
    Transpose trans;
    std::size_t m, n, lda;
};

// A (m x n) in `layout` with leading dimension lda; padding holds NaN, so a kernel reading it shows.
template <class T>
std::vector<T> make_matrix(const GemvCase& g, Rng<T>& rng, int int_range = 0) {
    const bool row = g.layout == Layout::row_major;
    const std::size_t outer = row ? g.m : g.n;
    std::vector<T> a(outer * g.lda + 1, std::numeric_limits<T>::quiet_NaN());
    for (std::size_t i = 0; i < g.m; ++i) {
        for (std::size_t j = 0; j < g.n; ++j) {
            a[row ? i * g.lda + j : j * g.lda + i] = int_range > 0 ? rng.small_int(int_range) : rng.uniform();
        }
    }
    return a;
}

template <class T>
long double element(const GemvCase& g, const T* a, std::size_t i, std::size_t j) {
    return g.layout == Layout::row_major ? a[i * g.lda + j] : a[j * g.lda + i];
}

// want = alpha * op(A) x + beta * y and each entry's error bound (see the top of the file).
template <class T>
void gemv_reference(const GemvCase& g, T alpha, const T* a, const T* x, T beta, const T* y,
                    std::vector<long double>& want, std::vector<long double>& bound) {
    const bool t = g.trans == Transpose::transpose;
    const std::size_t out = t ? g.n : g.m;
    const std::size_t inner = t ? g.m : g.n;
    want.assign(out, 0.0L);
    bound.assign(out, 0.0L);
    for (std::size_t r = 0; r < out; ++r) {
        long double sum = 0, magnitude = 0;
        if (alpha != T(0)) {
            for (std::size_t k = 0; k < inner; ++k) {
                const long double p = (t ? element(g, a, k, r) : element(g, a, r, k)) * static_cast<long double>(x[k]);
                sum += p;
                magnitude += std::fabs(p);
            }
        }
        long double w = static_cast<long double>(alpha) * sum;
        magnitude *= std::fabs(static_cast<long double>(alpha));
        if (beta != T(0)) {
            const long double by = static_cast<long double>(beta) * y[r];
            w += by;
            magnitude += std::fabs(by);
        }
        want[r] = w;
        bound[r] = static_cast<long double>(inner + 3) * kEps<T> * magnitude;
    }
}

std::string describe(const GemvCase& g, double alpha, double beta) {
    return std::string(name_of(g.layout)) + " " + name_of(g.trans) + " m=" + std::to_string(g.m) +
           " n=" + std::to_string(g.n) + " lda=" + std::to_string(g.lda) + " alpha=" + std::to_string(alpha) +
           " beta=" + std::to_string(beta);
}

// One gemv call against the reference. beta == 0 puts NaN in y and alpha == 0 NaN in x: neither may be read.
template <class T>
void check_gemv(const GemvCase& g, T alpha, T beta, Rng<T>& rng, Failures& failures) {
    const bool t = g.trans == Transpose::transpose;
    const std::size_t out = t ? g.n : g.m;
    const std::size_t inner = t ? g.m : g.n;
    const std::vector<T> a = make_matrix(g, rng);
    Buffer<T> x(inner), y(out);
    for (std::size_t i = 0; i < inner; ++i) x[i] = alpha == T(0) ? std::numeric_limits<T>::quiet_NaN() : rng.uniform();
    for (std::size_t i = 0; i < out; ++i) y[i] = beta == T(0) ? std::numeric_limits<T>::quiet_NaN() : rng.uniform();
    std::vector<long double> want, bound;
    gemv_reference(g, alpha, a.data(), x.data(), beta, y.data(), want, bound);
    kernels<T>().gemv(g.layout, g.trans, g.m, g.n, alpha, a.data(), g.lda, x.data(), beta, y.data());
    for (std::size_t i = 0; i < out; ++i) {
        if (!close(y[i], want[i], bound[i])) {
            failures.add(describe(g, static_cast<double>(alpha), static_cast<double>(beta)) + ": " +
                         describe("y", i, y[i], want[i], bound[i]));
        }
    }
    if (!y.guards_intact()) {
        failures.add(describe(g, static_cast<double>(alpha), static_cast<double>(beta)) + ": wrote outside y");
    }
}

std::size_t odd_lda(std::size_t inner) { return inner % 2 == 0 ? inner + 3 : inner + 2; }

}  // namespace

// ---- dispatch -----------------------------------------------------------------------------------------------

TEST_CASE("parse_isa knows exactly the CF_ISA names") {
    IsaLevel level = IsaLevel::scalar;
    CHECK(c::parse_isa("scalar", level) == 0);
    CHECK(level == IsaLevel::scalar);
    CHECK(c::parse_isa("avx2", level) == 0);
    CHECK(level == IsaLevel::avx2_fma);
    CHECK(c::parse_isa("avx512", level) == 0);
    CHECK(level == IsaLevel::avx512);
    CHECK(c::parse_isa("neon", level) == 0);
    CHECK(level == IsaLevel::neon);

    level = IsaLevel::neon;
    for (const char* bad : {"", "AVX2", "avx2+fma", "sse2", "avx", "avx5121", " scalar"}) {
        INFO("name \"", bad, "\"");
        cf::platform::clear_last_error();
        CHECK(c::parse_isa(bad, level) == -EINVAL);
        CHECK(level == IsaLevel::neon);   // untouched on failure
        CHECK(message_contains("unknown ISA"));
    }
    CHECK(c::parse_isa(nullptr, level) == -EINVAL);
}

// Every test that forces an ISA restores the previous one, so the active ISA is still the first-use choice.
// Run the suite with CF_ISA=scalar (or avx2, neon, bogus...) to check the variable itself.
TEST_CASE("the first use picks what CF_ISA and the CPU say") {
    CHECK(c::active_isa() == c::choose_isa(std::getenv("CF_ISA"), nullptr, 0));
}

TEST_CASE("isa_supported and force_isa follow the CPU and the build") {
    const IsaLevel saved = c::active_isa();
    CHECK(c::isa_supported(IsaLevel::scalar));
    CHECK(c::isa_supported(saved));
#if defined(__x86_64__)
    CHECK_FALSE(c::isa_supported(IsaLevel::neon));
    CHECK(c::isa_supported(IsaLevel::avx2_fma) == (cf::platform::cpu_info().avx2 && cf::platform::cpu_info().fma));
    CHECK(c::isa_supported(IsaLevel::avx512) == (cf::platform::cpu_info().isa_level == IsaLevel::avx512));
#else
    CHECK_FALSE(c::isa_supported(IsaLevel::avx2_fma));
    CHECK_FALSE(c::isa_supported(IsaLevel::avx512));
    CHECK(c::isa_supported(IsaLevel::neon) == cf::platform::cpu_info().neon);
#endif
    // The CPU's own level is what the build picks when CF_ISA does not interfere.
    CHECK(c::isa_supported(cf::platform::cpu_info().isa_level));

    for (IsaLevel isa : kAllIsas) {
        INFO("ISA ", cf::platform::isa_level_name(isa));
        cf::platform::clear_last_error();
        if (c::isa_supported(isa)) {
            CHECK(c::force_isa(isa) == 0);
            CHECK(c::active_isa() == isa);
            CHECK(c::active_kernels().isa == isa);
            CHECK(cf::platform::last_error_message()[0] == '\0');
        } else {
            const IsaLevel before = c::active_isa();
            CHECK(c::force_isa(isa) == -ENOTSUP);
            CHECK(c::active_isa() == before);
            CHECK(message_contains(isa == IsaLevel::avx2_fma ? "avx2" : cf::platform::isa_level_name(isa)));
        }
    }
    REQUIRE(c::force_isa(saved) == 0);
}

TEST_CASE("every supported ISA's table has dot, axpy and gemv for f32 and f64") {
    for_each_isa([](IsaLevel isa) {
        const c::KernelTable& t = c::active_kernels();
        CHECK(t.isa == isa);
        CHECK((t.f32.dot != nullptr));
        CHECK((t.f32.axpy != nullptr));
        CHECK((t.f32.gemv != nullptr));
        CHECK((t.f64.dot != nullptr));
        CHECK((t.f64.axpy != nullptr));
        CHECK((t.f64.gemv != nullptr));
    });
}

TEST_CASE("choose_isa (what CF_ISA does) honours a usable ISA and explains an unusable one") {
    const IsaLevel best = cf::platform::cpu_info().isa_level;
    char why[192];

    SUBCASE("unset or empty: the CPU's best level, silently") {
        CHECK(c::choose_isa(nullptr, why, sizeof why) == best);
        CHECK(why[0] == '\0');
        CHECK(c::choose_isa("", why, sizeof why) == best);
        CHECK(why[0] == '\0');
    }
    SUBCASE("each known name: taken when supported, else explained and ignored") {
        for (const char* name : {"scalar", "avx2", "avx512", "neon"}) {
            INFO("CF_ISA=", name);
            IsaLevel named = IsaLevel::scalar;
            REQUIRE(c::parse_isa(name, named) == 0);
            const IsaLevel got = c::choose_isa(name, why, sizeof why);
            if (c::isa_supported(named)) {
                CHECK(got == named);
                CHECK(why[0] == '\0');
            } else {
                CHECK(got == best);
                CHECK(std::strstr(why, name) != nullptr);
                CHECK(std::strstr(why, "not supported") != nullptr);
            }
        }
    }
    SUBCASE("an unknown name: explained and ignored, the caller's last error kept") {
        cf::platform::fail(EIO, "an earlier failure");
        CHECK(c::choose_isa("avx1024", why, sizeof why) == best);
        CHECK(std::strstr(why, "CF_ISA=avx1024") != nullptr);
        CHECK(message_contains("an earlier failure"));
        // No room for the explanation is fine too.
        CHECK(c::choose_isa("avx1024", nullptr, 0) == best);
        CHECK(c::choose_isa("avx1024", why, 0) == best);
    }
}

// ---- dot ----------------------------------------------------------------------------------------------------

TEST_CASE_TEMPLATE("dot matches a long-double reference for every length, on every ISA", T, float, double) {
    for_each_isa([](IsaLevel) {
        Rng<T> rng(0x5eed0001);
        Failures failures;
        std::vector<std::size_t> lengths;
        for (std::size_t n = 0; n <= 67; ++n) lengths.push_back(n);
        lengths.insert(lengths.end(), std::begin(kLongLengths), std::end(kLongLengths));
        for (std::size_t n : lengths) {
            Buffer<T> x(n), y(n);
            long double want = 0, magnitude = 0;
            for (std::size_t i = 0; i < n; ++i) {
                x[i] = rng.uniform();
                y[i] = rng.uniform();
                const long double p = static_cast<long double>(x[i]) * y[i];
                want += p;
                magnitude += std::fabs(p);
            }
            const T got = kernels<T>().dot(n, x.data(), y.data());
            const long double bound = static_cast<long double>(n + 3) * kEps<T> * magnitude;
            if (!close(got, want, bound)) {
                failures.add("n=" + std::to_string(n) + " " + describe("dot", 0, got, want, bound));
            }
        }
        CHECK_MESSAGE(failures.count == 0, failures.first);
    });
}

TEST_CASE_TEMPLATE("dot beyond the last-level cache (AVX-512 streams it with 256-bit loads) is exact", T, float,
                   double) {
    // 4 MiB and a few elements per vector: past the switch to narrower loads, with a ragged tail. Products in
    // {-1, 0, 1}, so every partial sum is an integer below 2^24: exact even in f32.
    const std::size_t n = (std::size_t{4} << 20) / sizeof(T) + 5;
    Rng<T> rng(0x5eed0042);
    Buffer<T> x(n), y(n);
    std::int64_t want = 0;
    for (std::size_t i = 0; i < n; ++i) {
        // The last 8 products are 1, so a tail element lost or read twice shows.
        x[i] = i + 8 >= n ? T(1) : rng.small_int(1);
        y[i] = i + 8 >= n ? T(1) : rng.small_int(1);
        want += static_cast<std::int64_t>(x[i]) * static_cast<std::int64_t>(y[i]);
    }
    for_each_isa([&](IsaLevel) {
        CHECK(kernels<T>().dot(n, x.data(), y.data()) == static_cast<T>(want));
        CHECK(kernels<T>().dot(n - 3, x.data() + 3, y.data() + 3) ==
              static_cast<T>(want - std::int64_t(x[0]) * y[0] - std::int64_t(x[1]) * y[1] - std::int64_t(x[2]) * y[2]));
    });
}

TEST_CASE_TEMPLATE("dot of small integers is exact for every length, on every ISA", T, float, double) {
    for_each_isa([](IsaLevel) {
        Rng<T> rng(0x5eed0002);
        Failures failures;
        std::vector<std::size_t> lengths;
        for (std::size_t n = 0; n <= 67; ++n) lengths.push_back(n);
        lengths.insert(lengths.end(), std::begin(kLongLengths), std::end(kLongLengths));
        for (std::size_t n : lengths) {
            // |x y| <= 64 and n <= 100003: every partial sum stays below 2^24, exact even in f32.
            Buffer<T> x(n), y(n);
            std::int64_t want = 0;
            for (std::size_t i = 0; i < n; ++i) {
                x[i] = rng.small_int(8);
                y[i] = rng.small_int(8);
                want += static_cast<std::int64_t>(x[i]) * static_cast<std::int64_t>(y[i]);
            }
            const T got = kernels<T>().dot(n, x.data(), y.data());
            if (got != static_cast<T>(want)) {
                failures.add("n=" + std::to_string(n) + " " + describe("dot", 0, got, want, 0));
            }
        }
        CHECK_MESSAGE(failures.count == 0, failures.first);
        // Every element counts once, wherever it sits: a single 1 at each position.
        for (std::size_t n : {std::size_t{1}, std::size_t{37}, std::size_t{67}, std::size_t{4099}}) {
            std::vector<T> ones(n, T(1)), unit(n, T(0));
            for (std::size_t k = 0; k < n; ++k) {
                unit[k] = T(1);
                if (kernels<T>().dot(n, ones.data(), unit.data()) != T(1)) failures.add("unit at " + std::to_string(k));
                unit[k] = T(0);
            }
        }
        CHECK_MESSAGE(failures.count == 0, failures.first);
    });
}

TEST_CASE_TEMPLATE("dot propagates NaN and Inf from any position, on every ISA", T, float, double) {
    for_each_isa([](IsaLevel) {
        Failures failures;
        for (std::size_t n : {std::size_t{1}, std::size_t{5}, std::size_t{17}, std::size_t{67}, std::size_t{1000}}) {
            for (std::size_t k : {std::size_t{0}, n / 2, n - 1}) {
                std::vector<T> x(n, T(1)), y(n, T(2));
                x[k] = std::numeric_limits<T>::quiet_NaN();
                if (!std::isnan(kernels<T>().dot(n, x.data(), y.data()))) {
                    failures.add("NaN in x at " + std::to_string(k));
                }
                x[k] = T(1);
                y[k] = std::numeric_limits<T>::infinity();
                if (kernels<T>().dot(n, x.data(), y.data()) != std::numeric_limits<T>::infinity()) {
                    failures.add("Inf in y at " + std::to_string(k));
                }
            }
        }
        CHECK_MESSAGE(failures.count == 0, failures.first);
    });
}

// ---- axpy ---------------------------------------------------------------------------------------------------

TEST_CASE_TEMPLATE("axpy matches a long-double reference for every length and alpha, on every ISA", T, float, double) {
    for_each_isa([](IsaLevel) {
        Rng<T> rng(0x5eed0003);
        Failures failures;
        std::vector<std::size_t> lengths;
        for (std::size_t n = 0; n <= 67; ++n) lengths.push_back(n);
        lengths.insert(lengths.end(), std::begin(kLongLengths), std::end(kLongLengths));
        for (double alpha_value : kScalars) {
            const T alpha = static_cast<T>(alpha_value);
            for (std::size_t n : lengths) {
                Buffer<T> x(n), y(n);
                std::vector<long double> want(n), bound(n);
                for (std::size_t i = 0; i < n; ++i) {
                    // alpha == 0: reference BLAS returns without reading x, so NaN there must not show.
                    x[i] = alpha == T(0) ? std::numeric_limits<T>::quiet_NaN() : rng.uniform();
                    y[i] = rng.uniform();
                    const long double ax = alpha == T(0) ? 0.0L : static_cast<long double>(alpha) * x[i];
                    want[i] = ax + y[i];
                    bound[i] = 2 * kEps<T> * (std::fabs(ax) + std::fabs(static_cast<long double>(y[i])));
                }
                kernels<T>().axpy(n, alpha, x.data(), y.data());
                for (std::size_t i = 0; i < n; ++i) {
                    if (!close(y[i], want[i], bound[i])) {
                        failures.add("n=" + std::to_string(n) + " alpha=" + std::to_string(alpha_value) + " " +
                                     describe("y", i, y[i], want[i], bound[i]));
                    }
                }
                if (!y.guards_intact()) failures.add("n=" + std::to_string(n) + ": wrote outside y");
            }
        }
        CHECK_MESSAGE(failures.count == 0, failures.first);
    });
}

TEST_CASE_TEMPLATE("axpy of small integers is exact; NaN in x propagates, on every ISA", T, float, double) {
    for_each_isa([](IsaLevel) {
        Rng<T> rng(0x5eed0004);
        Failures failures;
        for (std::size_t n = 0; n <= 67; ++n) {
            for (T alpha : {T(1), T(-1), T(3)}) {
                Buffer<T> x(n), y(n);
                std::vector<T> want(n);
                for (std::size_t i = 0; i < n; ++i) {
                    x[i] = rng.small_int(100);
                    y[i] = rng.small_int(100);
                    want[i] = alpha * x[i] + y[i];
                }
                kernels<T>().axpy(n, alpha, x.data(), y.data());
                for (std::size_t i = 0; i < n; ++i) {
                    if (y[i] != want[i]) {
                        failures.add("n=" + std::to_string(n) + " " + describe("y", i, y[i], want[i], 0));
                    }
                }
            }
            if (n > 0) {
                std::vector<T> x(n, T(1)), y(n, T(1));
                x[n - 1] = std::numeric_limits<T>::quiet_NaN();
                kernels<T>().axpy(n, T(2), x.data(), y.data());
                if (!std::isnan(y[n - 1]) || (n > 1 && y[0] != T(3))) failures.add("NaN at n=" + std::to_string(n));
            }
        }
        CHECK_MESSAGE(failures.count == 0, failures.first);
    });
}

// ---- gemv ---------------------------------------------------------------------------------------------------

TEST_CASE_TEMPLATE("gemv matches a long-double reference: both layouts and transposes, every alpha and beta",
                   T, float, double) {
    // Sizes around every vector width and block edge (4 rows / columns, 1, 2 and 4 vectors of 2 to 16 lanes).
    constexpr std::size_t kSizes[] = {0, 1, 2, 3, 4, 5, 7, 8, 9, 15, 16, 17, 31, 33, 67};
    for_each_isa([&](IsaLevel) {
        Rng<T> rng(0x5eed0005);
        Failures failures;
        for (Layout layout : kLayouts) {
            for (Transpose trans : kTransposes) {
                for (std::size_t m : kSizes) {
                    for (std::size_t n : kSizes) {
                        const std::size_t stored_inner = layout == Layout::row_major ? n : m;
                        // Tight and odd (so rows start at every alignment) leading dimensions.
                        for (std::size_t lda : {std::max<std::size_t>(1, stored_inner), odd_lda(stored_inner)}) {
                            for (double alpha : kScalars) {
                                for (double beta : kScalars) {
                                    check_gemv<T>({layout, trans, m, n, lda}, static_cast<T>(alpha),
                                                  static_cast<T>(beta), rng, failures);
                                }
                            }
                        }
                    }
                }
            }
        }
        CHECK_MESSAGE(failures.count == 0, failures.first);
    });
}

TEST_CASE_TEMPLATE("gemv of larger matrices matches the reference, on every ISA", T, float, double) {
    struct Shape {
        std::size_t m, n;
    };
    constexpr Shape kShapes[] = {{67, 1031}, {1031, 67}, {259, 260}, {1, 4099}, {4099, 1}};
    for_each_isa([&](IsaLevel) {
        Rng<T> rng(0x5eed0006);
        Failures failures;
        for (Layout layout : kLayouts) {
            for (Transpose trans : kTransposes) {
                for (Shape s : kShapes) {
                    const std::size_t stored_inner = layout == Layout::row_major ? s.n : s.m;
                    check_gemv<T>({layout, trans, s.m, s.n, odd_lda(stored_inner)}, T(0.37), T(-1), rng, failures);
                    check_gemv<T>({layout, trans, s.m, s.n, stored_inner}, T(1), T(0), rng, failures);
                }
            }
        }
        CHECK_MESSAGE(failures.count == 0, failures.first);
    });
}

TEST_CASE_TEMPLATE("gemv of small integers is exact, on every ISA", T, float, double) {
    constexpr std::size_t kSizes[] = {1, 3, 4, 5, 8, 13, 16, 17, 33, 67};
    for_each_isa([&](IsaLevel) {
        Rng<T> rng(0x5eed0007);
        Failures failures;
        for (Layout layout : kLayouts) {
            for (Transpose trans : kTransposes) {
                for (std::size_t m : kSizes) {
                    for (std::size_t n : kSizes) {
                        const GemvCase g{layout, trans, m, n, odd_lda(layout == Layout::row_major ? n : m)};
                        const std::size_t out = trans == Transpose::none ? m : n;
                        const std::size_t inner = trans == Transpose::none ? n : m;
                        const std::vector<T> a = make_matrix(g, rng, 8);
                        Buffer<T> x(inner), y(out);
                        for (std::size_t i = 0; i < inner; ++i) x[i] = rng.small_int(8);
                        for (std::size_t i = 0; i < out; ++i) y[i] = rng.small_int(100);
                        for (T alpha : {T(1), T(-2)}) {
                            for (T beta : {T(0), T(1), T(-1)}) {
                                std::vector<long double> want, bound;
                                gemv_reference(g, alpha, a.data(), x.data(), beta, y.data(), want, bound);
                                std::vector<T> before(y.data(), y.data() + out);
                                kernels<T>().gemv(layout, trans, m, n, alpha, a.data(), g.lda, x.data(), beta,
                                                  y.data());
                                for (std::size_t i = 0; i < out; ++i) {
                                    if (y[i] != static_cast<T>(want[i])) {
                                        failures.add(describe(g, static_cast<double>(alpha),
                                                              static_cast<double>(beta)) +
                                                     ": " + describe("y", i, y[i], want[i], 0));
                                    }
                                }
                                std::copy(before.begin(), before.end(), y.data());
                            }
                        }
                    }
                }
            }
        }
        CHECK_MESSAGE(failures.count == 0, failures.first);
    });
}

TEST_CASE_TEMPLATE("gemv NaN rules: beta == 0 ignores y, alpha == 0 ignores A and x, NaN in x or A propagates",
                   T, float, double) {
    constexpr T kNaN = std::numeric_limits<T>::quiet_NaN();
    for_each_isa([&](IsaLevel) {
        Rng<T> rng(0x5eed0008);
        Failures failures;
        for (Layout layout : kLayouts) {
            for (Transpose trans : kTransposes) {
                for (std::size_t m : {std::size_t{1}, std::size_t{6}, std::size_t{19}}) {
                    for (std::size_t n : {std::size_t{1}, std::size_t{7}, std::size_t{18}}) {
                        const GemvCase g{layout, trans, m, n, odd_lda(layout == Layout::row_major ? n : m)};
                        const std::string where = describe(g, 1, 0);
                        const std::size_t out = trans == Transpose::none ? m : n;
                        const std::size_t inner = trans == Transpose::none ? n : m;
                        std::vector<T> a = make_matrix(g, rng);
                        std::vector<T> x(inner), y(out);
                        for (T& v : x) v = rng.uniform();

                        // alpha == 0, beta == 0: zeros, whatever A, x and y hold.
                        std::vector<T> nan_a(a.size(), kNaN), nan_x(inner, kNaN);
                        std::fill(y.begin(), y.end(), kNaN);
                        kernels<T>().gemv(layout, trans, m, n, T(0), nan_a.data(), g.lda, nan_x.data(), T(0), y.data());
                        for (T v : y) {
                            if (v != T(0)) failures.add(where + ": alpha = beta = 0 did not give 0");
                        }
                        // alpha == 0, beta == -1: y negated, A and x unread.
                        std::fill(y.begin(), y.end(), T(2));
                        kernels<T>().gemv(layout, trans, m, n, T(0), nan_a.data(), g.lda, nan_x.data(), T(-1),
                                          y.data());
                        for (T v : y) {
                            if (v != T(-2)) failures.add(where + ": alpha = 0, beta = -1 did not give -y");
                        }
                        // NaN in x: every output is NaN.
                        const std::size_t k = rng.index(inner);
                        std::vector<T> x_nan = x;
                        x_nan[k] = kNaN;
                        std::fill(y.begin(), y.end(), T(1));
                        kernels<T>().gemv(layout, trans, m, n, T(1), a.data(), g.lda, x_nan.data(), T(1), y.data());
                        for (T v : y) {
                            if (!std::isnan(v)) failures.add(where + ": NaN in x did not propagate");
                        }
                        // NaN in A at op(A)(r, k): output r only.
                        const std::size_t r = rng.index(out);
                        const std::size_t i = trans == Transpose::none ? r : k;
                        const std::size_t j = trans == Transpose::none ? k : r;
                        a[layout == Layout::row_major ? i * g.lda + j : j * g.lda + i] = kNaN;
                        std::fill(y.begin(), y.end(), T(1));
                        kernels<T>().gemv(layout, trans, m, n, T(1), a.data(), g.lda, x.data(), T(0), y.data());
                        for (std::size_t q = 0; q < out; ++q) {
                            if (std::isnan(y[q]) != (q == r)) {
                                failures.add(where + ": NaN in A reached the wrong outputs");
                            }
                        }
                    }
                }
            }
        }
        CHECK_MESSAGE(failures.count == 0, failures.first);
    });
}

TEST_CASE_TEMPLATE("gemv with an empty inner dimension scales y by beta; an empty y is left alone", T, float, double) {
    for_each_isa([](IsaLevel) {
        for (Layout layout : kLayouts) {
            // No-transpose with n == 0 (and transpose with m == 0): op(A) x is an empty sum.
            std::vector<T> y(5, T(3));
            kernels<T>().gemv(layout, Transpose::none, 5, 0, T(1), nullptr, 5, nullptr, T(-1), y.data());
            for (T v : y) CHECK(v == T(-3));
            kernels<T>().gemv(layout, Transpose::transpose, 0, 5, T(1), nullptr, 5, nullptr, T(0), y.data());
            for (T v : y) CHECK(v == T(0));
            kernels<T>().gemv(layout, Transpose::none, 0, 4, T(1), nullptr, 4, nullptr, T(2), nullptr);
        }
    });
}

// ---- blas.hpp: validation and dispatch ----------------------------------------------------------------------

TEST_CASE_TEMPLATE("blas dot, axpy and gemv refuse null pointers and short leading dimensions", T, float, double) {
    std::vector<T> x(8, T(1)), y(8, T(2)), a(64, T(1));
    T out = T(7);

    CHECK(c::dot(8, x.data(), nullptr, out) == -EINVAL);
    CHECK(message_contains("dot"));
    CHECK(c::dot(8, nullptr, y.data(), out) == -EINVAL);
    CHECK(out == T(7));   // nothing written on error
    CHECK(c::dot(0, static_cast<const T*>(nullptr), nullptr, out) == 0);
    CHECK(out == T(0));
    CHECK(c::dot(8, x.data(), y.data(), out) == 0);
    CHECK(out == T(16));

    CHECK(c::axpy(8, T(1), nullptr, y.data()) == -EINVAL);
    CHECK(message_contains("axpy"));
    CHECK(c::axpy(8, T(1), x.data(), static_cast<T*>(nullptr)) == -EINVAL);
    CHECK(c::axpy(0, T(1), static_cast<const T*>(nullptr), static_cast<T*>(nullptr)) == 0);
    CHECK(c::axpy(8, T(3), x.data(), y.data()) == 0);
    CHECK(y[7] == T(5));

    // A is 3 x 4: row-major needs lda >= 4, column-major lda >= 3.
    std::fill(y.begin(), y.end(), T(2));
    for (Transpose trans : kTransposes) {
        INFO("trans ", name_of(trans));
        CHECK(c::gemv(Layout::row_major, trans, 3, 4, T(1), a.data(), 3, x.data(), T(0), y.data()) == -EINVAL);
        CHECK(message_contains("lda"));
        CHECK(c::gemv(Layout::col_major, trans, 3, 4, T(1), a.data(), 2, x.data(), T(0), y.data()) == -EINVAL);
        CHECK(c::gemv(Layout::row_major, trans, 3, 4, T(1), nullptr, 4, x.data(), T(0), y.data()) == -EINVAL);
        CHECK(c::gemv(Layout::row_major, trans, 3, 4, T(1), a.data(), 4, nullptr, T(0), y.data()) == -EINVAL);
        CHECK(c::gemv(Layout::row_major, trans, 3, 4, T(1), a.data(), 4, x.data(), T(0), nullptr) == -EINVAL);
        // Even an empty matrix needs lda >= 1, as in BLAS.
        CHECK(c::gemv(Layout::row_major, trans, 0, 0, T(1), a.data(), 0, x.data(), T(0), y.data()) == -EINVAL);
        // An lda whose last row would lie beyond the address space.
        CHECK(c::gemv(Layout::col_major, trans, 3, 4, T(1), a.data(), SIZE_MAX / 2, x.data(), T(0), y.data()) ==
              -EINVAL);
        for (T v : y) CHECK(v == T(2));   // nothing written on error
        CHECK(c::gemv(Layout::row_major, trans, 3, 4, T(1), a.data(), 4, x.data(), T(0), y.data()) == 0);
        CHECK(c::gemv(Layout::col_major, trans, 3, 4, T(1), a.data(), 3, x.data(), T(0), y.data()) == 0);
        CHECK(y[0] == T(trans == Transpose::none ? 4 : 3));
        std::fill(y.begin(), y.end(), T(2));
    }
    // Sizes that make A or y empty let them be null; x still has n entries.
    T* const no_y = nullptr;
    CHECK(c::gemv(Layout::row_major, Transpose::none, 0, 4, T(1), nullptr, 4, x.data(), T(0), no_y) == 0);
    CHECK(c::gemv(Layout::row_major, Transpose::none, 0, 4, T(1), nullptr, 4, nullptr, T(0), no_y) == -EINVAL);
}

TEST_CASE_TEMPLATE("blas gemm refuses null pointers and short leading dimensions", T, float, double) {
    // op(A) 2 x 5, op(B) 5 x 3, C 2 x 3: distinct sizes, so each rule names one of them.
    constexpr std::size_t m = 2, n = 3, k = 5;
    std::vector<T> a(64, T(1)), b(64, T(1)), cm(64, T(9));
    for (Layout layout : kLayouts) {
        for (Transpose ta : kTransposes) {
            for (Transpose tb : kTransposes) {
                INFO(name_of(layout), " ", name_of(ta), name_of(tb));
                const bool row = layout == Layout::row_major;
                const bool at = ta == Transpose::transpose;
                const bool bt = tb == Transpose::transpose;
                // Stored A is m x k (k x m transposed), B k x n (n x k); ld covers a stored row / column.
                const std::size_t lda = row ? (at ? m : k) : (at ? k : m);
                const std::size_t ldb = row ? (bt ? k : n) : (bt ? n : k);
                const std::size_t ldc = row ? n : m;
                CHECK(c::gemm(layout, ta, tb, m, n, k, T(1), a.data(), lda - 1, b.data(), ldb, T(0), cm.data(), ldc) ==
                      -EINVAL);
                CHECK(message_contains("lda"));
                CHECK(c::gemm(layout, ta, tb, m, n, k, T(1), a.data(), lda, b.data(), ldb - 1, T(0), cm.data(), ldc) ==
                      -EINVAL);
                CHECK(message_contains("ldb"));
                CHECK(c::gemm(layout, ta, tb, m, n, k, T(1), a.data(), lda, b.data(), ldb, T(0), cm.data(), ldc - 1) ==
                      -EINVAL);
                CHECK(message_contains("ldc"));
                CHECK(c::gemm(layout, ta, tb, m, n, k, T(1), nullptr, lda, b.data(), ldb, T(0), cm.data(), ldc) ==
                      -EINVAL);
                CHECK(c::gemm(layout, ta, tb, m, n, k, T(1), a.data(), lda, nullptr, ldb, T(0), cm.data(), ldc) ==
                      -EINVAL);
                CHECK(c::gemm(layout, ta, tb, m, n, k, T(1), a.data(), lda, b.data(), ldb, T(0),
                              static_cast<T*>(nullptr), ldc) == -EINVAL);
                for (T v : cm) CHECK(v == T(9));   // nothing written on error
                // An empty C needs no memory at all (ld >= 1 still).
                CHECK(c::gemm(layout, ta, tb, 0, 0, k, T(1), nullptr, k, nullptr, k, T(0), static_cast<T*>(nullptr),
                              1) == 0);
            }
        }
    }
}

TEST_CASE_TEMPLATE("blas entry points use the active ISA's kernels", T, float, double) {
    for_each_isa([](IsaLevel) {
        // A = [[1 2 3] [4 5 6]] row-major with lda 4 (the 4th column is padding).
        const T a[] = {1, 2, 3, -100, 4, 5, 6, -100};
        const T x[] = {1, -1, 2};
        T y[] = {10, 20};
        CHECK(c::gemv(Layout::row_major, Transpose::none, 2, 3, T(2), a, 4, x, T(1), y) == 0);
        CHECK(y[0] == T(10 + 2 * (1 - 2 + 6)));
        CHECK(y[1] == T(20 + 2 * (4 - 5 + 12)));
        T out = 0;
        CHECK(c::dot(3, x, a, out) == 0);
        CHECK(out == T(1 - 2 + 6));
    });
}

TEST_CASE_TEMPLATE("blas gemm runs the active ISA's gemm with this thread's workspace", T, float, double) {
    // Small integers, so every summation order gives the exact result; padding holds NaN (must not be read).
    constexpr std::size_t m = 5, n = 3, k = 7;
    constexpr T kNaN = std::numeric_limits<T>::quiet_NaN();
    for_each_isa([&](IsaLevel) {
        Rng<T> rng(0x5eed0009);
        Failures failures;
        for (Layout layout : kLayouts) {
            for (Transpose ta : kTransposes) {
                for (Transpose tb : kTransposes) {
                    const bool row = layout == Layout::row_major;
                    const bool at = ta == Transpose::transpose;
                    const bool bt = tb == Transpose::transpose;
                    // Element (i, j) of a stored r x c matrix with leading dimension ld.
                    auto index = [row](std::size_t i, std::size_t j, std::size_t ld) {
                        return row ? i * ld + j : j * ld + i;
                    };
                    const std::size_t lda = (row ? (at ? m : k) : (at ? k : m)) + 1;
                    const std::size_t ldb = (row ? (bt ? k : n) : (bt ? n : k)) + 2;
                    const std::size_t ldc = (row ? n : m) + 1;
                    std::vector<T> a(16 * 16, kNaN), b(16 * 16, kNaN), cm(16 * 16, kNaN);
                    std::vector<T> op_a(m * k), op_b(k * n);
                    for (std::size_t i = 0; i < m; ++i) {
                        for (std::size_t p = 0; p < k; ++p) {
                            op_a[i * k + p] = rng.small_int(9);
                            a[at ? index(p, i, lda) : index(i, p, lda)] = op_a[i * k + p];
                        }
                    }
                    for (std::size_t p = 0; p < k; ++p) {
                        for (std::size_t j = 0; j < n; ++j) {
                            op_b[p * n + j] = rng.small_int(9);
                            b[bt ? index(j, p, ldb) : index(p, j, ldb)] = op_b[p * n + j];
                        }
                    }
                    for (T beta : {T(0), T(-1)}) {
                        std::vector<T> before(m * n);
                        for (std::size_t i = 0; i < m; ++i) {
                            for (std::size_t j = 0; j < n; ++j) {
                                // beta == 0: C holds NaN, which must not be read.
                                cm[index(i, j, ldc)] = beta == T(0) ? kNaN : rng.small_int(50);
                                before[i * n + j] = cm[index(i, j, ldc)];
                            }
                        }
                        const int rc = c::gemm(layout, ta, tb, m, n, k, T(2), a.data(), lda, b.data(), ldb, beta,
                                               cm.data(), ldc);
                        if (rc != 0) failures.add("gemm returned " + std::to_string(rc));
                        for (std::size_t i = 0; i < m; ++i) {
                            for (std::size_t j = 0; j < n; ++j) {
                                T want = 0;
                                for (std::size_t p = 0; p < k; ++p) want += op_a[i * k + p] * op_b[p * n + j];
                                want = T(2) * want + (beta == T(0) ? T(0) : beta * before[i * n + j]);
                                if (cm[index(i, j, ldc)] != want) {
                                    failures.add(std::string(name_of(layout)) + " " + name_of(ta) + name_of(tb) +
                                                 " beta=" + std::to_string(static_cast<double>(beta)) + " " +
                                                 describe("c", i * n + j, cm[index(i, j, ldc)], want, 0));
                                }
                            }
                        }
                    }
                }
            }
        }
        CHECK_MESSAGE(failures.count == 0, failures.first);
    });
}
