// Morton array kernels (portable; NEON on aarch64), the choice among them, and the tiled layout helpers.
#include "engine/compute/morton.hpp"

#include <algorithm>
#include <bit>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <limits>

#include "engine/compute/chosen_table.hpp"
#include "platform/cpu/cpu_info.hpp"
#include "platform/os/last_error.hpp"
#include "platform/os/log.hpp"

#if defined(__aarch64__)
#include <arm_neon.h>
#endif

namespace cf::compute {
namespace {

// ---- portable: the inline functions in a loop ----------------------------------------------------------------

void portable_encode_2d32(const std::uint32_t* x, const std::uint32_t* y, std::uint32_t* codes,
                          std::size_t n) noexcept {
    for (std::size_t i = 0; i < n; ++i) codes[i] = morton_encode_2d32(x[i], y[i]);
}
void portable_decode_2d32(const std::uint32_t* codes, std::uint32_t* x, std::uint32_t* y, std::size_t n) noexcept {
    for (std::size_t i = 0; i < n; ++i) {
        x[i] = morton_detail::compact2_32(codes[i]);
        y[i] = morton_detail::compact2_32(codes[i] >> 1);
    }
}
void portable_encode_2d64(const std::uint32_t* x, const std::uint32_t* y, std::uint64_t* codes,
                          std::size_t n) noexcept {
    for (std::size_t i = 0; i < n; ++i) codes[i] = morton_encode_2d64(x[i], y[i]);
}
void portable_decode_2d64(const std::uint64_t* codes, std::uint32_t* x, std::uint32_t* y, std::size_t n) noexcept {
    for (std::size_t i = 0; i < n; ++i) {
        x[i] = static_cast<std::uint32_t>(morton_detail::compact2_64(codes[i]));
        y[i] = static_cast<std::uint32_t>(morton_detail::compact2_64(codes[i] >> 1));
    }
}
void portable_encode_3d32(const std::uint32_t* x, const std::uint32_t* y, const std::uint32_t* z,
                          std::uint32_t* codes, std::size_t n) noexcept {
    for (std::size_t i = 0; i < n; ++i) codes[i] = morton_encode_3d32(x[i], y[i], z[i]);
}
void portable_decode_3d32(const std::uint32_t* codes, std::uint32_t* x, std::uint32_t* y, std::uint32_t* z,
                          std::size_t n) noexcept {
    for (std::size_t i = 0; i < n; ++i) {
        x[i] = morton_detail::compact3_32(codes[i]);
        y[i] = morton_detail::compact3_32(codes[i] >> 1);
        z[i] = morton_detail::compact3_32(codes[i] >> 2);
    }
}
void portable_encode_3d64(const std::uint32_t* x, const std::uint32_t* y, const std::uint32_t* z,
                          std::uint64_t* codes, std::size_t n) noexcept {
    for (std::size_t i = 0; i < n; ++i) codes[i] = morton_encode_3d64(x[i], y[i], z[i]);
}
void portable_decode_3d64(const std::uint64_t* codes, std::uint32_t* x, std::uint32_t* y, std::uint32_t* z,
                          std::size_t n) noexcept {
    for (std::size_t i = 0; i < n; ++i) {
        x[i] = static_cast<std::uint32_t>(morton_detail::compact3_64(codes[i]));
        y[i] = static_cast<std::uint32_t>(morton_detail::compact3_64(codes[i] >> 1));
        z[i] = static_cast<std::uint32_t>(morton_detail::compact3_64(codes[i] >> 2));
    }
}

constexpr MortonKernels kPortableKernels{MortonImpl::portable, portable_encode_2d32, portable_decode_2d32,
                                         portable_encode_2d64,  portable_decode_2d64, portable_encode_3d32,
                                         portable_decode_3d32,  portable_encode_3d64, portable_decode_3d64};

#if defined(__aarch64__)
// ---- NEON: the same shift-and-mask steps on 4 x 32-bit or 2 x 64-bit lanes; the tail goes through the scalar code.

// One spread step: v = (v | v << S) & mask (compact: >> S).
template <int S>
inline uint32x4_t spread_step(uint32x4_t v, std::uint32_t mask) noexcept {
    return vandq_u32(vorrq_u32(v, vshlq_n_u32(v, S)), vdupq_n_u32(mask));
}
template <int S>
inline uint32x4_t compact_step(uint32x4_t v, std::uint32_t mask) noexcept {
    return vandq_u32(vorrq_u32(v, vshrq_n_u32(v, S)), vdupq_n_u32(mask));
}
template <int S>
inline uint64x2_t spread_step(uint64x2_t v, std::uint64_t mask) noexcept {
    return vandq_u64(vorrq_u64(v, vshlq_n_u64(v, S)), vdupq_n_u64(mask));
}
template <int S>
inline uint64x2_t compact_step(uint64x2_t v, std::uint64_t mask) noexcept {
    return vandq_u64(vorrq_u64(v, vshrq_n_u64(v, S)), vdupq_n_u64(mask));
}

inline uint32x4_t spread2_32(uint32x4_t v) noexcept {
    v = vandq_u32(v, vdupq_n_u32(0x0000FFFFu));
    v = spread_step<8>(v, 0x00FF00FFu);
    v = spread_step<4>(v, 0x0F0F0F0Fu);
    v = spread_step<2>(v, 0x33333333u);
    return spread_step<1>(v, 0x55555555u);
}
inline uint32x4_t compact2_32(uint32x4_t v) noexcept {
    v = vandq_u32(v, vdupq_n_u32(0x55555555u));
    v = compact_step<1>(v, 0x33333333u);
    v = compact_step<2>(v, 0x0F0F0F0Fu);
    v = compact_step<4>(v, 0x00FF00FFu);
    return compact_step<8>(v, 0x0000FFFFu);
}
inline uint64x2_t spread2_64(uint64x2_t v) noexcept {  // lanes hold 32-bit coordinates, already zero-extended
    v = spread_step<16>(v, 0x0000FFFF0000FFFFull);
    v = spread_step<8>(v, 0x00FF00FF00FF00FFull);
    v = spread_step<4>(v, 0x0F0F0F0F0F0F0F0Full);
    v = spread_step<2>(v, 0x3333333333333333ull);
    return spread_step<1>(v, 0x5555555555555555ull);
}
inline uint64x2_t compact2_64(uint64x2_t v) noexcept {
    v = vandq_u64(v, vdupq_n_u64(0x5555555555555555ull));
    v = compact_step<1>(v, 0x3333333333333333ull);
    v = compact_step<2>(v, 0x0F0F0F0F0F0F0F0Full);
    v = compact_step<4>(v, 0x00FF00FF00FF00FFull);
    v = compact_step<8>(v, 0x0000FFFF0000FFFFull);
    return compact_step<16>(v, 0x00000000FFFFFFFFull);
}
inline uint32x4_t spread3_32(uint32x4_t v) noexcept {
    v = vandq_u32(v, vdupq_n_u32(0x000003FFu));
    v = spread_step<16>(v, 0x030000FFu);
    v = spread_step<8>(v, 0x0300F00Fu);
    v = spread_step<4>(v, 0x030C30C3u);
    return spread_step<2>(v, 0x09249249u);
}
inline uint32x4_t compact3_32(uint32x4_t v) noexcept {
    v = vandq_u32(v, vdupq_n_u32(0x09249249u));
    v = compact_step<2>(v, 0x030C30C3u);
    v = compact_step<4>(v, 0x0300F00Fu);
    v = compact_step<8>(v, 0x030000FFu);
    return compact_step<16>(v, 0x000003FFu);
}
inline uint64x2_t spread3_64(uint64x2_t v) noexcept {
    v = vandq_u64(v, vdupq_n_u64(0x00000000001FFFFFull));
    v = spread_step<32>(v, 0x001F00000000FFFFull);
    v = spread_step<16>(v, 0x001F0000FF0000FFull);
    v = spread_step<8>(v, 0x100F00F00F00F00Full);
    v = spread_step<4>(v, 0x10C30C30C30C30C3ull);
    return spread_step<2>(v, 0x1249249249249249ull);
}
inline uint64x2_t compact3_64(uint64x2_t v) noexcept {
    v = vandq_u64(v, vdupq_n_u64(0x1249249249249249ull));
    v = compact_step<2>(v, 0x10C30C30C30C30C3ull);
    v = compact_step<4>(v, 0x100F00F00F00F00Full);
    v = compact_step<8>(v, 0x001F0000FF0000FFull);
    v = compact_step<16>(v, 0x001F00000000FFFFull);
    return compact_step<32>(v, 0x00000000001FFFFFull);
}

void neon_encode_2d32(const std::uint32_t* x, const std::uint32_t* y, std::uint32_t* codes, std::size_t n) noexcept {
    std::size_t i = 0;
    for (; i + 4 <= n; i += 4) {
        const uint32x4_t sx = spread2_32(vld1q_u32(x + i));
        const uint32x4_t sy = spread2_32(vld1q_u32(y + i));
        vst1q_u32(codes + i, vorrq_u32(sx, vshlq_n_u32(sy, 1)));
    }
    portable_encode_2d32(x + i, y + i, codes + i, n - i);
}
void neon_decode_2d32(const std::uint32_t* codes, std::uint32_t* x, std::uint32_t* y, std::size_t n) noexcept {
    std::size_t i = 0;
    for (; i + 4 <= n; i += 4) {
        const uint32x4_t c = vld1q_u32(codes + i);
        vst1q_u32(x + i, compact2_32(c));
        vst1q_u32(y + i, compact2_32(vshrq_n_u32(c, 1)));
    }
    portable_decode_2d32(codes + i, x + i, y + i, n - i);
}
void neon_encode_2d64(const std::uint32_t* x, const std::uint32_t* y, std::uint64_t* codes, std::size_t n) noexcept {
    std::size_t i = 0;
    for (; i + 2 <= n; i += 2) {
        const uint64x2_t sx = spread2_64(vmovl_u32(vld1_u32(x + i)));
        const uint64x2_t sy = spread2_64(vmovl_u32(vld1_u32(y + i)));
        vst1q_u64(codes + i, vorrq_u64(sx, vshlq_n_u64(sy, 1)));
    }
    portable_encode_2d64(x + i, y + i, codes + i, n - i);
}
void neon_decode_2d64(const std::uint64_t* codes, std::uint32_t* x, std::uint32_t* y, std::size_t n) noexcept {
    std::size_t i = 0;
    for (; i + 2 <= n; i += 2) {
        const uint64x2_t c = vld1q_u64(codes + i);
        vst1_u32(x + i, vmovn_u64(compact2_64(c)));
        vst1_u32(y + i, vmovn_u64(compact2_64(vshrq_n_u64(c, 1))));
    }
    portable_decode_2d64(codes + i, x + i, y + i, n - i);
}
void neon_encode_3d32(const std::uint32_t* x, const std::uint32_t* y, const std::uint32_t* z, std::uint32_t* codes,
                      std::size_t n) noexcept {
    std::size_t i = 0;
    for (; i + 4 <= n; i += 4) {
        const uint32x4_t sx = spread3_32(vld1q_u32(x + i));
        const uint32x4_t sy = spread3_32(vld1q_u32(y + i));
        const uint32x4_t sz = spread3_32(vld1q_u32(z + i));
        vst1q_u32(codes + i, vorrq_u32(vorrq_u32(sx, vshlq_n_u32(sy, 1)), vshlq_n_u32(sz, 2)));
    }
    portable_encode_3d32(x + i, y + i, z + i, codes + i, n - i);
}
void neon_decode_3d32(const std::uint32_t* codes, std::uint32_t* x, std::uint32_t* y, std::uint32_t* z,
                      std::size_t n) noexcept {
    std::size_t i = 0;
    for (; i + 4 <= n; i += 4) {
        const uint32x4_t c = vld1q_u32(codes + i);
        vst1q_u32(x + i, compact3_32(c));
        vst1q_u32(y + i, compact3_32(vshrq_n_u32(c, 1)));
        vst1q_u32(z + i, compact3_32(vshrq_n_u32(c, 2)));
    }
    portable_decode_3d32(codes + i, x + i, y + i, z + i, n - i);
}
void neon_encode_3d64(const std::uint32_t* x, const std::uint32_t* y, const std::uint32_t* z, std::uint64_t* codes,
                      std::size_t n) noexcept {
    std::size_t i = 0;
    for (; i + 2 <= n; i += 2) {
        const uint64x2_t sx = spread3_64(vmovl_u32(vld1_u32(x + i)));
        const uint64x2_t sy = spread3_64(vmovl_u32(vld1_u32(y + i)));
        const uint64x2_t sz = spread3_64(vmovl_u32(vld1_u32(z + i)));
        vst1q_u64(codes + i, vorrq_u64(vorrq_u64(sx, vshlq_n_u64(sy, 1)), vshlq_n_u64(sz, 2)));
    }
    portable_encode_3d64(x + i, y + i, z + i, codes + i, n - i);
}
void neon_decode_3d64(const std::uint64_t* codes, std::uint32_t* x, std::uint32_t* y, std::uint32_t* z,
                      std::size_t n) noexcept {
    std::size_t i = 0;
    for (; i + 2 <= n; i += 2) {
        const uint64x2_t c = vld1q_u64(codes + i);
        vst1_u32(x + i, vmovn_u64(compact3_64(c)));
        vst1_u32(y + i, vmovn_u64(compact3_64(vshrq_n_u64(c, 1))));
        vst1_u32(z + i, vmovn_u64(compact3_64(vshrq_n_u64(c, 2))));
    }
    portable_decode_3d64(codes + i, x + i, y + i, z + i, n - i);
}

constexpr MortonKernels kNeonKernels{MortonImpl::neon, neon_encode_2d32, neon_decode_2d32, neon_encode_2d64,
                                     neon_decode_2d64, neon_encode_3d32, neon_decode_3d32, neon_encode_3d64,
                                     neon_decode_3d64};
#endif

// ---- choice ----------------------------------------------------------------------------------------------------

// PDEP/PEXT are microcoded (tens to hundreds of cycles, data dependent) on AMD before Zen 3 (family 0x19),
// and on Hygon's Zen 1 derivative: there shift-and-mask wins.
[[maybe_unused]] bool pdep_is_slow(const platform::CpuInfo& cpu) noexcept {
    const bool amd = cpu.vendor == "AuthenticAMD" || cpu.vendor == "HygonGenuine";
    return amd && cpu.family < 0x19;
}

// The implementation CF_MORTON (or else the CPU) picks; an unusable CF_MORTON is reported once and ignored.
const MortonKernels* choose_from_environment() noexcept {
    MortonImpl impl = default_morton_impl();
    if (const char* env = std::getenv("CF_MORTON"); env != nullptr && env[0] != '\0') {
        MortonImpl wanted{};
        if (parse_morton_impl(env, wanted) != 0) {
            platform::log(platform::LogLevel::warning, "CF_MORTON=%s is not portable, bmi2 or neon; ignored", env);
        } else if (!morton_impl_supported(wanted)) {
            platform::log(platform::LogLevel::warning, "CF_MORTON=%s is not supported here; ignored", env);
        } else {
            impl = wanted;
        }
    }
    return morton_kernels(impl);
}

ChosenTable<MortonKernels, choose_from_environment> active_table;

// ---- layout --------------------------------------------------------------------------------------------------

// Tiles of the quadrant at (row0, col0), side `side`, that lie inside the grid.
std::size_t tiles_inside(const MortonLayout& layout, std::size_t row0, std::size_t col0, std::size_t side) noexcept {
    const std::size_t rows = row0 < layout.tile_rows ? std::min(layout.tile_rows - row0, side) : 0;
    const std::size_t cols = col0 < layout.tile_cols ? std::min(layout.tile_cols - col0, side) : 0;
    return rows * cols;
}

[[gnu::cold]] int layout_arguments_bad(const MortonLayout& layout, const void* src, const void* dst,
                                       std::size_t ld) noexcept {
    if (layout.tile == 0) return platform::fail(EINVAL, "morton layout: not initialised (tile 0)");
    if (src == nullptr || dst == nullptr) return platform::fail(EINVAL, "morton layout: null matrix pointer");
    if (ld < layout.cols) {
        return platform::fail(EINVAL, "morton layout: leading dimension %zu < cols %zu", ld, layout.cols);
    }
    return platform::fail(EINVAL, "morton layout: rows %zu x leading dimension %zu overflows", layout.rows, ld);
}

bool layout_arguments_ok(const MortonLayout& layout, const void* src, const void* dst, std::size_t ld) noexcept {
    std::size_t last_row_start = 0;
    return layout.tile != 0 && src != nullptr && dst != nullptr && ld >= layout.cols &&
           !__builtin_mul_overflow(layout.rows - 1, ld, &last_row_start) &&
           last_row_start <= std::numeric_limits<std::size_t>::max() / 16 - layout.cols;
}

template <typename T>
int to_tiled(const MortonLayout& layout, const T* src, std::size_t ld, T* dst) noexcept {
    if (layout.size == 0 && layout.tile != 0) return 0;
    if (!layout_arguments_ok(layout, src, dst, ld)) return layout_arguments_bad(layout, src, dst, ld);
    const std::size_t tile = layout.tile;
    for (std::size_t tr = 0; tr < layout.tile_rows; ++tr) {
        const std::size_t row0 = tr << layout.tile_shift;
        const std::size_t rows_in = std::min(tile, layout.rows - row0);
        for (std::size_t tc = 0; tc < layout.tile_cols; ++tc) {
            const std::size_t col0 = tc << layout.tile_shift;
            const std::size_t cols_in = std::min(tile, layout.cols - col0);
            T* out = dst + (morton_tile_rank(layout, tr, tc) << (2 * layout.tile_shift));
            for (std::size_t i = 0; i < rows_in; ++i, out += tile) {
                std::memcpy(out, src + (row0 + i) * ld + col0, cols_in * sizeof(T));
                std::fill(out + cols_in, out + tile, T{});
            }
            std::fill(out, out + (tile - rows_in) * tile, T{});
        }
    }
    return 0;
}

template <typename T>
int from_tiled(const MortonLayout& layout, const T* src, T* dst, std::size_t ld) noexcept {
    if (layout.size == 0 && layout.tile != 0) return 0;
    if (!layout_arguments_ok(layout, src, dst, ld)) return layout_arguments_bad(layout, src, dst, ld);
    const std::size_t tile = layout.tile;
    for (std::size_t tr = 0; tr < layout.tile_rows; ++tr) {
        const std::size_t row0 = tr << layout.tile_shift;
        const std::size_t rows_in = std::min(tile, layout.rows - row0);
        for (std::size_t tc = 0; tc < layout.tile_cols; ++tc) {
            const std::size_t col0 = tc << layout.tile_shift;
            const std::size_t cols_in = std::min(tile, layout.cols - col0);
            const T* in = src + (morton_tile_rank(layout, tr, tc) << (2 * layout.tile_shift));
            for (std::size_t i = 0; i < rows_in; ++i, in += tile) {
                std::memcpy(dst + (row0 + i) * ld + col0, in, cols_in * sizeof(T));
            }
        }
    }
    return 0;
}

}  // namespace

// ---- implementations and dispatch ----------------------------------------------------------------------------

const char* morton_impl_name(MortonImpl impl) noexcept {
    switch (impl) {
        case MortonImpl::portable: return "portable";
        case MortonImpl::bmi2: return "bmi2";
        case MortonImpl::neon: return "neon";
    }
    return "unknown";
}

int parse_morton_impl(const char* name, MortonImpl& out) noexcept {
    if (name == nullptr) return platform::fail(EINVAL, "morton implementation name is null");
    for (MortonImpl impl : {MortonImpl::portable, MortonImpl::bmi2, MortonImpl::neon}) {
        if (std::strcmp(name, morton_impl_name(impl)) == 0) {
            out = impl;
            return 0;
        }
    }
    return platform::fail(EINVAL, "unknown morton implementation \"%s\" (portable, bmi2, neon)", name);
}

const MortonKernels* morton_kernels(MortonImpl impl) noexcept {
    switch (impl) {
        case MortonImpl::portable: return &kPortableKernels;
#if defined(__x86_64__)
        case MortonImpl::bmi2: return platform::cpu_info().bmi2 ? &morton_detail::bmi2_kernels() : nullptr;
#elif defined(__aarch64__)
        case MortonImpl::neon: return platform::cpu_info().neon ? &kNeonKernels : nullptr;
#endif
        default: return nullptr;
    }
}

bool morton_impl_supported(MortonImpl impl) noexcept { return morton_kernels(impl) != nullptr; }

MortonImpl choose_morton_impl(const platform::CpuInfo& cpu) noexcept {
#if defined(__x86_64__)
    if (cpu.bmi2 && !pdep_is_slow(cpu)) return MortonImpl::bmi2;
#elif defined(__aarch64__)
    if (cpu.neon) return MortonImpl::neon;
#else
    (void)cpu;
#endif
    return MortonImpl::portable;
}

MortonImpl default_morton_impl() noexcept { return choose_morton_impl(platform::cpu_info()); }

const MortonKernels& active_morton_kernels() noexcept { return active_table.get(); }

MortonImpl active_morton_impl() noexcept { return active_morton_kernels().impl; }

int force_morton_impl(MortonImpl impl) noexcept {
    const MortonKernels* table = morton_kernels(impl);
    if (table == nullptr) {
        return platform::fail(ENOTSUP, "morton implementation %s is not available on this build or CPU",
                              morton_impl_name(impl));
    }
    active_table.force(*table);
    return 0;
}

void morton_encode_2d32_batch(const std::uint32_t* x, const std::uint32_t* y, std::uint32_t* codes,
                              std::size_t n) noexcept {
    active_morton_kernels().encode_2d32(x, y, codes, n);
}
void morton_decode_2d32_batch(const std::uint32_t* codes, std::uint32_t* x, std::uint32_t* y, std::size_t n) noexcept {
    active_morton_kernels().decode_2d32(codes, x, y, n);
}
void morton_encode_2d64_batch(const std::uint32_t* x, const std::uint32_t* y, std::uint64_t* codes,
                              std::size_t n) noexcept {
    active_morton_kernels().encode_2d64(x, y, codes, n);
}
void morton_decode_2d64_batch(const std::uint64_t* codes, std::uint32_t* x, std::uint32_t* y, std::size_t n) noexcept {
    active_morton_kernels().decode_2d64(codes, x, y, n);
}
void morton_encode_3d32_batch(const std::uint32_t* x, const std::uint32_t* y, const std::uint32_t* z,
                              std::uint32_t* codes, std::size_t n) noexcept {
    active_morton_kernels().encode_3d32(x, y, z, codes, n);
}
void morton_decode_3d32_batch(const std::uint32_t* codes, std::uint32_t* x, std::uint32_t* y, std::uint32_t* z,
                              std::size_t n) noexcept {
    active_morton_kernels().decode_3d32(codes, x, y, z, n);
}
void morton_encode_3d64_batch(const std::uint32_t* x, const std::uint32_t* y, const std::uint32_t* z,
                              std::uint64_t* codes, std::size_t n) noexcept {
    active_morton_kernels().encode_3d64(x, y, z, codes, n);
}
void morton_decode_3d64_batch(const std::uint64_t* codes, std::uint32_t* x, std::uint32_t* y, std::uint32_t* z,
                              std::size_t n) noexcept {
    active_morton_kernels().decode_3d64(codes, x, y, z, n);
}

// ---- tiled layout --------------------------------------------------------------------------------------------

int morton_layout_init(MortonLayout& layout, std::size_t rows, std::size_t cols, std::size_t tile) noexcept {
    if (tile == 0 || !std::has_single_bit(tile) || tile > (std::size_t{1} << 16)) {
        return platform::fail(EINVAL, "morton layout: tile %zu is not a power of two in [1, 65536]", tile);
    }
    MortonLayout l;
    l.rows = rows;
    l.cols = cols;
    l.tile = tile;
    l.tile_shift = static_cast<unsigned>(std::countr_zero(tile));
    l.tile_rows = (rows >> l.tile_shift) + ((rows & (tile - 1)) != 0 ? 1 : 0);
    l.tile_cols = (cols >> l.tile_shift) + ((cols & (tile - 1)) != 0 ? 1 : 0);
    std::size_t tiles = 0;
    std::size_t size = 0;
    // Byte counts must fit too (16 = the largest element we may be given some day), and ranks use 64-bit Morton
    // codes of 32-bit tile coordinates.
    if (__builtin_mul_overflow(l.tile_rows, l.tile_cols, &tiles) || __builtin_mul_overflow(tiles, tile * tile, &size) ||
        size > std::numeric_limits<std::size_t>::max() / 16 || l.tile_rows > (std::uint64_t{1} << 32) ||
        l.tile_cols > (std::uint64_t{1} << 32)) {
        return platform::fail(EINVAL, "morton layout: %zu x %zu in tiles of %zu overflows", rows, cols, tile);
    }
    l.size = size;
    const std::size_t longest = std::max(l.tile_rows, l.tile_cols);
    l.levels = longest <= 1 ? 0u : static_cast<unsigned>(std::bit_width(longest - 1));
    l.full_square = l.tile_rows == l.tile_cols && l.tile_rows == (std::size_t{1} << l.levels);
    layout = l;
    return 0;
}

std::size_t morton_tile_rank(const MortonLayout& layout, std::size_t tile_row, std::size_t tile_col) noexcept {
    const auto code = [](std::size_t row, std::size_t col) noexcept {
        return static_cast<std::size_t>(
            morton_encode_2d64(static_cast<std::uint32_t>(col), static_cast<std::uint32_t>(row)));
    };
    if (layout.full_square) return code(tile_row, tile_col);
    // Walk down the Z curve of the 2^levels square: at each level add the in-grid tiles of the quadrants that come
    // before ours (order: top-left, top-right, bottom-left, bottom-right). Once our quadrant lies wholly inside
    // the grid, the rest of the rank is the plain Morton code of the low bits.
    std::size_t rank = 0;
    std::size_t row0 = 0;
    std::size_t col0 = 0;
    for (unsigned level = layout.levels; level-- > 0;) {
        const std::size_t side = std::size_t{2} << level;
        if (row0 + side <= layout.tile_rows && col0 + side <= layout.tile_cols) {
            return rank + code(tile_row & (side - 1), tile_col & (side - 1));
        }
        const std::size_t half = side >> 1;
        const bool down = ((tile_row >> level) & 1) != 0;
        const bool right = ((tile_col >> level) & 1) != 0;
        if (down || right) rank += tiles_inside(layout, row0, col0, half);
        if (down) {
            rank += tiles_inside(layout, row0, col0 + half, half);
            if (right) rank += tiles_inside(layout, row0 + half, col0, half);
        }
        row0 += down ? half : 0;
        col0 += right ? half : 0;
    }
    return rank;
}

int to_morton_tiled(const MortonLayout& layout, const float* src, std::size_t ld, float* dst) noexcept {
    return to_tiled(layout, src, ld, dst);
}
int to_morton_tiled(const MortonLayout& layout, const double* src, std::size_t ld, double* dst) noexcept {
    return to_tiled(layout, src, ld, dst);
}
int from_morton_tiled(const MortonLayout& layout, const float* src, float* dst, std::size_t ld) noexcept {
    return from_tiled(layout, src, dst, ld);
}
int from_morton_tiled(const MortonLayout& layout, const double* src, double* dst, std::size_t ld) noexcept {
    return from_tiled(layout, src, dst, ld);
}

}  // namespace cf::compute
