// dot, axpy and gemv with AVX2 + FMA (256-bit vectors). Compiled with -mavx2 -mfma only: run it only when
// dispatch says the CPU has both. Tails use masked loads and stores, which do not touch (or fault on) the
// elements outside the mask, so any n and any element-aligned pointer works.
#include "engine/compute/vector_algorithms.hpp"
#include "engine/compute/vector_ops_avx2.hpp"

namespace cf::compute {

void install_vector_kernels_avx2(KernelTable& table) noexcept {
    vector_detail::install<Avx2F32>(table.f32);
    vector_detail::install<Avx2F64>(table.f64);
}

}  // namespace cf::compute
