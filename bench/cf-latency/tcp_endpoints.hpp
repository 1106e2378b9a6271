// The TCP contenders of the tcp scenario, with the interface of the UDP ones (udp_endpoints.hpp) so that the same
// measuring loops (net_measure.hpp) run them. An endpoint is one side of one loopback connection used by one
// thread: the listening side is opened first, the connecting side is opened with its address, and each side's
// ready() finishes the handshake on the thread that then uses it (our io_uring driver's ring belongs to the first
// thread that polls it). A message is a frame of N bytes (a 4-byte little-endian length, then N bytes whose first
// 16 carry the sender's stamp and sequence); `to` in send() is ignored: the connection says where.
//   - StreamDriverEndpoint: our stream drivers (io_uring or socket) through the burst interface.
//   - PlainTcpEndpoint:     the kernel's socket calls as an application would write them without us: non-blocking,
//                           TCP_NODELAY, busy-polled send/recv, the framing done by hand (one send per message, a
//                           receive buffer the frames are cut from).
// Every endpoint counts the system calls of its data path (not the set-up and handshake), as the drivers do.
#pragma once

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <string>

#include "bench/cf-latency/udp_endpoints.hpp"
#include "drivers/stream_driver.hpp"
#include "engine/wire/little_endian.hpp"
#include "platform/os/last_error.hpp"

namespace cf::latency {

inline constexpr std::uint32_t kTcpBurst = 32;

// How long ready() waits for the handshake: on loopback it takes microseconds, so this only bounds a failure.
inline constexpr int kTcpHandshakeTimeoutMs = 2000;

template <std::size_t N>
class StreamDriverEndpoint {
public:
    // Without `listener`, listens on 127.0.0.1:0 (address() says where); with it, connects there. 0, or a negative
    // errno with `error` saying why (e.g. io_uring unavailable).
    int open(drivers::DriverKind kind, const drivers::PeerAddress* listener, std::string& error) {
        drivers::TcpConfig config;
        config.pool.count = 1024;
        config.pool.buffer_bytes = 2048;
        config.max_connections = 2;
        int rc = drivers::open_tcp(kind, config, driver_);
        if (rc == 0 && listener == nullptr) {
            drivers::PeerAddress bind;
            (void)drivers::PeerAddress::parse("127.0.0.1:0", bind);
            rc = driver_->listen(bind);
        } else if (rc == 0) {
            rc = driver_->connect(*listener);
            rc = rc > 0 ? 0 : rc;
        }
        if (rc != 0) error = platform::last_error_message();
        return rc;
    }
    const drivers::PeerAddress& address() const noexcept { return driver_->local_address(); }
    std::uint64_t syscalls() const noexcept { return driver_->stats().syscalls; }
    const std::string& failure() const noexcept { return failure_; }

    // Polls events until this side's connection is up (accepted or connected), on the thread that uses the
    // endpoint from now on. False, with failure() saying why, if it closed or did not come up in time.
    bool ready() {
        const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(kTcpHandshakeTimeoutMs);
        drivers::StreamEvent events[4];
        while (connection_ == 0) {
            const int got = driver_->poll_events(events, 4);
            if (got < 0) {
                failure_ = platform::last_error_message();
                return false;
            }
            for (int i = 0; i < got; ++i) {
                if (events[i].kind == drivers::StreamEventKind::closed) {
                    failure_ = std::string("the connection closed during the handshake: ") +
                               std::strerror(-events[i].error);
                    return false;
                }
                connection_ = events[i].connection;
            }
            if (connection_ == 0 && std::chrono::steady_clock::now() > deadline) {
                failure_ = "no connection after " + std::to_string(kTcpHandshakeTimeoutMs) + " ms";
                return false;
            }
        }
        return true;
    }

    bool send(const drivers::PeerAddress& to, std::uint64_t stamp, std::uint64_t sequence) noexcept {
        (void)to;
        drivers::PacketBuffer* buffer = take_buffer();
        if (buffer == nullptr) return false;
        fill(buffer, stamp, sequence);
        if (send_or_release(*driver_, &buffer, 1) == 1) return true;
        (void)driver_->poll_completions();   // the send ring is full: let the kernel take some of it
        return false;
    }

