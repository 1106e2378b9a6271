// Morton (Z-order) codes: 2D and 3D, 32- and 64-bit codes, plus Morton-ordered tiled matrix layouts.
//
// Bit layout. Coordinate bit i goes to code bit D*i + axis (D = 2 or 3; axis x = 0, y = 1, z = 2), so x owns the
// lowest bit and codes sort first by the highest coordinate bits (the usual Z curve).
//     2D, 32-bit code: x, y of 16 bits     2D, 64-bit code: x, y of 32 bits
//     3D, 32-bit code: x, y, z of 10 bits  3D, 64-bit code: x, y, z of 21 bits
// Out-of-range bits. Encoding masks every coordinate to its width first (bits above it are ignored, so
// encode(x, y) == encode(x & mask, y & mask)); decoding ignores code bits above D * width (bits 30-31 of a 3D
// 32-bit code, bit 63 of a 3D 64-bit code). Every implementation behaves the same, tests check it.
//
// Implementations. Single codes: the inline constexpr functions below ("magic bits": shift-and-mask spreading),
// a dozen ALU ops that need no dispatch. Arrays: the *_batch functions go through one table of kernels chosen once
// at start-up:
//     bmi2      PDEP/PEXT (x86_64, morton_bmi2.cpp built with -mbmi2), one instruction per coordinate.
//               Not picked on AMD before family 0x19 (Zen 3): Zen 1/2 and older run PDEP/PEXT in microcode
//               (~50-300 cycles, data dependent), far slower than shift-and-mask.
//     neon      NEON shift-and-mask on 4 (32-bit) or 2 (64-bit) lanes at once (aarch64).
//     portable  the inline functions in a loop (the compiler may vectorise it).
// CF_MORTON=portable|bmi2|neon in the environment, or force_morton_impl(), overrides the choice.
//
// Tiled layout (MortonLayout). A rows x cols matrix is cut into tile x tile tiles (tile a power of two); each tile
// is stored contiguously, row-major inside, and the tiles follow each other in Z-order of their (tile_row,
// tile_col) position: tile_col is the x coordinate, tile_row the y. When the tile grid is not a square power of
// two, positions outside the grid are skipped, so tiles stay packed (tile_rows * tile_cols tiles, no holes).
// Sizes that are not multiples of the tile are padded: the edge tiles are stored full size, their elements outside
// the matrix are written as zero by to_morton_tiled() and ignored by from_morton_tiled().
#pragma once

#include <cstddef>
#include <cstdint>

namespace cf::platform {
struct CpuInfo;
}

