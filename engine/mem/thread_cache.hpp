// Per-thread caches of free blocks, and how a thread finds its own without registering by hand.
//
// An owner (a Pool) preallocates `max_threads` cache slots, each an array of ClassCache (one per size class).
// A thread that touches the owner for the first time claims a free slot with an atomic (the owner's business) and
// records {owner id, slot} in its thread-local binding table below; later calls find the slot with a compare or
// two on thread-local memory: no lock, no allocation, no TLS guard (the table is constinit and trivially
// destructible). The first binding also arms a thread-exit hook that hands every slot of the thread back to its
// owner (which returns the cached blocks to the shared free lists), so short-lived threads leak nothing.
//
// Owners can die before the threads that used them: owner ids are never reused, so a stale entry never matches,
// and the exit hook only calls owners still in the registry of live owners. That registry and its mutex are
// touched only by create/destroy, the first binding of a thread and thread exit -- never by allocate/free.
#pragma once

#include <atomic>
#include <cstdint>

namespace cf::mem {

inline constexpr std::uint32_t kMaxCacheBlocks = 64;   // largest per-thread, per-class cache
inline constexpr int kMaxOwnersPerThread = 16;         // pools one thread can hold caches of at the same time

// Counters with one writer (the thread that owns the cache) read by stats() from any thread: a relaxed load and
// store, no locked read-modify-write.
inline void bump(std::atomic<std::uint64_t>& counter, std::uint64_t by = 1) noexcept {
    counter.store(counter.load(std::memory_order_relaxed) + by, std::memory_order_relaxed);
}

// One thread's cache of one size class: a LIFO stack of free blocks (the most recently freed, cache-warm block is
// handed out first), and the thread's share of the class counters. Only the owner writes; stats() reads count,
// requested and failed from any thread (relaxed), blocks[] is the owner's alone.
struct alignas(64) ClassCache {
    std::atomic<std::uint32_t> count{0};                   // blocks[0, count) are free
    // Requested sizes of the blocks this thread allocated minus those of the blocks it freed, modulo 2^64: one
    // thread's share may be "negative" (it frees what others allocated), the sum over all threads is exact.
    std::atomic<std::uint64_t> requested{0};
    std::atomic<std::uint64_t> failed{0};
    void* blocks[kMaxCacheBlocks] = {};
};

// Something that hands out cache slots (a pool), as the thread-exit hook sees it.
struct CacheOwner {
    std::uint64_t id = 0;                                   // assigned by register_cache_owner, never reused
    // Returns the slot's cached blocks and frees the slot; called on the thread that holds it.
    void (*release_slot)(void* context, std::uint32_t slot) noexcept = nullptr;
    void* context = nullptr;
    CacheOwner* previous = nullptr;                         // the registry's list of live owners
    CacheOwner* next = nullptr;
};

// Cold: give `owner` a fresh id and make it visible to thread-exit hooks / take it away. Unregistering waits for
// a hook that is releasing one of the owner's slots right now, so the owner may be destroyed afterwards.
void register_cache_owner(CacheOwner& owner) noexcept;
void unregister_cache_owner(CacheOwner& owner) noexcept;

struct ThreadBinding {
    std::uint64_t owner_id = 0;   // 0: free entry
    CacheOwner* owner = nullptr;
    ClassCache* caches = nullptr; // the slot's caches, one per class
    std::uint32_t slot = 0;
};

struct ThreadBindings {
    ThreadBinding entries[kMaxOwnersPerThread];
    std::uint64_t refused_owner_id = 0;   // the last owner that had no slot or entry for us: don't retry each call
    bool exiting = false;                 // the exit hook ran: no new bindings (thread_local destructors after it)
};

inline thread_local constinit ThreadBindings tl_thread_bindings{};

// Hot: this thread's caches for `owner_id` if they are in the first entry of its table (a thread's first pool:
// one compare), else nullptr.
inline ClassCache* find_first_thread_caches(std::uint64_t owner_id) noexcept {
    const ThreadBinding& first = tl_thread_bindings.entries[0];
    return first.owner_id == owner_id ? first.caches : nullptr;
}

// This thread's caches for `owner_id` in any entry, or nullptr when the thread has none yet (or cannot have any).
ClassCache* find_thread_caches(std::uint64_t owner_id) noexcept;

// Cold: a free entry of this thread's table for `owner` to fill once it has claimed a slot, with the exit hook
// armed. nullptr when the thread is exiting, was refused by this owner before, or uses kMaxOwnersPerThread live
// owners already (entries of dead owners are recycled first).
ThreadBinding* reserve_thread_binding(const CacheOwner& owner) noexcept;

// Cold: `owner` has no slot for this thread; find_thread_caches keeps missing, reserve_thread_binding says no
// until forget_thread_binding(owner) is called.
void refuse_thread_binding(const CacheOwner& owner) noexcept;

// Cold: drop this thread's entry for `owner` (after the owner released the slot itself), and a refusal.
void forget_thread_binding(const CacheOwner& owner) noexcept;

// This thread's entry for `owner`, or nullptr.
ThreadBinding* find_thread_binding(const CacheOwner& owner) noexcept;

}  // namespace cf::mem
