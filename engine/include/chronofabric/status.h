/**
 * @file chronofabric/status.h
 * Status codes and error messages, and the declaration macros every ChronoFabric header uses.
 *
 * Conventions (every function):
 *  - each function's comment says what it returns: a status (0, or a negative CF_E* code) or a count (>= 0, or a
 *    negative CF_E* code on failure). Functions that return something else (a name, a code, void) cannot fail;
 *  - every failure, CF_EAGAIN and CF_ETIMEDOUT included, leaves a sentence for this thread in
 *    cf_last_error_message(); a success leaves the previous sentence alone;
 *  - output parameters are written only on success; never throws, never aborts on bad input;
 *  - a count or length (size_t) whose bytes could not be one object (more than PTRDIFF_MAX bytes, e.g. (size_t)-1
 *    from a negative int) is CF_EINVAL before any memory is touched;
 *  - every cf_*_destroy function and cf_pool_free accept NULL and return 0.
 * Status and count returns are marked CF_NODISCARD: ignoring one is a compiler warning.
 */
#ifndef CHRONOFABRIC_STATUS_H
#define CHRONOFABRIC_STATUS_H

#include <stddef.h>
#include <stdint.h>

#if defined(CF_BUILDING_LIBRARY)
#define CF_API __attribute__((visibility("default")))
#else
#define CF_API
#endif

/* A result the caller must look at: [[nodiscard]] in C++17, warn_unused_result in GNU C. */
#if defined(__cplusplus) && __cplusplus >= 201703L
#define CF_NODISCARD [[nodiscard]]
#elif defined(__GNUC__) || defined(__clang__)
#define CF_NODISCARD __attribute__((warn_unused_result))
#else
#define CF_NODISCARD
#endif

#ifdef __cplusplus
extern "C" {
#endif

/** Status codes: negative errno values (Linux), so they also read well in strace and perror. */
#define CF_OK 0
#define CF_EINVAL (-22)     /**< an argument is NULL, out of range or the wrong size */
#define CF_ENOMEM (-12)     /**< preallocated capacity exhausted */
#define CF_EAGAIN (-11)     /**< full (or, for a clock offset, not known yet): try again */
#define CF_EPERM (-1)       /**< not permitted (privilege, limit) */
#define CF_ENOTSUP (-95)    /**< not supported on this host */
#define CF_ERANGE (-34)     /**< a value outside its allowed range (e.g. an HLC stamp beyond max drift) */
#define CF_EBUSY (-16)      /**< in use: open publishers or subscribers, an outstanding claim */
#define CF_EIO (-5)         /**< the hardware or kernel misbehaved */
#define CF_ENOENT (-2)      /**< no such topic or segment */
#define CF_EEXIST (-17)     /**< a topic of that name exists (in this engine), or a live process holds the segment */
#define CF_ENOSPC (-28)     /**< a fixed table is full (topics, processes, file descriptors), or /dev/shm is */
#define CF_EPROTO (-71)     /**< a shared segment from another configuration or library version, or corrupt */
#define CF_EUSERS (-87)     /**< the topic already has its maximum of publishers or subscribers */
#define CF_EMSGSIZE (-90)   /**< the message is larger than the topic's max_message_bytes */
#define CF_ETIMEDOUT (-110) /**< waited too long (a poll with a timeout, a shared segment that never became ready) */
#define CF_ESTALE (-116)    /**< this process was reclaimed as dead by a peer, or the segment was replaced */
#define CF_EACCES (-13)     /**< a shared segment (or its directory) of another user, a symbolic link, or a mode
                                 wider than asked */
#define CF_EADDRINUSE (-98) /**< a bridge's local address is in use or not on this host */
#define CF_ECONNRESET (-104) /**< a QUIC connection closed (by either side, or timed out), or its channel ended */
/* Any other failure of the kernel is reported as CF_EIO; cf_last_error_message() says what failed. */

/** A short English description of a status code ("invalid argument"). Never NULL. */
CF_API const char* cf_strerror(int status);

/** The calling thread's last failure, as a sentence ("" if none). Valid until this thread's next failure. */
CF_API const char* cf_last_error_message(void);

#ifdef __cplusplus
}
#endif

#endif /* CHRONOFABRIC_STATUS_H */
