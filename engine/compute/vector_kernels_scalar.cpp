// dot, axpy and gemv in plain C++: the reference every CPU can run, and the fallback CF_ISA=scalar selects.
// The algorithms are vector_algorithms.hpp's, on "vectors" of one element. The compiler may still vectorise the
// element-wise loops with the baseline ISA (SSE2, or NEON on ARM64); it keeps the order of the sums, so the
// independent partial sums of the algorithms are what give dot its parallelism.
#include "engine/compute/vector_algorithms.hpp"

namespace cf::compute {
namespace {

template <class Element>
struct Scalar {
    using T = Element;
    using V = Element;
    static constexpr std::size_t kWidth = 1;
    static V zero() noexcept { return T(0); }
    static V set1(T v) noexcept { return v; }
    static V load(const T* p) noexcept { return *p; }
    static void store(T* p, V v) noexcept { *p = v; }
    // With one lane there is never a partial vector; these only complete the interface.
    static V load_part(const T* p, std::size_t) noexcept { return *p; }
    static void store_part(T* p, V v, std::size_t) noexcept { *p = v; }
    // Not std::fma: without hardware FMA in the baseline ISA that is a slow library call.
    static V fma(V a, V b, V c) noexcept { return a * b + c; }
    static V add(V a, V b) noexcept { return a + b; }
    static V mul(V a, V b) noexcept { return a * b; }
    static T sum(V v) noexcept { return v; }
};

}  // namespace

void install_vector_kernels_scalar(KernelTable& table) noexcept {
    vector_detail::install<Scalar<float>>(table.f32);
    vector_detail::install<Scalar<double>>(table.f64);
}

}  // namespace cf::compute
