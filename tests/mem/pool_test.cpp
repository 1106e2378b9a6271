// Static pool, one thread at a time: size classes against a reference, configuration errors, alignment,
// exhaustion and reuse of every class, a random allocate/free sequence against a model (no overlap, contents kept,
// stats exact), bad input, stats on a known sequence, thread caches handed back at thread exit.
#include <doctest/doctest.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <iterator>
#include <map>
#include <memory>
#include <random>
#include <set>
#include <thread>
#include <vector>

#include "engine/mem/pool.hpp"
#include "platform/os/last_error.hpp"
#include "tests/mem/pool_test_support.hpp"

using cf::mem::ClassStats;
using cf::mem::Pool;
using cf::mem::PoolConfig;
using cf::mem::PoolStats;
using namespace cf::test;

namespace {

// create_pool, and the pool exists.
std::unique_ptr<Pool> make_pool(const PoolConfig& config) {
    std::unique_ptr<Pool> pool = create_pool(config);
    REQUIRE(pool != nullptr);
    return pool;
}

// Default classes with `blocks(i)` blocks in class i.
template <typename Blocks>
PoolConfig default_classes(Blocks blocks, std::uint32_t cache_blocks = 8, std::uint32_t batch_blocks = 4) {
    return default_size_classes(cf::mem::kDefaultClassCount, blocks, cache_blocks, batch_blocks);
}

// The smallest class (in `sizes`) that holds `bytes`, by linear search.
int reference_class(const std::vector<std::size_t>& sizes, std::size_t bytes) {
    if (bytes == 0) return -1;
    for (std::size_t i = 0; i < sizes.size(); ++i) {
        if (sizes[i] >= bytes) return static_cast<int>(i);
    }
    return -1;
}

std::uint8_t pattern_byte(std::uint64_t tag, std::size_t offset) {
    return static_cast<std::uint8_t>((tag * 0x9E3779B97F4A7C15ull + offset * 131) >> 56);
}

void fill_pattern(void* block, std::size_t bytes, std::uint64_t tag) {
    auto* data = static_cast<std::uint8_t*>(block);
    for (std::size_t i = 0; i < bytes; ++i) data[i] = pattern_byte(tag, i);
}

bool pattern_intact(const void* block, std::size_t bytes, std::uint64_t tag) {
    const auto* data = static_cast<const std::uint8_t*>(block);
    for (std::size_t i = 0; i < bytes; ++i) {
        if (data[i] != pattern_byte(tag, i)) return false;
    }
    return true;
}

}  // namespace

TEST_CASE("size_class_of: powers of two from 64 B to 64 KiB, exactly") {
    std::vector<std::size_t> sizes;
    for (int i = 0; i < cf::mem::kDefaultClassCount; ++i) sizes.push_back(cf::mem::default_class_bytes(i));
    CHECK(sizes.back() == 65536);
    for (std::size_t bytes = 0; bytes <= 65536 + 200; ++bytes) {
        CAPTURE(bytes);
        REQUIRE(cf::mem::size_class_of(bytes) == reference_class(sizes, bytes));
    }
    CHECK(cf::mem::size_class_of(SIZE_MAX) == -1);
    CHECK(cf::mem::size_class_of(SIZE_MAX / 2 + 1) == -1);
}

TEST_CASE("SizeClassMap: a caller's list, with and without the power-of-two shortcut") {
    const std::vector<std::vector<std::size_t>> lists = {
        {64, 192, 320, 1024, 1088},         // table lookup
        {256, 512, 1024, 2048},             // consecutive powers from 256: bit trick
        {128},                              // one class
        {64, 128, 512},                     // powers, but not consecutive: table
        {cf::mem::kMaxBlockBytes},          // the largest allowed class alone
    };
    for (const auto& sizes : lists) {
        CAPTURE(sizes.front());
        CAPTURE(sizes.size());
        cf::mem::SizeClassMap map;
        REQUIRE(map.init(sizes.data(), static_cast<int>(sizes.size())) == 0);
        CHECK(map.count() == static_cast<int>(sizes.size()));
        CHECK(map.max_bytes() == sizes.back());
        for (std::size_t i = 0; i < sizes.size(); ++i) CHECK(map.block_bytes(static_cast<int>(i)) == sizes[i]);
        const std::size_t step = sizes.back() > 100000 ? 61 : 1;
        for (std::size_t bytes = 0; bytes <= sizes.back() + 130; bytes += step) {
            CAPTURE(bytes);
            REQUIRE(map.class_of(bytes) == reference_class(sizes, bytes));
        }
        CHECK(map.class_of(sizes.back()) == static_cast<int>(sizes.size()) - 1);
        CHECK(map.class_of(SIZE_MAX) == -1);
    }
    cf::mem::SizeClassMap pow2;
    const std::size_t powers[] = {256, 512, 1024};
    REQUIRE(pow2.init(powers, 3) == 0);
    CHECK(pow2.powers_of_two());
    const std::size_t not_consecutive[] = {64, 128, 512};
    REQUIRE(pow2.init(not_consecutive, 3) == 0);
    CHECK_FALSE(pow2.powers_of_two());
}

