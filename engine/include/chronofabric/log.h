/**
 * @file chronofabric/log.h
 * Where the library's messages go. The library never writes to stderr or stdout itself: the few things it has to
 * tell (an ignored CF_ISA or CF_MORTON override, an io_uring driver falling back to sockets) go to the log
 * callback, by default one line "chronofabric: <message>" on stderr.
 */
#ifndef CHRONOFABRIC_LOG_H
#define CHRONOFABRIC_LOG_H

#include "chronofabric/status.h"

#ifdef __cplusplus
extern "C" {
#endif

#define CF_LOG_ERROR 0
#define CF_LOG_WARNING 1
#define CF_LOG_INFO 2

/** Receives one message (no trailing newline) of @p level (CF_LOG_*); @p message is valid during the call only. */
typedef void (*cf_log_fn)(int level, const char* message, void* user);

/**
 * Sends every later message to @p fn with @p user; NULL restores the default (stderr). Messages reach the
 * callback one at a time (the library holds a lock while it runs; it may log or set a callback itself), and once
 * this returns the previous callback is not running and will not be called again, so its @p user may be freed.
 * Any thread, any time; not for a hot path. @return status: 0 (it cannot fail).
 */
CF_NODISCARD CF_API int cf_log_set_callback(cf_log_fn fn, void* user);

#ifdef __cplusplus
}
#endif

#endif /* CHRONOFABRIC_LOG_H */
