// The C API's log callback: a cf_log_fn and its user pointer behind the library's log sink (platform/os/log.hpp).
#include <mutex>

#include "chronofabric/chronofabric.h"
#include "platform/os/log.hpp"

namespace {

static_assert(static_cast<int>(cf::platform::LogLevel::error) == CF_LOG_ERROR);
static_assert(static_cast<int>(cf::platform::LogLevel::warning) == CF_LOG_WARNING);
static_assert(static_cast<int>(cf::platform::LogLevel::info) == CF_LOG_INFO);

struct Callback {
    cf_log_fn fn;
    void* user;
};

// Two registrations, used in turn: the sink reads the current one while a new one is written into the other.
// set_log_sink() returns only when no message is reaching the previous sink, so the slot written next (the one
// in use two calls ago) is idle; the mutex keeps two setters from writing the same slot.
std::mutex setters;
Callback slots[2];
unsigned next_slot = 0;

void call_back(cf::platform::LogLevel level, const char* message, void* context) {
    // A copy: a callback that sets callbacks twice rewrites this slot while it runs.
    const Callback callback = *static_cast<const Callback*>(context);
    callback.fn(static_cast<int>(level), message, callback.user);
}

}  // namespace

extern "C" int cf_log_set_callback(cf_log_fn fn, void* user) {
    std::lock_guard<std::mutex> lock(setters);
    if (fn == nullptr) {
        cf::platform::set_log_sink(nullptr, nullptr);
        return 0;
    }
    Callback& slot = slots[next_slot];
    next_slot ^= 1;
    slot = Callback{fn, user};
    cf::platform::set_log_sink(call_back, &slot);
    return 0;
}
