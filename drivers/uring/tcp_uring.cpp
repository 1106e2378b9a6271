// The io_uring TCP stream driver. One ring per driver, polled by one thread; framing and the per-connection memory
// are StreamConnections' (stream_connections.hpp), this file moves the bytes:
//   - Accept: one multishot accept on the listening socket, re-armed whenever the kernel ends it (a CQE without
//     IORING_CQE_F_MORE). An accepted socket gets a slot (every slot taken: it is closed at once,
//     `refused_full`), TCP_NODELAY, its peer's address, an `accepted` event and a receive. SO_RCVBUF/SO_SNDBUF are
//     set on the listening socket, which its accepted sockets inherit (the window scale is fixed at the handshake,
//     so setting them afterwards would be too late).
//   - Connect: connect() makes the socket, takes a slot and returns its id; the IORING_OP_CONNECT goes into the
//     ring with the next polling call (rx_burst, tx_burst, poll_events, poll_completions), so only the polling
//     thread ever touches the ring. On success: `connected`, a receive, and a send of what tx_burst queued.
//   - Receive: one single-shot recv per open connection into the free end of its receive buffer, re-armed as soon
//     as it completes (while rx_burst cuts the bytes already there into frames, the kernel fills the rest), or
//     after rx_burst took frames when the buffer was full. rx_burst cuts frames round-robin over the connections
//     that received bytes.
//   - Send: tx_burst copies frames into the send rings, then issues one sendmsg (MSG_NOSIGNAL) per connection
//     without one in flight, over the ring's unsent bytes (two iovecs when they wrap), and enters the kernel once.
//     A short send is normal for TCP: its completion sends the rest.
//   - Timers (stream_timeouts.hpp): every polling call reads the coarse clock and receives stamp their
//     connection; poll_events() sweeps after its enter, so a receive that completed is seen before a timer calls
//     its connection idle, and closes what is overdue (its cancels go to the kernel at once, like close()'s).
//   - End of stream: the peer's close (a recv of 0) or an error ends the connection once the frames already
//     received are handed out (error 0 for an orderly close, -ECONNABORTED when it came inside a frame, else the
//     errno); a frame length over the pool's buffer size closes it with -EPROTO at once.
//   - Closing a socket: a request in flight holds the socket and may write into the slot's memory, so the slot's
//     requests are cancelled (by user_data, never by fd number: the number may be reused before a queued cancel
//     runs) and the fd is closed by the completion that leaves the slot with none (ops_in_flight). close() enters
//     the kernel once so that happens at once.
//
// The ring is created disabled and enabled by the first polling call (one extra system call), so the polling
// thread, not the one that opened the driver (or called listen/connect), becomes its single issuer. With
// DEFER_TASKRUN completions appear only when that thread enters the kernel; an idle poll enters only when the
// kernel flags pending work (TASKRUN_FLAG) or SQEs wait.
//
// stats().closed counts every connection that ended: closed by the peer, failed (connect() included) or by close().
// stats().syscalls counts, as the socket driver does, the system calls of the data path after open: every
// io_uring_enter and io_uring_register, setsockopt and getpeername for an accepted socket, shutdown, and every
// close; not the set-up calls of listen() and connect() (socket, setsockopt, bind, listen, getsockname).
#include "drivers/uring/tcp_uring.hpp"

#include <liburing.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cassert>
#include <cerrno>
#include <cstdint>
#include <cstring>
#include <new>
#include <utility>

#include "drivers/stream_connections.hpp"
#include "drivers/stream_timeouts.hpp"
#include "drivers/uring/uring_setup.hpp"
#include "platform/os/last_error.hpp"

