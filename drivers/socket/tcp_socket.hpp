// The portable TCP stream driver: non-blocking sockets, one recv per connection with data and one sendmsg per
// connection per burst. Also what runs under qemu-user, which has no io_uring.
#pragma once

#include <memory>

#include "drivers/stream_driver.hpp"

namespace cf::drivers {

// Opens the socket TCP driver (open_tcp(DriverKind::socket, ...) calls this). 0 or a negative errno, message set.
int open_tcp_socket(const TcpConfig& config, std::unique_ptr<StreamDriver>& out) noexcept;

}  // namespace cf::drivers
