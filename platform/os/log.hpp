// Where the library's few messages go: a sink the application chooses (the C API's cf_log_set_callback), by default
// one line on stderr ("chronofabric: <message>"). The library itself never writes to stderr or stdout; it logs only
// what a user should know and would not otherwise learn (an environment override it ignored, a driver fallback).
//
// Logging is never on the hot path (it formats and takes a lock), so the lock buys a simple guarantee instead of
// speed: messages reach the sink one at a time, and once set_log_sink() returns, the previous sink is not running
// and will not be called again, so its context may be freed. The lock is recursive: a sink may log or set a sink.
#pragma once

namespace cf::platform {

enum class LogLevel : int { error = 0, warning = 1, info = 2 };

using LogSink = void (*)(LogLevel level, const char* message, void* context);

// Sends every later message to `sink` with `context`; nullptr restores the default (stderr).
void set_log_sink(LogSink sink, void* context) noexcept;

// Formats the message (printf-style, cut at 511 bytes) and hands it to the sink.
[[gnu::cold, gnu::format(printf, 2, 3)]] void log(LogLevel level, const char* format, ...) noexcept;

}  // namespace cf::platform