namespace cf::drivers {
namespace {

using platform::fail;

constexpr const char* kWho = "uring tcp driver";

// user_data: what a CQE completes in the top byte; for a connection's requests, the tag its slot had when the
// request was made (bits 16..47) and the slot (bits 0..15).
enum class Op : std::uint64_t { accept = 1, recv, send, connect, cancel };
constexpr unsigned kOpShift = 56;
constexpr unsigned kTagShift = 16;
constexpr std::uint64_t kSlotMask = 0xffff;

constexpr std::uint64_t user_data(Op op, std::uint32_t tag = 0, std::uint32_t slot = 0) {
    return std::uint64_t(op) << kOpShift | std::uint64_t{tag} << kTagShift | slot;
}

constexpr std::uint32_t kMaxCqEntries = 65536;


// The driver's own state of a slot, next to StreamConnections' StreamConnection.
struct SlotIo {
    msghdr message{};             // the send in flight: the kernel may read it until the send completes
    iovec spans[2]{};
    int fd = -1;                  // this driver closes it (retire()), once no request uses it
    std::uint32_t tag = 0;        // names this occupant's requests in user_data
    bool connect_armed = false, recv_armed = false, send_armed = false;   // a request of that kind is in flight
    bool closing = false;         // retired: fd closes when ops_in_flight reaches 0
    bool ended = false;           // the peer closed or an error: no more receives, closes once frames are out
    bool maybe_more = true;       // the last receive did not say the socket was drained (IORING_CQE_F_SOCK_NONEMPTY
                                  // clear): the next receive tries at once instead of waiting for data first
    int end_error = 0;
    // Work a polling call still has to queue (connect() does not touch the ring; an SQE may be unavailable).
    bool want_connect = false, want_recv = false, want_send = false;
    // Queue membership, kept across occupants (an entry of a previous one is skipped or serves the next).
    bool in_pending = false, in_ready = false, touched = false;
};

// A FIFO of slot numbers; each slot is in it at most once (callers keep a flag), so `capacity` slots always fit.
class SlotQueue {
public:
    bool create(std::uint32_t capacity) noexcept {
        items_.reset(new (std::nothrow) std::uint32_t[capacity]);
        capacity_ = capacity;
        return items_ != nullptr;
    }
    std::uint32_t size() const noexcept { return count_; }
    std::uint32_t front() const noexcept { return items_[head_]; }
    void pop() noexcept {
        head_ = head_ + 1 == capacity_ ? 0 : head_ + 1;
        --count_;
    }
    void push(std::uint32_t slot) noexcept {
        assert(count_ < capacity_);
        const std::uint32_t at = head_ + count_;
        items_[at >= capacity_ ? at - capacity_ : at] = slot;
        ++count_;
    }

private:
    std::unique_ptr<std::uint32_t[]> items_;
    std::uint32_t capacity_ = 0, head_ = 0, count_ = 0;
};

class TcpUringDriver final : public StreamDriver {
public:
    TcpUringDriver() noexcept = default;
    ~TcpUringDriver() override;
    TcpUringDriver(const TcpUringDriver&) = delete;
    TcpUringDriver& operator=(const TcpUringDriver&) = delete;

    int open(const TcpConfig& config) noexcept;

    DriverKind kind() const noexcept override { return DriverKind::uring; }
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
    // ---- ring ----
    int begin_poll() noexcept;
    int progress() noexcept;
    int submit() noexcept;
    io_uring_sqe* next_sqe() noexcept;
    void reap() noexcept;
    void on_completion(const io_uring_cqe& cqe) noexcept;
    void issue_pending() noexcept;
    void want(std::uint32_t slot, bool SlotIo::*what) noexcept;

    // ---- requests ----
    void arm_accept() noexcept;
    void arm_connect(std::uint32_t slot) noexcept;
    void arm_receive(std::uint32_t slot) noexcept;
    void arm_send(std::uint32_t slot) noexcept;
    void cancel(Op op, std::uint32_t slot) noexcept;
    void on_accept(const io_uring_cqe& cqe) noexcept;
    void on_connect(std::uint32_t slot, int result) noexcept;
    void on_receive(std::uint32_t slot, int result) noexcept;
    void on_send(std::uint32_t slot, int result) noexcept;
    void finish_op(std::uint32_t slot) noexcept;

    // ---- connections ----
    int set_options(int fd, bool buffers) noexcept;
    void adopt(int fd) noexcept;
    void start_slot(std::uint32_t slot, int fd) noexcept;
    void push_ready(std::uint32_t slot) noexcept;
    void end_stream(std::uint32_t slot, int error) noexcept;
    void close_connection(std::uint32_t slot, int error) noexcept;
    void retire(std::uint32_t slot) noexcept;
    void close_fd(int& fd) noexcept;
    void expire_overdue() noexcept;
    std::uint32_t cut_frames(PacketBuffer** out, std::uint32_t max) noexcept;
    bool sendable(const PacketBuffer* packet) const noexcept;
    void shut_down() noexcept;

    TcpConfig config_;
    StreamConnections connections_;
    StreamTimeouts timeouts_;
    std::unique_ptr<SlotIo[]> io_;
    SlotQueue ready_;     // connections whose receive buffer may hold a whole frame
    SlotQueue pending_;   // connections with a want_* set
    SlotQueue touched_;   // connections tx_burst appended to
    std::uint32_t max_frame_ = 0;
    std::uint32_t next_tag_ = 1;

    PeerAddress local_;
    int listen_fd_ = -1;
    bool accept_armed_ = false;
    bool want_accept_ = false;

