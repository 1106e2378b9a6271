#include <cerrno>

#include "chronofabric/chronofabric.h"
#include "engine/time/counter_clock.hpp"
#include "platform/os/last_error.hpp"

extern "C" {

int cf_time_now(cf_instant_t* now) {
    if (now == nullptr) return cf::platform::fail(EINVAL, "cf_time_now: now is NULL");
    namespace detail = cf::time_detail;
    const cf::Femtos fs = cf::default_clock().now().femtos();
    now->seconds = static_cast<int64_t>(detail::floor_div(fs, detail::kFemtosPerSecond));
    now->femtoseconds = static_cast<int64_t>(detail::floor_mod(fs, detail::kFemtosPerSecond));
    return CF_OK;
}

}