TEST_CASE("SizeClassMap: bad lists are refused with a message") {
    cf::mem::SizeClassMap map;
    const std::size_t unaligned[] = {64, 100};
    const std::size_t descending[] = {128, 64};
    const std::size_t duplicate[] = {64, 64};
    const std::size_t zero[] = {0, 64};
    const std::size_t too_large[] = {64, cf::mem::kMaxBlockBytes + 64};
    std::size_t too_many[cf::mem::kMaxClasses + 1];
    for (int i = 0; i <= cf::mem::kMaxClasses; ++i) too_many[i] = 64 * static_cast<std::size_t>(i + 1);
    struct Case { const std::size_t* sizes; int count; };
    for (const Case c : {Case{unaligned, 2}, Case{descending, 2}, Case{duplicate, 2}, Case{zero, 2},
                         Case{too_large, 2}, Case{too_many, cf::mem::kMaxClasses + 1}, Case{unaligned, 0}}) {
        cf::platform::clear_last_error();
        CHECK(map.init(c.sizes, c.count) == -EINVAL);
        CHECK(std::strlen(cf::platform::last_error_message()) > 0);
        CHECK(map.count() == 0);
        CHECK(map.class_of(64) == -1);   // a refused map serves nothing
    }
    REQUIRE(map.init(too_many, cf::mem::kMaxClasses) == 0);   // exactly the maximum is fine
    CHECK(map.class_of(64 * cf::mem::kMaxClasses) == cf::mem::kMaxClasses - 1);
}

TEST_CASE("create: bad configurations fail with -EINVAL or -ENOMEM and a message, leaving no pool") {
    auto expect_failure = [](const PoolConfig& config, int expected) {
        std::unique_ptr<Pool> pool;
        cf::platform::clear_last_error();
        CHECK(Pool::create(config, pool) == expected);
        CHECK(pool == nullptr);
        CHECK(std::strlen(cf::platform::last_error_message()) > 0);
    };
    const PoolConfig good = default_classes([](int) { return std::size_t{4}; });
    {
        PoolConfig config = good;
        config.classes.clear();
        expect_failure(config, -EINVAL);
    }
    {
        PoolConfig config = good;
        config.classes[3].blocks = 0;        // and no budget
        expect_failure(config, -EINVAL);
        config.classes[3].budget_bytes = config.classes[3].block_bytes - 1;   // a budget below one block
        expect_failure(config, -EINVAL);
    }
    {
        PoolConfig config = good;
        config.classes[1].block_bytes = 100;
        expect_failure(config, -EINVAL);
    }
    {
        PoolConfig config = good;
        config.max_threads = 0;
        expect_failure(config, -EINVAL);
        config.max_threads = Pool::kMaxThreads + 1;
        expect_failure(config, -EINVAL);
    }
    {
        PoolConfig config = good;
        config.cache_blocks = cf::mem::kMaxCacheBlocks + 1;
        expect_failure(config, -EINVAL);
        config.cache_blocks = 8;
        config.batch_blocks = 9;
        expect_failure(config, -EINVAL);
    }
    {
        PoolConfig config = good;
        config.classes.resize(cf::mem::kMaxClasses + 1, {64, 1, 0});
        expect_failure(config, -EINVAL);
    }
    {
        PoolConfig config = good;
        config.classes.back().blocks = std::size_t{Pool::kMaxBlocksPerClass} + 1;
        expect_failure(config, -EINVAL);
    }
    {
        // 2^31 - 2 blocks of 1 MiB: 2 PiB, more than any address space.
        PoolConfig config;
        config.classes.push_back({cf::mem::kMaxBlockBytes, Pool::kMaxBlocksPerClass, 0});
        config.prefer_hugepages = false;
        expect_failure(config, -ENOMEM);
    }
}