    io_uring ring_{};
    bool ring_open_ = false;
    bool enabled_ = false;
    bool shutting_down_ = false;   // the destructor cancels everything: completions re-arm nothing
    UringFlags ring_flags_;
};

// ---- open / close ----

int TcpUringDriver::open(const TcpConfig& config) noexcept {
    config_ = config;
    if (int rc = PacketPool::create(config.pool, pool_); rc < 0) return rc;
    max_frame_ = pool_->buffer_bytes();
    if (int rc = connections_.create(config, max_frame_); rc < 0) return rc;
    if (int rc = timeouts_.configure(config); rc < 0) return rc;
    const std::uint32_t count = connections_.capacity();
    io_.reset(new (std::nothrow) SlotIo[count]);
    if (!io_ || !ready_.create(count) || !pending_.create(count) || !touched_.create(count)) {
        return fail(ENOMEM, "%s: no memory for %u connections", kWho, count);
    }
    // Each connection has at most a recv, a send (or a connect) and their cancels in flight; a burst that touches
    // every connection needs an SQE each. The CQ holds them all plus a backlog's worth of accepts; more would not
    // be lost (IORING_FEAT_NODROP), only slower.
    std::uint32_t sq_entries = round_up_pow2(2 * count + 8);
    if (sq_entries > 4096) sq_entries = 4096;
    std::uint64_t cq_wanted = 6ull * count + config.listen_backlog + 2ull * sq_entries;
    if (cq_wanted > kMaxCqEntries) cq_wanted = kMaxCqEntries;
    const unsigned cq_entries = round_up_pow2(static_cast<std::uint32_t>(cq_wanted));
    if (int rc = create_uring(ring_, sq_entries, cq_entries, false, true, kWho, ring_flags_); rc < 0) return rc;
    ring_open_ = true;
    return 0;
}

TcpUringDriver::~TcpUringDriver() { shut_down(); }

void TcpUringDriver::shut_down() noexcept {
    shutting_down_ = true;
    const auto busy = [&] {
        std::uint32_t ops = 0;
        for (std::uint32_t slot = 0; slot < connections_.capacity(); ++slot) {
            ops += connections_.at(slot).ops_in_flight;
        }
        return ops > 0 || accept_armed_;
    };
    if (ring_open_ && enabled_ && busy()) {
        // Requests in flight may write into the connections' memory, which goes away with this object: cancel
        // them and wait (bounded) for their completions. On a thread other than the issuer the enter fails with
        // -EEXIST; closing the ring then cancels them in the kernel.
        for (std::uint32_t slot = 0; slot < connections_.capacity(); ++slot) {
            const SlotIo& io = io_[slot];
            if (io.recv_armed) cancel(Op::recv, slot);
            if (io.send_armed) cancel(Op::send, slot);
            if (io.connect_armed) cancel(Op::connect, slot);
        }
        if (accept_armed_) cancel(Op::accept, 0);
        const bool can_wait = io_uring_submit_and_get_events(&ring_) >= 0;
        reap();
        if (can_wait) wait_while_busy(ring_, [this] { reap(); }, busy);
    }
    if (io_) {
        for (std::uint32_t slot = 0; slot < connections_.capacity(); ++slot) close_fd(io_[slot].fd);
    }
    close_fd(listen_fd_);
    if (ring_open_) io_uring_queue_exit(&ring_);
    ring_open_ = false;
}

void TcpUringDriver::close_fd(int& fd) noexcept {
    if (fd < 0) return;
    ++stats_.syscalls;
    ::close(fd);
    fd = -1;
}

// ---- listen / connect / close ----

// TCP_NODELAY per the configuration, and with `buffers` the socket buffer sizes. 0 or a negative errno.
int TcpUringDriver::set_options(int fd, bool buffers) noexcept {
    if (config_.no_delay) {
        const int on = 1;
        if (::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &on, sizeof on) < 0) {
            const int err = errno;
            return fail(err, "%s: setsockopt(TCP_NODELAY) failed: %s", kWho, std::strerror(err));
        }
    }
    const int bytes = static_cast<int>(config_.socket_buffer_bytes);
    if (buffers && bytes > 0) {
        for (int option : {SO_RCVBUF, SO_SNDBUF}) {
            if (::setsockopt(fd, SOL_SOCKET, option, &bytes, sizeof bytes) < 0) {
                const int err = errno;
                return fail(err, "%s: setsockopt(%s, %d) failed: %s", kWho,
                            option == SO_RCVBUF ? "SO_RCVBUF" : "SO_SNDBUF", bytes, std::strerror(err));
            }
        }
    }
    return 0;
}

namespace {

int check_address(const PeerAddress& address, const char* what) noexcept {
    if (address.length == 0) return fail(EINVAL, "%s: the %s address is unset", kWho, what);
    const int family = address.addr.any.sa_family;
    if (family != AF_INET && family != AF_INET6) {
        return fail(EAFNOSUPPORT, "%s: the %s address has family %d (IPv4 or IPv6 only)", kWho, what, family);
    }
    return 0;
}

}  // namespace

int TcpUringDriver::listen(const PeerAddress& bind) noexcept {
    char text[64];
    if (listen_fd_ >= 0) {
        return fail(EALREADY, "%s: already listening on %s", kWho, local_.format(text, sizeof text));
    }
    if (int rc = check_address(bind, "listen"); rc < 0) return rc;
    int fd = ::socket(bind.addr.any.sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, IPPROTO_TCP);
    if (fd < 0) {
        const int err = errno;
        return fail(err, "%s: socket() failed: %s", kWho, std::strerror(err));
    }
    const auto failed = [&](const char* call) {
        const int err = errno;
        close_fd(fd);
        return fail(err, "%s: %s failed for %s: %s", kWho, call, bind.format(text, sizeof text), std::strerror(err));
    };
    const int on = 1;
    if (::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof on) < 0) return failed("setsockopt(SO_REUSEADDR)");
    // Accepted sockets inherit the buffer sizes, and the window scale they imply is settled in the handshake.
    if (int rc = set_options(fd, true); rc < 0) {
        close_fd(fd);
        return rc;
    }
    if (::bind(fd, &bind.addr.any, bind.length) < 0) return failed("bind");
    if (::listen(fd, static_cast<int>(config_.listen_backlog)) < 0) return failed("listen");
    PeerAddress local;
    local.length = sizeof local.addr;
    if (::getsockname(fd, &local.addr.any, &local.length) < 0) return failed("getsockname");
    local_ = local;
    listen_fd_ = fd;
    want_accept_ = true;   // the next polling call arms the accept
    return 0;
}

