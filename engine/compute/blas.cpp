#include "engine/compute/blas.hpp"

#include <cerrno>
#include <cstdint>

#include "engine/compute/dispatch.hpp"
#include "platform/os/last_error.hpp"

namespace cf::compute {
namespace {

constexpr std::size_t at_least_one(std::size_t v) noexcept { return v > 0 ? v : 1; }

const char* layout_name(Layout layout) noexcept { return layout == Layout::row_major ? "row-major" : "column-major"; }

const KernelSet<float>& kernels_for(float) noexcept { return active_kernels().f32; }
const KernelSet<double>& kernels_for(double) noexcept { return active_kernels().f64; }

// A matrix stored as `rows` x `cols` in `layout` with leading dimension `ld`: ld must cover a stored row
// (row-major) or column (column-major), and the pointer is needed unless the matrix is empty. The last
// element's offset must also be addressable, so a huge ld cannot wrap the index arithmetic in the kernels.
template <class T>
int check_matrix(const char* function, const char* name, Layout layout, std::size_t rows, std::size_t cols,
                 const T* p, std::size_t ld) noexcept {
    const bool row_major = layout == Layout::row_major;
    const std::size_t inner = row_major ? cols : rows;
    const std::size_t outer = row_major ? rows : cols;
    if (ld < at_least_one(inner)) {
        return platform::fail(EINVAL, "%s: ld%s %zu is smaller than max(1, %zu) for the %s %zu x %zu %s", function,
                              name, ld, inner, layout_name(layout), rows, cols, name);
    }
    if (rows == 0 || cols == 0) return 0;
    if (p == nullptr) return platform::fail(EINVAL, "%s: %s is null but %zu x %zu", function, name, rows, cols);
    std::size_t span = 0;
    if (__builtin_mul_overflow(outer - 1, ld, &span) || __builtin_add_overflow(span, inner, &span) ||
        span > static_cast<std::size_t>(PTRDIFF_MAX) / sizeof(T)) {
        return platform::fail(EINVAL, "%s: %zu x %zu %s with ld%s %zu does not fit in memory", function, rows, cols,
                              name, name, ld);
    }
    return 0;
}

// The common case in a few instructions, so that small calls do not pay for the diagnostics: non-empty, not null,
// ld covering the stored rows or columns, and every size below 2^28, where the span check cannot overflow.
// Bitwise rather than short-circuit, so it compiles to a handful of flag operations and one branch. False sends
// the call through check_matrix, which decides (and names the problem).
template <class T>
[[gnu::always_inline]] inline bool plainly_valid(Layout layout, std::size_t rows, std::size_t cols, const T* p,
                                                 std::size_t ld) noexcept {
    const std::size_t inner = layout == Layout::row_major ? cols : rows;
    return (((rows | cols | ld) >> 28) == 0) & (rows != 0) & (cols != 0) & (p != nullptr) & (ld >= inner);
}

template <class T>
int check_vector(const char* function, const char* name, std::size_t n, const T* p) noexcept {
    if (n > 0 && p == nullptr) return platform::fail(EINVAL, "%s: %s is null but n = %zu", function, name, n);
    return 0;
}

template <class T>
int checked_dot(std::size_t n, const T* x, const T* y, T& out) noexcept {
    if (int rc = check_vector("dot", "x", n, x); rc != 0) return rc;
    if (int rc = check_vector("dot", "y", n, y); rc != 0) return rc;
    out = kernels_for(T{}).dot(n, x, y);
    return 0;
}

template <class T>
int checked_axpy(std::size_t n, T alpha, const T* x, T* y) noexcept {
    if (int rc = check_vector("axpy", "x", n, x); rc != 0) return rc;
    if (int rc = check_vector("axpy", "y", n, y); rc != 0) return rc;
    kernels_for(T{}).axpy(n, alpha, x, y);
    return 0;
}

template <class T>
int checked_gemv(Layout layout, Transpose trans, std::size_t m, std::size_t n, T alpha, const T* a,
                 std::size_t lda, const T* x, T beta, T* y) noexcept {
    const bool transposed = trans == Transpose::transpose;
    if (int rc = check_matrix("gemv", "a", layout, m, n, a, lda); rc != 0) return rc;
    if (int rc = check_vector("gemv", "x", transposed ? m : n, x); rc != 0) return rc;
    if (int rc = check_vector("gemv", "y", transposed ? n : m, y); rc != 0) return rc;
    kernels_for(T{}).gemv(layout, trans, m, n, alpha, a, lda, x, beta, y);
    return 0;
}

template <class T>
int checked_gemm(Layout layout, Transpose trans_a, Transpose trans_b, std::size_t m, std::size_t n, std::size_t k,
                 T alpha, const T* a, std::size_t lda, const T* b, std::size_t ldb, T beta, T* c,
                 std::size_t ldc) noexcept {
    // op(A) is m x k and op(B) k x n, so the stored A is k x m when transposed, B n x k.
    const bool ta = trans_a == Transpose::transpose;
    const bool tb = trans_b == Transpose::transpose;
    if (!(plainly_valid(layout, ta ? k : m, ta ? m : k, a, lda) & plainly_valid(layout, tb ? n : k, tb ? k : n, b, ldb) &
          plainly_valid(layout, m, n, c, ldc))) [[unlikely]] {
        if (int rc = check_matrix("gemm", "a", layout, ta ? k : m, ta ? m : k, a, lda); rc != 0) return rc;
        if (int rc = check_matrix("gemm", "b", layout, tb ? n : k, tb ? k : n, b, ldb); rc != 0) return rc;
        if (int rc = check_matrix("gemm", "c", layout, m, n, c, ldc); rc != 0) return rc;
        if (m == 0 || n == 0) return 0;
    }
    const KernelSet<T>& kernels = kernels_for(T{});
    if (kernels.gemm == nullptr) [[unlikely]] {
        return platform::fail(ENOTSUP, "gemm: this build has no gemm kernel");
    }
    if (kernels.gemm(layout, trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc, nullptr) != 0)
        [[unlikely]] {
        return platform::fail(ENOMEM, "gemm: this thread's packing workspace could not be allocated");
    }
    return 0;
}

}  // namespace

int dot(std::size_t n, const float* x, const float* y, float& out) noexcept { return checked_dot(n, x, y, out); }
int dot(std::size_t n, const double* x, const double* y, double& out) noexcept { return checked_dot(n, x, y, out); }

int axpy(std::size_t n, float alpha, const float* x, float* y) noexcept { return checked_axpy(n, alpha, x, y); }
int axpy(std::size_t n, double alpha, const double* x, double* y) noexcept { return checked_axpy(n, alpha, x, y); }

int gemv(Layout layout, Transpose trans, std::size_t m, std::size_t n, float alpha, const float* a, std::size_t lda,
         const float* x, float beta, float* y) noexcept {
    return checked_gemv(layout, trans, m, n, alpha, a, lda, x, beta, y);
}
int gemv(Layout layout, Transpose trans, std::size_t m, std::size_t n, double alpha, const double* a,
         std::size_t lda, const double* x, double beta, double* y) noexcept {
    return checked_gemv(layout, trans, m, n, alpha, a, lda, x, beta, y);
}

int gemm(Layout layout, Transpose trans_a, Transpose trans_b, std::size_t m, std::size_t n, std::size_t k,
         float alpha, const float* a, std::size_t lda, const float* b, std::size_t ldb, float beta, float* c,
         std::size_t ldc) noexcept {
    return checked_gemm(layout, trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
}
int gemm(Layout layout, Transpose trans_a, Transpose trans_b, std::size_t m, std::size_t n, std::size_t k,
         double alpha, const double* a, std::size_t lda, const double* b, std::size_t ldb, double beta, double* c,
         std::size_t ldc) noexcept {
    return checked_gemm(layout, trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
}

}  // namespace cf::compute
