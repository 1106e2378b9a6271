// Helpers for tests that fork(): a pipe to hand bytes between parent and child, a child that reports by exit
// status, and waiting for it. Children of fork() never use doctest.
#pragma once

#include <fcntl.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>

namespace cf::test {

// A close-on-exec pipe whose ends each side closes when it does not use them.
struct Pipe {
    int read_fd = -1;
    int write_fd = -1;
    Pipe() {
        int fds[2];
        if (::pipe2(fds, O_CLOEXEC) == 0) {
            read_fd = fds[0];
            write_fd = fds[1];
        }
    }
    ~Pipe() {
        close_read();
        close_write();
    }
    Pipe(const Pipe&) = delete;
    Pipe& operator=(const Pipe&) = delete;
    void close_read() {
        if (read_fd >= 0) ::close(read_fd);
        read_fd = -1;
    }
    void close_write() {
        if (write_fd >= 0) ::close(write_fd);
        write_fd = -1;
    }
    // Writes one byte; false if it did not go out.
    bool send(char c) const { return ::write(write_fd, &c, 1) == 1; }
    // The next byte, or -1 at end of file (every writer closed or died).
    int receive() const {
        char c = 0;
        ssize_t n;
        do n = ::read(read_fd, &c, 1);
        while (n < 0 && errno == EINTR);
        return n == 1 ? static_cast<unsigned char>(c) : -1;
    }
};

// Forks a child that runs `body` and exits with what it returns; the child's pid (or -1) in the parent.
template <class F>
pid_t fork_child(F&& body) {
    const pid_t pid = ::fork();
    if (pid == 0) ::_exit(body());
    return pid;
}

// Waits for `pid`: its exit status, 128 + signal if a signal ended it, or -1 if it cannot be waited for.
inline int wait_child(pid_t pid) {
    int status = 0;
    while (::waitpid(pid, &status, 0) < 0) {
        if (errno != EINTR) return -1;
    }
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

}  // namespace cf::test
