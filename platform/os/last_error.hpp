// A thread-local "why did that fail" message, set by every function that returns a negative status.
// Status codes stay cheap to return; the text is written only on the (cold) failure path.
#pragma once

namespace cf::platform {

// Formats the message, stores it for this thread and returns -errnum, so failures read as
// `return fail(EINVAL, "cpu %d is not online", cpu);`.
[[gnu::cold, gnu::format(printf, 2, 3)]] int fail(int errnum, const char* format, ...) noexcept;

// The message of this thread's most recent failure ("" if none). Valid until the next failure.
const char* last_error_message() noexcept;

void clear_last_error() noexcept;

// How many failures this thread has recorded (fail() calls): a caller that compares it before and after a call
// learns whether that call left a message of its own (the C API makes sure every failure does).
unsigned long long failure_count() noexcept;

}  // namespace cf::platform
