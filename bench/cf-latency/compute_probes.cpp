#include "bench/cf-latency/compute_probes.hpp"

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstring>
#include <fstream>
#include <string>

#if defined(__x86_64__)
#include <immintrin.h>
#elif defined(__aarch64__)
#include <arm_neon.h>
#endif

#include "bench/cf-latency/series.hpp"

namespace cf::latency {
namespace {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point start) {
    return std::chrono::duration<double>(Clock::now() - start).count();
}

// Hides a value from the optimiser, so loops over it cannot be folded.
template <class T>
T opaque_value(T value) noexcept {
    asm volatile("" : "+m"(value));
    return value;
}

// Each probe runs `iterations` steps of kChains independent dependency chains, acc = acc * m + c, with m = 1 and a
// tiny c hidden from the compiler: no overflow, no denormals, nothing to fold. The chains' sum is returned so the
// work stays live. 16 chains cover FMA latency x ports on current cores (4 cycles x 2 ports needs 8).
constexpr int kChains = 16;

#if defined(__x86_64__)
__attribute__((target("avx512f"))) double fma_chains_avx512(std::uint64_t iterations, double m, double c) {
    const __m512d vm = _mm512_set1_pd(m), vc = _mm512_set1_pd(c);
    __m512d acc[kChains];
#pragma GCC unroll 16
    for (int i = 0; i < kChains; ++i) acc[i] = _mm512_set1_pd(static_cast<double>(i));
    for (std::uint64_t it = 0; it < iterations; ++it) {
#pragma GCC unroll 16
        for (int i = 0; i < kChains; ++i) acc[i] = _mm512_fmadd_pd(acc[i], vm, vc);
    }
    __m512d sum = acc[0];
#pragma GCC unroll 16
    for (int i = 1; i < kChains; ++i) sum = _mm512_add_pd(sum, acc[i]);
    double lanes[8];   // not _mm512_reduce_add_pd: GCC 12 warns about its own header there
    _mm512_storeu_pd(lanes, sum);
    return lanes[0] + lanes[1] + lanes[2] + lanes[3] + lanes[4] + lanes[5] + lanes[6] + lanes[7];
}

// 12 chains: with m and c that is 14 of the 16 ymm registers.
constexpr int kAvx2Chains = 12;

__attribute__((target("avx2,fma"))) double fma_chains_avx2(std::uint64_t iterations, double m, double c) {
    const __m256d vm = _mm256_set1_pd(m), vc = _mm256_set1_pd(c);
    __m256d acc[kAvx2Chains];
#pragma GCC unroll 16
    for (int i = 0; i < kAvx2Chains; ++i) acc[i] = _mm256_set1_pd(static_cast<double>(i));
    for (std::uint64_t it = 0; it < iterations; ++it) {
#pragma GCC unroll 16
        for (int i = 0; i < kAvx2Chains; ++i) acc[i] = _mm256_fmadd_pd(acc[i], vm, vc);
    }
    __m256d sum = acc[0];
#pragma GCC unroll 16
    for (int i = 1; i < kAvx2Chains; ++i) sum = _mm256_add_pd(sum, acc[i]);
    double lanes[4];
    _mm256_storeu_pd(lanes, sum);
    return lanes[0] + lanes[1] + lanes[2] + lanes[3];
}
#endif

#if defined(__aarch64__)
double fma_chains_neon(std::uint64_t iterations, double m, double c) {
    const float64x2_t vm = vdupq_n_f64(m), vc = vdupq_n_f64(c);
    float64x2_t acc[kChains];
#pragma GCC unroll 16
    for (int i = 0; i < kChains; ++i) acc[i] = vdupq_n_f64(static_cast<double>(i));
    for (std::uint64_t it = 0; it < iterations; ++it) {
#pragma GCC unroll 16
        for (int i = 0; i < kChains; ++i) acc[i] = vfmaq_f64(vc, acc[i], vm);
    }
    float64x2_t sum = acc[0];
#pragma GCC unroll 16
    for (int i = 1; i < kChains; ++i) sum = vaddq_f64(sum, acc[i]);
    return vaddvq_f64(sum);
}
#endif

// The scalar kernels are built without FMA flags: a multiply and an add per step, 2 FLOP like one FMA.
double fma_chains_scalar(std::uint64_t iterations, double m, double c) {
    double acc[kChains];
#pragma GCC unroll 16
    for (int i = 0; i < kChains; ++i) acc[i] = static_cast<double>(i);
    for (std::uint64_t it = 0; it < iterations; ++it) {
#pragma GCC unroll 16
        for (int i = 0; i < kChains; ++i) acc[i] = acc[i] * m + c;
    }
    double sum = 0;
    for (const double value : acc) sum += value;
    return sum;
}

struct FmaProbe {
    double (*run)(std::uint64_t iterations, double m, double c);
    int chains, lanes;
    const char* what;
};

FmaProbe probe_for(platform::IsaLevel isa) {
    switch (isa) {
#if defined(__x86_64__)
        case platform::IsaLevel::avx512: return {fma_chains_avx512, kChains, 8, "8-lane (zmm) FMA"};
        case platform::IsaLevel::avx2_fma: return {fma_chains_avx2, kAvx2Chains, 4, "4-lane (ymm) FMA"};
#endif
#if defined(__aarch64__)
        case platform::IsaLevel::neon: return {fma_chains_neon, kChains, 2, "2-lane NEON FMLA"};
#endif
        default: return {fma_chains_scalar, kChains, 1, "scalar multiply+add"};
    }
}

// Sums every 64-bit word as four streams at once (one per quarter of the buffer), like a kernel reading several
// vectors or rows at once.
std::uint64_t read_words(const std::uint64_t* words, std::size_t count) {
    const std::size_t quarter = count / 4;
    const std::uint64_t* streams[4] = {words, words + quarter, words + 2 * quarter, words + 3 * quarter};
    std::uint64_t acc[8] = {};
    for (std::size_t i = 0; i + 2 <= quarter; i += 2) {
#pragma GCC unroll 4
        for (int s = 0; s < 4; ++s) {
            acc[2 * s] += streams[s][i];
            acc[2 * s + 1] += streams[s][i + 1];
        }
    }
    std::uint64_t sum = 0;
    for (const std::uint64_t value : acc) sum += value;
    return sum;
}

}  // namespace

