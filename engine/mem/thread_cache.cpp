#include "engine/mem/thread_cache.hpp"

#include <mutex>

namespace cf::mem {
namespace {

// The live owners. std::mutex has a constexpr constructor and a trivial destructor here, so the registry works
// during static initialisation and in the main thread's exit hooks (which run before static destructors).
std::mutex registry_mutex;
CacheOwner* registry_head = nullptr;
std::uint64_t registry_next_id = 1;

// The live owner with this id, or nullptr (ids are never reused). Under registry_mutex.
CacheOwner* live_owner(std::uint64_t id) {
    for (CacheOwner* live = registry_head; live != nullptr; live = live->next) {
        if (live->id == id) return live;
    }
    return nullptr;
}

// Runs when the thread exits (after it first bound a cache): gives every slot back while holding the registry
// mutex, so an owner cannot be destroyed halfway through.
struct ExitHook {
    bool armed = false;
    ~ExitHook() {
        ThreadBindings& bindings = tl_thread_bindings;
        bindings.exiting = true;
        const std::lock_guard lock(registry_mutex);
        for (ThreadBinding& entry : bindings.entries) {
            if (CacheOwner* owner = entry.owner_id != 0 ? live_owner(entry.owner_id) : nullptr) {
                owner->release_slot(owner->context, entry.slot);
            }
            entry = {};
        }
    }
};

void arm_exit_hook() {
    // Constructed on the first call in each thread, which registers its destructor with the C++ runtime.
    static thread_local ExitHook hook;
    hook.armed = true;
}

}  // namespace

void register_cache_owner(CacheOwner& owner) noexcept {
    const std::lock_guard lock(registry_mutex);
    owner.id = registry_next_id++;
    owner.previous = nullptr;
    owner.next = registry_head;
    if (registry_head != nullptr) registry_head->previous = &owner;
    registry_head = &owner;
}

void unregister_cache_owner(CacheOwner& owner) noexcept {
    const std::lock_guard lock(registry_mutex);
    if (owner.previous != nullptr) owner.previous->next = owner.next;
    else if (registry_head == &owner) registry_head = owner.next;
    if (owner.next != nullptr) owner.next->previous = owner.previous;
    owner.previous = owner.next = nullptr;
}

const ThreadBinding* find_thread_binding(std::uint64_t owner_id) noexcept {
    for (const ThreadBinding& entry : tl_thread_bindings.entries) {
        if (entry.owner_id == owner_id) return &entry;
    }
    return nullptr;
}

ThreadBinding* reserve_thread_binding(const CacheOwner& owner) noexcept {
    ThreadBindings& bindings = tl_thread_bindings;
    if (bindings.exiting || bindings.refused_owner_id == owner.id) return nullptr;
    // The preferred entry keeps the owner on the inline path; one of a dead owner is recycled for it.
    ThreadBinding& preferred = bindings.entries[preferred_binding_entry(owner.id)];
    if (preferred.owner_id != 0) {
        const std::lock_guard lock(registry_mutex);
        if (live_owner(preferred.owner_id) == nullptr) preferred = {};
    }
    if (preferred.owner_id == 0) {
        arm_exit_hook();
        return &preferred;
    }
    for (int pass = 0; pass < 2; ++pass) {
        for (ThreadBinding& entry : bindings.entries) {
            if (entry.owner_id == 0) {
                arm_exit_hook();
                return &entry;
            }
        }
        if (pass == 0) {
            // Full: recycle the entries of owners destroyed since (their slots died with them).
            const std::lock_guard lock(registry_mutex);
            for (ThreadBinding& entry : bindings.entries) {
                if (live_owner(entry.owner_id) == nullptr) entry = {};
            }
        }
    }
    bindings.refused_owner_id = owner.id;
    return nullptr;
}

void refuse_thread_binding(const CacheOwner& owner) noexcept { tl_thread_bindings.refused_owner_id = owner.id; }

void forget_thread_binding(const CacheOwner& owner) noexcept {
    ThreadBindings& bindings = tl_thread_bindings;
    if (bindings.refused_owner_id == owner.id) bindings.refused_owner_id = 0;
    for (ThreadBinding& entry : bindings.entries) {
        if (entry.owner_id == owner.id) entry = {};
    }
}

ThreadBinding* find_thread_binding(const CacheOwner& owner) noexcept {
    for (ThreadBinding& entry : tl_thread_bindings.entries) {
        if (entry.owner_id == owner.id) return &entry;
    }
    return nullptr;
}

}  // namespace cf::mem
