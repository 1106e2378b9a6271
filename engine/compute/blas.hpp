// The checked entry points to the compute kernels (what the C API and the benchmarks call): validate the
// arguments, then run the active ISA's kernel (dispatch.hpp). Semantics are kernels.hpp's (reference BLAS).
//
// Every function returns 0, or a negative errno with a message for platform::last_error_message():
//   -EINVAL  a null pointer where the sizes need memory there, or a leading dimension smaller than BLAS
//            requires (max(1, columns) of the stored matrix in row-major, max(1, rows) in column-major)
//   -ENOMEM  gemm only: this thread's packing workspace could not be allocated
// Arrays the sizes make empty may be null. On error nothing is written.
#pragma once

#include <cstddef>

#include "engine/compute/kernels.hpp"

namespace cf::compute {

// out = sum x[i] * y[i] (0 when n == 0).
int dot(std::size_t n, const float* x, const float* y, float& out) noexcept;
int dot(std::size_t n, const double* x, const double* y, double& out) noexcept;

// y = alpha * x + y. alpha == 0 leaves y untouched (reference BLAS).
int axpy(std::size_t n, float alpha, const float* x, float* y) noexcept;
int axpy(std::size_t n, double alpha, const double* x, double* y) noexcept;

// y = alpha * op(A) * x + beta * y, A m x n (lda as stored in `layout`); x has op(A)'s column count entries,
// y its row count.
int gemv(Layout layout, Transpose trans, std::size_t m, std::size_t n, float alpha, const float* a, std::size_t lda,
         const float* x, float beta, float* y) noexcept;
int gemv(Layout layout, Transpose trans, std::size_t m, std::size_t n, double alpha, const double* a,
         std::size_t lda, const double* x, double beta, double* y) noexcept;

// C (m x n) = alpha * op(A) (m x k) * op(B) (k x n) + beta * C, using this thread's packing workspace.
int gemm(Layout layout, Transpose trans_a, Transpose trans_b, std::size_t m, std::size_t n, std::size_t k,
         float alpha, const float* a, std::size_t lda, const float* b, std::size_t ldb, float beta, float* c,
         std::size_t ldc) noexcept;
int gemm(Layout layout, Transpose trans_a, Transpose trans_b, std::size_t m, std::size_t n, std::size_t k,
         double alpha, const double* a, std::size_t lda, const double* b, std::size_t ldb, double beta, double* c,
         std::size_t ldc) noexcept;

}  // namespace cf::compute
