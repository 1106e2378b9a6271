// dot, axpy and gemv with NEON (AdvSIMD, 128-bit vectors; part of every ARMv8-A CPU, so this file needs no
// extra flags). NEON has no masked loads: a tail of fewer than one vector goes through a zeroed stack buffer,
// so nothing past the last element is read or written.
#include <arm_neon.h>

#include "engine/compute/vector_algorithms.hpp"

namespace cf::compute {
namespace {

struct F32 {
    using T = float;
    using V = float32x4_t;
    static constexpr std::size_t kWidth = 4;
    static V zero() noexcept { return vdupq_n_f32(0.0f); }
    static V set1(T v) noexcept { return vdupq_n_f32(v); }
    static V load(const T* p) noexcept { return vld1q_f32(p); }
    static void store(T* p, V v) noexcept { vst1q_f32(p, v); }
    static V load_part(const T* p, std::size_t count) noexcept {
        T buffer[kWidth] = {};
        __builtin_memcpy(buffer, p, count * sizeof(T));
        return vld1q_f32(buffer);
    }
    static void store_part(T* p, V v, std::size_t count) noexcept {
        T buffer[kWidth];
        vst1q_f32(buffer, v);
        __builtin_memcpy(p, buffer, count * sizeof(T));
    }
    static V fma(V a, V b, V c) noexcept { return vfmaq_f32(c, a, b); }
    static V add(V a, V b) noexcept { return vaddq_f32(a, b); }
    static V mul(V a, V b) noexcept { return vmulq_f32(a, b); }
    static T sum(V v) noexcept { return vaddvq_f32(v); }
};

struct F64 {
    using T = double;
    using V = float64x2_t;
    static constexpr std::size_t kWidth = 2;
    static V zero() noexcept { return vdupq_n_f64(0.0); }
    static V set1(T v) noexcept { return vdupq_n_f64(v); }
    static V load(const T* p) noexcept { return vld1q_f64(p); }
    static void store(T* p, V v) noexcept { vst1q_f64(p, v); }
    static V load_part(const T* p, std::size_t count) noexcept {
        T buffer[kWidth] = {};
        __builtin_memcpy(buffer, p, count * sizeof(T));
        return vld1q_f64(buffer);
    }
    static void store_part(T* p, V v, std::size_t count) noexcept {
        T buffer[kWidth];
        vst1q_f64(buffer, v);
        __builtin_memcpy(p, buffer, count * sizeof(T));
    }
    static V fma(V a, V b, V c) noexcept { return vfmaq_f64(c, a, b); }
    static V add(V a, V b) noexcept { return vaddq_f64(a, b); }
    static V mul(V a, V b) noexcept { return vmulq_f64(a, b); }
    static T sum(V v) noexcept { return vaddvq_f64(v); }
};

}  // namespace

void install_vector_kernels_neon(KernelTable& table) noexcept {
    vector_detail::install<F32>(table.f32);
    vector_detail::install<F64>(table.f64);
}

}  // namespace cf::compute
