// Static memory pool: fixed-size blocks in size classes, all memory reserved and pre-faulted by create(), nothing
// mapped, grown or locked afterwards.
//
// Layout. create() reserves one region (explicit hugepages when free, else 4 KiB pages with THP advice and a
// warning), places its parts on NUMA nodes (below), then pre-faults it. It is carved into:
//     node arena 0: [class 0 blocks][class 1 blocks]...[links class 0][links class 1]...[shared lists]
//     node arena 1: the same, for the next node in use ...
//     common:       [segment -> arena table][slot flags][arena descriptors][thread caches: max_threads x classes]
// Each node arena holds every class with the configured number of blocks (budgets are per node); every class's
// blocks start on a segment, and a power-of-two class's on a multiple of its block size. A block carries no
// header. free(p) finds its arena with arithmetic: (p - base) >> segment_shift indexes a table of 8-byte entries
// (segments are >= 4 KiB and a class never shares one, so each belongs to one arena id = node arena * kMaxClasses
// + class). For a power-of-two class the entry also says where block starts lie (a multiple of the block size,
// below a limit inside the segment), so free() checks the pointer with a mask and a compare; other classes and
// anything that fails go to the full check out of line, where the block index inside the arena is a shift or a
// multiply-high by a precomputed reciprocal of the block size (exact for offsets below 2^64 / block size, hence
// the 16 TiB limit). The class and the node need neither a search nor a hash.
//
// NUMA. The topology (platform/os/numa.hpp; a test passes a fake one) says how many nodes there are and which node
// the calling thread runs on. The pool keeps one node arena per node in use (PoolConfig::numa_nodes, default every
// node: one arena on a single-node machine) and binds each arena's memory to its node before pre-faulting it
// (mbind MPOL_PREFERRED; the common part goes to the creating thread's node). A thread's first call records the
// node it runs on: it allocates from that node's arena from then on (pin threads before their first call; a node
// without an arena uses arena 0). A block freed on a thread of another node goes straight back to the shared list
// of the arena it came from (one CAS, out of line), so every arena's blocks stay on its node. An arena that is
// exhausted does not borrow from another node's.
//
// Shared free lists. Each arena has a Treiber stack of block *indices*: the head is one 64-bit word
// {low 32: index of the top block or kNil, high 32: version tag}, and links[i] holds the index below block i.
// Every successful CAS on the head bumps the tag, so a thread that read the head, walked the links and was
// overtaken by pops and pushes of the same blocks fails its CAS instead of installing a stale link (ABA); an ABA
// would need exactly 2^32 head updates between one thread's load and its CAS. Batches move in one CAS: a push
// links a chain first and installs its first index; a pop walks up to `batch` links from the head it loaded and
// installs the index after the last one. The walk may read links of blocks another thread just took (the word then
// holds an allocated tag and size, a cached block's kNil, or a link of someone else's chain); it is bounded by the
// batch, never leaves the link array (indices >= count end it), and its result is discarded by the failing CAS.
// Indices instead of pointers keep the head one word wide (no 128-bit CAS) and the lists position-independent.
// Memory order: a push stores the links (relaxed), then CASes the head with release; a pop loads the head with
// acquire (and reloads with acquire on CAS failure), so it sees the links of the chain it walks and the contents
// the freeing thread wrote into the blocks. Every head update is a read-modify-write, so the release sequence of
// each earlier push extends through later ones.
//
// Thread caches (thread_cache.hpp). A thread's first call claims one of `max_threads` preallocated slots with an
// atomic and keeps it until it exits (or calls release_thread_cache()); at exit its cached blocks go back to the
// shared lists. allocate() pops from the thread's LIFO cache; an empty cache refills with one batch pop. free()
// pushes onto the *freeing* thread's cache when the block is of its node; a full cache flushes one batch with one
// CAS. So a block allocated on thread A and freed on thread B travels B's cache -> shared list -> whoever refills
// next: lock-free, and no thread ever touches another thread's cache. A thread that finds no free slot (more than
// max_threads threads) or no free entry in its binding table (kMaxOwnersPerThread pools) works directly on the
// shared lists, one CAS per call.
//
// Exhaustion. A class is exhausted for a thread when its cache and its node arena's shared list are both empty:
// allocate() returns nullptr and counts a failed allocation; the pool never grows. Free blocks parked in *other*
// threads' caches are not stolen, so a class can report exhaustion while up to (threads - 1) * cache_blocks of its
// blocks sit in other caches: size budgets with that slack, or set cache_blocks = 0 for exact-capacity classes.
//
// Statistics (pool_stats.hpp). By default the fast path keeps no statistics: what decides exhaustion is counted per
// batch on the shared lists, and fragmentation is estimated from per-class counters of a sample taken off the fast
// path (the allocation that finds its cache empty, about one per batch). PoolConfig::exact_requested_bytes (a
// run-time option, off by default) keeps the exact requested bytes of the blocks in use instead: allocate() adds
// the size to the slot's share, free() reads it back from the block's link word (below) and subtracts it, and
// fragmentation is over the blocks in use. It is a run-time flag rather than a build option because off it costs
// one predicted branch on a field in the pool's first cache line, and a flag lets one build (and the tests) run
// both ways without the build-wide rule a macro that changes inline code needs (see CF_POOL_CHECKED).
//
// Block state (PoolConfig::detect_double_free, off by default; the engine's pool, which the C API frees into, has
// it). While a block is in use its link word is idle: allocate() stores kAllocated | requested size there (the
// top bit set), every free block holds a link below 2^31 (an index, or kNil): in a shared list its successor, in a
// thread cache kNil, which free() stores on its way into the cache. So "allocated" is one bit every path keeps
// exact. free_checked() moves a block from allocated to free with one CAS on that word: of two frees of one block
// (a double free, or two threads racing) exactly one wins, wherever the block goes next (cache or shared list).
// It is an option because the two stores sit on the fast path's critical chain: measured with cf-latency's alloc
// scenario, an alloc+free pair took about twice as long with them. Off, a block's link word is left as it was
// (the shared lists' walks tolerate stale links; the versioned CAS refuses them), and free_checked() still refuses
// foreign, interior and misaligned pointers but cannot tell a double free. Exact accounting keeps the words too.
// free() stays unchecked (a store, no CAS) unless the build defines CF_POOL_CHECKED=1 (meson
// -Dpool_checked=true): then free() is free_checked() with the status dropped (the rejection is counted in
// stats().rejected_frees) and every pool keeps block states.
//
// Hot paths (allocate, allocate_class, free) are inline, noexcept, allocation-, lock- and syscall-free once the
// thread holds its cache: the thread finds its binding for this pool with one compare at an index the pool
// computed at create(), and every branch off the fast path (a thread's first call, an empty or full cache, a
// block of another node, a thread without a cache) is a tail jump to an out-of-line function, so the fast path
// makes no call. The first call of a thread on a pool binds it (cold: the node query, a scan of the slot flags
// with CAS, and once per thread the C++ runtime's registration of the thread-exit hook, which may allocate). The
// pool must outlive every call on it; destroying it while threads still hold caches is fine (their caches die with
// it). Under AddressSanitizer free blocks are poisoned, so use-after-free and overruns past the requested size
// report.
#pragma once