namespace cf::compute {

// ---- single codes, portable shift-and-mask -------------------------------------------------------------------

namespace morton_detail {

// Spreads the low 16 bits of v to the even bits of the result.
constexpr std::uint32_t spread2_32(std::uint32_t v) noexcept {
    v &= 0x0000FFFFu;
    v = (v | (v << 8)) & 0x00FF00FFu;
    v = (v | (v << 4)) & 0x0F0F0F0Fu;
    v = (v | (v << 2)) & 0x33333333u;
    v = (v | (v << 1)) & 0x55555555u;
    return v;
}
constexpr std::uint32_t compact2_32(std::uint32_t v) noexcept {
    v &= 0x55555555u;
    v = (v | (v >> 1)) & 0x33333333u;
    v = (v | (v >> 2)) & 0x0F0F0F0Fu;
    v = (v | (v >> 4)) & 0x00FF00FFu;
    v = (v | (v >> 8)) & 0x0000FFFFu;
    return v;
}
// Spreads the low 32 bits of v to the even bits of the result.
constexpr std::uint64_t spread2_64(std::uint64_t v) noexcept {
    v &= 0x00000000FFFFFFFFull;
    v = (v | (v << 16)) & 0x0000FFFF0000FFFFull;
    v = (v | (v << 8)) & 0x00FF00FF00FF00FFull;
    v = (v | (v << 4)) & 0x0F0F0F0F0F0F0F0Full;
    v = (v | (v << 2)) & 0x3333333333333333ull;
    v = (v | (v << 1)) & 0x5555555555555555ull;
    return v;
}
constexpr std::uint64_t compact2_64(std::uint64_t v) noexcept {
    v &= 0x5555555555555555ull;
    v = (v | (v >> 1)) & 0x3333333333333333ull;
    v = (v | (v >> 2)) & 0x0F0F0F0F0F0F0F0Full;
    v = (v | (v >> 4)) & 0x00FF00FF00FF00FFull;
    v = (v | (v >> 8)) & 0x0000FFFF0000FFFFull;
    v = (v | (v >> 16)) & 0x00000000FFFFFFFFull;
    return v;
}
// Spreads the low 10 bits of v to every third bit (0, 3, ..., 27).
constexpr std::uint32_t spread3_32(std::uint32_t v) noexcept {
    v &= 0x000003FFu;
    v = (v | (v << 16)) & 0x030000FFu;
    v = (v | (v << 8)) & 0x0300F00Fu;
    v = (v | (v << 4)) & 0x030C30C3u;
    v = (v | (v << 2)) & 0x09249249u;
    return v;
}
constexpr std::uint32_t compact3_32(std::uint32_t v) noexcept {
    v &= 0x09249249u;
    v = (v | (v >> 2)) & 0x030C30C3u;
    v = (v | (v >> 4)) & 0x0300F00Fu;
    v = (v | (v >> 8)) & 0x030000FFu;
    v = (v | (v >> 16)) & 0x000003FFu;
    return v;
}
// Spreads the low 21 bits of v to every third bit (0, 3, ..., 60).
constexpr std::uint64_t spread3_64(std::uint64_t v) noexcept {
    v &= 0x00000000001FFFFFull;
    v = (v | (v << 32)) & 0x001F00000000FFFFull;
    v = (v | (v << 16)) & 0x001F0000FF0000FFull;
    v = (v | (v << 8)) & 0x100F00F00F00F00Full;
    v = (v | (v << 4)) & 0x10C30C30C30C30C3ull;
    v = (v | (v << 2)) & 0x1249249249249249ull;
    return v;
}
constexpr std::uint64_t compact3_64(std::uint64_t v) noexcept {
    v &= 0x1249249249249249ull;
    v = (v | (v >> 2)) & 0x10C30C30C30C30C3ull;
    v = (v | (v >> 4)) & 0x100F00F00F00F00Full;
    v = (v | (v >> 8)) & 0x001F0000FF0000FFull;
    v = (v | (v >> 16)) & 0x001F00000000FFFFull;
    v = (v | (v >> 32)) & 0x00000000001FFFFFull;
    return v;
}

}  // namespace morton_detail

// Coordinate widths and the code bits each variant uses (the BMI2 deposit masks).
inline constexpr unsigned kMorton2d32Bits = 16;
inline constexpr unsigned kMorton2d64Bits = 32;
inline constexpr unsigned kMorton3d32Bits = 10;
inline constexpr unsigned kMorton3d64Bits = 21;
inline constexpr std::uint32_t kMorton3d32CodeMask = 0x3FFFFFFFu;
inline constexpr std::uint64_t kMorton3d64CodeMask = 0x7FFFFFFFFFFFFFFFull;

struct MortonPoint2 {
    std::uint32_t x = 0, y = 0;
    friend constexpr bool operator==(const MortonPoint2&, const MortonPoint2&) = default;
};
struct MortonPoint3 {
    std::uint32_t x = 0, y = 0, z = 0;
    friend constexpr bool operator==(const MortonPoint3&, const MortonPoint3&) = default;
};

// x, y: low 16 bits used.
constexpr std::uint32_t morton_encode_2d32(std::uint32_t x, std::uint32_t y) noexcept {
    return morton_detail::spread2_32(x) | (morton_detail::spread2_32(y) << 1);
}
constexpr MortonPoint2 morton_decode_2d32(std::uint32_t code) noexcept {
    return {morton_detail::compact2_32(code), morton_detail::compact2_32(code >> 1)};
}
// x, y: all 32 bits used.
constexpr std::uint64_t morton_encode_2d64(std::uint32_t x, std::uint32_t y) noexcept {
    return morton_detail::spread2_64(x) | (morton_detail::spread2_64(y) << 1);
}
constexpr MortonPoint2 morton_decode_2d64(std::uint64_t code) noexcept {
    return {static_cast<std::uint32_t>(morton_detail::compact2_64(code)),
            static_cast<std::uint32_t>(morton_detail::compact2_64(code >> 1))};
}
// x, y, z: low 10 bits used; code bits 30-31 are zero (and ignored by decode).
constexpr std::uint32_t morton_encode_3d32(std::uint32_t x, std::uint32_t y, std::uint32_t z) noexcept {
    return morton_detail::spread3_32(x) | (morton_detail::spread3_32(y) << 1) | (morton_detail::spread3_32(z) << 2);
}
constexpr MortonPoint3 morton_decode_3d32(std::uint32_t code) noexcept {
    return {morton_detail::compact3_32(code), morton_detail::compact3_32(code >> 1),
            morton_detail::compact3_32(code >> 2)};
}
// x, y, z: low 21 bits used; code bit 63 is zero (and ignored by decode).
constexpr std::uint64_t morton_encode_3d64(std::uint32_t x, std::uint32_t y, std::uint32_t z) noexcept {
    return morton_detail::spread3_64(x) | (morton_detail::spread3_64(y) << 1) | (morton_detail::spread3_64(z) << 2);
}
constexpr MortonPoint3 morton_decode_3d64(std::uint64_t code) noexcept {
    return {static_cast<std::uint32_t>(morton_detail::compact3_64(code)),
            static_cast<std::uint32_t>(morton_detail::compact3_64(code >> 1)),
            static_cast<std::uint32_t>(morton_detail::compact3_64(code >> 2))};
}

// ---- arrays, dispatched --------------------------------------------------------------------------------------

enum class MortonImpl { portable, bmi2, neon };

// One implementation's array kernels. Coordinates are separate arrays (x[i], y[i], z[i] -> codes[i]); n may be 0
// (then no pointer is read). Inputs and outputs must not overlap.
struct MortonKernels {
    MortonImpl impl;
    void (*encode_2d32)(const std::uint32_t* x, const std::uint32_t* y, std::uint32_t* codes, std::size_t n) noexcept;
    void (*decode_2d32)(const std::uint32_t* codes, std::uint32_t* x, std::uint32_t* y, std::size_t n) noexcept;
    void (*encode_2d64)(const std::uint32_t* x, const std::uint32_t* y, std::uint64_t* codes, std::size_t n) noexcept;
    void (*decode_2d64)(const std::uint64_t* codes, std::uint32_t* x, std::uint32_t* y, std::size_t n) noexcept;
    void (*encode_3d32)(const std::uint32_t* x, const std::uint32_t* y, const std::uint32_t* z, std::uint32_t* codes,
                        std::size_t n) noexcept;
    void (*decode_3d32)(const std::uint32_t* codes, std::uint32_t* x, std::uint32_t* y, std::uint32_t* z,
                        std::size_t n) noexcept;
    void (*encode_3d64)(const std::uint32_t* x, const std::uint32_t* y, const std::uint32_t* z, std::uint64_t* codes,
                        std::size_t n) noexcept;
    void (*decode_3d64)(const std::uint64_t* codes, std::uint32_t* x, std::uint32_t* y, std::uint32_t* z,
                        std::size_t n) noexcept;
};

// "portable", "bmi2", "neon".
const char* morton_impl_name(MortonImpl impl) noexcept;
// name -> impl. 0, or -EINVAL for another name.
int parse_morton_impl(const char* name, MortonImpl& out) noexcept;
// Whether this build has `impl` and this CPU can run it (bmi2 needs the BMI2 bit; slowness does not matter here).
bool morton_impl_supported(MortonImpl impl) noexcept;
// The rule: x86_64 takes bmi2 when the CPU has BMI2, unless it is AMD (or Hygon) before family 0x19, whose
// microcoded PDEP/PEXT lose to shift-and-mask; aarch64 takes neon when present; else portable.
MortonImpl choose_morton_impl(const platform::CpuInfo& cpu) noexcept;
// What start-up picks on this machine (choose_morton_impl(cpu_info()), ignoring CF_MORTON).
MortonImpl default_morton_impl() noexcept;
// The implementation in use; the first call picks it (default_morton_impl(), then CF_MORTON; a bad CF_MORTON is
// reported once through the log sink (platform/os/log.hpp) and ignored). Later calls are one atomic load.
MortonImpl active_morton_impl() noexcept;
const MortonKernels& active_morton_kernels() noexcept;
// `impl`'s kernels, or nullptr when it is not supported (tests compare implementations directly).
const MortonKernels* morton_kernels(MortonImpl impl) noexcept;
// Switches every later batch call to `impl`. 0, or -ENOTSUP (this build or CPU lacks it; message set).
int force_morton_impl(MortonImpl impl) noexcept;

#if defined(__x86_64__)
namespace morton_detail {
// Defined in morton_bmi2.cpp (built with -mbmi2): call only when cpu_info().bmi2.
const MortonKernels& bmi2_kernels() noexcept;
}  // namespace morton_detail
#endif

// The active implementation's kernels (see MortonKernels for the contract).
void morton_encode_2d32_batch(const std::uint32_t* x, const std::uint32_t* y, std::uint32_t* codes,
                              std::size_t n) noexcept;
void morton_decode_2d32_batch(const std::uint32_t* codes, std::uint32_t* x, std::uint32_t* y, std::size_t n) noexcept;
void morton_encode_2d64_batch(const std::uint32_t* x, const std::uint32_t* y, std::uint64_t* codes,
                              std::size_t n) noexcept;
void morton_decode_2d64_batch(const std::uint64_t* codes, std::uint32_t* x, std::uint32_t* y, std::size_t n) noexcept;
void morton_encode_3d32_batch(const std::uint32_t* x, const std::uint32_t* y, const std::uint32_t* z,
                              std::uint32_t* codes, std::size_t n) noexcept;
void morton_decode_3d32_batch(const std::uint32_t* codes, std::uint32_t* x, std::uint32_t* y, std::uint32_t* z,
                              std::size_t n) noexcept;
void morton_encode_3d64_batch(const std::uint32_t* x, const std::uint32_t* y, const std::uint32_t* z,
                              std::uint64_t* codes, std::size_t n) noexcept;
void morton_decode_3d64_batch(const std::uint64_t* codes, std::uint32_t* x, std::uint32_t* y, std::uint32_t* z,
                              std::size_t n) noexcept;

// ---- Morton-ordered tiled matrix layout ----------------------------------------------------------------------

// A plain value: fill it with morton_layout_init(), then pass it around freely.
struct MortonLayout {
    std::size_t rows = 0, cols = 0;            // the matrix
    std::size_t tile = 0;                      // tile edge, a power of two
    unsigned tile_shift = 0;                   // log2(tile)
    std::size_t tile_rows = 0, tile_cols = 0;  // ceil(rows / tile), ceil(cols / tile)
    unsigned levels = 0;                       // Z-curve levels: bits of max(tile_rows, tile_cols) - 1
    bool full_square = false;                  // tile grid is 2^levels square: tile rank == Morton code
    std::size_t size = 0;                      // elements of storage: tile_rows * tile_cols * tile * tile
};

// 0, or -EINVAL (message set): tile is 0 or not a power of two, tile > 2^16, or the storage size overflows.
// rows or cols 0 is a valid empty layout (size 0).
int morton_layout_init(MortonLayout& layout, std::size_t rows, std::size_t cols, std::size_t tile) noexcept;

// Position of tile (tile_row, tile_col) in Z-order among the grid's tiles. Precondition: inside the grid.
// O(1) for a full square power-of-two grid, else O(levels): meant for random access, copy loops use it per tile.
std::size_t morton_tile_rank(const MortonLayout& layout, std::size_t tile_row, std::size_t tile_col) noexcept;

// Storage index of element (row, col). Precondition: row < rows, col < cols.
inline std::size_t morton_tiled_index(const MortonLayout& layout, std::size_t row, std::size_t col) noexcept {
    const std::size_t mask = layout.tile - 1;
    return (morton_tile_rank(layout, row >> layout.tile_shift, col >> layout.tile_shift) << (2 * layout.tile_shift)) +
           ((row & mask) << layout.tile_shift) + (col & mask);
}

// Row-major `src` (leading dimension ld >= cols) -> `dst` of layout.size elements, padding zeroed.
// 0, or -EINVAL (message set): ld < cols, or a null pointer for a non-empty matrix. `src` and `dst` must not overlap.
int to_morton_tiled(const MortonLayout& layout, const float* src, std::size_t ld, float* dst) noexcept;
int to_morton_tiled(const MortonLayout& layout, const double* src, std::size_t ld, double* dst) noexcept;
// Tiled `src` -> row-major `dst` (leading dimension ld >= cols); elements of dst past cols are left alone.
int from_morton_tiled(const MortonLayout& layout, const float* src, float* dst, std::size_t ld) noexcept;
int from_morton_tiled(const MortonLayout& layout, const double* src, double* dst, std::size_t ld) noexcept;

}  // namespace cf::compute
