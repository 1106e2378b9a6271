// A named POSIX shared-memory segment that topics live in, so other processes can publish and subscribe on it
// at the same zero-copy path (rings inside are formatted in place and use offsets, never pointers).
//
// Memory layout (every offset fixed, no pointers):
//   [0, 4096)        ShmHeader: magic, layout version, layout id, sizes, creator (pid + start time), generation,
//                    checksum, state
//   [4096, 8192)     ProcessTable: who uses the segment (liveness, reclaim of dead processes)
//   [8192, ...)      payload: payload_bytes() rounded up to 4096, so anything 64-byte aligned inside stays so
//
// Where: a segment is the file /dev/shm/chronofabric-<uid>/<name>, in a directory of its owner's that nobody else
// may write (mode 0700, plus search permission for group or others when segments are shared with them). So no
// other user can create, replace or remove a name there: names are not squattable across users. Every open
// refuses symbolic links (O_NOFOLLOW) and checks owner and mode: a segment (or the directory) that belongs to
// another uid than the expected owner, or whose mode is wider than the caller asked for, is refused with -EACCES
// and a message naming its owner and mode, since whoever can write it can feed this process any message.
//
// Life cycle: create() makes the file with the given mode regardless of umask, sizes it once (ftruncate + fallocate, so a full /dev/shm is an error now rather than SIGBUS later),
// maps it MAP_SHARED | MAP_POPULATE, tries to mlock it and writes the header in state `formatting`. The creator
// then formats the payload and calls mark_ready(): a release store that attachers acquire, so everything
// written before it is visible to them. attach() validates the header (magic, layout version, checksum, sizes,
// layout id: -EPROTO with a message saying which) and waits, up to a timeout, for `ready`.
//
// Stale segments: a segment outlives its processes. When create() finds the name taken, it decides from the
// header under an exclusive flock (so two creators never both reset): if the creator (pid + start time, so a
// recycled pid does not count) and every process registered in the ProcessTable are dead, the segment is from
// an earlier run: it is marked retired, unlinked and created anew with generation + 1 (was_reset() says so).
// If one of them lives: -EEXIST naming the pid. A process that maps a segment without registering in its
// ProcessTable does not keep it alive: register every publisher and subscriber. Processes still mapping a
// retired segment see retired() and should re-attach.
//
// Not for the hot path: everything here is set-up and housekeeping. All users of a segment must share one pid
// namespace (see ProcessTable).
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>

#include "engine/bus/process_table.hpp"
#include "engine/time/duration.hpp"