#include <atomic>
#include <bit>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <vector>

#include "engine/mem/pool_stats.hpp"
#include "engine/mem/size_classes.hpp"
#include "engine/mem/thread_cache.hpp"
#include "platform/os/memory.hpp"
#include "platform/os/numa.hpp"

#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/asan_interface.h>
#endif

// A project-wide macro, never set per file: every translation unit must inline the same Pool::free.
#ifndef CF_POOL_CHECKED
#define CF_POOL_CHECKED 0
#endif

namespace cf::mem {

// AddressSanitizer: free blocks are poisoned, a block in use is open up to the size asked for. No-ops otherwise.
inline void poison_block(void* block, std::size_t bytes) noexcept {
#if defined(__SANITIZE_ADDRESS__)
    __asan_poison_memory_region(block, bytes);
#else
    (void)block;
    (void)bytes;
#endif
}
inline void unpoison_block(void* block, std::size_t bytes) noexcept {
#if defined(__SANITIZE_ADDRESS__)
    __asan_unpoison_memory_region(block, bytes);
#else
    (void)block;
    (void)bytes;
#endif
}

struct PoolClassConfig {
    std::size_t block_bytes = 0;    // a multiple of 64, classes strictly ascending
    std::size_t blocks = 0;         // how many blocks (per node arena); 0: budget_bytes / block_bytes
    std::size_t budget_bytes = 0;
};

struct PoolConfig {
    std::vector<PoolClassConfig> classes;
    std::uint32_t max_threads = 64;       // threads that can hold a cache at the same time
    std::uint32_t cache_blocks = 32;      // per thread and class, at most kMaxCacheBlocks; 0: no thread caches
    std::uint32_t batch_blocks = 0;       // refill/flush size, 1..cache_blocks; 0: cache_blocks / 2 (at least 1)
    bool prefer_hugepages = true;
    // Keep the requested bytes of the blocks in use exactly (free() reads each block's size back); off: stats
    // report fragmentation from per-class allocation counters (see the top).
    bool exact_requested_bytes = false;
    // Keep each block's state (allocated or free) so that free_checked() refuses a double free wherever the block
    // sits; off, free_checked() still refuses foreign, interior and misaligned pointers (see Block state at the
    // top). The engine's pool, which the C API's cf_pool_free frees into, always has it.
    bool detect_double_free = false;
    // Nodes that get an arena, bit n for node n (< kMaxNumaNodes); 0: every node of the topology.
    std::uint64_t numa_nodes = 0;
    // The machine's nodes; nullptr: platform::system_numa_topology(). Tests pass a fake one. Must outlive create().
    const platform::NumaTopology* topology = nullptr;