    // kTcpBurst frames with sequences first, first + 1, ... in one tx_burst; returns how many the driver took.
    std::uint32_t send_burst(const drivers::PeerAddress& to, std::uint64_t first) noexcept {
        (void)to;
        drivers::PacketBuffer* burst[kTcpBurst];
        std::uint32_t count = 0;
        while (count < kTcpBurst) {
            drivers::PacketBuffer* buffer = take_buffer();
            if (buffer == nullptr) break;
            fill(buffer, 0, first + count);
            burst[count++] = buffer;
        }
        const std::uint32_t accepted = send_or_release(*driver_, burst, count);
        // A full send ring empties only as the kernel's completions are reaped: the io_uring driver reaps them
        // when polled, and a sender that only calls tx_burst would otherwise wait forever.
        if (accepted < count) (void)driver_->poll_completions();
        return accepted;
    }

    bool receive(std::uint64_t& stamp, std::uint64_t& sequence) noexcept {
        if (next_ == count_) {
            const int got = driver_->rx_burst(pending_, kTcpBurst);
            if (got <= 0) return false;
            count_ = static_cast<std::uint32_t>(got);
            next_ = 0;
        }
        drivers::PacketBuffer* buffer = pending_[next_++];
        const bool whole = buffer->length == N;
        if (whole) read_udp_message(buffer->data, stamp, sequence);
        driver_->release(buffer);
        return whole;
    }

private:
    drivers::PacketBuffer* take_buffer() noexcept {
        drivers::PacketBuffer* buffer = driver_->allocate();
        if (buffer == nullptr) {   // every buffer out (tx_burst returns them at once, so only in a leak)
            (void)driver_->poll_completions();
            buffer = driver_->allocate();
        }
        return buffer;
    }
    void fill(drivers::PacketBuffer* buffer, std::uint64_t stamp, std::uint64_t sequence) const noexcept {
        std::memset(buffer->data + 16, 0x5a, N - 16);
        write_udp_message<N>(buffer->data, stamp, sequence);
        buffer->length = static_cast<std::uint32_t>(N);
        buffer->connection = connection_;
    }

    std::unique_ptr<drivers::StreamDriver> driver_;
    drivers::ConnectionId connection_ = 0;   // 0 until ready()
    drivers::PacketBuffer* pending_[kTcpBurst] = {};
    std::uint32_t count_ = 0, next_ = 0;
    std::string failure_;
};

template <std::size_t N>
class PlainTcpEndpoint {
public:
    PlainTcpEndpoint() = default;
    PlainTcpEndpoint(const PlainTcpEndpoint&) = delete;
    PlainTcpEndpoint& operator=(const PlainTcpEndpoint&) = delete;
    ~PlainTcpEndpoint() {
        if (fd_ >= 0) close(fd_);
        if (listen_fd_ >= 0) close(listen_fd_);
    }

    // Without `listener`, listens on 127.0.0.1:0 (address() says where); with it, starts connecting there.
    int open(const drivers::PeerAddress* listener, std::string& error) {
        const int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        const int on = 1;
        bool done = fd >= 0;
        if (listener == nullptr) {
            listen_fd_ = fd;
            (void)drivers::PeerAddress::parse("127.0.0.1:0", address_);
            done = done && bind(fd, &address_.addr.any, address_.length) == 0 && ::listen(fd, 1) == 0 &&
                   getsockname(fd, &address_.addr.any, &address_.length) == 0;
        } else {
            fd_ = fd;
            address_ = *listener;
            // Set before connecting, as our drivers do; connect() of a non-blocking socket says EINPROGRESS.
            done = done && setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &on, sizeof on) == 0 &&
                   (connect(fd, &listener->addr.any, listener->length) == 0 || errno == EINPROGRESS);
        }
        if (!done) {
            error = std::string("plain TCP socket: ") + std::strerror(errno);
            return -errno;
        }
        write_prefix();
        std::memset(outgoing_ + drivers::kFramePrefixBytes + 16, 0x5a, N - 16);
        return 0;
    }
    // The listening side's address (the connecting side's: its peer's).
    const drivers::PeerAddress& address() const noexcept { return address_; }
    std::uint64_t syscalls() const noexcept { return syscalls_; }
    const std::string& failure() const noexcept { return failure_; }

