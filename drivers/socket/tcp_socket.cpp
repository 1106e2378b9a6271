// The socket TCP stream driver: non-blocking sockets driven from the polling thread.
//   - Receive: per open connection with room, one recv into its receive buffer, then whole frames are cut out
//     (stream_connections.hpp). A connection is only read when the burst has room for its frames, so the bytes
//     the kernel hands over are never more than the buffer holds.
//   - Transmit: frames are copied into each connection's send ring; then one sendmsg per connection touched (two
//     iovecs when the ring wraps). What the kernel did not take waits and goes out on the next call of any kind.
//   - Connections: accept4 and connect completion (a zero-timeout ppoll over the connecting sockets) happen in
//     poll_events(), after the timers' sweep (stream_timeouts.hpp) so that the slots it frees take connections
//     waiting now. A connection past a timer gets one last recv first: its bytes may have come while this thread
//     was away, and it is not idle then.
// Counting: syscalls counts every recv, sendmsg, accept4, ppoll, getsockopt and close after open; listen() and
// connect() set-up calls are not counted (they are not on the data path).
#include "drivers/socket/tcp_socket.hpp"

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <climits>
#include <cstring>
#include <new>
#include <utility>

#include "drivers/stream_connections.hpp"
#include "drivers/stream_timeouts.hpp"
#include "platform/os/last_error.hpp"

namespace cf::drivers {
namespace {

using platform::fail;

constexpr std::uint32_t kAcceptsPerPoll = 64;

bool is_ip(const PeerAddress& address) {
    return address.length != 0 && (address.addr.any.sa_family == AF_INET || address.addr.any.sa_family == AF_INET6);
}

class TcpSocketDriver final : public StreamDriver {
public:
    static int open(const TcpConfig& config, std::unique_ptr<StreamDriver>& out) noexcept;
    ~TcpSocketDriver() override;
    TcpSocketDriver(const TcpSocketDriver&) = delete;
    TcpSocketDriver& operator=(const TcpSocketDriver&) = delete;

    DriverKind kind() const noexcept override { return DriverKind::socket; }
    int listen(const PeerAddress& bind) noexcept override;
    const PeerAddress& local_address() const noexcept override { return local_; }
    int connect(const PeerAddress& peer) noexcept override;
    int close(ConnectionId connection) noexcept override;
    int rx_burst(PacketBuffer** out, std::uint32_t max) noexcept override;
    int tx_burst(PacketBuffer* const* packets, std::uint32_t count) noexcept override;
    int poll_events(StreamEvent* out, std::uint32_t max) noexcept override;
    int poll_completions() noexcept override;
    std::uint32_t tx_pending(ConnectionId connection) const noexcept override;

private:
    TcpSocketDriver() noexcept = default;

    void set_options(int fd) noexcept;
    void accept_new() noexcept;
    void expire_overdue() noexcept;
    void finish_connects() noexcept;
    void opened(std::uint32_t slot, StreamEventKind kind) noexcept;
    void close_with(std::uint32_t slot, int error) noexcept;
    // One sendmsg of what the connection's ring holds; false when bytes are left.
    bool flush(std::uint32_t slot) noexcept;
    void flush_touched() noexcept;
    void flush_all() noexcept;
    // Cuts whole frames out of the connection's receive buffer into out[count..max); false when it must stop
    // (no pool buffer, or a bad length closed the connection).
    bool cut_frames(std::uint32_t slot, PacketBuffer** out, std::uint32_t max, std::uint32_t& count) noexcept;
    // One recv into the connection's receive buffer: the bytes it got (0: nothing waiting, or no room). The peer's
    // close or a socket error closes the connection instead.
    std::uint32_t receive(std::uint32_t slot) noexcept;