    // The default classes (powers of two 64 B .. 64 KiB), each with the same byte budget.
    static PoolConfig powers_of_two(std::size_t budget_bytes_per_class) {
        PoolConfig config;
        for (int i = 0; i < kDefaultClassCount; ++i) {
            config.classes.push_back({default_class_bytes(i), 0, budget_bytes_per_class});
        }
        return config;
    }
};

class Pool {
public:
    static constexpr std::uint32_t kMaxBlocksPerClass = (std::uint32_t{1} << 31) - 2;   // indices and kNil < 2^31
    static constexpr std::uint32_t kMaxThreads = 65536;
    static constexpr bool kCheckedFree = CF_POOL_CHECKED != 0;   // free() is free_checked() (see the top)

    // Validates the config, reserves the region, places the node arenas, pre-faults, builds the free lists. 0, or
    // -EINVAL (bad config), -ENOMEM (size overflow, no memory) or map_region's error, with last_error_message()
    // saying why. Placement is best effort: stats().node_arenas[i].placement says how it went.
    static int create(const PoolConfig& config, std::unique_ptr<Pool>& pool) noexcept;

    ~Pool();
    Pool(const Pool&) = delete;
    Pool& operator=(const Pool&) = delete;

    // A 64-byte aligned block of at least `bytes` from the calling thread's node arena, or nullptr (counted) when
    // that class is exhausted there, or for 0 bytes and more than the largest class.
    [[nodiscard]] void* allocate(std::size_t bytes) noexcept {
        const int class_index = classes_.class_of(bytes);
        if (class_index < 0) [[unlikely]] return reject_request();
        return take(static_cast<std::uint32_t>(class_index), static_cast<std::uint32_t>(bytes));
    }

    // A block of class `class_index` (no size lookup), or nullptr (counted) when exhausted or a bad index.
    [[nodiscard]] void* allocate_class(int class_index) noexcept {
        const auto index = static_cast<unsigned>(class_index);
        // The second test is implied by the first (class_count_ <= kMaxClasses); it keeps the optimiser from
        // warning about class_bytes_[1000000] when a caller passes a constant.
        if (index >= static_cast<unsigned>(class_count_) || index >= unsigned{kMaxClasses}) [[unlikely]] {
            return reject_request();
        }
        return take(index, class_bytes_[index]);
    }

