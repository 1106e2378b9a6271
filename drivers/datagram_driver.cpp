// Driver names and the factory: which UDP driver open_udp() builds (driver_choice.hpp says how it chooses).
#include "drivers/datagram_driver.hpp"

#include <cerrno>
#include <cstdio>
#include <cstring>

#include "drivers/driver_choice.hpp"
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

}  // namespace

int open_udp(DriverKind kind, const UdpConfig& config, std::unique_ptr<DatagramDriver>& out) noexcept {
    out.reset();
    return open_preferring_uring(
        kind, "open_udp", [&] { return open_uring(config, out); }, [&] { return open_udp_socket(config, out); });
}

}  // namespace cf::drivers
