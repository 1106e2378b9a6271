// The 256-bit (AVX2 + FMA) vector operations vector_algorithms.hpp runs on, for the files compiled with at
// least those flags: the AVX2 kernels, and the AVX-512 dot for vectors that come from memory. The anonymous
// namespace gives each including file its own copy, built with its own flags. Tails use masked loads and stores,
// which do not touch (or fault on) the elements outside the mask.
#pragma once

#include <immintrin.h>

#include <cstddef>

namespace cf::compute {
namespace {

struct Avx2F32 {
    using T = float;
    using V = __m256;
    static constexpr std::size_t kWidth = 8;
    // Lanes below `count` (1..7) set.
    static __m256i mask(std::size_t count) noexcept {
        return _mm256_cmpgt_epi32(_mm256_set1_epi32(static_cast<int>(count)),
                                  _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
    }
    static V zero() noexcept { return _mm256_setzero_ps(); }
    static V set1(T v) noexcept { return _mm256_set1_ps(v); }
    static V load(const T* p) noexcept { return _mm256_loadu_ps(p); }
    static void store(T* p, V v) noexcept { _mm256_storeu_ps(p, v); }
    static V load_part(const T* p, std::size_t count) noexcept { return _mm256_maskload_ps(p, mask(count)); }
    static void store_part(T* p, V v, std::size_t count) noexcept { _mm256_maskstore_ps(p, mask(count), v); }
    static V fma(V a, V b, V c) noexcept { return _mm256_fmadd_ps(a, b, c); }
    static V add(V a, V b) noexcept { return _mm256_add_ps(a, b); }
    static V mul(V a, V b) noexcept { return _mm256_mul_ps(a, b); }
    static T sum(V v) noexcept {
        __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
        s = _mm_add_ps(s, _mm_movehl_ps(s, s));
        s = _mm_add_ss(s, _mm_movehdup_ps(s));
        return _mm_cvtss_f32(s);
    }
};

struct Avx2F64 {
    using T = double;
    using V = __m256d;
    static constexpr std::size_t kWidth = 4;
    static __m256i mask(std::size_t count) noexcept {
        return _mm256_cmpgt_epi64(_mm256_set1_epi64x(static_cast<long long>(count)), _mm256_setr_epi64x(0, 1, 2, 3));
    }
    static V zero() noexcept { return _mm256_setzero_pd(); }
    static V set1(T v) noexcept { return _mm256_set1_pd(v); }
    static V load(const T* p) noexcept { return _mm256_loadu_pd(p); }
    static void store(T* p, V v) noexcept { _mm256_storeu_pd(p, v); }
    static V load_part(const T* p, std::size_t count) noexcept { return _mm256_maskload_pd(p, mask(count)); }
    static void store_part(T* p, V v, std::size_t count) noexcept { _mm256_maskstore_pd(p, mask(count), v); }
    static V fma(V a, V b, V c) noexcept { return _mm256_fmadd_pd(a, b, c); }
    static V add(V a, V b) noexcept { return _mm256_add_pd(a, b); }
    static V mul(V a, V b) noexcept { return _mm256_mul_pd(a, b); }
    static T sum(V v) noexcept {
        const __m128d s = _mm_add_pd(_mm256_castpd256_pd128(v), _mm256_extractf128_pd(v, 1));
        return _mm_cvtsd_f64(_mm_add_sd(s, _mm_unpackhi_pd(s, s)));
    }
};

}  // namespace
}  // namespace cf::compute
