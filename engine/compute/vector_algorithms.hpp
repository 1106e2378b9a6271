// dot, axpy and gemv written once over an ISA's vector operations, included by each vector_kernels_<isa>.cpp so
// that it is compiled with that ISA's flags. The Ops type each file passes has internal linkage there, so no
// instantiation is shared between objects built with different flags.
//
// O provides, for element type T and a register V of kWidth lanes: zero(), set1(v), load(p), store(p, v),
// load_part(p, count) / store_part(p, v, count) for the first count (1..kWidth-1) lanes, fma(a, b, c) = a * b + c,
// add, mul and sum(v) (horizontal).
#pragma once

#include <cstddef>
#include <type_traits>

#include "engine/compute/kernels.hpp"

namespace cf::compute::vector_detail {

template <class O>
typename O::T dot(std::size_t n, const typename O::T* x, const typename O::T* y) noexcept {
    using V = typename O::V;
    constexpr std::size_t W = O::kWidth;
    // Four independent accumulators: with one, every fma would wait for the previous one's latency.
    V s0 = O::zero(), s1 = O::zero(), s2 = O::zero(), s3 = O::zero();
    std::size_t i = 0;
    for (; i + 4 * W <= n; i += 4 * W) {
        s0 = O::fma(O::load(x + i), O::load(y + i), s0);
        s1 = O::fma(O::load(x + i + W), O::load(y + i + W), s1);
        s2 = O::fma(O::load(x + i + 2 * W), O::load(y + i + 2 * W), s2);
        s3 = O::fma(O::load(x + i + 3 * W), O::load(y + i + 3 * W), s3);
    }
    for (; i + W <= n; i += W) s0 = O::fma(O::load(x + i), O::load(y + i), s0);
    if (i < n) s1 = O::fma(O::load_part(x + i, n - i), O::load_part(y + i, n - i), s1);
    return O::sum(O::add(O::add(s0, s1), O::add(s2, s3)));
}

// y += c * x for every n; unlike the public axpy, c == 0 still reads x (gemv must propagate NaN in A).
template <class O>
void axpy_always(std::size_t n, typename O::T c, const typename O::T* x, typename O::T* y) noexcept {
    using V = typename O::V;
    constexpr std::size_t W = O::kWidth;
    const V vc = O::set1(c);
    std::size_t i = 0;
    for (; i + 4 * W <= n; i += 4 * W) {
        const V y0 = O::fma(vc, O::load(x + i), O::load(y + i));
        const V y1 = O::fma(vc, O::load(x + i + W), O::load(y + i + W));
        const V y2 = O::fma(vc, O::load(x + i + 2 * W), O::load(y + i + 2 * W));
        const V y3 = O::fma(vc, O::load(x + i + 3 * W), O::load(y + i + 3 * W));
        O::store(y + i, y0);
        O::store(y + i + W, y1);
        O::store(y + i + 2 * W, y2);
        O::store(y + i + 3 * W, y3);
    }
    for (; i + W <= n; i += W) O::store(y + i, O::fma(vc, O::load(x + i), O::load(y + i)));
    if (i < n) O::store_part(y + i, O::fma(vc, O::load_part(x + i, n - i), O::load_part(y + i, n - i)), n - i);
}

template <class O>
void axpy(std::size_t n, typename O::T alpha, const typename O::T* x, typename O::T* y) noexcept {
    if (alpha == typename O::T(0)) return;   // reference BLAS: x is not read
    axpy_always<O>(n, alpha, x, y);
}

// y = beta * y, without reading y when beta == 0.
template <class O>
void scale(std::size_t n, typename O::T beta, typename O::T* y) noexcept {
    using T = typename O::T;
    using V = typename O::V;
    constexpr std::size_t W = O::kWidth;
    if (beta == T(1)) return;
    std::size_t i = 0;
    if (beta == T(0)) {
        for (; i + W <= n; i += W) O::store(y + i, O::zero());
        if (i < n) O::store_part(y + i, O::zero(), n - i);
        return;
    }
    const V vb = O::set1(beta);
    for (; i + W <= n; i += W) O::store(y + i, O::mul(vb, O::load(y + i)));
    if (i < n) O::store_part(y + i, O::mul(vb, O::load_part(y + i, n - i)), n - i);
}

template <class T>
T combine(T alpha, T sum, T beta, T y) noexcept {
    return beta == T(0) ? alpha * sum : alpha * sum + beta * y;
}

// y[r] = alpha * dot(row r, x) + beta * y[r] for `rows` rows of `cols` contiguous elements, lda apart.
template <class O>
void gemv_rows(std::size_t rows, std::size_t cols, typename O::T alpha, const typename O::T* a, std::size_t lda,
               const typename O::T* x, typename O::T beta, typename O::T* y) noexcept {
    using T = typename O::T;
    using V = typename O::V;
    constexpr std::size_t W = O::kWidth;
    std::size_t r = 0;
    // Four rows at a time share each load of x; two vectors per row and step give eight independent chains.
    for (; r + 4 <= rows; r += 4) {
        const T* a0 = a + r * lda;
        const T* a1 = a0 + lda;
        const T* a2 = a1 + lda;
        const T* a3 = a2 + lda;
        V s00 = O::zero(), s01 = O::zero(), s10 = O::zero(), s11 = O::zero();
        V s20 = O::zero(), s21 = O::zero(), s30 = O::zero(), s31 = O::zero();
        std::size_t c = 0;
        for (; c + 2 * W <= cols; c += 2 * W) {
            const V x0 = O::load(x + c);
            const V x1 = O::load(x + c + W);
            s00 = O::fma(O::load(a0 + c), x0, s00);
            s01 = O::fma(O::load(a0 + c + W), x1, s01);
            s10 = O::fma(O::load(a1 + c), x0, s10);
            s11 = O::fma(O::load(a1 + c + W), x1, s11);
            s20 = O::fma(O::load(a2 + c), x0, s20);
            s21 = O::fma(O::load(a2 + c + W), x1, s21);
            s30 = O::fma(O::load(a3 + c), x0, s30);
            s31 = O::fma(O::load(a3 + c + W), x1, s31);
        }
        if (c + W <= cols) {
            const V x0 = O::load(x + c);
            s00 = O::fma(O::load(a0 + c), x0, s00);
            s10 = O::fma(O::load(a1 + c), x0, s10);
            s20 = O::fma(O::load(a2 + c), x0, s20);
            s30 = O::fma(O::load(a3 + c), x0, s30);
            c += W;
        }
        if (c < cols) {
            const std::size_t left = cols - c;
            const V x0 = O::load_part(x + c, left);
            s01 = O::fma(O::load_part(a0 + c, left), x0, s01);
            s11 = O::fma(O::load_part(a1 + c, left), x0, s11);
            s21 = O::fma(O::load_part(a2 + c, left), x0, s21);
            s31 = O::fma(O::load_part(a3 + c, left), x0, s31);
        }
        y[r] = combine(alpha, O::sum(O::add(s00, s01)), beta, y[r]);
        y[r + 1] = combine(alpha, O::sum(O::add(s10, s11)), beta, y[r + 1]);
        y[r + 2] = combine(alpha, O::sum(O::add(s20, s21)), beta, y[r + 2]);
        y[r + 3] = combine(alpha, O::sum(O::add(s30, s31)), beta, y[r + 3]);
    }
    for (; r < rows; ++r) y[r] = combine(alpha, dot<O>(cols, a + r * lda, x), beta, y[r]);
}

// y = alpha * sum_j x[j] * column j + beta * y, for `cols` columns of `len` contiguous elements, lda apart.
template <class O>
void gemv_cols(std::size_t len, std::size_t cols, typename O::T alpha, const typename O::T* a, std::size_t lda,
               const typename O::T* x, typename O::T beta, typename O::T* y) noexcept {
    using T = typename O::T;
    using V = typename O::V;
    constexpr std::size_t W = O::kWidth;
    scale<O>(len, beta, y);
    std::size_t j = 0;
    // Four columns per pass over y: a quarter of the loads and stores of y. Zero coefficients are not
    // skipped, so NaN in A still propagates.
    for (; j + 4 <= cols; j += 4) {
        const T* a0 = a + j * lda;
        const T* a1 = a0 + lda;
        const T* a2 = a1 + lda;
        const T* a3 = a2 + lda;
        const V c0 = O::set1(alpha * x[j]);
        const V c1 = O::set1(alpha * x[j + 1]);
        const V c2 = O::set1(alpha * x[j + 2]);
        const V c3 = O::set1(alpha * x[j + 3]);
        std::size_t i = 0;
        for (; i + W <= len; i += W) {
            V v = O::fma(c0, O::load(a0 + i), O::load(y + i));
            v = O::fma(c1, O::load(a1 + i), v);
            v = O::fma(c2, O::load(a2 + i), v);
            O::store(y + i, O::fma(c3, O::load(a3 + i), v));
        }
        if (i < len) {
            const std::size_t left = len - i;
            V v = O::fma(c0, O::load_part(a0 + i, left), O::load_part(y + i, left));
            v = O::fma(c1, O::load_part(a1 + i, left), v);
            v = O::fma(c2, O::load_part(a2 + i, left), v);
            O::store_part(y + i, O::fma(c3, O::load_part(a3 + i, left), v), left);
        }
    }
    for (; j < cols; ++j) axpy_always<O>(len, alpha * x[j], a + j * lda, y);
}

template <class O>
void gemv(Layout layout, Transpose trans, std::size_t m, std::size_t n, typename O::T alpha,
          const typename O::T* a, std::size_t lda, const typename O::T* x, typename O::T beta,
          typename O::T* y) noexcept {
    // Row-major A and column-major A^T both read rows of the storage as dot products; the other two cases
    // walk storage columns as axpys.
    const bool rows_of_storage = (layout == Layout::row_major) == (trans == Transpose::none);
    const std::size_t out = trans == Transpose::none ? m : n;
    const std::size_t inner = trans == Transpose::none ? n : m;
    if (out == 0) return;   // nothing to write, and x need not be read
    if (alpha == typename O::T(0) || inner == 0) {
        scale<O>(out, beta, y);
        return;
    }
    if (rows_of_storage) {
        gemv_rows<O>(out, inner, alpha, a, lda, x, beta, y);
    } else {
        gemv_cols<O>(out, inner, alpha, a, lda, x, beta, y);
    }
}

// Fills `set` with the kernels for O.
template <class O>
void install(KernelSet<typename O::T>& set) noexcept {
    set.dot = dot<O>;
    set.axpy = axpy<O>;
    set.gemv = gemv<O>;
}

// dot with Narrow's operations for vectors of kNarrowFromBytes and more, Wide's below: from memory, narrower loads
// can stream faster (Zen 4: 256-bit loads 10-20% more bandwidth than 512-bit ones beyond the last-level cache).
template <class Wide, class Narrow, std::size_t kNarrowFromBytes>
typename Wide::T dot_by_size(std::size_t n, const typename Wide::T* x, const typename Wide::T* y) noexcept {
    static_assert(std::is_same_v<typename Wide::T, typename Narrow::T>);
    return n * sizeof(typename Wide::T) >= kNarrowFromBytes ? dot<Narrow>(n, x, y) : dot<Wide>(n, x, y);
}

}  // namespace cf::compute::vector_detail
