#include "platform/cpu/cpu_info.hpp"

#include <cstdio>
#include <cstring>

#if defined(__x86_64__)
#include <cpuid.h>

#include <cpu_features/cpuinfo_x86.h>
#elif defined(__aarch64__)
#include <cpu_features/cpuinfo_aarch64.h>
#endif

namespace cf::platform {

const char* isa_level_name(IsaLevel level) noexcept {
    switch (level) {
        case IsaLevel::scalar: return "scalar";
        case IsaLevel::avx2_fma: return "avx2+fma";
        case IsaLevel::avx512: return "avx512";
        case IsaLevel::neon: return "neon";
    }
    return "unknown";
}

namespace {

#if defined(__x86_64__)
CpuInfo detect() {
    const cpu_features::X86Info x86 = cpu_features::GetX86Info();
    const cpu_features::X86Features& f = x86.features;
    CpuInfo info;
    info.vendor = x86.vendor;
    info.model_name = x86.brand_string;
    // Trim the padding some CPUs put around the brand string.
    while (!info.model_name.empty() && info.model_name.back() == ' ') info.model_name.pop_back();
    while (!info.model_name.empty() && info.model_name.front() == ' ') info.model_name.erase(0, 1);
    info.family = x86.family;
    info.model = x86.model;
    info.stepping = x86.stepping;
    // cpu_features clears AVX bits when the OS does not save the wider registers (XCR0), so these are usable.
    info.avx2 = f.avx2;
    info.fma = f.fma3;
    info.bmi2 = f.bmi2;
    info.avx512f = f.avx512f;
    info.avx512bw = f.avx512bw;
    info.avx512dq = f.avx512dq;
    info.avx512vl = f.avx512vl;
    if (info.avx512f && info.avx512bw && info.avx512dq && info.avx512vl && info.avx2 && info.fma) {
        info.isa_level = IsaLevel::avx512;
    } else if (info.avx2 && info.fma) {
        info.isa_level = IsaLevel::avx2_fma;
    }
    unsigned int eax, ebx, ecx, edx;
    if (__get_cpuid(0x80000000u, &eax, &ebx, &ecx, &edx) && eax >= 0x80000007u &&
        __get_cpuid(0x80000007u, &eax, &ebx, &ecx, &edx)) {
        info.invariant_counter = (edx >> 8) & 1u;
    }
    return info;
}
#elif defined(__aarch64__)
const char* arm_implementer_name(int implementer) {
    switch (implementer) {
        case 0x41: return "ARM";
        case 0x42: return "Broadcom";
        case 0x43: return "Cavium";
        case 0x46: return "Fujitsu";
        case 0x48: return "HiSilicon";
        case 0x4e: return "NVIDIA";
        case 0x51: return "Qualcomm";
        case 0x61: return "Apple";
        case 0xc0: return "Ampere";
        default: return "unknown";
    }
}

CpuInfo detect() {
    const cpu_features::Aarch64Info arm = cpu_features::GetAarch64Info();
    CpuInfo info;
    char text[96];
    std::snprintf(text, sizeof text, "0x%02x (%s)", arm.implementer, arm_implementer_name(arm.implementer));
    info.vendor = text;
    info.family = 8;
    info.model = arm.part;
    info.stepping = arm.revision;
    std::snprintf(text, sizeof text, "%s part 0x%03x r%dp%d", arm_implementer_name(arm.implementer), arm.part,
                  arm.variant, arm.revision);
    info.model_name = text;
    info.neon = arm.features.asimd;
    info.isa_level = info.neon ? IsaLevel::neon : IsaLevel::scalar;
    info.invariant_counter = true;
    return info;
}
#endif

}  // namespace

const CpuInfo& cpu_info() noexcept {
    static const CpuInfo info = detect();
    return info;
}

}  // namespace cf::platform
