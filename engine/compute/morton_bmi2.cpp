// Morton array kernels with BMI2 PDEP/PEXT: one deposit per coordinate to encode, one extract to decode.
// Built with -mbmi2; morton.cpp calls in only when the CPU has BMI2. This file must not call the inline functions
// of morton.hpp: an out-of-line copy compiled here (with BMI2 shifts) could be the one the linker keeps.
// PDEP takes the low popcount(mask) bits of its source and PEXT reads only the mask's bits, so the masking of
// out-of-range bits documented in morton.hpp comes for free.
#include <immintrin.h>

#include "engine/compute/morton.hpp"

namespace cf::compute {
namespace {

constexpr std::uint32_t kX2d32 = 0x55555555u;
constexpr std::uint32_t kY2d32 = 0xAAAAAAAAu;
constexpr std::uint64_t kX2d64 = 0x5555555555555555ull;
constexpr std::uint64_t kY2d64 = 0xAAAAAAAAAAAAAAAAull;
constexpr std::uint32_t kX3d32 = 0x09249249u;
constexpr std::uint32_t kY3d32 = kX3d32 << 1;
constexpr std::uint32_t kZ3d32 = kX3d32 << 2;
constexpr std::uint64_t kX3d64 = 0x1249249249249249ull;
constexpr std::uint64_t kY3d64 = kX3d64 << 1;
constexpr std::uint64_t kZ3d64 = kX3d64 << 2;

void encode_2d32(const std::uint32_t* x, const std::uint32_t* y, std::uint32_t* codes, std::size_t n) noexcept {
    for (std::size_t i = 0; i < n; ++i) codes[i] = _pdep_u32(x[i], kX2d32) | _pdep_u32(y[i], kY2d32);
}
void decode_2d32(const std::uint32_t* codes, std::uint32_t* x, std::uint32_t* y, std::size_t n) noexcept {
    for (std::size_t i = 0; i < n; ++i) {
        x[i] = _pext_u32(codes[i], kX2d32);
        y[i] = _pext_u32(codes[i], kY2d32);
    }
}
void encode_2d64(const std::uint32_t* x, const std::uint32_t* y, std::uint64_t* codes, std::size_t n) noexcept {
    for (std::size_t i = 0; i < n; ++i) codes[i] = _pdep_u64(x[i], kX2d64) | _pdep_u64(y[i], kY2d64);
}
void decode_2d64(const std::uint64_t* codes, std::uint32_t* x, std::uint32_t* y, std::size_t n) noexcept {
    for (std::size_t i = 0; i < n; ++i) {
        x[i] = static_cast<std::uint32_t>(_pext_u64(codes[i], kX2d64));
        y[i] = static_cast<std::uint32_t>(_pext_u64(codes[i], kY2d64));
    }
}
void encode_3d32(const std::uint32_t* x, const std::uint32_t* y, const std::uint32_t* z, std::uint32_t* codes,
                 std::size_t n) noexcept {
    for (std::size_t i = 0; i < n; ++i) {
        codes[i] = _pdep_u32(x[i], kX3d32) | _pdep_u32(y[i], kY3d32) | _pdep_u32(z[i], kZ3d32);
    }
}
void decode_3d32(const std::uint32_t* codes, std::uint32_t* x, std::uint32_t* y, std::uint32_t* z,
                 std::size_t n) noexcept {
    for (std::size_t i = 0; i < n; ++i) {
        x[i] = _pext_u32(codes[i], kX3d32);
        y[i] = _pext_u32(codes[i], kY3d32);
        z[i] = _pext_u32(codes[i], kZ3d32);
    }
}
void encode_3d64(const std::uint32_t* x, const std::uint32_t* y, const std::uint32_t* z, std::uint64_t* codes,
                 std::size_t n) noexcept {
    for (std::size_t i = 0; i < n; ++i) {
        codes[i] = _pdep_u64(x[i], kX3d64) | _pdep_u64(y[i], kY3d64) | _pdep_u64(z[i], kZ3d64);
    }
}
void decode_3d64(const std::uint64_t* codes, std::uint32_t* x, std::uint32_t* y, std::uint32_t* z,
                 std::size_t n) noexcept {
    for (std::size_t i = 0; i < n; ++i) {
        x[i] = static_cast<std::uint32_t>(_pext_u64(codes[i], kX3d64));
        y[i] = static_cast<std::uint32_t>(_pext_u64(codes[i], kY3d64));
        z[i] = static_cast<std::uint32_t>(_pext_u64(codes[i], kZ3d64));
    }
}

constexpr MortonKernels kBmi2Kernels{MortonImpl::bmi2, encode_2d32, decode_2d32, encode_2d64, decode_2d64,
                                     encode_3d32,      decode_3d32, encode_3d64, decode_3d64};

}  // namespace

const MortonKernels& morton_detail::bmi2_kernels() noexcept { return kBmi2Kernels; }

}  // namespace cf::compute
