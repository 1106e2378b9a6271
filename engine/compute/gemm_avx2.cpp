// GEMM for AVX2 + FMA: 8 x 6 (f64) and 16 x 6 (f32) micro-tiles, 12 ymm accumulators (16 registers in all);
// vmaskmov loads and stores for the small path's ragged rows.
#include <immintrin.h>

#include "engine/compute/gemm_blocking.hpp"

namespace cf::compute {

namespace {

struct Avx2F64 {
    using T = double;
    using Reg = __m256d;
    using Mask = __m256i;
    static constexpr std::size_t kWidth = 4;
    static constexpr std::size_t kMv = 2, kNr = 6;
    static constexpr std::size_t kMc = 96, kKc = 256, kNc = 1020;
    static constexpr std::uint64_t kSmallVolume = 64 * 64 * 64;
    static Reg zero() noexcept { return _mm256_setzero_pd(); }
    static Reg load(const T* p) noexcept { return _mm256_loadu_pd(p); }
    static Reg load_tail(const T* p, Mask m) noexcept { return _mm256_maskload_pd(p, m); }
    static Reg broadcast(T x) noexcept { return _mm256_set1_pd(x); }
    static Reg fma(Reg a, Reg b, Reg c) noexcept { return _mm256_fmadd_pd(a, b, c); }
    static Reg add(Reg a, Reg b) noexcept { return _mm256_add_pd(a, b); }
    static Reg mul(Reg a, Reg b) noexcept { return _mm256_mul_pd(a, b); }
    static void store(T* p, Reg r) noexcept { _mm256_storeu_pd(p, r); }
    static Mask tail_mask(std::size_t count) noexcept {
        return _mm256_cmpgt_epi64(_mm256_set1_epi64x(static_cast<long long>(count)), _mm256_setr_epi64x(0, 1, 2, 3));
    }
};

struct Avx2F32 {
    using T = float;
    using Reg = __m256;
    using Mask = __m256i;
    static constexpr std::size_t kWidth = 8;
    static constexpr std::size_t kMv = 2, kNr = 6;
    static constexpr std::size_t kMc = 96, kKc = 512, kNc = 1020;
    static constexpr std::uint64_t kSmallVolume = 80 * 80 * 80;
    static Reg zero() noexcept { return _mm256_setzero_ps(); }
    static Reg load(const T* p) noexcept { return _mm256_loadu_ps(p); }
    static Reg load_tail(const T* p, Mask m) noexcept { return _mm256_maskload_ps(p, m); }
    static Reg broadcast(T x) noexcept { return _mm256_set1_ps(x); }
    static Reg fma(Reg a, Reg b, Reg c) noexcept { return _mm256_fmadd_ps(a, b, c); }
    static Reg add(Reg a, Reg b) noexcept { return _mm256_add_ps(a, b); }
    static Reg mul(Reg a, Reg b) noexcept { return _mm256_mul_ps(a, b); }
    static void store(T* p, Reg r) noexcept { _mm256_storeu_ps(p, r); }
    static Mask tail_mask(std::size_t count) noexcept {
        return _mm256_cmpgt_epi32(_mm256_set1_epi32(static_cast<int>(count)), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
    }
};

}  // namespace

void install_gemm_avx2(KernelTable& table) noexcept { gemm_detail::install<Avx2F32, Avx2F64>(table); }

}  // namespace cf::compute
