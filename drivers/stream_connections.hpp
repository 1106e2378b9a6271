// What every TCP stream driver keeps per connection, whatever moves the bytes (sockets or io_uring): the slot
// table with its generation-tagged ids, each connection's send ring and receive buffer (framing in, framing out),
// and the queue of events not yet handed out. No system calls here: the drivers feed it bytes and take bytes.
//
// Memory: one region mapped at create(), max_connections * (rx_stream_bytes + tx_stream_bytes), pre-faulted.
#pragma once

#include <sys/uio.h>

#include <cstdint>
#include <memory>

#include "drivers/packet.hpp"
#include "drivers/stream_driver.hpp"
#include "platform/os/memory.hpp"

namespace cf::drivers {

enum class StreamState : std::uint8_t {
    free,
    connecting,   // connect() issued, not finished
    open,
    closed,       // gone; waits for its `closed` event to be handed out (or reported), then free
};

struct StreamConnection {
    int fd = -1;
    StreamState state = StreamState::free;
    std::uint16_t generation = 1;
    PeerAddress peer;

    // Receive buffer: [rx_head, rx_tail) holds bytes not yet cut into frames.
    std::byte* rx = nullptr;
    std::uint32_t rx_head = 0, rx_tail = 0;

    // Send ring of tx_capacity bytes (a power of two): [tx_head, tx_tail) as running counters waits for the
    // kernel; tx_in_flight of them from tx_head on are in a send that has not completed (io_uring only).
    std::byte* tx = nullptr;
    std::uint64_t tx_head = 0, tx_tail = 0;
    std::uint32_t tx_in_flight = 0;

    // io_uring: requests in flight that point into this slot's memory. A slot with any is never reused: it is
    // released (state free, generation bumped) by the op_finished() that brings the count to 0.
    std::uint32_t ops_in_flight = 0;
    bool release_when_idle = false;

    // Timers (stream_timeouts.hpp), of accepted connections only (`timed`): whether a whole frame has arrived,
    // and when (coarse clock, ns) the connection was accepted and last received bytes.
    bool timed = false, framed = false;
    std::int64_t accepted_at = 0, last_rx_at = 0;
};

// What next_frame() found.
enum class FrameStatus : std::uint8_t {
    frame,       // a whole frame, copied into `out`
    need_more,   // the buffer ends inside a frame (or is empty)
    no_buffer,   // a whole frame is there but the pool is empty: try again after releasing buffers
    bad_length,  // the length word exceeds the pool's buffer size: the stream cannot be trusted past here
};

class StreamConnections {
public:
    StreamConnections() noexcept = default;
    ~StreamConnections();
    StreamConnections(const StreamConnections&) = delete;
    StreamConnections& operator=(const StreamConnections&) = delete;

    // Checks the configuration against max_frame_bytes (the pool's buffer size) and maps the memory. 0, or
    // -EINVAL / -ENOMEM with the message set.
    int create(const TcpConfig& config, std::uint32_t max_frame_bytes) noexcept;

    std::uint32_t capacity() const noexcept { return count_; }
    StreamConnection& at(std::uint32_t slot) noexcept { return slots_[slot]; }
    ConnectionId id_of(std::uint32_t slot) const noexcept {
        return (ConnectionId{slots_[slot].generation} << kSlotBits) | slot;
    }
    // The connection behind an id, or nullptr when the id is malformed, stale, or its slot is free or closed.
    const StreamConnection* find(ConnectionId id) const noexcept;
    StreamConnection* find(ConnectionId id) noexcept {
        return const_cast<StreamConnection*>(static_cast<const StreamConnections*>(this)->find(id));
    }
    std::uint32_t slot_of(ConnectionId id) const noexcept { return id & kSlotMask; }

    // Takes a free slot for `fd` (state set by the caller), or returns -1 when every slot is in use.
    int take_slot(int fd, const PeerAddress& peer, StreamState state) noexcept;
    // Marks a connection closed with `error` and queues its `closed` event (the slot frees when it is handed out).
    // The caller closes the fd (io_uring: once no request uses the slot's memory). Returns the bytes its send ring
    // still held, now dropped.
    std::uint32_t mark_closed(std::uint32_t slot, int error) noexcept;
    // Frees a slot at once (close() by the owner: no event). Returns the bytes dropped from its send ring.
    std::uint32_t free_slot(std::uint32_t slot) noexcept;
    // A request that used the slot's memory completed (io_uring); releases the slot if it was waiting for that.
    void op_finished(std::uint32_t slot) noexcept;

    // ---- framing out ----
    // Appends `payload` as one frame; false when the send ring has no room for it whole.
    bool append_frame(StreamConnection& connection, const std::byte* payload, std::uint32_t length) noexcept;
    std::uint32_t tx_pending(const StreamConnection& connection) const noexcept {
        return static_cast<std::uint32_t>(connection.tx_tail - connection.tx_head);
    }
    // The bytes after those in flight, as at most two spans (the ring wraps); returns how many spans (0: none).
    int tx_spans(const StreamConnection& connection, iovec spans[2]) const noexcept;
    // The kernel took `bytes` from the front of the ring.
    void tx_consumed(StreamConnection& connection, std::uint32_t bytes) noexcept;

    // ---- framing in ----
    // Where the next receive may write (compacting first when the buffer's tail has too little room). Its length
    // is 0 only while the buffer holds whole frames not yet taken out: never issue a 0-byte receive (it reads as
    // the peer's close).
    iovec rx_space(StreamConnection& connection) noexcept;
    void rx_filled(StreamConnection& connection, std::uint32_t bytes) noexcept { connection.rx_tail += bytes; }
    // Cuts the next frame out of the receive buffer into a buffer from `pool`. Sets `framed` once a whole frame
    // is there, whether or not the pool had a buffer for it.
    FrameStatus next_frame(StreamConnection& connection, PacketPool& pool, PacketBuffer*& out) noexcept;
    // Whether the receive buffer holds a whole frame (or a bad length word) that waits for rx_burst: then the
    // connection waits for its owner, not for its peer.
    bool frame_waiting(const StreamConnection& connection) const noexcept;

    // ---- events ----
    // Queues an event of a connection whose events so far are all queued or handed out. Cannot fail when the
    // drivers follow that rule (see create()); false would mean a broken rule, and the caller refuses the
    // connection.
    bool push_event(const StreamEvent& event) noexcept;
    // Hands out up to `max` events, oldest first, skipping those of connections closed by their owner since; a
    // `closed` event frees its slot as it is handed out.
    std::uint32_t pop_events(StreamEvent* out, std::uint32_t max) noexcept;

    static constexpr std::uint32_t kMaxConnections = 4096;

private:
    static constexpr std::uint32_t kSlotBits = 16;
    static constexpr std::uint32_t kSlotMask = (1u << kSlotBits) - 1;
    static constexpr std::uint16_t kGenerationMask = 0x7fff;   // ids stay below 2^31

    void release_slot(StreamConnection& connection) noexcept;
    bool is_stale(const StreamEvent& event) const noexcept;
    void drop_stale_events() noexcept;

    platform::MappedRegion memory_;
    std::unique_ptr<StreamConnection[]> slots_;
    std::uint32_t count_ = 0;
    std::uint32_t rx_capacity_ = 0;
    std::uint32_t tx_capacity_ = 0;   // a power of two
    std::uint32_t max_frame_bytes_ = 0;

    std::unique_ptr<StreamEvent[]> events_;
    std::uint32_t event_capacity_ = 0;
    std::uint32_t event_head_ = 0, event_count_ = 0;
};

}  // namespace cf::drivers