    // Returns a block from allocate*() of this pool, from any thread. nullptr is a no-op; a pointer outside the
    // arenas or not at a block start is ignored and counted (stats().rejected_frees). A double free is undefined,
    // except in a CF_POOL_CHECKED build, where free() is free_checked() and ignores (and counts) it.
    void free(void* block) noexcept {
        if constexpr (kCheckedFree) {
            (void)free_checked(block);
        } else {
            const std::uintptr_t offset = reinterpret_cast<std::uintptr_t>(block) - base_;
            // nullptr lands here too (its offset is -base_): a no-op, not counted, and no test on the fast path.
            if (offset >= span_bytes_) [[unlikely]] return reject_outside(block);
            // A block start of a power-of-two class, read off its segment's entry without touching the arena
            // descriptor; everything else (other classes, padding, interior pointers, tracked pools) is checked
            // out of line.
            const SegmentEntry entry = segments_[offset >> segment_shift_];
            const std::uintptr_t block_mask = (std::uintptr_t{1} << entry.block_shift) - 1;
            if ((offset & segment_mask_) >= entry.limit || (offset & block_mask) != 0 || tracks_blocks_)
                [[unlikely]] {
                return give_checking(block, offset);
            }
            put_back<false>(entry.arena, block, 0);
        }
    }

    // free() that refuses what it cannot take: 0 (also for nullptr), or -EINVAL, counted in
    // stats().rejected_frees, with last_error_message() saying why, for a pointer outside this pool's arenas
    // (another pool's block, say), inside or misaligned in a block, and, when the pool keeps block states
    // (detect_double_free), a block that is not allocated (a double free, even while the block sits in a thread
    // cache, or a block never handed out). Of two threads freeing the same block at once exactly one gets 0. Out
    // of line: a CAS and the checks cost a few nanoseconds (the C API's cf_pool_free is this).
    [[nodiscard]] int free_checked(void* block) noexcept;

    int class_of(std::size_t bytes) const noexcept { return classes_.class_of(bytes); }
    int class_count() const noexcept { return class_count_; }
    std::size_t class_block_bytes(int class_index) const noexcept { return class_bytes_[class_index]; }
    std::uint32_t class_capacity(int class_index) const noexcept {   // per node arena
        return arenas_[class_index].count;
    }
    bool owns(const void* block) const noexcept {
        return reinterpret_cast<std::uintptr_t>(block) - base_ < span_bytes_;
    }

    // NUMA: the node arenas (one per node in use), the node each serves, and which arena a block of this pool
    // belongs to (-1 for anything else, padding included).
    int node_arena_count() const noexcept { return node_arena_count_; }
    int node_of_arena(int arena) const noexcept { return arena_node_[arena]; }
    int arena_of(const void* block) const noexcept;
    bool exact_requested_bytes() const noexcept { return exact_requested_; }

    // A consistent-enough snapshot at any time, exact once no thread is mid-operation (see pool_stats.hpp).
    void stats(PoolStats& out) const noexcept;

    // Why the pool is not on hugepages although they were preferred ("" otherwise). For the caller to print.
    const char* warning() const noexcept { return warning_; }
    bool hugepages() const noexcept { return region_.hugepages; }

    // Hands the calling thread's cache slot back now (cached blocks return to the shared lists) instead of at
    // thread exit. The next call from this thread claims a slot again (and looks up its node again).
    void release_thread_cache() noexcept;

private:
    static constexpr std::uint32_t kNil = kMaxBlocksPerClass + 1;          // ends a list; a cached block's link
    static constexpr std::uint32_t kAllocated = std::uint32_t{1} << 31;    // link word of a block in use: | size
    static constexpr std::uint16_t kNoArena = 0xffff;
    static_assert(std::has_single_bit(static_cast<unsigned>(kMaxClasses)), "arena id = node arena * 32 + class");
    static_assert(std::uint32_t{platform::kMaxNumaNodes} * kMaxClasses < kNoArena);

    // The contended part of one class of one node arena: its own cache lines, on the arena's node.
    struct alignas(64) SharedList {
        std::atomic<std::uint64_t> head{0};          // {index, tag}
        std::atomic<std::int64_t> outstanding{0};    // blocks out of this list (in use + cached), batch granularity
        std::atomic<std::int64_t> high_water{0};
        // Calls of threads without a cache (several writers: fetch_add / fetch_sub).
        std::atomic<std::uint64_t> requested{0};
        std::atomic<std::uint64_t> sampled{0};
        std::atomic<std::uint64_t> sampled_requested{0};
        std::atomic<std::uint64_t> failed{0};
    };

