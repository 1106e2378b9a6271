// Process table: register/heartbeat/deregister, a full table, dead processes (SIGKILLed, zombies, recycled pids)
// reported exactly once even by racing scanners, live processes that stopped heartbeating reported as
// stale-but-alive and never reclaimed, and random operation sequences against a model. (Who a process is and
// whether it lives: tests/platform/process_liveness_test.cpp.)
// Children of fork() never use doctest: they report by exit status.
#include <doctest/doctest.h>

#include <signal.h>
#include <sys/mman.h>
#include <unistd.h>

#include <array>
#include <atomic>
#include <cerrno>
#include <cstdint>
#include <cstring>
#include <random>
#include <thread>
#include <vector>

#include "engine/bus/process_table.hpp"
#include "platform/os/last_error.hpp"
#include "tests/bus/fork_support.hpp"
#include "tests/platform/start_time_reference.hpp"

using cf::ProcessIdentity;
using cf::ProcessTable;
using cf::ProcessTicket;
using cf::ProcessVerdict;
using cf::ScanCounts;
using cf::ScanReport;
using namespace cf::test;

namespace {

constexpr std::uint64_t kSecond = 1'000'000'000;

bool message_contains(const char* text) { return std::strstr(cf::platform::last_error_message(), text) != nullptr; }

// Shared, anonymous memory: survives fork() as the same pages, like a segment.
struct SharedMemory {
    void* base = MAP_FAILED;
    std::size_t bytes;
    explicit SharedMemory(std::size_t size) : bytes(size) {
        base = ::mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    }
    ~SharedMemory() {
        if (base != MAP_FAILED) ::munmap(base, bytes);
    }
    bool ok() const { return base != MAP_FAILED; }
};

struct SharedTable {
    SharedMemory memory{sizeof(ProcessTable)};
    ProcessTable& table = ProcessTable::format_at(memory.base);
};

// The pid of a process that has exited and been reaped: a pid nobody has (until the kernel wraps around).
std::uint32_t dead_pid() {
    const pid_t child = fork_child([] { return 0; });
    wait_child(child);
    return static_cast<std::uint32_t>(child);
}

// Forks a child that registers itself in `table` with user words `user0` and `user1`, then sleeps until killed;
// returns its pid once it is registered.
pid_t fork_registered_sleeper(ProcessTable& table, std::uint64_t user0, std::uint64_t user1) {
    Pipe registered;
    const pid_t child = fork_child([&] {
        registered.close_read();
        ProcessTicket ticket;
        if (table.register_self(ProcessTable::monotonic_ns(), user0, user1, ticket) != 0) return 1;
        registered.send('r');
        for (;;) ::pause();
    });
    registered.close_write();
    REQUIRE(registered.receive() == 'r');
    return child;
}

ProcessIdentity self() {
    ProcessIdentity identity;
    cf::self_identity(identity);
    return identity;
}

std::uint64_t free_word_sequence(const ProcessTable& table, std::uint32_t index) {
    return ProcessTable::sequence_of(table.entry(index).word.load());
}

}  // namespace

