// What the CPU can do, detected once through cpu_features (plus CPUID leaf 0x80000007 for the invariant TSC,
// which cpu_features does not report).
#pragma once

#include <string>

namespace cf::platform {

// The instruction-set levels our kernels are written for, lowest first.
enum class IsaLevel { scalar, avx2_fma, avx512, neon };

const char* isa_level_name(IsaLevel level) noexcept;

struct CpuInfo {
    std::string vendor;        // "AuthenticAMD", "GenuineIntel"; on ARM64 the implementer, e.g. "0x41 (ARM)"
    std::string model_name;    // brand string, e.g. "AMD EPYC 9R14 96-Core Processor"
    int family = 0;            // x86 display family; ARM64: architecture (8)
    int model = 0;             // x86 display model; ARM64: part number
    int stepping = 0;          // x86 stepping; ARM64: revision
    IsaLevel isa_level = IsaLevel::scalar;  // best level both the CPU and the OS (saved register state) support
    bool avx2 = false, fma = false, bmi2 = false;
    bool avx512f = false, avx512bw = false, avx512dq = false, avx512vl = false;
    bool neon = false;
    // The counter ticks at a constant rate through frequency and power-state changes, so it can be a clock.
    // x86: CPUID 0x80000007 EDX[8]. ARM64: the generic timer is constant-rate by architecture.
    bool invariant_counter = false;
};

// Detected on first call, then cached (thread-safe).
const CpuInfo& cpu_info() noexcept;

}  // namespace cf::platform
