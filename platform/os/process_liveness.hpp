// Whether a process recorded earlier still runs: its identity from /proc/PID/stat and kill(pid, 0).
//
// A process is identified by (pid, start time): the start time is field 22 of /proc/PID/stat (clock ticks
// since boot), so a pid the kernel recycled for another process is not mistaken for the one recorded.
// Callers that compare identities across processes must share one pid namespace (and see the same /proc).
// Every call reads /proc: for housekeeping, never the hot path.
#pragma once

#include <cstdint>

namespace cf::platform {

// Who a process is: its pid plus the start time that distinguishes it from a later process with the same pid.
struct ProcessIdentity {
    std::uint32_t pid = 0;
    std::uint64_t start_time = 0;   // /proc/PID/stat field 22, clock ticks since boot; 0 = unknown
    char state = '?';               // /proc/PID/stat field 3: R, S, D, T, Z, ...
};

// Reads /proc/PID/stat. 0; -ESRCH when there is no such process; another negative errno when /proc is not
// readable (last_error_message() says why).
int read_process_identity(std::uint32_t pid, ProcessIdentity& out) noexcept;

// The calling process (read again after a fork, never cached across one).
int self_identity(ProcessIdentity& out) noexcept;

enum class Liveness : std::uint8_t {
    alive,        // the pid exists with the recorded start time (or the start time is unknown)
    dead,         // no such pid (kill(pid, 0) == ESRCH), or a zombie nobody has reaped yet
    pid_reused,   // the pid exists but belongs to a process that started at another time
};

// The state of a recorded process. pid 0 (never a user process; kill(0, 0) would mean "my process group")
// reads as dead. start_time 0 skips the reuse check. When /proc cannot be read, judged by kill() alone.
Liveness process_liveness(std::uint32_t pid, std::uint64_t start_time) noexcept;

}  // namespace cf::platform
