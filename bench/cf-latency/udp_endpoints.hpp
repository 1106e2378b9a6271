// The UDP contenders of the udp and udp-throughput scenarios, behind one small interface so the measuring loops
// (net_measure.hpp) are the same code for all of them. An endpoint is one bound socket (or driver) used by one
// thread; a message is N bytes whose first 16 carry the sender's stamp and sequence.
//   - DriverEndpoint: our drivers (io_uring or socket) through the burst interface, reading in place.
//   - PlainEndpoint:  the kernel's socket calls as an application would write them without us: sendto/recvfrom,
//                     non-blocking and busy-polled, or blocking (recvfrom sleeps until a datagram arrives; a 20 ms
//                     receive timeout lets the loops notice the end of a run).
// Every endpoint counts the system calls it makes, so the scenarios can report calls per message.
#pragma once

#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstring>
#include <memory>
#include <string>

#include "drivers/datagram_driver.hpp"
#include "platform/os/last_error.hpp"

namespace cf::latency {

inline constexpr std::uint32_t kUdpBurst = 32;

template <std::size_t N>
void write_udp_message(std::byte* data, std::uint64_t stamp, std::uint64_t sequence) noexcept {
    static_assert(N >= 16);
    std::memcpy(data, &stamp, 8);
    std::memcpy(data + 8, &sequence, 8);
}

inline void read_udp_message(const std::byte* data, std::uint64_t& stamp, std::uint64_t& sequence) noexcept {
    std::memcpy(&stamp, data, 8);
    std::memcpy(&sequence, data + 8, 8);
}

// Sends burst[0..count) through one of our drivers (datagram or stream) and gives back to its pool what it did not
// take; returns how many it took.
template <class Driver>
std::uint32_t send_or_release(Driver& driver, drivers::PacketBuffer* const* burst, std::uint32_t count) noexcept {
    const int sent = count == 0 ? 0 : driver.tx_burst(burst, count);
    const std::uint32_t accepted = sent > 0 ? static_cast<std::uint32_t>(sent) : 0;
    for (std::uint32_t i = accepted; i < count; ++i) driver.release(burst[i]);
    return accepted;
}

template <std::size_t N>
class DriverEndpoint {
public:
    // 0, or a negative errno with `error` saying why (e.g. io_uring unavailable). With `gso`, send_burst packs a
    // whole burst into one buffer that the kernel cuts into datagrams (UDP_SEGMENT): one trip through the stack.
    int open(drivers::DriverKind kind, bool gso, std::string& error) {
        drivers::UdpConfig config;
        (void)drivers::PeerAddress::parse("127.0.0.1:0", config.bind);
        config.pool.count = 1024;
        config.pool.buffer_bytes = 2048;
        config.gso = gso;
        config.gro = gso;   // the receiving side of a GSO run takes coalesced datagrams where the driver can
        if (gso) config.pool.buffer_bytes = 65536;   // room for what GRO coalesces (up to 64 KiB)
        gso_ = gso;
        config.rx_posted = 256;
        config.zerocopy_min_bytes = 0;   // messages of at most 1 KiB: copying is cheaper than notifications
        if (int rc = drivers::open_udp(kind, config, driver_); rc != 0) {
            error = platform::last_error_message();
            return rc;
        }
        return 0;
    }
    const drivers::PeerAddress& address() const noexcept { return driver_->local_address(); }
    std::uint64_t syscalls() const noexcept { return driver_->stats().syscalls; }

    bool send(const drivers::PeerAddress& to, std::uint64_t stamp, std::uint64_t sequence) noexcept {
        drivers::PacketBuffer* buffer = take_buffer();
        if (buffer == nullptr) return false;
        fill(buffer, to, stamp, sequence, 1);
        return send_one(buffer);
    }

    // Up to kUdpBurst messages with sequences first, first + 1, ...; returns how many the driver took.
    std::uint32_t send_burst(const drivers::PeerAddress& to, std::uint64_t first) noexcept {
        if (gso_) {
            drivers::PacketBuffer* buffer = take_buffer();
            if (buffer == nullptr) return 0;
            fill(buffer, to, 0, first, kUdpBurst);
            return send_one(buffer) ? kUdpBurst : 0;
        }
        drivers::PacketBuffer* burst[kUdpBurst];
        std::uint32_t count = 0;
        while (count < kUdpBurst) {
            drivers::PacketBuffer* buffer = take_buffer();
            if (buffer == nullptr) break;
            fill(buffer, to, 0, first + count, 1);
            burst[count++] = buffer;
        }
        return send_or_release(*driver_, burst, count);
    }