int TcpUringDriver::connect(const PeerAddress& peer) noexcept {
    if (int rc = check_address(peer, "peer"); rc < 0) return rc;
    const int slot = connections_.take_slot(-1, peer, StreamState::connecting);
    if (slot < 0) {
        return fail(ENOSPC, "%s: all %u connection slots are taken", kWho, connections_.capacity());
    }
    const auto index = static_cast<std::uint32_t>(slot);
    int fd = ::socket(peer.addr.any.sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, IPPROTO_TCP);
    int rc = 0;
    if (fd < 0) {
        const int err = errno;
        rc = fail(err, "%s: socket() failed: %s", kWho, std::strerror(err));
    } else {
        rc = set_options(fd, true);   // before connecting: the handshake settles the window scale
    }
    if (rc < 0) {
        close_fd(fd);
        connections_.free_slot(index);
        return rc;
    }
    connections_.at(index).fd = fd;
    start_slot(index, fd);
    want(index, &SlotIo::want_connect);
    return static_cast<int>(connections_.id_of(index));
}

// A new occupant's private state; the queue flags stay (see SlotIo).
void TcpUringDriver::start_slot(std::uint32_t slot, int fd) noexcept {
    SlotIo& io = io_[slot];
    io.fd = fd;
    io.tag = next_tag_++;
    if (next_tag_ == 0) next_tag_ = 1;
    io.connect_armed = io.recv_armed = io.send_armed = io.closing = io.ended = false;
    io.maybe_more = true;
    io.end_error = 0;
    io.want_connect = io.want_recv = io.want_send = false;
}

int TcpUringDriver::close(ConnectionId connection) noexcept {
    if (connections_.find(connection) == nullptr) {
        return fail(ENOENT, "%s: connection %u is not open", kWho, connection);
    }
    const std::uint32_t slot = connections_.slot_of(connection);
    stats_.tx_dropped_bytes += connections_.free_slot(slot);
    ++stats_.closed;
    retire(slot);
    // Hands the cancels to the kernel now, so the socket closes now rather than at the next poll (which also
    // submits them should this enter fail).
    if (enabled_ && io_uring_sq_ready(&ring_) > 0) {
        submit();
        reap();
    }
    return 0;
}

// Marks a connection closed (event queued) and lets go of its socket.
void TcpUringDriver::close_connection(std::uint32_t slot, int error) noexcept {
    stats_.tx_dropped_bytes += connections_.mark_closed(slot, error);
    ++stats_.closed;
    retire(slot);
}

// Closes the slot's socket now if no request uses it, else cancels its requests and leaves the close to the
// completion that leaves it with none (finish_op).
void TcpUringDriver::retire(std::uint32_t slot) noexcept {
    SlotIo& io = io_[slot];
    io.want_connect = io.want_recv = io.want_send = false;
    const StreamConnection& connection = connections_.at(slot);
    if (connection.ops_in_flight == 0) {
        close_fd(io.fd);
        connections_.at(slot).fd = -1;
        return;
    }
    io.closing = true;
    if (io.recv_armed) cancel(Op::recv, slot);
    if (io.send_armed) cancel(Op::send, slot);
    if (io.connect_armed) cancel(Op::connect, slot);
}

void TcpUringDriver::cancel(Op op, std::uint32_t slot) noexcept {
    const std::uint64_t target = op == Op::accept ? user_data(Op::accept) : user_data(op, io_[slot].tag, slot);
    if (io_uring_sqe* sqe = next_sqe()) {
        io_uring_prep_cancel64(sqe, target, 0);
        io_uring_sqe_set_data64(sqe, user_data(Op::cancel));
        return;
    }
    // No SQE even after submitting: shutting the socket down ends its receive (0) and send (-EPIPE) just as well.
    const int fd = op == Op::accept ? listen_fd_ : io_[slot].fd;
    if (fd >= 0) {
        ++stats_.syscalls;
        ::shutdown(fd, SHUT_RDWR);
    }
}

