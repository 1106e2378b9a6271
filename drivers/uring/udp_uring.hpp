// The io_uring UDP driver (liburing): multishot receive into a provided-buffer ring carved from the PacketPool,
// batched sends (one io_uring_enter per burst, none with SQPOLL), SEND_ZC for large payloads with the buffer
// returned only after the kernel's notification; UDP_SEGMENT (GSO) sends and UDP_GRO receives when configured.
#pragma once

#include <cstddef>
#include <memory>

#include "drivers/datagram_driver.hpp"

namespace cf::drivers {

// Opens the io_uring driver (open_udp(DriverKind::uring, ...) calls this). 0 or a negative errno with the message
// set: -ENOSYS when the kernel has no io_uring (or an emulator, qemu-user, lacks it), -EPERM when it is forbidden
// (kernel.io_uring_disabled, seccomp, a container policy), -EOPNOTSUPP when a feature this driver needs is missing.
int open_udp_uring(const UdpConfig& config, std::unique_ptr<DatagramDriver>& out) noexcept;

// Whether io_uring can be used in this process: 0, or the negative errno open_udp_uring would fail with and why
// (written to `why`, why_size bytes). Probes once; later calls return the cached answer.
int uring_available(char* why, std::size_t why_size) noexcept;

}  // namespace cf::drivers
