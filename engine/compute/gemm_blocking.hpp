// The ISA-independent half of GEMM, included by each gemm_<isa>.cpp so that it is compiled with that ISA's flags.
// Everything here is a template on the ISA's vector traits V (a type with internal linkage in its .cpp), so no
// instantiation is shared between objects built with different flags.
//
// V provides, for element type T and a register Reg of kWidth lanes:
//   zero(), load(p), load_tail(p, mask), broadcast(x), fma(a, b, c) = a * b + c, mul(a, b), add(a, b),
//   store(p, r), tail_mask(count) for the first count (1..kWidth) lanes; optionally store_tail(p, mask, r) where
//   a masked store is cheap;
// and its blocking: the micro-tile is kMv registers (kMr = kMv * kWidth rows) by kNr columns; kMc x kKc blocks of
// A and kKc x kNc blocks of B are packed (BLIS loop order: jc, pc, ic, then jr, ir around the micro-kernel).
//
// Everything is reduced to one column-major problem first: a row-major C = op(A) op(B) is the column-major
// C^T = op(B)^T op(A)^T, with A and B (and their transposes) swapped. op(A) and op(B) are then addressed through
// strides, a transpose being only a swap of the row and column stride.
#pragma once

#include <algorithm>
#include <cerrno>
#include <array>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <utility>

#include "engine/compute/gemm_workspace.hpp"
#include "engine/compute/kernels.hpp"