TEST_CASE("register, heartbeat, set a user word, deregister") {
    SharedTable shared;
    ProcessTable& table = shared.table;
    CHECK(table.occupied() == 0);
    const ProcessIdentity me = self();
    ProcessTicket ticket;
    REQUIRE(table.register_self(5 * kSecond, 11, 22, ticket) == 0);
    CHECK(ticket.valid());
    CHECK(ticket.index == 0);
    const cf::ProcessEntry& entry = table.entry(0);
    CHECK(ProcessTable::state_of(entry.word.load()) == ProcessTable::kLive);
    CHECK(ProcessTable::pid_of(entry.word.load()) == me.pid);
    CHECK(ProcessTable::sequence_of(entry.word.load()) == 1);
    CHECK(entry.word.load() == ticket.word);
    CHECK(entry.pid.load() == me.pid);
    CHECK(entry.start_time.load() == me.start_time);
    CHECK(entry.heartbeat_ns.load() == 5 * kSecond);
    CHECK(entry.registered_ns.load() == 5 * kSecond);
    CHECK(entry.user[0].load() == 11);
    CHECK(entry.user[1].load() == 22);
    CHECK(table.occupied() == 1);
    std::uint32_t pid = 0;
    CHECK(table.any_alive(pid));
    CHECK(pid == me.pid);

    CHECK(table.heartbeat(ticket, 7 * kSecond) == 0);
    CHECK(entry.heartbeat_ns.load() == 7 * kSecond);
    CHECK(entry.registered_ns.load() == 5 * kSecond);
    CHECK(table.set_user(ticket, 1, 99) == 0);
    CHECK(entry.user[1].load() == 99);
    CHECK(table.set_user(ticket, 2, 1) == -EINVAL);

    const ScanCounts counts = table.scan(8 * kSecond, kSecond * 10, nullptr, nullptr);
    CHECK(counts.alive == 1);
    CHECK(counts.reclaimed == 0);
    CHECK(counts.stale_alive == 0);

    const ProcessTicket copy = ticket;
    CHECK(table.deregister(ticket) == 0);
    CHECK_FALSE(ticket.valid());
    CHECK(ProcessTable::state_of(entry.word.load()) == ProcessTable::kFree);
    CHECK(entry.pid.load() == 0);
    CHECK(entry.user[0].load() == 0);
    CHECK(entry.user[1].load() == 0);
    CHECK(entry.heartbeat_ns.load() == 0);
    CHECK(table.occupied() == 0);
    CHECK_FALSE(table.any_alive(pid));
    // The old ticket is refused everywhere; an empty one too.
    CHECK(table.heartbeat(copy, 9 * kSecond) == -ESTALE);
    CHECK(message_contains("reclaimed"));
    ProcessTicket stale = copy;
    CHECK(table.deregister(stale) == -ESTALE);
    CHECK(table.set_user(copy, 0, 1) == -ESTALE);
    CHECK(table.deregister(ticket) == -EINVAL);
    CHECK(table.heartbeat(ProcessTicket{}, 1) == -EINVAL);

    // Re-registering takes the same entry with the next sequence: the old ticket stays refused.
    ProcessTicket again;
    REQUIRE(table.register_self(10 * kSecond, 0, 0, again) == 0);
    CHECK(again.index == 0);
    CHECK(ProcessTable::sequence_of(again.word) == 2);
    CHECK(table.heartbeat(copy, 11 * kSecond) == -ESTALE);
    CHECK(table.heartbeat(again, 11 * kSecond) == 0);
    CHECK(table.deregister(again) == 0);

    ProcessIdentity nobody;
    CHECK(table.register_process(nobody, 0, 0, 0, again) == -EINVAL);
    CHECK_FALSE(again.valid());
}

TEST_CASE("a full table: -ENOSPC, and a freed entry is reused") {
    SharedTable shared;
    ProcessTable& table = shared.table;
    const ProcessIdentity me = self();
    std::array<ProcessTicket, ProcessTable::kCapacity> tickets;
    for (std::uint32_t i = 0; i < ProcessTable::kCapacity; ++i) {
        REQUIRE(table.register_process(me, i, i, 0, tickets[i]) == 0);
        CHECK(tickets[i].index == i);
    }
    CHECK(table.occupied() == ProcessTable::kCapacity);
    ProcessTicket extra;
    CHECK(table.register_process(me, 0, 0, 0, extra) == -ENOSPC);
    CHECK(message_contains("full"));
    CHECK_FALSE(extra.valid());
    REQUIRE(table.deregister(tickets[37]) == 0);
    REQUIRE(table.register_process(me, 0, 0, 0, extra) == 0);
    CHECK(extra.index == 37);
    CHECK(free_word_sequence(table, 37) == 2);
    for (auto& ticket : tickets) {
        if (ticket.valid()) CHECK(table.deregister(ticket) == 0);
    }
    CHECK(table.deregister(extra) == 0);
    CHECK(table.occupied() == 0);
}

