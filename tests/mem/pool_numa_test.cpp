// NUMA: the pool's per-node arenas on a fake two-node (and three-node) machine -- which arena a thread allocates
// from, where frees go, what gets bound where -- and real placement on this machine, checked with move_pages and
// get_mempolicy.
#include <doctest/doctest.h>

#include <numaif.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <set>
#include <thread>
#include <vector>

#include "engine/mem/pool.hpp"
#include "platform/os/last_error.hpp"
#include "platform/os/memory.hpp"
#include "platform/os/numa.hpp"
#include "tests/mem/pool_test_support.hpp"

using cf::mem::Pool;
using cf::mem::PoolConfig;
using cf::mem::PoolStats;
using cf::platform::NumaTopology;
using namespace cf::test;
namespace p = cf::platform;

namespace {

// A machine with `nodes` nodes where each thread says which node it is on, and binding only records the request.
thread_local int fake_node = 0;

struct BindCall {
    std::uintptr_t begin;
    std::uintptr_t end;
    int node;
};

struct FakeMachine {
    std::vector<BindCall> binds;   // create() binds on the creating thread only
    NumaTopology topology;

    explicit FakeMachine(int nodes) {
        topology.node_count = nodes;
        topology.node_of_current_thread = [](void*) noexcept { return fake_node; };
        topology.bind = [](void* context, void* addr, std::size_t bytes, int node) noexcept {
            const auto begin = reinterpret_cast<std::uintptr_t>(addr);
            static_cast<FakeMachine*>(context)->binds.push_back({begin, begin + bytes, node});
            return 0;
        };
        topology.context = this;
    }

    // The node whose bound range holds `block`, or -1 (and ranges never overlap: checked here as well).
    int bound_node_of(const void* block) const {
        const auto address = reinterpret_cast<std::uintptr_t>(block);
        int node = -1;
        int hits = 0;
        for (const BindCall& call : binds) {
            if (address >= call.begin && address < call.end) {
                node = call.node;
                ++hits;
            }
        }
        return hits == 1 ? node : -1;
    }
};

PoolConfig small_config(const FakeMachine& machine, std::size_t blocks) {
    PoolConfig config = default_size_classes(3, [blocks](int) { return blocks; }, 8, 4);
    config.topology = &machine.topology;
    return config;
}

// Runs `body` on a new thread that the fake machine places on `node`, and waits for it.
template <typename Body>
void on_node(int node, Body body) {
    std::thread([node, &body] {
        fake_node = node;
        body();
    }).join();
}

std::vector<void*> drain(Pool& pool, int class_index) {
    std::vector<void*> blocks;
    while (void* block = pool.allocate_class(class_index)) blocks.push_back(block);
    return blocks;
}

}  // namespace

