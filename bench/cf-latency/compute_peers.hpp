// The BLAS libraries the compute scenario measures our kernels against, loaded at run time.
//
// OpenBLAS and BLIS both export the cblas_* names (and the Fortran dgemm_ ...), so linking both would let one
// silently stand in for the other. Each is dlopen()ed with RTLD_LOCAL and its entry points are resolved from its own
// handle, then checked to live in that library. Both are forced to one thread (environment before the load, their
// thread-count setters after it): the scenario compares single-core kernels. A library that does not load is
// reported as skipped with the loader's reason, never silently (the ARM64 cross set has neither).
#pragma once

#include <string>
#include <vector>

namespace cf::latency {

// The CBLAS entry points the scenario calls. cblas.h's enums are ints (CblasRowMajor 101, CblasNoTrans 111); both
// Debian builds use 32-bit BLAS integers (BLIS's is checked at load time).
struct CblasApi {
    static constexpr int kRowMajor = 101;
    static constexpr int kNoTrans = 111;

    double (*ddot)(int n, const double* x, int incx, const double* y, int incy) = nullptr;
    void (*dgemv)(int order, int trans, int m, int n, double alpha, const double* a, int lda, const double* x,
                  int incx, double beta, double* y, int incy) = nullptr;
    void (*dgemm)(int order, int trans_a, int trans_b, int m, int n, int k, double alpha, const double* a, int lda,
                  const double* b, int ldb, double beta, double* c, int ldc) = nullptr;
};

struct BlasPeer {
    std::string name;       // "OpenBLAS", "BLIS": the contender's name in every label
    std::string about;      // version, configuration, library path, threads: for the notes
    CblasApi api;
};

struct ComputePeers {
    std::vector<BlasPeer> blas;       // the ones that loaded, OpenBLAS first
    std::vector<std::string> notes;   // the ones that did not, and why
};

// Loaded on first call, once per process, and never unloaded.
const ComputePeers& compute_peers();

}  // namespace cf::latency
