// What a pool reports about itself: capacity, use, peaks, failures, internal fragmentation, per class, in total and
// per NUMA node arena. Plain values, filled by Pool::stats() from relaxed counters at any time without stopping the
// threads that allocate.
//
// Exactness. Every number is a sum of relaxed counters: per class and node arena, the blocks out of the shared free
// list (updated per batch), and per thread cache its block count, its sample of requests and its failures (updated
// by the owning thread, no locked instruction). in_use = out of the shared lists - cached.
// Once no thread is inside allocate()/free() and their effects are visible to the reader (after a join, or any
// acquire that follows them) the numbers are exact. Read while threads run, each counter is some recent value, so
// in_use and requested may be off by the operations in flight (both are clamped at 0).
// high_water_blocks is the peak of blocks taken out of the shared free list (in use plus parked in thread caches),
// updated when a thread refills its cache: that is the quantity that decides exhaustion. The count of blocks out is
// lowered before a push makes blocks available and raised after a pop took them, so it never exceeds the true
// number and the peak never exceeds the capacity; it is exact for any sequence whose refills and flushes of one class
// do not overlap in time (one thread, or threads that take turns), and may miss a transient peak by the batches in
// flight when they do. With several node arenas a class's peak is the sum of its arenas' peaks.
//
// Fragmentation. By default (PoolConfig::exact_requested_bytes off) the fast path keeps no statistics at all, and
// fragmentation comes from per-class counters of a sample kept off it: the allocation that finds its thread's
// cache empty (about one in batch_blocks; every allocation of a thread without a cache) adds one and its requested
// size. The figure is 100 * (1 - sampled sizes / (samples * block bytes)): an estimate over the requests the class
// served since create(), exact when every allocation is sampled (cache_blocks = 0), and 0 before the first sample;
// requested_bytes is 0. With exact_requested_bytes on, requested_bytes is exact: allocate() keeps each block's
// requested size in its free-list link word while the block is in use, free() subtracts it, and fragmentation is
// 100 * (1 - requested_bytes / in_use_bytes) over the blocks in use.
#pragma once

#include <cstddef>
#include <cstdint>

#include "engine/mem/size_classes.hpp"
#include "platform/os/numa.hpp"

namespace cf::mem {

struct ClassStats {
    std::size_t block_bytes = 0;            // 0 in PoolStats::total
    std::uint64_t capacity_blocks = 0;
    std::uint64_t capacity_bytes = 0;
    std::uint64_t in_use_blocks = 0;        // handed to the application and not yet freed
    std::uint64_t in_use_bytes = 0;         // in_use_blocks * block_bytes
    std::uint64_t requested_bytes = 0;      // exact accounting only: sizes asked for by the blocks in use
    std::uint64_t sampled_allocations = 0;      // allocations in the default statistics' sample (see above)
    std::uint64_t sampled_requested_bytes = 0;  // the sizes they asked for (allocate_class: the block size)
    std::uint64_t cached_blocks = 0;        // free but parked in a thread's cache (out of the shared list)
    std::uint64_t high_water_blocks = 0;    // peak of in_use + cached, see above; total: sum of the class peaks
    std::uint64_t failed_allocations = 0;   // class exhausted; total: also requests of no class (0 B, too large)
    // Default: 100 * (1 - sampled_requested_bytes / (sampled_allocations * block_bytes)), 0 without a sample.
    // Exact accounting: 100 * (1 - requested_bytes / in_use_bytes), 0 when nothing is in use.
    double fragmentation_percent = 0;
};

// One node arena: every class's blocks on one NUMA node.
struct NodeArenaStats {
    int node = 0;                           // the node it serves
    int placement = 0;                      // 0: bound to the node; else the bind's negative errno (-EOPNOTSUPP: no
                                            // NUMA policy here), the memory is then wherever the kernel put it
    std::uint64_t capacity_blocks = 0;
    std::uint64_t capacity_bytes = 0;
    std::uint64_t in_use_blocks = 0;
    std::uint64_t in_use_bytes = 0;
};

struct PoolStats {
    int class_count = 0;
    ClassStats classes[kMaxClasses];
    ClassStats total;
    std::uint64_t out_of_range_requests = 0;  // allocate(0), allocate(> largest class), allocate_class(bad index)
    std::uint64_t rejected_frees = 0;         // free() of a pointer that is not a block start of this pool
    std::size_t region_bytes = 0;             // the one mapping behind everything (arenas, links, caches)
    bool hugepages = false;                   // the mapping is backed by explicit hugepages
    bool small_pages_fallback = false;        // hugepages were asked for but not available: see Pool::warning()
    bool exact_requested = false;             // PoolConfig::exact_requested_bytes: which fragmentation, see above
    int node_arena_count = 0;
    NodeArenaStats node_arenas[platform::kMaxNumaNodes];
};

}  // namespace cf::mem