    // What free() needs of the segment a pointer falls in. A block of a power-of-two class starts at an offset
    // from base_ that is a multiple of its size (create() aligns those arenas), so a pointer is a block start of
    // this segment's arena when offset % 2^block_shift == 0 and it lies below `limit` bytes into the segment (the
    // last block start there + 1). limit 0: no fast answer (no arena, padding, a class of another size).
    struct SegmentEntry {
        std::uint16_t arena = kNoArena;
        std::uint8_t block_shift = 0;
        std::uint8_t reserved = 0;
        std::uint32_t limit = 0;
    };

    // One class of one node arena (id = node arena * kMaxClasses + class).
    struct Arena {
        std::uintptr_t offset = 0;           // of its first block, from base_
        std::uint32_t block_bytes = 0;
        std::uint32_t count = 0;
        std::uint64_t reciprocal = 0;        // floor(2^64 / block_bytes) + 1: index = (offset * reciprocal) >> 64
        std::atomic<std::uint32_t>* links = nullptr;
        SharedList* list = nullptr;
        std::uint32_t shift = 0;             // log2(block_bytes) for a power of two (the default classes), else 0

        // A shift for power-of-two blocks (a predicted branch: shorter than the multiply on the free path's
        // dependency chain), the multiply-high otherwise.
        std::uint32_t index_of(std::uintptr_t arena_offset) const noexcept {
            if (shift != 0) [[likely]] return static_cast<std::uint32_t>(arena_offset >> shift);
            __extension__ using U128 = unsigned __int128;
            return static_cast<std::uint32_t>((U128{arena_offset} * reciprocal) >> 64);
        }
    };

    Pool() noexcept = default;

    static constexpr std::uint32_t class_of_arena(std::uint32_t arena_id) noexcept {
        return arena_id & (kMaxClasses - 1);
    }

    // The hot paths touch only this thread's cache, found in the binding table's entry this pool prefers;
    // everything else (a thread's first call, an empty or full cache, a block of another node, a thread without a
    // cache or whose binding sits in another entry) is one out-of-line call in tail position, so the fast path
    // saves no registers and makes no call.
    void* take(std::uint32_t class_index, std::uint32_t requested) noexcept {
        const ThreadBinding* binding = find_preferred_thread_binding(id_, binding_entry_);
        if (binding == nullptr) [[unlikely]] return take_slow(class_index, requested);
        ClassCache& cache = binding->caches[class_index];
        const std::uint32_t count = cache.count.load(std::memory_order_relaxed);
        if (count == 0) [[unlikely]] return take_slow(class_index, requested);
        void* block = pop_cached(cache, count);
        if (tracks_blocks_) [[unlikely]] return track_taken(binding->home + class_index, cache, block, requested);
        unpoison_block(block, requested);
        return block;
    }

    // The top block leaves a cache holding `count` (> 0).
    static void* pop_cached(ClassCache& cache, std::uint32_t count) noexcept {
        void* block = cache.blocks[--count];
        cache.count.store(count, std::memory_order_relaxed);
        return block;
    }

    // A free block goes onto this thread's cache (or, cold, the shared list of its arena). With exact accounting
    // `requested` leaves the slot's share (the slow path reads the pool's flag itself).
    template <bool kExactAccounting>
    void put_back(std::uint32_t arena_id, void* block, std::uint32_t requested) noexcept {
        const std::uint32_t class_index = class_of_arena(arena_id);
        poison_block(block, class_bytes_[class_index]);
        const ThreadBinding* binding = find_preferred_thread_binding(id_, binding_entry_);
        if (binding == nullptr) [[unlikely]] return give_slow(arena_id, block, requested);
        // Another node arena's block (home is the first arena id of this thread's node arena).
        if ((arena_id & ~std::uint32_t{kMaxClasses - 1}) != binding->home) [[unlikely]] {
            return give_slow(arena_id, block, requested);
        }
        ClassCache& cache = binding->caches[class_index];
        const std::uint32_t count = cache.count.load(std::memory_order_relaxed);
        if (count == cache_blocks_) [[unlikely]] return give_slow(arena_id, block, requested);
        push_cached(cache, count, block);
        if constexpr (kExactAccounting) bump(cache.requested, std::uint64_t{0} - requested);   // modulo 2^64
    }

    static void push_cached(ClassCache& cache, std::uint32_t count, void* block) noexcept {
        cache.blocks[count] = block;
        cache.count.store(count + 1, std::memory_order_relaxed);
    }