TEST_CASE("a SIGKILLed child is reported dead exactly once, with what it left in its user words") {
    SharedTable shared;
    ProcessTable& table = shared.table;
    Pipe registered;
    const pid_t child = fork_child([&] {
        registered.close_read();
        ProcessTicket ticket;
        if (table.register_self(ProcessTable::monotonic_ns(), 7, 9, ticket) != 0) return 1;
        registered.send(static_cast<char>(ticket.index));
        for (;;) ::pause();
    });
    registered.close_write();
    REQUIRE(registered.receive() == 0);
    const std::uint64_t start = table.entry(0).start_time.load();
    CHECK(start == start_time_of(child));

    std::uint64_t now = ProcessTable::monotonic_ns();
    CHECK(table.scan(now, 60 * kSecond, nullptr, nullptr).alive == 1);
    ::kill(child, SIGKILL);
    // Not reaped yet (a zombie) or reaped: dead either way; scan until the kill has landed.
    std::vector<ScanReport> reports;
    ScanCounts counts;
    for (int i = 0; i < 100000 && counts.reclaimed == 0; ++i) {
        counts = table.scan(now, 60 * kSecond, [&](const ScanReport& report) { reports.push_back(report); });
        if (counts.reclaimed == 0) ::usleep(100);
    }
    REQUIRE(counts.reclaimed == 1);
    CHECK(counts.alive == 0);
    REQUIRE(reports.size() == 1);
    CHECK(reports[0].verdict == ProcessVerdict::dead);
    CHECK(reports[0].pid == static_cast<std::uint32_t>(child));
    CHECK(reports[0].index == 0);
    CHECK(reports[0].start_time == start);
    CHECK(reports[0].user[0] == 7);
    CHECK(reports[0].user[1] == 9);
    CHECK(table.occupied() == 0);
    REQUIRE(wait_child(child) == 128 + SIGKILL);

    // Later scans have nothing more to say.
    now += 100 * kSecond;
    counts = table.scan(now, kSecond, [&](const ScanReport& report) { reports.push_back(report); });
    CHECK(counts.reclaimed == 0);
    CHECK(reports.size() == 1);
}

TEST_CASE("racing scanners in three processes: exactly one reports a SIGKILLed child") {
    constexpr int kScanners = 2;
    constexpr int kRounds = 8;
    for (int round = 0; round < kRounds; ++round) {
        CAPTURE(round);
        SharedTable shared;
        ProcessTable& table = shared.table;
        SharedMemory counter_memory(sizeof(std::atomic<int>));
        auto* reports = ::new (counter_memory.base) std::atomic<int>(0);

        const pid_t victim = fork_registered_sleeper(table, 1, 2);
        ::kill(victim, SIGKILL);
        REQUIRE(wait_child(victim) == 128 + SIGKILL);

        Pipe go;
        std::vector<pid_t> scanners;
        for (int i = 0; i < kScanners; ++i) {
            scanners.push_back(fork_child([&] {
                go.close_write();
                go.receive();   // all start together when the parent closes the pipe
                const ScanCounts counts = table.scan(ProcessTable::monotonic_ns(), 60 * kSecond,
                                                     [&](const ScanReport&) { reports->fetch_add(1); });
                return static_cast<int>(counts.reclaimed);
            }));
        }
        go.close_read();
        go.close_write();
        const ScanCounts mine = table.scan(ProcessTable::monotonic_ns(), 60 * kSecond,
                                           [&](const ScanReport&) { reports->fetch_add(1); });
        int reclaimed = static_cast<int>(mine.reclaimed);
        for (const pid_t scanner : scanners) reclaimed += wait_child(scanner);
        CHECK(reclaimed == 1);
        CHECK(reports->load() == 1);
        CHECK(table.occupied() == 0);
    }
}

