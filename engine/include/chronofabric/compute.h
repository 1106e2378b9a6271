/**
 * @file chronofabric/compute.h
 * Compute kernels: dot, axpy, gemv, gemm in f32 and f64, SIMD per ISA with run-time dispatch.
 */
#ifndef CHRONOFABRIC_COMPUTE_H
#define CHRONOFABRIC_COMPUTE_H

#include "chronofabric/status.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Hand-written SIMD kernels for the ISA chosen at start-up (the best this CPU has, or CF_ISA=scalar|avx2|avx512|
 * neon in the environment, or cf_isa_force). BLAS semantics with stride-1 vectors: beta == 0 writes y / C without
 * reading it; alpha == 0 (or k == 0) only scales by beta and reads no A, B or x; otherwise NaN and Inf propagate.
 * Pointers need only the element type's alignment. Nothing is allocated per call, except the packing buffers of
 * a thread's first cf_gemm_* (call cf_compute_prepare_thread() at start-up to take that out of the hot path).
 * Every int-returning function but cf_isa_active returns a status (0 or a negative CF_E* code).
 *
 * An empty inner dimension (gemv: n == 0 without transpose, m == 0 with it; gemm: k == 0) is the empty sum: the
 * result is beta * y (beta * C), written without reading when beta == 0, and A, x (B) may be NULL. Reference
 * BLAS's dgemv returns early there and leaves y as it was whatever beta is; we keep the definition instead, as
 * dgemm (reference and ours) does for k == 0, so that gemv and gemm with one column agree.
 */
#define CF_ISA_SCALAR 0
#define CF_ISA_AVX2 1       /**< AVX2 + FMA */
#define CF_ISA_AVX512 2     /**< AVX-512 F/BW/DQ/VL */
#define CF_ISA_NEON 3       /**< ARM64 Advanced SIMD */

#define CF_ROW_MAJOR 0
#define CF_COL_MAJOR 1
#define CF_NO_TRANS 0
#define CF_TRANS 1

/** The ISA the kernels use now (CF_ISA_*). Cannot fail. */
CF_API int cf_isa_active(void);
/** "scalar", "avx2", "avx512", "neon", or NULL for another value. */
CF_API const char* cf_isa_name(int isa);
/** Uses @p isa's kernels from now on (all threads). CF_ENOTSUP if this CPU or build lacks it, CF_EINVAL if not
 *  a CF_ISA_* value. */
CF_NODISCARD CF_API int cf_isa_force(int isa);
/** Allocates this thread's GEMM packing buffers now (else the thread's first large cf_gemm_* does). CF_ENOMEM. */
CF_NODISCARD CF_API int cf_compute_prepare_thread(void);

/** *@p result = sum x[i] * y[i]. CF_EINVAL for NULL (x and y may be NULL when n is 0) or n above PTRDIFF_MAX / the
 *  element size. */
CF_NODISCARD CF_API int cf_dot_f64(size_t n, const double* x, const double* y, double* result);
CF_NODISCARD CF_API int cf_dot_f32(size_t n, const float* x, const float* y, float* result);
/** y = alpha * x + y. CF_EINVAL as cf_dot_f64. */
CF_NODISCARD CF_API int cf_axpy_f64(size_t n, double alpha, const double* x, double* y);
CF_NODISCARD CF_API int cf_axpy_f32(size_t n, float alpha, const float* x, float* y);
/**
 * y = alpha * op(A) * x + beta * y, A m x n in @p layout (CF_ROW_MAJOR / CF_COL_MAJOR) with leading dimension
 * @p lda, op(A) = A or A^T (@p trans CF_NO_TRANS / CF_TRANS). CF_EINVAL for NULL, lda too small, or a size or matrix
 * span above PTRDIFF_MAX bytes.
 */
CF_NODISCARD CF_API int cf_gemv_f64(int layout, int trans, size_t m, size_t n, double alpha, const double* a,
                                    size_t lda, const double* x, double beta, double* y);
CF_NODISCARD CF_API int cf_gemv_f32(int layout, int trans, size_t m, size_t n, float alpha, const float* a,
                                    size_t lda, const float* x, float beta, float* y);
/** C (m x n) = alpha * op(A) (m x k) * op(B) (k x n) + beta * C, all in @p layout. CF_EINVAL (as cf_gemv_f64),
 *  CF_ENOMEM. */
CF_NODISCARD CF_API int cf_gemm_f64(int layout, int trans_a, int trans_b, size_t m, size_t n, size_t k, double alpha,
                                    const double* a, size_t lda, const double* b, size_t ldb, double beta, double* c,
                                    size_t ldc);
CF_NODISCARD CF_API int cf_gemm_f32(int layout, int trans_a, int trans_b, size_t m, size_t n, size_t k, float alpha,
                                    const float* a, size_t lda, const float* b, size_t ldb, float beta, float* c,
                                    size_t ldc);

#ifdef __cplusplus
}
#endif

#endif /* CHRONOFABRIC_COMPUTE_H */
