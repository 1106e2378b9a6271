// Compiled with the ISA flags meson.build gives Eigen. Only Eigen's code and these wrappers live here, and nothing
// from the standard library is used directly (no std::string): an inline library function instantiated here would
// carry those instructions and might be the copy the linker keeps for the whole program.
#include "bench/cf-latency/compute_eigen.hpp"

#define EIGEN_DONT_PARALLELIZE 1
#include <Eigen/Core>

#define CF_EIGEN_STRING_(x) #x
#define CF_EIGEN_STRING(x) CF_EIGEN_STRING_(x)

namespace cf::latency {
namespace {

using RowMajorMatrix = Eigen::Matrix<double, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
using ConstMatrixMap = Eigen::Map<const RowMajorMatrix>;
using MatrixMap = Eigen::Map<RowMajorMatrix>;
using ConstVectorMap = Eigen::Map<const Eigen::VectorXd>;
using VectorMap = Eigen::Map<Eigen::VectorXd>;

Eigen::Index index(std::size_t value) noexcept { return static_cast<Eigen::Index>(value); }

}  // namespace

const char* eigen_version() noexcept {
    return CF_EIGEN_STRING(EIGEN_WORLD_VERSION) "." CF_EIGEN_STRING(EIGEN_MAJOR_VERSION) "." CF_EIGEN_STRING(
        EIGEN_MINOR_VERSION);
}

const char* eigen_simd_in_use() noexcept { return Eigen::SimdInstructionSetsInUse(); }

double eigen_ddot(std::size_t n, const double* x, const double* y) noexcept {
    return ConstVectorMap(x, index(n)).dot(ConstVectorMap(y, index(n)));
}

void eigen_dgemv(std::size_t m, std::size_t n, const double* a, const double* x, double* y) noexcept {
    VectorMap(y, index(m)).noalias() = ConstMatrixMap(a, index(m), index(n)) * ConstVectorMap(x, index(n));
}

void eigen_dgemm(std::size_t m, std::size_t n, std::size_t k, const double* a, const double* b, double* c) noexcept {
    MatrixMap(c, index(m), index(n)).noalias() =
        ConstMatrixMap(a, index(m), index(k)) * ConstMatrixMap(b, index(k), index(n));
}

}  // namespace cf::latency
