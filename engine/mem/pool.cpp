#include "engine/mem/pool.hpp"

#include <cerrno>
#include <cstdio>
#include <new>

#include "platform/os/last_error.hpp"

namespace cf::mem {
namespace {

constexpr int kMinSegmentShift = 12;              // 4 KiB
constexpr std::size_t kMaxSegments = 4096;        // segment table entries (plus one padding segment per class)
// Arena offsets must stay below 2^64 / kMaxBlockBytes for Arena::index_of's reciprocal to be exact.
constexpr std::size_t kMaxArenaBytes = std::size_t{1} << 44;
static_assert(kMaxArenaBytes - 1 <= UINT64_MAX / kMaxBlockBytes);

// a += b, a * b and round-up in size_t, reporting overflow instead of wrapping.
bool add_to(std::size_t& a, std::size_t b) { return !__builtin_add_overflow(a, b, &a); }
bool multiply(std::size_t a, std::size_t b, std::size_t& out) { return !__builtin_mul_overflow(a, b, &out); }
bool round_up(std::size_t& value, std::size_t multiple) {
    if (!add_to(value, multiple - 1)) return false;
    value -= value % multiple;
    return true;
}

std::uint64_t pack(std::uint32_t index, std::uint32_t tag) { return std::uint64_t{tag} << 32 | index; }
std::uint32_t index_of_head(std::uint64_t head) { return static_cast<std::uint32_t>(head); }
std::uint32_t tag_of_head(std::uint64_t head) { return static_cast<std::uint32_t>(head >> 32); }

std::uint64_t load(const std::atomic<std::uint64_t>& counter) { return counter.load(std::memory_order_relaxed); }

// a - b of two counters read at slightly different times: never below zero.
std::uint64_t difference(std::uint64_t a, std::uint64_t b) { return a > b ? a - b : 0; }

double fragmentation_percent(std::uint64_t requested, std::uint64_t in_use_bytes) {
    if (in_use_bytes == 0) return 0;
    return 100.0 * (1.0 - static_cast<double>(requested) / static_cast<double>(in_use_bytes));
}

}  // namespace

int Pool::create(const PoolConfig& config, std::unique_ptr<Pool>& pool) noexcept {
    pool.reset();
    if (config.classes.empty() || config.classes.size() > static_cast<std::size_t>(kMaxClasses)) {
        return platform::fail(EINVAL, "pool: %zu size classes (1..%d allowed)", config.classes.size(), kMaxClasses);
    }
    const int class_count = static_cast<int>(config.classes.size());
    if (config.max_threads == 0 || config.max_threads > kMaxThreads) {
        return platform::fail(EINVAL, "pool: max_threads %u (1..%u allowed)", config.max_threads, kMaxThreads);
    }
    if (config.cache_blocks > kMaxCacheBlocks) {
        return platform::fail(EINVAL, "pool: cache_blocks %u (0..%u allowed)", config.cache_blocks, kMaxCacheBlocks);
    }
    std::uint32_t batch = config.batch_blocks;
    if (config.cache_blocks == 0) {
        batch = 1;
    } else if (batch == 0) {
        batch = config.cache_blocks / 2 > 0 ? config.cache_blocks / 2 : 1;
    } else if (batch > config.cache_blocks) {
        return platform::fail(EINVAL, "pool: batch_blocks %u is larger than cache_blocks %u", batch,
                              config.cache_blocks);
    }

    std::unique_ptr<Pool> created(new (std::nothrow) Pool());
    if (!created) return platform::fail(ENOMEM, "pool: out of memory for the pool object");
    Pool& p = *created;

    std::size_t sizes[kMaxClasses] = {};
    for (int i = 0; i < class_count; ++i) sizes[i] = config.classes[i].block_bytes;
    if (const int status = p.classes_.init(sizes, class_count); status != 0) return status;

    // Layout, with every size computation checked: a budget near SIZE_MAX must fail, not wrap.
    std::size_t arena_bytes[kMaxClasses];
    std::size_t raw_bytes = 0;
    for (int i = 0; i < class_count; ++i) {
        const PoolClassConfig& entry = config.classes[i];
        const std::size_t blocks = entry.blocks != 0 ? entry.blocks : entry.budget_bytes / entry.block_bytes;
        if (blocks == 0) {
            return platform::fail(EINVAL, "pool: class %d (%zu B) has no blocks: give blocks or a budget of at "
                                  "least one block", i, entry.block_bytes);
        }
        if (blocks > kMaxBlocksPerClass) {
            return platform::fail(EINVAL, "pool: class %d (%zu B) has %zu blocks (at most %u)", i, entry.block_bytes,
                                  blocks, kMaxBlocksPerClass);
        }
        p.arenas_[i].block_bytes = static_cast<std::uint32_t>(entry.block_bytes);
        p.arenas_[i].count = static_cast<std::uint32_t>(blocks);
        p.arenas_[i].reciprocal = UINT64_MAX / entry.block_bytes + 1;
        if (!multiply(blocks, entry.block_bytes, arena_bytes[i]) || !add_to(raw_bytes, arena_bytes[i])) {
            return platform::fail(ENOMEM, "pool: class %d (%zu B x %zu) overflows the address space", i,
                                  entry.block_bytes, blocks);
        }
    }
    int segment_shift = kMinSegmentShift;
    while ((raw_bytes >> segment_shift) > kMaxSegments) ++segment_shift;
    const std::size_t segment_bytes = std::size_t{1} << segment_shift;

    bool fits = true;
    std::size_t offset = 0;
    for (int i = 0; i < class_count; ++i) {
        p.arenas_[i].offset = offset;
        std::size_t padded = arena_bytes[i];
        fits = fits && round_up(padded, segment_bytes) && add_to(offset, padded);
    }
    const std::size_t all_arenas = offset;
    if (fits && all_arenas > kMaxArenaBytes) {
        return platform::fail(ENOMEM, "pool: %zu GiB of blocks (at most %zu GiB)", all_arenas >> 30,
                              kMaxArenaBytes >> 30);
    }
    std::size_t link_offsets[kMaxClasses];
    for (int i = 0; i < class_count; ++i) {
        link_offsets[i] = offset;
        std::size_t link_bytes = std::size_t{p.arenas_[i].count} * sizeof(std::atomic<std::uint32_t>);
        fits = fits && round_up(link_bytes, 64) && add_to(offset, link_bytes);
    }
    const std::size_t segment_table_offset = offset;
    std::size_t segment_table_bytes = all_arenas >> segment_shift;
    fits = fits && round_up(segment_table_bytes, 64) && add_to(offset, segment_table_bytes);
    const std::size_t slots_offset = offset;
    std::size_t slot_bytes = std::size_t{config.max_threads} * sizeof(std::atomic<std::uint32_t>);
    fits = fits && round_up(slot_bytes, 64) && add_to(offset, slot_bytes);
    const std::size_t caches_offset = offset;
    std::size_t cache_bytes = 0;
    fits = fits && multiply(std::size_t{config.max_threads} * static_cast<std::size_t>(class_count),
                            sizeof(ClassCache), cache_bytes) &&
           add_to(offset, cache_bytes);
    if (!fits) return platform::fail(ENOMEM, "pool: the configured classes overflow the address space");

    if (const int status = platform::map_region(offset, config.prefer_hugepages, p.region_); status != 0) {
        return status;
    }
    char* const base = static_cast<char*>(p.region_.base);
    p.base_ = reinterpret_cast<std::uintptr_t>(base);
    p.arena_bytes_ = all_arenas;
    p.segment_shift_ = segment_shift;
    p.class_count_ = class_count;
    p.cache_blocks_ = config.cache_blocks;
    p.batch_blocks_ = batch;
    p.max_threads_ = config.max_threads;

    // Free lists: every block free, chained in address order (0 -> 1 -> ... -> kNil), head at block 0.
    for (int i = 0; i < class_count; ++i) {
        Arena& arena = p.arenas_[i];
        arena.links = reinterpret_cast<std::atomic<std::uint32_t>*>(base + link_offsets[i]);
        for (std::uint32_t block = 0; block < arena.count; ++block) {
            new (&arena.links[block]) std::atomic<std::uint32_t>(block + 1 < arena.count ? block + 1 : kNil);
        }
        p.shared_[i].head.store(pack(0, 0), std::memory_order_relaxed);
        poison_block(base + arena.offset, arena_bytes[i]);
    }

    // Segment -> class: a segment holding any block of a class maps to it; pure padding maps to kNoClass.
    std::uint8_t* segment_class = reinterpret_cast<std::uint8_t*>(base + segment_table_offset);
    for (std::size_t segment = 0; segment < (all_arenas >> segment_shift); ++segment) {
        const std::size_t start = segment << segment_shift;
        segment_class[segment] = kNoClass;
        for (int i = 0; i < class_count; ++i) {
            if (start >= p.arenas_[i].offset && start < p.arenas_[i].offset + arena_bytes[i]) {
                segment_class[segment] = static_cast<std::uint8_t>(i);
            }
        }
    }
    p.segment_class_ = segment_class;

    p.slot_owned_ = reinterpret_cast<std::atomic<std::uint32_t>*>(base + slots_offset);
    for (std::uint32_t slot = 0; slot < config.max_threads; ++slot) {
        new (&p.slot_owned_[slot]) std::atomic<std::uint32_t>(0);
    }
    p.caches_ = reinterpret_cast<ClassCache*>(base + caches_offset);
    const std::size_t cache_count = std::size_t{config.max_threads} * static_cast<std::size_t>(class_count);
    for (std::size_t cache = 0; cache < cache_count; ++cache) new (&p.caches_[cache]) ClassCache();

    if (config.prefer_hugepages && !p.region_.hugepages) {
        const platform::HugepageFacts facts = platform::hugepage_facts();
        p.small_pages_fallback_ = true;
        std::snprintf(p.warning_, sizeof p.warning_,
                      "pool: no explicit hugepages for %zu MiB (HugePages_Free=%llu of %zu KiB): using 4 KiB pages "
                      "(transparent hugepages: %s); expect more TLB misses",
                      (offset + (1u << 20) - 1) >> 20, static_cast<unsigned long long>(facts.free_pages),
                      facts.page_bytes >> 10, facts.transparent);
    }

    p.owner_.release_slot = &Pool::release_slot;
    p.owner_.context = &p;
    register_cache_owner(p.owner_);
    p.id_ = p.owner_.id;
    pool = std::move(created);
    return 0;
}

Pool::~Pool() {
    unregister_cache_owner(owner_);   // waits for a thread-exit hook that is releasing one of our slots
    if (region_.base != nullptr) unpoison_block(region_.base, arena_bytes_);
    platform::unmap_region(region_);
}

ClassCache* Pool::bind_thread() noexcept {
    if (cache_blocks_ == 0) return nullptr;
    ThreadBinding* entry = reserve_thread_binding(owner_);
    if (entry == nullptr) return nullptr;
    for (std::uint32_t slot = 0; slot < max_threads_; ++slot) {
        std::uint32_t expected = 0;
        // Acquire pairs with the release in release_slot: the previous holder's cache state and counters are ours.
        if (slot_owned_[slot].load(std::memory_order_relaxed) == 0 &&
            slot_owned_[slot].compare_exchange_strong(expected, 1, std::memory_order_acquire,
                                                      std::memory_order_relaxed)) {
            entry->owner = &owner_;
            entry->slot = slot;
            entry->caches = caches_ + std::size_t{slot} * static_cast<std::size_t>(class_count_);
            entry->owner_id = owner_.id;
            return entry->caches;
        }
    }
    refuse_thread_binding(owner_);
    return nullptr;
}

void Pool::release_slot(void* context, std::uint32_t slot) noexcept {
    Pool& pool = *static_cast<Pool*>(context);
    ClassCache* caches = pool.caches_ + std::size_t{slot} * static_cast<std::size_t>(pool.class_count_);
    for (int i = 0; i < pool.class_count_; ++i) {
        const std::uint32_t count = caches[i].count.load(std::memory_order_relaxed);
        if (count != 0) pool.flush(i, caches[i], count);
    }
    pool.slot_owned_[slot].store(0, std::memory_order_release);
}

void Pool::release_thread_cache() noexcept {
    if (const ThreadBinding* entry = find_thread_binding(owner_)) release_slot(this, entry->slot);
    forget_thread_binding(owner_);
}

std::uint32_t Pool::refill(int class_index, ClassCache& cache) noexcept {
    // Called on an empty cache only.
    const std::uint32_t taken = pop_chain(class_index, cache.blocks, batch_blocks_);
    // The chain comes out top first; reversed, the block freed last (the warmest) is handed out first.
    for (std::uint32_t low = 0, high = taken; low + 1 < high; ++low, --high) {
        void* const swap = cache.blocks[low];
        cache.blocks[low] = cache.blocks[high - 1];
        cache.blocks[high - 1] = swap;
    }
    cache.count.store(taken, std::memory_order_relaxed);
    return taken;
}

std::uint32_t Pool::flush(int class_index, ClassCache& cache, std::uint32_t blocks) noexcept {
    // The oldest blocks would be the better ones to give away, but taking the top needs no shifting.
    const std::uint32_t count = cache.count.load(std::memory_order_relaxed) - blocks;
    push_chain(class_index, cache.blocks + count, blocks);
    cache.count.store(count, std::memory_order_relaxed);
    return count;
}

std::uint32_t Pool::pop_chain(int class_index, void** blocks, std::uint32_t most) noexcept {
    const Arena& arena = arenas_[class_index];
    SharedList& list = shared_[class_index];
    char* const arena_base = reinterpret_cast<char*>(base_ + arena.offset);
    // Acquire (here and on CAS failure) pairs with push_chain's release CAS: the links we walk are the pushers'.
    std::uint64_t head = list.head.load(std::memory_order_acquire);
    for (;;) {
        std::uint32_t index = index_of_head(head);
        if (index == kNil) return 0;
        std::uint32_t taken = 0;
        do {
            blocks[taken++] = arena_base + std::size_t{index} * arena.block_bytes;
            index = arena.links[index].load(std::memory_order_relaxed);
        } while (taken < most && index < arena.count);
        // kNil ends the list; an index >= count can also come from a stale walk, whose CAS below fails.
        if (index >= arena.count) index = kNil;
        if (list.head.compare_exchange_weak(head, pack(index, tag_of_head(head) + 1), std::memory_order_acquire,
                                            std::memory_order_acquire)) {
            const std::int64_t outstanding =
                list.outstanding.fetch_add(taken, std::memory_order_relaxed) + static_cast<std::int64_t>(taken);
            std::int64_t peak = list.high_water.load(std::memory_order_relaxed);
            while (outstanding > peak &&
                   !list.high_water.compare_exchange_weak(peak, outstanding, std::memory_order_relaxed)) {
            }
            return taken;
        }
    }
}

void Pool::push_chain(int class_index, void* const* blocks, std::uint32_t count) noexcept {
    const Arena& arena = arenas_[class_index];
    SharedList& list = shared_[class_index];
    const std::uintptr_t arena_base = base_ + arena.offset;
    // Link blocks[count - 1] -> ... -> blocks[0], so the last one freed ends on top of the stack.
    const std::uint32_t first = arena.index_of(reinterpret_cast<std::uintptr_t>(blocks[count - 1]) - arena_base);
    std::uint32_t last = first;
    for (std::uint32_t i = count - 1; i-- > 0;) {
        const std::uint32_t index = arena.index_of(reinterpret_cast<std::uintptr_t>(blocks[i]) - arena_base);
        arena.links[last].store(index, std::memory_order_relaxed);
        last = index;
    }
    // Counted out before the blocks are visible, and counted in (pop_chain) after they were taken: the counter
    // never exceeds the true number out, so the peak never exceeds the capacity.
    list.outstanding.fetch_sub(count, std::memory_order_relaxed);
    std::uint64_t head = list.head.load(std::memory_order_relaxed);
    do {
        arena.links[last].store(index_of_head(head), std::memory_order_relaxed);
        // Release: a popper that acquires this head sees the links above and the blocks' contents.
    } while (!list.head.compare_exchange_weak(head, pack(first, tag_of_head(head) + 1), std::memory_order_release,
                                              std::memory_order_relaxed));
}

// A thread's first call (bind it), an empty cache (refill it in one batch), or no cache at all.
[[gnu::noinline, gnu::cold]] void* Pool::take_slow(int class_index, std::uint32_t requested) noexcept {
    ClassCache* caches = thread_caches_or_bind();
    if (caches == nullptr) return take_uncached(class_index, requested);
    ClassCache& cache = caches[class_index];
    std::uint32_t count = cache.count.load(std::memory_order_relaxed);
    if (count == 0) {
        count = refill(class_index, cache);
        if (count == 0) {
            bump(cache.failed);
            return nullptr;
        }
    }
    return pop_cached(class_index, cache, count, requested);
}

// A thread's first call, a full cache (flush one batch), or no cache at all.
[[gnu::noinline, gnu::cold]] void Pool::give_slow(int class_index, void* block, std::uint32_t requested) noexcept {
    ClassCache* caches = thread_caches_or_bind();
    if (caches == nullptr) return give_uncached(class_index, block, requested);
    ClassCache& cache = caches[class_index];
    std::uint32_t count = cache.count.load(std::memory_order_relaxed);
    if (count == cache_blocks_) count = flush(class_index, cache, batch_blocks_);
    push_cached(cache, count, block, requested);
}

ClassCache* Pool::thread_caches_or_bind() noexcept {
    ClassCache* caches = find_thread_caches(id_);
    return caches != nullptr ? caches : bind_thread();
}

void* Pool::take_uncached(int class_index, std::uint32_t requested) noexcept {
    SharedList& list = shared_[class_index];
    void* block = nullptr;
    if (pop_chain(class_index, &block, 1) == 0) {
        list.failed.fetch_add(1, std::memory_order_relaxed);
        return nullptr;
    }
    const Arena& arena = arenas_[class_index];
    arena.links[arena.index_of(reinterpret_cast<std::uintptr_t>(block) - base_ - arena.offset)].store(
        kAllocated | requested, std::memory_order_relaxed);
    unpoison_block(block, requested);
    list.requested.fetch_add(requested, std::memory_order_relaxed);
    return block;
}

void Pool::give_uncached(int class_index, void* block, std::uint32_t requested) noexcept {
    SharedList& list = shared_[class_index];
    list.requested.fetch_sub(requested, std::memory_order_relaxed);
    push_chain(class_index, &block, 1);
}

int Pool::free_checked(void* block) noexcept {
    if (block == nullptr) return 0;
    const std::uintptr_t offset = reinterpret_cast<std::uintptr_t>(block) - base_;
    if (offset >= arena_bytes_) {
        reject_free();
        return platform::fail(EINVAL, "pool: %p is not a block of this pool (outside its arenas)", block);
    }
    const int class_index = segment_class_[offset >> segment_shift_];
    if (class_index == kNoClass) {
        reject_free();
        return platform::fail(EINVAL, "pool: %p is not a block of this pool (padding between arenas)", block);
    }
    const Arena& arena = arenas_[class_index];
    const std::uintptr_t arena_offset = offset - arena.offset;
    const std::uint32_t index = arena.index_of(arena_offset);
    if (index >= arena.count) {
        reject_free();
        return platform::fail(EINVAL, "pool: %p is not a block of this pool (past the last %u-byte block)", block,
                              arena.block_bytes);
    }
    if (const std::uintptr_t inside = arena_offset - std::uintptr_t{index} * arena.block_bytes; inside != 0) {
        reject_free();
        return platform::fail(EINVAL, "pool: %p points %zu bytes into a %u-byte block (%s), not at its start", block,
                              static_cast<std::size_t>(inside), arena.block_bytes,
                              inside % 64 != 0 ? "misaligned" : "an interior pointer");
    }
    // allocated -> free in one CAS: of two frees of this block (a double free, or threads racing) one wins. Relaxed:
    // the word orders nothing else; the winner's own stores (cache, lists) are ordered as in free().
    std::atomic<std::uint32_t>& link = arena.links[index];
    std::uint32_t word = link.load(std::memory_order_relaxed);
    do {
        if ((word & kAllocated) == 0) {
            reject_free();
            return platform::fail(EINVAL, "pool: %p (a %u-byte block) is not allocated: a double free, or never "
                                  "allocated", block, arena.block_bytes);
        }
    } while (!link.compare_exchange_weak(word, kNil, std::memory_order_relaxed, std::memory_order_relaxed));
    put_back(class_index, block, word & ~kAllocated);
    return 0;
}

void* Pool::reject_request() noexcept {
    out_of_range_.fetch_add(1, std::memory_order_relaxed);
    return nullptr;
}

void Pool::reject_free() noexcept { rejected_frees_.fetch_add(1, std::memory_order_relaxed); }

void Pool::stats(PoolStats& out) const noexcept {
    out = PoolStats{};
    out.class_count = class_count_;
    out.out_of_range_requests = load(out_of_range_);
    out.rejected_frees = load(rejected_frees_);
    out.region_bytes = region_.bytes;
    out.hugepages = region_.hugepages;
    out.small_pages_fallback = small_pages_fallback_;
    ClassStats& total = out.total;
    for (int i = 0; i < class_count_; ++i) {
        const SharedList& list = shared_[i];
        std::uint64_t cached = 0;
        std::uint64_t requested = load(list.requested);   // modulo 2^64 until everything is summed
        std::uint64_t failed = load(list.failed);
        for (std::uint32_t slot = 0; slot < max_threads_; ++slot) {
            const ClassCache& cache = caches_[std::size_t{slot} * static_cast<std::size_t>(class_count_) +
                                              static_cast<std::size_t>(i)];
            cached += cache.count.load(std::memory_order_relaxed);
            requested += load(cache.requested);
            failed += load(cache.failed);
        }
        // Blocks out of the shared list are either in a cache or in use.
        const std::int64_t outstanding = list.outstanding.load(std::memory_order_relaxed);
        ClassStats& s = out.classes[i];
        s.block_bytes = arenas_[i].block_bytes;
        s.capacity_blocks = arenas_[i].count;
        s.capacity_bytes = s.capacity_blocks * s.block_bytes;
        s.cached_blocks = cached;
        s.in_use_blocks = difference(outstanding > 0 ? static_cast<std::uint64_t>(outstanding) : 0, cached);
        s.in_use_bytes = s.in_use_blocks * s.block_bytes;
        // A sum caught mid-operation may wrap below zero: read it as signed and clamp.
        s.requested_bytes = static_cast<std::int64_t>(requested) > 0 ? requested : 0;
        const std::int64_t peak = list.high_water.load(std::memory_order_relaxed);
        s.high_water_blocks = peak > 0 ? static_cast<std::uint64_t>(peak) : 0;
        s.failed_allocations = failed;
        s.fragmentation_percent = fragmentation_percent(s.requested_bytes, s.in_use_bytes);

        total.capacity_blocks += s.capacity_blocks;
        total.capacity_bytes += s.capacity_bytes;
        total.in_use_blocks += s.in_use_blocks;
        total.in_use_bytes += s.in_use_bytes;
        total.requested_bytes += s.requested_bytes;
        total.cached_blocks += s.cached_blocks;
        total.high_water_blocks += s.high_water_blocks;
        total.failed_allocations += s.failed_allocations;
    }
    total.failed_allocations += out.out_of_range_requests;
    total.fragmentation_percent = fragmentation_percent(total.requested_bytes, total.in_use_bytes);
}

}  // namespace cf::mem
