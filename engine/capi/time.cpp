#include <cerrno>

#include "chronofabric/chronofabric.h"
#include "engine/capi/handles.hpp"
#include "engine/time/counter_clock.hpp"
#include "engine/time/hlc.hpp"
#include "platform/os/last_error.hpp"

namespace {

// Seconds and 0 <= femtoseconds < 10^15, as cf_instant_t promises.
cf_instant_t to_c_instant(cf::Instant time) noexcept {
    namespace detail = cf::time_detail;
    const cf::Femtos fs = time.femtos();
    return cf_instant_t{static_cast<int64_t>(detail::floor_div(fs, detail::kFemtosPerSecond)),
                        static_cast<int64_t>(detail::floor_mod(fs, detail::kFemtosPerSecond))};
}

}  // namespace

extern "C" {

int cf_time_now(cf_instant_t* now) {
    if (now == nullptr) return cf::platform::fail(EINVAL, "cf_time_now: now is NULL");
    *now = to_c_instant(cf::default_clock().now());
    return CF_OK;
}

int cf_hlc_to_instant(const cf_hlc_t* stamp, cf_instant_t* time) {
    if (stamp == nullptr || time == nullptr) {
        return cf::platform::fail(EINVAL, "cf_hlc_to_instant: stamp or time is NULL");
    }
    *time = to_c_instant(cf::capi::from_c_stamp(*stamp).physical_time());
    return CF_OK;
}

}
