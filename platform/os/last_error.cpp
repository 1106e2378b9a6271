#include "platform/os/last_error.hpp"

#include <cstdarg>
#include <cstdio>

namespace cf::platform {
namespace {
thread_local char message_buffer[512];
thread_local unsigned long long failures = 0;
}

int fail(int errnum, const char* format, ...) noexcept {
    va_list args;
    va_start(args, format);
    std::vsnprintf(message_buffer, sizeof message_buffer, format, args);
    va_end(args);
    ++failures;
    return errnum > 0 ? -errnum : errnum;
}

const char* last_error_message() noexcept { return message_buffer; }

void clear_last_error() noexcept { message_buffer[0] = '\0'; }

unsigned long long failure_count() noexcept { return failures; }

}  // namespace cf::platform