FmaPeak measure_fma_peak(platform::IsaLevel isa, double seconds) {
    const FmaProbe probe = probe_for(isa);
    const double m = opaque_value(1.0), c = opaque_value(1e-300);
    // Calibrate a pass to about 2 ms, then keep the best pass.
    std::uint64_t iterations = 1024;
    for (;;) {
        const auto start = Clock::now();
        keep(probe.run(iterations, m, c));
        if (seconds_since(start) > 1e-3 || iterations > (std::uint64_t{1} << 40)) break;
        iterations *= 2;
    }
    const double flops_per_pass = static_cast<double>(iterations) * probe.chains * probe.lanes * 2.0;
    double best = 0;
    const auto begin = Clock::now();
    for (int pass = 0; pass < 3 || seconds_since(begin) < seconds; ++pass) {
        const auto start = Clock::now();
        keep(probe.run(iterations, m, c));
        best = std::max(best, flops_per_pass / seconds_since(start) / 1e9);
    }
    FmaPeak peak;
    peak.gflops = best;
    peak.how = std::string(platform::isa_level_name(isa)) + ": " + std::to_string(probe.chains) + " chains of " +
               probe.what + ", 2 FLOP per lane, best pass";
    return peak;
}

Bandwidth measure_bandwidth(std::size_t bytes, double seconds) {
    Bandwidth result;
    const std::size_t words = bytes / sizeof(std::uint64_t);
    AlignedArray<std::uint64_t> source = make_aligned_array<std::uint64_t>(words);
    AlignedArray<std::uint64_t> target = make_aligned_array<std::uint64_t>(words / 2);
    if (!source || !target) return result;
    for (std::size_t i = 0; i < words; ++i) source[i] = i;   // touches every page before timing
    std::memset(target.get(), 0, words / 2 * sizeof(std::uint64_t));
    result.bytes = words * sizeof(std::uint64_t);
    const double read_bytes = static_cast<double>(result.bytes);
    const double copy_bytes = static_cast<double>(words / 2 * sizeof(std::uint64_t)) * 2;   // read + written
    const auto begin = Clock::now();
    for (int pass = 0; pass < 2 || seconds_since(begin) < seconds; ++pass) {
        auto start = Clock::now();
        keep(read_words(source.get(), words));
        result.read_gbs = std::max(result.read_gbs, read_bytes / seconds_since(start) / 1e9);
        start = Clock::now();
        std::memcpy(target.get(), source.get() + (pass % 2) * (words / 2), words / 2 * sizeof(std::uint64_t));
        keep(target[words / 4]);
        result.copy_gbs = std::max(result.copy_gbs, copy_bytes / seconds_since(start) / 1e9);
    }
    return result;
}

std::size_t last_level_cache_bytes(int cpu) {
    std::size_t largest = 0;
    int largest_level = 0;
    const std::string base = "/sys/devices/system/cpu/cpu" + std::to_string(cpu < 0 ? 0 : cpu) + "/cache/index";
    for (int index = 0; index < 8; ++index) {
        std::ifstream level_file(base + std::to_string(index) + "/level");
        std::ifstream type_file(base + std::to_string(index) + "/type");
        std::ifstream size_file(base + std::to_string(index) + "/size");
        int level = 0;
        std::string type, size;
        if (!(level_file >> level) || !(type_file >> type) || !(size_file >> size)) continue;
        if (type == "Instruction" || size.empty()) continue;
        std::size_t value = std::strtoull(size.c_str(), nullptr, 10);
        if (size.back() == 'K') value <<= 10;
        else if (size.back() == 'M') value <<= 20;
        if (level > largest_level || (level == largest_level && value > largest)) {
            largest_level = level;
            largest = value;
        }
    }
    return largest;
}

}  // namespace cf::latency
