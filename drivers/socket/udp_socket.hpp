// The portable UDP driver: a non-blocking socket driven with recvmmsg/sendmmsg bursts (one system call per burst),
// UDP_SEGMENT (GSO) and UDP_GRO where the kernel has them. Also what runs under qemu-user, which has no io_uring.
#pragma once

#include <memory>

#include "drivers/datagram_driver.hpp"

namespace cf::drivers {

// Opens the socket driver (open_udp(DriverKind::socket, ...) calls this). 0 or a negative errno, message set.
int open_udp_socket(const UdpConfig& config, std::unique_ptr<DatagramDriver>& out) noexcept;

}  // namespace cf::drivers
