// The io_uring TCP stream driver (liburing): multishot accept, one receive per connection into its receive buffer,
// one sendmsg per connection per burst over its send ring, one io_uring_enter per burst.
#pragma once

#include <memory>

#include "drivers/stream_driver.hpp"

namespace cf::drivers {

// Opens the io_uring TCP driver (open_tcp(DriverKind::uring, ...) calls this). 0 or a negative errno with the
// message set; -ENOSYS, -EPERM or -EOPNOTSUPP when io_uring cannot be used here (open_tcp(automatic) falls back).
int open_tcp_uring(const TcpConfig& config, std::unique_ptr<StreamDriver>& out) noexcept;

}  // namespace cf::drivers
