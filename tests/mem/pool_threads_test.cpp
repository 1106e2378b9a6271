// Static pool under concurrency: blocks allocated on one thread and freed on another, several threads allocating
// and freeing at once (an ownership table catches any block handed out twice), the shared lists hammered without
// caches (ABA), and every block accounted for after the threads exit.
#include <doctest/doctest.h>

#include <atomic>
#include <cstring>
#include <deque>
#include <memory>
#include <mutex>
#include <random>
#include <thread>
#include <vector>

#include "engine/mem/pool.hpp"
#include "tests/mem/pool_test_support.hpp"

using cf::mem::Pool;
using cf::mem::PoolConfig;
using cf::mem::PoolStats;
using namespace cf::test;

namespace {

// Iteration counts: about a second in a release build (~12 s under qemu-aarch64); sanitizers are 5-20x slower.
#if defined(__SANITIZE_THREAD__) || defined(__SANITIZE_ADDRESS__)
constexpr int kScale = 1;
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer) || __has_feature(address_sanitizer)
constexpr int kScale = 1;
#else
constexpr int kScale = 5;
#endif
#else
constexpr int kScale = 5;
#endif

// 8 default classes of `blocks_per_class` blocks each.
PoolConfig small_config(std::size_t blocks_per_class, std::uint32_t cache_blocks, std::uint32_t batch_blocks) {
    PoolConfig config =
        default_size_classes(8, [blocks_per_class](int) { return blocks_per_class; }, cache_blocks, batch_blocks);
    config.exact_requested_bytes = true;   // so the cross-thread sums of requested sizes are checked too
    return config;
}

// Who holds each block: one atomic per 64-byte granule of the arenas. Taking a block that someone else holds is
// caught by the exchange, not by luck.
class Ownership {
public:
    explicit Ownership(Pool& pool) {
        // Learn the arenas' address range once, single-threaded.
        for (int c = 0; c < pool.class_count(); ++c) {
            std::vector<void*> blocks;
            while (void* block = pool.allocate_class(c)) blocks.push_back(block);
            for (void* block : blocks) {
                const auto address = reinterpret_cast<std::uintptr_t>(block);
                if (low_ == 0 || address < low_) low_ = address;
                if (address + pool.class_block_bytes(c) > high_) high_ = address + pool.class_block_bytes(c);
                pool.free(block);
            }
        }
        pool.release_thread_cache();
        owners_ = std::make_unique<std::atomic<int>[]>((high_ - low_) / 64);
        for (std::size_t i = 0; i < (high_ - low_) / 64; ++i) owners_[i].store(-1);
    }
    // true when the block was free in our books; records `owner`.
    bool take(void* block, int owner) { return slot(block).exchange(owner) == -1; }
    // true when `owner` held it; marks it free (before it goes back to the pool).
    bool give(void* block, int owner) {
        int expected = owner;
        return slot(block).compare_exchange_strong(expected, -1);
    }

private:
    std::atomic<int>& slot(void* block) {
        const auto address = reinterpret_cast<std::uintptr_t>(block);
        REQUIRE(address >= low_);
        REQUIRE(address < high_);
        return owners_[(address - low_) / 64];
    }
    std::uintptr_t low_ = 0, high_ = 0;
    std::unique_ptr<std::atomic<int>[]> owners_;
};

// A block's first and last 16 bytes carry (owner, sequence) (once when they would overlap); checked before the block
// is freed.
struct Stamp {
    std::uint64_t owner;
    std::uint64_t sequence;
};

void stamp(void* block, std::size_t bytes, Stamp value) {
    std::memcpy(block, &value, sizeof value);
    if (bytes >= 2 * sizeof value) std::memcpy(static_cast<char*>(block) + bytes - sizeof value, &value, sizeof value);
}

bool stamped(const void* block, std::size_t bytes, Stamp value) {
    Stamp head, tail;
    std::memcpy(&head, block, sizeof head);
    std::memcpy(&tail, static_cast<const char*>(block) + (bytes >= 2 * sizeof tail ? bytes - sizeof tail : 0),
                sizeof tail);
    return head.owner == value.owner && head.sequence == value.sequence && tail.owner == value.owner &&
           tail.sequence == value.sequence;
}