TEST_CASE("racing scanner threads: every dead entry reported exactly once") {
    constexpr int kRounds = 20;
    SharedTable shared;
    ProcessTable& table = shared.table;
    const ProcessIdentity gone{dead_pid(), 12345, 'X'};
    ProcessIdentity reused = self();
    reused.start_time += 1;   // this pid, another start time: a recycled pid
    for (int round = 0; round < kRounds; ++round) {
        ProcessTicket ticket;
        for (std::uint32_t i = 0; i < ProcessTable::kCapacity; ++i) {
            REQUIRE(table.register_process(i % 3 == 0 ? reused : gone, 0, i, round, ticket) == 0);
        }
        std::array<std::atomic<int>, ProcessTable::kCapacity> seen{};
        std::atomic<int> wrong{0};
        std::atomic<bool> start{false};
        auto scanner = [&] {
            while (!start.load(std::memory_order_acquire)) {
            }
            table.scan(1, 0, [&](const ScanReport& report) {
                seen[report.index].fetch_add(1);
                const bool expected_reused = report.index % 3 == 0;
                if (report.user[0] != report.index || report.user[1] != static_cast<std::uint64_t>(round) ||
                    report.verdict != (expected_reused ? ProcessVerdict::pid_reused : ProcessVerdict::dead) ||
                    report.pid != (expected_reused ? reused.pid : gone.pid)) {
                    wrong.fetch_add(1);
                }
            });
        };
        std::thread first(scanner), second(scanner);
        start.store(true, std::memory_order_release);
        first.join();
        second.join();
        int exactly_once = 0;
        for (const auto& count : seen) exactly_once += count.load() == 1;
        CHECK(exactly_once == static_cast<int>(ProcessTable::kCapacity));
        CHECK(wrong.load() == 0);
        CHECK(table.occupied() == 0);
    }
}

TEST_CASE("a recycled pid (simulated: the start time in the entry is wrong) is reclaimed as pid_reused") {
    SharedTable shared;
    ProcessTable& table = shared.table;
    ProcessTicket ticket;
    REQUIRE(table.register_self(kSecond, 3, 4, ticket) == 0);
    table.entry(ticket.index).start_time.store(self().start_time + 1000);
    std::vector<ScanReport> reports;
    const ScanCounts counts = table.scan(kSecond, 60 * kSecond, [&](const ScanReport& r) { reports.push_back(r); });
    CHECK(counts.reclaimed == 1);
    REQUIRE(reports.size() == 1);
    CHECK(reports[0].verdict == ProcessVerdict::pid_reused);
    CHECK(reports[0].pid == static_cast<std::uint32_t>(::getpid()));
    CHECK(reports[0].user[0] == 3);
    // The "real" owner learns that it lost its entry.
    CHECK(table.heartbeat(ticket, 2 * kSecond) == -ESTALE);
    CHECK(table.deregister(ticket) == -ESTALE);
}

