#include "engine/mem/pool.hpp"

#include <algorithm>
#include <bit>
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
    const platform::NumaTopology& topology =
        config.topology != nullptr ? *config.topology : platform::system_numa_topology();
    if (topology.node_count < 1 || topology.node_count > platform::kMaxNumaNodes ||
        topology.node_of_current_thread == nullptr || topology.bind == nullptr) {
        return platform::fail(EINVAL, "pool: a NUMA topology needs 1..%d nodes and both functions",
                              platform::kMaxNumaNodes);
    }
    const std::uint64_t topology_nodes =
        topology.node_count == 64 ? ~std::uint64_t{0} : (std::uint64_t{1} << topology.node_count) - 1;
    const std::uint64_t nodes = config.numa_nodes != 0 ? config.numa_nodes : topology_nodes;
    if ((nodes & ~topology_nodes) != 0) {
        return platform::fail(EINVAL, "pool: numa_nodes %#llx names nodes this machine lacks (it has %d)",
                              static_cast<unsigned long long>(config.numa_nodes), topology.node_count);
    }

    std::unique_ptr<Pool> created(new (std::nothrow) Pool());
    if (!created) return platform::fail(ENOMEM, "pool: out of memory for the pool object");
    Pool& p = *created;
    p.topology_ = topology;
    for (int node = 0; node < platform::kMaxNumaNodes; ++node) {
        if ((nodes >> node & 1) == 0) continue;
        p.arena_of_node_[node] = static_cast<std::uint8_t>(p.node_arena_count_);
        p.arena_node_[p.node_arena_count_++] = static_cast<std::uint8_t>(node);
    }
    const auto arena_count = static_cast<std::size_t>(p.node_arena_count_);

    std::size_t sizes[kMaxClasses] = {};
    for (int i = 0; i < class_count; ++i) sizes[i] = config.classes[i].block_bytes;
    if (const int status = p.classes_.init(sizes, class_count); status != 0) return status;

    // Layout, with every size computation checked: a budget near SIZE_MAX must fail, not wrap. First one node
    // arena (offsets from its start), then the node arenas back to back, then the common part.
    std::size_t blocks_of[kMaxClasses];
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
        blocks_of[i] = blocks;
        if (!multiply(blocks, entry.block_bytes, arena_bytes[i]) || !add_to(raw_bytes, arena_bytes[i])) {
            return platform::fail(ENOMEM, "pool: class %d (%zu B x %zu) overflows the address space", i,
                                  entry.block_bytes, blocks);
        }
    }
    std::size_t all_raw_bytes = 0;
    if (!multiply(raw_bytes, arena_count, all_raw_bytes)) {
        return platform::fail(ENOMEM, "pool: the configured classes overflow the address space");
    }
    int segment_shift = kMinSegmentShift;
    while ((all_raw_bytes >> segment_shift) > kMaxSegments) ++segment_shift;
    const std::size_t segment_bytes = std::size_t{1} << segment_shift;

    bool fits = true;
    std::size_t offset = 0;
    std::size_t class_offsets[kMaxClasses];
    // A power-of-two class starts at a multiple of its block size (free()'s fast check, SegmentEntry), which
    // segments already give for blocks up to the segment size; larger blocks pad to their size. Node arenas
    // start at multiples of the largest such alignment.
    std::size_t class_alignment = segment_bytes;
    for (int i = 0; i < class_count; ++i) {
        const std::size_t alignment = std::has_single_bit(sizes[i]) ? std::max(sizes[i], segment_bytes)
                                                                      : segment_bytes;
        class_alignment = std::max(class_alignment, alignment);
        fits = fits && round_up(offset, alignment);
        class_offsets[i] = offset;
        std::size_t padded = arena_bytes[i];
        fits = fits && round_up(padded, segment_bytes) && add_to(offset, padded);
    }
    const std::size_t blocks_bytes = offset;
    std::size_t link_offsets[kMaxClasses];
    for (int i = 0; i < class_count; ++i) {
        link_offsets[i] = offset;
        std::size_t link_bytes = blocks_of[i] * sizeof(std::atomic<std::uint32_t>);
        fits = fits && round_up(link_bytes, 64) && add_to(offset, link_bytes);
    }
    const std::size_t lists_offset = offset;
    fits = fits && add_to(offset, static_cast<std::size_t>(class_count) * sizeof(SharedList));
    // Each node arena starts on a segment, and on a (huge)page when there are several, so that binding one
    // arena's pages to its node never touches a neighbour's.
    std::size_t stride = offset;
    std::size_t arena_alignment = class_alignment;
    if (arena_count > 1) {
        const std::size_t huge = config.prefer_hugepages ? platform::hugepage_facts().page_bytes : 0;
        if (huge > arena_alignment) arena_alignment = huge;
    }
    fits = fits && round_up(stride, arena_alignment);
    std::size_t span = 0;
    fits = fits && multiply(stride, arena_count, span);
    if (fits && blocks_bytes > kMaxArenaBytes) {
        return platform::fail(ENOMEM, "pool: %zu GiB of blocks (at most %zu GiB)", blocks_bytes >> 30,
                              kMaxArenaBytes >> 30);
    }
    offset = span;
    const std::size_t segment_table_offset = offset;
    const std::size_t segment_count = span >> segment_shift;
    std::size_t segment_table_bytes = segment_count * sizeof(SegmentEntry);
    fits = fits && round_up(segment_table_bytes, 64) && add_to(offset, segment_table_bytes);
    const std::size_t slots_offset = offset;
    std::size_t slot_bytes = std::size_t{config.max_threads} * sizeof(std::atomic<std::uint32_t>);
    fits = fits && round_up(slot_bytes, 64) && add_to(offset, slot_bytes);
    const std::size_t arenas_offset = offset;
    std::size_t arena_table_bytes = arena_count * kMaxClasses * sizeof(Arena);
    fits = fits && round_up(arena_table_bytes, 64) && add_to(offset, arena_table_bytes);
    const std::size_t caches_offset = offset;
    std::size_t cache_bytes = 0;
    fits = fits && multiply(std::size_t{config.max_threads} * static_cast<std::size_t>(class_count),
                            sizeof(ClassCache), cache_bytes) &&
           add_to(offset, cache_bytes);
    if (!fits || offset > (std::size_t{1} << 62)) {
        return platform::fail(ENOMEM, "pool: the configured classes overflow the address space");
    }

    // Reserve, place (each node arena on its node, the common part on ours), then fault everything in.
    if (const int status = platform::reserve_region(offset, config.prefer_hugepages, p.region_); status != 0) {
        return status;
    }
    char* const base = static_cast<char*>(p.region_.base);
    const std::size_t page = p.region_.page_bytes;
    for (std::size_t a = 0; a < arena_count; ++a) {
        // Only the last arena's end can fall inside a page (the others end on arena_alignment): round it up.
        std::size_t end = (a + 1) * stride;
        if (!round_up(end, page) || end > p.region_.bytes) end = p.region_.bytes;
        p.placement_[a] = topology.bind(topology.context, base + a * stride, end - a * stride, p.arena_node_[a]);
    }
    if (std::size_t common_start = span; round_up(common_start, page) && common_start < p.region_.bytes) {
        const int here = topology.node_of_current_thread(topology.context);
        (void)topology.bind(topology.context, base + common_start, p.region_.bytes - common_start, here);
    }
    platform::prefault_region(p.region_);

    p.base_ = reinterpret_cast<std::uintptr_t>(base);
    p.span_bytes_ = span;
    p.segment_shift_ = segment_shift;
    p.segment_mask_ = static_cast<std::uint32_t>(segment_bytes - 1);
    p.class_count_ = class_count;
    p.cache_blocks_ = config.cache_blocks;
    p.batch_blocks_ = batch;
    p.max_threads_ = config.max_threads;
    p.exact_requested_ = config.exact_requested_bytes;
    p.tracks_blocks_ = config.exact_requested_bytes || config.detect_double_free || kCheckedFree;
    for (int i = 0; i < class_count; ++i) p.class_bytes_[i] = static_cast<std::uint32_t>(sizes[i]);

    // Arena descriptors and free lists: every block free, chained in address order (0 -> 1 -> ... -> kNil).
    p.arena_table_ = reinterpret_cast<Arena*>(base + arenas_offset);
    for (std::size_t slot = 0; slot < arena_count * kMaxClasses; ++slot) new (&p.arena_table_[slot]) Arena();
    for (std::size_t a = 0; a < arena_count; ++a) {
        const std::size_t start = a * stride;
        for (int i = 0; i < class_count; ++i) {
            Arena& arena = p.arena_table_[a * kMaxClasses + static_cast<std::size_t>(i)];
            arena.offset = start + class_offsets[i];
            arena.block_bytes = static_cast<std::uint32_t>(sizes[i]);
            arena.count = static_cast<std::uint32_t>(blocks_of[i]);
            arena.reciprocal = UINT64_MAX / sizes[i] + 1;
            arena.shift = std::has_single_bit(sizes[i]) ? static_cast<std::uint32_t>(std::countr_zero(sizes[i])) : 0;
            arena.links = reinterpret_cast<std::atomic<std::uint32_t>*>(base + start + link_offsets[i]);
            for (std::uint32_t block = 0; block < arena.count; ++block) {
                new (&arena.links[block]) std::atomic<std::uint32_t>(block + 1 < arena.count ? block + 1 : kNil);
            }
            arena.list = new (base + start + lists_offset + static_cast<std::size_t>(i) * sizeof(SharedList))
                SharedList();
            arena.list->head.store(pack(0, 0), std::memory_order_relaxed);
            poison_block(base + arena.offset, arena_bytes[i]);
        }
    }
    p.arenas_ = p.arena_table_;

    // Segment -> arena id: a segment holding any block of a class maps to it; padding, links and lists map to
    // kNoArena. A power-of-two class's segments also get the fast check's shift and limit (past the last block
    // start in the segment), when segments are small enough for a 32-bit limit.
    auto* segments = reinterpret_cast<SegmentEntry*>(base + segment_table_offset);
    for (std::size_t segment = 0; segment < segment_count; ++segment) {
        const std::size_t start = segment << segment_shift;
        const std::size_t a = start / stride;
        SegmentEntry& entry = *new (&segments[segment]) SegmentEntry();
        for (int i = 0; i < class_count; ++i) {
            const Arena& arena = p.arena_table_[a * kMaxClasses + static_cast<std::size_t>(i)];
            const std::size_t end = arena.offset + arena_bytes[i];
            if (start < arena.offset || start >= end) continue;
            entry.arena = static_cast<std::uint16_t>(a * kMaxClasses + static_cast<std::size_t>(i));
            if (arena.shift == 0 || segment_shift > 31 || arena.offset % arena.block_bytes != 0) continue;
            entry.block_shift = static_cast<std::uint8_t>(arena.shift);
            // Blocks end exactly at `end`: the last block start is end - block_bytes. A segment inside a block
            // larger than a segment keeps limit 0 (nothing starts there).
            const std::size_t last_start = end - arena.block_bytes;
            if (last_start >= start) {
                entry.limit = static_cast<std::uint32_t>(std::min(last_start - start + 1, segment_bytes));
            }
        }
    }
    p.segments_ = segments;

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
    p.binding_entry_ = preferred_binding_entry(p.id_);
    pool = std::move(created);
    return 0;
}