    // Out of line: the block-state word (and exact accounting) of pools that keep them, and free()'s full check.
    void* track_taken(std::uint32_t arena_id, ClassCache& cache, void* block, std::uint32_t requested) noexcept;
    void give_checking(void* block, std::uintptr_t offset) noexcept;

    // Where an offset from base_ falls: a block start (no), or why not. `place` is filled as far as known.
    enum class Misplaced { no, outside, padding, past_end, inside };
    struct BlockPlace {
        std::uint32_t arena_id = kNoArena;
        std::uint32_t index = 0;
        std::uintptr_t inside = 0;   // bytes past the block start
    };
    Misplaced locate(std::uintptr_t offset, BlockPlace& place) const noexcept;
    void put_back_tracked(std::uint32_t arena_id, void* block, std::uint32_t requested) noexcept;

    // Cold paths (pool.cpp).
    void* take_slow(std::uint32_t class_index, std::uint32_t requested) noexcept;
    void give_slow(std::uint32_t arena_id, void* block, std::uint32_t requested) noexcept;
    const ThreadBinding* thread_binding_or_bind() noexcept;
    const ThreadBinding* bind_thread() noexcept;
    std::uint32_t home_arena_of_current_thread() const noexcept;   // first arena id of the thread's node arena
    std::uint32_t refill(std::uint32_t arena_id, ClassCache& cache) noexcept;                        // count
    std::uint32_t flush(std::uint32_t arena_id, ClassCache& cache, std::uint32_t blocks) noexcept;   // count
    void* take_uncached(std::uint32_t arena_id, std::uint32_t requested) noexcept;
    void give_uncached(std::uint32_t arena_id, void* block, std::uint32_t requested) noexcept;
    void* reject_request() noexcept;
    void reject_free() noexcept;
    void reject_outside(const void* block) noexcept;   // reject_free(), except for nullptr
    std::uint32_t pop_chain(std::uint32_t arena_id, void** blocks, std::uint32_t most) noexcept;
    void push_chain(std::uint32_t arena_id, void* const* blocks, std::uint32_t count) noexcept;
    static void release_slot(void* pool, std::uint32_t slot) noexcept;

    // Read-mostly, together at the front: everything the fast paths read is in the first cache line.
    std::uintptr_t base_ = 0;
    std::uint64_t id_ = 0;                             // owner_.id, next to the other hot fields
    std::uintptr_t span_bytes_ = 0;                    // the node arenas: [base_, base_ + span_bytes_)
    const SegmentEntry* segments_ = nullptr;           // by offset >> segment_shift_
    const Arena* arenas_ = nullptr;                    // node arena * kMaxClasses + class
    int segment_shift_ = 0;
    std::uint32_t segment_mask_ = 0;                   // segment bytes - 1 (segments are at most 2 GiB)
    std::uint32_t binding_entry_ = 0;                  // preferred_binding_entry(id_)
    std::uint32_t cache_blocks_ = 0;
    int class_count_ = 0;
    bool exact_requested_ = false;
    bool tracks_blocks_ = false;                       // detect_double_free or exact_requested_: see Block state
    SizeClassMap classes_;                             // its header (allocate's lookup) starts the next line
    std::uint32_t class_bytes_[kMaxClasses] = {};

    std::uint32_t batch_blocks_ = 0;
    std::uint32_t max_threads_ = 0;
    int node_arena_count_ = 0;
    ClassCache* caches_ = nullptr;                     // max_threads_ x class_count_
    // max_threads_ flags: 0 free, else 1 + the node arena of the thread that holds the slot.
    std::atomic<std::uint32_t>* slot_owned_ = nullptr;
    Arena* arena_table_ = nullptr;                     // arenas_, writable (create)
    platform::NumaTopology topology_;
    std::uint8_t arena_of_node_[platform::kMaxNumaNodes] = {};   // a node without an arena: 0
    std::uint8_t arena_node_[platform::kMaxNumaNodes] = {};
    int placement_[platform::kMaxNumaNodes] = {};                // per node arena: bind's status

    CacheOwner owner_;
    platform::MappedRegion region_;
    bool small_pages_fallback_ = false;
    char warning_[200] = "";

    alignas(64) std::atomic<std::uint64_t> out_of_range_{0};
    std::atomic<std::uint64_t> rejected_frees_{0};
};

}  // namespace cf::mem
