// Morton codes: hand-computed vectors, masking of out-of-range bits, every implementation on this machine against a
// bit-by-bit reference (random inputs with a fixed seed, edge values, odd lengths, n = 0), round trips, the choice
// rule (vendor and family), forcing, and the Morton-ordered tiled layout (round trips, packing, bad arguments).
#include <doctest/doctest.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstring>
#include <limits>
#include <numeric>
#include <random>
#include <string>
#include <vector>

#include "engine/compute/morton.hpp"
#include "platform/cpu/cpu_info.hpp"
#include "platform/os/last_error.hpp"

using namespace cf::compute;

namespace {

// ---- slow references: one bit at a time ----

template <typename Code>
Code ref_encode(const std::uint32_t* coords, unsigned dims, unsigned bits) {
    Code code = 0;
    for (unsigned bit = 0; bit < bits; ++bit) {
        for (unsigned axis = 0; axis < dims; ++axis) {
            code |= static_cast<Code>((coords[axis] >> bit) & 1u) << (bit * dims + axis);
        }
    }
    return code;
}
template <typename Code>
void ref_decode(Code code, std::uint32_t* coords, unsigned dims, unsigned bits) {
    for (unsigned axis = 0; axis < dims; ++axis) coords[axis] = 0;
    for (unsigned bit = 0; bit < bits; ++bit) {
        for (unsigned axis = 0; axis < dims; ++axis) {
            coords[axis] |= static_cast<std::uint32_t>((code >> (bit * dims + axis)) & 1u) << bit;
        }
    }
}

std::uint32_t ref_2d32(std::uint32_t x, std::uint32_t y) {
    const std::uint32_t c[2] = {x, y};
    return ref_encode<std::uint32_t>(c, 2, 16);
}
std::uint64_t ref_2d64(std::uint32_t x, std::uint32_t y) {
    const std::uint32_t c[2] = {x, y};
    return ref_encode<std::uint64_t>(c, 2, 32);
}
std::uint32_t ref_3d32(std::uint32_t x, std::uint32_t y, std::uint32_t z) {
    const std::uint32_t c[3] = {x, y, z};
    return ref_encode<std::uint32_t>(c, 3, 10);
}
std::uint64_t ref_3d64(std::uint32_t x, std::uint32_t y, std::uint32_t z) {
    const std::uint32_t c[3] = {x, y, z};
    return ref_encode<std::uint64_t>(c, 3, 21);
}

std::vector<MortonImpl> available_impls() {
    std::vector<MortonImpl> impls;
    for (MortonImpl impl : {MortonImpl::portable, MortonImpl::bmi2, MortonImpl::neon}) {
        if (morton_impl_supported(impl)) impls.push_back(impl);
    }
    return impls;
}

// Inputs that exercise the edges: 0, max, all ones, every single bit, bits just past the width, random words.
std::vector<std::uint32_t> coordinate_values(std::mt19937_64& rng, std::size_t random_count) {
    std::vector<std::uint32_t> v = {0u, 1u, 0x3FFu, 0x400u, 0xFFFFu, 0x10000u, 0x1FFFFFu, 0x200000u,
                                    0x7FFFFFFFu, 0x80000000u, 0xFFFFFFFFu, 0x55555555u, 0xAAAAAAAAu};
    for (unsigned bit = 0; bit < 32; ++bit) v.push_back(1u << bit);
    for (std::size_t i = 0; i < random_count; ++i) v.push_back(static_cast<std::uint32_t>(rng()));
    return v;
}

// x, y, z arrays of length n with mixed edge and random values.
struct Coords {
    std::vector<std::uint32_t> x, y, z;
};
Coords make_coords(std::mt19937_64& rng, std::size_t n) {
    const std::vector<std::uint32_t> pool = coordinate_values(rng, 64);
    Coords c;
    for (std::size_t i = 0; i < n; ++i) {
        // Half edge values, half random words, so every lane position sees both.
        const auto pick = [&]() -> std::uint32_t {
            return (rng() & 1) != 0 ? pool[rng() % pool.size()] : static_cast<std::uint32_t>(rng());
        };
        c.x.push_back(pick());
        c.y.push_back(pick());
        c.z.push_back(pick());
    }
    return c;
}

// Restores the start-up choice when a test that forces an implementation ends.
struct RestoreImpl {
    ~RestoreImpl() { CHECK(force_morton_impl(default_morton_impl()) == 0); }
};

}  // namespace