Pool::~Pool() {
    unregister_cache_owner(owner_);   // waits for a thread-exit hook that is releasing one of our slots
    if (region_.base != nullptr) unpoison_block(region_.base, span_bytes_);
    platform::unmap_region(region_);
}

std::uint32_t Pool::home_arena_of_current_thread() const noexcept {
    const int node = topology_.node_of_current_thread(topology_.context);
    const std::uint32_t arena = node >= 0 && node < platform::kMaxNumaNodes ? arena_of_node_[node] : 0;
    return arena * kMaxClasses;
}

const ThreadBinding* Pool::bind_thread() noexcept {
    if (cache_blocks_ == 0) return nullptr;
    ThreadBinding* entry = reserve_thread_binding(owner_);
    if (entry == nullptr) return nullptr;
    const std::uint32_t home = home_arena_of_current_thread();
    for (std::uint32_t slot = 0; slot < max_threads_; ++slot) {
        std::uint32_t expected = 0;
        // Acquire pairs with the release in release_slot: the previous holder's cache state and counters are ours.
        if (slot_owned_[slot].load(std::memory_order_relaxed) == 0 &&
            slot_owned_[slot].compare_exchange_strong(expected, 1 + home / kMaxClasses, std::memory_order_acquire,
                                                      std::memory_order_relaxed)) {
            entry->slot = slot;
            entry->caches = caches_ + std::size_t{slot} * static_cast<std::size_t>(class_count_);
            entry->home = home;
            entry->owner_id = owner_.id;
            return entry;
        }
    }
    refuse_thread_binding(owner_);
    return nullptr;
}

