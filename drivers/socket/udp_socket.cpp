// The socket UDP driver: one non-blocking socket, one recvmmsg per receive burst and one sendmmsg per 64 packets
// sent, with UDP_GRO / UDP_SEGMENT where the kernel has them. Every message header, iovec and control buffer lives
// in the driver object, set up at open; a burst only points them at pool buffers (no allocation, no copy of
// addresses: the kernel reads and writes PacketBuffer::peer directly).
//
// Lifetime: the driver owns its pool. Buffers the caller still holds (received, or allocated and not sent) stay
// valid until the driver is destroyed, and not a moment longer: the destructor closes the socket and unmaps the
// pool with them, so release or send every buffer first.
//
// Counting: rx_packets/tx_packets count datagrams on the wire (a GRO or GSO buffer counts one per segment),
// rx_bytes/tx_bytes their payload bytes, syscalls every recvmmsg, sendmmsg and ppoll after open.
#include "drivers/socket/udp_socket.hpp"

#include <netinet/in.h>
#include <netinet/udp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <climits>
#include <cstring>
#include <new>
#include <utility>

#include "drivers/udp_options.hpp"
#include "platform/os/last_error.hpp"

namespace cf::drivers {
namespace {

// Datagrams per system call. The kernel's own per-call work dominates past this; callers' bursts are 32..64.
constexpr std::uint32_t kBurst = 64;

// Ancillary data of one message: the GRO segment size (an int) on receive, the GSO segment size (a u16) on send.
// The union aligns the bytes as a cmsghdr needs.
union RxControl {
    cmsghdr header;
    unsigned char bytes[CMSG_SPACE(sizeof(int))];
};
union TxControl {
    cmsghdr header;
    unsigned char bytes[CMSG_SPACE(sizeof(std::uint16_t))];
};

// How many datagrams a buffer of `length` bytes carries when cut into `segment_size` pieces (0: not cut).
std::uint32_t segments_in(std::uint32_t length, std::uint16_t segment_size) {
    if (segment_size == 0 || length <= segment_size) return 1;
    return (length + segment_size - 1) / segment_size;
}

bool is_transient_send_error(int err) {
    // EAGAIN: socket buffer full. ENOBUFS: a full device queue (qdisc), which drains like the socket buffer.
    return err == EAGAIN || err == EWOULDBLOCK || err == ENOBUFS || err == EINTR;
}

// An ICMP report about a datagram sent earlier, surfacing on the next call (connected or IP_RECVERR sockets
// only, neither of which we make, but a socket handed over by a test tool might): not a failure of this socket.
bool is_late_send_report(int err) {
    return err == ECONNREFUSED || err == EHOSTUNREACH || err == ENETUNREACH || err == EHOSTDOWN;
}

// The kernel caps SO_RCVBUF/SO_SNDBUF at net.core.{r,w}mem_max on its own; a refusal is not worth failing open.
void ask_buffer_size(int fd, int option, std::uint32_t bytes) {
    if (bytes == 0) return;   // 0: keep the system default
    const int value = bytes > INT_MAX ? INT_MAX : static_cast<int>(bytes);
    (void)setsockopt(fd, SOL_SOCKET, option, &value, sizeof value);
}

class UdpSocketDriver final : public DatagramDriver {
public:
    static int open(const UdpConfig& config, std::unique_ptr<DatagramDriver>& out) noexcept;
    ~UdpSocketDriver() override {
        if (fd_ >= 0) ::close(fd_);
    }
    UdpSocketDriver(const UdpSocketDriver&) = delete;
    UdpSocketDriver& operator=(const UdpSocketDriver&) = delete;

    DriverKind kind() const noexcept override { return DriverKind::socket; }
    const PeerAddress& local_address() const noexcept override { return local_; }
    int rx_burst(PacketBuffer** out, std::uint32_t max) noexcept override;
    int tx_burst(PacketBuffer* const* packets, std::uint32_t count) noexcept override;
    // Sockets copy on send: nothing is ever in flight once sendmmsg returns.
    int poll_completions() noexcept override { return 0; }

private:
    UdpSocketDriver() noexcept = default;

    int receive(std::uint32_t posted) noexcept;
    bool wait_readable() noexcept;
    std::uint16_t received_segment_size(const msghdr& header, std::uint32_t length) const noexcept;
    // Points tx message i at `buffer`; false if the buffer cannot be sent as asked (segments without GSO).
    bool prepare_send(std::uint32_t i, PacketBuffer* buffer) noexcept;

