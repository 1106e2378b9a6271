// The compute kernels through the C API: argument decoding here, validation and dispatch in engine/compute.
#include <cerrno>

#include "chronofabric/chronofabric.h"
#include "engine/capi/counts.hpp"
#include "engine/capi/status.hpp"
#include "engine/compute/blas.hpp"
#include "engine/compute/dispatch.hpp"
#include "engine/compute/gemm_workspace.hpp"
#include "platform/os/last_error.hpp"

namespace {

using cf::capi::check_count;
using cf::compute::Layout;
using cf::compute::Transpose;
using cf::platform::IsaLevel;

// CF_ISA_* are IsaLevel's values; the static_asserts keep them so.
static_assert(static_cast<int>(IsaLevel::scalar) == CF_ISA_SCALAR);
static_assert(static_cast<int>(IsaLevel::avx2_fma) == CF_ISA_AVX2);
static_assert(static_cast<int>(IsaLevel::avx512) == CF_ISA_AVX512);
static_assert(static_cast<int>(IsaLevel::neon) == CF_ISA_NEON);

bool decode_layout(int value, Layout& out, const char* function) noexcept {
    if (value == CF_ROW_MAJOR || value == CF_COL_MAJOR) {
        out = value == CF_ROW_MAJOR ? Layout::row_major : Layout::col_major;
        return true;
    }
    cf::platform::fail(EINVAL, "%s: layout %d is neither CF_ROW_MAJOR nor CF_COL_MAJOR", function, value);
    return false;
}

bool decode_transpose(int value, Transpose& out, const char* function) noexcept {
    if (value == CF_NO_TRANS || value == CF_TRANS) {
        out = value == CF_NO_TRANS ? Transpose::none : Transpose::transpose;
        return true;
    }
    cf::platform::fail(EINVAL, "%s: transpose %d is neither CF_NO_TRANS nor CF_TRANS", function, value);
    return false;
}

template <class T>
int dot(std::size_t n, const T* x, const T* y, T* result) noexcept {
    if (result == nullptr) return cf::platform::fail(EINVAL, "cf_dot: result is NULL");
    if (const int status = check_count("cf_dot", "n", n, sizeof(T)); status != 0) return status;
    T value{};
    const int status = cf::compute::dot(n, x, y, value);
    if (status == 0) *result = value;
    return status;
}

template <class T>
int axpy(std::size_t n, T alpha, const T* x, T* y) noexcept {
    if (const int status = check_count("cf_axpy", "n", n, sizeof(T)); status != 0) return status;
    return cf::compute::axpy(n, alpha, x, y);
}

// Each size on its own; engine/compute then checks the span of each matrix (rows x leading dimension).
template <class T>
int gemv(int layout, int trans, std::size_t m, std::size_t n, T alpha, const T* a, std::size_t lda, const T* x,
         T beta, T* y) noexcept {
    Layout l{};
    Transpose t{};
    if (!decode_layout(layout, l, "cf_gemv") || !decode_transpose(trans, t, "cf_gemv")) return -EINVAL;
    if (const int status = check_count("cf_gemv", "m", m, sizeof(T)); status != 0) return status;
    if (const int status = check_count("cf_gemv", "n", n, sizeof(T)); status != 0) return status;
    if (const int status = check_count("cf_gemv", "lda", lda, sizeof(T)); status != 0) return status;
    return cf::compute::gemv(l, t, m, n, alpha, a, lda, x, beta, y);
}

template <class T>
int gemm(int layout, int trans_a, int trans_b, std::size_t m, std::size_t n, std::size_t k, T alpha, const T* a,
         std::size_t lda, const T* b, std::size_t ldb, T beta, T* c, std::size_t ldc) noexcept {
    Layout l{};
    Transpose ta{}, tb{};
    if (!decode_layout(layout, l, "cf_gemm") || !decode_transpose(trans_a, ta, "cf_gemm") ||
        !decode_transpose(trans_b, tb, "cf_gemm")) {
        return -EINVAL;
    }
    const struct {
        const char* name;
        std::size_t count;
    } sizes[] = {{"m", m}, {"n", n}, {"k", k}, {"lda", lda}, {"ldb", ldb}, {"ldc", ldc}};
    for (const auto& size : sizes) {
        if (const int status = check_count("cf_gemm", size.name, size.count, sizeof(T)); status != 0) return status;
    }
    return cf::compute::gemm(l, ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
}

}  // namespace

extern "C" {

int cf_isa_active(void) { return static_cast<int>(cf::compute::active_isa()); }

const char* cf_isa_name(int isa) {
    if (isa < CF_ISA_SCALAR || isa > CF_ISA_NEON) return nullptr;
    return cf::compute::isa_name(static_cast<IsaLevel>(isa));
}

int cf_isa_force(int isa) {
    if (cf_isa_name(isa) == nullptr) return cf::platform::fail(EINVAL, "cf_isa_force: %d is not a CF_ISA_* value", isa);
    const cf::capi::Call status_of("cf_isa_force");
    return status_of(cf::compute::force_isa(static_cast<IsaLevel>(isa)));
}

int cf_compute_prepare_thread(void) {
    const cf::capi::Call status_of("cf_compute_prepare_thread");
    return status_of(cf::compute::GemmWorkspace::prepare_this_thread());
}

int cf_dot_f64(size_t n, const double* x, const double* y, double* result) { return dot(n, x, y, result); }
int cf_dot_f32(size_t n, const float* x, const float* y, float* result) { return dot(n, x, y, result); }

int cf_axpy_f64(size_t n, double alpha, const double* x, double* y) { return axpy(n, alpha, x, y); }
int cf_axpy_f32(size_t n, float alpha, const float* x, float* y) { return axpy(n, alpha, x, y); }

int cf_gemv_f64(int layout, int trans, size_t m, size_t n, double alpha, const double* a, size_t lda,
                const double* x, double beta, double* y) {
    return gemv(layout, trans, m, n, alpha, a, lda, x, beta, y);
}
int cf_gemv_f32(int layout, int trans, size_t m, size_t n, float alpha, const float* a, size_t lda, const float* x,
                float beta, float* y) {
    return gemv(layout, trans, m, n, alpha, a, lda, x, beta, y);
}

int cf_gemm_f64(int layout, int trans_a, int trans_b, size_t m, size_t n, size_t k, double alpha, const double* a,
                size_t lda, const double* b, size_t ldb, double beta, double* c, size_t ldc) {
    return gemm(layout, trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
}
int cf_gemm_f32(int layout, int trans_a, int trans_b, size_t m, size_t n, size_t k, float alpha, const float* a,
                size_t lda, const float* b, size_t ldb, float beta, float* c, size_t ldc) {
    return gemm(layout, trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
}

}
