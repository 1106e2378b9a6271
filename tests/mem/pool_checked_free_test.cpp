// Pool::free_checked (the C API's cf_pool_free): a double free, an interior or misaligned pointer, a pointer
// outside the pool or of another pool is refused with -EINVAL and counted, and leaves the lists intact; blocks in a
// thread cache count as free; a block freed and handed out again frees normally; of two threads freeing one block
// exactly one succeeds. In a CF_POOL_CHECKED build plain free() refuses the same.
#include <doctest/doctest.h>

#include <algorithm>
#include <atomic>
#include <barrier>
#include <cerrno>
#include <cstring>
#include <functional>
#include <iterator>
#include <memory>
#include <random>
#include <set>
#include <thread>
#include <vector>

#include "engine/mem/pool.hpp"
#include "platform/os/last_error.hpp"
#include "tests/mem/pool_test_support.hpp"

using cf::mem::Pool;
using cf::mem::PoolConfig;
using namespace cf::test;

namespace {

// Four default classes (64 B .. 512 B) of `blocks` each, keeping block states (free_checked sees double frees).
PoolConfig small_pool(std::size_t blocks, std::uint32_t cache_blocks, std::uint32_t batch_blocks,
                      bool detect_double_free = true) {
    PoolConfig config = default_size_classes(4, [blocks](int) { return blocks; }, cache_blocks, batch_blocks);
    config.detect_double_free = detect_double_free;
    return config;
}

char* bytes(void* block) { return static_cast<char*>(block); }

// free_checked(block) is -EINVAL with a message containing `why`.
void expect_refused(Pool& pool, void* block, const char* why) {
    cf::platform::clear_last_error();
    CHECK(pool.free_checked(block) == -EINVAL);
    const char* message = cf::platform::last_error_message();
    INFO("message: ", message);
    CHECK(std::strstr(message, why) != nullptr);
}

std::uint64_t rejected(const Pool& pool) { return stats_of(pool).rejected_frees; }

}  // namespace

TEST_CASE("a double free is refused, and the next two allocations are two different blocks") {
    // With a thread cache the first free parks the block there; without one it goes to the shared list.
    for (const std::uint32_t cache_blocks : {8u, 0u}) {
        CAPTURE(cache_blocks);
        auto pool = create_pool(small_pool(16, cache_blocks, cache_blocks / 2));
        void* block = pool->allocate(100);
        REQUIRE(block != nullptr);
        CHECK(pool->free_checked(block) == 0);
        expect_refused(*pool, block, "not allocated");
        expect_refused(*pool, block, "not allocated");
        CHECK(rejected(*pool) == 2);
        CHECK(stats_of(*pool).total.in_use_blocks == 0);

        void* first = pool->allocate(100);
        void* second = pool->allocate(100);
        REQUIRE(first != nullptr);
        REQUIRE(second != nullptr);
        CHECK(first != second);
        CHECK(first == block);   // the freed block comes back once, LIFO
        CHECK(stats_of(*pool).total.in_use_blocks == 2);
        CHECK(pool->free_checked(first) == 0);
        CHECK(pool->free_checked(second) == 0);
        CHECK(pool->free_checked(nullptr) == 0);   // like free(nullptr): nothing, not counted
        CHECK(rejected(*pool) == 2);
    }
}