void expect_all_returned(Pool& pool) {
    const PoolStats stats = stats_of(pool);
    CHECK(stats.total.in_use_blocks == 0);
    CHECK(stats.total.requested_bytes == 0);
    CHECK(stats.total.cached_blocks == 0);   // the threads exited: their caches went back
    // The full capacity of every class is allocatable again, from this thread.
    for (int c = 0; c < pool.class_count(); ++c) {
        CAPTURE(c);
        std::vector<void*> blocks;
        while (void* block = pool.allocate_class(c)) blocks.push_back(block);
        CHECK(blocks.size() == pool.class_capacity(c));
        for (void* block : blocks) pool.free(block);
    }
    pool.release_thread_cache();
}

}  // namespace

TEST_CASE("cross-thread frees: a producer allocates, a consumer frees, every block comes back") {
    for (const std::uint32_t cache_blocks : {0u, 16u, 64u}) {
        CAPTURE(cache_blocks);
        auto pool = create_pool(small_config(200, cache_blocks, cache_blocks / 2));
        Ownership owners(*pool);
        const PoolStats baseline = stats_of(*pool);   // Ownership drained each class once
        struct Item {
            void* block;
            std::size_t bytes;
            std::uint64_t sequence;
        };
        std::mutex mutex;
        std::deque<Item> queue;
        bool done = false;
        const int items = 20000 * kScale;
        std::atomic<std::uint64_t> producer_failures{0}, bad{0};

        std::thread producer([&] {
            std::mt19937_64 rng(7 + cache_blocks);
            for (int i = 0; i < items;) {
                const std::size_t bytes = 16 + rng() % (cf::mem::default_class_bytes(7) - 16);
                void* block = pool->allocate(bytes);
                if (block == nullptr) {   // the consumer's cache holds the rest: wait for its next flush
                    producer_failures.fetch_add(1, std::memory_order_relaxed);
                    std::this_thread::yield();
                    continue;
                }
                if (!owners.take(block, 1)) bad.fetch_add(1);
                stamp(block, bytes, {1, static_cast<std::uint64_t>(i)});
                // Ownership moves to the consumer with the item.
                if (!owners.give(block, 1) || !owners.take(block, 2)) bad.fetch_add(1);
                const std::lock_guard lock(mutex);
                queue.push_back({block, bytes, static_cast<std::uint64_t>(i)});
                ++i;
            }
            const std::lock_guard lock(mutex);
            done = true;
        });
        std::thread consumer([&] {
            std::uint64_t expected_sequence = 0;
            for (;;) {
                Item item{};
                {
                    const std::lock_guard lock(mutex);
                    if (queue.empty()) {
                        if (done) break;
                    } else {
                        item = queue.front();
                        queue.pop_front();
                    }
                }
                if (item.block == nullptr) {
                    std::this_thread::yield();
                    continue;
                }
                if (item.sequence != expected_sequence++ || !stamped(item.block, item.bytes, {1, item.sequence})) {
                    bad.fetch_add(1);
                }
                if (!owners.give(item.block, 2)) bad.fetch_add(1);
                pool->free(item.block);
            }
        });
        producer.join();
        consumer.join();
        CHECK(bad.load() == 0);
        const PoolStats stats = stats_of(*pool);
        std::uint64_t class_failures = 0;
        for (int c = 0; c < stats.class_count; ++c) class_failures += stats.classes[c].failed_allocations;
        CHECK(class_failures - baseline.total.failed_allocations == producer_failures.load());
        CHECK(stats.out_of_range_requests == 0);
        expect_all_returned(*pool);
    }
}