    // One message; a GRO buffer (segment_size set) yields its datagrams one by one.
    bool receive(std::uint64_t& stamp, std::uint64_t& sequence) noexcept {
        if (next_ == count_) {
            const int got = driver_->rx_burst(pending_, kUdpBurst);
            if (got <= 0) return false;
            count_ = static_cast<std::uint32_t>(got);
            next_ = 0;
            offset_ = 0;
        }
        drivers::PacketBuffer* buffer = pending_[next_];
        const std::uint32_t step = buffer->segment_size != 0 ? buffer->segment_size : buffer->length;
        const bool whole = step == N && buffer->length - offset_ >= N;
        if (whole) read_udp_message(buffer->data + offset_, stamp, sequence);
        offset_ += step;
        if (!whole || offset_ >= buffer->length) {
            driver_->release(buffer);
            ++next_;
            offset_ = 0;
        }
        return whole;
    }

private:
    drivers::PacketBuffer* take_buffer() noexcept {
        drivers::PacketBuffer* buffer = driver_->allocate();
        if (buffer == nullptr) {   // every buffer in flight: reap finished sends and try once more
            (void)driver_->poll_completions();
            buffer = driver_->allocate();
        }
        return buffer;
    }
    // `count` messages back to back, sequences first, first + 1, ...; more than one leave as GSO segments.
    static void fill(drivers::PacketBuffer* buffer, const drivers::PeerAddress& to, std::uint64_t stamp,
                     std::uint64_t first, std::uint32_t count) noexcept {
        for (std::uint32_t i = 0; i < count; ++i) {
            std::memset(buffer->data + i * N + 16, 0x5a, N - 16);
            write_udp_message<N>(buffer->data + i * N, stamp, first + i);
        }
        buffer->length = static_cast<std::uint32_t>(N * count);
        buffer->segment_size = count > 1 ? static_cast<std::uint16_t>(N) : 0;
        buffer->peer = to;
    }
    bool send_one(drivers::PacketBuffer* buffer) noexcept { return send_or_release(*driver_, &buffer, 1) == 1; }

    std::unique_ptr<drivers::DatagramDriver> driver_;
    drivers::PacketBuffer* pending_[kUdpBurst] = {};
    std::uint32_t count_ = 0, next_ = 0, offset_ = 0;   // offset_: into pending_[next_], for GRO buffers
    bool gso_ = false;
};

template <std::size_t N, bool kBlocking>
class PlainEndpoint {
public:
    PlainEndpoint() = default;
    PlainEndpoint(const PlainEndpoint&) = delete;
    PlainEndpoint& operator=(const PlainEndpoint&) = delete;
    ~PlainEndpoint() {
        if (fd_ >= 0) close(fd_);
    }

    int open(std::string& error) {
        fd_ = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC | (kBlocking ? 0 : SOCK_NONBLOCK), 0);
        (void)drivers::PeerAddress::parse("127.0.0.1:0", address_);
        const int buffer_bytes = 4 << 20;
        const timeval timeout{0, 20000};
        if (fd_ < 0 || bind(fd_, &address_.addr.any, address_.length) != 0 ||
            setsockopt(fd_, SOL_SOCKET, SO_RCVBUF, &buffer_bytes, sizeof buffer_bytes) != 0 ||
            setsockopt(fd_, SOL_SOCKET, SO_SNDBUF, &buffer_bytes, sizeof buffer_bytes) != 0 ||
            (kBlocking && setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout) != 0) ||
            getsockname(fd_, &address_.addr.any, &address_.length) != 0) {
            error = std::string("plain UDP socket: ") + std::strerror(errno);
            return -errno;
        }
        std::memset(outgoing_, 0x5a, sizeof outgoing_);
        return 0;
    }
    const drivers::PeerAddress& address() const noexcept { return address_; }
    std::uint64_t syscalls() const noexcept { return syscalls_; }

    bool send(const drivers::PeerAddress& to, std::uint64_t stamp, std::uint64_t sequence) noexcept {
        write_udp_message<N>(outgoing_, stamp, sequence);
        ++syscalls_;
        return sendto(fd_, outgoing_, N, kBlocking ? 0 : MSG_DONTWAIT, &to.addr.any, to.length) ==
               static_cast<ssize_t>(N);
    }

    std::uint32_t send_burst(const drivers::PeerAddress& to, std::uint64_t first) noexcept {
        std::uint32_t sent = 0;
        while (sent < kUdpBurst && send(to, 0, first + sent)) ++sent;
        return sent;
    }

    bool receive(std::uint64_t& stamp, std::uint64_t& sequence) noexcept {
        ++syscalls_;
        if (recv(fd_, incoming_, sizeof incoming_, kBlocking ? 0 : MSG_DONTWAIT) != static_cast<ssize_t>(N)) {
            return false;
        }
        read_udp_message(incoming_, stamp, sequence);
        return true;
    }

private:
    int fd_ = -1;
    drivers::PeerAddress address_;
    std::uint64_t syscalls_ = 0;
    alignas(64) std::byte outgoing_[N];
    alignas(64) std::byte incoming_[N + 64];
};

}  // namespace cf::latency