namespace cf {

enum class ShmState : std::uint32_t {
    unformatted = 0,   // sized but the header not written yet (or its creator died before writing it)
    formatting = 1,    // header written; the creator is formatting the payload
    ready = 2,         // mark_ready(): the payload may be used
    retired = 3,       // reset or unlinked: the name now refers to another segment or to none
};

// The header at offset 0. Offsets 0..23 are the same in every layout version, so any version can name the
// creator of a segment it does not speak. Written once by the creator before its release store of `state`.
struct ShmHeader {
    std::uint64_t magic;                 // kShmMagic
    std::uint32_t layout_version;        // ShmSegment::kLayoutVersion of the creator's library
    std::uint32_t creator_pid;
    std::uint64_t creator_start_time;    // /proc/PID/stat field 22 of the creator
    std::uint64_t layout_id;             // the caller's hash of what it formats in the payload
    std::uint64_t total_bytes;           // the object's size
    std::uint64_t payload_offset;        // ShmSegment::kPayloadOffset
    std::uint64_t payload_bytes;         // total_bytes - payload_offset
    std::uint64_t generation;            // 1, +1 each time a stale segment of this name is reset
    std::uint64_t checksum;              // FNV-1a of bytes [0, 64): a header overwritten by garbage is refused
    std::uint64_t reserved[7];
    alignas(64) std::atomic<std::uint32_t> state;   // ShmState; release stores, acquire loads
};

inline constexpr std::uint64_t kShmMagic = 0x4745534D48534643;   // "CFSHMSEG" in little-endian bytes

static_assert(sizeof(std::atomic<std::uint32_t>) == 4 && std::atomic<std::uint32_t>::is_always_lock_free);
static_assert(offsetof(ShmHeader, magic) == 0 && offsetof(ShmHeader, layout_version) == 8);
static_assert(offsetof(ShmHeader, creator_pid) == 12 && offsetof(ShmHeader, creator_start_time) == 16);
static_assert(offsetof(ShmHeader, layout_id) == 24 && offsetof(ShmHeader, generation) == 56);
static_assert(offsetof(ShmHeader, checksum) == 64 && offsetof(ShmHeader, state) == 128);
static_assert(sizeof(ShmHeader) == 192);

// What create() does when the name is taken.
enum class ShmIfExists : std::uint8_t {
    fail,             // -EEXIST, whatever the existing segment's state
    reset_if_stale,   // reset it if its creator and every registered process are dead; -EEXIST naming the pid
                      // if one lives; -EPROTO (left alone) if it is not a segment of this layout version
    replace,          // unlink whatever is there and create anew: for operators and tests that know better
};

inline constexpr Duration kShmDefaultWaitTimeout = Duration::from_seconds(2);

// The effective uid of the calling process: the default owner of the segments it creates and attaches to.
inline constexpr std::uint32_t kShmOwnerSelf = UINT32_MAX;

inline constexpr int kShmCreatorNode = -1;

struct ShmSegmentConfig {
    const char* name = nullptr;         // 1..200 of [A-Za-z0-9._-]; the file is <directory of owner>/<name>
    std::size_t payload_bytes = 0;      // 1..kMaxPayloadBytes, rounded up to 4096
    std::uint64_t layout_id = 0;        // hash of the payload's layout (e.g. ring geometry), checked by attach()
    std::uint32_t mode = 0600;          // permission bits, applied regardless of umask; must include 0600. An
                                        // existing segment with wider bits is refused (-EACCES)
    std::uint32_t owner_uid = kShmOwnerSelf;   // only the owner creates; another uid here is refused (-EINVAL)
    ShmIfExists if_exists = ShmIfExists::reset_if_stale;
    bool lock_memory = true;            // try mlock; failure shows in memory_locked(), it is not an error
    // The NUMA node the pages prefer (mbind MPOL_PREFERRED before they are allocated; the policy lives with the
    // file, so it holds for every process): kShmCreatorNode is the node the creating thread runs on. A node the
    // machine does not have is refused (-EINVAL); a kernel or sandbox without NUMA policy skips placement (see
    // numa_placement()), which is not an error.
    int numa_node = kShmCreatorNode;
    // How long to wait for another process that holds the name's lock or is between creating and sizing it;
    // a name still unsized after this is taken as abandoned by a creator that died.
    Duration wait_timeout = kShmDefaultWaitTimeout;
};

class ShmSegment {
public:
    static constexpr std::uint32_t kLayoutVersion = 1;
    static constexpr std::size_t kMaxNameLength = 200;
    static constexpr const char* kRootDirectory = "/dev/shm";
    // kRootDirectory + "/chronofabric-" + a uid + "/" + a name
    static constexpr std::size_t kMaxPathLength = 8 + 14 + 10 + 1 + kMaxNameLength;
    static constexpr std::size_t kProcessTableOffset = 4096;
    static constexpr std::size_t kPayloadOffset = 8192;
    static constexpr std::size_t kPayloadAlignment = 4096;
    static constexpr std::size_t kMaxPayloadBytes = std::size_t{1} << 40;

    ShmSegment() noexcept = default;
    ~ShmSegment() { detach(); }
    ShmSegment(ShmSegment&& other) noexcept;
    ShmSegment& operator=(ShmSegment&& other) noexcept;
    ShmSegment(const ShmSegment&) = delete;
    ShmSegment& operator=(const ShmSegment&) = delete;

    // Creates the segment (see the file comment), in state formatting; `out` is detached first and stays
    // empty on failure. 0, or: -EINVAL (bad name, size, mode or owner), -EEXIST (taken: if_exists == fail, or a
    // live process uses it; the message names the pid), -EPROTO (taken by something that is not a segment of
    // this layout version), -ETIMEDOUT (another process held the name's lock for wait_timeout), -ENOSPC (no room
    // in /dev/shm), -EACCES (the directory or an existing segment belongs to another user, is a symbolic link,
    // or has a wider mode than `mode`: the message names owner and mode), or another errno from
    // open/ftruncate/mmap.
    static int create(const ShmSegmentConfig& config, ShmSegment& out) noexcept;

