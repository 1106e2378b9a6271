// GEMM in portable C++: 4 x 4 register tiles, no vector instructions assumed (the compiler may still use the
// baseline ISA's). The reference the vector ISAs are checked against in spirit, and the fallback everywhere.
#include "engine/compute/gemm_blocking.hpp"

namespace cf::compute {

namespace {

template <class Element, std::size_t kBlockK>
struct Scalar {
    using T = Element;
    using Reg = T;
    using Mask = int;   // one lane: never a partial register
    static constexpr std::size_t kWidth = 1;
    static constexpr std::size_t kMv = 4, kNr = 4;
    static constexpr std::size_t kMc = 64, kKc = kBlockK, kNc = 1024;
    static constexpr std::uint64_t kSmallVolume = 32 * 32 * 32;
    static Reg zero() noexcept { return T(0); }
    static Reg load(const T* p) noexcept { return *p; }
    static Reg load_tail(const T* p, Mask) noexcept { return *p; }
    static Reg broadcast(T x) noexcept { return x; }
    static Reg fma(Reg a, Reg b, Reg c) noexcept { return a * b + c; }
    static Reg add(Reg a, Reg b) noexcept { return a + b; }
    static Reg mul(Reg a, Reg b) noexcept { return a * b; }
    static void store(T* p, Reg r) noexcept { *p = r; }
    static Mask tail_mask(std::size_t) noexcept { return 1; }
};

}  // namespace

void install_gemm_scalar(KernelTable& table) noexcept {
    gemm_detail::install<Scalar<float, 512>, Scalar<double, 256>>(table);
}

}  // namespace cf::compute
