// A hybrid logical clock whose physical time the test sets by hand, in HLC units (2^24 per second).
#pragma once

#include <cstdint>

#include "engine/time/hlc.hpp"

namespace cf::test {

inline constexpr std::uint64_t kUnitsPerSecond = std::uint64_t{1} << 24;

struct FakePhysical {
    std::uint64_t units = 0;
    static Instant read(void* context) {
        return HlcStamp::from_parts(static_cast<FakePhysical*>(context)->units, 0, 0).physical_time();
    }
};

inline HybridLogicalClock::Config fake_config(FakePhysical& physical, std::uint16_t node, Duration max_drift) {
    HybridLogicalClock::Config config;
    config.node_id = node;
    config.max_drift = max_drift;
    config.source = &FakePhysical::read;
    config.source_context = &physical;
    return config;
}

}  // namespace cf::test