    int fd_ = -1;
    PeerAddress local_;
    const CounterClock* clock_ = nullptr;
    bool busy_poll_ = true;
    timespec rx_wait_{};
    bool gro_ = false;   // UDP_GRO accepted by the kernel
    bool gso_ = false;   // config.gso and the kernel knows UDP_SEGMENT
    bool idle_ = true;   // the last rx_burst found nothing: the next asks for a single datagram

    PacketBuffer* rx_posted_[kBurst] = {};
    mmsghdr rx_messages_[kBurst] = {};
    iovec rx_iov_[kBurst] = {};
    RxControl rx_control_[kBurst] = {};
    mmsghdr tx_messages_[kBurst] = {};
    iovec tx_iov_[kBurst] = {};
    TxControl tx_control_[kBurst] = {};
};

int UdpSocketDriver::open(const UdpConfig& config, std::unique_ptr<DatagramDriver>& out) noexcept {
    out.reset();
    const int family = config.bind.length != 0 ? config.bind.addr.any.sa_family : AF_UNSPEC;
    if (family != AF_INET && family != AF_INET6) {
        return platform::fail(EINVAL, "udp socket: the bind address is unset or not IPv4/IPv6 (for any local "
                              "address and a free port: 0.0.0.0:0 or [::]:0)");
    }
    std::unique_ptr<UdpSocketDriver> driver(new (std::nothrow) UdpSocketDriver());
    if (!driver) return platform::fail(ENOMEM, "udp socket: out of memory for the driver");
    if (const int status = PacketPool::create(config.pool, driver->pool_); status != 0) return status;

    const int fd = ::socket(family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, IPPROTO_UDP);
    if (fd < 0) {
        const int err = errno;
        return platform::fail(err, "udp socket: socket() failed: %s", std::strerror(err));
    }
    driver->fd_ = fd;
    ask_buffer_size(fd, SO_RCVBUF, config.socket_buffer_bytes);
    ask_buffer_size(fd, SO_SNDBUF, config.socket_buffer_bytes);
    if (config.gro) {
        // Older kernels (< 5.0) refuse it: receive datagram by datagram instead.
        const int on = 1;
        driver->gro_ = setsockopt(fd, SOL_UDP, UDP_GRO, &on, sizeof on) == 0;
    }
    if (config.gso) {
        // Kernels before 4.18 do not know UDP_SEGMENT and would ignore the cmsg, sending one merged datagram;
        // asking for the option tells them apart.
        int segment = 0;
        socklen_t length = sizeof segment;
        driver->gso_ = getsockopt(fd, SOL_UDP, UDP_SEGMENT, &segment, &length) == 0;
    }
    if (::bind(fd, &config.bind.addr.any, config.bind.length) != 0) {
        const int err = errno;
        char text[64];
        return platform::fail(err, "udp socket: bind to %s failed: %s", config.bind.format(text, sizeof text),
                              std::strerror(err));
    }
    driver->local_.length = sizeof driver->local_.addr;
    if (::getsockname(fd, &driver->local_.addr.any, &driver->local_.length) != 0) {
        const int err = errno;
        return platform::fail(err, "udp socket: getsockname failed: %s", std::strerror(err));
    }

    // rx_posted, zerocopy_min_bytes and sqpoll are io_uring's: a socket takes receive buffers per burst and
    // sendmmsg copies.
    driver->clock_ = config.clock;
    driver->busy_poll_ = config.busy_poll;
    driver->rx_wait_.tv_sec = static_cast<time_t>(config.rx_wait_us / 1000000);
    driver->rx_wait_.tv_nsec = static_cast<long>(config.rx_wait_us % 1000000) * 1000;
    for (std::uint32_t i = 0; i < kBurst; ++i) {
        driver->rx_messages_[i].msg_hdr.msg_iov = &driver->rx_iov_[i];
        driver->rx_messages_[i].msg_hdr.msg_iovlen = 1;
        driver->tx_messages_[i].msg_hdr.msg_iov = &driver->tx_iov_[i];
        driver->tx_messages_[i].msg_hdr.msg_iovlen = 1;
    }
    out = std::move(driver);
    return 0;
}

int UdpSocketDriver::rx_burst(PacketBuffer** out, std::uint32_t max) noexcept {
    std::uint32_t wanted = max < kBurst ? max : kBurst;
    if (wanted == 0) return 0;
    // recvmmsg tries one more receive after the last datagram it finds, and that failing try costs a single
    // message's round trip about 0.6 us (1.27x -> 1.10x plain sockets, cf-latency udp). After an empty poll, when
    // traffic is sparse, ask for one datagram: the next burst asks for all again.
    if (idle_) wanted = 1;
    std::uint32_t posted = 0;
    for (; posted < wanted; ++posted) {
        PacketBuffer* buffer = pool_->allocate();
        if (buffer == nullptr) [[unlikely]] break;
        rx_posted_[posted] = buffer;
        rx_iov_[posted] = {buffer->data, buffer->capacity};
        msghdr& header = rx_messages_[posted].msg_hdr;
        header.msg_name = &buffer->peer.addr;
        header.msg_namelen = sizeof buffer->peer.addr;
        // The kernel overwrites the lengths on every call: reset them each time.
        header.msg_control = gro_ ? rx_control_[posted].bytes : nullptr;
        header.msg_controllen = gro_ ? sizeof rx_control_[posted].bytes : 0;
        header.msg_flags = 0;
    }
    if (posted == 0) [[unlikely]] {
        ++stats_.rx_no_buffer;
        return 0;
    }

    int received = receive(posted);
    if (received == 0 && !busy_poll_ && wait_readable()) received = receive(posted);

    std::uint32_t delivered = 0;
    const std::uint32_t filled = received > 0 ? static_cast<std::uint32_t>(received) : 0;
    if (filled != 0) {
        const Instant now = clock_ != nullptr ? clock_->now() : Instant();
        for (std::uint32_t i = 0; i < filled; ++i) {
            PacketBuffer* buffer = rx_posted_[i];
            const mmsghdr& message = rx_messages_[i];
            if ((message.msg_hdr.msg_flags & MSG_TRUNC) != 0) [[unlikely]] {
                // The tail is gone: half a datagram is worse than none to every protocol above us.
                ++stats_.rx_truncated;
                pool_->release(buffer);
                continue;
            }
            buffer->length = message.msg_len;
            buffer->peer.length = message.msg_hdr.msg_namelen;
            buffer->rx_time = now;
            buffer->segment_size = gro_ ? received_segment_size(message.msg_hdr, message.msg_len) : 0;
            stats_.rx_packets += segments_in(buffer->length, buffer->segment_size);
            stats_.rx_bytes += buffer->length;
            out[delivered++] = buffer;
        }
    }
    // Unfilled buffers go back last-first, so the pool hands out the same (cache-warm) buffers next time.
    for (std::uint32_t i = posted; i > filled; --i) pool_->release(rx_posted_[i - 1]);
    // The pool cut the burst short and the kernel filled all we had: more may be waiting for a buffer.
    if (posted < wanted && filled == posted) ++stats_.rx_no_buffer;
    idle_ = received <= 0;
    return received < 0 ? received : static_cast<int>(delivered);
}

// One recvmmsg: the count received, 0 when nothing is there, or a negative errno.
int UdpSocketDriver::receive(std::uint32_t posted) noexcept {
    ++stats_.syscalls;
    const int received = ::recvmmsg(fd_, rx_messages_, posted, MSG_DONTWAIT, nullptr);
    if (received >= 0) [[likely]] return received;
    const int err = errno;
    if (err == EAGAIN || err == EWOULDBLOCK || err == EINTR) return 0;
    if (is_late_send_report(err)) {
        ++stats_.tx_errors;
        return 0;
    }
    return platform::fail(err, "udp socket: recvmmsg failed: %s", std::strerror(err));
}

// Waits up to rx_wait_ for a datagram; true when one may be there (a signal or an error: let recvmmsg say).
bool UdpSocketDriver::wait_readable() noexcept {
    if (rx_wait_.tv_sec == 0 && rx_wait_.tv_nsec == 0) return false;
    pollfd watched{fd_, POLLIN, 0};
    ++stats_.syscalls;
    const int ready = ::ppoll(&watched, 1, &rx_wait_, nullptr);
    return ready != 0;
}

std::uint16_t UdpSocketDriver::received_segment_size(const msghdr& header, std::uint32_t length) const noexcept {
    auto& mutable_header = const_cast<msghdr&>(header);   // CMSG_NXTHDR takes non-const pointers
    for (cmsghdr* control = CMSG_FIRSTHDR(&mutable_header); control != nullptr;
         control = CMSG_NXTHDR(&mutable_header, control)) {
        if (control->cmsg_level == SOL_UDP && control->cmsg_type == UDP_GRO) {
            int segment_size = 0;
            std::memcpy(&segment_size, CMSG_DATA(control), sizeof segment_size);
            // One datagram (segment as long as the whole) reads as "not coalesced", as packet.hpp defines 0.
            if (segment_size <= 0 || segment_size > UINT16_MAX || static_cast<std::uint32_t>(segment_size) >= length) {
                return 0;
            }
            return static_cast<std::uint16_t>(segment_size);
        }
    }
    return 0;
}

bool UdpSocketDriver::prepare_send(std::uint32_t i, PacketBuffer* buffer) noexcept {
    tx_iov_[i] = {buffer->data, buffer->length};
    msghdr& header = tx_messages_[i].msg_hdr;
    header.msg_name = &buffer->peer.addr;
    header.msg_namelen = buffer->peer.length;   // 0 (unset): the kernel refuses it with EDESTADDRREQ
    header.msg_flags = 0;
    if (buffer->segment_size == 0 || buffer->length <= buffer->segment_size) {
        header.msg_control = nullptr;
        header.msg_controllen = 0;
        return true;
    }
    // A buffer of several datagrams is sent as the kernel's segments or not at all: as one merged datagram it
    // would arrive as something the sender never meant.
    if (!gso_) return false;
    TxControl& control = tx_control_[i];
    control.header.cmsg_level = SOL_UDP;
    control.header.cmsg_type = UDP_SEGMENT;
    control.header.cmsg_len = CMSG_LEN(sizeof(std::uint16_t));
    const std::uint16_t segment_size = buffer->segment_size;
    std::memcpy(CMSG_DATA(&control.header), &segment_size, sizeof segment_size);
    header.msg_control = control.bytes;
    header.msg_controllen = sizeof control.bytes;
    return true;
}

int UdpSocketDriver::tx_burst(PacketBuffer* const* packets, std::uint32_t count) noexcept {
    std::uint32_t accepted = 0;
    while (accepted < count) {
        const std::uint32_t left = count - accepted;
        std::uint32_t chunk = left < kBurst ? left : kBurst;
        for (std::uint32_t i = 0; i < chunk; ++i) {
            if (!prepare_send(i, packets[accepted + i])) [[unlikely]] {
                chunk = i;   // send what comes before it; the next round refuses it
                break;
            }
        }
        if (chunk == 0) [[unlikely]] {
            ++stats_.tx_errors;
            pool_->release(packets[accepted++]);
            continue;
        }

        ++stats_.syscalls;
        const int sent = ::sendmmsg(fd_, tx_messages_, chunk, MSG_DONTWAIT);
        if (sent < 0) [[unlikely]] {
            const int err = errno;
            if (is_transient_send_error(err)) break;
            // The kernel refused the first datagram itself (EMSGSIZE, no route, unset or wrong-family peer...).
            // It is counted as accepted and dropped: retrying cannot succeed, and a caller that kept it would
            // stall everything queued behind it.
            ++stats_.tx_errors;
            pool_->release(packets[accepted++]);
            continue;
        }
        const auto done = static_cast<std::uint32_t>(sent);
        for (std::uint32_t i = 0; i < done; ++i) {
            PacketBuffer* buffer = packets[accepted + i];
            stats_.tx_packets += segments_in(buffer->length, buffer->segment_size);
            stats_.tx_bytes += buffer->length;
            pool_->release(buffer);   // sendmmsg copied the bytes: the buffer is free right away
        }
        accepted += done;
        // Fewer sent than asked: the socket buffer is full, or the next datagram is refused. Either way the
        // caller keeps the rest; if it is a refusal, the retry's first call reports it (handled above).
        if (done < chunk) break;
    }
    return static_cast<int>(accepted);
}

}  // namespace

int open_udp_socket(const UdpConfig& config, std::unique_ptr<DatagramDriver>& out) noexcept {
    return UdpSocketDriver::open(config, out);
}

}  // namespace cf::drivers