TEST_CASE("create: budgets, defaults and the hugepage warning") {
    PoolConfig config = PoolConfig::powers_of_two(64 * 1024);
    config.prefer_hugepages = false;
    config.max_threads = 4;
    auto pool = make_pool(config);
    REQUIRE(pool->class_count() == cf::mem::kDefaultClassCount);
    for (int i = 0; i < pool->class_count(); ++i) {
        CHECK(pool->class_block_bytes(i) == cf::mem::default_class_bytes(i));
        CHECK(pool->class_capacity(i) == 64 * 1024 / cf::mem::default_class_bytes(i));   // 1024 .. 1
    }
    PoolStats stats = stats_of(*pool);
    CHECK(stats.class_count == cf::mem::kDefaultClassCount);
    CHECK(stats.total.capacity_bytes == 11u * 64 * 1024);
    CHECK(stats.total.capacity_blocks == 1024 + 512 + 256 + 128 + 64 + 32 + 16 + 8 + 4 + 2 + 1);
    CHECK(stats.total.in_use_blocks == 0);
    CHECK(stats.total.high_water_blocks == 0);
    CHECK(stats.region_bytes >= stats.total.capacity_bytes);
    CHECK_FALSE(stats.small_pages_fallback);   // 4 KiB pages were asked for: nothing to warn about
    CHECK(std::string(pool->warning()).empty());

    // Asked for hugepages: either we got them, or the flag and a printable message say we did not.
    config.prefer_hugepages = true;
    auto preferring = make_pool(config);
    stats = stats_of(*preferring);
    CHECK(stats.hugepages == preferring->hugepages());
    CHECK(stats.small_pages_fallback == !stats.hugepages);
    CHECK(std::string(preferring->warning()).empty() == stats.hugepages);
    if (!stats.hugepages) MESSAGE(preferring->warning());
}

TEST_CASE("blocks are 64-byte aligned, inside the pool, and as large as asked") {
    auto pool = make_pool(default_classes([](int) { return std::size_t{5}; }));
    for (int c = 0; c < pool->class_count(); ++c) {
        const std::size_t block_bytes = pool->class_block_bytes(c);
        for (void* block : drain_class(*pool, c)) {
            CHECK(reinterpret_cast<std::uintptr_t>(block) % 64 == 0);
            // Power-of-two blocks up to a page are naturally aligned (arenas start on segments of >= 4 KiB).
            CHECK(reinterpret_cast<std::uintptr_t>(block) % std::min<std::size_t>(block_bytes, 4096) == 0);
            CHECK(pool->owns(block));
            std::memset(block, 0xab, block_bytes);   // the whole block is ours (ASan would see an overrun)
            pool->free(block);
        }
    }
    for (std::size_t bytes : {std::size_t{1}, std::size_t{63}, std::size_t{64}, std::size_t{65}, std::size_t{1000},
                              std::size_t{4097}, std::size_t{65536}}) {
        void* block = pool->allocate(bytes);
        REQUIRE(block != nullptr);
        CHECK(pool->class_block_bytes(pool->class_of(bytes)) >= bytes);
        CHECK(reinterpret_cast<std::uintptr_t>(block) % 64 == 0);
        pool->free(block);
    }
}

TEST_CASE("exhaustion: each class hands out exactly its capacity, then nullptr, counted per class") {
    for (const std::uint32_t cache_blocks : {0u, 1u, 8u, 64u}) {
        CAPTURE(cache_blocks);
        auto blocks_of = [](int i) { return std::size_t{3} + static_cast<std::size_t>(i) * 7; };
        auto pool = make_pool(default_classes(blocks_of, cache_blocks, cache_blocks == 0 ? 0 : cache_blocks / 2 + 1));
        std::uint64_t failed_total = 0;
        for (int c = 0; c < pool->class_count(); ++c) {
            CAPTURE(c);
            std::vector<void*> blocks = drain_class(*pool, c);   // one failure ends the drain
            CHECK(blocks.size() == blocks_of(c));
            const std::set<void*> distinct(blocks.begin(), blocks.end());
            CHECK(distinct.size() == blocks.size());
            const std::size_t bytes = pool->class_block_bytes(c);
            for (int extra = 0; extra < c; ++extra) CHECK(pool->allocate(bytes) == nullptr);   // by size, too
            failed_total += 1 + static_cast<std::uint64_t>(c);
            const PoolStats stats = stats_of(*pool);
            CHECK(stats.classes[c].failed_allocations == 1 + static_cast<std::uint64_t>(c));
            CHECK(stats.classes[c].in_use_blocks == blocks_of(c));
            CHECK(stats.classes[c].cached_blocks == 0);
            CHECK(stats.classes[c].high_water_blocks == blocks_of(c));
            CHECK(stats.total.failed_allocations == failed_total);
            CHECK(stats.out_of_range_requests == 0);
            // Other classes are untouched by this one's exhaustion.
            if (c + 1 < pool->class_count()) CHECK(stats.classes[c + 1].in_use_blocks == 0);
        }
    }
}

