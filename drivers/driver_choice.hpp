// Which implementation a DriverKind opens, for every driver that has an io_uring and a socket version: sockets when
// asked, io_uring when asked (failing if it cannot run), and for automatic io_uring first with a fall back to
// sockets, said through the log sink (platform/os/log.hpp), when the kernel (or the emulator, or a container policy) does not let us use io_uring.
#pragma once

#include <cerrno>

#include "drivers/datagram_driver.hpp"
#include "platform/os/last_error.hpp"
#include "platform/os/log.hpp"

namespace cf::drivers {

// The failures that mean "io_uring is not usable here" rather than "this configuration is wrong": falling back
// is right for the first kind only (a bad address would fail the socket driver too, with a less precise message).
// ENOTSUP: built without liburing.
inline bool uring_unusable(int status) noexcept {
    return status == -ENOSYS || status == -EPERM || status == -EOPNOTSUPP || status == -ENOTSUP;
}

// open_uring() and open_socket() each return 0 or a negative errno with the message set.
template <class OpenUring, class OpenSocket>
int open_preferring_uring(DriverKind kind, const char* what, OpenUring open_uring, OpenSocket open_socket) noexcept {
    switch (kind) {
        case DriverKind::socket: return open_socket();
        case DriverKind::uring: return open_uring();
        case DriverKind::automatic: break;
        default: return platform::fail(EINVAL, "%s: unknown driver kind %d", what, static_cast<int>(kind));
    }
    const int status = open_uring();
    if (status == 0 || !uring_unusable(status)) return status;
    // Said once per open (through the log sink) because a silent fallback costs latency nobody would know to
    // look for.
    platform::log(platform::LogLevel::warning, "io_uring unavailable (%s); using the socket driver",
                  platform::last_error_message());
    return open_socket();
}

}  // namespace cf::drivers
