// Process identity and liveness from /proc/PID/stat and kill(pid, 0).
#include "platform/os/process_liveness.hpp"

#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include <cerrno>
#include <climits>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "platform/os/last_error.hpp"

namespace cf::platform {
namespace {

// pid_t is signed: a pid above INT_MAX would become a negative one (a process group) in kill().
bool pid_in_range(std::uint32_t pid) { return pid != 0 && pid <= static_cast<std::uint32_t>(INT_MAX); }

}  // namespace

int read_process_identity(std::uint32_t pid, ProcessIdentity& out) noexcept {
    out = {};
    if (!pid_in_range(pid)) return fail(ESRCH, "pid %u is not a process id", pid);
    // Opened relative to a /proc directory descriptor rather than by the path "/proc/PID/stat": qemu-user
    // fakes the calling process's /proc/self/stat (and /proc/<own pid>/stat) with a start time of its own, which
    // would make every process look like a recycled pid to the others. The kernel's file is the same either way.
    char path[48];
    std::snprintf(path, sizeof path, "%u/stat", pid);
    const int proc = ::open("/proc", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    const int fd = proc < 0 ? -1 : ::openat(proc, path, O_RDONLY | O_CLOEXEC);
    if (proc >= 0) ::close(proc);
    if (fd < 0) {
        const int err = errno;
        if (err == ENOENT || err == ESRCH) return fail(ESRCH, "no process %u", pid);
        return fail(err, "cannot open /proc/%s: %s", path, std::strerror(err));
    }
    // "pid (comm) S ppid ...": comm may hold spaces and parentheses, so fields are counted from the last ')'.
    char text[1024];
    const ssize_t length = ::read(fd, text, sizeof text - 1);
    const int read_err = errno;
    ::close(fd);
    if (length <= 0) {
        // The process exited between open and read.
        if (length == 0 || read_err == ESRCH) return fail(ESRCH, "no process %u", pid);
        return fail(read_err, "cannot read %s: %s", path, std::strerror(read_err));
    }
    text[length] = '\0';
    const char* close_paren = std::strrchr(text, ')');
    if (close_paren == nullptr || close_paren[1] != ' ' || close_paren[2] == '\0') {
        return fail(EPROTO, "%s is malformed", path);
    }
    const char state = close_paren[2];
    // Field 3 is the state; field 22 (starttime) is 19 fields further on.
    const char* cursor = close_paren + 3;
    for (int field = 4; field <= 22; ++field) {
        while (*cursor == ' ') ++cursor;
        if (*cursor == '\0') return fail(EPROTO, "%s has fewer than 22 fields", path);
        if (field == 22) {
            char* end = nullptr;
            const unsigned long long start = std::strtoull(cursor, &end, 10);
            if (end == cursor) return fail(EPROTO, "%s: field 22 is not a number", path);
            out.pid = pid;
            out.state = state;
            out.start_time = start;
            return 0;
        }
        while (*cursor != ' ' && *cursor != '\0') ++cursor;
    }
    return fail(EPROTO, "%s is malformed", path);
}

int self_identity(ProcessIdentity& out) noexcept {
    return read_process_identity(static_cast<std::uint32_t>(::getpid()), out);
}

Liveness process_liveness(std::uint32_t pid, std::uint64_t start_time) noexcept {
    if (!pid_in_range(pid)) return Liveness::dead;
    // EPERM: the pid exists but belongs to another user; it still counts as existing.
    if (::kill(static_cast<pid_t>(pid), 0) != 0 && errno == ESRCH) return Liveness::dead;
    ProcessIdentity identity;
    const int status = read_process_identity(pid, identity);
    if (status == -ESRCH) return Liveness::dead;
    if (status != 0) return Liveness::alive;   // no /proc (or hidden): kill() is all we know
    // A zombie has exited; only its parent's wait() is missing. X (dead) is never seen in practice.
    if (identity.state == 'Z' || identity.state == 'X') return Liveness::dead;
    if (start_time != 0 && identity.start_time != start_time) return Liveness::pid_reused;
    return Liveness::alive;
}

}  // namespace cf::platform