TEST_CASE("everything freed is reusable: allocate all, free all, allocate all again gives the same blocks") {
    for (const std::uint32_t cache_blocks : {0u, 4u, 32u}) {
        CAPTURE(cache_blocks);
        auto pool = make_pool(default_classes([](int i) { return std::size_t{40} >> (i / 3); }, cache_blocks,
                                              cache_blocks / 2));
        for (int round = 0; round < 3; ++round) {
            std::set<void*> first, second;
            std::vector<std::vector<void*>> held(static_cast<std::size_t>(pool->class_count()));
            for (int c = 0; c < pool->class_count(); ++c) {
                held[static_cast<std::size_t>(c)] = drain_class(*pool, c);
                first.insert(held[static_cast<std::size_t>(c)].begin(), held[static_cast<std::size_t>(c)].end());
            }
            // Free in a scrambled order, mixing classes.
            std::vector<void*> all(first.begin(), first.end());
            std::mt19937_64 rng(42 + static_cast<unsigned>(round));
            std::shuffle(all.begin(), all.end(), rng);
            for (void* block : all) pool->free(block);
            PoolStats stats = stats_of(*pool);
            CHECK(stats.total.in_use_blocks == 0);
            CHECK(stats.total.requested_bytes == 0);
            for (int c = 0; c < pool->class_count(); ++c) {
                for (void* block : drain_class(*pool, c)) second.insert(block);
            }
            CHECK(second == first);
            CHECK(second.size() == stats.total.capacity_blocks);
            for (void* block : second) pool->free(block);
        }
    }
}

TEST_CASE("random allocate/free against a model: no overlap, contents kept, exhaustion and stats exact") {
    // Small classes so the sequence runs into exhaustion often; a custom (non power-of-two) list.
    PoolConfig config;
    const std::vector<std::size_t> sizes = {64, 192, 448, 1024, 4096, 9984};
    const std::vector<std::size_t> counts = {150, 100, 60, 40, 12, 5};
    for (std::size_t i = 0; i < sizes.size(); ++i) config.classes.push_back({sizes[i], counts[i], 0});
    config.max_threads = 2;
    config.cache_blocks = 16;
    config.batch_blocks = 5;
    config.prefer_hugepages = false;
    config.exact_requested_bytes = true;
    auto pool = make_pool(config);

    struct Live {
        std::size_t requested;
        std::size_t block_bytes;
        std::uint64_t tag;
    };
    std::map<std::uintptr_t, Live> live;     // by address: neighbours show overlaps
    std::vector<std::uintptr_t> order;       // live addresses, for picking a random one to free
    std::vector<std::uint64_t> in_use(sizes.size()), requested(sizes.size()), failed(sizes.size());
    std::vector<std::uint64_t> allocations(sizes.size());
    std::uint64_t out_of_range = 0;
    std::mt19937_64 rng(20240611);
    std::uint64_t next_tag = 1;

    for (int step = 0; step < 40000; ++step) {
        // Phases of mostly allocating (into exhaustion of every class) and mostly freeing.
        const std::uint64_t allocate_percent = (step / 4000) % 2 == 0 ? 80 : 25;
        const bool do_allocate = order.empty() || rng() % 100 < allocate_percent;
        if (do_allocate) {
            // A class chosen uniformly, then a size inside it; sometimes 0 or too large.
            const std::size_t pick = rng() % sizes.size();
            const std::size_t below = pick == 0 ? 0 : sizes[pick - 1];
            std::size_t bytes = below + 1 + rng() % (sizes[pick] - below);
            if (rng() % 50 == 0) bytes = rng() % 2 == 0 ? 0 : 9984 + 1 + rng() % 100000;
            const int expected_class = reference_class(sizes, bytes);
            void* block = pool->allocate(bytes);
            if (expected_class < 0) {
                REQUIRE(block == nullptr);
                ++out_of_range;
                continue;
            }
            const auto c = static_cast<std::size_t>(expected_class);
            if (in_use[c] == counts[c]) {     // one thread: exhausted exactly when the model says so
                REQUIRE(block == nullptr);
                ++failed[c];
                continue;
            }
            REQUIRE(block != nullptr);
            const auto address = reinterpret_cast<std::uintptr_t>(block);
            REQUIRE(address % 64 == 0);
            // No overlap with the live neighbours on either side.
            auto after = live.lower_bound(address);
            if (after != live.end()) REQUIRE(address + sizes[c] <= after->first);
            if (after != live.begin()) {
                const auto before = std::prev(after);
                REQUIRE(before->first + before->second.block_bytes <= address);
            }
            const std::uint64_t tag = next_tag++;
            fill_pattern(block, bytes, tag);
            live.emplace(address, Live{bytes, sizes[c], tag});
            order.push_back(address);
            ++in_use[c];
            requested[c] += bytes;
            ++allocations[c];
        } else {
            const std::size_t pick = rng() % order.size();
            const std::uintptr_t address = order[pick];
            order[pick] = order.back();
            order.pop_back();
            const Live entry = live.at(address);
            REQUIRE(pattern_intact(reinterpret_cast<void*>(address), entry.requested, entry.tag));
            live.erase(address);
            const auto c = static_cast<std::size_t>(reference_class(sizes, entry.requested));
            --in_use[c];
            requested[c] -= entry.requested;
            pool->free(reinterpret_cast<void*>(address));
        }
        if (step % 997 == 0 || step == 39999) {
            const PoolStats stats = stats_of(*pool);
            std::uint64_t failed_total = out_of_range;
            for (std::size_t c = 0; c < sizes.size(); ++c) {
                CAPTURE(c);
                const ClassStats& s = stats.classes[c];
                REQUIRE(s.in_use_blocks == in_use[c]);
                REQUIRE(s.requested_bytes == requested[c]);
                REQUIRE(s.sampled_allocations <= allocations[c]);
                REQUIRE(s.failed_allocations == failed[c]);
                REQUIRE(s.in_use_blocks + s.cached_blocks <= s.capacity_blocks);
                REQUIRE(s.cached_blocks <= config.cache_blocks);
                REQUIRE(s.high_water_blocks >= s.in_use_blocks + s.cached_blocks);
                REQUIRE(s.high_water_blocks <= s.capacity_blocks);
                failed_total += failed[c];
            }
            REQUIRE(stats.out_of_range_requests == out_of_range);
            REQUIRE(stats.total.failed_allocations == failed_total);
        }
    }
    // Every class was driven into exhaustion at least once, and everything still checks out.
    for (std::size_t c = 0; c < sizes.size(); ++c) CHECK_MESSAGE(failed[c] > 0, "class " << c);
    for (const auto& [address, entry] : live) {
        REQUIRE(pattern_intact(reinterpret_cast<void*>(address), entry.requested, entry.tag));
        pool->free(reinterpret_cast<void*>(address));
    }
    CHECK(stats_of(*pool).total.in_use_blocks == 0);
}