// ---- polling ----

// What every polling call does first: enable the ring (the first time, on this thread) and queue what is waiting.
int TcpUringDriver::begin_poll() noexcept {
    timeouts_.tick();
    if (!enabled_) [[unlikely]] {
        ++stats_.syscalls;
        if (int rc = enable_ring(ring_, kWho); rc < 0) return rc;
        enabled_ = true;
    }
    if (want_accept_ || pending_.size() > 0) [[unlikely]] issue_pending();
    reap();
    return 0;
}

// Enters the kernel when completions or SQEs wait there, and handles what came back.
int TcpUringDriver::progress() noexcept {
    if (!uring_should_enter(ring_, ring_flags_)) return 0;
    const int rc = submit();
    if (rc < 0 && rc != -EINTR && rc != -EAGAIN && rc != -EBUSY) [[unlikely]] {
        return fail(-rc, "%s: io_uring_enter failed: %s", kWho, std::strerror(-rc));
    }
    reap();
    return 0;
}

// One io_uring_enter: submits the queued SQEs and runs deferred completion work.
int TcpUringDriver::submit() noexcept {
    assert(enabled_);
    ++stats_.syscalls;
    return io_uring_submit_and_get_events(&ring_);
}

// An SQE; when the SQ is full, what it holds goes to the kernel first (only a burst over more connections than
// the SQ has entries gets there). nullptr when even that fails.
io_uring_sqe* TcpUringDriver::next_sqe() noexcept {
    if (io_uring_sqe* sqe = io_uring_get_sqe(&ring_)) [[likely]] return sqe;
    submit();
    return io_uring_get_sqe(&ring_);
}

void TcpUringDriver::want(std::uint32_t slot, bool SlotIo::*what) noexcept {
    SlotIo& io = io_[slot];
    io.*what = true;
    if (io.in_pending) return;
    io.in_pending = true;
    pending_.push(slot);
}

void TcpUringDriver::issue_pending() noexcept {
    if (want_accept_) arm_accept();
    for (std::uint32_t left = pending_.size(); left > 0; --left) {
        const std::uint32_t slot = pending_.front();
        pending_.pop();
        SlotIo& io = io_[slot];
        io.in_pending = false;
        // An arm that finds no SQE calls want() again, which queues the slot for the next call.
        if (std::exchange(io.want_connect, false)) arm_connect(slot);
        if (std::exchange(io.want_recv, false)) arm_receive(slot);
        if (std::exchange(io.want_send, false)) arm_send(slot);
    }
}

// Handles every CQE present, without a system call.
void TcpUringDriver::reap() noexcept {
    reap_cq(ring_, [this](const io_uring_cqe& cqe) { on_completion(cqe); });
}

void TcpUringDriver::on_completion(const io_uring_cqe& cqe) noexcept {
    const auto op = static_cast<Op>(cqe.user_data >> kOpShift);
    if (op == Op::accept) return on_accept(cqe);
    const auto slot = static_cast<std::uint32_t>(cqe.user_data & kSlotMask);
    if (op == Op::cancel || slot >= connections_.capacity()) return;
    // A completion of a previous occupant cannot arrive: a slot is reused only once its requests finished.
    assert(static_cast<std::uint32_t>(cqe.user_data >> kTagShift) == io_[slot].tag);
    switch (op) {
        case Op::recv:
            io_[slot].maybe_more = (cqe.flags & IORING_CQE_F_SOCK_NONEMPTY) != 0;
            on_receive(slot, cqe.res);
            break;
        case Op::send: on_send(slot, cqe.res); break;
        case Op::connect: on_connect(slot, cqe.res); break;
        default: return;
    }
    finish_op(slot);
}

void TcpUringDriver::finish_op(std::uint32_t slot) noexcept {
    connections_.op_finished(slot);
    SlotIo& io = io_[slot];
    if (io.closing && connections_.at(slot).ops_in_flight == 0) {
        io.closing = false;
        close_fd(io.fd);
        connections_.at(slot).fd = -1;
    }
}

// ---- requests ----

