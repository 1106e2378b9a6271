// The engine an application (or the C API) holds: the process's hybrid logical clock, its static memory pool and
// its topics, in-process or in shared memory. Everything is created at start-up; the hot path (publish, poll,
// allocate) goes straight to the topic's ring or the pool without passing through the engine.
//
// Topic management (create, find, close, maintain) takes a mutex: it is set-up and housekeeping, never called per
// message.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "engine/bus/shared_topic.hpp"
#include "engine/bus/topic.hpp"
#include "engine/mem/pool.hpp"
#include "engine/time/hlc.hpp"
#include "platform/os/memory.hpp"

namespace cf {

struct EngineConfig {
    std::uint16_t node_id = 0;                               // HLC node id: unique per engine in a system
    Duration hlc_max_drift = Duration::from_millis(100);     // remote stamps further ahead are rejected
    std::size_t pool_bytes_per_class = std::size_t{1} << 20; // each of the 11 classes 64 B .. 64 KiB
    std::uint32_t pool_max_threads = 64;
    std::uint32_t max_topics = 64;
    bool prefer_hugepages = true;
    bool pool_exact_accounting = false;   // exact requested bytes in pool stats, at a store per allocate and free
};

// One topic as the engine holds it: in-process (a pre-faulted region of its own) or shared (a segment).
class EngineTopic {
public:
    const bus::Topic& topic() const noexcept { return shared_ ? shared_topic_.topic() : topic_; }
    bool shared() const noexcept { return shared_; }
    bus::SharedTopic& shared_topic() noexcept { return shared_topic_; }
    const std::string& name() const noexcept { return name_; }
    // Shared topics: the mode asked for (0: 0600) and whose segment it is (kShmOwnerSelf: ours).
    std::uint32_t mode() const noexcept { return mode_; }
    std::uint32_t owner_uid() const noexcept { return owner_uid_; }
    // Publishers and subscribers this engine has open on the topic, read from the topic's endpoint ledger (the one
    // record of who holds what), by this engine's holder.
    std::uint32_t open_endpoints() const noexcept;
    class Engine& engine() const noexcept { return *engine_; }
    ~EngineTopic() { platform::unmap_region(region_); }

private:
    friend class Engine;
    class Engine* engine_ = nullptr;
    std::string name_;
    bool shared_ = false;
    std::uint32_t mode_ = 0;
    std::uint32_t owner_uid_ = kShmOwnerSelf;
    platform::MappedRegion region_;
    bus::Topic topic_;
    bus::SharedTopic shared_topic_;
};

class Engine {
public:
    // 0, or -EINVAL (bad configuration) / -ENOMEM (pool) with a message. The pool's fallback to 4 KiB pages is
    // not an error: pool().stats() and pool_warning() report it.
    static int create(const EngineConfig& config, std::unique_ptr<Engine>& out) noexcept;

    HybridLogicalClock& clock() noexcept { return *clock_; }
    mem::Pool& pool() noexcept { return *pool_; }
    const std::string& pool_warning() const noexcept { return pool_warning_; }

    // Creates a topic. In-process: the name must be new in this engine (-EEXIST otherwise). Shared: creates the
    // segment or attaches to the one another process made (same configuration required, see SharedTopic); `mode`
    // applies to creation (0 = 0600) and bounds what an existing segment may allow; `owner_uid` says whose
    // segment (kShmOwnerSelf: ours). -ENOSPC when max_topics are open.
    int create_topic(const bus::TopicConfig& config, bool shared, std::uint32_t mode, std::uint32_t owner_uid,
                     EngineTopic*& out) noexcept;
    int create_topic(const bus::TopicConfig& config, bool shared, std::uint32_t mode, EngineTopic*& out) noexcept {
        return create_topic(config, shared, mode, kShmOwnerSelf, out);
    }
    // Opens the existing shared topic `name` with the configuration its segment holds (SharedTopic::open_existing).
    // -EEXIST if this engine holds a topic of that name already (find_topic() returns it), -ENOSPC as create_topic.
    int open_topic(const char* name, std::uint32_t mode, std::uint32_t owner_uid, EngineTopic*& out) noexcept;
    EngineTopic* find_topic(const char* name) noexcept;
    // The topics open now, in creation order: fills out[0 .. min(count, capacity)) and returns the count.
    std::uint32_t list_topics(EngineTopic** out, std::uint32_t capacity) noexcept;
    // Closes a topic with no open endpoint (-EBUSY otherwise). A shared topic's segment stays for the other
    // processes; `unlink` also removes its name.
    int close_topic(EngineTopic* topic, bool unlink) noexcept;

    // Publishers and subscribers open on any topic of this engine (they must be closed before it is destroyed).
    std::uint32_t open_endpoints() noexcept;

    // Housekeeping for the shared topics, every ~100 ms from one thread: heartbeats, dead processes reclaimed.
    int maintain(std::uint64_t heartbeat_timeout_ns, bus::MaintainReport& total) noexcept;

private:
    Engine() = default;
    // Adds a topic named `name` made by open(EngineTopic&) under the topics lock: the checks every topic passes.
    template <class Open>
    int add_topic(const char* name, bool shared, std::uint32_t mode, std::uint32_t owner_uid, EngineTopic*& out,
                  Open&& open) noexcept;

    std::unique_ptr<HybridLogicalClock> clock_;
    std::unique_ptr<mem::Pool> pool_;
    std::string pool_warning_;
    std::uint32_t max_topics_ = 0;
    std::mutex topics_mutex_;
    std::vector<std::unique_ptr<EngineTopic>> topics_;
};

}  // namespace cf