TEST_CASE("bad input: 0 bytes, too large, bad class index, nullptr and foreign frees") {
    auto pool = make_pool(default_classes([](int) { return std::size_t{4}; }));
    CHECK(pool->allocate(0) == nullptr);
    CHECK(pool->allocate(65537) == nullptr);
    CHECK(pool->allocate(SIZE_MAX) == nullptr);
    CHECK(pool->allocate_class(-1) == nullptr);
    CHECK(pool->allocate_class(pool->class_count()) == nullptr);
    CHECK(pool->allocate_class(1000000) == nullptr);
    CHECK(pool->class_of(0) == -1);
    CHECK(pool->class_of(65537) == -1);
    PoolStats stats = stats_of(*pool);
    CHECK(stats.out_of_range_requests == 6);
    CHECK(stats.total.failed_allocations == 6);
    for (int c = 0; c < stats.class_count; ++c) CHECK(stats.classes[c].failed_allocations == 0);

    pool->free(nullptr);                        // a no-op, not counted
    int on_stack = 0;
    pool->free(&on_stack);                      // not ours
    void* block = pool->allocate(100);          // a 128 B block
    REQUIRE(block != nullptr);
    pool->free(static_cast<char*>(block) + 64); // inside a block, not at its start
    stats = stats_of(*pool);
    CHECK(stats.rejected_frees == 2);
    CHECK(stats.classes[1].in_use_blocks == 1);
    pool->free(block);
    stats = stats_of(*pool);
    CHECK(stats.rejected_frees == 2);
    CHECK(stats.total.in_use_blocks == 0);
    CHECK_FALSE(pool->owns(&on_stack));
    CHECK_FALSE(pool->owns(nullptr));
    // None of it disturbed the lists: every class still gives its full capacity.
    for (int c = 0; c < pool->class_count(); ++c) CHECK(drain_class(*pool, c).size() == 4);
}

