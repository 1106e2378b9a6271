#include "engine/bus/process_table.hpp"

#include <unistd.h>

#include <cerrno>
#include <climits>
#include <new>

#include "platform/os/last_error.hpp"

namespace cf {
namespace {

using platform::fail;

constexpr std::uint64_t kSequenceOne = std::uint64_t{1} << 40;
constexpr std::uint64_t kSequenceMask = ~(kSequenceOne - 1);

constexpr std::uint64_t make_word(std::uint64_t sequence_bits, std::uint32_t pid, ProcessTable::State state) {
    return (sequence_bits & kSequenceMask) | (std::uint64_t{pid} << 8) | state;
}

bool pid_in_range(std::uint32_t pid) { return pid != 0 && pid <= static_cast<std::uint32_t>(INT_MAX); }

// Only while the entry is held (reclaiming). release: a scanner whose acquire load reads a cleared field also
// sees the word that says the entry is no longer what it loaded (see scan()).
void clear_fields(ProcessEntry& entry) {
    entry.pid.store(0, std::memory_order_release);
    entry.start_time.store(0, std::memory_order_release);
    entry.heartbeat_ns.store(0, std::memory_order_release);
    entry.registered_ns.store(0, std::memory_order_release);
    entry.user[0].store(0, std::memory_order_release);
    entry.user[1].store(0, std::memory_order_release);
}

}  // namespace

ProcessTable& ProcessTable::format_at(void* memory) noexcept {
    ProcessTable* table = ::new (memory) ProcessTable;
    for (ProcessEntry& entry : table->entries_) {
        entry.word.store(0, std::memory_order_relaxed);
        clear_fields(entry);
        entry.reserved_ = 0;
    }
    // Whoever learns of the table later does so through a release store (the segment's state), which
    // publishes these stores too.
    return *table;
}

int ProcessTable::register_process(const ProcessIdentity& who, std::uint64_t now_ns, std::uint64_t user0,
                                   std::uint64_t user1, ProcessTicket& out) noexcept {
    out = {};
    if (!pid_in_range(who.pid)) return fail(EINVAL, "process table: cannot register pid %u", who.pid);
    for (std::uint32_t index = 0; index < kCapacity; ++index) {
        ProcessEntry& entry = entries_[index];
        std::uint64_t word = entry.word.load(std::memory_order_relaxed);
        if (state_of(word) != kFree) continue;
        const std::uint64_t claiming = make_word((word & kSequenceMask) + kSequenceOne, who.pid, kClaiming);
        // acquire: the previous owner's clearing of the fields (before its release store of free) happens
        // before our writes below.
        if (!entry.word.compare_exchange_strong(word, claiming, std::memory_order_acquire,
                                                std::memory_order_relaxed)) {
            continue;   // taken meanwhile; later entries may still be free
        }
        entry.pid.store(who.pid, std::memory_order_relaxed);
        entry.start_time.store(who.start_time, std::memory_order_relaxed);
        entry.heartbeat_ns.store(now_ns, std::memory_order_relaxed);
        entry.registered_ns.store(now_ns, std::memory_order_relaxed);
        entry.user[0].store(user0, std::memory_order_relaxed);
        entry.user[1].store(user1, std::memory_order_relaxed);
        const std::uint64_t live = make_word(claiming, who.pid, kLive);
        // release: pairs with the acquire load of the word in scan(), which then sees every field above.
        // A plain store is enough: nobody else changes a claiming entry whose owner is alive.
        entry.word.store(live, std::memory_order_release);
        out.index = index;
        out.word = live;
        return 0;
    }
    return fail(ENOSPC, "process table full: all %u entries are registered", kCapacity);
}

int ProcessTable::register_self(std::uint64_t now_ns, std::uint64_t user0, std::uint64_t user1,
                                ProcessTicket& out) noexcept {
    out = {};
    ProcessIdentity self;
    if (const int status = self_identity(self); status != 0) return status;
    return register_process(self, now_ns, user0, user1, out);
}

int ProcessTable::heartbeat(const ProcessTicket& ticket, std::uint64_t now_ns) noexcept {
    if (ticket.index >= kCapacity) return fail(EINVAL, "heartbeat: ticket is not registered");
    ProcessEntry& entry = entries_[ticket.index];
    if (entry.word.load(std::memory_order_relaxed) != ticket.word) {
        return fail(ESTALE, "process table entry %u was reclaimed: register again", ticket.index);
    }
    // relaxed: a heartbeat orders nothing else; a scanner only compares it with its clock.
    entry.heartbeat_ns.store(now_ns, std::memory_order_relaxed);
    return 0;
}

int ProcessTable::set_user(const ProcessTicket& ticket, unsigned slot, std::uint64_t value) noexcept {
    if (ticket.index >= kCapacity) return fail(EINVAL, "set_user: ticket is not registered");
    if (slot > 1) return fail(EINVAL, "set_user: slot %u, there are 2", slot);
    ProcessEntry& entry = entries_[ticket.index];
    if (entry.word.load(std::memory_order_relaxed) != ticket.word) {
        return fail(ESTALE, "process table entry %u was reclaimed: register again", ticket.index);
    }
    entry.user[slot].store(value, std::memory_order_relaxed);
    return 0;
}

int ProcessTable::deregister(ProcessTicket& ticket) noexcept {
    if (ticket.index >= kCapacity) return fail(EINVAL, "deregister: ticket is not registered");
    ProcessEntry& entry = entries_[ticket.index];
    std::uint64_t expected = ticket.word;
    const std::uint64_t reclaiming = make_word(ticket.word, pid_of(ticket.word), kReclaiming);
    const std::uint32_t index = ticket.index;
    ticket = {};
    if (!entry.word.compare_exchange_strong(expected, reclaiming, std::memory_order_acquire,
                                            std::memory_order_relaxed)) {
        return fail(ESTALE, "process table entry %u was reclaimed already", index);
    }
    clear_fields(entry);
    // release: the next claimer's acquire CAS sees the cleared fields.
    entry.word.store(make_word(reclaiming, 0, kFree), std::memory_order_release);
    return 0;
}

ScanCounts ProcessTable::scan(std::uint64_t now_ns, std::uint64_t heartbeat_timeout_ns, ScanCallback callback,
                              void* context) noexcept {
    ScanCounts counts;
    const std::uint32_t self = static_cast<std::uint32_t>(::getpid());
    for (std::uint32_t index = 0; index < kCapacity; ++index) {
        ProcessEntry& entry = entries_[index];
        // acquire: pairs with the release store that made the entry live, so the fields read below are its.
        std::uint64_t word = entry.word.load(std::memory_order_acquire);
        const State state = state_of(word);
        if (state == kFree) continue;

        // The fields are read like a seqlock: another scanner may reclaim the entry and clear them while we
        // read (a cleared start time would read as "unknown", i.e. alive). acquire loads here pair with the
        // release stores of clear_fields(): whoever saw a cleared field sees the changed word below.
        ScanReport report;
        report.index = index;
        report.sequence = sequence_of(word);
        Liveness liveness;
        if (state == kReclaiming) {
            // Being reclaimed or deregistered by the process the word names; take over only if that one died.
            if (process_liveness(pid_of(word), 0) == Liveness::alive) continue;
            report.pid = static_cast<std::uint32_t>(entry.pid.load(std::memory_order_acquire));
            report.start_time = entry.start_time.load(std::memory_order_acquire);
            liveness = Liveness::dead;
        } else {
            // Claiming: the start time may not be written yet; judge by the pid (the word's, always set).
            report.pid = pid_of(word);
            report.start_time = state == kLive ? entry.start_time.load(std::memory_order_acquire) : 0;
            liveness = process_liveness(report.pid, report.start_time);
        }
        report.heartbeat_ns = entry.heartbeat_ns.load(std::memory_order_acquire);

        if (liveness == Liveness::alive) {
            report.user[0] = entry.user[0].load(std::memory_order_acquire);
            report.user[1] = entry.user[1].load(std::memory_order_acquire);
            // Changed meanwhile: reclaimed or deregistered by someone else, or a new occupant. Not ours to judge.
            if (entry.word.load(std::memory_order_acquire) != word) continue;
            const bool stale = state == kLive && now_ns > report.heartbeat_ns &&
                               now_ns - report.heartbeat_ns > heartbeat_timeout_ns;
            if (!stale) {
                ++counts.alive;
                continue;
            }
            report.verdict = ProcessVerdict::stale_alive;
            ++counts.stale_alive;
            if (callback != nullptr) callback(context, report);
            continue;
        }

        // Dead or pid reused: the one scanner whose CAS wins reports it. The word cannot come back to the same
        // value (the sequence grows), so a won CAS also proves the fields read above were this occupant's.
        const std::uint64_t reclaiming = make_word(word, self, kReclaiming);
        if (!entry.word.compare_exchange_strong(word, reclaiming, std::memory_order_acquire,
                                                std::memory_order_relaxed)) {
            continue;   // another scanner took it, or the owner deregistered
        }
        report.user[0] = entry.user[0].load(std::memory_order_relaxed);
        report.user[1] = entry.user[1].load(std::memory_order_relaxed);
        report.verdict = liveness == Liveness::pid_reused ? ProcessVerdict::pid_reused : ProcessVerdict::dead;
        ++counts.reclaimed;
        if (callback != nullptr) callback(context, report);
        clear_fields(entry);
        // release: the next claimer's acquire CAS sees the cleared fields (and whatever the callback released).
        entry.word.store(make_word(reclaiming, 0, kFree), std::memory_order_release);
    }
    return counts;
}

bool ProcessTable::any_alive(std::uint32_t& pid) const noexcept {
    for (const ProcessEntry& entry : entries_) {
        // A few tries per entry: the start time is only trusted if the word did not change while it was read
        // (as in scan()); an entry that keeps changing is in use, which is what a caller needs to know.
        for (int attempt = 0;; ++attempt) {
            const std::uint64_t word = entry.word.load(std::memory_order_acquire);
            const State state = state_of(word);
            if (state == kFree) break;
            const std::uint64_t start = state == kLive ? entry.start_time.load(std::memory_order_acquire) : 0;
            if (entry.word.load(std::memory_order_acquire) != word && attempt < 3) continue;
            if (process_liveness(pid_of(word), start) == Liveness::alive) {
                pid = pid_of(word);
                return true;
            }
            break;
        }
    }
    return false;
}

std::uint32_t ProcessTable::occupied() const noexcept {
    std::uint32_t count = 0;
    for (const ProcessEntry& entry : entries_) {
        if (state_of(entry.word.load(std::memory_order_relaxed)) != kFree) ++count;
    }
    return count;
}

}  // namespace cf