TEST_CASE("fake two-node machine: one arena per node, bound to it; threads allocate from their node's arena and "
          "frees go back to the block's arena") {
    FakeMachine machine(2);
    PoolConfig config = small_config(machine, 16);
    config.exact_requested_bytes = true;
    fake_node = 0;
    auto pool = create_pool(config);
    REQUIRE(pool->node_arena_count() == 2);
    CHECK(pool->node_of_arena(0) == 0);
    CHECK(pool->node_of_arena(1) == 1);
    // Arena 0 to node 0, arena 1 to node 1, the common part to the creating thread's node (0); back to back.
    REQUIRE(machine.binds.size() == 3);
    CHECK(machine.binds[0].node == 0);
    CHECK(machine.binds[1].node == 1);
    CHECK(machine.binds[2].node == 0);
    CHECK(machine.binds[0].end == machine.binds[1].begin);
    CHECK(machine.binds[1].end <= machine.binds[2].begin);
    const PoolStats created = stats_of(*pool);
    REQUIRE(created.node_arena_count == 2);
    CHECK(created.node_arenas[1].node == 1);
    CHECK(created.node_arenas[1].placement == 0);
    CHECK(created.node_arenas[0].capacity_blocks == 3 * 16);
    CHECK(created.classes[0].capacity_blocks == 2 * 16);   // budgets are per node

    // A thread on node 1 gets all 16 blocks of arena 1, every one inside node 1's bound range; none of arena 0.
    std::vector<void*> remote;
    on_node(1, [&] {
        remote = drain(*pool, 0);
        for (void* block : remote) static_cast<char*>(block)[0] = 1;
    });
    REQUIRE(remote.size() == 16);
    for (void* block : remote) {
        CHECK(pool->arena_of(block) == 1);
        CHECK(machine.bound_node_of(block) == 1);
    }
    PoolStats stats = stats_of(*pool);
    CHECK(stats.node_arenas[1].in_use_blocks == 16);
    CHECK(stats.node_arenas[0].in_use_blocks == 0);

    // This thread (node 0) gets arena 0's 16, then nothing: it does not borrow node 1's.
    std::vector<void*> local = drain(*pool, 0);
    REQUIRE(local.size() == 16);
    for (void* block : local) {
        CHECK(pool->arena_of(block) == 0);
        CHECK(machine.bound_node_of(block) == 0);
    }

    // Node 0 frees node 1's blocks: they go straight home (not into this thread's cache), a double free of one
    // is still refused, and the size sums stay exact.
    const std::uint64_t cached_before = stats_of(*pool).classes[0].cached_blocks;
    for (void* block : remote) pool->free(block);
    CHECK(pool->free_checked(remote[3]) == -EINVAL);
    stats = stats_of(*pool);
    CHECK(stats.node_arenas[1].in_use_blocks == 0);
    CHECK(stats.node_arenas[0].in_use_blocks == 16);
    CHECK(stats.classes[0].cached_blocks == cached_before);
    CHECK(stats.classes[0].requested_bytes == 16 * 64);

    // So a node-1 thread finds all 16 again, and frees them there (into its cache, flushed at exit to arena 1).
    on_node(1, [&] {
        std::vector<void*> again = drain(*pool, 0);
        CHECK(again.size() == 16);
        std::set<void*> expected(remote.begin(), remote.end());
        for (void* block : again) CHECK(expected.count(block) == 1);
        for (void* block : again) pool->free(block);
    });
    // Node 0's own blocks go back into this thread's cache; then it hands its cache back.
    for (void* block : local) pool->free(block);
    pool->release_thread_cache();
    stats = stats_of(*pool);
    CHECK(stats.total.in_use_blocks == 0);
    CHECK(stats.total.cached_blocks == 0);
    CHECK(stats.total.requested_bytes == 0);
    // Each arena's blocks all went home: each node drains exactly its own 16 once more.
    on_node(1, [&] {
        const std::vector<void*> blocks = drain(*pool, 0);
        CHECK(blocks.size() == 16);
        for (void* block : blocks) CHECK(pool->arena_of(block) == 1);
        for (void* block : blocks) pool->free(block);
    });
    on_node(0, [&] {
        const std::vector<void*> blocks = drain(*pool, 0);
        CHECK(blocks.size() == 16);
        for (void* block : blocks) CHECK(pool->arena_of(block) == 0);
        for (void* block : blocks) pool->free(block);
    });
    CHECK(stats_of(*pool).total.in_use_blocks == 0);
}

TEST_CASE("fake machine: threads without a cache use their node's arena too, and free to the block's arena") {
    FakeMachine machine(2);
    PoolConfig config = small_config(machine, 4);
    config.cache_blocks = 0;
    config.batch_blocks = 0;
    auto pool = create_pool(config);
    std::vector<void*> remote;
    on_node(1, [&] { remote = drain(*pool, 2); });
    REQUIRE(remote.size() == 4);
    for (void* block : remote) CHECK(pool->arena_of(block) == 1);
    fake_node = 0;
    for (void* block : remote) pool->free(block);
    CHECK(stats_of(*pool).node_arenas[1].in_use_blocks == 0);
    on_node(1, [&] { CHECK(drain(*pool, 2).size() == 4); });
    CHECK(drain(*pool, 2).size() == 4);
}

TEST_CASE("fake three-node machine: numa_nodes picks the arenas; a node without one uses arena 0; bad input") {
    FakeMachine machine(3);
    PoolConfig config = small_config(machine, 8);
    config.numa_nodes = 0b101;   // nodes 0 and 2
    auto pool = create_pool(config);
    REQUIRE(pool->node_arena_count() == 2);
    CHECK(pool->node_of_arena(0) == 0);
    CHECK(pool->node_of_arena(1) == 2);
    CHECK(machine.binds[1].node == 2);
    const int expected_arena[3] = {0, 0, 1};
    for (int node = 0; node < 3; ++node) {
        CAPTURE(node);
        on_node(node, [&] {
            void* block = pool->allocate(100);
            REQUIRE(block != nullptr);
            CHECK(pool->arena_of(block) == expected_arena[node]);
            pool->free(block);
        });
    }
    // Not a block: outside, in the links between the arenas.
    int on_stack = 0;
    CHECK(pool->arena_of(&on_stack) == -1);
    CHECK(pool->arena_of(reinterpret_cast<const void*>(machine.binds[0].end - 64)) == -1);

    std::unique_ptr<Pool> refused;
    config.numa_nodes = 0b1000;   // node 3 of a three-node machine
    CHECK(Pool::create(config, refused) == -EINVAL);
    CHECK(refused == nullptr);
    config.numa_nodes = 0;
    machine.topology.node_count = 0;
    CHECK(Pool::create(config, refused) == -EINVAL);
    machine.topology.node_count = p::kMaxNumaNodes + 1;
    CHECK(Pool::create(config, refused) == -EINVAL);
    machine.topology.node_count = 2;
    machine.topology.bind = nullptr;
    CHECK(Pool::create(config, refused) == -EINVAL);
}