TEST_CASE("exact accounting: stats are exact on a known sequence: in use, requested, cached, high water, failed, "
          "fragmentation") {
    PoolConfig config;
    config.classes = {{64, 100, 0}, {1024, 0, 10 * 1024 + 1000}};   // the second by budget: 10 blocks
    config.max_threads = 2;
    config.cache_blocks = 8;
    config.batch_blocks = 4;
    config.prefer_hugepages = false;
    config.exact_requested_bytes = true;
    auto pool = make_pool(config);
    REQUIRE(pool->class_capacity(1) == 10);

    std::vector<void*> small, large;
    for (int i = 0; i < 3; ++i) small.push_back(pool->allocate(40));
    for (int i = 0; i < 2; ++i) large.push_back(pool->allocate(1000));
    PoolStats stats = stats_of(*pool);
    CHECK(stats.classes[0].in_use_blocks == 3);
    CHECK(stats.classes[0].in_use_bytes == 192);
    CHECK(stats.classes[0].requested_bytes == 120);
    CHECK(stats.classes[0].fragmentation_percent == doctest::Approx(37.5));       // 1 - 120 / 192
    CHECK(stats.classes[0].cached_blocks == 1);                                     // one batch of 4 came out
    CHECK(stats.classes[0].high_water_blocks == 4);
    CHECK(stats.classes[1].requested_bytes == 2000);
    CHECK(stats.classes[1].fragmentation_percent == doctest::Approx(100.0 * 48 / 2048));
    CHECK(stats.total.in_use_blocks == 5);
    CHECK(stats.total.in_use_bytes == 192 + 2048);
    CHECK(stats.total.requested_bytes == 2120);
    CHECK(stats.total.fragmentation_percent == doctest::Approx(100.0 * (1 - 2120.0 / 2240)));
    CHECK(stats.total.capacity_blocks == 110);
    CHECK(stats.total.capacity_bytes == 100 * 64 + 10 * 1024);

    // 10 more small ones: the cache runs dry and refills by 4 three more times.
    for (int i = 0; i < 10; ++i) small.push_back(pool->allocate(64));
    stats = stats_of(*pool);
    CHECK(stats.classes[0].in_use_blocks == 13);
    CHECK(stats.classes[0].requested_bytes == 120 + 640);
    CHECK(stats.classes[0].cached_blocks == 3);
    CHECK(stats.classes[0].high_water_blocks == 16);

    // Free them all: the cache fills to 8, then flushes 4 at a time, twice.
    for (void* block : small) pool->free(block);
    stats = stats_of(*pool);
    CHECK(stats.classes[0].in_use_blocks == 0);
    CHECK(stats.classes[0].requested_bytes == 0);
    CHECK(stats.classes[0].fragmentation_percent == 0);
    CHECK(stats.classes[0].cached_blocks == 8);
    CHECK(stats.classes[0].high_water_blocks == 16);   // a peak stays

    // Exhaust the large class: 8 more succeed, the next 3 fail.
    for (int i = 0; i < 11; ++i) {
        if (void* block = pool->allocate_class(1)) large.push_back(block);
    }
    CHECK(large.size() == 10);
    stats = stats_of(*pool);
    CHECK(stats.classes[1].in_use_blocks == 10);
    CHECK(stats.classes[1].failed_allocations == 3);
    CHECK(stats.classes[1].high_water_blocks == 10);
    CHECK(stats.classes[1].requested_bytes == 2000 + 8 * 1024);   // allocate_class records the block size
    CHECK(pool->allocate(1000) == nullptr);                      // exhausted by size as well
    CHECK(pool->allocate(5000) == nullptr);                      // no class at all
    stats = stats_of(*pool);
    CHECK(stats.classes[1].failed_allocations == 4);
    CHECK(stats.out_of_range_requests == 1);
    CHECK(stats.total.failed_allocations == 5);

    for (void* block : large) pool->free(block);
    pool->release_thread_cache();   // the cached blocks go back: nothing is out of the shared lists
    stats = stats_of(*pool);
    CHECK(stats.total.in_use_blocks == 0);
    CHECK(stats.total.cached_blocks == 0);
    CHECK(stats.classes[0].high_water_blocks == 16);
    CHECK(stats.total.high_water_blocks == 26);          // sum of the class peaks
    // The next call binds a cache again and continues the same counters.
    void* again = pool->allocate(64);
    REQUIRE(again != nullptr);
    CHECK(stats_of(*pool).classes[0].in_use_blocks == 1);
    pool->free(again);
}

