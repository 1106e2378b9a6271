// GEMM against a long-double reference, for every ISA this machine runs (each table built with install_gemm_<isa>
// directly, not through the dispatcher), f32 and f64.
//
// Tolerance, the same for every ISA (blocking, FMA and summation order only change which rounding errors occur,
// not the bound): with S = |alpha| * sum_p |op(A)_ip| |op(B)_pj| + |beta| |C0_ij|,
//     |C_ij - ref_ij| <= (k + 3) * eps * S
// The classic dot-product bound is gamma_k = k * u / (1 - k u) with u = eps / 2; the +3 covers the scaling by
// alpha and beta and the final add, and the factor two over u leaves room without hiding real bugs (a wrong
// index is off by O(1) relative, far above k * eps).
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <limits>
#include <memory>
#include <random>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "engine/compute/gemm_workspace.hpp"
#include "engine/compute/kernels.hpp"
#include "platform/cpu/cpu_info.hpp"

namespace {

using cf::compute::GemmWorkspace;
using cf::compute::KernelSet;
using cf::compute::KernelTable;
using cf::compute::Layout;
using cf::compute::Transpose;

#if defined(__aarch64__)
// Under qemu-aarch64 long double is software quad precision: fewer combinations per size.
constexpr bool kEmulated = true;
#else
constexpr bool kEmulated = false;
#endif

struct Isa {
    const char* name;
    KernelTable table;
};

const std::vector<Isa>& isas() {
    static const std::vector<Isa> list = [] {
        std::vector<Isa> out;
        const auto& cpu = cf::platform::cpu_info();
        KernelTable scalar;
        cf::compute::install_gemm_scalar(scalar);
        out.push_back({"scalar", scalar});
#if defined(__x86_64__)
        if (cpu.avx2 && cpu.fma) {
            KernelTable t;
            cf::compute::install_gemm_avx2(t);
            out.push_back({"avx2", t});
        }
        if (cpu.avx512f && cpu.avx512vl && cpu.avx512bw && cpu.avx512dq) {
            KernelTable t;
            cf::compute::install_gemm_avx512(t);
            out.push_back({"avx512", t});
        }
#elif defined(__aarch64__)
        if (cpu.neon) {
            KernelTable t;
            cf::compute::install_gemm_neon(t);
            out.push_back({"neon", t});
        }
#endif
        (void)cpu;
        return out;
    }();
    return list;
}

template <class T>
const KernelSet<T>& kernels_of(const KernelTable& table) {
    if constexpr (sizeof(T) == 4) return table.f32; else return table.f64;
}

GemmWorkspace& workspace() {
    GemmWorkspace* w = GemmWorkspace::this_thread();
    REQUIRE(w != nullptr);
    return *w;
}

struct Case {
    Layout layout = Layout::col_major;
    Transpose ta = Transpose::none, tb = Transpose::none;
    std::size_t m = 0, n = 0, k = 0;
    double alpha = 1, beta = 0;
    std::size_t pad = 0;        // extra leading dimension beyond the minimum
    std::size_t offset = 0;     // elements from the allocation's start: 1 misaligns every matrix
    bool nan_c = false;         // C starts as NaN (with beta == 0 it must not show)
    bool nan_a = false;         // one NaN in A at op(A)(m/2, k/2)
    std::size_t samples = 0;    // 0: check every entry; else this many random entries (large cases)
    std::uint32_t seed = 1;

    std::string describe() const {
        std::ostringstream s;
        s << (layout == Layout::row_major ? "row" : "col") << (ta == Transpose::none ? " N" : " T")
          << (tb == Transpose::none ? "N" : "T") << " m=" << m << " n=" << n << " k=" << k << " alpha=" << alpha
          << " beta=" << beta << " pad=" << pad << " offset=" << offset << (nan_c ? " nanC" : "")
          << (nan_a ? " nanA" : "");
        return s.str();
    }
};

// A stored matrix of rows x cols in `layout` with leading dimension ld.
template <class T>
struct Stored {
    Layout layout;
    std::size_t rows, cols, ld, offset;
    std::vector<T> buffer;

