// GEMM for AVX-512 (F, VL, BW, DQ): 24 x 8 (f64) and 48 x 8 (f32) micro-tiles, 24 zmm accumulators, the B
// broadcasts folded into the FMAs; masked loads for the small path's ragged rows, whole narrower stores for them.
#include <immintrin.h>

#include "engine/compute/gemm_blocking.hpp"

namespace cf::compute {

namespace {

struct Avx512F64 {
    using T = double;
    using Reg = __m512d;
    using Mask = __mmask8;
    static constexpr std::size_t kWidth = 8;
    static constexpr std::size_t kMv = 4, kNr = 6;            // 32 x 6 packed micro-kernel, 24 accumulators
    static constexpr std::size_t kSmallMv = 3, kSmallNr = 8;  // 24 x 8 unpacked tiles
    static constexpr std::size_t kMc = 128, kKc = 256, kNc = 1020;
    static constexpr std::uint64_t kSmallVolume = 100 * 100 * 100;
    static Reg zero() noexcept { return _mm512_setzero_pd(); }
    static Reg load(const T* p) noexcept { return _mm512_loadu_pd(p); }
    static Reg load_tail(const T* p, Mask m) noexcept { return _mm512_maskz_loadu_pd(m, p); }
    static Reg broadcast(T x) noexcept { return _mm512_set1_pd(x); }
    static Reg fma(Reg a, Reg b, Reg c) noexcept { return _mm512_fmadd_pd(a, b, c); }
    static Reg add(Reg a, Reg b) noexcept { return _mm512_add_pd(a, b); }
    static Reg mul(Reg a, Reg b) noexcept { return _mm512_mul_pd(a, b); }
    static void store(T* p, Reg r) noexcept { _mm512_storeu_pd(p, r); }
    // The first popcount(m) lanes as whole 256/128/64-bit stores: Zen 4 runs masked 512-bit stores slowly.
    static void store_tail(T* p, Mask m, Reg r) noexcept {
        const unsigned count = static_cast<unsigned>(__builtin_popcount(m));
        __m256d quarter = _mm512_maskz_extractf64x4_pd(0xff, r, 0);
        if (count & 4u) {
            _mm256_storeu_pd(p, quarter);
            quarter = _mm512_maskz_extractf64x4_pd(0xff, r, 1);   // not extractf64x4: GCC 12 -Wuninitialized
            p += 4;
        }
        __m128d pair = _mm256_castpd256_pd128(quarter);
        if (count & 2u) {
            _mm_storeu_pd(p, pair);
            pair = _mm256_extractf128_pd(quarter, 1);
            p += 2;
        }
        if (count & 1u) _mm_store_sd(p, pair);
    }
    static Mask tail_mask(std::size_t count) noexcept { return static_cast<Mask>((1u << count) - 1); }
};

struct Avx512F32 {
    using T = float;
    using Reg = __m512;
    using Mask = __mmask16;
    static constexpr std::size_t kWidth = 16;
    static constexpr std::size_t kMv = 4, kNr = 6;            // as for f64: 64 x 6 packed, 48 x 8 unpacked
    static constexpr std::size_t kSmallMv = 3, kSmallNr = 8;
    static constexpr std::size_t kMc = 128, kKc = 512, kNc = 1020;
    static constexpr std::uint64_t kSmallVolume = 96 * 96 * 96;
    static Reg zero() noexcept { return _mm512_setzero_ps(); }
    static Reg load(const T* p) noexcept { return _mm512_loadu_ps(p); }
    static Reg load_tail(const T* p, Mask m) noexcept { return _mm512_maskz_loadu_ps(m, p); }
    static Reg broadcast(T x) noexcept { return _mm512_set1_ps(x); }
    static Reg fma(Reg a, Reg b, Reg c) noexcept { return _mm512_fmadd_ps(a, b, c); }
    static Reg add(Reg a, Reg b) noexcept { return _mm512_add_ps(a, b); }
    static Reg mul(Reg a, Reg b) noexcept { return _mm512_mul_ps(a, b); }
    static void store(T* p, Reg r) noexcept { _mm512_storeu_ps(p, r); }
    static void store_tail(T* p, Mask m, Reg r) noexcept {   // as for f64
        const unsigned count = static_cast<unsigned>(__builtin_popcount(m));
        __m256 half = _mm256_castpd_ps(_mm512_maskz_extractf64x4_pd(0xff, _mm512_castps_pd(r), 0));
        if (count & 8u) {
            _mm256_storeu_ps(p, half);
            half = _mm256_castpd_ps(_mm512_maskz_extractf64x4_pd(0xff, _mm512_castps_pd(r), 1));
            p += 8;
        }
        __m128 quarter = _mm256_castps256_ps128(half);
        if (count & 4u) {
            _mm_storeu_ps(p, quarter);
            quarter = _mm256_extractf128_ps(half, 1);
            p += 4;
        }
        if (count & 2u) {
            _mm_storel_pi(reinterpret_cast<__m64*>(p), quarter);
            quarter = _mm_movehl_ps(quarter, quarter);
            p += 2;
        }
        if (count & 1u) _mm_store_ss(p, quarter);
    }
    static Mask tail_mask(std::size_t count) noexcept { return static_cast<Mask>((1u << count) - 1); }
};

}  // namespace

void install_gemm_avx512(KernelTable& table) noexcept { gemm_detail::install<Avx512F32, Avx512F64>(table); }

}  // namespace cf::compute
