// The processes that use a shared-memory segment, so one that died (kill -9) is noticed and its claims are
// reclaimed, and a segment that no living process uses is recognised as stale.
//
// A fixed table of kCapacity entries, one cache line each, formatted in place (format_at) inside the segment
// header. Position independent: plain lock-free atomics at fixed offsets, no pointers; every process maps it
// at its own address. Nothing here is for the hot path: processes register once, heartbeat from their
// housekeeping loop (not per message), and one of them scans now and then.
//
// A process is identified by (pid, start time) (platform/os/process_liveness.hpp), so a pid the kernel recycled
// for another process is not mistaken for the one that registered. All processes of a segment must therefore
// share one pid namespace (and see the same /proc).
//
// Each entry's `word` packs   sequence << 40 | actor pid << 8 | state:
//   free --register (CAS)--> claiming --fields written, release store--> live
//   live --deregister (CAS)--> reclaiming --fields cleared--> free                       (clean exit)
//   live/claiming --scan finds the owner dead (CAS)--> reclaiming --callback--> free     (kill -9)
// The CAS out of live/claiming is what reports a dead process exactly once when scanners race. The sequence,
// bumped on every claim, keeps an old ticket or a slow scanner from acting on a later occupant of the entry.
// The actor pid is the owner while claiming/live and the reclaimer while reclaiming: an entry abandoned
// half-reclaimed by a scanner that died itself is taken over by the next scan and reported again.
#pragma once

#include <atomic>
#include <cstdint>
#include <type_traits>

#include "platform/os/monotonic_clock.hpp"
#include "platform/os/process_liveness.hpp"

namespace cf {

// Identity and liveness come from platform/os; the bus and its users name them as cf::ProcessIdentity etc.
using platform::Liveness;
using platform::process_liveness;
using platform::ProcessIdentity;
using platform::read_process_identity;
using platform::self_identity;

struct alignas(64) ProcessEntry {
    std::atomic<std::uint64_t> word;          // sequence << 40 | actor pid << 8 | state (see the file comment)
    std::atomic<std::uint64_t> pid;           // the owner, kept while reclaiming (the word then names the reclaimer)
    std::atomic<std::uint64_t> start_time;    // the owner's start time (ProcessIdentity::start_time)
    std::atomic<std::uint64_t> heartbeat_ns;  // CLOCK_MONOTONIC ns of the owner's last heartbeat
    std::atomic<std::uint64_t> registered_ns; // CLOCK_MONOTONIC ns of the registration
    // Two words the owner uses as it likes, set at registration and at any time after (relaxed stores of the
    // owner, read by the scanner that reclaims a dead owner). Zero when the entry is free. (The bus records
    // nothing here: a topic's endpoint ledger names the registration itself, see topic_endpoints.hpp.)
    std::atomic<std::uint64_t> user[2];
    std::uint64_t reserved_;
};

// A registration, held by the process that registered. Valid only in that process (not in a forked child).
struct ProcessTicket {
    static constexpr std::uint32_t kNone = UINT32_MAX;
    std::uint32_t index = kNone;
    std::uint64_t word = 0;      // the entry's word while live; heartbeat/deregister check that it is unchanged
    bool valid() const noexcept { return index != kNone; }
};

enum class ProcessVerdict : std::uint8_t {
    dead,          // the process is gone: reclaimed, reported once
    pid_reused,    // its pid now names another process: it is gone too, reclaimed, reported once
    stale_alive,   // heartbeat older than the timeout but the process exists (stopped, debugged, starved):
                   // reported on every scan, never reclaimed
};

// What a scan saw in one entry. For dead/pid_reused the entry is still held (reclaiming) while the callback
// runs, so user[] is what the dead process left there; it is freed when the callback returns.
struct ScanReport {
    std::uint32_t index = 0;
    std::uint64_t sequence = 0;   // the entry's claim sequence: with index, names this registration
    std::uint32_t pid = 0;
    std::uint64_t start_time = 0;
    std::uint64_t heartbeat_ns = 0;
    std::uint64_t user[2] = {0, 0};
    ProcessVerdict verdict = ProcessVerdict::dead;
};

struct ScanCounts {
    std::uint32_t alive = 0;          // live entries of living processes with a fresh heartbeat
    std::uint32_t reclaimed = 0;      // reported dead/pid_reused and freed by this scan
    std::uint32_t stale_alive = 0;    // reported stale_alive
};

class ProcessTable {
public:
    static constexpr std::uint32_t kCapacity = 64;

    enum State : std::uint8_t { kFree = 0, kClaiming = 1, kLive = 2, kReclaiming = 3 };

    using ScanCallback = void (*)(void* context, const ScanReport& report);

    ProcessTable(const ProcessTable&) = delete;   // lives in shared memory: see format_at / at
    ProcessTable& operator=(const ProcessTable&) = delete;

