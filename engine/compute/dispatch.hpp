// One kernel table per ISA this build has, chosen once: the best level the CPU (and OS) supports, unless the
// environment says CF_ISA=scalar|avx2|avx512|neon, or force_isa() is called (tests, benchmarks).
#pragma once

#include "engine/compute/kernels.hpp"

namespace cf::compute {

// The table in use. The first call picks it (cpu_features, then CF_ISA); later calls are one atomic load.
// A CF_ISA naming an unknown ISA or one the CPU lacks is reported once through the log sink
// (platform/os/log.hpp) and ignored.
const KernelTable& active_kernels() noexcept;

platform::IsaLevel active_isa() noexcept;

// Whether this build has kernels for `isa` and this CPU can run them.
bool isa_supported(platform::IsaLevel isa) noexcept;

// Switches every later call to `isa`'s kernels. 0, or -ENOTSUP (the CPU or this build lacks it; message set).
int force_isa(platform::IsaLevel isa) noexcept;

// The CF_ISA spelling of a level: "scalar", "avx2", "avx512", "neon" (platform::isa_level_name says "avx2+fma").
const char* isa_name(platform::IsaLevel isa) noexcept;

// "scalar", "avx2", "avx512", "neon" -> level. 0, or -EINVAL for another name.
int parse_isa(const char* name, platform::IsaLevel& out) noexcept;

// The choice active_kernels() makes on first use, given CF_ISA's value (null or empty: unset): the best level
// this build and CPU support, or the level CF_ISA names if they support it. When CF_ISA is set but unusable,
// writes why into `why` (why_size bytes, may be 0) and returns the best level; otherwise leaves `why` empty.
// Separate from active_kernels() so tests can try values without a new process.
platform::IsaLevel choose_isa(const char* cf_isa, char* why, std::size_t why_size) noexcept;

}  // namespace cf::compute