TEST_CASE("alive but not heartbeating: reported stale_alive on every scan, never reclaimed") {
    SUBCASE("this process, with an old heartbeat") {
        SharedTable shared;
        ProcessTable& table = shared.table;
        ProcessTicket ticket;
        REQUIRE(table.register_self(100 * kSecond, 5, 6, ticket) == 0);
        std::vector<ScanReport> reports;
        auto collect = [&](const ScanReport& r) { reports.push_back(r); };
        // Exactly at the timeout: not stale yet; one nanosecond later: stale.
        ScanCounts counts = table.scan(110 * kSecond, 10 * kSecond, collect);
        CHECK(counts.alive == 1);
        CHECK(counts.stale_alive == 0);
        counts = table.scan(110 * kSecond + 1, 10 * kSecond, collect);
        CHECK(counts.stale_alive == 1);
        CHECK(counts.reclaimed == 0);
        counts = table.scan(200 * kSecond, 10 * kSecond, collect);
        CHECK(counts.stale_alive == 1);
        REQUIRE(reports.size() == 2);
        CHECK(reports[0].verdict == ProcessVerdict::stale_alive);
        CHECK(reports[0].heartbeat_ns == 100 * kSecond);
        CHECK(reports[0].user[0] == 5);
        CHECK(reports[0].user[1] == 6);
        CHECK(table.occupied() == 1);
        CHECK(table.heartbeat(ticket, 199 * kSecond) == 0);   // still ours
        counts = table.scan(200 * kSecond, 10 * kSecond, collect);
        CHECK(counts.alive == 1);
        CHECK(counts.stale_alive == 0);
        // A clock behind the heartbeat (another scanner's older `now`) is not staleness.
        counts = table.scan(50 * kSecond, 0, collect);
        CHECK(counts.alive == 1);
        CHECK(table.deregister(ticket) == 0);
    }
    SUBCASE("a stopped child, then killed") {
        SharedTable shared;
        ProcessTable& table = shared.table;
        const pid_t child = fork_registered_sleeper(table, 0, 0);
        ::kill(child, SIGSTOP);
        std::vector<ScanReport> reports;
        const std::uint64_t later = ProcessTable::monotonic_ns() + 3600 * kSecond;
        ScanCounts counts = table.scan(later, kSecond, [&](const ScanReport& r) { reports.push_back(r); });
        CHECK(counts.stale_alive == 1);
        CHECK(counts.reclaimed == 0);
        REQUIRE(reports.size() == 1);
        CHECK(reports[0].pid == static_cast<std::uint32_t>(child));
        CHECK(reports[0].verdict == ProcessVerdict::stale_alive);
        CHECK(table.occupied() == 1);
        ::kill(child, SIGKILL);
        REQUIRE(wait_child(child) == 128 + SIGKILL);
        reports.clear();
        counts = table.scan(later, kSecond, [&](const ScanReport& r) { reports.push_back(r); });
        CHECK(counts.reclaimed == 1);
        REQUIRE(reports.size() == 1);
        CHECK(reports[0].verdict == ProcessVerdict::dead);
        CHECK(table.occupied() == 0);
    }
}

TEST_CASE("half-done entries: a dead claimer, an abandoned reclaim, a live reclaimer") {
    SharedTable shared;
    ProcessTable& table = shared.table;
    const std::uint32_t gone = dead_pid();
    const std::uint32_t me = static_cast<std::uint32_t>(::getpid());
    // Entry 0: claimed by a process that died before it published its fields.
    table.entry(0).word.store((std::uint64_t{4} << 40) | (std::uint64_t{gone} << 8) | ProcessTable::kClaiming);
    // Entry 1: being reclaimed by a scanner that died; the owner's pid is kept in `pid`.
    table.entry(1).word.store((std::uint64_t{2} << 40) | (std::uint64_t{gone} << 8) | ProcessTable::kReclaiming);
    table.entry(1).pid.store(4242);
    table.entry(1).user[0].store(17);
    // Entry 2: being reclaimed by a live process (us): not ours to touch.
    table.entry(2).word.store((std::uint64_t{1} << 40) | (std::uint64_t{me} << 8) | ProcessTable::kReclaiming);
    // Entry 3: being claimed by a live process: left alone.
    table.entry(3).word.store((std::uint64_t{1} << 40) | (std::uint64_t{me} << 8) | ProcessTable::kClaiming);

    std::vector<ScanReport> reports;
    const ScanCounts counts = table.scan(kSecond, 0, [&](const ScanReport& r) { reports.push_back(r); });
    CHECK(counts.reclaimed == 2);
    CHECK(counts.alive == 1);        // the live claimer
    CHECK(counts.stale_alive == 0);  // heartbeats are not judged before an entry is live
    REQUIRE(reports.size() == 2);
    CHECK(reports[0].index == 0);
    CHECK(reports[0].pid == gone);
    CHECK(reports[0].verdict == ProcessVerdict::dead);
    CHECK(reports[1].index == 1);
    CHECK(reports[1].pid == 4242);
    CHECK(reports[1].user[0] == 17);
    CHECK(ProcessTable::state_of(table.entry(0).word.load()) == ProcessTable::kFree);
    CHECK(ProcessTable::sequence_of(table.entry(0).word.load()) == 4);   // kept, so the next claim is 5
    CHECK(ProcessTable::state_of(table.entry(1).word.load()) == ProcessTable::kFree);
    CHECK(ProcessTable::state_of(table.entry(2).word.load()) == ProcessTable::kReclaiming);
    CHECK(ProcessTable::state_of(table.entry(3).word.load()) == ProcessTable::kClaiming);
    std::uint32_t pid = 0;
    CHECK(table.any_alive(pid));
    CHECK(pid == me);
    ProcessTicket ticket;
    REQUIRE(table.register_self(0, 0, 0, ticket) == 0);
    CHECK(ticket.index == 0);
    CHECK(ProcessTable::sequence_of(ticket.word) == 5);
}