TEST_CASE("interior, misaligned, outside and another pool's pointers are refused; the lists stay whole") {
    // With and without block states: these checks need none.
    for (const bool detect_double_free : {true, false}) {
        CAPTURE(detect_double_free);
        auto pool = create_pool(small_pool(3, 8, 4, detect_double_free));
        auto other = create_pool(small_pool(3, 8, 4, detect_double_free));
        void* block = pool->allocate(256);   // a 256 B block
        REQUIRE(block != nullptr);
        expect_refused(*pool, bytes(block) + 64, "an interior pointer");
        expect_refused(*pool, bytes(block) + 128, "an interior pointer");
        expect_refused(*pool, bytes(block) + 1, "misaligned");
        expect_refused(*pool, bytes(block) + 8, "misaligned");
        expect_refused(*pool, bytes(block) + 255, "misaligned");
        int on_stack = 0;
        expect_refused(*pool, &on_stack, "outside its arenas");
        const auto on_heap = std::make_unique<char[]>(64);
        expect_refused(*pool, on_heap.get(), "outside its arenas");
        void* foreign = other->allocate(256);
        REQUIRE(foreign != nullptr);
        expect_refused(*pool, foreign, "outside its arenas");
        // Past the last of the 3 blocks of 64 B, in the padding up to the next arena's segment.
        void* small[3];
        for (void*& b : small) REQUIRE((b = pool->allocate(64)) != nullptr);
        char* const highest = bytes(std::max({small[0], small[1], small[2]}, std::less<void*>()));
        expect_refused(*pool, highest + 64, "past the last 64-byte block");
        CHECK(rejected(*pool) == 9);
        CHECK(stats_of(*other).rejected_frees == 0);

        // None of it freed anything: the real frees all succeed, then every class gives its full capacity again.
        CHECK(stats_of(*pool).total.in_use_blocks == 4);
        CHECK(pool->free_checked(block) == 0);
        for (void* b : small) CHECK(pool->free_checked(b) == 0);
        CHECK(other->free_checked(foreign) == 0);
        for (int c = 0; c < pool->class_count(); ++c) {
            std::set<void*> seen;
            while (void* b = pool->allocate_class(c)) CHECK(seen.insert(b).second);
            CHECK(seen.size() == 3);
            for (void* b : seen) CHECK(pool->free_checked(b) == 0);
        }
        CHECK(rejected(*pool) == 9);
    }
}

TEST_CASE("a block freed and handed out again frees normally (no false positive), many times over") {
    for (const std::uint32_t cache_blocks : {8u, 0u}) {
        CAPTURE(cache_blocks);
        auto pool = create_pool(small_pool(4, cache_blocks, cache_blocks / 2));
        for (int round = 0; round < 1000; ++round) {
            void* block = pool->allocate(64);
            REQUIRE(block != nullptr);
            CHECK(pool->free_checked(block) == 0);
            void* again = pool->allocate(64);
            CHECK(again == block);
            if (round % 2 == 0) {
                CHECK(pool->free_checked(again) == 0);
            } else {
                pool->free(again);   // the unchecked path marks it free just the same
            }
        }
        CHECK(rejected(*pool) == 0);
        CHECK(stats_of(*pool).total.in_use_blocks == 0);
    }
}

TEST_CASE("free blocks count as free wherever they are: this thread's cache, another's, the shared list, never "
          "allocated") {
    auto pool = create_pool(small_pool(32, 8, 4));
    std::vector<void*> blocks;
    for (int i = 0; i < 12; ++i) blocks.push_back(pool->allocate(64));
    for (void* b : blocks) REQUIRE(b != nullptr);
    // Freed by the fast path: the first 8 fill this thread's cache, the rest flush a batch to the shared list.
    for (void* b : blocks) pool->free(b);
    CHECK(stats_of(*pool).classes[0].cached_blocks == 8);
    for (void* b : blocks) expect_refused(*pool, b, "not allocated");

    // Freed on another thread: in that thread's cache while it lives.
    void* elsewhere = pool->allocate(128);
    REQUIRE(elsewhere != nullptr);
    std::atomic<int> step{0};
    std::thread other([&] {
        pool->free(elsewhere);
        step.store(1, std::memory_order_release);
        while (step.load(std::memory_order_acquire) != 2) std::this_thread::yield();
    });
    while (step.load(std::memory_order_acquire) != 1) std::this_thread::yield();
    CHECK(stats_of(*pool).classes[1].cached_blocks == 4);   // 3 of this thread's refill batch, 1 of the other's
    expect_refused(*pool, elsewhere, "not allocated");
    step.store(2, std::memory_order_release);
    other.join();
    expect_refused(*pool, elsewhere, "not allocated");   // now back on the shared list

    // Never handed out: the far end of a class nobody touched.
    void* untouched = pool->allocate_class(3);
    REQUIRE(untouched != nullptr);
    expect_refused(*pool, bytes(untouched) + 512, "not allocated");
    CHECK(pool->free_checked(untouched) == 0);
    CHECK(rejected(*pool) == 15);
    CHECK(stats_of(*pool).total.in_use_blocks == 0);
}

