#include "engine/compute/dispatch.hpp"

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "engine/compute/chosen_table.hpp"
#include "platform/os/last_error.hpp"
#include "platform/os/log.hpp"

namespace cf::compute {
namespace {

using platform::IsaLevel;

// A slot an ISA's files left empty takes the scalar kernel, so every table is complete.
template <class T>
void fill_gaps(KernelSet<T>& set, const KernelSet<T>& scalar) noexcept {
    if (set.dot == nullptr) set.dot = scalar.dot;
    if (set.axpy == nullptr) set.axpy = scalar.axpy;
    if (set.gemv == nullptr) set.gemv = scalar.gemv;
    if (set.gemm == nullptr) set.gemm = scalar.gemm;
}

KernelTable make_table(IsaLevel isa, void (*install_vector)(KernelTable&) noexcept,
                       void (*install_gemm)(KernelTable&) noexcept, const KernelTable* scalar) noexcept {
    KernelTable table;
    table.isa = isa;
    install_vector(table);
    install_gemm(table);
    if (scalar != nullptr) {
        fill_gaps(table.f32, scalar->f32);
        fill_gaps(table.f64, scalar->f64);
    }
    return table;
}

// Every table this build has. Filling one only stores function pointers: no ISA-specific instruction runs
// until a kernel is called, so building them all is safe on any CPU.
struct Tables {
    KernelTable scalar;
#if defined(__x86_64__)
    KernelTable avx2;
    KernelTable avx512;
#elif defined(__aarch64__)
    KernelTable neon;
#endif
};

const Tables& tables() noexcept {
    static const Tables all = [] {
        Tables t;
        t.scalar = make_table(IsaLevel::scalar, install_vector_kernels_scalar, install_gemm_scalar, nullptr);
#if defined(__x86_64__)
        t.avx2 = make_table(IsaLevel::avx2_fma, install_vector_kernels_avx2, install_gemm_avx2, &t.scalar);
        t.avx512 = make_table(IsaLevel::avx512, install_vector_kernels_avx512, install_gemm_avx512, &t.scalar);
#elif defined(__aarch64__)
        t.neon = make_table(IsaLevel::neon, install_vector_kernels_neon, install_gemm_neon, &t.scalar);
#endif
        return t;
    }();
    return all;
}

// The build's table for `isa`, or nullptr when this build has none.
const KernelTable* table_for(IsaLevel isa) noexcept {
    const Tables& t = tables();
    switch (isa) {
        case IsaLevel::scalar: return &t.scalar;
#if defined(__x86_64__)
        case IsaLevel::avx2_fma: return &t.avx2;
        case IsaLevel::avx512: return &t.avx512;
#elif defined(__aarch64__)
        case IsaLevel::neon: return &t.neon;
#endif
        default: return nullptr;
    }
}

// The level `name` spells (isa_name), without touching the last-error message. False for another name.
bool find_isa(const char* name, IsaLevel& out) noexcept {
    if (name == nullptr) return false;
    for (IsaLevel level : {IsaLevel::scalar, IsaLevel::avx2_fma, IsaLevel::avx512, IsaLevel::neon}) {
        if (std::strcmp(name, isa_name(level)) == 0) {
            out = level;
            return true;
        }
    }
    return false;
}

IsaLevel best_supported() noexcept {
    const IsaLevel level = platform::cpu_info().isa_level;
    return isa_supported(level) ? level : IsaLevel::scalar;
}

// The table CF_ISA (or else the CPU) picks; an unusable CF_ISA is reported once and ignored.
const KernelTable* choose_from_environment() noexcept {
    char why[192];
    const IsaLevel level = choose_isa(std::getenv("CF_ISA"), why, sizeof why);
    if (why[0] != '\0') platform::log(platform::LogLevel::warning, "%s", why);
    return table_for(level);
}

ChosenTable<KernelTable, choose_from_environment> active_table;

}  // namespace

const KernelTable& active_kernels() noexcept { return active_table.get(); }

IsaLevel active_isa() noexcept { return active_kernels().isa; }

bool isa_supported(IsaLevel isa) noexcept {
    const platform::CpuInfo& cpu = platform::cpu_info();
    switch (isa) {
        case IsaLevel::scalar: return true;
#if defined(__x86_64__)
        case IsaLevel::avx2_fma: return cpu.avx2 && cpu.fma;
        // cpu_info() reports avx512 only with F, VL, BW, DQ, AVX2 and FMA, the flags that file is compiled with.
        case IsaLevel::avx512: return cpu.isa_level == IsaLevel::avx512;
#elif defined(__aarch64__)
        case IsaLevel::neon: return cpu.neon;
#endif
        default: return false;
    }
}

int force_isa(IsaLevel isa) noexcept {
    const KernelTable* table = table_for(isa);
    if (table == nullptr) {
        return platform::fail(ENOTSUP, "ISA %s: this build has no kernels for it", isa_name(isa));
    }
    if (!isa_supported(isa)) {
        return platform::fail(ENOTSUP, "ISA %s: this CPU (or OS) does not support it", isa_name(isa));
    }
    active_table.force(*table);
    return 0;
}

const char* isa_name(IsaLevel isa) noexcept {
    return isa == IsaLevel::avx2_fma ? "avx2" : platform::isa_level_name(isa);
}

int parse_isa(const char* name, IsaLevel& out) noexcept {
    if (find_isa(name, out)) return 0;
    return platform::fail(EINVAL, "unknown ISA name \"%s\" (expected scalar, avx2, avx512 or neon)",
                          name != nullptr ? name : "(null)");
}

IsaLevel choose_isa(const char* cf_isa, char* why, std::size_t why_size) noexcept {
    if (why != nullptr && why_size > 0) why[0] = '\0';
    const IsaLevel best = best_supported();
    if (cf_isa == nullptr || cf_isa[0] == '\0') return best;
    // Not through parse_isa/force_isa: this runs inside the first kernel call and must not overwrite the
    // caller's last-error message.
    IsaLevel named = IsaLevel::scalar;
    if (!find_isa(cf_isa, named)) {
        if (why != nullptr && why_size > 0) {
            std::snprintf(why, why_size, "CF_ISA=%.32s is not scalar, avx2, avx512 or neon; using %s", cf_isa,
                          isa_name(best));
        }
        return best;
    }
    if (table_for(named) == nullptr || !isa_supported(named)) {
        if (why != nullptr && why_size > 0) {
            std::snprintf(why, why_size, "CF_ISA=%s is not supported by this %s; using %s", cf_isa,
                          table_for(named) == nullptr ? "build" : "CPU", isa_name(best));
        }
        return best;
    }
    return named;
}

}  // namespace cf::compute
