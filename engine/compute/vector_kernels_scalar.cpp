// dot, axpy and gemv in plain C++: the reference every CPU can run, and the fallback CF_ISA=scalar selects.
// The compiler may vectorise the element-wise loops with the baseline ISA (SSE2, or NEON on ARM64); it keeps
// the order of the sums, so the four partial sums below are what give dot its parallelism.
#include "engine/compute/kernels.hpp"

namespace cf::compute {
namespace {

template <class T>
T dot(std::size_t n, const T* x, const T* y) noexcept {
    // Four independent chains: one running sum would wait on every add's latency.
    T s0 = 0, s1 = 0, s2 = 0, s3 = 0;
    std::size_t i = 0;
    for (; i + 4 <= n; i += 4) {
        s0 += x[i] * y[i];
        s1 += x[i + 1] * y[i + 1];
        s2 += x[i + 2] * y[i + 2];
        s3 += x[i + 3] * y[i + 3];
    }
    for (; i < n; ++i) s0 += x[i] * y[i];
    return (s0 + s1) + (s2 + s3);
}

template <class T>
void axpy(std::size_t n, T alpha, const T* x, T* y) noexcept {
    if (alpha == T(0)) return;   // reference BLAS: x is not read
    for (std::size_t i = 0; i < n; ++i) y[i] += alpha * x[i];
}

// y = beta * y, without reading y when beta == 0.
template <class T>
void scale(std::size_t n, T beta, T* y) noexcept {
    if (beta == T(1)) return;
    if (beta == T(0)) {
        for (std::size_t i = 0; i < n; ++i) y[i] = T(0);
    } else {
        for (std::size_t i = 0; i < n; ++i) y[i] *= beta;
    }
}

template <class T>
T combine(T alpha, T sum, T beta, T y) noexcept {
    return beta == T(0) ? alpha * sum : alpha * sum + beta * y;
}

// y[r] = alpha * dot(row r, x) + beta * y[r] for `rows` rows of `cols` contiguous elements, lda apart.
template <class T>
void gemv_rows(std::size_t rows, std::size_t cols, T alpha, const T* a, std::size_t lda, const T* x, T beta,
               T* y) noexcept {
    std::size_t r = 0;
    // Four rows at a time share each load of x.
    for (; r + 4 <= rows; r += 4) {
        const T* a0 = a + r * lda;
        const T* a1 = a0 + lda;
        const T* a2 = a1 + lda;
        const T* a3 = a2 + lda;
        T s0 = 0, s1 = 0, s2 = 0, s3 = 0;
        for (std::size_t c = 0; c < cols; ++c) {
            const T xc = x[c];
            s0 += a0[c] * xc;
            s1 += a1[c] * xc;
            s2 += a2[c] * xc;
            s3 += a3[c] * xc;
        }
        y[r] = combine(alpha, s0, beta, y[r]);
        y[r + 1] = combine(alpha, s1, beta, y[r + 1]);
        y[r + 2] = combine(alpha, s2, beta, y[r + 2]);
        y[r + 3] = combine(alpha, s3, beta, y[r + 3]);
    }
    for (; r < rows; ++r) y[r] = combine(alpha, dot(cols, a + r * lda, x), beta, y[r]);
}

// y = alpha * sum_j x[j] * column j + beta * y, for `cols` columns of `len` contiguous elements, lda apart.
template <class T>
void gemv_cols(std::size_t len, std::size_t cols, T alpha, const T* a, std::size_t lda, const T* x, T beta,
               T* y) noexcept {
    scale(len, beta, y);
    std::size_t j = 0;
    // Four columns per pass over y: a quarter of the loads and stores of y. Zero coefficients are not
    // skipped, so NaN in A still propagates.
    for (; j + 4 <= cols; j += 4) {
        const T* a0 = a + j * lda;
        const T* a1 = a0 + lda;
        const T* a2 = a1 + lda;
        const T* a3 = a2 + lda;
        const T c0 = alpha * x[j], c1 = alpha * x[j + 1], c2 = alpha * x[j + 2], c3 = alpha * x[j + 3];
        for (std::size_t i = 0; i < len; ++i) y[i] += c0 * a0[i] + c1 * a1[i] + c2 * a2[i] + c3 * a3[i];
    }
    for (; j < cols; ++j) {
        const T* aj = a + j * lda;
        const T cj = alpha * x[j];
        for (std::size_t i = 0; i < len; ++i) y[i] += cj * aj[i];
    }
}

template <class T>
void gemv(Layout layout, Transpose trans, std::size_t m, std::size_t n, T alpha, const T* a, std::size_t lda,
          const T* x, T beta, T* y) noexcept {
    // Row-major A and column-major A^T both read rows of the storage as dot products; the other two cases
    // walk storage columns as axpys.
    const bool rows_of_storage = (layout == Layout::row_major) == (trans == Transpose::none);
    const std::size_t out = trans == Transpose::none ? m : n;
    const std::size_t inner = trans == Transpose::none ? n : m;
    if (out == 0) return;   // nothing to write, and x need not be read
    if (alpha == T(0) || inner == 0) {
        scale(out, beta, y);
        return;
    }
    if (rows_of_storage) {
        gemv_rows(out, inner, alpha, a, lda, x, beta, y);
    } else {
        gemv_cols(out, inner, alpha, a, lda, x, beta, y);
    }
}

}  // namespace

void install_vector_kernels_scalar(KernelTable& table) noexcept {
    table.f32.dot = dot<float>;
    table.f32.axpy = axpy<float>;
    table.f32.gemv = gemv<float>;
    table.f64.dot = dot<double>;
    table.f64.axpy = axpy<double>;
    table.f64.gemv = gemv<double>;
}

}  // namespace cf::compute
