// compute: our kernels (cf::compute, through the validating entry points of engine/compute/blas.hpp, on the ISA the
// dispatcher chose) against OpenBLAS, BLIS and Eigen, side by side in one run, single-threaded on the pinned CPU:
//  - ddot, n = 64 .. 4M (x4 steps, then x2 until x and y together span 4x the last-level cache);
//  - dgemv row-major y = A x, square n = 32 .. 2048 (x2, then until A spans 4x the last-level cache);
//  - dgemm row-major C = A B, square n = 4 .. 1024, and the skinny MxNxK 1024x16x1024, 16x1024x16, 64x64x1024;
//  - Morton 2D encode of 1024-point batches, ours against a plain magic-bits loop (ns per point).
// Every row first calls each contender once and checks its result against OpenBLAS's (BLIS's, or a plain loop's when
// OpenBLAS is missing) within the rounding bound; a difference is an ERROR note, never silent. Then the contenders
// take turns in rounds; a sample times a batch of calls sized from that first call, and a row's figure is the median
// sample. Ceilings come from the same run: an FMA-throughput probe in the dispatcher's ISA, and read/copy bandwidth
// over a buffer several times the last-level cache.
//
// Fairness: every contender is called through a function pointer (ours through a wrapper of the public entry point,
// the BLAS libraries through CBLAS pointers resolved from their own dlopen() handles, Eigen through out-of-line
// wrappers compiled with its own ISA flags); all single-threaded, same buffers (64-byte aligned), same shapes.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <limits>
#include <string>
#include <vector>

#include "bench/cf-latency/compute_peers.hpp"
#include "bench/cf-latency/compute_probes.hpp"
#include "bench/cf-latency/scenario.hpp"
#include "bench/cf-latency/series.hpp"
#include "engine/compute/blas.hpp"
#include "engine/compute/dispatch.hpp"
#include "engine/compute/morton.hpp"
#include "platform/cpu/cpu_info.hpp"
#include "platform/os/cycle_counter.hpp"

#if CF_HAVE_EIGEN
#include "bench/cf-latency/compute_eigen.hpp"
#endif

namespace cf::latency {
namespace {

using Clock = std::chrono::steady_clock;

constexpr const char* kOurs = "cf::compute";
constexpr int kTargetRounds = 7;            // rounds a row aims for within its share of the duration
constexpr double kMinSampleS = 20e-6;       // a sample times at least this long a batch of calls ...
constexpr double kMaxSampleS = 5e-3;        // ... and, for calls shorter than this, no longer
constexpr double kPlainCheckMaxFlops = 1 << 26;   // the plain reference loop checks rows up to this size
constexpr std::size_t kMortonBatch = 1024;
// Data this many times the last-level cache streams from memory on every call (a victim or non-LRU cache keeps
// part of a working set twice its size); the bandwidth probe's buffer is as large.
constexpr std::size_t kBeyondLlc = 4;

double seconds_since(Clock::time_point start) {
    return std::chrono::duration<double>(Clock::now() - start).count();
}

// ---- Shapes ------------------------------------------------------------------------------------------------------

enum class Kernel { dot, gemv, gemm };

struct Shape {
    Kernel kernel;
    std::size_t m = 1, n = 1, k = 1;   // dot: n; gemv: m x n; gemm: M x N x K