TEST_CASE("random allocate/free against a reference set, with bad frees injected: each one refused, no other") {
    auto pool = create_pool(small_pool(64, 8, 4));
    auto other = create_pool(small_pool(1, 8, 4));
    void* foreign = other->allocate(64);
    REQUIRE(foreign != nullptr);
    std::mt19937_64 random(20261207);
    std::set<void*> live;
    std::vector<void*> freed;            // once freed; may be live again since
    std::uint64_t injected = 0;
    auto pick = [&](const auto& from) {
        auto it = from.begin();
        std::advance(it, static_cast<std::ptrdiff_t>(random() % from.size()));
        return *it;
    };
    for (int step = 0; step < 20000; ++step) {
        const unsigned action = static_cast<unsigned>(random() % 10);
        if (action < 4 || live.empty()) {
            void* block = pool->allocate(1 + random() % 512);
            if (block != nullptr) REQUIRE(live.insert(block).second);   // never a block that is in use
        } else if (action < 7) {
            void* block = pick(live);
            live.erase(block);
            freed.push_back(block);
            if (random() % 2 == 0) REQUIRE(pool->free_checked(block) == 0);
            else pool->free(block);
        } else if (action < 8 && !freed.empty()) {
            void* block = pick(freed);
            if (live.count(block) != 0) continue;   // handed out again: freeing it would be legitimate
            REQUIRE(pool->free_checked(block) == -EINVAL);
            ++injected;
        } else if (action < 9) {
            // Inside a live block (blocks are >= 64 B): 32 bytes in, or an odd byte.
            void* block = pick(live);
            const std::size_t offset = random() % 2 == 0 ? 32 : 1 + random() % 63;
            REQUIRE(pool->free_checked(bytes(block) + offset) == -EINVAL);
            ++injected;
        } else {
            REQUIRE(pool->free_checked(foreign) == -EINVAL);   // another pool's block
            ++injected;
        }
        REQUIRE(rejected(*pool) == injected);
    }
    const auto stats = stats_of(*pool);
    CHECK(stats.total.in_use_blocks == live.size());
    CHECK(injected > 2000);
    for (void* block : live) CHECK(pool->free_checked(block) == 0);
    CHECK(stats_of(*pool).total.in_use_blocks == 0);
    CHECK(rejected(*pool) == injected);
}

TEST_CASE("two threads race to free the same block: exactly one succeeds, every round") {
    constexpr int kRounds = 3000;
    auto pool = create_pool(small_pool(64, 8, 4));
    std::atomic<void*> shared{nullptr};
    std::vector<int> results(2 * kRounds, 1);
    std::barrier sync(2);
    auto racer = [&](int side) {
        for (int round = 0; round < kRounds; ++round) {
            if (side == 0) shared.store(pool->allocate(64 << (round % 4)), std::memory_order_relaxed);
            sync.arrive_and_wait();   // the block is out; both free it now
            results[2 * round + side] = pool->free_checked(shared.load(std::memory_order_relaxed));
            sync.arrive_and_wait();   // both done before the next round's block
        }
    };
    std::thread other(racer, 1);
    racer(0);
    other.join();
    int exactly_one = 0;
    for (int round = 0; round < kRounds; ++round) {
        const int a = results[2 * round], b = results[2 * round + 1];
        exactly_one += (a == 0 && b == -EINVAL) || (a == -EINVAL && b == 0);
    }
    CHECK(exactly_one == kRounds);
    CHECK(rejected(*pool) == kRounds);
    CHECK(stats_of(*pool).total.in_use_blocks == 0);
}