TEST_CASE("this machine: one arena per node, and the bind helpers refuse bad input") {
    auto pool = create_pool(default_size_classes(2, [](int) { return std::size_t{64}; }, 8, 4));
    CHECK(pool->node_arena_count() == p::numa_node_count());
    CHECK(p::current_numa_node() >= 0);
    CHECK(p::current_numa_node() < p::numa_node_count());
    p::MappedRegion region;
    REQUIRE(p::map_region(8192, false, region) == 0);
    CHECK(p::bind_region_to_node(region.base, region.bytes, -1) == -EINVAL);
    CHECK(p::bind_region_to_node(region.base, region.bytes, p::numa_node_count()) == -EINVAL);
    CHECK(p::bind_region_to_node(static_cast<char*>(region.base) + 64, 4096, 0) == -EINVAL);
    CHECK(p::bind_region_to_node(region.base, 0, 0) == -EINVAL);
    CHECK(p::bind_region_to_node(nullptr, 4096, 0) == -EINVAL);
    p::unmap_region(region);
}

TEST_CASE("real placement on this machine: the pool's pages and a node-bound region are on their node "
          "(move_pages, get_mempolicy)") {
    const int node = p::current_numa_node();
    // A region mapped without a node keeps the default policy; one mapped for a node prefers it.
    p::MappedRegion plain, placed;
    REQUIRE(p::map_region(64 * 1024, false, plain) == 0);
    REQUIRE(p::map_region(64 * 1024, false, placed, node) == 0);
    int mode = -1, first = -2;
    const int query = p::numa_policy_of(plain.base, mode, first);
    if (query == -EOPNOTSUPP) {
        MESSAGE("no NUMA policy calls here (" << p::last_error_message() << "): placement not checked");
        p::unmap_region(plain);
        p::unmap_region(placed);
        return;
    }
    REQUIRE(query == 0);
    CHECK(mode == MPOL_DEFAULT);
    REQUIRE(p::numa_policy_of(placed.base, mode, first) == 0);
    CHECK(mode == MPOL_PREFERRED);
    CHECK(first == node);
    std::vector<const void*> pages;
    for (std::size_t offset = 0; offset < placed.bytes; offset += placed.page_bytes) {
        pages.push_back(static_cast<const char*>(placed.base) + offset);
    }
    std::vector<int> nodes(pages.size(), -100);
    REQUIRE(p::numa_nodes_of_pages(pages.data(), pages.size(), nodes.data()) == 0);
    for (const int page_node : nodes) CHECK(page_node == node);   // pre-faulted: every page is there
    // An untouched page answers -ENOENT: the query reports what it found, not what was asked.
    p::MappedRegion untouched;
    REQUIRE(p::reserve_region(4096, false, untouched) == 0);
    const void* untouched_page = untouched.base;
    int untouched_node = -100;
    REQUIRE(p::numa_nodes_of_pages(&untouched_page, 1, &untouched_node) == 0);
    CHECK(untouched_node == -ENOENT);
    p::unmap_region(untouched);
    p::unmap_region(plain);
    p::unmap_region(placed);

    // The pool: each arena bound to its node (placement 0, MPOL_PREFERRED), its blocks' pages on it.
    PoolConfig config = default_size_classes(4, [](int) { return std::size_t{256}; }, 8, 4);
    auto pool = create_pool(config);
    const PoolStats stats = stats_of(*pool);
    for (int arena = 0; arena < stats.node_arena_count; ++arena) CHECK(stats.node_arenas[arena].placement == 0);
    std::vector<void*> blocks;
    for (int c = 0; c < pool->class_count(); ++c) {
        for (int i = 0; i < 20; ++i) blocks.push_back(pool->allocate_class(c));
    }
    std::vector<const void*> block_pages(blocks.begin(), blocks.end());
    std::vector<int> block_nodes(blocks.size(), -100);
    REQUIRE(p::numa_nodes_of_pages(block_pages.data(), block_pages.size(), block_nodes.data()) == 0);
    for (std::size_t i = 0; i < blocks.size(); ++i) {
        CAPTURE(i);
        REQUIRE(blocks[i] != nullptr);
        const int arena_node = pool->node_of_arena(pool->arena_of(blocks[i]));
        CHECK(block_nodes[i] == arena_node);
        REQUIRE(p::numa_policy_of(blocks[i], mode, first) == 0);
        CHECK(mode == MPOL_PREFERRED);
        CHECK(first == arena_node);
    }
    for (void* block : blocks) pool->free(block);
}
