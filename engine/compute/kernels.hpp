// The compute kernels' shared vocabulary: argument conventions, the per-ISA kernel sets the dispatcher chooses
// between, and the functions each ISA file provides.
//
// Conventions (BLAS semantics, stride-1 vectors):
//   dot(n, x, y)                 sum x[i] * y[i]
//   axpy(n, alpha, x, y)         y = alpha * x + y
//   gemv(layout, trans, m, n, alpha, a, lda, x, beta, y)
//        A is m x n in `layout` with leading dimension lda; op(A) = A or A^T;
//        y = alpha * op(A) * x + beta * y   (x has n entries and y m for no transpose; m and n swap for transpose)
//   gemm(layout, trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc, workspace)
//        C (m x n) = alpha * op(A) (m x k) * op(B) (k x n) + beta * C. Shapes that need packing use `workspace`,
//        or, when it is null, the calling thread's (GemmWorkspace::this_thread(), fetched only then). Returns 0,
//        or -ENOMEM (nothing written) when that thread workspace cannot be allocated.
// As in reference BLAS: beta == 0 writes C / y without reading it (NaN or garbage there does not propagate);
// alpha == 0 (or k == 0) scales C / y by beta without reading A, B or x. Otherwise NaN and Inf propagate.
// Kernels assume validated arguments (blas.hpp validates); they never allocate, lock or call the OS.
// Pointers need only the element type's natural alignment.
#pragma once

#include <cstddef>
#include <cstdint>

#include "platform/cpu/cpu_info.hpp"

namespace cf::compute {

enum class Layout : std::uint8_t { row_major, col_major };
enum class Transpose : std::uint8_t { none, transpose };

class GemmWorkspace;   // gemm_workspace.hpp: packing buffers, preallocated per thread

template <class T>
struct KernelSet {
    T (*dot)(std::size_t n, const T* x, const T* y) noexcept = nullptr;
    void (*axpy)(std::size_t n, T alpha, const T* x, T* y) noexcept = nullptr;
    void (*gemv)(Layout layout, Transpose trans, std::size_t m, std::size_t n, T alpha, const T* a,
                 std::size_t lda, const T* x, T beta, T* y) noexcept = nullptr;
    int (*gemm)(Layout layout, Transpose trans_a, Transpose trans_b, std::size_t m, std::size_t n, std::size_t k,
                T alpha, const T* a, std::size_t lda, const T* b, std::size_t ldb, T beta, T* c, std::size_t ldc,
                GemmWorkspace* workspace) noexcept = nullptr;
};

// Everything one ISA provides. Filled by the install_* functions below; the dispatcher keeps one per ISA the
// build has.
struct KernelTable {
    platform::IsaLevel isa = platform::IsaLevel::scalar;
    KernelSet<float> f32;
    KernelSet<double> f64;
};

// Each ISA's files fill their part of a table. The vector kernels (dot, axpy, gemv) and gemm live in separate
// files per ISA (vector_kernels_<isa>.cpp, gemm_<isa>.cpp), each compiled with that ISA's flags only.
void install_vector_kernels_scalar(KernelTable& table) noexcept;
void install_gemm_scalar(KernelTable& table) noexcept;
#if defined(__x86_64__)
void install_vector_kernels_avx2(KernelTable& table) noexcept;
void install_gemm_avx2(KernelTable& table) noexcept;
void install_vector_kernels_avx512(KernelTable& table) noexcept;
void install_gemm_avx512(KernelTable& table) noexcept;
#endif
#if defined(__aarch64__)
void install_vector_kernels_neon(KernelTable& table) noexcept;
void install_gemm_neon(KernelTable& table) noexcept;
#endif

}  // namespace cf::compute
