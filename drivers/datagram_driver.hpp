// The burst interface every datagram driver implements (io_uring, sockets; DPDK and QUIC build on it): receive and
// transmit bursts of PacketBuffers (packet.hpp, which also states who owns a buffer when). One virtual call per
// burst, never per packet. Drivers are polled by one thread; none of their methods is thread-safe.
//
// Status: methods return a count (>= 0) or a negative errno, with platform::last_error_message() saying why.
#pragma once

#include <cstdint>
#include <memory>

#include "drivers/packet.hpp"
#include "engine/time/counter_clock.hpp"

namespace cf::drivers {

enum class DriverKind : std::uint8_t {
    automatic,   // io_uring when the kernel allows it, else sockets (with a message saying why)
    uring,
    socket,
};

const char* driver_kind_name(DriverKind kind) noexcept;             // "auto", "uring", "socket"
int parse_driver_kind(const char* name, DriverKind& out) noexcept;   // 0 or -EINVAL

struct UdpConfig {
    PeerAddress bind;                          // local address; port 0 picks a free one (see local_address())
    PacketPool::Config pool;                   // receive and transmit buffers
    std::uint32_t rx_posted = 256;             // buffers kept posted for receive (uring: the provided-buffer ring)
    std::uint32_t socket_buffer_bytes = 4 << 20;   // SO_RCVBUF / SO_SNDBUF asked for (the kernel may cap it)
    bool gro = false;                          // UDP_GRO: coalesced receives (PacketBuffer::segment_size);
                                               // give the pool 64 KiB buffers
    bool gso = false;                          // UDP_SEGMENT: a buffer holding several equal datagrams; without
                                               // it a buffer with segment_size set is refused (tx_errors)
    std::uint32_t zerocopy_min_bytes = 16384;  // uring: payloads at least this long go out with SEND_ZC (0: never)
    bool sqpoll = false;                       // uring: a kernel thread polls the submission queue
    // uring: an empty rx_burst enters the kernel only when the kernel flags pending completion work
    // (IORING_SETUP_TASKRUN_FLAG), not on every poll: ~0.04 system calls per message at full rate instead of one
    // per empty poll, for the same round trip (9.3 vs 9.2 us p50 over loopback on the development VM).
    bool rx_poll_flag = true;
    bool busy_poll = true;                     // rx_burst never blocks (false: it may wait up to rx_wait_us)
    std::uint32_t rx_wait_us = 1000;
    const CounterClock* clock = nullptr;       // stamps PacketBuffer::rx_time once per burst (null: left zero)
};

// Packets are datagrams on the wire: a GRO receive or a GSO send counts once per segment.
struct DriverStats {
    std::uint64_t rx_packets = 0, rx_bytes = 0;
    std::uint64_t tx_packets = 0, tx_bytes = 0;
    std::uint64_t tx_zerocopy = 0;             // sent with SEND_ZC
    std::uint64_t rx_no_buffer = 0;            // receives lost or delayed because no buffer was free
    std::uint64_t rx_truncated = 0;            // datagrams longer than a buffer (dropped; the uring driver counts
                                               // each datagram of a cut coalesced receive)
    std::uint64_t tx_errors = 0;               // datagrams the kernel refused (buffer returned to the pool)
    std::uint64_t syscalls = 0;                // every system call the driver made after open (enter, recvmmsg...)
};

class DatagramDriver {
public:
    virtual ~DatagramDriver() = default;

    virtual DriverKind kind() const noexcept = 0;
    virtual const PeerAddress& local_address() const noexcept = 0;

    // Up to `max` received datagrams into out[0..n): the caller owns them until it releases them (or sends them).
    // 0 when nothing arrived; negative errno on a failure of the socket itself.
    virtual int rx_burst(PacketBuffer** out, std::uint32_t max) noexcept = 0;

    // Sends packets[0..count) (each to its `peer`). Returns how many were accepted, a prefix of the array; the
    // driver owns those from now on. Fewer than count means the driver's queue is full: retry the rest later.
    virtual int tx_burst(PacketBuffer* const* packets, std::uint32_t count) noexcept = 0;

    // Reaps completions (finished sends, zero-copy notifications) without receiving. tx_burst and rx_burst do this
    // too; call it when only waiting for sends to finish. Returns 0 or a negative errno.
    virtual int poll_completions() noexcept = 0;

    PacketBuffer* allocate() noexcept { return pool_->allocate(); }
    void release(PacketBuffer* buffer) noexcept { pool_->release(buffer); }
    PacketPool& pool() noexcept { return *pool_; }
    const DriverStats& stats() const noexcept { return stats_; }

protected:
    std::unique_ptr<PacketPool> pool_;
    DriverStats stats_;
};

// Opens a UDP driver bound to config.bind. automatic tries io_uring first; when the kernel lacks it or forbids
// it (ENOSYS, EPERM, io_uring_disabled) it logs one line saying so (platform/os/log.hpp) and opens the socket
// driver.
// Asking for uring explicitly fails instead (-ENOSYS/-EPERM, message set). 0 or a negative errno.
int open_udp(DriverKind kind, const UdpConfig& config, std::unique_ptr<DatagramDriver>& out) noexcept;

}  // namespace cf::drivers