TEST_CASE("hand-computed codes") {
    // 2D: x takes the even bits, y the odd ones.
    static_assert(morton_encode_2d32(0, 0) == 0);
    static_assert(morton_encode_2d32(1, 0) == 1);
    static_assert(morton_encode_2d32(0, 1) == 2);
    static_assert(morton_encode_2d32(1, 1) == 3);
    static_assert(morton_encode_2d32(2, 0) == 4);
    // x = 011, y = 101 -> bits x0 (0), y0 (1), x1 (2), y2 (5): 1 + 2 + 4 + 32.
    static_assert(morton_encode_2d32(3, 5) == 39);
    static_assert(morton_encode_2d32(0xFFFF, 0) == 0x55555555u);
    static_assert(morton_encode_2d32(0, 0xFFFF) == 0xAAAAAAAAu);
    static_assert(morton_encode_2d32(0xFFFF, 0xFFFF) == 0xFFFFFFFFu);
    static_assert(morton_decode_2d32(39) == MortonPoint2{3, 5});
    static_assert(morton_encode_2d64(3, 5) == 39);
    static_assert(morton_encode_2d64(0xFFFFFFFFu, 0) == 0x5555555555555555ull);
    static_assert(morton_encode_2d64(0x80000000u, 0) == 1ull << 62);
    static_assert(morton_encode_2d64(0, 0x80000000u) == 1ull << 63);
    static_assert(morton_decode_2d64(0xFFFFFFFFFFFFFFFFull) == MortonPoint2{0xFFFFFFFFu, 0xFFFFFFFFu});
    // 3D: x bit 0, y bit 1, z bit 2. x = 101, y = 011, z = 110 -> bits 0, 1, 4, 5, 6, 8: 371.
    static_assert(morton_encode_3d32(1, 0, 0) == 1);
    static_assert(morton_encode_3d32(0, 1, 0) == 2);
    static_assert(morton_encode_3d32(0, 0, 1) == 4);
    static_assert(morton_encode_3d32(5, 3, 6) == 371);
    static_assert(morton_encode_3d32(0x3FF, 0, 0) == 0x09249249u);
    static_assert(morton_encode_3d32(0x3FF, 0x3FF, 0x3FF) == 0x3FFFFFFFu);
    static_assert(morton_decode_3d32(371) == MortonPoint3{5, 3, 6});
    static_assert(morton_encode_3d64(5, 3, 6) == 371);
    static_assert(morton_encode_3d64(0x1FFFFF, 0, 0) == 0x1249249249249249ull);
    static_assert(morton_encode_3d64(0x1FFFFF, 0x1FFFFF, 0x1FFFFF) == kMorton3d64CodeMask);
    static_assert(morton_encode_3d64(0, 0, 1u << 20) == 1ull << 62);
    static_assert(morton_decode_3d64(kMorton3d64CodeMask) == MortonPoint3{0x1FFFFF, 0x1FFFFF, 0x1FFFFF});
    // The references agree with the hand values.
    CHECK(ref_2d32(3, 5) == 39);
    CHECK(ref_3d32(5, 3, 6) == 371);
    CHECK(ref_3d64(0, 0, 1u << 20) == 1ull << 62);
}