void Pool::release_slot(void* context, std::uint32_t slot) noexcept {
    Pool& pool = *static_cast<Pool*>(context);
    ClassCache* caches = pool.caches_ + std::size_t{slot} * static_cast<std::size_t>(pool.class_count_);
    const std::uint32_t home = (pool.slot_owned_[slot].load(std::memory_order_relaxed) - 1) * kMaxClasses;
    for (int i = 0; i < pool.class_count_; ++i) {
        const std::uint32_t count = caches[i].count.load(std::memory_order_relaxed);
        if (count != 0) pool.flush(home + static_cast<std::uint32_t>(i), caches[i], count);
    }
    pool.slot_owned_[slot].store(0, std::memory_order_release);
}

void Pool::release_thread_cache() noexcept {
    if (const ThreadBinding* entry = find_thread_binding(owner_)) release_slot(this, entry->slot);
    forget_thread_binding(owner_);
}

std::uint32_t Pool::refill(std::uint32_t arena_id, ClassCache& cache) noexcept {
    // Called on an empty cache only.
    const std::uint32_t taken = pop_chain(arena_id, cache.blocks, batch_blocks_);
    // The chain comes out top first; reversed, the block freed last (the warmest) is handed out first.
    for (std::uint32_t low = 0, high = taken; low + 1 < high; ++low, --high) {
        void* const swap = cache.blocks[low];
        cache.blocks[low] = cache.blocks[high - 1];
        cache.blocks[high - 1] = swap;
    }
    cache.count.store(taken, std::memory_order_relaxed);
    return taken;
}