    Stored(Layout l, std::size_t r, std::size_t c, std::size_t pad, std::size_t off)
        : layout(l), rows(r), cols(c), ld((l == Layout::row_major ? c : r) + pad), offset(off) {
        if (ld == 0) ld = 1;
        const std::size_t outer = l == Layout::row_major ? r : c;
        buffer.assign(off + ld * outer + 1, T(0));
    }
    std::size_t index(std::size_t r, std::size_t c) const {
        return offset + (layout == Layout::row_major ? r * ld + c : r + c * ld);
    }
    T& at(std::size_t r, std::size_t c) { return buffer[index(r, c)]; }
    T at(std::size_t r, std::size_t c) const { return buffer[index(r, c)]; }
    T* data() { return buffer.data() + offset; }
};

constexpr double kSentinel = 777.25;   // C's padding: must survive every call

template <class T>
void run_case(const Case& tc) {
    std::mt19937 rng(tc.seed);
    std::uniform_real_distribution<double> uniform(-1.0, 1.0);
    const bool ta = tc.ta == Transpose::transpose, tb = tc.tb == Transpose::transpose;
    Stored<T> a(tc.layout, ta ? tc.k : tc.m, ta ? tc.m : tc.k, tc.pad, tc.offset);
    Stored<T> b(tc.layout, tb ? tc.n : tc.k, tb ? tc.k : tc.n, tc.pad + 2, tc.offset);
    Stored<T> c0(tc.layout, tc.m, tc.n, tc.pad + 1, tc.offset);
    for (auto& x : a.buffer) x = static_cast<T>(uniform(rng));
    for (auto& x : b.buffer) x = static_cast<T>(uniform(rng));
    for (auto& x : c0.buffer) x = static_cast<T>(kSentinel);
    for (std::size_t i = 0; i < tc.m; ++i)
        for (std::size_t j = 0; j < tc.n; ++j)
            c0.at(i, j) = tc.nan_c ? std::numeric_limits<T>::quiet_NaN() : static_cast<T>(uniform(rng));
    auto op_a = [&](std::size_t i, std::size_t p) { return ta ? a.at(p, i) : a.at(i, p); };
    auto op_b = [&](std::size_t p, std::size_t j) { return tb ? b.at(j, p) : b.at(p, j); };
    const std::size_t nan_i = tc.m / 2, nan_p = tc.k / 2;
    if (tc.nan_a && tc.m > 0 && tc.k > 0) {
        if (ta) a.at(nan_p, nan_i) = std::numeric_limits<T>::quiet_NaN();
        else a.at(nan_i, nan_p) = std::numeric_limits<T>::quiet_NaN();
    }

    // Entries to check, with their reference and bound.
    struct Expect {
        std::size_t i, j;
        long double value, bound;
    };
    std::vector<Expect> expect;
    const T alpha = static_cast<T>(tc.alpha), beta = static_cast<T>(tc.beta);
    const long double eps = std::numeric_limits<T>::epsilon();
    auto reference = [&](std::size_t i, std::size_t j) {
        long double sum = 0, mag = 0;
        if (alpha != T(0)) {   // alpha == 0: A and B are not read (BLAS), so a NaN there does not show
            for (std::size_t p = 0; p < tc.k; ++p) {
                const long double prod = static_cast<long double>(op_a(i, p)) * op_b(p, j);
                sum += prod;
                mag += std::fabs(prod);
            }
        }
        long double value = static_cast<long double>(alpha) * sum;
        mag *= std::fabs(static_cast<long double>(alpha));
        if (beta != T(0)) {
            value += static_cast<long double>(beta) * c0.at(i, j);
            mag += std::fabs(static_cast<long double>(beta) * c0.at(i, j));
        }
        expect.push_back({i, j, value, (static_cast<long double>(tc.k) + 3) * eps * mag});
    };
    if (tc.samples == 0) {
        for (std::size_t i = 0; i < tc.m; ++i)
            for (std::size_t j = 0; j < tc.n; ++j) reference(i, j);
    } else if (tc.m > 0 && tc.n > 0) {
        reference(0, 0);
        reference(tc.m - 1, tc.n - 1);
        reference(tc.m - 1, 0);
        reference(0, tc.n - 1);
        std::uniform_int_distribution<std::size_t> row(0, tc.m - 1), col(0, tc.n - 1);
        for (std::size_t s = 0; s < tc.samples; ++s) reference(row(rng), col(rng));
    }

    for (const Isa& isa : isas()) {
        Stored<T> c = c0;
        REQUIRE(kernels_of<T>(isa.table).gemm(tc.layout, tc.ta, tc.tb, tc.m, tc.n, tc.k, alpha, a.data(), a.ld,
                                              b.data(), b.ld, beta, c.data(), c.ld, &workspace()) == 0);
        std::size_t wrong = 0, padding_touched = 0;
        std::string first;
        for (const Expect& e : expect) {
            const long double got = c.at(e.i, e.j);
            const bool ok = std::isnan(e.value) ? std::isnan(got) : std::fabs(got - e.value) <= e.bound;
            if (!ok && wrong++ == 0) {
                std::ostringstream s;
                s << "C(" << e.i << "," << e.j << ") = " << static_cast<double>(got) << ", expected "
                  << static_cast<double>(e.value) << " +- " << static_cast<double>(e.bound);
                first = s.str();
            }
        }
        // Everything outside the m x n matrix (leading-dimension padding, the slack element) is untouched.
        std::vector<bool> inside(c.buffer.size(), false);
        for (std::size_t i = 0; i < tc.m; ++i)
            for (std::size_t j = 0; j < tc.n; ++j) inside[c.index(i, j)] = true;
        for (std::size_t x = 0; x < c.buffer.size(); ++x)
            if (!inside[x] && c.buffer[x] != static_cast<T>(kSentinel)) ++padding_touched;
        INFO(std::string(isa.name), " f", sizeof(T) * 8, " ", tc.describe(), " ", first);
        CHECK(wrong == 0);
        CHECK(padding_touched == 0);
    }
}

constexpr double kScalars[] = {0.0, 1.0, -1.0, 0.37};
constexpr Layout kLayouts[] = {Layout::col_major, Layout::row_major};
constexpr Transpose kTrans[] = {Transpose::none, Transpose::transpose};

template <class T>
void square_sizes() {
    std::uint32_t seed = 100;
    for (std::size_t n = 0; n <= 67; ++n) {
        int combo = 0;
        for (Layout layout : kLayouts)
            for (Transpose ta : kTrans)
                for (Transpose tb : kTrans) {
                    ++combo;
                    if (kEmulated && (combo + static_cast<int>(n)) % 2 != 0) continue;
                    Case tc;
                    tc.layout = layout;
                    tc.ta = ta;
                    tc.tb = tb;
                    tc.m = tc.n = tc.k = n;
                    // alpha in {1, -1, 0.37} here (alpha == 0 has its own case), beta from all four.
                    tc.alpha = kScalars[1 + (n + static_cast<std::size_t>(combo)) % 3];
                    tc.beta = kScalars[(n * 3 + static_cast<std::size_t>(combo)) % 4];
                    tc.pad = (n + static_cast<std::size_t>(combo)) % 3 == 0 ? 0 : 2 * (n % 3) + 1;
                    tc.offset = (n + static_cast<std::size_t>(combo)) % 2;
                    tc.seed = seed++;
                    run_case<T>(tc);
                }
    }
}

template <class T>
void rectangular_sizes() {
    std::vector<std::size_t> dims = {0, 1, 2, 3, 5, 7, 8, 9, 15, 16, 17, 31, 33, 47, 64, 67};
    if (kEmulated) dims = {0, 1, 2, 3, 7, 8, 9, 17, 33, 47, 67};
    std::uint32_t seed = 5000;
    std::size_t index = 0;
    for (std::size_t m : dims)
        for (std::size_t n : dims)
            for (std::size_t k : dims) {
                ++index;
                Case tc;
                tc.layout = kLayouts[index % 2];
                tc.ta = kTrans[(index / 2) % 2];
                tc.tb = kTrans[(index / 4 + index / 16) % 2];
                tc.m = m;
                tc.n = n;
                tc.k = k;
                tc.alpha = kScalars[1 + index % 3];
                tc.beta = kScalars[(index / 3) % 4];
                tc.pad = index % 5 == 0 ? 0 : index % 4 + 1;
                tc.offset = (index / 7) % 2;
                tc.seed = seed++;
                run_case<T>(tc);
            }
}

template <class T>
void large_sizes() {
    std::uint32_t seed = 9000;
    struct Shape {
        std::size_t m, n, k, samples;
    };
    // The skinny ones (one side <= 24 after the row-major swap, k long) take the unpacked path past its volume.
    std::vector<Shape> shapes = {{128, 128, 128, 0},    {255, 255, 255, 0},    {300, 200, 500, 3000},
                                 {97, 1100, 260, 3000}, {16, 200, 1200, 3000}, {200, 20, 1100, 3000}};
    if (kEmulated) shapes = {{128, 128, 128, 2000}, {300, 200, 500, 1000}, {16, 200, 1200, 1000}};
    int combo = 0;
    for (const Shape& s : shapes)
        for (Layout layout : kLayouts)
            for (Transpose ta : kTrans)
                for (Transpose tb : kTrans) {
                    ++combo;
                    // Every combination at 128; two per shape above that (alternating), to keep the time down.
                    if (s.m > 128 && combo % 4 != 0) continue;
                    Case tc;
                    tc.layout = layout;
                    tc.ta = ta;
                    tc.tb = tb;
                    tc.m = s.m;
                    tc.n = s.n;
                    tc.k = s.k;
                    tc.alpha = kScalars[1 + static_cast<std::size_t>(combo) % 3];
                    tc.beta = kScalars[static_cast<std::size_t>(combo) % 4];
                    tc.pad = static_cast<std::size_t>(combo) % 3;
                    tc.offset = static_cast<std::size_t>(combo) % 2;
                    tc.samples = s.samples;
                    tc.seed = seed++;
                    run_case<T>(tc);
                }
}

template <class T>
void special_values() {
    std::uint32_t seed = 20000;
    const std::size_t sizes[] = {1, 4, 8, 9, 17, 33, 70, 150};
    for (std::size_t n : sizes) {
        if (kEmulated && n > 70) continue;
        for (Layout layout : kLayouts)
            for (Transpose ta : kTrans)
                for (Transpose tb : kTrans) {
                    Case tc;
                    tc.layout = layout;
                    tc.ta = ta;
                    tc.tb = tb;
                    tc.m = n;
                    tc.n = n + 3;
                    tc.k = n + 1;
                    tc.offset = 1;
                    tc.pad = 1;
                    // beta == 0 overwrites C without reading it: NaN there does not come through.
                    tc.nan_c = true;
                    tc.beta = 0;
                    tc.alpha = 0.37;
                    tc.seed = seed++;
                    run_case<T>(tc);
                    // A NaN in A reaches exactly its row of C.
                    tc.nan_c = false;
                    tc.nan_a = true;
                    tc.alpha = 1;
                    tc.beta = -1;
                    tc.seed = seed++;
                    run_case<T>(tc);
                    // alpha == 0 reads neither A nor B: C = beta * C, the NaN in A does not show either.
                    tc.alpha = 0;
                    tc.beta = 0.37;
                    tc.seed = seed++;
                    run_case<T>(tc);
                    tc.beta = 0;
                    tc.nan_c = true;
                    run_case<T>(tc);
                }
    }
}

}  // namespace

