// GEMM for AArch64 Advanced SIMD: 8 x 6 (f64) and 16 x 6 (f32) micro-tiles, 24 of the 32 q registers as
// accumulators. NEON has no masked loads: the small path's ragged rows go through a short stack copy.
#include <arm_neon.h>

#include <cstring>

#include "engine/compute/gemm_blocking.hpp"

namespace cf::compute {

namespace {

struct NeonF64 {
    using T = double;
    using Reg = float64x2_t;
    using Mask = std::size_t;   // lanes in use
    static constexpr std::size_t kWidth = 2;
    static constexpr std::size_t kMv = 4, kNr = 6;
    static constexpr std::size_t kMc = 96, kKc = 256, kNc = 1020;
    static constexpr std::uint64_t kSmallVolume = 48 * 48 * 48;
    static Reg zero() noexcept { return vdupq_n_f64(0.0); }
    static Reg load(const T* p) noexcept { return vld1q_f64(p); }
    static Reg load_tail(const T* p, Mask) noexcept { return vsetq_lane_f64(*p, vdupq_n_f64(0.0), 0); }
    static Reg broadcast(T x) noexcept { return vdupq_n_f64(x); }
    static Reg fma(Reg a, Reg b, Reg c) noexcept { return vfmaq_f64(c, a, b); }
    static Reg add(Reg a, Reg b) noexcept { return vaddq_f64(a, b); }
    static Reg mul(Reg a, Reg b) noexcept { return vmulq_f64(a, b); }
    static void store(T* p, Reg r) noexcept { vst1q_f64(p, r); }
    static Mask tail_mask(std::size_t count) noexcept { return count; }
};

struct NeonF32 {
    using T = float;
    using Reg = float32x4_t;
    using Mask = std::size_t;
    static constexpr std::size_t kWidth = 4;
    static constexpr std::size_t kMv = 4, kNr = 6;
    static constexpr std::size_t kMc = 96, kKc = 512, kNc = 1020;
    static constexpr std::uint64_t kSmallVolume = 64 * 64 * 64;
    static Reg zero() noexcept { return vdupq_n_f32(0.0f); }
    static Reg load(const T* p) noexcept { return vld1q_f32(p); }
    static Reg load_tail(const T* p, Mask count) noexcept {
        T lanes[4] = {};
        std::memcpy(lanes, p, count * sizeof(T));
        return vld1q_f32(lanes);
    }
    static Reg broadcast(T x) noexcept { return vdupq_n_f32(x); }
    static Reg fma(Reg a, Reg b, Reg c) noexcept { return vfmaq_f32(c, a, b); }
    static Reg add(Reg a, Reg b) noexcept { return vaddq_f32(a, b); }
    static Reg mul(Reg a, Reg b) noexcept { return vmulq_f32(a, b); }
    static void store(T* p, Reg r) noexcept { vst1q_f32(p, r); }
    static Mask tail_mask(std::size_t count) noexcept { return count; }
};

}  // namespace

void install_gemm_neon(KernelTable& table) noexcept { gemm_detail::install<NeonF32, NeonF64>(table); }

}  // namespace cf::compute