TEST_CASE("default accounting: fragmentation from per-class counters of a sample, exact figures for a known "
          "sequence") {
    PoolConfig config;
    config.classes = {{64, 100, 0}, {1024, 10, 0}};
    config.max_threads = 2;
    config.cache_blocks = 8;
    config.batch_blocks = 4;
    config.prefer_hugepages = false;
    auto pool = make_pool(config);
    CHECK_FALSE(pool->exact_requested_bytes());

    // The sample is the allocation that finds this thread's cache empty: the first of each class here.
    std::vector<void*> small, large;
    for (int i = 0; i < 3; ++i) small.push_back(pool->allocate(40));
    small.push_back(pool->allocate(64));
    large.push_back(pool->allocate(1000));
    large.push_back(pool->allocate(1000));
    large.push_back(pool->allocate_class(1));
    PoolStats stats = stats_of(*pool);
    CHECK_FALSE(stats.exact_requested);
    CHECK(stats.classes[0].sampled_allocations == 1);
    CHECK(stats.classes[0].sampled_requested_bytes == 40);
    CHECK(stats.classes[0].fragmentation_percent == doctest::Approx(37.5));      // 1 - 40 / 64
    CHECK(stats.classes[1].sampled_allocations == 1);
    CHECK(stats.classes[1].sampled_requested_bytes == 1000);
    CHECK(stats.classes[1].fragmentation_percent == doctest::Approx(2.34375));   // 1 - 1000 / 1024
    CHECK(stats.total.sampled_allocations == 2);
    CHECK(stats.total.fragmentation_percent == doctest::Approx(100.0 * (1 - 1040.0 / 1088)));
    CHECK(stats.classes[0].requested_bytes == 0);   // not kept without the option
    CHECK(stats.total.requested_bytes == 0);
    CHECK(stats.classes[0].in_use_blocks == 4);
    CHECK(stats.classes[1].in_use_blocks == 3);
    for (int c = 2; c < stats.class_count; ++c) CHECK(stats.classes[c].fragmentation_percent == 0);

    // Class 1 has 1 block cached and 6 in its list: 8 requests of 512 B take the cached one, refill 4 (sampled),
    // refill the last 2 (sampled), and fail once (not sampled). Frees change nothing of it.
    for (void* block : small) pool->free(block);
    for (int i = 0; i < 8; ++i) {
        if (void* block = pool->allocate(512)) large.push_back(block);
    }
    CHECK(large.size() == 10);
    stats = stats_of(*pool);
    CHECK(stats.classes[0].in_use_blocks == 0);
    CHECK(stats.classes[0].fragmentation_percent == doctest::Approx(37.5));
    CHECK(stats.classes[1].sampled_allocations == 3);
    CHECK(stats.classes[1].sampled_requested_bytes == 1000 + 512 + 512);
    CHECK(stats.classes[1].failed_allocations == 1);
    CHECK(stats.classes[1].fragmentation_percent == doctest::Approx(100.0 * (1 - 2024.0 / 3072)));

    // Another thread's first allocation refills its own cache: one more sample.
    std::thread([&] { pool->free(pool->allocate(1)); }).join();
    stats = stats_of(*pool);
    CHECK(stats.classes[0].sampled_allocations == 2);
    CHECK(stats.classes[0].sampled_requested_bytes == 41);
    CHECK(stats.classes[0].fragmentation_percent == doctest::Approx(100.0 * (1 - 41.0 / 128)));
    for (void* block : large) pool->free(block);

    // Without thread caches every allocation is in the sample: the figure is over all of them.
    config.cache_blocks = 0;
    config.batch_blocks = 0;
    auto uncached = make_pool(config);
    std::vector<void*> blocks;
    for (const std::size_t bytes : {40, 40, 40, 64}) blocks.push_back(uncached->allocate(bytes));
    stats = stats_of(*uncached);
    CHECK(stats.classes[0].sampled_allocations == 4);
    CHECK(stats.classes[0].sampled_requested_bytes == 184);
    CHECK(stats.classes[0].fragmentation_percent == doctest::Approx(28.125));   // 1 - 184 / 256
    for (void* block : blocks) uncached->free(block);
}

TEST_CASE("exact accounting on and off: the same sequence, the same counters, requested bytes only when on") {
    for (const bool exact : {false, true}) {
        CAPTURE(exact);
        PoolConfig config = default_classes([](int) { return std::size_t{32}; });
        config.exact_requested_bytes = exact;
        auto pool = make_pool(config);
        CHECK(pool->exact_requested_bytes() == exact);
        std::mt19937_64 rng(77);
        std::vector<std::pair<void*, std::size_t>> live;
        std::uint64_t in_use_requested = 0, allocations = 0;
        for (int step = 0; step < 2000; ++step) {
            if (live.empty() || rng() % 3 != 0) {
                const std::size_t bytes = 1 + rng() % 200;   // classes 0..2
                void* block = pool->allocate(bytes);
                if (block == nullptr) continue;
                live.emplace_back(block, bytes);
                in_use_requested += bytes;
                ++allocations;
            } else {
                const std::size_t pick = rng() % live.size();
                in_use_requested -= live[pick].second;
                pool->free(live[pick].first);
                live[pick] = live.back();
                live.pop_back();
            }
        }
        const PoolStats stats = stats_of(*pool);
        CHECK(stats.exact_requested == exact);
        CHECK(stats.total.sampled_allocations > 0);   // the same sample both ways: taken off the fast path
        CHECK(stats.total.sampled_allocations < allocations);
        CHECK(stats.total.in_use_blocks == live.size());
        CHECK(stats.total.requested_bytes == (exact ? in_use_requested : 0));
        std::uint64_t in_use_bytes = 0;
        for (const auto& entry : live) in_use_bytes += pool->class_block_bytes(pool->class_of(entry.second));
        CHECK(stats.total.in_use_bytes == in_use_bytes);
        std::uint64_t sampled_block_bytes = 0;
        for (int c = 0; c < stats.class_count; ++c) {
            sampled_block_bytes += stats.classes[c].sampled_allocations * stats.classes[c].block_bytes;
        }
        const double expected =
            exact ? 100.0 * (1 - static_cast<double>(in_use_requested) / static_cast<double>(in_use_bytes))
                  : 100.0 * (1 - static_cast<double>(stats.total.sampled_requested_bytes) /
                                     static_cast<double>(sampled_block_bytes));
        CHECK(stats.total.fragmentation_percent == doctest::Approx(expected));
        for (const auto& entry : live) pool->free(entry.first);
        CHECK(stats_of(*pool).total.requested_bytes == 0);
    }
}