TEST_CASE("coordinate bits above the width are masked off, code bits above the coordinates ignored") {
    CHECK(morton_encode_2d32(0x12345u, 0xABCDEu) == morton_encode_2d32(0x2345u, 0xBCDEu));
    CHECK(morton_encode_2d32(0xFFFF0000u, 0xFFFF0000u) == 0);
    CHECK(morton_encode_3d32(0xFFFFFC00u, 0xFFFFFC00u, 0xFFFFFC00u) == 0);
    CHECK(morton_encode_3d32(0x401u, 0x802u, 0xC03u) == morton_encode_3d32(1, 2, 3));
    CHECK(morton_encode_3d64(0xFFE00000u, 0xFFE00000u, 0xFFE00000u) == 0);
    CHECK(morton_encode_3d64(0x00200001u, 0x80000002u, 0x7FE00003u) == morton_encode_3d64(1, 2, 3));
    CHECK(morton_decode_3d32(0xC0000000u) == MortonPoint3{});
    CHECK(morton_decode_3d32(0xFFFFFFFFu) == MortonPoint3{0x3FF, 0x3FF, 0x3FF});
    CHECK(morton_decode_3d64(1ull << 63) == MortonPoint3{});
    CHECK(morton_decode_3d64(~0ull) == MortonPoint3{0x1FFFFF, 0x1FFFFF, 0x1FFFFF});
}

TEST_CASE("inline functions against the bit-by-bit reference: edge values and random words") {
    std::mt19937_64 rng(0x5EED0001);
    const std::vector<std::uint32_t> values = coordinate_values(rng, 200);
    for (std::uint32_t a : values) {
        for (std::uint32_t b : values) {
            const std::uint32_t c = a ^ (b >> 3);
            REQUIRE(morton_encode_2d32(a, b) == ref_2d32(a, b));
            REQUIRE(morton_encode_2d64(a, b) == ref_2d64(a, b));
            REQUIRE(morton_encode_3d32(a, b, c) == ref_3d32(a, b, c));
            REQUIRE(morton_encode_3d64(a, b, c) == ref_3d64(a, b, c));
            // Round trips: decode(encode(p)) == p masked to the width.
            REQUIRE(morton_decode_2d32(morton_encode_2d32(a, b)) == MortonPoint2{a & 0xFFFFu, b & 0xFFFFu});
            REQUIRE(morton_decode_2d64(morton_encode_2d64(a, b)) == MortonPoint2{a, b});
            REQUIRE(morton_decode_3d32(morton_encode_3d32(a, b, c)) == MortonPoint3{a & 0x3FFu, b & 0x3FFu, c & 0x3FFu});
            REQUIRE(morton_decode_3d64(morton_encode_3d64(a, b, c)) ==
                    MortonPoint3{a & 0x1FFFFFu, b & 0x1FFFFFu, c & 0x1FFFFFu});
        }
    }
    // Codes decode like the reference, and encode back to themselves (masked to the used bits).
    for (int i = 0; i < 20000; ++i) {
        const std::uint64_t code = rng();
        std::uint32_t r[3];
        ref_decode<std::uint32_t>(static_cast<std::uint32_t>(code), r, 2, 16);
        REQUIRE(morton_decode_2d32(static_cast<std::uint32_t>(code)) == MortonPoint2{r[0], r[1]});
        ref_decode<std::uint64_t>(code, r, 2, 32);
        REQUIRE(morton_decode_2d64(code) == MortonPoint2{r[0], r[1]});
        ref_decode<std::uint32_t>(static_cast<std::uint32_t>(code), r, 3, 10);
        REQUIRE(morton_decode_3d32(static_cast<std::uint32_t>(code)) == MortonPoint3{r[0], r[1], r[2]});
        ref_decode<std::uint64_t>(code, r, 3, 21);
        REQUIRE(morton_decode_3d64(code) == MortonPoint3{r[0], r[1], r[2]});
        const MortonPoint3 p = morton_decode_3d64(code);
        REQUIRE(morton_encode_3d64(p.x, p.y, p.z) == (code & kMorton3d64CodeMask));
        const MortonPoint3 q = morton_decode_3d32(static_cast<std::uint32_t>(code));
        REQUIRE(morton_encode_3d32(q.x, q.y, q.z) == (static_cast<std::uint32_t>(code) & kMorton3d32CodeMask));
    }
}

