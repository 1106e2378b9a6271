// platform/os: who a process is (/proc/PID/stat), whether it lives (running, zombie, reaped, recycled pid), and
// the monotonic clock processes share. Children of fork() never use doctest: they report by exit status.
#include <doctest/doctest.h>

#include <signal.h>
#include <sys/prctl.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <ctime>

#include "platform/os/monotonic_clock.hpp"
#include "platform/os/process_liveness.hpp"
#include "tests/bus/fork_support.hpp"
#include "tests/platform/start_time_reference.hpp"

using cf::platform::Liveness;
using cf::platform::ProcessIdentity;
using namespace cf::test;
namespace p = cf::platform;

namespace {

constexpr std::uint64_t kSecond = 1'000'000'000;

ProcessIdentity self() {
    ProcessIdentity identity;
    p::self_identity(identity);
    return identity;
}

}  // namespace

TEST_CASE("identity: pid, state and start time from /proc/PID/stat") {
    const ProcessIdentity me = self();
    CHECK(me.pid == static_cast<std::uint32_t>(::getpid()));
    CHECK(me.state == 'R');
    CHECK(me.start_time == start_time_of(::getpid()));
    CHECK(me.start_time > 0);

    // A command name with spaces and parentheses must not shift the fields.
    Pipe named, release;
    const pid_t child = fork_child([&] {
        named.close_read();
        release.close_write();
        ::prctl(PR_SET_NAME, "a) b (c ) d", 0, 0, 0);
        named.send('n');
        release.receive();
        return 0;
    });
    named.close_write();
    release.close_read();
    REQUIRE(named.receive() == 'n');
    ProcessIdentity other;
    // Until it is blocked reading the pipe (it may still be on its way there).
    for (int i = 0; i < 100000; ++i) {
        REQUIRE(p::read_process_identity(static_cast<std::uint32_t>(child), other) == 0);
        if (other.state == 'S') break;
        ::usleep(100);
    }
    CHECK(other.pid == static_cast<std::uint32_t>(child));
    CHECK(other.state == 'S');
    CHECK(other.start_time == start_time_of(child));
    CHECK(other.start_time >= me.start_time);
    CHECK(p::process_liveness(other.pid, other.start_time) == Liveness::alive);
    CHECK(p::process_liveness(other.pid, other.start_time + 1) == Liveness::pid_reused);
    CHECK(p::process_liveness(other.pid, 0) == Liveness::alive);   // start time unknown: the pid decides

    ::kill(child, SIGKILL);
    // Killed but not reaped: a zombie, and dead for our purposes.
    for (int i = 0; i < 100000; ++i) {
        if (p::read_process_identity(static_cast<std::uint32_t>(child), other) != 0 || other.state == 'Z') break;
        ::usleep(100);
    }
    CHECK(other.state == 'Z');
    CHECK(p::process_liveness(static_cast<std::uint32_t>(child), other.start_time) == Liveness::dead);
    REQUIRE(wait_child(child) == 128 + SIGKILL);
    CHECK(p::read_process_identity(static_cast<std::uint32_t>(child), other) == -ESRCH);
    CHECK(p::process_liveness(static_cast<std::uint32_t>(child), 0) == Liveness::dead);

    CHECK(p::process_liveness(0, 0) == Liveness::dead);                 // never "my process group"
    CHECK(p::process_liveness(0xffffffffu, 0) == Liveness::dead);       // never "every process"
    CHECK(p::read_process_identity(0, other) == -ESRCH);
    CHECK(p::read_process_identity(0x80000000u, other) == -ESRCH);      // would be a negative pid_t
    CHECK(p::process_liveness(me.pid, me.start_time) == Liveness::alive);
    CHECK(p::process_liveness(me.pid, me.start_time - 1) == Liveness::pid_reused);
}

TEST_CASE("the monotonic clock is CLOCK_MONOTONIC in nanoseconds") {
    const std::uint64_t before = p::monotonic_ns();
    timespec ts{};
    ::clock_gettime(CLOCK_MONOTONIC, &ts);
    const std::uint64_t after = p::monotonic_ns();
    const std::uint64_t direct = static_cast<std::uint64_t>(ts.tv_sec) * kSecond + static_cast<std::uint64_t>(ts.tv_nsec);
    CHECK(before <= direct);
    CHECK(direct <= after);
}
