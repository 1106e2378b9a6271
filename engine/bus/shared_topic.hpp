// A topic that lives in a named shared-memory segment, so that other processes publish and subscribe on it at
// the same zero-copy path as threads of one process (the topic block holds offsets, never pointers).
//
// open(config) creates the segment "topic.<name>" (/dev/shm/chronofabric-<uid>/topic.<name>, mode 0600 unless asked
// otherwise; see shm_segment.hpp for who may own it and what mode is accepted), formats the topic in it and marks
// it ready; if a living process already created it, it attaches instead, and
// the segment's layout id (topic_layout_id: kind, sizes, counts, policy, layout versions) must equal the one of
// `config`: a peer built with another configuration or library version is refused with -EPROTO. A segment left
// by an earlier run whose processes are all dead is recognised (ShmSegment) and reset, never trusted.
//
// Each SharedTopic registers its process in the segment's ProcessTable; its publishers and subscribers take their
// places in the topic's endpoint ledger under that registration (topic_endpoints.hpp: one CAS per place, nothing
// else to keep in step, so a kill at any instruction leaves the ledger right). maintain(), called from each
// process's housekeeping every ~100 ms, heartbeats this process and scans for dead ones: a process killed with
// -9 gets its publisher and subscriber places and its broadcast readers returned (so a dead reader no longer
// holds back-pressure on the writer, and a dead publisher's place can be taken again). A claim a dead publisher left uncommitted on a
// many-publisher topic (MPSC or multi-writer broadcast) is found by a subscriber: Subscriber::recover_stalled_claim().
#pragma once

#include <cstdint>

#include "engine/bus/publisher.hpp"
#include "engine/bus/shm_segment.hpp"
#include "engine/bus/subscriber.hpp"
#include "engine/bus/topic.hpp"

namespace cf::bus {

// The layout versions a shared topic's segment was written with: the segment header's, the topic header's and the
// ring header's (0 where that header is missing or not readable with this library's segment layout).
struct SharedTopicLayout {
    std::uint32_t segment_version = 0;
    std::uint32_t topic_version = 0;
    std::uint32_t ring_version = 0;
};

struct MaintainReport {
    std::uint32_t dead_processes = 0;      // reclaimed by this call
    std::uint32_t stale_alive = 0;         // processes with an old heartbeat that still exist (left alone)
    std::uint32_t publishers_freed = 0;    // publisher places of dead processes given back
    std::uint32_t subscribers_freed = 0;   // subscriber places of dead processes given back
    std::uint32_t readers_removed = 0;     // broadcast readers of dead processes freed
};

class SharedTopic {
public:
    // Creates or attaches (see the file comment). `mode` must include 0600 (0: 0600); an existing segment with a
    // wider mode is refused. `owner_uid`: whose segment (kShmOwnerSelf: this process's effective uid, which
    // creates it if need be; another uid: attach to that user's segment only, never create). 0, or -EINVAL (bad
    // configuration), -EPROTO (the existing segment has another layout, or is corrupt), -ENOSPC (no room in
    // /dev/shm or the process table), -EACCES (another user's segment or directory, or a wider mode), -ENOENT
    // (another owner's segment that does not exist), -EEXIST/-ETIMEDOUT from the segment, with a message.
    static int open(const TopicConfig& config, std::uint32_t mode, SharedTopic& out,
                    std::uint32_t owner_uid = kShmOwnerSelf) noexcept;

    // Attaches to the existing topic `name` of `owner_uid` with the configuration its segment holds, for a process
    // that does not know it: the segment and topic headers are validated as by any attach, and a configuration
    // whose layout id differs from the segment's (a peer of another library version) is refused. Never creates.
    // 0, or -EINVAL (bad name or mode), -ENOENT (no such topic), -EPROTO (another layout, or corrupt), -EACCES,
    // -ESTALE (left by a dead run), -ETIMEDOUT, -ENOSPC (process table full), with a message.
    static int open_existing(const char* name, std::uint32_t mode, SharedTopic& out,
                             std::uint32_t owner_uid = kShmOwnerSelf) noexcept;

    // Reads the layout versions of topic `name`'s segment without attaching (nothing read is used for anything but
    // these numbers): what a peer that refused an attach with -EPROTO was built with. 0, or -EINVAL (bad name),
    // -ENOENT, -EACCES (a symbolic link, not a regular file, another owner's), -EPROTO (not a segment), with a
    // message.
    static int read_layout(const char* name, std::uint32_t owner_uid, SharedTopicLayout& out) noexcept;
    // The versions this library writes.
    static SharedTopicLayout local_layout() noexcept;

    SharedTopic() noexcept = default;
    SharedTopic(SharedTopic&& other) noexcept { *this = static_cast<SharedTopic&&>(other); }
    SharedTopic& operator=(SharedTopic&& other) noexcept;
    SharedTopic(const SharedTopic&) = delete;
    SharedTopic& operator=(const SharedTopic&) = delete;
    ~SharedTopic() { close(); }

    // Deregisters this process and unmaps. Endpoints opened through this object must be closed first; places
    // they still hold are given back here (their objects must not be used after).
    void close() noexcept;
    // Removes the segment's name (the last process out, or an operator); mappings stay valid until close().
    int unlink() noexcept { return segment_.unlink(); }

    // Endpoints, held in the topic's ledger under this process's registration, so that they are reclaimed if the
    // process dies.
    int open_publisher(HybridLogicalClock& clock, Publisher& out) noexcept;
    int open_subscriber(Subscriber& out) noexcept;
    void close_publisher(Publisher& publisher) noexcept;
    void close_subscriber(Subscriber& subscriber) noexcept;

    // Publishers and subscribers attached now, in every process (read from the ledger).
    std::uint32_t publishers() const noexcept;
    std::uint32_t subscribers() const noexcept;

    // Heartbeat + scan (see the file comment). 0, or -ESTALE if this process was itself judged dead (its
    // heartbeat stopped for longer than the timeout while it was not alive to the scanner: it must reopen).
    int maintain(std::uint64_t heartbeat_timeout_ns, MaintainReport& report) noexcept;

    bool valid() const noexcept { return topic_.valid(); }
    const Topic& topic() const noexcept { return topic_; }
    bool created() const noexcept { return segment_.is_creator(); }
    bool was_reset() const noexcept { return segment_.was_reset(); }
    bool memory_locked() const noexcept { return segment_.memory_locked(); }
    const ShmSegment& segment() const noexcept { return segment_; }
    // The ledger holder this process's endpoints are registered under.
    EndpointHolder holder() const noexcept;

private:
    // The last steps of every open: views the topic in the attached segment and registers this process.
    static int adopt_segment(SharedTopic& shared, const char* topic_name) noexcept;
    // Gives back every place `holder` holds, broadcast readers first (see reclaim_places).
    void free_places(EndpointHolder holder, MaintainReport& report) noexcept;

    ShmSegment segment_;
    Topic topic_;
    ProcessTicket ticket_;
};

}  // namespace cf::bus