    TcpConfig config_;
    StreamConnections connections_;
    StreamTimeouts timeouts_;
    int listen_fd_ = -1;
    PeerAddress local_;
    std::uint32_t rx_cursor_ = 0;          // the slot the next receive burst starts at (fairness)
    bool tx_backlog_ = false;              // some send ring kept bytes after its last sendmsg
    std::unique_ptr<std::uint32_t[]> touched_;   // slots a tx_burst appended to, each once
    std::unique_ptr<bool[]> is_touched_;
    std::uint32_t touched_count_ = 0;
    std::unique_ptr<pollfd[]> connecting_;
    std::unique_ptr<std::uint32_t[]> connecting_slot_;
};

int TcpSocketDriver::open(const TcpConfig& config, std::unique_ptr<StreamDriver>& out) noexcept {
    out.reset();
    std::unique_ptr<TcpSocketDriver> driver(new (std::nothrow) TcpSocketDriver());
    if (!driver) return fail(ENOMEM, "tcp socket: out of memory for the driver");
    driver->config_ = config;
    if (const int rc = PacketPool::create(config.pool, driver->pool_); rc != 0) return rc;
    if (const int rc = driver->connections_.create(config, driver->pool_->buffer_bytes()); rc != 0) return rc;
    if (const int rc = driver->timeouts_.configure(config); rc != 0) return rc;
    const std::uint32_t slots = config.max_connections;
    driver->touched_.reset(new (std::nothrow) std::uint32_t[slots]);
    driver->is_touched_.reset(new (std::nothrow) bool[slots]());
    driver->connecting_.reset(new (std::nothrow) pollfd[slots]);
    driver->connecting_slot_.reset(new (std::nothrow) std::uint32_t[slots]);
    if (!driver->touched_ || !driver->is_touched_ || !driver->connecting_ || !driver->connecting_slot_) {
        return fail(ENOMEM, "tcp socket: out of memory for %u connections", slots);
    }
    out = std::move(driver);
    return 0;
}

TcpSocketDriver::~TcpSocketDriver() {
    for (std::uint32_t slot = 0; slot < connections_.capacity(); ++slot) {
        if (connections_.at(slot).fd >= 0) ::close(connections_.at(slot).fd);
    }
    if (listen_fd_ >= 0) ::close(listen_fd_);
}

void TcpSocketDriver::set_options(int fd) noexcept {
    // Refusals are not worth failing for: the kernel caps buffer sizes on its own, and NODELAY only trades latency.
    const int on = 1;
    if (config_.no_delay) (void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &on, sizeof on);
    if (config_.socket_buffer_bytes != 0) {
        const std::uint32_t asked = config_.socket_buffer_bytes;
        const int bytes = asked > INT_MAX ? INT_MAX : static_cast<int>(asked);
        (void)setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &bytes, sizeof bytes);
        (void)setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &bytes, sizeof bytes);
    }
}

int TcpSocketDriver::listen(const PeerAddress& bind) noexcept {
    if (listen_fd_ >= 0) return fail(EALREADY, "tcp socket: listen() was called already (on port %u)", local_.port());
    if (!is_ip(bind)) return fail(EINVAL, "tcp socket: the listen address is unset or not IPv4/IPv6");
    const int fd = ::socket(bind.addr.any.sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, IPPROTO_TCP);
    if (fd < 0) {
        const int err = errno;
        return fail(err, "tcp socket: socket() failed: %s", std::strerror(err));
    }
    const int on = 1;
    (void)setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof on);   // restarts reuse the port at once
    char text[64];
    if (::bind(fd, &bind.addr.any, bind.length) != 0 ||
        ::listen(fd, static_cast<int>(config_.listen_backlog > INT_MAX ? INT_MAX : config_.listen_backlog)) != 0) {
        const int err = errno;
        ::close(fd);
        return fail(err, "tcp socket: listening on %s failed: %s", bind.format(text, sizeof text), std::strerror(err));
    }
    local_.length = sizeof local_.addr;
    if (::getsockname(fd, &local_.addr.any, &local_.length) != 0) {
        const int err = errno;
        ::close(fd);
        return fail(err, "tcp socket: getsockname failed: %s", std::strerror(err));
    }
    listen_fd_ = fd;
    return 0;
}