TEST_CASE("a thread's cached blocks return to the shared lists when it exits") {
    auto pool = make_pool(default_classes([](int) { return std::size_t{64}; }, 32, 8));
    std::thread worker([&] {
        // Allocate half of every class and free it: everything sits in this thread's caches (32 max, flushed by 8).
        for (int c = 0; c < pool->class_count(); ++c) {
            std::vector<void*> blocks;
            for (int i = 0; i < 32; ++i) blocks.push_back(pool->allocate_class(c));
            for (void* block : blocks) pool->free(block);
        }
        const PoolStats stats = stats_of(*pool);
        CHECK(stats.total.cached_blocks == 32u * 11);
        CHECK(stats.total.in_use_blocks == 0);
    });
    worker.join();
    PoolStats stats = stats_of(*pool);
    CHECK(stats.total.cached_blocks == 0);
    CHECK(stats.total.in_use_blocks == 0);
    for (int c = 0; c < pool->class_count(); ++c) CHECK(drain_class(*pool, c).size() == 64);
}

TEST_CASE("threads beyond max_threads work on the shared lists directly, and slots are reused") {
    PoolConfig config = default_classes([](int) { return std::size_t{16}; }, 8, 4);
    config.max_threads = 1;
    auto pool = make_pool(config);
    void* mine = pool->allocate(64);   // the main thread takes the only slot
    REQUIRE(mine != nullptr);
    std::thread uncached([&] {
        std::vector<void*> blocks;
        while (void* block = pool->allocate(64)) blocks.push_back(block);
        CHECK(blocks.size() == 15 - 3);                      // 3 sit in the main thread's cache
        CHECK(stats_of(*pool).classes[0].cached_blocks == 3);
        for (void* block : blocks) pool->free(block);
        CHECK(stats_of(*pool).classes[0].cached_blocks == 3); // nothing cached here: no slot
    });
    uncached.join();
    pool->free(mine);
    pool->release_thread_cache();
    // Now the slot is free: a sequence of short-lived threads each takes it and gives it back.
    for (int t = 0; t < 20; ++t) {
        std::thread([&] {
            std::vector<void*> blocks = drain_class(*pool, 0);
            CHECK(blocks.size() == 16);
            for (void* block : blocks) pool->free(block);
        }).join();
    }
    const PoolStats stats = stats_of(*pool);
    CHECK(stats.classes[0].in_use_blocks == 0);
    CHECK(stats.classes[0].cached_blocks == 0);
    CHECK(stats.classes[0].failed_allocations == 1 + 20);
}

TEST_CASE("no thread caches (cache_blocks = 0): exact capacity for every thread, nothing cached") {
    PoolConfig config = default_classes([](int) { return std::size_t{10}; }, 0, 0);
    auto pool = make_pool(config);
    std::vector<void*> blocks = drain_class(*pool, 2);
    CHECK(blocks.size() == 10);
    std::thread([&] {
        for (void* block : blocks) pool->free(block);   // cross-thread, straight to the shared list
    }).join();
    PoolStats stats = stats_of(*pool);
    CHECK(stats.classes[2].in_use_blocks == 0);
    CHECK(stats.classes[2].cached_blocks == 0);
    CHECK(stats.classes[2].high_water_blocks == 10);
    std::thread([&] { CHECK(drain_class(*pool, 2).size() == 10); }).join();
}

TEST_CASE("many pools in one thread, and pools that die before the threads that used them") {
    PoolConfig config = default_classes([](int) { return std::size_t{8}; }, 4, 2);
    std::vector<std::unique_ptr<Pool>> pools;
    for (int i = 0; i < cf::mem::kMaxOwnersPerThread + 4; ++i) pools.push_back(make_pool(config));
    // More pools than thread-binding entries: the extra ones work uncached, every one exactly.
    for (auto& pool : pools) {
        std::vector<void*> blocks = drain_class(*pool, 0);
        CHECK(blocks.size() == 8);
        for (void* block : blocks) pool->free(block);
        CHECK(stats_of(*pool).classes[0].in_use_blocks == 0);
    }
    // A thread uses a pool that is destroyed while the thread still holds its cache; the thread then exits and
    // uses a new pool (possibly at the same address) on the way. ASan would see a use after free.
    std::unique_ptr<Pool> doomed = make_pool(config);
    std::atomic<int> phase{0};
    std::thread user([&] {
        void* block = doomed->allocate(64);
        CHECK(block != nullptr);
        doomed->free(block);
        phase.store(1);
        while (phase.load() != 2) std::this_thread::yield();
        std::unique_ptr<Pool> fresh = make_pool(config);
        CHECK(drain_class(*fresh, 0).size() == 8);
    });
    while (phase.load() != 1) std::this_thread::yield();
    doomed.reset();
    pools.clear();   // also destroys pools the main thread holds caches of
    phase.store(2);
    user.join();
    auto last = make_pool(config);
    CHECK(drain_class(*last, 0).size() == 8);
}
