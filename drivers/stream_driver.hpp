// The burst interface of a framed byte stream (TCP over io_uring or sockets): messages ("frames") go in and come
// out whole, in order, per connection, in PacketBuffers from the driver's pool (packet.hpp, whose ownership rules
// hold here too). One virtual call per burst, never per frame. Polled by one thread; no method is thread-safe.
//
// On the wire every frame is its length as a 4-byte little-endian word, then that many bytes (0 allowed). A frame
// longer than the pool's buffer_bytes cannot be received: the sender refuses to send one (tx_refused), and a
// receiver that reads such a length closes the connection with -EPROTO (protocol_errors) rather than guess where
// the next frame starts.
//
// Copies: TCP needs bytes to stay put until they are acknowledged and delivers them cut anywhere, so each
// connection has a send ring and a receive buffer, preallocated at open. tx_burst copies frames into the send ring
// (the buffer goes back to the pool at once) and hands the kernel as much of the ring as it takes in one call; a
// receive fills the receive buffer and each whole frame is copied out into a pool buffer. Small frames share one
// system call per burst either way.
//
// Timers: a listener has max_connections slots, and a peer that connects and sends nothing would hold one forever;
// enough such peers and nobody else gets in. So an accepted connection must deliver its first whole frame within
// first_frame_timeout and must not go idle_timeout without sending a byte; poll_events() closes it otherwise, with
// its own reason in the `closed` event and its own counter. While every slot is taken, new connections are
// accepted and closed at once (refused_full) rather than left waiting unseen in the kernel's backlog.
//
// Status: methods return a count (>= 0) or a negative errno, with platform::last_error_message() saying why.
#pragma once

#include <cerrno>
#include <cstdint>
#include <memory>

#include "drivers/datagram_driver.hpp"
#include "drivers/packet.hpp"
#include "engine/time/counter_clock.hpp"
#include "engine/time/duration.hpp"

namespace cf::drivers {

inline constexpr std::uint32_t kFramePrefixBytes = 4;

// A connection's handle: its slot in the driver's table and a generation, so a handle of a closed connection
// never reaches the slot's next connection. Always > 0 and < 2^31 (fits the int that connect() returns).
using ConnectionId = std::uint32_t;

struct TcpConfig {
    PacketPool::Config pool;                       // received frames are handed out in these; buffer_bytes bounds
                                                   // the frame length
    std::uint32_t max_connections = 16;            // accepted and connected together (1..4096)
    std::uint32_t rx_stream_bytes = 256u << 10;    // per connection; at least buffer_bytes + kFramePrefixBytes
    std::uint32_t tx_stream_bytes = 256u << 10;    // per connection; frames wait here until the kernel takes them
    std::uint32_t socket_buffer_bytes = 0;         // SO_RCVBUF / SO_SNDBUF asked for (0: the system's default)
    bool no_delay = true;                          // TCP_NODELAY: a burst goes out now, not after an ACK
    std::uint32_t listen_backlog = 64;
    const CounterClock* clock = nullptr;           // stamps PacketBuffer::rx_time once per burst (null: zero)
    // The timers of accepted connections (connections this side opens with connect() are its own to close).
    // Zero disables one; negative is -EINVAL. A peer that only listens must still send a frame (a heartbeat, a
    // subscription) within first_frame_timeout and then at least once per idle_timeout, or the listener must set
    // these to zero. Resolution: the kernel's tick (1 to 10 ms, stream_timeouts.hpp).
    Duration first_frame_timeout = Duration::from_seconds(5);   // accept to the first whole frame
    Duration idle_timeout = Duration::from_seconds(60);         // without a byte received
};

// The close reasons of the timers, one each. The kernel may end a connection with -ETIMEDOUT too (retransmissions
// unanswered); the counters (idle_timeouts) say which was ours.
inline constexpr int kIdleTimeout = -ETIMEDOUT;
inline constexpr int kFirstFrameTimeout = -ETIME;

enum class StreamEventKind : std::uint8_t {
    accepted,    // a peer connected to our listening socket
    connected,   // a connect() finished
    closed,      // the connection is gone: error 0 when the peer closed it in order, else a negative errno
                 // (-ECONNREFUSED, -ECONNRESET, -EPROTO for a bad frame length, -ECONNABORTED when the peer
                 // closed inside a frame, kFirstFrameTimeout and kIdleTimeout when a timer closed it...); frames
                 // received before it come first; its slot is free again
};

struct StreamEvent {
    StreamEventKind kind = StreamEventKind::closed;
    ConnectionId connection = 0;
    int error = 0;
    PeerAddress peer;
};

struct StreamStats {
    std::uint64_t rx_frames = 0, rx_bytes = 0;     // payload bytes, prefixes not counted
    std::uint64_t tx_frames = 0, tx_bytes = 0;     // frames accepted into a send ring
    std::uint64_t rx_no_buffer = 0;                // times a whole frame waited because the pool was empty
    std::uint64_t tx_refused = 0;                  // frames dropped: too long, or for a connection not open
    std::uint64_t tx_dropped_bytes = 0;            // bytes (prefixes included) still in a send ring when their
                                                   // connection closed: what the peer cannot have received
    std::uint64_t protocol_errors = 0;             // connections closed for a frame length over buffer_bytes
    std::uint64_t accepted = 0, connected = 0, closed = 0;
    std::uint64_t refused_full = 0;                // incoming connections closed at once: every slot was taken
    std::uint64_t first_frame_timeouts = 0;        // accepted connections closed with kFirstFrameTimeout
    std::uint64_t idle_timeouts = 0;               // accepted connections closed with kIdleTimeout
    std::uint64_t syscalls = 0;                    // every system call after open (io_uring_enter, recv, send...)
};

class StreamDriver {
public:
    virtual ~StreamDriver() = default;

