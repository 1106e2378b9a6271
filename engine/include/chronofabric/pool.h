/**
 * @file chronofabric/pool.h
 * The engine's pool: fixed-size blocks in size classes (powers of two, 64 B .. 64 KiB) from memory reserved at
 * cf_engine_create. Never grows, never calls the kernel after creation.
 */
#ifndef CHRONOFABRIC_POOL_H
#define CHRONOFABRIC_POOL_H

#include "chronofabric/engine.h"

#ifdef __cplusplus
extern "C" {
#endif

/** A block of at least @p bytes (64-byte aligned), from any thread.
 *  @return status: 0; CF_ENOMEM when its size class is exhausted; CF_EINVAL for 0 bytes, more than 64 KiB, NULL. */
CF_NODISCARD CF_API int cf_pool_alloc(cf_engine_t* engine, size_t bytes, void** block);
/**
 * Returns a block from cf_pool_alloc, from any thread. Always checked: for a pointer that is not an allocated
 * block of this engine's pool (a double free, wherever the block sits; a pointer inside a block or misaligned;
 * another engine's block or any other memory) nothing is freed. Of two threads freeing the same block at once,
 * exactly one gets 0. @return status: 0 (also for a NULL block); CF_EINVAL (as above, or a NULL engine).
 */
CF_NODISCARD CF_API int cf_pool_free(cf_engine_t* engine, void* block);

/** The whole pool. Set struct_size = sizeof(cf_pool_stats_t). */
typedef struct cf_pool_stats {
    uint32_t struct_size;
    uint32_t hugepages;              /**< 1 if backed by explicit hugepages */
    uint64_t capacity_bytes;
    uint64_t in_use_bytes;
    uint64_t in_use_blocks;
    uint64_t high_water_blocks;
    uint64_t failed_allocations;
    double fragmentation_percent;    /**< 100 * (1 - requested / block bytes), sampled off the fast path (see README) */
} cf_pool_stats_t;
/** @return status: 0, or CF_EINVAL (NULL, struct_size not set). */
CF_NODISCARD CF_API int cf_pool_stats(const cf_engine_t* engine, cf_pool_stats_t* stats);

/** How many size classes the pool has (class 0 holds the smallest blocks). @return status: 0 or CF_EINVAL. */
CF_NODISCARD CF_API int cf_pool_class_count(const cf_engine_t* engine, uint32_t* count);

/** One size class. Set struct_size = sizeof(cf_pool_class_stats_t). */
typedef struct cf_pool_class_stats {
    uint32_t struct_size;
    uint32_t reserved;
    uint64_t block_bytes;            /**< the size of every block of the class */
    uint64_t capacity_blocks;
    uint64_t in_use_blocks;          /**< handed out and not freed */
    uint64_t cached_blocks;          /**< free, parked in some thread's cache */
    uint64_t high_water_blocks;      /**< peak of in use + cached */
    uint64_t failed_allocations;     /**< requests refused because the class was exhausted */
    uint64_t requested_bytes;        /**< what the blocks in use were asked for (pool_exact_accounting; else 0) */
    double fragmentation_percent;    /**< 100 * (1 - requested / block bytes): exact with pool_exact_accounting,
                                          else estimated from a sample taken off the fast path (see README) */
} cf_pool_class_stats_t;
/** @return status: 0; CF_EINVAL (NULL, struct_size not set, @p class_index >= the class count). */
CF_NODISCARD CF_API int cf_pool_class_stats(const cf_engine_t* engine, uint32_t class_index,
                                            cf_pool_class_stats_t* stats);

#ifdef __cplusplus
}
#endif

#endif /* CHRONOFABRIC_POOL_H */
