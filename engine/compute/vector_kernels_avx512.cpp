// dot, axpy and gemv with AVX-512 (F, VL, BW, DQ; 512-bit vectors). Compiled with those flags plus AVX2/FMA:
// run it only when dispatch says the CPU has them all. Tails use masked loads and stores (no fault on the
// masked-off elements), so any n and any element-aligned pointer works.
#include <immintrin.h>

#include "engine/compute/vector_algorithms.hpp"
#include "engine/compute/vector_ops_avx2.hpp"

namespace cf::compute {
namespace {

// The two 256-bit halves. Not through _mm512_extractf64x4_pd or _mm512_reduce_add_*: GCC 12 warns
// (-Wuninitialized, an error here) about the _mm256_undefined_pd() inside them; the maskz form has none.
__m256d low_half(__m512d v) noexcept { return _mm512_maskz_extractf64x4_pd(0xff, v, 0); }
__m256d high_half(__m512d v) noexcept { return _mm512_maskz_extractf64x4_pd(0xff, v, 1); }

struct F32 {
    using T = float;
    using V = __m512;
    static constexpr std::size_t kWidth = 16;
    // Lanes below `count` (1..15) set.
    static __mmask16 mask(std::size_t count) noexcept { return static_cast<__mmask16>((1u << count) - 1u); }
    static V zero() noexcept { return _mm512_setzero_ps(); }
    static V set1(T v) noexcept { return _mm512_set1_ps(v); }
    static V load(const T* p) noexcept { return _mm512_loadu_ps(p); }
    static void store(T* p, V v) noexcept { _mm512_storeu_ps(p, v); }
    static V load_part(const T* p, std::size_t count) noexcept { return _mm512_maskz_loadu_ps(mask(count), p); }
    static void store_part(T* p, V v, std::size_t count) noexcept { _mm512_mask_storeu_ps(p, mask(count), v); }
    static V fma(V a, V b, V c) noexcept { return _mm512_fmadd_ps(a, b, c); }
    static V add(V a, V b) noexcept { return _mm512_add_ps(a, b); }
    static V mul(V a, V b) noexcept { return _mm512_mul_ps(a, b); }
    static T sum(V v) noexcept {
        const __m512d d = _mm512_castps_pd(v);
        const __m256 h = _mm256_add_ps(_mm256_castpd_ps(low_half(d)), _mm256_castpd_ps(high_half(d)));
        __m128 s = _mm_add_ps(_mm256_castps256_ps128(h), _mm256_extractf128_ps(h, 1));
        s = _mm_add_ps(s, _mm_movehl_ps(s, s));
        s = _mm_add_ss(s, _mm_movehdup_ps(s));
        return _mm_cvtss_f32(s);
    }
};

struct F64 {
    using T = double;
    using V = __m512d;
    static constexpr std::size_t kWidth = 8;
    static __mmask8 mask(std::size_t count) noexcept { return static_cast<__mmask8>((1u << count) - 1u); }
    static V zero() noexcept { return _mm512_setzero_pd(); }
    static V set1(T v) noexcept { return _mm512_set1_pd(v); }
    static V load(const T* p) noexcept { return _mm512_loadu_pd(p); }
    static void store(T* p, V v) noexcept { _mm512_storeu_pd(p, v); }
    static V load_part(const T* p, std::size_t count) noexcept { return _mm512_maskz_loadu_pd(mask(count), p); }
    static void store_part(T* p, V v, std::size_t count) noexcept { _mm512_mask_storeu_pd(p, mask(count), v); }
    static V fma(V a, V b, V c) noexcept { return _mm512_fmadd_pd(a, b, c); }
    static V add(V a, V b) noexcept { return _mm512_add_pd(a, b); }
    static V mul(V a, V b) noexcept { return _mm512_mul_pd(a, b); }
    static T sum(V v) noexcept {
        const __m256d h = _mm256_add_pd(low_half(v), high_half(v));
        const __m128d s = _mm_add_pd(_mm256_castpd256_pd128(h), _mm256_extractf128_pd(h, 1));
        return _mm_cvtsd_f64(_mm_add_sd(s, _mm_unpackhi_pd(s, s)));
    }
};

// Vectors of 4 MiB and more stream through 256-bit loads: on Zen 4 they were faster from 8 MiB per vector on
// (L3 and memory) and slower at 2 MiB (L2 and near L3).
constexpr std::size_t kNarrowDotBytes = std::size_t{4} << 20;

}  // namespace

void install_vector_kernels_avx512(KernelTable& table) noexcept {
    vector_detail::install<F32>(table.f32);
    vector_detail::install<F64>(table.f64);
    table.f32.dot = vector_detail::dot_by_size<F32, Avx2F32, kNarrowDotBytes>;
    table.f64.dot = vector_detail::dot_by_size<F64, Avx2F64, kNarrowDotBytes>;
}

}  // namespace cf::compute