namespace cf::compute::gemm_detail {

// Strides of op(A) (a[i + p * lda], columns contiguous) and op(B) (b[p * b_rs + j * b_cs]) for one tile.
struct RuntimeStrides {
    std::size_t lda, b_rs, b_cs;
    std::size_t a_step() const noexcept { return lda; }
    std::size_t b_step() const noexcept { return b_rs; }
    std::size_t b_col() const noexcept { return b_cs; }
};

// Packed slivers: A is kMr rows per k, B kNr columns per k.
template <std::size_t kMr, std::size_t kNr>
struct PackedStrides {
    static constexpr std::size_t a_step() noexcept { return kMr; }
    static constexpr std::size_t b_step() noexcept { return kNr; }
    static constexpr std::size_t b_col() noexcept { return 1; }
};

// C[0:kMv*W (only rows_in_tail of the last register if kTail), 0:kNc] = alpha * op(A) op(B) + beta * C, all
// kMv x kNc accumulators in registers. beta == 0 stores without reading C.
template <class V, std::size_t kMv, std::size_t kNc, bool kTail, class S>
[[gnu::always_inline]] inline void tile(std::size_t k, const typename V::T* a, const typename V::T* b, const S& s,
                                        typename V::T alpha, typename V::T beta, typename V::T* c, std::size_t ldc,
                                        typename V::Mask mask, std::size_t rows_in_tail) noexcept {
    using T = typename V::T;
    using Reg = typename V::Reg;
    constexpr std::size_t kW = V::kWidth;
    Reg acc[kMv][kNc];
#pragma GCC unroll 32
    for (std::size_t v = 0; v < kMv; ++v)
#pragma GCC unroll 32
        for (std::size_t j = 0; j < kNc; ++j) acc[v][j] = V::zero();

    for (std::size_t p = 0; p < k; ++p) {
        Reg av[kMv];
#pragma GCC unroll 32
        for (std::size_t v = 0; v < kMv; ++v)
            av[v] = (kTail && v == kMv - 1) ? V::load_tail(a + v * kW, mask) : V::load(a + v * kW);
#pragma GCC unroll 32
        for (std::size_t j = 0; j < kNc; ++j) {
            const Reg bj = V::broadcast(b[j * s.b_col()]);
#pragma GCC unroll 32
            for (std::size_t v = 0; v < kMv; ++v) acc[v][j] = V::fma(av[v], bj, acc[v][j]);
        }
        a += s.a_step();
        b += s.b_step();
    }

    // The ragged last register goes to C element by element: a masked store followed (in the next call on the
    // same C) by a masked load does not forward and stalls for dozens of cycles.
    constexpr std::size_t kFull = kTail ? kMv - 1 : kMv;
    // alpha == 1 (the usual case) saves one multiply per register, which shows at n <= 16.
    auto store_full = [&](auto scaled) {
        if (beta == T(0)) {
#pragma GCC unroll 32
            for (std::size_t j = 0; j < kNc; ++j)
#pragma GCC unroll 32
                for (std::size_t v = 0; v < kFull; ++v) V::store(c + v * kW + j * ldc, scaled(acc[v][j]));
        } else if (beta == T(1)) {
#pragma GCC unroll 32
            for (std::size_t j = 0; j < kNc; ++j)
#pragma GCC unroll 32
                for (std::size_t v = 0; v < kFull; ++v) {
                    T* p = c + v * kW + j * ldc;
                    V::store(p, V::add(scaled(acc[v][j]), V::load(p)));
                }
        } else {
            const Reg vb = V::broadcast(beta);
#pragma GCC unroll 32
            for (std::size_t j = 0; j < kNc; ++j)
#pragma GCC unroll 32
                for (std::size_t v = 0; v < kFull; ++v) {
                    T* p = c + v * kW + j * ldc;
                    V::store(p, V::fma(vb, V::load(p), scaled(acc[v][j])));
                }
        }
    };
    const Reg va = V::broadcast(alpha);
    if (alpha == T(1)) {
        store_full([](Reg r) { return r; });
    } else {
        store_full([va](Reg r) { return V::mul(va, r); });
    }
    if constexpr (kTail && requires(T* p, typename V::Mask m, Reg r) { V::store_tail(p, m, r); }) {
        // With beta == 0 nothing reads C back, so a masked store (AVX-512: cheap) cannot stall a later load.
        if (beta == T(0)) {
            if (alpha == T(1)) {
#pragma GCC unroll 32
                for (std::size_t j = 0; j < kNc; ++j) V::store_tail(c + (kMv - 1) * kW + j * ldc, mask, acc[kMv - 1][j]);
            } else {
#pragma GCC unroll 32
                for (std::size_t j = 0; j < kNc; ++j) {
                    V::store_tail(c + (kMv - 1) * kW + j * ldc, mask, V::mul(va, acc[kMv - 1][j]));
                }
            }
            return;
        }
    }
    if constexpr (kTail) {
        alignas(64) T lanes[kW];
#pragma GCC unroll 32
        for (std::size_t j = 0; j < kNc; ++j) {
            V::store(lanes, V::mul(va, acc[kMv - 1][j]));
            T* p = c + (kMv - 1) * kW + j * ldc;
            if (beta == T(0)) {
                for (std::size_t i = 0; i < rows_in_tail; ++i) p[i] = lanes[i];
            } else {
                for (std::size_t i = 0; i < rows_in_tail; ++i) p[i] = lanes[i] + beta * p[i];
            }
        }
    }
}

// ---- Packing. ----

// kMr-row slivers of op(A)[0:mc, 0:kc] (a[i * a_rs + p * a_cs]): dst[sliver][p][row], rows past mc zero.
template <class V, std::size_t kMr = V::kMv * V::kWidth>
void pack_a(std::size_t mc, std::size_t kc, const typename V::T* a, std::size_t a_rs, std::size_t a_cs,
            typename V::T* dst) noexcept {
    using T = typename V::T;
    for (std::size_t i = 0; i < mc; i += kMr, dst += kMr * kc) {
        const std::size_t mr = std::min(kMr, mc - i);
        const T* src = a + i * a_rs;
        if (a_rs == 1) {
            if (mr == kMr && kMr % V::kWidth == 0) {
                // Whole registers rather than a memcpy call per column (a sliver column is a few hundred bytes).
                for (std::size_t p = 0; p < kc; ++p) {
#pragma GCC unroll 8
                    for (std::size_t r = 0; r < kMr; r += V::kWidth) {
                        V::store(dst + p * kMr + r, V::load(src + p * a_cs + r));
                    }
                }
            } else {
                for (std::size_t p = 0; p < kc; ++p) {
                    std::memcpy(dst + p * kMr, src + p * a_cs, sizeof(T) * mr);
                    std::fill(dst + p * kMr + mr, dst + (p + 1) * kMr, T(0));
                }
            }
        } else {
            // Rows of op(A) are contiguous: read kMr streams in step, write the sliver in order.
            for (std::size_t p = 0; p < kc; ++p) {
                T* d = dst + p * kMr;
                for (std::size_t r = 0; r < mr; ++r) d[r] = src[r * a_rs + p];
                for (std::size_t r = mr; r < kMr; ++r) d[r] = T(0);
            }
        }
    }
}

// ---- Small problems: tiles straight on A, B and C (the fixed cost per call is what counts). ----

// The small path's largest tile: V::kSmallMv registers by V::kSmallNr columns where V names them (the best
// unpacked tile need not be the best packed micro-kernel), else the micro-kernel's shape.
template <class V>
constexpr std::size_t small_mv() noexcept {
    if constexpr (requires { V::kSmallMv; }) return V::kSmallMv;
    else return V::kMv;
}
template <class V>
constexpr std::size_t small_nr() noexcept {
    if constexpr (requires { V::kSmallNr; }) return V::kSmallNr;
    else return V::kNr;
}

template <class V>
struct SmallArgs {
    using T = typename V::T;
    std::size_t k;
    const T* a;
    const T* b;
    T* c;
    RuntimeStrides strides;
    std::size_t ldc;
    T alpha, beta;
    typename V::Mask mask;
    std::size_t rows_in_tail;
};

template <class V>
using SmallTileFn = void (*)(const SmallArgs<V>&) noexcept;

template <class V, std::size_t kMv, std::size_t kNc, bool kTail>
void small_tile(const SmallArgs<V>& x) noexcept {
    tile<V, kMv, kNc, kTail>(x.k, x.a, x.b, x.strides, x.alpha, x.beta, x.c, x.ldc, x.mask, x.rows_in_tail);
}

template <class V, bool kTail, std::size_t kMv, std::size_t... kJ>
constexpr std::array<SmallTileFn<V>, sizeof...(kJ)> small_tile_row(std::index_sequence<kJ...>) noexcept {
    return {&small_tile<V, kMv, kJ + 1, kTail>...};
}

template <class V, bool kTail, std::size_t... kI>
constexpr auto small_tile_rows(std::index_sequence<kI...>) noexcept {
    return std::array{small_tile_row<V, kTail, kI + 1>(std::make_index_sequence<small_nr<V>()>{})...};
}

// [tail][registers - 1][columns - 1]
template <class V>
inline constexpr std::array kSmallTiles = {small_tile_rows<V, false>(std::make_index_sequence<small_mv<V>()>{}),
                                           small_tile_rows<V, true>(std::make_index_sequence<small_mv<V>()>{})};

// op(A) (a[i * a_rs + p * a_cs]) times op(B) (b[p * b_rs + j * b_cs]) on C directly. Each kMr-row sliver of
// op(A) is used as it is, or, when `packed` is given (transposed A: its columns are not contiguous), first copied
// there (kMr * k elements).
template <class V>
[[gnu::always_inline]] inline void small_gemm(std::size_t m, std::size_t n, std::size_t k, typename V::T alpha,
                                              const typename V::T* a, std::size_t a_rs, std::size_t a_cs,
                                              const typename V::T* b, std::size_t b_rs, std::size_t b_cs,
                                              typename V::T beta, typename V::T* c, std::size_t ldc,
                                              typename V::T* packed) noexcept {
    constexpr std::size_t kW = V::kWidth, kMr = small_mv<V>() * V::kWidth, kNr = small_nr<V>();
    SmallArgs<V> x{k, nullptr, nullptr, nullptr, {packed != nullptr ? kMr : a_cs, b_rs, b_cs}, ldc, alpha, beta,
                   V::tail_mask(kW), kW};
    // Row blocks outside: the A sliver (kMr x k) stays in L1 across the column tiles.
    for (std::size_t i = 0; i < m; i += kMr) {
        const std::size_t mr = std::min(kMr, m - i);
        const std::size_t rem = mr % kW;
        if (rem != 0) {
            x.mask = V::tail_mask(rem);
            x.rows_in_tail = rem;
        }
        const auto& row = kSmallTiles<V>[rem != 0][(mr + kW - 1) / kW - 1];
        if (packed != nullptr) {
            pack_a<V, kMr>(mr, k, a + i * a_rs, a_rs, a_cs, packed);
            x.a = packed;
        } else {
            x.a = a + i;
        }
        for (std::size_t j = 0; j < n; j += kNr) {
            x.b = b + j * b_cs;
            x.c = c + i + j * ldc;
            row[std::min(kNr, n - j) - 1](x);
        }
    }
}

// ---- Large problems: packed blocks of A and B. ----

// kNr-column slivers of op(B)[0:kc, 0:nc] (b[p * b_rs + j * b_cs]): dst[sliver][p][column], columns past nc zero.
template <class V>
void pack_b(std::size_t kc, std::size_t nc, const typename V::T* b, std::size_t b_rs, std::size_t b_cs,
            typename V::T* dst) noexcept {
    using T = typename V::T;
    constexpr std::size_t kNr = V::kNr;
    for (std::size_t j = 0; j < nc; j += kNr, dst += kNr * kc) {
        const std::size_t nr = std::min(kNr, nc - j);
        const T* src = b + j * b_cs;
        if (b_cs == 1 && nr == kNr) {
            for (std::size_t p = 0; p < kc; ++p) std::memcpy(dst + p * kNr, src + p * b_rs, sizeof(T) * kNr);
        } else if (nr == kNr) {
            for (std::size_t p = 0; p < kc; ++p) {
                T* d = dst + p * kNr;
#pragma GCC unroll 16
                for (std::size_t c = 0; c < kNr; ++c) d[c] = src[p * b_rs + c * b_cs];
            }
        } else {
            for (std::size_t p = 0; p < kc; ++p) {
                T* d = dst + p * kNr;
                for (std::size_t c = 0; c < nr; ++c) d[c] = src[p * b_rs + c * b_cs];
                for (std::size_t c = nr; c < kNr; ++c) d[c] = T(0);
            }
        }
    }
}

template <class V>
[[gnu::always_inline]] inline void micro_kernel(std::size_t kc, const typename V::T* a, const typename V::T* b,
                                                typename V::T alpha, typename V::T beta, typename V::T* c,
                                                std::size_t ldc) noexcept {
    constexpr std::size_t kMr = V::kMv * V::kWidth, kNr = V::kNr;
    // C's tile is read once at the end: ask for it now so the load does not stall after the k loop.
    for (std::size_t j = 0; j < kNr; ++j) {
        __builtin_prefetch(c + j * ldc, 1, 3);
        __builtin_prefetch(c + j * ldc + kMr - 1, 1, 3);
    }
    tile<V, V::kMv, kNr, false>(kc, a, b, PackedStrides<kMr, kNr>{}, alpha, beta, c, ldc, V::tail_mask(V::kWidth), V::kWidth);
}

// C[0:mc, 0:nc] = alpha * packed A * packed B + beta * C.
template <class V>
void macro_kernel(std::size_t mc, std::size_t nc, std::size_t kc, typename V::T alpha, const typename V::T* pa,
                  const typename V::T* pb, typename V::T beta, typename V::T* c, std::size_t ldc) noexcept {
    using T = typename V::T;
    constexpr std::size_t kMr = V::kMv * V::kWidth, kNr = V::kNr;
    for (std::size_t jr = 0; jr < nc; jr += kNr) {
        const std::size_t nr = std::min(kNr, nc - jr);
        const T* bp = pb + jr * kc;
        for (std::size_t ir = 0; ir < mc; ir += kMr) {
            const std::size_t mr = std::min(kMr, mc - ir);
            const T* ap = pa + ir * kc;
            T* cc = c + ir + jr * ldc;
            if (mr == kMr && nr == kNr) [[likely]] {
                micro_kernel<V>(kc, ap, bp, alpha, beta, cc, ldc);
            } else {
                // Edge: the full tile into a scratch tile (the padding is zeros), then only the valid part to C.
                alignas(64) T scratch[kMr * kNr];
                micro_kernel<V>(kc, ap, bp, alpha, T(0), scratch, kMr);
                for (std::size_t j = 0; j < nr; ++j) {
                    T* cj = cc + j * ldc;
                    const T* sj = scratch + j * kMr;
                    if (beta == T(0)) {
                        for (std::size_t i = 0; i < mr; ++i) cj[i] = sj[i];
                    } else {
                        for (std::size_t i = 0; i < mr; ++i) cj[i] = sj[i] + beta * cj[i];
                    }
                }
            }
        }
    }
}

// Splits `total` into equal blocks of at most `block`, each a multiple of `unit` except the last.
template <class V>
std::size_t balanced_block(std::size_t total, std::size_t block, std::size_t unit) noexcept {
    const std::size_t blocks = (total + block - 1) / block;
    const std::size_t size = (total + blocks - 1) / blocks;
    return std::min(block, (size + unit - 1) / unit * unit);
}

template <class V>
void packed_gemm(std::size_t m, std::size_t n, std::size_t k, typename V::T alpha, const typename V::T* a,
                 std::size_t a_rs, std::size_t a_cs, const typename V::T* b, std::size_t b_rs, std::size_t b_cs,
                 typename V::T beta, typename V::T* c, std::size_t ldc, GemmWorkspace& workspace) noexcept {
    using T = typename V::T;
    constexpr std::size_t kMr = V::kMv * V::kWidth, kNr = V::kNr;
    static_assert(V::kMc % kMr == 0 && V::kNc % kNr == 0);
    static_assert(V::kMc * V::kKc * sizeof(T) <= GemmWorkspace::kPackABytes);
    static_assert(V::kKc * V::kNc * sizeof(T) <= GemmWorkspace::kPackBBytes);
    T* pa = reinterpret_cast<T*>(workspace.pack_a());
    T* pb = reinterpret_cast<T*>(workspace.pack_b());
    const std::size_t kc_max = balanced_block<V>(k, V::kKc, 8);
    for (std::size_t jc = 0; jc < n; jc += V::kNc) {
        const std::size_t nc = std::min(V::kNc, n - jc);
        for (std::size_t pc = 0; pc < k; pc += kc_max) {
            const std::size_t kc = std::min(kc_max, k - pc);
            pack_b<V>(kc, nc, b + pc * b_rs + jc * b_cs, b_rs, b_cs, pb);
            const T beta_block = pc == 0 ? beta : T(1);   // later k blocks accumulate onto the first
            for (std::size_t ic = 0; ic < m; ic += V::kMc) {
                const std::size_t mc = std::min(V::kMc, m - ic);
                pack_a<V>(mc, kc, a + ic * a_rs + pc * a_cs, a_rs, a_cs, pa);
                macro_kernel<V>(mc, nc, kc, alpha, pa, pb, beta_block, c + ic + jc * ldc, ldc);
            }
        }
    }
}

// C = beta * C (beta == 0: C = 0 without reading it).
template <class V>
void scale_c(std::size_t m, std::size_t n, typename V::T beta, typename V::T* c, std::size_t ldc) noexcept {
    using T = typename V::T;
    if (beta == T(1)) return;
    for (std::size_t j = 0; j < n; ++j) {
        T* cj = c + j * ldc;
        if (beta == T(0)) {
            std::fill(cj, cj + m, T(0));
        } else {
            for (std::size_t i = 0; i < m; ++i) cj[i] *= beta;
        }
    }
}

// Whether the unpacked path is the faster one for this shape.
template <class V>
constexpr bool use_small_path(std::size_t m, std::size_t n, std::size_t k) noexcept {
    // Also when op(A) is at most one small tile tall and stays in L2 (each column tile reads all of it): a packed
    // sliver would be mostly zero padding.
    constexpr std::size_t kMr = small_mv<V>() * V::kWidth;
    return std::uint64_t{m} * n * k <= V::kSmallVolume ||
           (m <= kMr && std::uint64_t{k} * kMr * sizeof(typename V::T) <= (std::uint64_t{256} << 10));
}

// The column-major problem past the one-tile case: the unpacked small path or the packed blocks. Kept out of
// gemm() so that the tiny calls do not pay for this part's stack frame.
template <class V>
[[gnu::noinline]] int gemm_blocks(std::size_t m, std::size_t n, std::size_t k, typename V::T alpha,
                                  const typename V::T* a, std::size_t a_rs, std::size_t a_cs, const typename V::T* b,
                                  std::size_t b_rs, std::size_t b_cs, typename V::T beta, typename V::T* c,
                                  std::size_t ldc, GemmWorkspace* workspace) noexcept {
    using T = typename V::T;
    constexpr std::size_t kMr = small_mv<V>() * V::kWidth;
    const bool small = use_small_path<V>(m, n, k);
    // The tiles read op(A)'s columns in place when they are contiguous. Copying them even then (tried for lda a
    // multiple of 256 bytes, against L1 set conflicts) measured 2-13% slower at 64^3 .. 96^3.
    if (small && a_rs == 1) {
        small_gemm<V>(m, n, k, alpha, a, a_rs, a_cs, b, b_rs, b_cs, beta, c, ldc, nullptr);
        return 0;
    }
    if (workspace == nullptr) workspace = GemmWorkspace::this_thread();
    if (workspace == nullptr) [[unlikely]] return -ENOMEM;
    if (small && kMr * k * sizeof(T) <= GemmWorkspace::kPackABytes) {   // transposed A: copy each sliver first
        small_gemm<V>(m, n, k, alpha, a, a_rs, a_cs, b, b_rs, b_cs, beta, c, ldc,
                      reinterpret_cast<T*>(workspace->pack_a()));
        return 0;
    }
    packed_gemm<V>(m, n, k, alpha, a, a_rs, a_cs, b, b_rs, b_cs, beta, c, ldc, *workspace);
    return 0;
}

// KernelSet::gemm.
template <class V>
int gemm(Layout layout, Transpose trans_a, Transpose trans_b, std::size_t m, std::size_t n, std::size_t k,
         typename V::T alpha, const typename V::T* a, std::size_t lda, const typename V::T* b, std::size_t ldb,
         typename V::T beta, typename V::T* c, std::size_t ldc, GemmWorkspace* workspace) noexcept {
    using T = typename V::T;
    if (layout == Layout::row_major) {
        std::swap(m, n);
        std::swap(a, b);
        std::swap(lda, ldb);
        std::swap(trans_a, trans_b);
    }
    if (m == 0 || n == 0) return 0;
    if (k == 0 || alpha == T(0)) {
        scale_c<V>(m, n, beta, c, ldc);
        return 0;
    }
    const bool ta = trans_a == Transpose::transpose, tb = trans_b == Transpose::transpose;
    const std::size_t a_rs = ta ? lda : 1, a_cs = ta ? 1 : lda;
    const std::size_t b_rs = tb ? ldb : 1, b_cs = tb ? 1 : ldb;
    if (m <= V::kWidth && n <= small_nr<V>() && !ta) {
        // At most one register of rows by one tile of columns: straight to that tile (tiny calls are all fixed
        // cost).
        const SmallArgs<V> x{k, a, b, c, {a_cs, b_rs, b_cs}, ldc, alpha, beta, V::tail_mask(m), m};
        kSmallTiles<V>[m != V::kWidth][0][n - 1](x);
        return 0;
    }
    return gemm_blocks<V>(m, n, k, alpha, a, a_rs, a_cs, b, b_rs, b_cs, beta, c, ldc, workspace);
}

template <class VF32, class VF64>
void install(KernelTable& table) noexcept {
    table.f32.gemm = &gemm<VF32>;
    table.f64.gemm = &gemm<VF64>;
}

}  // namespace cf::compute::gemm_detail