TEST_CASE("random operations against a reference model") {
    enum class Kind { alive, dead, reused };
    struct ModelEntry {
        bool used = false;
        Kind kind = Kind::alive;
        std::uint64_t heartbeat = 0, user0 = 0, user1 = 0;
        ProcessTicket ticket;
    };
    SharedTable shared;
    ProcessTable& table = shared.table;
    const ProcessIdentity alive = self();
    ProcessIdentity reused = alive;
    reused.start_time += 7;
    const ProcessIdentity dead{dead_pid(), 999, 'X'};
    auto identity_of = [&](Kind kind) { return kind == Kind::alive ? alive : kind == Kind::dead ? dead : reused; };

    std::array<ModelEntry, ProcessTable::kCapacity> model;
    std::vector<ProcessTicket> released;   // tickets of freed entries: must be refused
    std::mt19937_64 random(0xC0FFEE);
    std::uint64_t now = 1000 * kSecond;
    int mismatches = 0;
    for (int step = 0; step < 3000; ++step) {
        now += random() % kSecond;
        const unsigned op = static_cast<unsigned>(random() % 10);
        std::vector<std::uint32_t> used;
        for (std::uint32_t i = 0; i < ProcessTable::kCapacity; ++i) {
            if (model[i].used) used.push_back(i);
        }
        if (op < 4) {   // register
            const Kind kind = static_cast<Kind>(random() % 3);
            const std::uint64_t u0 = random(), u1 = random();
            ProcessTicket ticket;
            const int status = table.register_process(identity_of(kind), now, u0, u1, ticket);
            std::uint32_t expected = ProcessTable::kCapacity;
            for (std::uint32_t i = 0; i < ProcessTable::kCapacity && expected == ProcessTable::kCapacity; ++i) {
                if (!model[i].used) expected = i;
            }
            if (expected == ProcessTable::kCapacity) {
                mismatches += status != -ENOSPC;
            } else {
                mismatches += status != 0 || ticket.index != expected;
                model[expected] = {true, kind, now, u0, u1, ticket};
            }
        } else if (op < 5 && !used.empty()) {   // deregister
            const std::uint32_t i = used[random() % used.size()];
            released.push_back(model[i].ticket);
            mismatches += table.deregister(model[i].ticket) != 0;
            model[i] = {};
        } else if (op < 7 && !used.empty()) {   // heartbeat
            const std::uint32_t i = used[random() % used.size()];
            mismatches += table.heartbeat(model[i].ticket, now) != 0;
            model[i].heartbeat = now;
        } else if (op < 8 && !released.empty()) {   // an old ticket
            const ProcessTicket old = released[random() % released.size()];
            mismatches += table.heartbeat(old, now) != -ESTALE;
        } else {   // scan
            const std::uint64_t timeout = random() % (5 * kSecond);
            std::vector<ScanReport> expected_reports;
            ScanCounts expected;
            for (std::uint32_t i = 0; i < ProcessTable::kCapacity; ++i) {
                ModelEntry& entry = model[i];
                if (!entry.used) continue;
                ScanReport report;
                report.index = i;
                report.pid = identity_of(entry.kind).pid;
                report.start_time = identity_of(entry.kind).start_time;
                report.heartbeat_ns = entry.heartbeat;
                report.user[0] = entry.user0;
                report.user[1] = entry.user1;
                if (entry.kind == Kind::alive) {
                    if (now > entry.heartbeat && now - entry.heartbeat > timeout) {
                        report.verdict = ProcessVerdict::stale_alive;
                        ++expected.stale_alive;
                        expected_reports.push_back(report);
                    } else {
                        ++expected.alive;
                    }
                } else {
                    report.verdict = entry.kind == Kind::dead ? ProcessVerdict::dead : ProcessVerdict::pid_reused;
                    ++expected.reclaimed;
                    expected_reports.push_back(report);
                    released.push_back(entry.ticket);
                    entry = {};
                }
            }
            std::vector<ScanReport> reports;
            const ScanCounts counts = table.scan(now, timeout, [&](const ScanReport& r) { reports.push_back(r); });
            mismatches += counts.alive != expected.alive || counts.reclaimed != expected.reclaimed ||
                          counts.stale_alive != expected.stale_alive;
            mismatches += reports.size() != expected_reports.size();
            for (std::size_t k = 0; k < reports.size() && k < expected_reports.size(); ++k) {
                const ScanReport& a = reports[k];
                const ScanReport& b = expected_reports[k];
                mismatches += a.index != b.index || a.pid != b.pid || a.start_time != b.start_time ||
                              a.heartbeat_ns != b.heartbeat_ns || a.user[0] != b.user[0] || a.user[1] != b.user[1] ||
                              a.verdict != b.verdict;
            }
        }
        std::uint32_t occupied = 0;
        for (const ModelEntry& entry : model) occupied += entry.used;
        mismatches += table.occupied() != occupied;
        if (mismatches != 0) {
            CAPTURE(step);
            CAPTURE(op);
            REQUIRE(mismatches == 0);
        }
    }
    CHECK(mismatches == 0);
}