TEST_CASE("several threads allocate and free at once, handing some blocks to each other") {
    for (const std::uint32_t cache_blocks : {0u, 4u, 32u}) {
        CAPTURE(cache_blocks);
        constexpr int kThreads = 4;
        // Small enough that threads sometimes run a class dry (caches park up to 4 x 32 blocks of one class).
        auto pool = create_pool(small_config(40, cache_blocks, cache_blocks == 0 ? 0 : cache_blocks / 2 + 1));
        Ownership owners(*pool);
        const PoolStats baseline = stats_of(*pool);
        struct Held {
            void* block;
            std::size_t bytes;
            Stamp stamp;
        };
        struct Inbox {
            std::mutex mutex;
            std::vector<Held> items;
        };
        Inbox inboxes[kThreads];
        std::atomic<std::uint64_t> bad{0}, allocations{0}, failures{0};
        std::atomic<int> running{kThreads};

        auto worker = [&](int id) {
            std::mt19937_64 rng(1000 + static_cast<unsigned>(id) * 77 + cache_blocks);
            std::vector<Held> held;
            std::uint64_t sequence = 0;
            auto release = [&](const Held& item) {
                if (!stamped(item.block, item.bytes, item.stamp) || !owners.give(item.block, id)) bad.fetch_add(1);
                pool->free(item.block);
            };
            for (int step = 0; step < 15000 * kScale; ++step) {
                const std::uint64_t r = rng();
                if (held.size() < 24 && r % 100 < 45) {
                    // A class chosen uniformly, then a size inside it (at least 16 B for the stamp).
                    const int pick = static_cast<int>(rng() % 8);
                    const std::size_t low = pick == 0 ? 16 : cf::mem::default_class_bytes(pick - 1) + 1;
                    const std::size_t bytes = low + rng() % (cf::mem::default_class_bytes(pick) - low + 1);
                    const bool by_class = r % 7 == 0;
                    void* block = by_class ? pool->allocate_class(static_cast<int>(rng() % 8)) : pool->allocate(bytes);
                    if (block == nullptr) {
                        failures.fetch_add(1, std::memory_order_relaxed);
                        continue;
                    }
                    allocations.fetch_add(1, std::memory_order_relaxed);
                    if (!owners.take(block, id)) bad.fetch_add(1);
                    const std::size_t size = by_class ? 64 : bytes;   // allocate_class: at least 64 B
                    const Held item{block, size, {static_cast<std::uint64_t>(id), sequence++}};
                    stamp(block, size, item.stamp);
                    held.push_back(item);
                } else if (!held.empty() && r % 100 < 80) {   // free one of ours
                    const std::size_t pick = rng() % held.size();
                    release(held[pick]);
                    held[pick] = held.back();
                    held.pop_back();
                } else if (!held.empty() && r % 100 < 90) {
                    // Hand one block to the next thread: it will verify our stamp and free it there. Bounded, so
                    // a thread the scheduler parks (2 cores, 4 threads) does not end up holding every block.
                    const int to = (id + 1) % kThreads;
                    const std::lock_guard lock(inboxes[to].mutex);
                    if (inboxes[to].items.size() < 16) {
                        const Held item = held.back();
                        held.pop_back();
                        if (!owners.give(item.block, id) || !owners.take(item.block, to)) bad.fetch_add(1);
                        inboxes[to].items.push_back(item);
                    }
                } else {
                    std::vector<Held> received;
                    {
                        const std::lock_guard lock(inboxes[id].mutex);
                        received.swap(inboxes[id].items);
                    }
                    for (const Held& item : received) release(item);
                }
            }
            for (const Held& item : held) release(item);
            running.fetch_sub(1);
            // Keep draining the inbox until every thread stopped sending.
            for (;;) {
                const bool last_round = running.load() == 0;
                std::vector<Held> received;
                {
                    const std::lock_guard lock(inboxes[id].mutex);
                    received.swap(inboxes[id].items);
                }
                for (const Held& item : received) release(item);
                if (last_round) break;
                std::this_thread::yield();
            }
        };
        std::vector<std::thread> threads;
        for (int t = 0; t < kThreads; ++t) threads.emplace_back(worker, t);
        for (auto& thread : threads) thread.join();
        CHECK(bad.load() == 0);
        CHECK(allocations.load() > 0);
        const PoolStats stats = stats_of(*pool);
        CHECK(stats.total.failed_allocations - baseline.total.failed_allocations == failures.load());
        MESSAGE("allocations " << allocations.load() << ", failed " << failures.load());
        expect_all_returned(*pool);
    }
}