    double flops() const {
        const double mn = static_cast<double>(m) * static_cast<double>(n);
        return kernel == Kernel::dot ? 2.0 * static_cast<double>(n)
               : kernel == Kernel::gemv ? 2.0 * mn
                                        : 2.0 * mn * static_cast<double>(k);
    }
    // The bytes one call has to read and write at least.
    double bytes() const {
        const double doubles = kernel == Kernel::dot    ? 2.0 * static_cast<double>(n)
                               : kernel == Kernel::gemv ? static_cast<double>(m * n + n + m)
                                                        : static_cast<double>(m * k + k * n + m * n);
        return doubles * sizeof(double);
    }
    std::size_t reduction() const { return kernel == Kernel::gemm ? k : n; }   // terms summed per result
};

std::string kernel_name(Kernel kernel) {
    return kernel == Kernel::dot ? "ddot" : kernel == Kernel::gemv ? "dgemv" : "dgemm";
}

std::string count_label(std::size_t value) {
    if (value >= (1u << 20) && value % (1u << 20) == 0) return std::to_string(value >> 20) + "M";
    if (value >= (1u << 10) && value % (1u << 10) == 0) return std::to_string(value >> 10) + "K";
    return std::to_string(value);
}

std::string bytes_label(double bytes) {
    char text[32];
    if (bytes >= 1 << 20) std::snprintf(text, sizeof text, "%.3g MiB", bytes / (1 << 20));
    else if (bytes >= 1 << 10) std::snprintf(text, sizeof text, "%.3g KiB", bytes / (1 << 10));
    else std::snprintf(text, sizeof text, "%.0f B", bytes);
    return text;
}

std::string shape_label(const Shape& shape) {
    switch (shape.kernel) {
        case Kernel::dot: return "ddot n=" + count_label(shape.n) + " (" + bytes_label(shape.bytes()) + ")";
        case Kernel::gemv:
            return "dgemv " + std::to_string(shape.m) + "x" + std::to_string(shape.n) + " (" +
                   bytes_label(shape.bytes()) + ")";
        case Kernel::gemm:
            return "dgemm " + std::to_string(shape.m) + "x" + std::to_string(shape.n) + "x" + std::to_string(shape.k);
    }
    return "?";
}

std::vector<Shape> make_shapes(std::size_t llc_bytes) {
    const double beyond = static_cast<double>(kBeyondLlc * llc_bytes);
    std::vector<Shape> shapes;
    std::size_t n = 64;
    for (; n <= (std::size_t{4} << 20); n *= 4) shapes.push_back({Kernel::dot, 1, n, 1});
    for (n = std::size_t{8} << 20; shapes.back().bytes() < beyond && n <= (std::size_t{64} << 20); n *= 2) {
        shapes.push_back({Kernel::dot, 1, n, 1});
    }
    for (n = 32; n <= 2048; n *= 2) shapes.push_back({Kernel::gemv, n, n, 1});
    for (n = 4096; shapes.back().bytes() < beyond && n <= 16384; n *= 2) shapes.push_back({Kernel::gemv, n, n, 1});
    for (n = 4; n <= 1024; n *= 2) shapes.push_back({Kernel::gemm, n, n, n});
    shapes.push_back({Kernel::gemm, 1024, 16, 1024});
    shapes.push_back({Kernel::gemm, 16, 1024, 16});
    shapes.push_back({Kernel::gemm, 64, 64, 1024});
    return shapes;
}

// ---- Contenders --------------------------------------------------------------------------------------------------

// Row-major, no transpose, alpha 1, beta 0, tightly packed. 0, or a negative errno (ours validates its arguments).
using DotFn = int (*)(const void* self, std::size_t n, const double* x, const double* y, double& out);
using GemvFn = int (*)(const void* self, std::size_t m, std::size_t n, const double* a, const double* x, double* y);
using GemmFn = int (*)(const void* self, std::size_t m, std::size_t n, std::size_t k, const double* a,
                       const double* b, double* c);

struct Contender {
    std::string name;
    const void* self = nullptr;
    DotFn dot = nullptr;
    GemvFn gemv = nullptr;
    GemmFn gemm = nullptr;
};

int ours_dot(const void*, std::size_t n, const double* x, const double* y, double& out) {
    return compute::dot(n, x, y, out);
}
int ours_gemv(const void*, std::size_t m, std::size_t n, const double* a, const double* x, double* y) {
    return compute::gemv(compute::Layout::row_major, compute::Transpose::none, m, n, 1.0, a, n, x, 0.0, y);
}
int ours_gemm(const void*, std::size_t m, std::size_t n, std::size_t k, const double* a, const double* b, double* c) {
    return compute::gemm(compute::Layout::row_major, compute::Transpose::none, compute::Transpose::none, m, n, k, 1.0,
                         a, k, b, n, 0.0, c, n);
}

const CblasApi& cblas(const void* self) { return *static_cast<const CblasApi*>(self); }
int to_int(std::size_t value) { return static_cast<int>(value); }   // every shape fits

int cblas_dot(const void* self, std::size_t n, const double* x, const double* y, double& out) {
    out = cblas(self).ddot(to_int(n), x, 1, y, 1);
    return 0;
}
int cblas_gemv(const void* self, std::size_t m, std::size_t n, const double* a, const double* x, double* y) {
    cblas(self).dgemv(CblasApi::kRowMajor, CblasApi::kNoTrans, to_int(m), to_int(n), 1.0, a, to_int(n), x, 1, 0.0, y,
                      1);
    return 0;
}
int cblas_gemm(const void* self, std::size_t m, std::size_t n, std::size_t k, const double* a, const double* b,
               double* c) {
    cblas(self).dgemm(CblasApi::kRowMajor, CblasApi::kNoTrans, CblasApi::kNoTrans, to_int(m), to_int(n), to_int(k),
                      1.0, a, to_int(k), b, to_int(n), 0.0, c, to_int(n));
    return 0;
}

#if CF_HAVE_EIGEN
int eigen_dot(const void*, std::size_t n, const double* x, const double* y, double& out) {
    out = eigen_ddot(n, x, y);
    return 0;
}
int eigen_gemv(const void*, std::size_t m, std::size_t n, const double* a, const double* x, double* y) {
    eigen_dgemv(m, n, a, x, y);
    return 0;
}
int eigen_gemm(const void*, std::size_t m, std::size_t n, std::size_t k, const double* a, const double* b,
               double* c) {
    eigen_dgemm(m, n, k, a, b, c);
    return 0;
}

// compute_eigen.cpp is built with -mavx2 -mfma -mavx512f on x86_64 (NEON is baseline on ARM64).
bool eigen_runnable(std::string& why_not) {
#if defined(__x86_64__)
    const platform::CpuInfo& cpu = platform::cpu_info();
    if (cpu.isa_level != platform::IsaLevel::avx512 || !cpu.avx512f || !cpu.fma || !cpu.avx2) {
        why_not = "it is built for AVX-512F + FMA, which this CPU (or OS) does not run";
        return false;
    }
#endif
    (void)why_not;
    return true;
}
#endif

// The plain loops: the check's reference when no BLAS library loaded (small rows only).
double plain_dot(std::size_t n, const double* x, const double* y) {
    double sum = 0;
    for (std::size_t i = 0; i < n; ++i) sum += x[i] * y[i];
    return sum;
}
void plain_gemm(std::size_t m, std::size_t n, std::size_t k, const double* a, const double* b, double* c) {
    for (std::size_t i = 0; i < m; ++i) {
        for (std::size_t j = 0; j < n; ++j) c[i * n + j] = 0;
        for (std::size_t l = 0; l < k; ++l) {
            for (std::size_t j = 0; j < n; ++j) c[i * n + j] += a[i * k + l] * b[l * n + j];
        }
    }
}

// ---- Measuring ---------------------------------------------------------------------------------------------------

struct Operands {
    const double* a;   // dot: x; gemv, gemm: A
    const double* b;   // dot: y; gemv: x; gemm: B
    double* out;       // gemv: y; gemm: C
};

int call(const Contender& contender, const Shape& shape, const Operands& operands, double& dot_out) {
    switch (shape.kernel) {
        case Kernel::dot: return contender.dot(contender.self, shape.n, operands.a, operands.b, dot_out);
        case Kernel::gemv:
            return contender.gemv(contender.self, shape.m, shape.n, operands.a, operands.b, operands.out);
        case Kernel::gemm:
            return contender.gemm(contender.self, shape.m, shape.n, shape.k, operands.a, operands.b, operands.out);
    }
    return -1;
}

// Seconds per call over `reps` back-to-back calls, timed by the cycle counter; the first failing status is kept.
double time_calls(const Contender& contender, const Shape& shape, const Operands& operands, std::uint64_t reps,
                  const TickRuler& ruler, int& status, double& dot_out) {
    int first_error = 0;
    const std::uint64_t start = platform::read_cycles_ordered();
    for (std::uint64_t r = 0; r < reps; ++r) {
        const int rc = call(contender, shape, operands, dot_out);
        if (rc != 0 && first_error == 0) first_error = rc;
        keep(dot_out);
    }
    const std::uint64_t ticks = platform::read_cycles_end() - start;
    if (status == 0) status = first_error;
    return static_cast<double>(ticks) / ruler.ticks_per_second() / static_cast<double>(reps);
}

std::uint64_t next_random(std::uint64_t& state) {   // xorshift64
    state ^= state << 13;
    state ^= state >> 7;
    state ^= state << 17;
    return state;
}

// Values in [-1, 1): every partial sum of a k-term product stays below k in magnitude.
void fill_uniform(double* values, std::size_t count, std::uint64_t seed) {
    std::uint64_t state = seed;
    for (std::size_t i = 0; i < count; ++i) {
        values[i] = static_cast<double>(next_random(state) >> 11) * 0x1p-52 - 1.0;
    }
}

double median(std::vector<double> values) {
    if (values.empty()) return 0;
    std::nth_element(values.begin(), values.begin() + static_cast<std::ptrdiff_t>(values.size() / 2), values.end());
    return values[values.size() / 2];
}

std::string errno_text(int status) { return std::to_string(status) + " (" + std::strerror(-status) + ")"; }

struct RowOutcome {
    std::vector<double> gflops;   // per contender, 0 if not measured
    double round_s = 0;           // one call of every contender, from the first (checked) call
};

struct ComputeRun {
    const std::vector<Contender>& contenders;
    std::size_t reference;                // index of the check's reference, contenders.size() for the plain loops
    const TickRuler& ruler;
    double row_budget_s = 0;
    ScenarioResult& result;
    std::vector<std::string> unchecked;   // rows no reference could check
};

// The largest difference from `expected` the summation order alone can explain: |error| <= 2 k eps sum |terms|,
// and every term is below 1 in magnitude.
double tolerance(const Shape& shape) {
    const double k = static_cast<double>(shape.reduction());
    return 2.0 * k * k * std::numeric_limits<double>::epsilon() + 1e-300;
}

// First call of every contender, checked against the reference (the first BLAS library, else the plain loop).
// Returns the seconds each call took. A contender whose call failed gets a negative time (it is not measured) and
// an ERROR note; one whose result disagrees gets an ERROR note and is still measured.
std::vector<double> checked_first_calls(ComputeRun& run, const Shape& shape, const Operands& operands,
                                        std::vector<double>& expected) {
    const std::string label = shape_label(shape);
    const std::size_t outputs = shape.kernel == Kernel::dot ? 1 : shape.kernel == Kernel::gemv ? shape.m
                                                                                              : shape.m * shape.n;
    bool have_expected = false;
    expected.assign(outputs, 0.0);
    const std::size_t reference = run.reference;
    if (reference == run.contenders.size() && shape.flops() <= kPlainCheckMaxFlops) {
        switch (shape.kernel) {
            case Kernel::dot: expected[0] = plain_dot(shape.n, operands.a, operands.b); break;
            case Kernel::gemv: plain_gemm(shape.m, 1, shape.n, operands.a, operands.b, expected.data()); break;
            case Kernel::gemm:
                plain_gemm(shape.m, shape.n, shape.k, operands.a, operands.b, expected.data());
                break;
        }
        have_expected = true;
    }
    std::vector<double> seconds(run.contenders.size(), -1.0);
    // The reference runs first so every other contender can be compared as it finishes.
    std::vector<std::size_t> order;
    if (reference < run.contenders.size()) order.push_back(reference);
    for (std::size_t c = 0; c < run.contenders.size(); ++c) {
        if (c != reference) order.push_back(c);
    }
    const double tol = tolerance(shape);
    for (const std::size_t c : order) {
        const Contender& contender = run.contenders[c];
        double dot_out = std::numeric_limits<double>::quiet_NaN();
        // NaN in the output: beta = 0 must overwrite it, so an element left unwritten shows as a mismatch.
        if (operands.out != nullptr) std::fill(operands.out, operands.out + outputs, dot_out);
        int status = 0;
        const double s = time_calls(contender, shape, operands, 1, run.ruler, status, dot_out);
        if (status != 0) {
            run.result.notes.push_back("ERROR: " + label + ": " + contender.name + " returned " +
                                       errno_text(status) + "; not measured");
            continue;
        }
        const double* got = shape.kernel == Kernel::dot ? &dot_out : operands.out;
        if (c == reference) {
            std::copy(got, got + outputs, expected.begin());
            have_expected = true;
        } else if (have_expected) {
            double worst = 0;
            std::size_t worst_at = 0;
            for (std::size_t i = 0; i < outputs; ++i) {
                const double diff = std::fabs(got[i] - expected[i]);
                if (!(diff <= worst)) {   // NaN sticks
                    worst = diff;
                    worst_at = i;
                }
                if (std::isnan(diff)) break;
            }
            if (!(worst <= tol)) {
                char text[200];
                std::snprintf(text, sizeof text, "%s differs from %s at element %zu: %.17g vs %.17g (|diff| %.3g > "
                              "bound %.3g)", contender.name.c_str(),
                              reference < run.contenders.size() ? run.contenders[reference].name.c_str()
                                                                : "the plain loop",
                              worst_at, got[worst_at], expected[worst_at], worst, tol);
                run.result.notes.push_back("ERROR: result mismatch: " + label + ": " + text);
            }
        }
        seconds[c] = s;
    }
    if (!have_expected) run.unchecked.push_back(label);
    return seconds;
}

RowOutcome measure_row(ComputeRun& run, const Shape& shape, const Operands& operands, std::vector<double>& expected) {
    RowOutcome outcome;
    outcome.gflops.assign(run.contenders.size(), 0.0);
    const std::vector<double> first = checked_first_calls(run, shape, operands, expected);
    std::vector<std::uint64_t> reps(run.contenders.size(), 0);
    const double sample_s = std::clamp(run.row_budget_s / (kTargetRounds * static_cast<double>(run.contenders.size())),
                                       kMinSampleS, kMaxSampleS);
    for (std::size_t c = 0; c < run.contenders.size(); ++c) {
        if (first[c] < 0) continue;
        outcome.round_s += first[c];
        reps[c] = std::max<std::uint64_t>(1, static_cast<std::uint64_t>(sample_s / std::max(first[c], 1e-9)));
    }
    std::vector<std::vector<double>> rates(run.contenders.size());
    std::vector<bool> failed(run.contenders.size(), false);
    if (outcome.round_s <= 0) return outcome;   // nobody to measure
    const auto start = Clock::now();
    do {
        for (std::size_t c = 0; c < run.contenders.size(); ++c) {
            if (reps[c] == 0 || failed[c]) continue;
            int status = 0;
            double dot_out = 0;
            const double s = time_calls(run.contenders[c], shape, operands, reps[c], run.ruler, status, dot_out);
            if (status != 0) {
                run.result.notes.push_back("ERROR: " + shape_label(shape) + ": " + run.contenders[c].name +
                                           " returned " + errno_text(status) + " while measured");
                failed[c] = true;
                continue;
            }
            rates[c].push_back(shape.flops() / s / 1e9);
        }
    } while (seconds_since(start) < run.row_budget_s);
    for (std::size_t c = 0; c < run.contenders.size(); ++c) {
        if (!failed[c]) outcome.gflops[c] = median(rates[c]);
    }
    return outcome;
}

// ---- Morton ------------------------------------------------------------------------------------------------------

using MortonBatchFn = void (*)(const std::uint32_t* x, const std::uint32_t* y, std::uint64_t* out,
                               std::size_t count);

// Spreads the 32 bits of v to the even bits of the result.
std::uint64_t spread_bits(std::uint32_t v) {
    std::uint64_t x = v;
    x = (x | x << 16) & 0x0000FFFF0000FFFFull;
    x = (x | x << 8) & 0x00FF00FF00FF00FFull;
    x = (x | x << 4) & 0x0F0F0F0F0F0F0F0Full;
    x = (x | x << 2) & 0x3333333333333333ull;
    x = (x | x << 1) & 0x5555555555555555ull;
    return x;
}

// The reference: x in the even bits, y in the odd bits.
void morton_reference(const std::uint32_t* x, const std::uint32_t* y, std::uint64_t* out, std::size_t count) {
    for (std::size_t i = 0; i < count; ++i) out[i] = spread_bits(x[i]) | spread_bits(y[i]) << 1;
}

// Ours: the dispatched batch encode (PDEP, NEON or shift-and-mask, whichever start-up chose), same contract.
void ours_morton_encode(const std::uint32_t* x, const std::uint32_t* y, std::uint64_t* out, std::size_t count) {
    compute::morton_encode_2d64_batch(x, y, out, count);
}

void measure_morton(ComputeRun& run, double budget_s) {
    std::vector<std::uint32_t> x(kMortonBatch), y(kMortonBatch);
    std::vector<std::uint64_t> expected(kMortonBatch), got(kMortonBatch);
    std::uint64_t state = 0x9E3779B97F4A7C15ull;
    for (std::size_t i = 0; i < kMortonBatch; ++i) {
        x[i] = static_cast<std::uint32_t>(next_random(state));
        y[i] = static_cast<std::uint32_t>(next_random(state) >> 32);
    }
    morton_reference(x.data(), y.data(), expected.data(), kMortonBatch);

    struct MortonContender {
        std::string name;
        MortonBatchFn encode;
        LatencyHistogram picos = make_picosecond_histogram();
    };
    // Ours is checked against the reference before it is timed.
    ours_morton_encode(x.data(), y.data(), got.data(), kMortonBatch);
    const auto bad = std::mismatch(got.begin(), got.end(), expected.begin());
    if (bad.first != got.end()) {
        const std::size_t at = static_cast<std::size_t>(bad.first - got.begin());
        char text[160];
        std::snprintf(text, sizeof text, "point %zu (x %u, y %u): 0x%016llx vs 0x%016llx", at, x[at], y[at],
                      static_cast<unsigned long long>(*bad.first), static_cast<unsigned long long>(*bad.second));
        run.result.notes.push_back(std::string("ERROR: result mismatch: Morton 2D encode: ") + kOurs +
                                   " differs from the magic-bits reference at " + text);
    }
    run.result.notes.push_back(std::string(kOurs) + " Morton 2D encode: morton_encode_2d64_batch, implementation " +
                               compute::morton_impl_name(compute::active_morton_impl()));
    std::vector<MortonContender> contenders;
    contenders.push_back({std::string(kOurs) + " Morton 2D encode", ours_morton_encode});
    contenders.push_back({"magic-bits reference loop", morton_reference});

    const auto start = Clock::now();
    do {
        for (MortonContender& contender : contenders) {
            for (int b = 0; b < 64; ++b) {
                const MortonBatchFn encode = contender.encode;
                const std::uint64_t t0 = platform::read_cycles_ordered();
                encode(x.data(), y.data(), got.data(), kMortonBatch);
                const std::uint64_t ticks = platform::read_cycles_end() - t0;
                keep(got[kMortonBatch - 1]);
                const std::uint64_t net = ticks > run.ruler.overhead_ticks() ? ticks - run.ruler.overhead_ticks() : 0;
                contender.picos.record(run.ruler.to_picos(net) / static_cast<std::int64_t>(kMortonBatch));
            }
        }
    } while (seconds_since(start) < budget_s);
    const std::size_t first = run.result.series.size();
    for (const MortonContender& contender : contenders) {
        run.result.series.push_back(make_series(contender.name + " (per point)", contender.picos));
    }
    run.result.ratios.push_back(make_ratio(std::string(kOurs) + " / magic-bits reference, Morton 2D encode",
                                           run.result.series[first], run.result.series[first + 1]));
}

// ---- Report ------------------------------------------------------------------------------------------------------

// The text report shows these as three grids (kRateTable, kPeakTable, kMemoryTable), one row per shape.
constexpr const char* kRateTable = "GFLOP/s, and ours / peer";
constexpr const char* kPeakTable = "% of the FMA peak probe";
constexpr const char* kMemoryTable = "beyond 4x the LLC: GB/s, and % of the read bandwidth probe";

void add_row_figures(ComputeRun& run, const Shape& shape, const RowOutcome& outcome, double peak_gflops,
                     double read_gbs, bool beyond_llc) {
    const std::string row = shape_label(shape);
    const std::string label = row + ": ";
    std::vector<Figure>& figures = run.result.figures;
    for (std::size_t c = 0; c < run.contenders.size(); ++c) {
        const std::string& name = run.contenders[c].name;
        if (outcome.gflops[c] > 0) figures.push_back({label + name, outcome.gflops[c], "GFLOP/s", kRateTable, row, name});
    }
    const bool ours_first = !run.contenders.empty() && run.contenders[0].name == kOurs && outcome.gflops[0] > 0;
    for (std::size_t c = 1; ours_first && c < run.contenders.size(); ++c) {
        const std::string& name = run.contenders[c].name;
        if (outcome.gflops[c] > 0) {
            figures.push_back({label + "ratio " + kOurs + " / " + name, outcome.gflops[0] / outcome.gflops[c], "x",
                               kRateTable, row, "/" + name});
        }
    }
    for (std::size_t c = 0; c < run.contenders.size(); ++c) {
        const std::string& name = run.contenders[c].name;
        if (outcome.gflops[c] > 0 && peak_gflops > 0) {
            figures.push_back({label + name + " of FMA peak", 100 * outcome.gflops[c] / peak_gflops, "%", kPeakTable,
                               row, name});
        }
    }
    if (shape.kernel != Kernel::gemm && beyond_llc) {
        const double bytes_per_flop = shape.bytes() / shape.flops();
        for (std::size_t c = 0; c < run.contenders.size(); ++c) {
            const std::string& name = run.contenders[c].name;
            if (outcome.gflops[c] <= 0) continue;
            const double gbs = outcome.gflops[c] * bytes_per_flop;
            figures.push_back({label + name + " bandwidth", gbs, "GB/s", kMemoryTable, row, name + " GB/s"});
            if (read_gbs > 0) {
                figures.push_back({label + name + " of read bandwidth", 100 * gbs / read_gbs, "%", kMemoryTable, row,
                                   name + " %"});
            }
        }
    }
}

}  // namespace

ScenarioResult run_compute_scenario(ScenarioContext& context) {
    ScenarioResult result;
    result.scenario = "compute";
    const TickRuler ruler;
    const platform::IsaLevel isa = compute::active_isa();

    // The contenders: ours first, then the BLAS libraries (OpenBLAS first: the check's reference), then Eigen.
    std::vector<Contender> contenders = {{kOurs, nullptr, ours_dot, ours_gemv, ours_gemm}};
    const ComputePeers& peers = compute_peers();
    for (const BlasPeer& peer : peers.blas) {
        contenders.push_back({peer.name, &peer.api, cblas_dot, cblas_gemv, cblas_gemm});
        result.notes.push_back(peer.name + ": " + peer.about);
    }
    result.notes.insert(result.notes.end(), peers.notes.begin(), peers.notes.end());
#if CF_HAVE_EIGEN
    if (std::string why_not; eigen_runnable(why_not)) {
        contenders.push_back({"Eigen", nullptr, eigen_dot, eigen_gemv, eigen_gemm});
        result.notes.push_back(std::string("Eigen: ") + eigen_version() + ", header-only, SIMD " +
                               eigen_simd_in_use() + ", EIGEN_DONT_PARALLELIZE");
    } else {
        result.notes.push_back("Eigen skipped: " + why_not);
    }
#else
    result.notes.push_back("Eigen skipped: its headers (libeigen3-dev) were not found when configured");
#endif
    // The check's reference: the first BLAS library (OpenBLAS when it loaded), else the plain loops.
    const std::size_t reference = peers.blas.empty() ? contenders.size() : 1;

    std::size_t llc = last_level_cache_bytes(context.cpu);
    if (llc == 0) {
        llc = std::size_t{32} << 20;
        result.notes.push_back("last-level cache size unknown (no sysfs cache info): assumed 32 MiB");
    }
    const std::vector<Shape> shapes = make_shapes(llc);

    // The duration: 5% for the FMA probe, 2 x 2.5% for the bandwidth probe (before and after the rows), 10% for
    // Morton, 80% shared equally by the rows (each row gets at least one checked call and one sample per contender).
    const double total_s = context.duration_s;
    context.progress.begin("compute", total_s);
    const auto begin = Clock::now();
    const FmaPeak peak = measure_fma_peak(isa, 0.05 * total_s);
    const std::size_t probe_bytes =
        std::clamp<std::size_t>(kBeyondLlc * llc, std::size_t{64} << 20, std::size_t{512} << 20);
    // Bandwidth is probed before and after the rows and the best kept: other tenants' traffic comes and goes.
    Bandwidth bandwidth = measure_bandwidth(probe_bytes, 0.025 * total_s);
    context.progress.update(seconds_since(begin));

    ComputeRun run{contenders, reference, ruler, 0.8 * total_s / static_cast<double>(shapes.size()), result, {}};
    measure_morton(run, 0.1 * total_s);
    context.progress.update(seconds_since(begin));

    // A row whose one round of calls would take longer than this is left out (qemu, a slow scalar fallback).
    const double round_limit_s = std::max(0.5, 0.25 * total_s);
    struct Measured {
        Shape shape;
        RowOutcome outcome;
    };
    std::vector<Measured> measured;
    for (const Kernel kernel : {Kernel::dot, Kernel::gemv, Kernel::gemm}) {
        // One set of buffers per kernel, sized for its largest row.
        std::size_t a_count = 0, b_count = 0, out_count = 0;
        for (const Shape& shape : shapes) {
            if (shape.kernel != kernel) continue;
            a_count = std::max(a_count, kernel == Kernel::dot    ? shape.n
                                        : kernel == Kernel::gemv ? shape.m * shape.n
                                                                 : shape.m * shape.k);
            b_count = std::max(b_count, kernel == Kernel::gemm ? shape.k * shape.n : shape.n);
            out_count = std::max(out_count, kernel == Kernel::gemm ? shape.m * shape.n : shape.m);
        }
        AlignedArray<double> a = make_aligned_array<double>(a_count);
        AlignedArray<double> b = make_aligned_array<double>(b_count);
        AlignedArray<double> out = make_aligned_array<double>(out_count);
        if (!a || !b || !out) {
            result.notes.push_back("out of memory for the " + kernel_name(kernel) + " rows: not measured");
            continue;
        }
        fill_uniform(a.get(), a_count, 0x1234567 + static_cast<std::uint64_t>(kernel));
        fill_uniform(b.get(), b_count, 0x7654321 + static_cast<std::uint64_t>(kernel));
        std::fill(out.get(), out.get() + out_count, 0.0);
        const Operands operands{a.get(), b.get(), kernel == Kernel::dot ? nullptr : out.get()};
        std::vector<double> expected;
        double last_round_s = 0, last_flops = 0;
        for (const Shape& shape : shapes) {
            if (shape.kernel != kernel) continue;
            const double predicted_s = last_flops > 0 ? last_round_s * shape.flops() / last_flops : 0;
            if (predicted_s > round_limit_s) {
                char text[200];
                std::snprintf(text, sizeof text, " left out: one round of calls would take about %.2g s (limit "
                              "%.2g s at --duration %.3g); a longer --duration includes it", predicted_s,
                              round_limit_s, total_s);
                result.notes.push_back(shape_label(shape) + text);
                continue;
            }
            const RowOutcome outcome = measure_row(run, shape, operands, expected);
            if (outcome.round_s > 0) {
                last_round_s = outcome.round_s;
                last_flops = shape.flops();
            }
            measured.push_back({shape, outcome});
            context.progress.update(seconds_since(begin));
        }
    }
    const Bandwidth after = measure_bandwidth(probe_bytes, 0.025 * total_s);
    bandwidth.read_gbs = std::max(bandwidth.read_gbs, after.read_gbs);
    bandwidth.copy_gbs = std::max(bandwidth.copy_gbs, after.copy_gbs);
    bandwidth.bytes = std::max(bandwidth.bytes, after.bytes);
    context.progress.end();

    result.figures.push_back({std::string("FMA peak probe (") + platform::isa_level_name(isa) + ", one core)",
                              peak.gflops, "GFLOP/s"});
    result.notes.push_back("FMA peak probe: " + peak.how);
    if (bandwidth.bytes > 0) {
        result.figures.push_back({"read bandwidth probe (" + bytes_label(static_cast<double>(bandwidth.bytes)) +
                                      ", 4 streams)", bandwidth.read_gbs, "GB/s"});
        result.figures.push_back({"copy bandwidth probe (memcpy, read + written bytes)", bandwidth.copy_gbs, "GB/s"});
    } else {
        result.notes.push_back("bandwidth probe skipped: out of memory");
    }
    result.figures.push_back({"last-level cache", static_cast<double>(llc) / (1 << 20), "MiB"});
    for (const Measured& row : measured) {
        add_row_figures(run, row.shape, row.outcome, peak.gflops, bandwidth.read_gbs,
                        row.shape.bytes() >= static_cast<double>(kBeyondLlc * llc));
    }

    if (!run.unchecked.empty()) {
        std::string rows;
        for (const std::string& row : run.unchecked) rows += (rows.empty() ? "" : ", ") + row;
        result.notes.push_back("results not checked (no BLAS library to compare with, too large for the plain "
                               "loop): " + rows);
    }
    result.description = "double-precision kernels, one thread on the pinned CPU, " + std::string(kOurs) + " on " +
                         platform::isa_level_name(isa) + " vs the peers: GFLOP/s (median of interleaved samples), % of the same-run FMA peak, GB/s and % of read "
                         "bandwidth for rows beyond 4x the LLC; ratio = ours / peer in GFLOP/s (above 1: ours "
                         "faster); dgemm shapes are MxNxK, all row-major C = A B, y = A x. Morton 2D encode: ns per "
                         "point, 1024-point batches";
    return result;
}

}  // namespace cf::latency
