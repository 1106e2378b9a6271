// The factory: which TCP stream driver open_tcp() builds (driver_choice.hpp says how it chooses).
#include "drivers/stream_driver.hpp"

#include <cerrno>

#include "drivers/driver_choice.hpp"
#include "drivers/socket/tcp_socket.hpp"
#include "platform/os/last_error.hpp"
#ifdef CF_HAVE_URING
#include "drivers/uring/tcp_uring.hpp"
#endif

namespace cf::drivers {
namespace {

int open_uring(const TcpConfig& config, std::unique_ptr<StreamDriver>& out) noexcept {
#ifdef CF_HAVE_URING
    return open_tcp_uring(config, out);
#else
    (void)config;
    out.reset();
    return platform::fail(ENOTSUP, "io_uring tcp driver: built without liburing");
#endif
}

}  // namespace

int open_tcp(DriverKind kind, const TcpConfig& config, std::unique_ptr<StreamDriver>& out) noexcept {
    out.reset();
    return open_preferring_uring(
        kind, "open_tcp", [&] { return open_uring(config, out); }, [&] { return open_tcp_socket(config, out); });
}

}  // namespace cf::drivers