std::uint32_t Pool::flush(std::uint32_t arena_id, ClassCache& cache, std::uint32_t blocks) noexcept {
    // The oldest blocks would be the better ones to give away, but taking the top needs no shifting.
    const std::uint32_t count = cache.count.load(std::memory_order_relaxed) - blocks;
    push_chain(arena_id, cache.blocks + count, blocks);
    cache.count.store(count, std::memory_order_relaxed);
    return count;
}

std::uint32_t Pool::pop_chain(std::uint32_t arena_id, void** blocks, std::uint32_t most) noexcept {
    const Arena& arena = arenas_[arena_id];
    SharedList& list = *arena.list;
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

void Pool::push_chain(std::uint32_t arena_id, void* const* blocks, std::uint32_t count) noexcept {
    const Arena& arena = arenas_[arena_id];
    SharedList& list = *arena.list;
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
[[gnu::noinline, gnu::cold]] void* Pool::take_slow(std::uint32_t class_index, std::uint32_t requested) noexcept {
    const ThreadBinding* binding = thread_binding_or_bind();
    if (binding == nullptr) return take_uncached(home_arena_of_current_thread() + class_index, requested);
    const std::uint32_t arena_id = binding->home + class_index;
    ClassCache& cache = binding->caches[class_index];
    std::uint32_t count = cache.count.load(std::memory_order_relaxed);
    if (count == 0) {
        count = refill(arena_id, cache);
        if (count == 0) {
            bump(cache.failed);
            return nullptr;
        }
        // The default statistics' sample: the request that found the cache empty (about one per batch).
        bump(cache.sampled);
        bump(cache.sampled_requested, requested);
    }
    void* block = pop_cached(cache, count);
    if (tracks_blocks_) return track_taken(arena_id, cache, block, requested);
    unpoison_block(block, requested);
    return block;
}

// allocate() of a pool that tracks block states: the allocated tag and requested size go into the block's idle
// link word (and, with exact accounting, the size into the slot's share).
void* Pool::track_taken(std::uint32_t arena_id, ClassCache& cache, void* block, std::uint32_t requested) noexcept {
    const Arena& arena = arenas_[arena_id];
    const std::uintptr_t offset = reinterpret_cast<std::uintptr_t>(block) - base_ - arena.offset;
    arena.links[arena.index_of(offset)].store(kAllocated | requested, std::memory_order_relaxed);
    if (exact_requested_) bump(cache.requested, requested);
    unpoison_block(block, requested);
    return block;
}

// free() of what its inline check did not take: a block of a class that is not a power of two, of a pool that
// tracks block states, or no block at all (refused and counted). A double free stays undefined, as inline.
void Pool::give_checking(void* block, std::uintptr_t offset) noexcept {
    BlockPlace place;
    if (locate(offset, place) != Misplaced::no) return reject_free();
    if (!tracks_blocks_) return put_back<false>(place.arena_id, block, 0);
    // The allocating thread stored the size; the application's hand-over of the block orders it before us.
    // Marked free before it joins a cache, so free_checked() sees cached blocks as free.
    std::atomic<std::uint32_t>& link = arenas_[place.arena_id].links[place.index];
    const std::uint32_t word = link.load(std::memory_order_relaxed);
    link.store(kNil, std::memory_order_relaxed);
    put_back_tracked(place.arena_id, block, word & ~kAllocated);
}

Pool::Misplaced Pool::locate(std::uintptr_t offset, BlockPlace& place) const noexcept {
    if (offset >= span_bytes_) return Misplaced::outside;
    place.arena_id = segments_[offset >> segment_shift_].arena;
    if (place.arena_id == kNoArena) return Misplaced::padding;
    const Arena& arena = arenas_[place.arena_id];
    const std::uintptr_t arena_offset = offset - arena.offset;
    place.index = arena.index_of(arena_offset);
    if (place.index >= arena.count) return Misplaced::past_end;
    place.inside = arena_offset - std::uintptr_t{place.index} * arena.block_bytes;
    return place.inside == 0 ? Misplaced::no : Misplaced::inside;
}

void Pool::put_back_tracked(std::uint32_t arena_id, void* block, std::uint32_t requested) noexcept {
    if (exact_requested_) return put_back<true>(arena_id, block, requested);
    put_back<false>(arena_id, block, requested);
}

// A thread's first call, a full cache (flush one batch), a block of another node arena, or no cache at all.
[[gnu::noinline, gnu::cold]] void Pool::give_slow(std::uint32_t arena_id, void* block,
                                                  std::uint32_t requested) noexcept {
    const ThreadBinding* binding = thread_binding_or_bind();
    const std::uint32_t class_index = class_of_arena(arena_id);
    if (binding == nullptr) return give_uncached(arena_id, block, requested);
    ClassCache& cache = binding->caches[class_index];
    if (arena_id != binding->home + class_index) {
        // Another node's block goes home at once; the size leaves through this slot's share (sums stay exact).
        if (exact_requested_) bump(cache.requested, std::uint64_t{0} - requested);
        return push_chain(arena_id, &block, 1);
    }
    std::uint32_t count = cache.count.load(std::memory_order_relaxed);
    if (count == cache_blocks_) count = flush(arena_id, cache, batch_blocks_);
    push_cached(cache, count, block);
    if (exact_requested_) bump(cache.requested, std::uint64_t{0} - requested);   // modulo 2^64, see ClassCache
}

const ThreadBinding* Pool::thread_binding_or_bind() noexcept {
    const ThreadBinding* binding = find_thread_binding(id_);
    return binding != nullptr ? binding : bind_thread();
}

void* Pool::take_uncached(std::uint32_t arena_id, std::uint32_t requested) noexcept {
    const Arena& arena = arenas_[arena_id];
    SharedList& list = *arena.list;
    void* block = nullptr;
    if (pop_chain(arena_id, &block, 1) == 0) {
        list.failed.fetch_add(1, std::memory_order_relaxed);
        return nullptr;
    }
    if (tracks_blocks_) {
        arena.links[arena.index_of(reinterpret_cast<std::uintptr_t>(block) - base_ - arena.offset)].store(
            kAllocated | requested, std::memory_order_relaxed);
    }
    unpoison_block(block, requested);
    list.sampled.fetch_add(1, std::memory_order_relaxed);   // without a cache, every allocation is sampled
    list.sampled_requested.fetch_add(requested, std::memory_order_relaxed);
    if (exact_requested_) list.requested.fetch_add(requested, std::memory_order_relaxed);
    return block;
}

void Pool::give_uncached(std::uint32_t arena_id, void* block, std::uint32_t requested) noexcept {
    if (exact_requested_) arenas_[arena_id].list->requested.fetch_sub(requested, std::memory_order_relaxed);
    push_chain(arena_id, &block, 1);
}

int Pool::arena_of(const void* block) const noexcept {
    BlockPlace place;
    const Misplaced misplaced = locate(reinterpret_cast<std::uintptr_t>(block) - base_, place);
    if (misplaced != Misplaced::no && misplaced != Misplaced::inside) return -1;
    return static_cast<int>(place.arena_id / kMaxClasses);
}

int Pool::free_checked(void* block) noexcept {
    if (block == nullptr) return 0;
    BlockPlace place;
    const Misplaced misplaced = locate(reinterpret_cast<std::uintptr_t>(block) - base_, place);
    if (misplaced != Misplaced::no) {
        reject_free();
        const std::uint32_t block_bytes = misplaced == Misplaced::outside || misplaced == Misplaced::padding
                                              ? 0 : arenas_[place.arena_id].block_bytes;
        switch (misplaced) {
            case Misplaced::outside:
                return platform::fail(EINVAL, "pool: %p is not a block of this pool (outside its arenas)", block);
            case Misplaced::padding:
                return platform::fail(EINVAL, "pool: %p is not a block of this pool (padding between arenas)",
                                      block);
            case Misplaced::past_end:
                return platform::fail(EINVAL, "pool: %p is not a block of this pool (past the last %u-byte block)",
                                      block, block_bytes);
            default:
                return platform::fail(EINVAL, "pool: %p points %zu bytes into a %u-byte block (%s), not at its "
                                      "start", block, static_cast<std::size_t>(place.inside), block_bytes,
                                      place.inside % 64 != 0 ? "misaligned" : "an interior pointer");
        }
    }
    // Without block states there is nothing more to check: the block goes back as with free().
    if (!tracks_blocks_) {
        put_back<false>(place.arena_id, block, 0);
        return 0;
    }
    // allocated -> free in one CAS: of two frees of this block (a double free, or threads racing) one wins. Relaxed:
    // the word orders nothing else; the winner's own stores (cache, lists) are ordered as in free().
    std::atomic<std::uint32_t>& link = arenas_[place.arena_id].links[place.index];
    std::uint32_t word = link.load(std::memory_order_relaxed);
    do {
        if ((word & kAllocated) == 0) {
            reject_free();
            return platform::fail(EINVAL, "pool: %p (a %u-byte block) is not allocated: a double free, or never "
                                  "allocated", block, arenas_[place.arena_id].block_bytes);
        }
    } while (!link.compare_exchange_weak(word, kNil, std::memory_order_relaxed, std::memory_order_relaxed));
    put_back_tracked(place.arena_id, block, word & ~kAllocated);
    return 0;
}

void* Pool::reject_request() noexcept {
    out_of_range_.fetch_add(1, std::memory_order_relaxed);
    return nullptr;
}

void Pool::reject_free() noexcept { rejected_frees_.fetch_add(1, std::memory_order_relaxed); }

void Pool::reject_outside(const void* block) noexcept {
    if (block != nullptr) reject_free();
}

void Pool::stats(PoolStats& out) const noexcept {
    out = PoolStats{};
    out.class_count = class_count_;
    out.out_of_range_requests = load(out_of_range_);
    out.rejected_frees = load(rejected_frees_);
    out.region_bytes = region_.bytes;
    out.hugepages = region_.hugepages;
    out.small_pages_fallback = small_pages_fallback_;
    out.exact_requested = exact_requested_;
    out.node_arena_count = node_arena_count_;
    // Blocks parked in caches, per node arena and class (a slot's caches belong to its holder's node arena).
    std::uint64_t cached[platform::kMaxNumaNodes][kMaxClasses] = {};
    ClassStats& total = out.total;
    std::uint64_t total_sampled_block_bytes = 0;
    std::uint64_t sampled_block_bytes[kMaxClasses] = {};
    for (int i = 0; i < class_count_; ++i) {
        ClassStats& s = out.classes[i];
        std::uint64_t requested = 0;   // modulo 2^64 until everything is summed
        for (int a = 0; a < node_arena_count_; ++a) {
            const SharedList& list = *arenas_[static_cast<std::uint32_t>(a) * kMaxClasses + static_cast<std::uint32_t>(i)].list;
            requested += load(list.requested);
            s.sampled_allocations += load(list.sampled);
            s.sampled_requested_bytes += load(list.sampled_requested);
            s.failed_allocations += load(list.failed);
        }
        for (std::uint32_t slot = 0; slot < max_threads_; ++slot) {
            const ClassCache& cache = caches_[std::size_t{slot} * static_cast<std::size_t>(class_count_) +
                                              static_cast<std::size_t>(i)];
            const std::uint32_t holder = slot_owned_[slot].load(std::memory_order_relaxed);
            const std::uint32_t count = cache.count.load(std::memory_order_relaxed);
            if (holder != 0 && holder <= static_cast<std::uint32_t>(node_arena_count_)) cached[holder - 1][i] += count;
            s.cached_blocks += count;
            requested += load(cache.requested);
            s.sampled_allocations += load(cache.sampled);
            s.sampled_requested_bytes += load(cache.sampled_requested);
            s.failed_allocations += load(cache.failed);
        }
        s.block_bytes = class_bytes_[i];
        std::uint64_t outstanding = 0;
        for (int a = 0; a < node_arena_count_; ++a) {
            const Arena& arena = arenas_[static_cast<std::uint32_t>(a) * kMaxClasses + static_cast<std::uint32_t>(i)];
            const std::int64_t out_of_list = arena.list->outstanding.load(std::memory_order_relaxed);
            const std::int64_t peak = arena.list->high_water.load(std::memory_order_relaxed);
            // Blocks out of the shared list are either in a cache or in use.
            const std::uint64_t arena_out = out_of_list > 0 ? static_cast<std::uint64_t>(out_of_list) : 0;
            outstanding += arena_out;
            s.high_water_blocks += peak > 0 ? static_cast<std::uint64_t>(peak) : 0;
            s.capacity_blocks += arena.count;
            NodeArenaStats& node = out.node_arenas[a];
            node.capacity_blocks += arena.count;
            node.capacity_bytes += std::uint64_t{arena.count} * arena.block_bytes;
            const std::uint64_t in_use = difference(arena_out, cached[a][i]);
            node.in_use_blocks += in_use;
            node.in_use_bytes += in_use * arena.block_bytes;
        }
        s.capacity_bytes = s.capacity_blocks * s.block_bytes;
        s.in_use_blocks = difference(outstanding, s.cached_blocks);
        s.in_use_bytes = s.in_use_blocks * s.block_bytes;
        // A sum caught mid-operation may wrap below zero: read it as signed and clamp.
        if (exact_requested_) s.requested_bytes = static_cast<std::int64_t>(requested) > 0 ? requested : 0;
        sampled_block_bytes[i] = s.sampled_allocations * s.block_bytes;
        s.fragmentation_percent = exact_requested_
                                      ? fragmentation_percent(s.requested_bytes, s.in_use_bytes)
                                      : fragmentation_percent(s.sampled_requested_bytes, sampled_block_bytes[i]);

        total.capacity_blocks += s.capacity_blocks;
        total.capacity_bytes += s.capacity_bytes;
        total.in_use_blocks += s.in_use_blocks;
        total.in_use_bytes += s.in_use_bytes;
        total.requested_bytes += s.requested_bytes;
        total.sampled_allocations += s.sampled_allocations;
        total.sampled_requested_bytes += s.sampled_requested_bytes;
        total_sampled_block_bytes += sampled_block_bytes[i];
        total.cached_blocks += s.cached_blocks;
        total.high_water_blocks += s.high_water_blocks;
        total.failed_allocations += s.failed_allocations;
    }
    for (int a = 0; a < node_arena_count_; ++a) {
        out.node_arenas[a].node = arena_node_[a];
        out.node_arenas[a].placement = placement_[a];
    }
    total.failed_allocations += out.out_of_range_requests;
    total.fragmentation_percent = exact_requested_
                                      ? fragmentation_percent(total.requested_bytes, total.in_use_bytes)
                                      : fragmentation_percent(total.sampled_requested_bytes,
                                                              total_sampled_block_bytes);
}

}  // namespace cf::mem