TEST_CASE("every implementation on this machine against the reference, lengths 0 to 67 and 1001") {
    const std::vector<MortonImpl> impls = available_impls();
    REQUIRE(!impls.empty());
    CHECK(impls.front() == MortonImpl::portable);
#if defined(__aarch64__)
    CHECK(morton_impl_supported(MortonImpl::neon) == cf::platform::cpu_info().neon);
    CHECK_FALSE(morton_impl_supported(MortonImpl::bmi2));
#else
    CHECK(morton_impl_supported(MortonImpl::bmi2) == cf::platform::cpu_info().bmi2);
    CHECK_FALSE(morton_impl_supported(MortonImpl::neon));
#endif
    std::vector<std::size_t> lengths(68);
    std::iota(lengths.begin(), lengths.end(), std::size_t{0});
    lengths.push_back(1001);
    for (MortonImpl impl : impls) {
        CAPTURE(morton_impl_name(impl));
        const MortonKernels* k = morton_kernels(impl);
        REQUIRE(k != nullptr);
        CHECK(k->impl == impl);
        // n = 0 reads and writes nothing, null pointers included.
        k->encode_2d32(nullptr, nullptr, nullptr, 0);
        k->decode_2d32(nullptr, nullptr, nullptr, 0);
        k->encode_2d64(nullptr, nullptr, nullptr, 0);
        k->decode_2d64(nullptr, nullptr, nullptr, 0);
        k->encode_3d32(nullptr, nullptr, nullptr, nullptr, 0);
        k->decode_3d32(nullptr, nullptr, nullptr, nullptr, 0);
        k->encode_3d64(nullptr, nullptr, nullptr, nullptr, 0);
        k->decode_3d64(nullptr, nullptr, nullptr, nullptr, 0);

        std::mt19937_64 rng(0x5EED0002);
        for (std::size_t n : lengths) {
            CAPTURE(n);
            const Coords c = make_coords(rng, n);
            // One slot past the end, to catch a vector loop that writes too far.
            constexpr std::uint32_t kGuard32 = 0xDEADBEEFu;
            constexpr std::uint64_t kGuard64 = 0xDEADBEEFCAFEF00Dull;
            std::vector<std::uint32_t> c32(n + 1, kGuard32);
            std::vector<std::uint64_t> c64(n + 1, kGuard64);
            std::vector<std::uint32_t> dx(n + 1, kGuard32), dy(n + 1, kGuard32), dz(n + 1, kGuard32);

            k->encode_2d32(c.x.data(), c.y.data(), c32.data(), n);
            k->decode_2d32(c32.data(), dx.data(), dy.data(), n);
            for (std::size_t i = 0; i < n; ++i) {
                REQUIRE(c32[i] == ref_2d32(c.x[i], c.y[i]));
                REQUIRE(dx[i] == (c.x[i] & 0xFFFFu));
                REQUIRE(dy[i] == (c.y[i] & 0xFFFFu));
            }
            CHECK(c32[n] == kGuard32);
            CHECK(dx[n] == kGuard32);
            CHECK(dy[n] == kGuard32);

            k->encode_2d64(c.x.data(), c.y.data(), c64.data(), n);
            k->decode_2d64(c64.data(), dx.data(), dy.data(), n);
            for (std::size_t i = 0; i < n; ++i) {
                REQUIRE(c64[i] == ref_2d64(c.x[i], c.y[i]));
                REQUIRE(dx[i] == c.x[i]);
                REQUIRE(dy[i] == c.y[i]);
            }
            CHECK(c64[n] == kGuard64);

            k->encode_3d32(c.x.data(), c.y.data(), c.z.data(), c32.data(), n);
            k->decode_3d32(c32.data(), dx.data(), dy.data(), dz.data(), n);
            for (std::size_t i = 0; i < n; ++i) {
                REQUIRE(c32[i] == ref_3d32(c.x[i], c.y[i], c.z[i]));
                REQUIRE(dx[i] == (c.x[i] & 0x3FFu));
                REQUIRE(dy[i] == (c.y[i] & 0x3FFu));
                REQUIRE(dz[i] == (c.z[i] & 0x3FFu));
            }
            CHECK(c32[n] == kGuard32);
            CHECK(dz[n] == kGuard32);

            k->encode_3d64(c.x.data(), c.y.data(), c.z.data(), c64.data(), n);
            k->decode_3d64(c64.data(), dx.data(), dy.data(), dz.data(), n);
            for (std::size_t i = 0; i < n; ++i) {
                REQUIRE(c64[i] == ref_3d64(c.x[i], c.y[i], c.z[i]));
                REQUIRE(dx[i] == (c.x[i] & 0x1FFFFFu));
                REQUIRE(dy[i] == (c.y[i] & 0x1FFFFFu));
                REQUIRE(dz[i] == (c.z[i] & 0x1FFFFFu));
            }
            CHECK(c64[n] == kGuard64);

            // Decoding arbitrary codes (high unused bits set too) matches the reference.
            std::vector<std::uint32_t> r32(n);
            std::vector<std::uint64_t> r64(n);
            for (std::size_t i = 0; i < n; ++i) {
                r64[i] = rng();
                r32[i] = static_cast<std::uint32_t>(r64[i]);
            }
            std::uint32_t r[3];
            k->decode_2d32(r32.data(), dx.data(), dy.data(), n);
            for (std::size_t i = 0; i < n; ++i) {
                ref_decode<std::uint32_t>(r32[i], r, 2, 16);
                REQUIRE((dx[i] == r[0] && dy[i] == r[1]));
            }
            k->decode_2d64(r64.data(), dx.data(), dy.data(), n);
            for (std::size_t i = 0; i < n; ++i) {
                ref_decode<std::uint64_t>(r64[i], r, 2, 32);
                REQUIRE((dx[i] == r[0] && dy[i] == r[1]));
            }
            k->decode_3d32(r32.data(), dx.data(), dy.data(), dz.data(), n);
            for (std::size_t i = 0; i < n; ++i) {
                ref_decode<std::uint32_t>(r32[i], r, 3, 10);
                REQUIRE((dx[i] == r[0] && dy[i] == r[1] && dz[i] == r[2]));
            }
            k->decode_3d64(r64.data(), dx.data(), dy.data(), dz.data(), n);
            for (std::size_t i = 0; i < n; ++i) {
                ref_decode<std::uint64_t>(r64[i], r, 3, 21);
                REQUIRE((dx[i] == r[0] && dy[i] == r[1] && dz[i] == r[2]));
            }
        }
    }
}