int TcpSocketDriver::connect(const PeerAddress& peer) noexcept {
    if (!is_ip(peer)) return fail(EINVAL, "tcp socket: the peer address is unset or not IPv4/IPv6");
    const int fd = ::socket(peer.addr.any.sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, IPPROTO_TCP);
    if (fd < 0) {
        const int err = errno;
        return fail(err, "tcp socket: socket() failed: %s", std::strerror(err));
    }
    const int slot = connections_.take_slot(fd, peer, StreamState::connecting);
    if (slot < 0) {
        ::close(fd);
        return fail(ENOSPC, "tcp socket: all %u connection slots are in use", connections_.capacity());
    }
    const auto index = static_cast<std::uint32_t>(slot);
    const ConnectionId id = connections_.id_of(index);
    set_options(fd);
    if (::connect(fd, &peer.addr.any, peer.length) == 0) {
        opened(index, StreamEventKind::connected);
    } else if (const int err = errno; err != EINPROGRESS) {
        // Refused or unreachable at once (loopback answers synchronously): reported as an event, like every
        // other way a connection attempt ends, so callers have one path for it.
        close_with(index, -err);
    }
    return static_cast<int>(id);
}

int TcpSocketDriver::close(ConnectionId connection) noexcept {
    StreamConnection* found = connections_.find(connection);
    if (found == nullptr) return fail(ENOENT, "tcp socket: connection %u is not open", connection);
    const int fd = found->fd;
    stats_.tx_dropped_bytes += connections_.free_slot(connections_.slot_of(connection));
    ++stats_.closed;
    ++stats_.syscalls;
    ::close(fd);
    return 0;
}

void TcpSocketDriver::opened(std::uint32_t slot, StreamEventKind kind) noexcept {
    StreamConnection& connection = connections_.at(slot);
    connection.state = StreamState::open;
    if (kind == StreamEventKind::accepted) timeouts_.start(connection);
    if (!connections_.push_event({kind, connections_.id_of(slot), 0, connection.peer})) [[unlikely]] {
        // Cannot happen (stream_connections.hpp); were it to, refusing the connection beats hiding it.
        ++stats_.refused_full;
        ++stats_.syscalls;
        ::close(connection.fd);
        connections_.free_slot(slot);
        return;
    }
    ++(kind == StreamEventKind::accepted ? stats_.accepted : stats_.connected);
    if (connections_.tx_pending(connection) != 0) flush(slot);   // frames queued while connecting
}

void TcpSocketDriver::close_with(std::uint32_t slot, int error) noexcept {
    StreamConnection& connection = connections_.at(slot);
    ++stats_.closed;
    if (error == -EPROTO) ++stats_.protocol_errors;
    stats_.tx_dropped_bytes += connections_.mark_closed(slot, error);
    ++stats_.syscalls;
    ::close(connection.fd);
    connection.fd = -1;
}

void TcpSocketDriver::accept_new() noexcept {
    for (std::uint32_t round = 0; round < kAcceptsPerPoll; ++round) {
        PeerAddress peer;
        peer.length = sizeof peer.addr;
        ++stats_.syscalls;
        const int fd = ::accept4(listen_fd_, &peer.addr.any, &peer.length, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) return;   // EAGAIN, or a connection that died in the backlog (ECONNABORTED): next poll
        const int slot = connections_.take_slot(fd, peer, StreamState::connecting);
        if (slot < 0) {
            ++stats_.refused_full;
            ++stats_.syscalls;
            ::close(fd);
            continue;
        }
        set_options(fd);
        opened(static_cast<std::uint32_t>(slot), StreamEventKind::accepted);
    }
}

