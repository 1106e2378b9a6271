// Driver names and the factory: which UDP driver open_udp() builds, and the fallback from io_uring to sockets
// when the kernel (or the emulator, or a container policy) does not let us use io_uring.
#include "drivers/datagram_driver.hpp"

#include <cerrno>
#include <cstdio>
#include <cstring>

#include "drivers/socket/udp_socket.hpp"
#include "platform/os/last_error.hpp"
#ifdef CF_HAVE_URING
#include "drivers/uring/udp_uring.hpp"
#endif

namespace cf::drivers {

const char* driver_kind_name(DriverKind kind) noexcept {
    switch (kind) {
        case DriverKind::automatic: return "auto";
        case DriverKind::uring: return "uring";
        case DriverKind::socket: return "socket";
    }
    return "unknown";
}

int parse_driver_kind(const char* name, DriverKind& out) noexcept {
    if (name != nullptr) {
        for (const DriverKind kind : {DriverKind::automatic, DriverKind::uring, DriverKind::socket}) {
            if (std::strcmp(name, driver_kind_name(kind)) == 0) {
                out = kind;
                return 0;
            }
        }
    }
    return platform::fail(EINVAL, "driver '%.40s': expected auto, uring or socket", name != nullptr ? name : "");
}

namespace {

int open_uring(const UdpConfig& config, std::unique_ptr<DatagramDriver>& out) noexcept {
#ifdef CF_HAVE_URING
    return open_udp_uring(config, out);
#else
    (void)config;
    out.reset();
    return platform::fail(ENOTSUP, "io_uring driver: built without liburing");
#endif
}

#ifdef CF_HAVE_URING
// The failures that mean "io_uring is not usable here" rather than "this configuration is wrong": falling back
// is right for the first kind only (a bad address would fail the socket driver too, with a less precise message).
bool uring_unusable(int status) { return status == -ENOSYS || status == -EPERM || status == -EOPNOTSUPP; }
#endif

}  // namespace

int open_udp(DriverKind kind, const UdpConfig& config, std::unique_ptr<DatagramDriver>& out) noexcept {
    out.reset();
    switch (kind) {
        case DriverKind::socket: return open_udp_socket(config, out);
        case DriverKind::uring: return open_uring(config, out);
        case DriverKind::automatic: break;
        default: return platform::fail(EINVAL, "open_udp: unknown driver kind %d", static_cast<int>(kind));
    }
#ifdef CF_HAVE_URING
    const int status = open_uring(config, out);
    if (status == 0 || !uring_unusable(status)) return status;
    // Said once per open, on stderr, because a silent fallback costs latency nobody would know to look for.
    std::fprintf(stderr, "chronofabric: io_uring unavailable (%s); using the socket driver\n",
                 platform::last_error_message());
#endif
    return open_udp_socket(config, out);
}

}  // namespace cf::drivers