    // Attaches to an existing segment of `owner_uid` and waits up to `timeout` for it to be ready. `out` is
    // detached first and stays empty on failure. 0, or: -EINVAL (bad name or mode), -ENOENT (no such segment),
    // -EPROTO (too small, bad magic, other layout version, corrupt header, or another layout_id), -ETIMEDOUT (not
    // ready in time), -ESTALE (its creator died before making it ready, or it is ready but its creator and every
    // registered process are gone: a segment from an earlier run, which the next create() resets), -EACCES (not
    // the owner's, a symbolic link, or a mode wider than `mode`).
    static int attach(const char* name, std::uint64_t expected_layout_id, ShmSegment& out,
                      Duration timeout = kShmDefaultWaitTimeout, std::uint32_t mode = 0600,
                      std::uint32_t owner_uid = kShmOwnerSelf) noexcept;

    // Creator only: publishes the formatted payload (release store; pairs with attach()'s acquire load).
    // 0, -EPERM if this handle did not create the segment, -ESTALE if it was retired meanwhile.
    int mark_ready() noexcept;

    // Unmaps and closes; the segment and its name stay for others. Safe on an empty handle.
    void detach() noexcept;

    // Removes the name, by any holder (creator or attacher: the last one out, or an operator). Only if the name
    // still refers to this segment, which is then marked retired so other holders learn of it; the mapping
    // stays valid until detach(). 0, -EINVAL on an empty handle, -ESTALE if the name is gone or names another
    // segment now (it is left alone).
    int unlink() noexcept;

    // Removes this process's segment `name` without looking inside (tests, operators). 0, -EINVAL, -ENOENT.
    static int remove(const char* name) noexcept;

    // The file of segment `name` of `owner_uid` into `out` (at least kMaxPathLength + 1 bytes). 0 or -EINVAL.
    static int path_of(const char* name, std::uint32_t owner_uid, char* out, std::size_t out_bytes) noexcept;

    // 0 if `name` is 1..200 of [A-Za-z0-9._-], otherwise -EINVAL with a message saying why.
    static int check_name(const char* name) noexcept;

    bool valid() const noexcept { return header_ != nullptr; }
    void* payload() const noexcept;
    std::size_t payload_bytes() const noexcept { return payload_bytes_; }
    ProcessTable& processes() const noexcept;
    const ShmHeader* header() const noexcept { return header_; }
    ShmState state() const noexcept;
    bool ready() const noexcept { return state() == ShmState::ready; }
    bool retired() const noexcept { return state() == ShmState::retired; }
    std::uint64_t layout_id() const noexcept { return layout_id_; }
    std::uint64_t generation() const noexcept { return generation_; }
    std::uint32_t creator_pid() const noexcept { return creator_pid_; }
    bool is_creator() const noexcept { return creator_; }
    bool was_reset() const noexcept { return reset_; }          // create() replaced a stale segment
    bool memory_locked() const noexcept { return locked_; }     // mlock succeeded
    // The creator's placement of the pages on numa_node(): 0 bound, -EOPNOTSUPP no NUMA policy here (skipped),
    // another negative errno if mbind failed (the segment works, its pages sit wherever the kernel put them).
    // -ENOENT for a segment this handle attached: its creator placed it.
    int numa_placement() const noexcept { return placement_; }
    int numa_node() const noexcept { return node_; }            // creator only; -1 after attach
    const char* name() const noexcept { return name_; }
    const char* path() const noexcept { return path_; }
    int fd() const noexcept { return fd_; }

private:
    void adopt(int fd, ShmHeader* header, std::size_t mapped_bytes, const char* name, const char* path,
               bool creator, bool reset, bool locked) noexcept;

    ShmHeader* header_ = nullptr;
    std::size_t mapped_bytes_ = 0;
    std::size_t payload_bytes_ = 0;
    std::uint64_t layout_id_ = 0;
    std::uint64_t generation_ = 0;
    std::uint32_t creator_pid_ = 0;
    int fd_ = -1;
    bool creator_ = false;
    bool reset_ = false;
    bool locked_ = false;
    int placement_ = -ENOENT;
    int node_ = -1;
    char name_[kMaxNameLength + 1] = {};
    char path_[kMaxPathLength + 1] = {};
};

static_assert(ShmSegment::kPayloadOffset % ShmSegment::kPayloadAlignment == 0);
static_assert(ShmSegment::kProcessTableOffset >= sizeof(ShmHeader));
static_assert(ShmSegment::kProcessTableOffset + sizeof(ProcessTable) <= ShmSegment::kPayloadOffset);

}  // namespace cf
