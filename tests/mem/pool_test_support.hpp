// Helpers shared by the pool tests: creating a pool or failing the test, a configuration of default-sized
// classes, and a statistics snapshot.
#pragma once

#include <doctest/doctest.h>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <vector>

#include "engine/mem/pool.hpp"
#include "platform/os/last_error.hpp"

namespace cf::test {

// Creates a pool from `config`; fails the test, with the library's message, if creation is refused.
inline std::unique_ptr<cf::mem::Pool> create_pool(const cf::mem::PoolConfig& config) {
    std::unique_ptr<cf::mem::Pool> pool;
    const int status = cf::mem::Pool::create(config, pool);
    INFO(cf::platform::last_error_message());
    REQUIRE(status == 0);
    return pool;
}

// The first `class_count` default classes with `blocks(i)` blocks in class i, 8 threads, no huge pages.
template <typename Blocks>
cf::mem::PoolConfig default_size_classes(int class_count, Blocks blocks, std::uint32_t cache_blocks,
                                         std::uint32_t batch_blocks) {
    cf::mem::PoolConfig config;
    for (int i = 0; i < class_count; ++i) config.classes.push_back({cf::mem::default_class_bytes(i), blocks(i), 0});
    config.max_threads = 8;
    config.cache_blocks = cache_blocks;
    config.batch_blocks = batch_blocks;
    config.prefer_hugepages = false;
    return config;
}

// Allocates class `class_index` until it fails; returns the blocks.
inline std::vector<void*> drain_class(cf::mem::Pool& pool, int class_index) {
    std::vector<void*> blocks;
    while (void* block = pool.allocate_class(class_index)) blocks.push_back(block);
    return blocks;
}

// A snapshot of the pool's statistics.
inline cf::mem::PoolStats stats_of(const cf::mem::Pool& pool) {
    cf::mem::PoolStats stats;
    pool.stats(stats);
    return stats;
}

}  // namespace cf::test
