/**
 * @file chronofabric/engine.h
 * The engine: the process's hybrid logical clock (clock.h), its static memory pool (pool.h) and its topics
 * (topic.h). Everything is reserved when it is created.
 */
#ifndef CHRONOFABRIC_ENGINE_H
#define CHRONOFABRIC_ENGINE_H

#include "chronofabric/status.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct cf_engine cf_engine_t;

/**
 * Engine configuration. Size-versioned: set struct_size = sizeof(cf_engine_config_t) (cf_engine_config_init does
 * it and fills the defaults), so a program built against these headers keeps working with later libraries.
 */
typedef struct cf_engine_config {
    uint32_t struct_size;
    uint16_t node_id;                /**< HLC node id, unique per engine in a system (default 0) */
    uint16_t reserved0;
    uint64_t hlc_max_drift_ns;       /**< remote HLC stamps further ahead of local time are refused (100 ms) */
    uint64_t pool_bytes_per_class;   /**< bytes reserved for each pool size class, 64 B .. 64 KiB (1 MiB) */
    uint32_t pool_max_threads;       /**< threads that may hold a pool cache at once (64) */
    uint32_t max_topics;             /**< topics open at once (64) */
    uint32_t prefer_hugepages;       /**< 1: back the pool with hugepages when free, else 4 KiB pages (1) */
    uint32_t pool_exact_accounting;  /**< 1: pool stats count the exact bytes asked for (a store per allocate and
                                          free); 0: fragmentation is estimated from a sample taken off the fast
                                          path, and requested_bytes reads 0 (0) */
} cf_engine_config_t;

/** Fills @p config with the defaults and its struct_size (NULL: nothing). */
CF_API void cf_engine_config_init(cf_engine_config_t* config);

/**
 * Creates an engine: reserves and pre-faults all its memory now.
 * @return status: 0; CF_EINVAL (NULL, a struct_size this library does not know, a bad field); CF_ENOMEM.
 * A pool that had to fall back to 4 KiB pages is not an error: cf_engine_warning() says so.
 */
CF_NODISCARD CF_API int cf_engine_create(const cf_engine_config_t* config, cf_engine_t** engine);
/**
 * Destroys an engine and every topic it still holds. Destroy its bridges first.
 * @return status: 0 (also for NULL); CF_EBUSY while publishers, subscribers or bridges are open (nothing freed).
 */
CF_NODISCARD CF_API int cf_engine_destroy(cf_engine_t* engine);
/** A sentence about something the engine had to settle for ("" if nothing), e.g. 4 KiB pages. Never NULL. */
CF_API const char* cf_engine_warning(const cf_engine_t* engine);

/**
 * Housekeeping for shared topics, every ~100 ms from one thread of each process: heartbeats this process and
 * reclaims what dead processes (kill -9) held. @p dead_processes (may be NULL) receives how many it reclaimed.
 * @return status: 0; CF_EINVAL (NULL engine); CF_ESTALE (this process was itself reclaimed as dead: reopen).
 */
CF_NODISCARD CF_API int cf_engine_maintain(cf_engine_t* engine, uint32_t* dead_processes);

#ifdef __cplusplus
}
#endif

#endif /* CHRONOFABRIC_ENGINE_H */