TEST_CASE("shared lists without caches: single-block pops and pushes race (ABA), nothing lost or doubled") {
    for (const std::uint32_t cache_blocks : {0u, 2u}) {
        CAPTURE(cache_blocks);
        // Few blocks, many threads: the same indices cycle through the stack head constantly.
        PoolConfig config;
        config.classes.push_back({64, 8, 0});   // 6 threads x 3 held > 8: exhaustion, too
        config.max_threads = 8;
        config.cache_blocks = cache_blocks;
        config.batch_blocks = cache_blocks == 0 ? 0 : 2;
        config.prefer_hugepages = false;
        auto pool = create_pool(config);
        Ownership owners(*pool);
        const PoolStats baseline = stats_of(*pool);
        constexpr int kThreads = 6;   // more threads than cores: preemption inside a pop widens ABA windows
        std::atomic<std::uint64_t> bad{0}, successes{0}, failures{0};
        std::vector<std::thread> threads;
        for (int t = 0; t < kThreads; ++t) {
            threads.emplace_back([&, t] {
                void* held[3] = {};
                std::uint64_t stamps[3] = {};
                std::uint64_t sequence = 0;
                for (int i = 0; i < 100000 * kScale; ++i) {
                    void*& slot = held[i % 3];
                    const Stamp mine{static_cast<std::uint64_t>(t), stamps[i % 3]};
                    if (slot == nullptr) {
                        slot = pool->allocate(64);
                        if (slot == nullptr) {
                            failures.fetch_add(1, std::memory_order_relaxed);
                            continue;
                        }
                        successes.fetch_add(1, std::memory_order_relaxed);
                        if (!owners.take(slot, t)) bad.fetch_add(1);
                        stamps[i % 3] = ++sequence;
                        stamp(slot, 64, {static_cast<std::uint64_t>(t), sequence});
                    } else {
                        if (!stamped(slot, 64, mine) || !owners.give(slot, t)) bad.fetch_add(1);
                        pool->free(slot);
                        slot = nullptr;
                    }
                }
                for (void*& slot : held) {
                    if (slot != nullptr) {
                        if (!owners.give(slot, t)) bad.fetch_add(1);
                        pool->free(slot);
                    }
                }
            });
        }
        for (auto& thread : threads) thread.join();
        CHECK(bad.load() == 0);
        const PoolStats stats = stats_of(*pool);
        CHECK(stats.classes[0].failed_allocations - baseline.classes[0].failed_allocations == failures.load());
        CHECK(stats.classes[0].high_water_blocks <= 8);
        MESSAGE("successes " << successes.load() << ", failures " << failures.load());
        expect_all_returned(*pool);
    }
}

TEST_CASE("threads that exit return their cached blocks; more threads than slots still account exactly") {
    PoolConfig config = small_config(64, 32, 16);
    config.max_threads = 3;   // 6 threads below: some get no slot and work uncached
    auto pool = create_pool(config);
    for (int round = 0; round < 3; ++round) {
        std::vector<std::thread> threads;
        for (int t = 0; t < 6; ++t) {
            threads.emplace_back([&, t] {
                std::mt19937_64 rng(static_cast<unsigned>(round * 10 + t));
                std::vector<void*> blocks;
                for (int i = 0; i < 400 * kScale; ++i) {
                    if (blocks.size() < 20 && rng() % 2 == 0) {
                        if (void* block = pool->allocate_class(static_cast<int>(rng() % 8))) blocks.push_back(block);
                    } else if (!blocks.empty()) {
                        pool->free(blocks.back());
                        blocks.pop_back();
                    }
                }
                for (void* block : blocks) pool->free(block);
            });
        }
        for (auto& thread : threads) thread.join();
        expect_all_returned(*pool);
    }
}
