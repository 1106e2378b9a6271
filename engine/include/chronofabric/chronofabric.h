/**
 * @file chronofabric.h
 * The ChronoFabric C API.
 *
 * Conventions (every function):
 *  - returns 0 on success or a negative CF_E* status; never throws, never aborts on bad input;
 *  - on failure, cf_last_error_message() holds a sentence for this thread saying why;
 *  - output parameters are written only on success.
 */
#ifndef CHRONOFABRIC_H
#define CHRONOFABRIC_H

#include <stdint.h>

#include "chronofabric/version.h"

#if defined(CF_BUILDING_LIBRARY)
#define CF_API __attribute__((visibility("default")))
#else
#define CF_API
#endif

#ifdef __cplusplus
extern "C" {
#endif

/** Status codes: negative errno values, so they also read well in strace and perror. */
#define CF_OK 0
#define CF_EINVAL (-22)     /**< an argument is NULL, out of range or the wrong size */
#define CF_ENOMEM (-12)     /**< preallocated capacity exhausted */
#define CF_EAGAIN (-11)     /**< nothing to read, or full: try again */
#define CF_EPERM (-1)       /**< not permitted (privilege, limit) */
#define CF_ENOTSUP (-95)    /**< not supported on this host */
#define CF_ERANGE (-34)     /**< a value outside its allowed range (e.g. an HLC stamp beyond max drift) */
#define CF_EBUSY (-16)      /**< another thread holds the resource */
#define CF_EIO (-5)         /**< the hardware or kernel misbehaved */

/** Version of the library actually loaded (compare with CF_VERSION_NUMBER for the headers compiled against). */
CF_API uint32_t cf_version(void);
CF_API const char* cf_version_string(void);

/** A short English description of a status code ("invalid argument"). Never NULL. */
CF_API const char* cf_strerror(int status);

/** The calling thread's last failure, as a sentence ("" if none). Valid until this thread's next failure. */
CF_API const char* cf_last_error_message(void);

/** A point in time: seconds and femtoseconds (0 <= femtoseconds < 10^15) since 1970-01-01 UTC. */
typedef struct cf_instant {
    int64_t seconds;
    int64_t femtoseconds;
} cf_instant_t;

/**
 * The current time from the process clock (the calibrated cycle counter, steered to CLOCK_REALTIME).
 * Resolution: femtoseconds. Accuracy: what the hardware and the system clock's sync give (see README).
 * The first call in a process calibrates the counter (about 20 ms); later calls cost a few nanoseconds.
 * @return 0, or CF_EINVAL if @p now is NULL.
 */
CF_API int cf_time_now(cf_instant_t* now);

#ifdef __cplusplus
}
#endif

#endif /* CHRONOFABRIC_H */
