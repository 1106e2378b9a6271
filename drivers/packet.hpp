// Packet buffers: the unit every driver receives into and sends from. A driver owns one PacketPool, carved once at
// start-up from one pre-faulted region (so io_uring can register it and DPDK-style code can index it); nothing
// is allocated per packet.
//
// Ownership (the rules every driver and caller follow):
//   - A buffer is in exactly one place: the pool's free list, the driver (posted for receive, or queued/in flight
//     for transmit), or the caller.
//   - rx_burst() hands buffers to the caller. The caller reads them in place and gives each back with
//     release() (to the pool it came from) or passes it on to tx_burst().
//   - allocate() hands a free buffer to the caller; the caller fills data/length/peer and either sends it with
//     tx_burst() or release()s it.
//   - tx_burst() takes ownership of the buffers it accepts (a prefix of the array); the driver returns them to the
//     pool once the kernel no longer needs the bytes (for zero-copy sends: after the notification completion).
//     Buffers it did not accept stay the caller's.
// A pool belongs to one thread (the shard that polls the driver): no method is thread-safe.
#pragma once

#include <netinet/in.h>
#include <sys/socket.h>

#include <cstddef>
#include <cstdint>
#include <memory>

#include "engine/time/instant.hpp"
#include "platform/os/memory.hpp"

namespace cf::drivers {

// An IPv4 or IPv6 endpoint as the kernel's sockaddr.
struct PeerAddress {
    union {
        sockaddr any;
        sockaddr_in v4;
        sockaddr_in6 v6;
    } addr{};
    socklen_t length = 0;   // 0: unset

    // "1.2.3.4:5000", "[::1]:5000", "localhost:5000" is not accepted (numeric only: no resolver on any path).
    // 0, or -EINVAL with last_error_message() naming what is wrong.
    static int parse(const char* text, PeerAddress& out) noexcept;
    // "1.2.3.4:5000" / "[::1]:5000" into `out` (at least 64 bytes). Returns `out`.
    const char* format(char* out, std::size_t size) const noexcept;
    std::uint16_t port() const noexcept;
    bool operator==(const PeerAddress& other) const noexcept;   // family, address and port
};

struct PacketBuffer {
    std::byte* data = nullptr;     // the payload's first byte; `capacity` bytes are writable from here
    std::uint32_t length = 0;      // payload bytes
    std::uint32_t capacity = 0;
    PeerAddress peer;              // rx: the sender; tx: the destination
    Instant rx_time;               // rx: when the driver harvested the burst (one clock read per burst)
    std::uint32_t index = 0;       // this buffer's slot in its pool
    std::uint32_t connection = 0;  // stream drivers (stream_driver.hpp): the connection a frame came on / goes to
    std::uint16_t segment_size = 0;   // rx with GRO: the size of the coalesced datagrams (0: one datagram)
    std::uint16_t flags = 0;       // kInPool while free; other bits driver-private
};

inline constexpr std::uint16_t kInPool = 0x8000;

class PacketPool {
public:
    struct Config {
        std::uint32_t count = 4096;          // buffers
        std::uint32_t buffer_bytes = 2048;   // payload capacity of each (rounded up to 64)
        bool prefer_hugepages = true;
    };

    // Maps and pre-faults count * buffer_bytes of payload memory plus the descriptors. 0, or -EINVAL (count or
    // buffer_bytes 0, or too large) / -ENOMEM, with last_error_message() saying which.
    static int create(const Config& config, std::unique_ptr<PacketPool>& out) noexcept;
    ~PacketPool();
    PacketPool(const PacketPool&) = delete;
    PacketPool& operator=(const PacketPool&) = delete;

    // A free buffer (length 0, peer unset), or nullptr when every buffer is out.
    PacketBuffer* allocate() noexcept {
        if (free_top_ == 0) [[unlikely]] return nullptr;
        PacketBuffer* buffer = &buffers_[free_[--free_top_]];
        buffer->data = base() + std::size_t{buffer->index} * buffer_bytes_;   // a driver may have moved them
        buffer->capacity = buffer_bytes_;
        buffer->length = 0;
        buffer->peer.length = 0;
        buffer->segment_size = 0;
        buffer->connection = 0;
        buffer->flags = 0;
        return buffer;
    }
    // Gives a buffer back. A buffer from another pool, or one already free, is refused and counted in
    // misuse_count() instead of corrupting the free list.
    void release(PacketBuffer* buffer) noexcept {
        if (!owns(buffer) || (buffer->flags & kInPool) != 0) [[unlikely]] {
            ++misuse_;
            return;
        }
        buffer->flags = kInPool;
        free_[free_top_++] = buffer->index;
    }
    std::uint64_t misuse_count() const noexcept { return misuse_; }

    std::uint32_t count() const noexcept { return count_; }
    std::uint32_t available() const noexcept { return free_top_; }
    std::uint32_t buffer_bytes() const noexcept { return buffer_bytes_; }
    PacketBuffer& at(std::uint32_t index) noexcept { return buffers_[index]; }
    bool owns(const PacketBuffer* buffer) const noexcept {
        // As integers: comparing pointers into different pools is not defined for pointers themselves.
        const auto address = reinterpret_cast<std::uintptr_t>(buffer);
        const auto first = reinterpret_cast<std::uintptr_t>(buffers_);
        const std::uintptr_t offset = address - first;
        return address >= first && offset < std::uintptr_t{count_} * sizeof(PacketBuffer) &&
               offset % sizeof(PacketBuffer) == 0 && buffer->index == offset / sizeof(PacketBuffer);
    }
    // The payload memory: buffer i's data is base() + i * buffer_bytes() (io_uring registers this region).
    std::byte* base() const noexcept { return static_cast<std::byte*>(payload_.base); }
    std::size_t region_bytes() const noexcept { return std::size_t{count_} * buffer_bytes_; }

private:
    PacketPool() noexcept = default;

    platform::MappedRegion payload_;
    platform::MappedRegion meta_;          // buffers_ and free_
    PacketBuffer* buffers_ = nullptr;
    std::uint32_t* free_ = nullptr;        // stack of free indices
    std::uint32_t free_top_ = 0;
    std::uint32_t count_ = 0;
    std::uint32_t buffer_bytes_ = 0;
    std::uint64_t misuse_ = 0;
};

}  // namespace cf::drivers