TEST_CASE("batch functions follow the forced implementation") {
    RestoreImpl restore;
    std::mt19937_64 rng(0x5EED0003);
    const Coords c = make_coords(rng, 37);
    const std::size_t n = c.x.size();
    for (MortonImpl impl : available_impls()) {
        CAPTURE(morton_impl_name(impl));
        REQUIRE(force_morton_impl(impl) == 0);
        CHECK(active_morton_impl() == impl);
        CHECK(&active_morton_kernels() == morton_kernels(impl));
        std::vector<std::uint32_t> c32(n), dx(n), dy(n), dz(n);
        std::vector<std::uint64_t> c64(n);
        morton_encode_2d32_batch(nullptr, nullptr, nullptr, 0);
        morton_decode_3d64_batch(nullptr, nullptr, nullptr, nullptr, 0);

        morton_encode_2d32_batch(c.x.data(), c.y.data(), c32.data(), n);
        morton_decode_2d32_batch(c32.data(), dx.data(), dy.data(), n);
        for (std::size_t i = 0; i < n; ++i) {
            REQUIRE(c32[i] == morton_encode_2d32(c.x[i], c.y[i]));
            REQUIRE(MortonPoint2{dx[i], dy[i]} == morton_decode_2d32(c32[i]));
        }
        morton_encode_2d64_batch(c.x.data(), c.y.data(), c64.data(), n);
        morton_decode_2d64_batch(c64.data(), dx.data(), dy.data(), n);
        for (std::size_t i = 0; i < n; ++i) {
            REQUIRE(c64[i] == morton_encode_2d64(c.x[i], c.y[i]));
            REQUIRE(MortonPoint2{dx[i], dy[i]} == MortonPoint2{c.x[i], c.y[i]});
        }
        morton_encode_3d32_batch(c.x.data(), c.y.data(), c.z.data(), c32.data(), n);
        morton_decode_3d32_batch(c32.data(), dx.data(), dy.data(), dz.data(), n);
        for (std::size_t i = 0; i < n; ++i) {
            REQUIRE(c32[i] == morton_encode_3d32(c.x[i], c.y[i], c.z[i]));
            REQUIRE(MortonPoint3{dx[i], dy[i], dz[i]} == morton_decode_3d32(c32[i]));
        }
        morton_encode_3d64_batch(c.x.data(), c.y.data(), c.z.data(), c64.data(), n);
        morton_decode_3d64_batch(c64.data(), dx.data(), dy.data(), dz.data(), n);
        for (std::size_t i = 0; i < n; ++i) {
            REQUIRE(c64[i] == morton_encode_3d64(c.x[i], c.y[i], c.z[i]));
            REQUIRE(MortonPoint3{dx[i], dy[i], dz[i]} == morton_decode_3d64(c64[i]));
        }
    }
}