TEST_CASE("gemm: every ISA this machine runs has f32 and f64 gemm") {
    for (const Isa& isa : isas()) {
        INFO(std::string(isa.name));
        const bool has_f32 = isa.table.f32.gemm != nullptr, has_f64 = isa.table.f64.gemm != nullptr;
        CHECK(has_f32);
        CHECK(has_f64);
    }
    MESSAGE("ISAs under test: ", isas().size());
}

TEST_CASE("gemm f64: square sizes 0..67, both layouts, all transposes") { square_sizes<double>(); }
TEST_CASE("gemm f32: square sizes 0..67, both layouts, all transposes") { square_sizes<float>(); }
TEST_CASE("gemm f64: m, n, k independently, including 0 and ragged edges") { rectangular_sizes<double>(); }
TEST_CASE("gemm f32: m, n, k independently, including 0 and ragged edges") { rectangular_sizes<float>(); }
TEST_CASE("gemm f64: large (cache-blocked) sizes") { large_sizes<double>(); }
TEST_CASE("gemm f32: large (cache-blocked) sizes") { large_sizes<float>(); }

TEST_CASE("gemm f32: 1024 x 1024 x 1024, sampled") {
    if (kEmulated) return;   // minutes under qemu; 128..500 cover the blocking there
    Case tc;
    tc.layout = Layout::row_major;
    tc.m = tc.n = tc.k = 1024;
    tc.alpha = 1;
    tc.beta = 0.37;
    tc.samples = 2000;
    tc.offset = 1;
    run_case<float>(tc);
}