    virtual DriverKind kind() const noexcept = 0;

    // Starts accepting connections on `bind` (port 0: a free one; local_address() then says which). Once per
    // driver. 0 or a negative errno.
    virtual int listen(const PeerAddress& bind) noexcept = 0;
    virtual const PeerAddress& local_address() const noexcept = 0;

    // Starts connecting to `peer` without waiting: the new connection's id (> 0), or -ENOSPC when every slot is
    // taken, or another negative errno. A `connected` event, or a `closed` one with the reason, follows; frames
    // may be sent at once (they wait in the send ring until the connection is up).
    virtual int connect(const PeerAddress& peer) noexcept = 0;

    // Closes a connection now, dropping what its send ring still holds (tx_dropped_bytes). No event follows. 0, or
    // -ENOENT for an id that is not open (never opened, closed, or its `closed` event already handed out).
    virtual int close(ConnectionId connection) noexcept = 0;

    // Up to `max` whole received frames, in order per connection, each in a buffer whose `connection` and `peer`
    // say where it came from. The caller owns them until it releases or sends them. 0 when nothing arrived.
    virtual int rx_burst(PacketBuffer** out, std::uint32_t max) noexcept = 0;

    // Queues packets[0..count) as frames, each on its buffer's `connection`, and starts sending. Returns how many
    // were accepted, a prefix of the array; those buffers are back in the pool already (their bytes were copied).
    // A frame longer than the pool's buffer_bytes (what a peer configured alike can receive), or for a connection
    // that is not open, is accepted and dropped (tx_refused). Fewer than count: that connection's send ring is
    // full; retry the rest later.
    virtual int tx_burst(PacketBuffer* const* packets, std::uint32_t count) noexcept = 0;

    // Accepts and finishes connections, closes those past a timer (TcpConfig), notices closed ones, and hands out
    // what happened, oldest first. The timers are checked here only.
    virtual int poll_events(StreamEvent* out, std::uint32_t max) noexcept = 0;

    // Pushes what the send rings still hold and reaps completions, without receiving. 0 or a negative errno.
    virtual int poll_completions() noexcept = 0;

    // Bytes waiting in a connection's send ring (0 for an id that is not open): 0 means the kernel has them all.
    virtual std::uint32_t tx_pending(ConnectionId connection) const noexcept = 0;

    PacketBuffer* allocate() noexcept { return pool_->allocate(); }
    void release(PacketBuffer* buffer) noexcept { pool_->release(buffer); }
    PacketPool& pool() noexcept { return *pool_; }
    const StreamStats& stats() const noexcept { return stats_; }

protected:
    std::unique_ptr<PacketPool> pool_;
    StreamStats stats_;
};

// Opens a TCP stream driver. automatic tries io_uring first and falls back to sockets with one logged line, as
// open_udp() does; uring asked for explicitly fails instead. 0 or a negative errno.
int open_tcp(DriverKind kind, const TcpConfig& config, std::unique_ptr<StreamDriver>& out) noexcept;

}  // namespace cf::drivers
