// Per-thread caches of free blocks, and how a thread finds its own without registering by hand.
//
// An owner (a Pool) preallocates `max_threads` cache slots, each an array of ClassCache (one per size class).
// A thread that touches the owner for the first time claims a free slot with an atomic (the owner's business) and
// records {owner id, slot} in its thread-local binding table below, preferably in the entry the owner's id picks
// (id % kMaxOwnersPerThread): later calls find it with one compare on thread-local memory, inline, at an index the
// owner computed once. Owner ids are handed out in sequence, so up to kMaxOwnersPerThread owners created one after
// another never share an entry; a binding that had to go elsewhere is found by a scan (out of line). No lock, no
// allocation, no TLS guard (the table is constinit and trivially destructible). The first binding also arms a
// thread-exit hook that hands every slot of the thread back to its owner (which returns the cached blocks to the
// shared free lists), so short-lived threads leak nothing.
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
// handed out first), and the thread's share of the class counters. Only the owner writes; stats() reads the
// counters from any thread (relaxed), blocks[] is the owner's alone. The counters belong to the slot, not to the
// thread: a later thread in the same slot adds to them, so sums over all slots stay right.
struct alignas(64) ClassCache {
    std::atomic<std::uint32_t> count{0};                   // blocks[0, count) are free
    // Exact accounting only (PoolConfig::exact_requested_bytes): requested sizes of the blocks this slot allocated
    // minus those of the blocks it freed, modulo 2^64: one thread's share may be "negative" (it frees what others
    // allocated), the sum over all threads is exact.
    std::atomic<std::uint64_t> requested{0};
    std::atomic<std::uint64_t> sampled{0};                 // allocations that refilled the cache (off the fast path)
    std::atomic<std::uint64_t> sampled_requested{0};       // the sizes they asked for
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

// The owner itself is found by id in the registry when needed (cold), which keeps an entry at 24 bytes.
struct ThreadBinding {
    std::uint64_t owner_id = 0;   // 0: free entry
    ClassCache* caches = nullptr; // the slot's caches, one per class
    std::uint32_t slot = 0;
    std::uint32_t home = 0;       // the owner's: a pool keeps the first arena id of the thread's node here
};

struct ThreadBindings {
    ThreadBinding entries[kMaxOwnersPerThread];
    std::uint64_t refused_owner_id = 0;   // the last owner that had no slot or entry for us: don't retry each call
    bool exiting = false;                 // the exit hook ran: no new bindings (thread_local destructors after it)
};

// Initial-exec: position-independent code (the shared library, and the PIC static library tests and benchmarks
// link) then reads the table at a fixed offset from the thread pointer instead of calling __tls_get_addr, which
// would put a call on the fast path. The price: these ~400 bytes come from the static TLS block, so a program that
// dlopen()s libchronofabric takes them from glibc's reserve for that (512 bytes by default, tunable with
// GLIBC_TUNABLES=glibc.rtld.optional_static_tls); programs linked against it, the usual case, are unaffected.
static_assert(sizeof(ThreadBindings) <= 400);
[[gnu::tls_model("initial-exec")]] inline thread_local constinit ThreadBindings tl_thread_bindings{};

// The entry an owner's binding goes to when it can: the owner computes it once and keeps it next to its id.
constexpr std::uint32_t preferred_binding_entry(std::uint64_t owner_id) noexcept {
    return static_cast<std::uint32_t>(owner_id % kMaxOwnersPerThread);
}

// Hot: this thread's binding for `owner_id` if it sits in its preferred entry (one compare, inline), else nullptr.
inline const ThreadBinding* find_preferred_thread_binding(std::uint64_t owner_id, std::uint32_t entry) noexcept {
    const ThreadBinding& preferred = tl_thread_bindings.entries[entry];
    return preferred.owner_id == owner_id ? &preferred : nullptr;
}

// Cold: a free entry of this thread's table for `owner` to fill once it has claimed a slot, with the exit hook
// armed: the preferred entry when it is free or its owner is dead, else another. nullptr when the thread is
// exiting, was refused by this owner before, or uses kMaxOwnersPerThread live owners already (entries of dead
// owners are recycled first).
ThreadBinding* reserve_thread_binding(const CacheOwner& owner) noexcept;

// Cold: `owner` has no slot for this thread; find_thread_binding keeps missing, reserve_thread_binding says no
// until forget_thread_binding(owner) is called.
void refuse_thread_binding(const CacheOwner& owner) noexcept;

// Cold: drop this thread's entry for `owner` (after the owner released the slot itself), and a refusal.
void forget_thread_binding(const CacheOwner& owner) noexcept;

// This thread's entry for `owner` (any entry), or nullptr.
ThreadBinding* find_thread_binding(const CacheOwner& owner) noexcept;
const ThreadBinding* find_thread_binding(std::uint64_t owner_id) noexcept;

}  // namespace cf::mem