    // Accepts the connection (listening side) or waits for connect() to finish, sleeping in poll(): set-up, not
    // measured. False, with failure() saying why, if that fails or takes longer than the handshake timeout.
    bool ready() {
        const bool listening = listen_fd_ >= 0;
        pollfd wait{listening ? listen_fd_ : fd_, static_cast<short>(listening ? POLLIN : POLLOUT), 0};
        const int got = poll(&wait, 1, kTcpHandshakeTimeoutMs);
        if (got <= 0) {
            failure_ = got == 0 ? "no connection after " + std::to_string(kTcpHandshakeTimeoutMs) + " ms"
                                : std::string("poll: ") + std::strerror(errno);
            return false;
        }
        if (listening) {
            const int on = 1;
            fd_ = accept4(listen_fd_, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
            if (fd_ < 0 || setsockopt(fd_, IPPROTO_TCP, TCP_NODELAY, &on, sizeof on) != 0) {
                failure_ = std::string("accept: ") + std::strerror(errno);
                return false;
            }
            return true;
        }
        int error = 0;
        socklen_t length = sizeof error;
        if (getsockopt(fd_, SOL_SOCKET, SO_ERROR, &error, &length) != 0) error = errno;
        if (error != 0) failure_ = std::string("connect: ") + std::strerror(error);
        return error == 0;
    }

    // One send() per message. A frame the kernel took only in part is finished first by the next call, which
    // takes its own message only once that is done (the stream must not interleave frames).
    bool send(const drivers::PeerAddress& to, std::uint64_t stamp, std::uint64_t sequence) noexcept {
        (void)to;
        if (!finish_partial()) return false;
        write_udp_message<N>(outgoing_ + drivers::kFramePrefixBytes, stamp, sequence);
        ++syscalls_;
        const ssize_t sent = ::send(fd_, outgoing_, sizeof outgoing_, MSG_DONTWAIT | MSG_NOSIGNAL);
        if (sent <= 0) return false;
        sent_ = static_cast<std::size_t>(sent);
        return true;
    }

    // What an application without us does with a burst: one send() per message, up to kTcpBurst.
    std::uint32_t send_burst(const drivers::PeerAddress& to, std::uint64_t first) noexcept {
        std::uint32_t sent = 0;
        while (sent < kTcpBurst && send(to, 0, first + sent)) ++sent;
        return sent;
    }

    // One frame from the receive buffer; one recv() when it holds no whole frame.
    bool receive(std::uint64_t& stamp, std::uint64_t& sequence) noexcept {
        if (!whole_frame()) {
            // The leftover is less than a frame: moving it to the front keeps room for a full read.
            const std::size_t left = tail_ - head_;
            if (head_ != 0) std::memmove(incoming_, incoming_ + head_, left);
            head_ = 0;
            tail_ = left;
            ++syscalls_;
            const ssize_t got = recv(fd_, incoming_ + tail_, sizeof incoming_ - tail_, MSG_DONTWAIT);
            if (got <= 0) return false;
            tail_ += static_cast<std::size_t>(got);
            if (!whole_frame()) return false;
        }
        const std::uint32_t length = frame_length();
        const std::byte* payload = incoming_ + head_ + drivers::kFramePrefixBytes;
        head_ += drivers::kFramePrefixBytes + length;
        if (length != N) return false;
        read_udp_message(payload, stamp, sequence);
        return true;
    }

private:
    static constexpr std::size_t kFrameBytes = drivers::kFramePrefixBytes + N;
    // What an application would read into; the frames here are never longer than N, which must fit.
    static constexpr std::size_t kReceiveBytes = 64 << 10;
    static_assert(kFrameBytes <= kReceiveBytes);

    void write_prefix() noexcept {
        wire::store_le<std::uint32_t>(outgoing_, static_cast<std::uint32_t>(N));   // the drivers' length prefix
    }
    std::uint32_t frame_length() const noexcept {
        return wire::load_le<std::uint32_t>(incoming_ + head_);
    }
    // A frame longer than the buffer cannot come from the other endpoint; its length is never read as whole.
    bool whole_frame() const noexcept {
        const std::size_t available = tail_ - head_;
        return available >= drivers::kFramePrefixBytes &&
               available - drivers::kFramePrefixBytes >= frame_length();
    }
    bool finish_partial() noexcept {
        if (sent_ == kFrameBytes) return true;
        ++syscalls_;
        const ssize_t sent = ::send(fd_, outgoing_ + sent_, kFrameBytes - sent_, MSG_DONTWAIT | MSG_NOSIGNAL);
        if (sent > 0) sent_ += static_cast<std::size_t>(sent);
        return sent_ == kFrameBytes;
    }

    int fd_ = -1, listen_fd_ = -1;
    drivers::PeerAddress address_;
    std::uint64_t syscalls_ = 0;
    std::size_t sent_ = kFrameBytes;    // bytes of outgoing_ the kernel has: all, unless a send was partial
    std::size_t head_ = 0, tail_ = 0;   // the unread bytes of incoming_
    std::string failure_;
    alignas(64) std::byte outgoing_[kFrameBytes];
    alignas(64) std::byte incoming_[kReceiveBytes];
};

}  // namespace cf::latency