TEST_CASE("gemm f64: NaN and zero scalars follow BLAS") { special_values<double>(); }
TEST_CASE("gemm f32: NaN and zero scalars follow BLAS") { special_values<float>(); }

TEST_CASE("GemmWorkspace: one per thread, aligned, created on request") {
    GemmWorkspace* mine = GemmWorkspace::this_thread();
    REQUIRE(mine != nullptr);
    CHECK(GemmWorkspace::this_thread() == mine);
    CHECK(GemmWorkspace::prepare_this_thread() == 0);
    CHECK(GemmWorkspace::this_thread() == mine);
    CHECK(reinterpret_cast<std::uintptr_t>(mine->pack_a()) % GemmWorkspace::kAlignment == 0);
    CHECK(reinterpret_cast<std::uintptr_t>(mine->pack_b()) % GemmWorkspace::kAlignment == 0);

    GemmWorkspace* other = nullptr;
    std::thread([&] { other = GemmWorkspace::this_thread(); }).join();
    CHECK(other != nullptr);
    CHECK(other != mine);

    std::unique_ptr<GemmWorkspace> own;
    REQUIRE(GemmWorkspace::create(own) == 0);
    REQUIRE(own != nullptr);
    CHECK(own.get() != mine);
    CHECK(reinterpret_cast<std::uintptr_t>(own->pack_a()) % GemmWorkspace::kAlignment == 0);
    // An explicit workspace works like the thread's own, and a shape big enough to pack packs into it.
    constexpr std::size_t kN = 128;
    const std::vector<double> ones(kN * kN, 1.0);
    for (const Isa& isa : isas()) {
        INFO(std::string(isa.name));
        std::memset(own->pack_b(), 0xff, 64);
        std::vector<double> c(kN * kN, -1.0);
        REQUIRE(isa.table.f64.gemm(Layout::row_major, Transpose::none, Transpose::none, kN, kN, kN, 1.0, ones.data(),
                                   kN, ones.data(), kN, 0.0, c.data(), kN, own.get()) == 0);
        CHECK(std::count(c.begin(), c.end(), double(kN)) == static_cast<std::ptrdiff_t>(kN * kN));
        double first_packed = 0;
        std::memcpy(&first_packed, own->pack_b(), sizeof first_packed);
        CHECK(first_packed == 1.0);
    }
}
