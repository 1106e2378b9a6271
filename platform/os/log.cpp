#include "platform/os/log.hpp"

#include <cstdarg>
#include <cstdio>
#include <mutex>

namespace cf::platform {
namespace {

void stderr_sink(LogLevel, const char* message, void*) { std::fprintf(stderr, "chronofabric: %s\n", message); }

struct Registration {
    std::recursive_mutex mutex;
    LogSink sink = stderr_sink;
    void* context = nullptr;
};

// A function-local static, so a message logged while other statics are being initialised finds it ready.
Registration& registration() noexcept {
    static Registration instance;
    return instance;
}

}  // namespace

void set_log_sink(LogSink sink, void* context) noexcept {
    Registration& r = registration();
    std::lock_guard<std::recursive_mutex> lock(r.mutex);
    r.sink = sink != nullptr ? sink : stderr_sink;
    r.context = sink != nullptr ? context : nullptr;
}

void log(LogLevel level, const char* format, ...) noexcept {
    char message[512];
    va_list args;
    va_start(args, format);
    std::vsnprintf(message, sizeof message, format, args);
    va_end(args);
    Registration& r = registration();
    std::lock_guard<std::recursive_mutex> lock(r.mutex);
    r.sink(level, message, r.context);
}

}  // namespace cf::platform
