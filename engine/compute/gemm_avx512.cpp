// GEMM for AVX-512 (F, VL, BW, DQ): a 32 x 6 (f64) / 64 x 6 (f32) packed micro-kernel and 24 x 8 / 48 x 8
// unpacked tiles, the B broadcasts folded into the FMAs; masked loads and stores for the ragged rows.
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
    // Used only where nothing reads C back within the call (beta == 0): a masked store is one instruction, and
    // measured faster than whole narrower stores for the 4 x 4 tile.
    static void store_tail(T* p, Mask m, Reg r) noexcept { _mm512_mask_storeu_pd(p, m, r); }
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
    static void store_tail(T* p, Mask m, Reg r) noexcept { _mm512_mask_storeu_ps(p, m, r); }   // as for f64
    static Mask tail_mask(std::size_t count) noexcept { return static_cast<Mask>((1u << count) - 1); }
};

}  // namespace

void install_gemm_avx512(KernelTable& table) noexcept { gemm_detail::install<Avx512F32, Avx512F64>(table); }

}  // namespace cf::compute