TEST_CASE("concurrent registration, heartbeats and scans: no live process is ever reclaimed") {
    constexpr int kThreads = 4;
    constexpr int kIterations = 2000;
    SharedTable shared;
    ProcessTable& table = shared.table;
    std::atomic<bool> stop{false};
    std::atomic<int> failures{0};
    std::atomic<std::uint32_t> reclaimed{0};
    std::thread scanner([&] {
        while (!stop.load(std::memory_order_acquire)) {
            const ScanCounts counts = table.scan(ProcessTable::monotonic_ns(), 3600 * kSecond, nullptr, nullptr);
            reclaimed.fetch_add(counts.reclaimed + counts.stale_alive);
        }
    });
    std::vector<std::thread> workers;
    for (int t = 0; t < kThreads; ++t) {
        workers.emplace_back([&, t] {
            for (int i = 0; i < kIterations; ++i) {
                ProcessTicket ticket;
                if (table.register_self(ProcessTable::monotonic_ns(), static_cast<std::uint64_t>(t), 0, ticket) != 0) {
                    failures.fetch_add(1);
                    continue;
                }
                if (table.entry(ticket.index).user[0].load() != static_cast<std::uint64_t>(t)) failures.fetch_add(1);
                if (table.heartbeat(ticket, ProcessTable::monotonic_ns()) != 0) failures.fetch_add(1);
                if (table.set_user(ticket, 1, static_cast<std::uint64_t>(i)) != 0) failures.fetch_add(1);
                if (table.deregister(ticket) != 0) failures.fetch_add(1);
            }
        });
    }
    for (auto& worker : workers) worker.join();
    stop.store(true, std::memory_order_release);
    scanner.join();
    CHECK(failures.load() == 0);
    CHECK(reclaimed.load() == 0);
    CHECK(table.occupied() == 0);
}
