/**
 * @file chronofabric/clock.h
 * Time (the process clock, femtosecond resolution) and the engine's hybrid logical clock (Kulkarni et al. 2014):
 * stamps that respect causality across threads, processes and hosts.
 */
#ifndef CHRONOFABRIC_CLOCK_H
#define CHRONOFABRIC_CLOCK_H

#include "chronofabric/engine.h"

#ifdef __cplusplus
extern "C" {
#endif

/** A point in time: seconds and femtoseconds (0 <= femtoseconds < 10^15) since 1970-01-01 UTC. */
typedef struct cf_instant {
    int64_t seconds;
    int64_t femtoseconds;
} cf_instant_t;

/**
 * The current time from the process clock (the calibrated cycle counter, steered to CLOCK_REALTIME).
 * Resolution: femtoseconds. Accuracy: what the hardware and the system clock's sync give (see README).
 * The first call in a process calibrates the counter (about 20 ms); later calls cost a few nanoseconds.
 * @return status: 0, or CF_EINVAL if @p now is NULL.
 */
CF_NODISCARD CF_API int cf_time_now(cf_instant_t* now);

/**
 * An HLC stamp. word = physical time in units of 2^-24 s since 1970 << 8 | logical counter; node (the engine's
 * node_id) and then lane (the clock lane of that node that issued it) break ties. Order: word, node, lane.
 *
 * Across an engine restart the order is not kept by itself: a new engine starts from its physical clock, and the
 * stamps of the engine before it may be ahead of that (by logical counts, or up to hlc_max_drift_ns after merging
 * a remote stamp). To keep it, save the last stamp and merge it into the new engine with cf_hlc_update() before
 * issuing stamps: every later stamp is then larger.
 */
typedef struct cf_hlc {
    uint64_t word;
    uint16_t node;
    uint16_t lane;
} cf_hlc_t;

/** A stamp for a local or send event, larger than every stamp this engine issued or merged.
 *  @return status: 0, or CF_EINVAL (NULL). */
CF_NODISCARD CF_API int cf_hlc_now(cf_engine_t* engine, cf_hlc_t* stamp);
/** A receive event: merges @p remote and returns the new local stamp (larger than @p remote and every earlier one).
 *  @return status: 0; CF_ERANGE (counted, ignored) if @p remote is more than max drift ahead; CF_EINVAL (NULL). */
CF_NODISCARD CF_API int cf_hlc_update(cf_engine_t* engine, const cf_hlc_t* remote, cf_hlc_t* stamp);
/** *@p order = -1, 0 or 1 as @p a is before, equal to or after @p b (word, then node, then lane).
 *  @return status: 0, or CF_EINVAL if any argument is NULL. */
CF_NODISCARD CF_API int cf_hlc_compare(const cf_hlc_t* a, const cf_hlc_t* b, int* order);
/** The physical part of a stamp as a time. @return status: 0, or CF_EINVAL (NULL). */
CF_NODISCARD CF_API int cf_hlc_to_instant(const cf_hlc_t* stamp, cf_instant_t* time);

#ifdef __cplusplus
}
#endif

#endif /* CHRONOFABRIC_CLOCK_H */