void TcpUringDriver::arm_accept() noexcept {
    want_accept_ = false;
    if (shutting_down_ || listen_fd_ < 0 || accept_armed_) return;
    io_uring_sqe* sqe = next_sqe();
    if (sqe == nullptr) {
        want_accept_ = true;
        return;
    }
    io_uring_prep_multishot_accept(sqe, listen_fd_, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
    io_uring_sqe_set_data64(sqe, user_data(Op::accept));
    accept_armed_ = true;
}

void TcpUringDriver::arm_connect(std::uint32_t slot) noexcept {
    StreamConnection& connection = connections_.at(slot);
    SlotIo& io = io_[slot];
    if (shutting_down_ || connection.state != StreamState::connecting || io.connect_armed) return;
    io_uring_sqe* sqe = next_sqe();
    if (sqe == nullptr) return want(slot, &SlotIo::want_connect);
    // The address lives in the slot, which stays put until the connect completes.
    io_uring_prep_connect(sqe, io.fd, &connection.peer.addr.any, connection.peer.length);
    io_uring_sqe_set_data64(sqe, user_data(Op::connect, io.tag, slot));
    io.connect_armed = true;
    ++connection.ops_in_flight;
}

void TcpUringDriver::arm_receive(std::uint32_t slot) noexcept {
    StreamConnection& connection = connections_.at(slot);
    SlotIo& io = io_[slot];
    if (shutting_down_ || connection.state != StreamState::open || io.recv_armed || io.ended) return;
    // Never 0 bytes (that reads as the peer's close): a full buffer waits for rx_burst to take frames.
    const iovec space = connections_.rx_space(connection);
    if (space.iov_len == 0) return;
    io_uring_sqe* sqe = next_sqe();
    if (sqe == nullptr) return want(slot, &SlotIo::want_recv);
    io_uring_prep_recv(sqe, io.fd, space.iov_base, space.iov_len, 0);
    // The socket was drained: wait for data without a receive attempt that would only fail. The re-armed receive
    // usually goes in with the reply's send, and that attempt would delay the send.
    if (!io.maybe_more) sqe->ioprio |= IORING_RECVSEND_POLL_FIRST;
    io_uring_sqe_set_data64(sqe, user_data(Op::recv, io.tag, slot));
    io.recv_armed = true;
    ++connection.ops_in_flight;
}

void TcpUringDriver::arm_send(std::uint32_t slot) noexcept {
    StreamConnection& connection = connections_.at(slot);
    SlotIo& io = io_[slot];
    if (shutting_down_ || connection.state != StreamState::open || io.send_armed || io.ended) return;
    const int spans = connections_.tx_spans(connection, io.spans);
    if (spans == 0) return;
    io_uring_sqe* sqe = next_sqe();
    if (sqe == nullptr) return want(slot, &SlotIo::want_send);
    io.message = msghdr{};
    io.message.msg_iov = io.spans;
    io.message.msg_iovlen = static_cast<std::size_t>(spans);
    io_uring_prep_sendmsg(sqe, io.fd, &io.message, MSG_NOSIGNAL);
    io_uring_sqe_set_data64(sqe, user_data(Op::send, io.tag, slot));
    const std::size_t bytes = io.spans[0].iov_len + (spans == 2 ? io.spans[1].iov_len : 0);
    connection.tx_in_flight = static_cast<std::uint32_t>(bytes);
    io.send_armed = true;
    ++connection.ops_in_flight;
}

void TcpUringDriver::on_accept(const io_uring_cqe& cqe) noexcept {
    if ((cqe.flags & IORING_CQE_F_MORE) == 0) {
        // The kernel ended the multishot accept (an error such as EMFILE, or our cancel): arm it again.
        accept_armed_ = false;
        want_accept_ = !shutting_down_ && listen_fd_ >= 0;
    }
    if (cqe.res < 0) return;
    if (shutting_down_) {
        int fd = cqe.res;
        close_fd(fd);
        return;
    }
    adopt(cqe.res);
}

// An accepted socket becomes a connection, or is closed at once when every slot is taken.
void TcpUringDriver::adopt(int fd) noexcept {
    const int slot = connections_.take_slot(fd, PeerAddress{}, StreamState::open);
    if (slot < 0) {
        ++stats_.refused_full;
        close_fd(fd);
        return;
    }
    const auto index = static_cast<std::uint32_t>(slot);
    StreamConnection& connection = connections_.at(index);
    timeouts_.start(connection);
    // The buffer sizes came from the listening socket; TCP_NODELAY is set here to be sure. Failing either leaves
    // a working (if slower) connection, so neither refuses it.
    set_options(fd, false);
    stats_.syscalls += config_.no_delay ? 2 : 1;   // with getpeername
    connection.peer.length = sizeof connection.peer.addr;
    if (::getpeername(fd, &connection.peer.addr.any, &connection.peer.length) < 0) connection.peer.length = 0;
    start_slot(index, fd);
    if (!connections_.push_event({StreamEventKind::accepted, connections_.id_of(index), 0, connection.peer})) {
        // Cannot happen (stream_connections.hpp); were it to, refusing the connection beats hiding it.
        ++stats_.refused_full;
        connections_.free_slot(index);
        close_fd(io_[index].fd);
        return;
    }
    ++stats_.accepted;
    arm_receive(index);
}

void TcpUringDriver::on_connect(std::uint32_t slot, int result) noexcept {
    StreamConnection& connection = connections_.at(slot);
    io_[slot].connect_armed = false;
    if (shutting_down_ || connection.state != StreamState::connecting) return;   // closed meanwhile
    // Kernels before 6.2 may finish a connect that went through poll with -EISCONN: connected all the same.
    if (result == 0 || result == -EISCONN) {
        connection.state = StreamState::open;
        if (!connections_.push_event({StreamEventKind::connected, connections_.id_of(slot), 0, connection.peer})) {
            // Cannot happen (stream_connections.hpp); were it to, connect()'s id still gets an answer.
            close_connection(slot, -ENOBUFS);
            return;
        }
        ++stats_.connected;
        arm_receive(slot);
        arm_send(slot);   // what tx_burst queued meanwhile
        return;
    }
    close_connection(slot, result);
}

void TcpUringDriver::on_receive(std::uint32_t slot, int result) noexcept {
    StreamConnection& connection = connections_.at(slot);
    io_[slot].recv_armed = false;
    if (shutting_down_ || connection.state != StreamState::open) return;   // closed meanwhile: the bytes go with it
    if (result > 0) {
        connections_.rx_filled(connection, static_cast<std::uint32_t>(result));
        timeouts_.received(connection);
        push_ready(slot);
        arm_receive(slot);   // the kernel fills the rest of the buffer while rx_burst cuts frames
    } else if (result == 0) {
        end_stream(slot, 0);   // the peer closed in order
    } else if (result == -EAGAIN || result == -EINTR) {
        arm_receive(slot);     // nothing was received: try again
    } else {
        end_stream(slot, result);
    }
}

void TcpUringDriver::on_send(std::uint32_t slot, int result) noexcept {
    StreamConnection& connection = connections_.at(slot);
    io_[slot].send_armed = false;
    connection.tx_in_flight = 0;
    if (shutting_down_ || connection.state != StreamState::open) return;   // closed meanwhile: ring emptied then
    if (result >= 0) {
        connections_.tx_consumed(connection, static_cast<std::uint32_t>(result));
        arm_send(slot);   // a short send is normal for TCP: the rest goes next
    } else if (result == -EAGAIN || result == -EINTR || result == -ENOBUFS) {
        arm_send(slot);
    } else {
        end_stream(slot, result);
    }
}

// ---- receive ----

void TcpUringDriver::push_ready(std::uint32_t slot) noexcept {
    SlotIo& io = io_[slot];
    if (io.in_ready) return;
    io.in_ready = true;
    ready_.push(slot);
}

// The peer closed (error 0) or the connection failed: nothing more is received. Frames already in the buffer are
// handed out first; rx_burst closes the connection when none is left (-ECONNABORTED instead of 0 when the peer
// closed inside a frame, as the socket driver does).
void TcpUringDriver::end_stream(std::uint32_t slot, int error) noexcept {
    SlotIo& io = io_[slot];
    if (io.ended) return;   // the first reason is the one reported
    io.ended = true;
    io.end_error = error;
    const StreamConnection& connection = connections_.at(slot);
    if (connection.rx_tail != connection.rx_head) {
        push_ready(slot);
        return;
    }
    close_connection(slot, error);
}

// Whole frames round-robin over the connections that received bytes: one frame from each in turn.
std::uint32_t TcpUringDriver::cut_frames(PacketBuffer** out, std::uint32_t max) noexcept {
    std::uint32_t count = 0;
    while (count < max && ready_.size() > 0) {
        const std::uint32_t slot = ready_.front();
        StreamConnection& connection = connections_.at(slot);
        SlotIo& io = io_[slot];
        if (connection.state != StreamState::open) {   // closed since it received
            ready_.pop();
            io.in_ready = false;
            continue;
        }
        PacketBuffer* buffer = nullptr;
        const FrameStatus status = connections_.next_frame(connection, *pool_, buffer);
        if (status == FrameStatus::no_buffer) {   // the pool is empty: this connection stays first in line
            ++stats_.rx_no_buffer;
            break;
        }
        ready_.pop();
        if (status == FrameStatus::frame) {
            buffer->connection = connections_.id_of(slot);
            buffer->peer = connection.peer;
            ++stats_.rx_frames;
            stats_.rx_bytes += buffer->length;
            out[count++] = buffer;
            ready_.push(slot);   // to the back: the others' turn
            continue;
        }
        io.in_ready = false;
        if (status == FrameStatus::bad_length) {
            // Past a length nobody can receive, nothing in the stream can be trusted.
            ++stats_.protocol_errors;
            close_connection(slot, -EPROTO);
        } else if (io.ended) {
            // Every whole frame is out: now the close. An orderly close inside a frame lost that frame's tail.
            const bool inside_frame = connection.rx_tail != connection.rx_head;
            close_connection(slot, io.end_error == 0 && inside_frame ? -ECONNABORTED : io.end_error);
        } else {
            arm_receive(slot);   // it may have waited for room
        }
    }
    if (count > 0) {
        const Instant now = config_.clock != nullptr ? config_.clock->now() : Instant{};
        for (std::uint32_t i = 0; i < count; ++i) out[i]->rx_time = now;
    }
    return count;
}

int TcpUringDriver::rx_burst(PacketBuffer** out, std::uint32_t max) noexcept {
    if (max == 0) return 0;
    if (int rc = begin_poll(); rc < 0) [[unlikely]] return rc;
    if (int rc = progress(); rc < 0) [[unlikely]] return rc;
    return static_cast<int>(cut_frames(out, max));
}

// ---- transmit ----

// A buffer of this pool that the caller owns.
bool TcpUringDriver::sendable(const PacketBuffer* packet) const noexcept {
    return packet != nullptr && pool_->owns(packet) && (packet->flags & kInPool) == 0;
}

int TcpUringDriver::tx_burst(PacketBuffer* const* packets, std::uint32_t count) noexcept {
    if (count == 0) return 0;
    if (int rc = begin_poll(); rc < 0) [[unlikely]] return rc;
    const std::uint32_t buffer_bytes = pool_->buffer_bytes();
    std::uint32_t accepted = 0;
    for (; accepted < count; ++accepted) {
        PacketBuffer* packet = packets[accepted];
        if (!sendable(packet)) [[unlikely]] {
            if (accepted > 0) break;   // send the valid prefix; the next call reports this one
            return fail(EINVAL, "%s: tx_burst got a buffer that is not the caller's buffer of this driver's pool",
                        kWho);
        }
        StreamConnection* connection = connections_.find(packet->connection);
        const std::byte* start = pool_->base() + std::size_t{packet->index} * buffer_bytes;
        const bool inside = packet->data >= start && packet->data <= start + buffer_bytes &&
                            packet->length <= buffer_bytes - static_cast<std::uint32_t>(packet->data - start);
        if (connection == nullptr || !inside || packet->length > max_frame_) [[unlikely]] {
            ++stats_.tx_refused;
            pool_->release(packet);
            continue;
        }
        if (!connections_.append_frame(*connection, packet->data, packet->length)) break;   // ring full
        ++stats_.tx_frames;
        stats_.tx_bytes += packet->length;
        const std::uint32_t slot = connections_.slot_of(packet->connection);
        if (!io_[slot].touched) {
            io_[slot].touched = true;
            touched_.push(slot);
        }
        pool_->release(packet);
    }
    while (touched_.size() > 0) {
        const std::uint32_t slot = touched_.front();
        touched_.pop();
        io_[slot].touched = false;
        arm_send(slot);   // not while connecting: the connect's completion sends
    }
    if (io_uring_sq_ready(&ring_) > 0) {
        // The frames are accepted once they are in the send rings: if this enter fails transiently, the next
        // polling call submits the sends.
        const int rc = submit();
        if (rc < 0 && rc != -EINTR && rc != -EAGAIN && rc != -EBUSY) [[unlikely]] {
            fail(-rc, "%s: io_uring_enter for a burst of %u frames failed: %s (the sends stay queued)", kWho,
                 accepted, std::strerror(-rc));
        }
        reap();
    }
    return static_cast<int>(accepted);
}

// ---- events and completions ----

int TcpUringDriver::poll_events(StreamEvent* out, std::uint32_t max) noexcept {
    if (int rc = begin_poll(); rc < 0) [[unlikely]] return rc;
    if (int rc = progress(); rc < 0) [[unlikely]] return rc;
    expire_overdue();
    return static_cast<int>(connections_.pop_events(out, max));
}

void TcpUringDriver::expire_overdue() noexcept {
    bool closed = false;
    timeouts_.sweep(connections_, [&](std::uint32_t slot, int reason) {
        if (io_[slot].ended) return;   // the peer closed or failed first: cut_frames closes it with that reason
        StreamTimeouts::count(reason, stats_);
        close_connection(slot, reason);
        closed = true;
    });
    // The cancels go in now, so the peer sees the close now rather than at the next polling call.
    if (closed && io_uring_sq_ready(&ring_) > 0) {
        submit();
        reap();
    }
}

int TcpUringDriver::poll_completions() noexcept {
    if (int rc = begin_poll(); rc < 0) [[unlikely]] return rc;
    return progress();
}

std::uint32_t TcpUringDriver::tx_pending(ConnectionId connection) const noexcept {
    const StreamConnection* found = connections_.find(connection);
    return found != nullptr ? connections_.tx_pending(*found) : 0;
}

}  // namespace

int open_tcp_uring(const TcpConfig& config, std::unique_ptr<StreamDriver>& out) noexcept {
    out.reset();
    const UringProbe& probe = uring_probe();
    if (probe.status < 0) return fail(-probe.status, "%s", probe.why);
    if (!probe.socket_op) {
        return fail(EOPNOTSUPP, "this kernel's io_uring lacks multishot accept and cancel-all (needs Linux 5.19)");
    }
    std::unique_ptr<TcpUringDriver> driver(new (std::nothrow) TcpUringDriver());
    if (!driver) return fail(ENOMEM, "%s: no memory for the driver", kWho);
    if (int rc = driver->open(config); rc < 0) return rc;   // ~TcpUringDriver undoes the rest
    out = std::move(driver);
    return 0;
}

}  // namespace cf::drivers