TEST_CASE("implementation names, parsing and forcing an unavailable one") {
    MortonImpl parsed{};
    for (MortonImpl impl : {MortonImpl::portable, MortonImpl::bmi2, MortonImpl::neon}) {
        REQUIRE(parse_morton_impl(morton_impl_name(impl), parsed) == 0);
        CHECK(parsed == impl);
    }
    CHECK(std::strcmp(morton_impl_name(MortonImpl::bmi2), "bmi2") == 0);
    CHECK(parse_morton_impl("avx2", parsed) == -EINVAL);
    CHECK(parse_morton_impl(nullptr, parsed) == -EINVAL);
    CHECK(std::strlen(cf::platform::last_error_message()) > 0);

    RestoreImpl restore;
#if defined(__aarch64__)
    const MortonImpl missing = MortonImpl::bmi2;
#else
    const MortonImpl missing = MortonImpl::neon;
#endif
    const MortonImpl before = active_morton_impl();
    CHECK(morton_kernels(missing) == nullptr);
    CHECK(force_morton_impl(missing) == -ENOTSUP);
    CHECK(std::strstr(cf::platform::last_error_message(), morton_impl_name(missing)) != nullptr);
    CHECK(active_morton_impl() == before);
    CHECK(morton_impl_supported(default_morton_impl()));
    MESSAGE("morton default implementation here: " << std::string(morton_impl_name(default_morton_impl())));
}

TEST_CASE("the choice checks vendor and family, not only the BMI2 bit") {
    cf::platform::CpuInfo cpu;
#if defined(__x86_64__)
    cpu.bmi2 = true;
    cpu.vendor = "AuthenticAMD";
    cpu.family = 0x17;  // Zen 1/2: microcoded PDEP/PEXT
    CHECK(choose_morton_impl(cpu) == MortonImpl::portable);
    cpu.family = 0x15;  // Excavator
    CHECK(choose_morton_impl(cpu) == MortonImpl::portable);
    cpu.family = 0x19;  // Zen 3/4
    CHECK(choose_morton_impl(cpu) == MortonImpl::bmi2);
    cpu.family = 0x1A;  // Zen 5
    CHECK(choose_morton_impl(cpu) == MortonImpl::bmi2);
    cpu.vendor = "HygonGenuine";  // Zen 1 derivative
    cpu.family = 0x18;
    CHECK(choose_morton_impl(cpu) == MortonImpl::portable);
    cpu.vendor = "GenuineIntel";
    cpu.family = 6;
    CHECK(choose_morton_impl(cpu) == MortonImpl::bmi2);
    cpu.bmi2 = false;
    CHECK(choose_morton_impl(cpu) == MortonImpl::portable);
#else
    cpu.neon = true;
    CHECK(choose_morton_impl(cpu) == MortonImpl::neon);
    cpu.neon = false;
    CHECK(choose_morton_impl(cpu) == MortonImpl::portable);
#endif
    CHECK(default_morton_impl() == choose_morton_impl(cf::platform::cpu_info()));
}

