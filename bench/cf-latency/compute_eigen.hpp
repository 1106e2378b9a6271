// Eigen as a contender of the compute scenario: the few calls it makes, out of line in compute_eigen.cpp.
// That file is built only when Eigen's headers are found (CF_HAVE_EIGEN), on x86_64 with -mavx2 -mfma -mavx512f in
// a library of its own: nothing here may be called before the scenario has checked that the CPU and OS run
// AVX-512F and FMA. Eigen's own threading is off (EIGEN_DONT_PARALLELIZE); every call runs on the calling thread.
#pragma once

#include <cstddef>

namespace cf::latency {

// "3.4.0", and "AVX512, FMA, AVX2, AVX SSE, ..." (Eigen::SimdInstructionSetsInUse): for the notes.
const char* eigen_version() noexcept;
const char* eigen_simd_in_use() noexcept;

// Row-major, no transpose, alpha 1, beta 0, tightly packed: the shapes the scenario measures.
double eigen_ddot(std::size_t n, const double* x, const double* y) noexcept;
void eigen_dgemv(std::size_t m, std::size_t n, const double* a, const double* x, double* y) noexcept;
void eigen_dgemm(std::size_t m, std::size_t n, std::size_t k, const double* a, const double* b, double* c) noexcept;

}  // namespace cf::latency
