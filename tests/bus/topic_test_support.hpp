// Helpers shared by the topic suites: a formatted topic in its own block, configurations of every kind, and a
// subscriber drained into strings.
#pragma once

#include <doctest/doctest.h>

#include <array>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "engine/bus/subscriber.hpp"
#include "engine/bus/topic.hpp"
#include "engine/time/hlc.hpp"

namespace cf::test {

using namespace cf::bus;

struct FreeDeleter {
    void operator()(void* p) const { std::free(p); }
};

// A formatted topic in its own 64-byte aligned block.
struct TopicBlock {
    std::unique_ptr<void, FreeDeleter> memory;
    std::size_t bytes = 0;
    Topic topic;

    explicit TopicBlock(const TopicConfig& config) {
        bytes = Topic::bytes_needed(config);
        REQUIRE(bytes != 0);
        memory.reset(std::aligned_alloc(64, (bytes + 63) / 64 * 64));
        REQUIRE(memory != nullptr);
        std::memset(memory.get(), 0, bytes);   // slots never written read the same in every run
        REQUIRE(Topic::format(memory.get(), bytes, config) == 0);
        REQUIRE(Topic::attach(memory.get(), bytes, topic) == 0);
    }
};

inline TopicConfig config_of(std::uint32_t max_message_bytes, std::uint32_t depth, std::uint32_t publishers = 1,
                      std::uint32_t subscribers = 1, OverflowPolicy overflow = OverflowPolicy::back_pressure) {
    TopicConfig config;
    config.name = "test.topic";
    config.max_message_bytes = max_message_bytes;
    config.depth = depth;
    config.max_publishers = publishers;
    config.max_subscribers = subscribers;
    config.overflow = overflow;
    return config;
}

// One topic of every kind: one writer and one reader, many writers, many readers, both, and lossy.
struct KindCase {
    const char* name;
    TopicConfig config;
};
inline std::array<KindCase, 5> every_kind(std::uint32_t max_message_bytes, std::uint32_t depth) {
    return {{
        {"spsc", config_of(max_message_bytes, depth)},
        {"mpsc", config_of(max_message_bytes, depth, 2, 1)},
        {"broadcast", config_of(max_message_bytes, depth, 1, 2)},
        {"broadcast multi-writer", config_of(max_message_bytes, depth, 2, 2)},
        {"lossy", config_of(max_message_bytes, depth, 1, 1, OverflowPolicy::lossy)},
    }};
}

inline HybridLogicalClock::Config clock_config(std::uint16_t node) {
    HybridLogicalClock::Config config;
    config.node_id = node;
    return config;
}

inline std::vector<std::string> drain(Subscriber& subscriber, std::vector<std::uint64_t>* sequences = nullptr,
                               std::vector<HlcStamp>* stamps = nullptr) {
    std::vector<std::string> seen;
    while (subscriber.poll(7, [&](const Message& m) {
        seen.emplace_back(reinterpret_cast<const char*>(m.data), m.length);
        if (sequences != nullptr) sequences->push_back(m.sequence);
        if (stamps != nullptr) stamps->push_back(m.stamp);
    }) != 0) {
    }
    return seen;
}

}  // namespace cf::test