// ---- tiled layout ----

namespace {

// Morton code of tile (row, col) in the full 2^levels square: the order ranks must follow.
std::uint64_t tile_code(std::size_t row, std::size_t col) {
    return morton_encode_2d64(static_cast<std::uint32_t>(col), static_cast<std::uint32_t>(row));
}

void check_layout_round_trip(std::size_t rows, std::size_t cols, std::size_t tile, std::size_t ld_extra) {
    CAPTURE(rows);
    CAPTURE(cols);
    CAPTURE(tile);
    MortonLayout layout;
    REQUIRE(morton_layout_init(layout, rows, cols, tile) == 0);
    const std::size_t tile_rows = (rows + tile - 1) / tile;
    const std::size_t tile_cols = (cols + tile - 1) / tile;
    CHECK(layout.tile_rows == tile_rows);
    CHECK(layout.tile_cols == tile_cols);
    CHECK(layout.size == tile_rows * tile_cols * tile * tile);

    // Ranks: a bijection onto [0, tiles) that keeps Z-order.
    std::vector<std::pair<std::uint64_t, std::size_t>> by_code;
    std::vector<std::size_t> ranks;
    for (std::size_t tr = 0; tr < tile_rows; ++tr) {
        for (std::size_t tc = 0; tc < tile_cols; ++tc) {
            by_code.emplace_back(tile_code(tr, tc), morton_tile_rank(layout, tr, tc));
        }
    }
    std::sort(by_code.begin(), by_code.end());
    for (std::size_t i = 0; i < by_code.size(); ++i) REQUIRE(by_code[i].second == i);
    if (layout.full_square) {
        for (const auto& [code, rank] : by_code) CHECK(code == rank);
    }

    const std::size_t ld = cols + ld_extra;
    std::vector<double> src(rows * ld, -1.0);
    for (std::size_t i = 0; i < rows; ++i) {
        for (std::size_t j = 0; j < cols; ++j) src[i * ld + j] = 1.0 + static_cast<double>(i * cols + j);
    }
    std::vector<double> tiled(layout.size + 1, -7.0);  // one guard element
    REQUIRE(to_morton_tiled(layout, src.data(), ld, tiled.data()) == 0);
    CHECK(tiled[layout.size] == -7.0);
    std::vector<char> hit(layout.size, 0);
    for (std::size_t i = 0; i < rows; ++i) {
        for (std::size_t j = 0; j < cols; ++j) {
            const std::size_t index = morton_tiled_index(layout, i, j);
            REQUIRE(index < layout.size);
            REQUIRE(tiled[index] == src[i * ld + j]);
            // Row-major inside the tile.
            REQUIRE(index % (tile * tile) == (i % tile) * tile + j % tile);
            hit[index] = 1;
        }
    }
    // Every other element is padding, written as zero.
    for (std::size_t k = 0; k < layout.size; ++k) {
        if (hit[k] == 0) REQUIRE(tiled[k] == 0.0);
    }

    std::vector<double> back(rows * ld, -3.0);
    REQUIRE(from_morton_tiled(layout, tiled.data(), back.data(), ld) == 0);
    for (std::size_t i = 0; i < rows; ++i) {
        for (std::size_t j = 0; j < ld; ++j) REQUIRE(back[i * ld + j] == (j < cols ? src[i * ld + j] : -3.0));
    }

    // float, dense (ld == cols).
    std::vector<float> fsrc(rows * cols);
    for (std::size_t k = 0; k < fsrc.size(); ++k) fsrc[k] = static_cast<float>(k % 1000) + 0.5f;
    std::vector<float> ftiled(layout.size, -1.0f);
    std::vector<float> fback(rows * cols, 0.0f);
    REQUIRE(to_morton_tiled(layout, fsrc.data(), cols, ftiled.data()) == 0);
    REQUIRE(from_morton_tiled(layout, ftiled.data(), fback.data(), cols) == 0);
    CHECK(fback == fsrc);
}

}  // namespace

