// The per-connection state of the TCP stream drivers: slots, send rings, receive buffers and events.
#include "drivers/stream_connections.hpp"

#include <cerrno>
#include <cstring>
#include <new>

#include "engine/wire/little_endian.hpp"
#include "platform/os/last_error.hpp"

namespace cf::drivers {
namespace {

static_assert(kFramePrefixBytes == sizeof(std::uint32_t), "the prefix is one little-endian uint32: the length");

std::uint32_t round_up_pow2(std::uint32_t value) {
    std::uint32_t power = 1;
    while (power < value) power <<= 1;
    return power;
}

}  // namespace

StreamConnections::~StreamConnections() { platform::unmap_region(memory_); }

int StreamConnections::create(const TcpConfig& config, std::uint32_t max_frame_bytes) noexcept {
    using platform::fail;
    if (config.max_connections == 0 || config.max_connections > kMaxConnections) {
        return fail(EINVAL, "tcp: max_connections %u must be 1..%u", config.max_connections, kMaxConnections);
    }
    const std::uint64_t whole_frame = std::uint64_t{max_frame_bytes} + kFramePrefixBytes;
    if (config.rx_stream_bytes < whole_frame || config.tx_stream_bytes < whole_frame) {
        return fail(EINVAL, "tcp: rx_stream_bytes %u and tx_stream_bytes %u must hold a whole frame of the pool's "
                    "buffer size (%llu bytes with its prefix)", config.rx_stream_bytes, config.tx_stream_bytes,
                    static_cast<unsigned long long>(whole_frame));
    }
    if (config.rx_stream_bytes > (1u << 30) || config.tx_stream_bytes > (1u << 30)) {
        return fail(EINVAL, "tcp: rx_stream_bytes %u and tx_stream_bytes %u must be at most 1 GiB",
                    config.rx_stream_bytes, config.tx_stream_bytes);
    }
    count_ = config.max_connections;
    max_frame_bytes_ = max_frame_bytes;
    rx_capacity_ = (config.rx_stream_bytes + 63) & ~63u;
    tx_capacity_ = round_up_pow2(config.tx_stream_bytes);
    const std::size_t per_slot = std::size_t{rx_capacity_} + tx_capacity_;
    if (const int rc = platform::map_region(per_slot * count_, false, memory_); rc < 0) return rc;

    slots_.reset(new (std::nothrow) StreamConnection[count_]);
    // Each slot's current connection owes at most an opening and a closing event; a push that finds the queue
    // full first drops the events of connections closed by their owner since. What is left then is at most two
    // events per other slot and one for the slot pushing: a push never fails.
    event_capacity_ = 2 * count_ + 2;
    events_.reset(new (std::nothrow) StreamEvent[event_capacity_]);
    if (!slots_ || !events_) return fail(ENOMEM, "tcp: no memory for %u connection slots", count_);
    auto* base = static_cast<std::byte*>(memory_.base);
    for (std::uint32_t slot = 0; slot < count_; ++slot) {
        slots_[slot].rx = base + per_slot * slot;
        slots_[slot].tx = slots_[slot].rx + rx_capacity_;
    }
    return 0;
}

const StreamConnection* StreamConnections::find(ConnectionId id) const noexcept {
    const std::uint32_t slot = id & kSlotMask;
    if (slot >= count_ || (id >> 31) != 0) return nullptr;
    const StreamConnection& connection = slots_[slot];
    const bool live = connection.state == StreamState::open || connection.state == StreamState::connecting;
    return live && connection.generation == (id >> kSlotBits) ? &connection : nullptr;
}

int StreamConnections::take_slot(int fd, const PeerAddress& peer, StreamState state) noexcept {
    for (std::uint32_t slot = 0; slot < count_; ++slot) {
        StreamConnection& connection = slots_[slot];
        if (connection.state != StreamState::free) continue;
        connection.fd = fd;
        connection.state = state;
        connection.peer = peer;
        connection.rx_head = connection.rx_tail = 0;
        connection.tx_head = connection.tx_tail = 0;
        connection.tx_in_flight = 0;
        connection.release_when_idle = false;
        connection.timed = connection.framed = false;
        return static_cast<int>(slot);
    }
    return -1;
}

std::uint32_t StreamConnections::mark_closed(std::uint32_t slot, int error) noexcept {
    StreamConnection& connection = slots_[slot];
    if (connection.state == StreamState::closed || connection.state == StreamState::free) return 0;
    const std::uint32_t dropped = tx_pending(connection);
    connection.state = StreamState::closed;
    connection.tx_head = connection.tx_tail;
    if (!push_event({StreamEventKind::closed, id_of(slot), error, connection.peer})) release_slot(connection);
    return dropped;
}

std::uint32_t StreamConnections::free_slot(std::uint32_t slot) noexcept {
    StreamConnection& connection = slots_[slot];
    const std::uint32_t dropped = tx_pending(connection);
    connection.tx_head = connection.tx_tail;
    release_slot(connection);
    return dropped;
}

void StreamConnections::release_slot(StreamConnection& connection) noexcept {
    // A new generation at once, so every id of this connection (and its queued events) is stale from now on.
    connection.generation = static_cast<std::uint16_t>((connection.generation + 1) & kGenerationMask);
    if (connection.generation == 0) connection.generation = 1;   // ids are never 0
    connection.fd = -1;
    if (connection.ops_in_flight == 0) {
        connection.state = StreamState::free;
        return;
    }
    connection.state = StreamState::closed;   // not reusable while the kernel may still write into its memory
    connection.release_when_idle = true;
}

void StreamConnections::op_finished(std::uint32_t slot) noexcept {
    StreamConnection& connection = slots_[slot];
    if (connection.ops_in_flight > 0) --connection.ops_in_flight;
    if (connection.ops_in_flight == 0 && connection.release_when_idle) {
        connection.release_when_idle = false;
        connection.state = StreamState::free;
    }
}

bool StreamConnections::append_frame(StreamConnection& connection, const std::byte* payload,
                                     std::uint32_t length) noexcept {
    const std::uint64_t whole = std::uint64_t{length} + kFramePrefixBytes;
    if (whole > tx_capacity_ - tx_pending(connection)) return false;
    std::byte prefix[kFramePrefixBytes];
    wire::store_le<std::uint32_t>(prefix, length);
    // Two pieces, each copied in at most two runs (before and after the ring's end).
    const auto put = [&](const void* from, std::uint32_t bytes) {
        const std::uint32_t at = static_cast<std::uint32_t>(connection.tx_tail & (tx_capacity_ - 1));
        const std::uint32_t first = bytes < tx_capacity_ - at ? bytes : tx_capacity_ - at;
        std::memcpy(connection.tx + at, from, first);
        if (first < bytes) std::memcpy(connection.tx, static_cast<const std::byte*>(from) + first, bytes - first);
        connection.tx_tail += bytes;
    };
    put(prefix, kFramePrefixBytes);
    if (length != 0) put(payload, length);
    return true;
}

int StreamConnections::tx_spans(const StreamConnection& connection, iovec spans[2]) const noexcept {
    const std::uint64_t from = connection.tx_head + connection.tx_in_flight;
    const auto bytes = static_cast<std::uint32_t>(connection.tx_tail - from);
    if (bytes == 0) return 0;
    const auto at = static_cast<std::uint32_t>(from & (tx_capacity_ - 1));
    const std::uint32_t first = bytes < tx_capacity_ - at ? bytes : tx_capacity_ - at;
    spans[0] = {connection.tx + at, first};
    if (first == bytes) return 1;
    spans[1] = {connection.tx, bytes - first};
    return 2;
}

void StreamConnections::tx_consumed(StreamConnection& connection, std::uint32_t bytes) noexcept {
    connection.tx_head += bytes;
    if (connection.tx_head == connection.tx_tail) {
        // Empty: start over at the ring's beginning, so the next burst goes out as one span.
        connection.tx_head = connection.tx_tail = 0;
    }
}

iovec StreamConnections::rx_space(StreamConnection& connection) noexcept {
    // Compacts when the partial frame at the head leaves less than a whole maximal frame of room behind it: then
    // any frame that starts in the buffer fits in it.
    if (connection.rx_head == connection.rx_tail) {
        connection.rx_head = connection.rx_tail = 0;
    } else if (rx_capacity_ - connection.rx_head < max_frame_bytes_ + kFramePrefixBytes) {
        const std::uint32_t kept = connection.rx_tail - connection.rx_head;
        std::memmove(connection.rx, connection.rx + connection.rx_head, kept);
        connection.rx_head = 0;
        connection.rx_tail = kept;
    }
    return {connection.rx + connection.rx_tail, rx_capacity_ - connection.rx_tail};
}

FrameStatus StreamConnections::next_frame(StreamConnection& connection, PacketPool& pool,
                                          PacketBuffer*& out) noexcept {
    const std::uint32_t held = connection.rx_tail - connection.rx_head;
    if (held < kFramePrefixBytes) return FrameStatus::need_more;
    const std::byte* at = connection.rx + connection.rx_head;
    const std::uint32_t length = wire::load_le<std::uint32_t>(at);
    if (length > max_frame_bytes_) return FrameStatus::bad_length;
    if (held - kFramePrefixBytes < length) return FrameStatus::need_more;
    connection.framed = true;
    PacketBuffer* buffer = pool.allocate();
    if (buffer == nullptr) return FrameStatus::no_buffer;
    if (length != 0) std::memcpy(buffer->data, at + kFramePrefixBytes, length);
    buffer->length = length;
    connection.rx_head += kFramePrefixBytes + length;
    out = buffer;
    return FrameStatus::frame;
}

bool StreamConnections::frame_waiting(const StreamConnection& connection) const noexcept {
    const std::uint32_t held = connection.rx_tail - connection.rx_head;
    if (held < kFramePrefixBytes) return false;
    const std::uint32_t length = wire::load_le<std::uint32_t>(connection.rx + connection.rx_head);
    return length > max_frame_bytes_ || held - kFramePrefixBytes >= length;
}

bool StreamConnections::push_event(const StreamEvent& event) noexcept {
    if (event_count_ == event_capacity_) drop_stale_events();
    if (event_count_ == event_capacity_) return false;
    events_[(event_head_ + event_count_) % event_capacity_] = event;
    ++event_count_;
    return true;
}

bool StreamConnections::is_stale(const StreamEvent& event) const noexcept {
    return slots_[slot_of(event.connection)].generation != (event.connection >> kSlotBits);
}

void StreamConnections::drop_stale_events() noexcept {
    std::uint32_t kept = 0;
    for (std::uint32_t i = 0; i < event_count_; ++i) {
        const StreamEvent& event = events_[(event_head_ + i) % event_capacity_];
        if (!is_stale(event)) events_[(event_head_ + kept++) % event_capacity_] = event;
    }
    event_count_ = kept;
}

std::uint32_t StreamConnections::pop_events(StreamEvent* out, std::uint32_t max) noexcept {
    std::uint32_t given = 0;
    while (given < max && event_count_ > 0) {
        const StreamEvent& event = events_[event_head_];
        event_head_ = (event_head_ + 1) % event_capacity_;
        --event_count_;
        if (is_stale(event)) continue;   // its connection was closed by its owner since
        if (event.kind == StreamEventKind::closed) release_slot(slots_[slot_of(event.connection)]);
        out[given++] = event;
    }
    return given;
}

}  // namespace cf::drivers