void TcpSocketDriver::finish_connects() noexcept {
    nfds_t waiting = 0;
    for (std::uint32_t slot = 0; slot < connections_.capacity(); ++slot) {
        const StreamConnection& connection = connections_.at(slot);
        if (connection.state != StreamState::connecting) continue;
        connecting_[waiting] = {connection.fd, POLLOUT, 0};
        connecting_slot_[waiting++] = slot;
    }
    if (waiting == 0) return;
    const timespec now{0, 0};
    ++stats_.syscalls;
    if (::ppoll(connecting_.get(), waiting, &now, nullptr) <= 0) return;
    for (nfds_t i = 0; i < waiting; ++i) {
        if (connecting_[i].revents == 0) continue;
        int error = 0;
        socklen_t length = sizeof error;
        ++stats_.syscalls;
        if (getsockopt(connecting_[i].fd, SOL_SOCKET, SO_ERROR, &error, &length) != 0) error = errno;
        if (error == 0) {
            opened(connecting_slot_[i], StreamEventKind::connected);
        } else {
            close_with(connecting_slot_[i], -error);
        }
    }
}

void TcpSocketDriver::expire_overdue() noexcept {
    timeouts_.sweep(connections_, [this](std::uint32_t slot, int reason) {
        // Bytes that came meanwhile restart the clock; a close found here keeps its own reason.
        if (receive(slot) > 0 || connections_.at(slot).state != StreamState::open) return;
        StreamTimeouts::count(reason, stats_);
        close_with(slot, reason);
    });
}

int TcpSocketDriver::poll_events(StreamEvent* out, std::uint32_t max) noexcept {
    timeouts_.tick();
    expire_overdue();
    if (listen_fd_ >= 0) accept_new();
    finish_connects();
    if (tx_backlog_) flush_all();
    return static_cast<int>(connections_.pop_events(out, max));
}

bool TcpSocketDriver::cut_frames(std::uint32_t slot, PacketBuffer** out, std::uint32_t max,
                                 std::uint32_t& count) noexcept {
    StreamConnection& connection = connections_.at(slot);
    while (count < max) {
        PacketBuffer* frame = nullptr;
        switch (connections_.next_frame(connection, *pool_, frame)) {
            case FrameStatus::frame:
                frame->connection = connections_.id_of(slot);
                frame->peer = connection.peer;
                ++stats_.rx_frames;
                stats_.rx_bytes += frame->length;
                out[count++] = frame;
                break;
            case FrameStatus::need_more: return true;
            case FrameStatus::no_buffer: ++stats_.rx_no_buffer; return false;
            case FrameStatus::bad_length: close_with(slot, -EPROTO); return false;
        }
    }
    return true;
}

std::uint32_t TcpSocketDriver::receive(std::uint32_t slot) noexcept {
    StreamConnection& connection = connections_.at(slot);
    const iovec space = connections_.rx_space(connection);
    if (space.iov_len == 0) return 0;
    ++stats_.syscalls;
    const ssize_t got = ::recv(connection.fd, space.iov_base, space.iov_len, MSG_DONTWAIT);
    if (got > 0) {
        connections_.rx_filled(connection, static_cast<std::uint32_t>(got));
        timeouts_.received(connection);
        return static_cast<std::uint32_t>(got);
    }
    if (got == 0) {
        // The peer closed: in order between frames, or inside one (its tail is lost).
        const bool inside_frame = connection.rx_tail != connection.rx_head;
        close_with(slot, inside_frame ? -ECONNABORTED : 0);
    } else if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
        close_with(slot, -errno);
    }
    return 0;
}