TEST_CASE("tiled layout: round trips, exact and padded sizes, square and oblong tile grids") {
    check_layout_round_trip(1, 1, 1, 0);
    check_layout_round_trip(1, 1, 8, 0);
    check_layout_round_trip(16, 16, 4, 0);   // 4 x 4 tiles: full square
    check_layout_round_trip(64, 64, 8, 5);   // 8 x 8 tiles: full square
    check_layout_round_trip(5, 7, 2, 1);     // 3 x 4 tiles, padded both ways
    check_layout_round_trip(17, 33, 4, 3);   // 5 x 9
    check_layout_round_trip(3, 100, 4, 0);   // 1 x 25
    check_layout_round_trip(100, 3, 8, 2);   // 13 x 1
    check_layout_round_trip(13, 13, 16, 0);  // one padded tile
    check_layout_round_trip(37, 29, 1, 0);   // tile 1: pure Z-order of elements
    check_layout_round_trip(96, 160, 16, 7); // 6 x 10
    std::mt19937_64 rng(0x5EED0004);
    for (int i = 0; i < 20; ++i) {
        // One draw per statement: argument evaluation order differs between ABIs, the sequence must not.
        const std::size_t tile = std::size_t{1} << (rng() % 5);
        const std::size_t rows = 1 + rng() % 90;
        const std::size_t cols = 1 + rng() % 90;
        const std::size_t ld_extra = rng() % 4;
        check_layout_round_trip(rows, cols, tile, ld_extra);
    }
}

TEST_CASE("tiled layout: empty matrices and bad arguments") {
    MortonLayout layout;
    REQUIRE(morton_layout_init(layout, 0, 10, 4) == 0);
    CHECK(layout.size == 0);
    CHECK(to_morton_tiled(layout, static_cast<const double*>(nullptr), 10, static_cast<double*>(nullptr)) == 0);
    CHECK(from_morton_tiled(layout, static_cast<const double*>(nullptr), static_cast<double*>(nullptr), 10) == 0);
    REQUIRE(morton_layout_init(layout, 10, 0, 4) == 0);
    CHECK(layout.size == 0);

    const MortonLayout before = layout;
    for (std::size_t bad_tile : {std::size_t{0}, std::size_t{3}, std::size_t{6}, std::size_t{1} << 17}) {
        CAPTURE(bad_tile);
        CHECK(morton_layout_init(layout, 8, 8, bad_tile) == -EINVAL);
        CHECK(std::strlen(cf::platform::last_error_message()) > 0);
    }
    const std::size_t huge = std::numeric_limits<std::size_t>::max();
    CHECK(morton_layout_init(layout, huge, huge, 1) == -EINVAL);
    CHECK(morton_layout_init(layout, huge / 2, 4, 16) == -EINVAL);
    CHECK(layout.tile == before.tile);  // left as it was on failure
    CHECK(layout.cols == before.cols);

    REQUIRE(morton_layout_init(layout, 6, 6, 4) == 0);
    std::vector<double> src(36, 1.0), tiled(layout.size, 5.0), dst(36);
    CHECK(to_morton_tiled(layout, src.data(), 5, tiled.data()) == -EINVAL);  // ld < cols
    CHECK(from_morton_tiled(layout, tiled.data(), dst.data(), 5) == -EINVAL);
    CHECK(to_morton_tiled(layout, static_cast<const double*>(nullptr), 6, tiled.data()) == -EINVAL);
    CHECK(to_morton_tiled(layout, src.data(), 6, static_cast<double*>(nullptr)) == -EINVAL);
    CHECK(from_morton_tiled(layout, static_cast<const double*>(nullptr), dst.data(), 6) == -EINVAL);
    CHECK(to_morton_tiled(layout, src.data(), huge, tiled.data()) == -EINVAL);  // rows x ld overflows
    const MortonLayout uninitialised;
    CHECK(to_morton_tiled(uninitialised, src.data(), 6, tiled.data()) == -EINVAL);
    CHECK(std::strlen(cf::platform::last_error_message()) > 0);
    // Nothing written on failure.
    CHECK(std::all_of(tiled.begin(), tiled.end(), [](double v) { return v == 5.0; }));
}