TEST_CASE("a CF_POOL_CHECKED build: plain free() refuses a double free and an interior pointer" *
          doctest::skip(!Pool::kCheckedFree)) {
    auto pool = create_pool(small_pool(16, 8, 4));
    void* block = pool->allocate(128);
    REQUIRE(block != nullptr);
    pool->free(bytes(block) + 64);
    pool->free(block);
    pool->free(block);
    CHECK(rejected(*pool) == 2);
    void* first = pool->allocate(128);
    void* second = pool->allocate(128);
    CHECK(first != second);
    pool->free(first);
    pool->free(second);
    CHECK(stats_of(*pool).total.in_use_blocks == 0);
}

TEST_CASE("without block states free_checked() cannot see a double free, and says so only through the config") {
    // What PoolConfig::detect_double_free documents: off, the double free is taken (as free() takes it).
    auto pool = create_pool(small_pool(4, 8, 4, false));
    void* block = pool->allocate(64);
    REQUIRE(block != nullptr);
    CHECK(pool->free_checked(block) == 0);
    CHECK(pool->free_checked(block) == 0);
    CHECK(rejected(*pool) == 0);
}

TEST_CASE("every pointer that is not a block start is refused by free() and free_checked(), in every kind of class") {
    // Classes below, at and above the 4 KiB segment, and two that are not powers of two (the inline check leaves
    // those to the full one); block counts leave the last segment of each class partly empty.
    for (const int variant : {0, 1, 2, 3}) {
        const bool detect_double_free = (variant & 1) != 0;
        const bool checked = (variant & 2) != 0;
        CAPTURE(detect_double_free);
        CAPTURE(checked);
        PoolConfig config;
        for (const std::size_t bytes : {64u, 192u, 4096u, 8192u, 12288u, 65536u}) {
            config.classes.push_back({bytes, bytes >= 8192 ? 3u : 37u, 0});
        }
        config.max_threads = 4;
        config.cache_blocks = 8;
        config.prefer_hugepages = false;
        config.detect_double_free = detect_double_free;
        auto pool = create_pool(config);

        // Every block out, so a wrongly accepted pointer would show up as a block handed out twice below.
        std::set<char*> starts;
        std::vector<std::size_t> capacity;
        for (int c = 0; c < pool->class_count(); ++c) {
            const auto blocks = drain_class(*pool, c);
            capacity.push_back(blocks.size());
            for (void* b : blocks) starts.insert(bytes(b));
        }
        REQUIRE(starts.size() == 37 * 3 + 3 * 3);
        char* const lowest = *starts.begin();
        char* const end = *starts.rbegin() + 2 * 65536;
        std::uint64_t expected_rejections = 0;
        for (char* p = lowest; p < end; p += 64) {
            for (char* candidate : {p, p + 8}) {
                if (starts.count(candidate) != 0) continue;
                if (checked) {
                    CHECK(pool->free_checked(candidate) == -EINVAL);
                } else {
                    pool->free(candidate);
                }
                ++expected_rejections;
            }
        }
        CHECK(rejected(*pool) == expected_rejections);
        CHECK(stats_of(*pool).total.in_use_blocks == starts.size());
        for (char* b : starts) pool->free(b);
        for (int c = 0; c < pool->class_count(); ++c) {
            const auto again = drain_class(*pool, c);
            CHECK(again.size() == capacity[static_cast<std::size_t>(c)]);
            CHECK(std::set<void*>(again.begin(), again.end()).size() == again.size());
            for (void* b : again) pool->free(b);
        }
        CHECK(rejected(*pool) == expected_rejections);
    }
}