int TcpSocketDriver::rx_burst(PacketBuffer** out, std::uint32_t max) noexcept {
    timeouts_.tick();
    if (tx_backlog_) flush_all();
    std::uint32_t count = 0;
    const std::uint32_t slots = connections_.capacity();
    for (std::uint32_t step = 0; step < slots && count < max; ++step) {
        const std::uint32_t slot = (rx_cursor_ + step) % slots;
        StreamConnection& connection = connections_.at(slot);
        if (connection.state != StreamState::open) continue;
        // Frames left from the last burst first; read only when none is whole, so an end of stream found by
        // this recv comes after every frame before it.
        if (!cut_frames(slot, out, max, count) || count == max) continue;
        if (receive(slot) > 0) cut_frames(slot, out, max, count);
    }
    rx_cursor_ = slots != 0 ? (rx_cursor_ + 1) % slots : 0;
    if (count != 0 && config_.clock != nullptr) {
        const Instant now = config_.clock->now();
        for (std::uint32_t i = 0; i < count; ++i) out[i]->rx_time = now;
    }
    return static_cast<int>(count);
}

bool TcpSocketDriver::flush(std::uint32_t slot) noexcept {
    StreamConnection& connection = connections_.at(slot);
    if (connection.state != StreamState::open) return true;   // connecting: sent once connected
    iovec spans[2];
    const int pieces = connections_.tx_spans(connection, spans);
    if (pieces == 0) return true;
    msghdr message{};
    message.msg_iov = spans;
    message.msg_iovlen = static_cast<std::size_t>(pieces);
    ++stats_.syscalls;
    const ssize_t sent = ::sendmsg(connection.fd, &message, MSG_DONTWAIT | MSG_NOSIGNAL);
    if (sent < 0) {
        const int err = errno;
        if (err == EAGAIN || err == EWOULDBLOCK || err == EINTR || err == ENOBUFS) return false;
        close_with(slot, -err);
        return true;
    }
    connections_.tx_consumed(connection, static_cast<std::uint32_t>(sent));
    return connections_.tx_pending(connection) == 0;
}

void TcpSocketDriver::flush_touched() noexcept {
    for (std::uint32_t i = 0; i < touched_count_; ++i) {
        is_touched_[touched_[i]] = false;
        if (!flush(touched_[i])) tx_backlog_ = true;
    }
    touched_count_ = 0;
}

void TcpSocketDriver::flush_all() noexcept {
    bool left = false;
    for (std::uint32_t slot = 0; slot < connections_.capacity(); ++slot) {
        if (!flush(slot)) left = true;
    }
    tx_backlog_ = left;
}

int TcpSocketDriver::tx_burst(PacketBuffer* const* packets, std::uint32_t count) noexcept {
    std::uint32_t accepted = 0;
    for (; accepted < count; ++accepted) {
        PacketBuffer* packet = packets[accepted];
        StreamConnection* connection = connections_.find(packet->connection);
        if (connection == nullptr || packet->length > pool_->buffer_bytes()) [[unlikely]] {
            ++stats_.tx_refused;
            pool_->release(packet);
            continue;
        }
        const std::uint32_t slot = connections_.slot_of(packet->connection);
        if (!connections_.append_frame(*connection, packet->data, packet->length)) {
            // Full: give the kernel what the ring holds and try once more before leaving the rest to the caller.
            if (connection->state != StreamState::open) break;
            flush(slot);
            if (connections_.find(packet->connection) == nullptr ||
                !connections_.append_frame(*connection, packet->data, packet->length)) {
                break;
            }
        }
        ++stats_.tx_frames;
        stats_.tx_bytes += packet->length;
        pool_->release(packet);
        if (!is_touched_[slot]) {
            is_touched_[slot] = true;
            touched_[touched_count_++] = slot;
        }
    }
    flush_touched();
    return static_cast<int>(accepted);
}

int TcpSocketDriver::poll_completions() noexcept {
    flush_all();
    return 0;
}

std::uint32_t TcpSocketDriver::tx_pending(ConnectionId connection) const noexcept {
    const StreamConnection* found = connections_.find(connection);
    return found != nullptr ? connections_.tx_pending(*found) : 0;
}

}  // namespace

int open_tcp_socket(const TcpConfig& config, std::unique_ptr<StreamDriver>& out) noexcept {
    return TcpSocketDriver::open(config, out);
}

}  // namespace cf::drivers