    // Formats `memory` (64-byte aligned, sizeof(ProcessTable) bytes) as an empty table. Only while no other
    // process uses that memory (the segment creator does it before anyone can attach).
    static ProcessTable& format_at(void* memory) noexcept;
    // A table some process formatted at `memory`, possibly mapped at another address.
    static ProcessTable& at(void* memory) noexcept { return *static_cast<ProcessTable*>(memory); }

    // Claims a free entry for `who` with a CAS, records its start time, heartbeat `now_ns` and the user words,
    // then publishes it live (release store; a scanner's acquire load of the word sees every field).
    // 0, or -ENOSPC when all entries are taken, -EINVAL for pid 0.
    int register_process(const ProcessIdentity& who, std::uint64_t now_ns, std::uint64_t user0,
                         std::uint64_t user1, ProcessTicket& out) noexcept;
    // register_process(self_identity(), ...).
    int register_self(std::uint64_t now_ns, std::uint64_t user0, std::uint64_t user1, ProcessTicket& out) noexcept;

    // Records that the owner is alive at `now_ns` (CLOCK_MONOTONIC ns). 0, or -ESTALE if the entry is no
    // longer this ticket's (a scanner judged the owner dead and reclaimed it: the owner must re-register and
    // should treat what it held as lost). One load and one store: cheap, but meant for housekeeping. The check
    // and the store are not one atomic step; that is safe because only a dead (or recycled-pid) owner's entry
    // is ever reclaimed, and a dead owner does not call this.
    int heartbeat(const ProcessTicket& ticket, std::uint64_t now_ns) noexcept;

    // Sets a user word of the ticket's entry (relaxed). 0 or -ESTALE as heartbeat(); -EINVAL for slot > 1.
    int set_user(const ProcessTicket& ticket, unsigned slot, std::uint64_t value) noexcept;

    // Frees the ticket's entry on a clean exit and clears the ticket. 0, or -ESTALE if it was reclaimed already.
    int deregister(ProcessTicket& ticket) noexcept;

    // Checks every occupied entry. A live or claiming entry whose process is dead or whose pid was reused is
    // moved to reclaiming with a CAS (so of two racing scanners exactly one reports it), reported to
    // `callback` and freed. A live entry whose heartbeat is more than `heartbeat_timeout_ns` older than
    // `now_ns` but whose process exists is reported as stale_alive and left alone. `callback` may be null.
    // Reads /proc for every occupied entry: housekeeping, not the hot path.
    ScanCounts scan(std::uint64_t now_ns, std::uint64_t heartbeat_timeout_ns, ScanCallback callback,
                    void* context) noexcept;

    // The same with any callable `void(const ScanReport&)`, called synchronously (no allocation).
    template <class F>
    ScanCounts scan(std::uint64_t now_ns, std::uint64_t heartbeat_timeout_ns, F&& callback) noexcept {
        using Fn = std::remove_reference_t<F>;
        return scan(now_ns, heartbeat_timeout_ns,
                    [](void* context, const ScanReport& report) { (*static_cast<Fn*>(context))(report); },
                    const_cast<void*>(static_cast<const void*>(&callback)));
    }

    // Whether any occupied entry names a living process (owner, or the reclaimer of an entry being
    // reclaimed); its pid in `pid`. This is what keeps a segment from being reset as stale.
    bool any_alive(std::uint32_t& pid) const noexcept;

    // Entries occupied in any state (a snapshot).
    std::uint32_t occupied() const noexcept;

    ProcessEntry& entry(std::uint32_t index) noexcept { return entries_[index]; }
    const ProcessEntry& entry(std::uint32_t index) const noexcept { return entries_[index]; }

    // The word's parts.
    static constexpr State state_of(std::uint64_t word) noexcept { return static_cast<State>(word & 0xff); }
    static constexpr std::uint32_t pid_of(std::uint64_t word) noexcept {
        return static_cast<std::uint32_t>(word >> 8);
    }
    static constexpr std::uint64_t sequence_of(std::uint64_t word) noexcept { return word >> 40; }

    // CLOCK_MONOTONIC in ns: the heartbeat clock, the same in every process of the host.
    static std::uint64_t monotonic_ns() noexcept { return platform::monotonic_ns(); }

private:
    ProcessTable() noexcept = default;   // only format_at constructs one, in place
    ProcessEntry entries_[kCapacity];
};

static_assert(std::atomic<std::uint64_t>::is_always_lock_free, "shared-memory atomics must be lock-free");
static_assert(sizeof(ProcessEntry) == 64);
static_assert(sizeof(ProcessTable) == 64 * ProcessTable::kCapacity);
static_assert(std::is_standard_layout_v<ProcessTable>);

}  // namespace cf
