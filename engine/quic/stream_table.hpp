// Every stream of one QUIC connection (RFC 9000 sections 2 to 4): the application's streams and message channels
// on one side, STREAM and stream/flow-control frames on the other.
//
// Memory. create() allocates everything once from a StreamTableConfig: a fixed number of stream slots per type
// (streams we open and streams the peer opens, bidirectional and unidirectional), each with its send ring and/or
// receive ring (a unidirectional stream has only the one it needs), and an open-addressed index from stream ID to
// slot. Opening, closing and looking up streams, and every frame in or out, allocate nothing afterwards.
//
// Limits. We let the peer open as many streams of a type at once as we have slots for (initial_max_streams_* =
// the slot count) and give credit back as its streams close (PeerStreams: a peer opening and closing streams one
// after another never runs dry). A stream's receive window starts at stream_window and auto-tunes up to the receive
// ring's size, so data the peer may send always fits the ring. Writes are taken only within the peer's flow-control
// credit (stream and connection), so whatever sits in a send ring may always go out and a stream's final size is
// simply what was written.
//
// The application (one connection's thread, between the connection's calls):
//   open_stream(direction)        -> stream ID, -EAGAIN at the peer's MAX_STREAMS (a STREAMS_BLOCKED is then due),
//                                    -ENOBUFS when our own slots of that type are all in use
//   write / finish / reset        the send side; write() returns the bytes taken (ring room and credit)
//   read / consume / stop_sending the receive side; read() hands out the readable bytes in place
//   send_message / next_message / release_message
//                                 length-prefixed messages (message_framing.hpp) on one long-lived stream
//   next_readable(id)             streams with something new for read(): data, the end, or the peer's reset
// A stream closes, and its slot is freed, when both of its parts are done: the send part when every byte and the
// FIN were acknowledged or our RESET_STREAM was, the receive part when the application read to the end or saw the
// peer's reset (or gave up with stop_sending). So the application must finish() or reset() the send part of every
// bidirectional stream, also of those the peer opened. For a peer's stream, its credit then goes back to the peer.
//
// The connection:
//   local_parameters / set_peer_parameters    the stream and flow-control transport parameters, both ways
//   set_clock(now, smoothed_rtt)              for window auto-tuning (ReceiveCredit); nanoseconds
//   on_stream_frame, on_reset_stream, ...     a frame from the peer (already parsed); the TransportError to close
//                                             the connection with, or no_error. Checks:
//       a stream ID that names a part the peer may not use (e.g. STREAM on our unidirectional stream), or one of
//       our streams we never opened                                                        STREAM_STATE_ERROR
//       a peer's stream at or beyond the MAX_STREAMS we allowed                            STREAM_LIMIT_ERROR
//       data (or a final size) past the stream's or the connection's limit; the connection
//       counts the highest offset of every stream                                          FLOW_CONTROL_ERROR
//       a final size that changes, data past it, or a FIN/RESET_STREAM below data received FINAL_SIZE_ERROR
//     Frames for a stream that already closed are ignored (they may be late copies).
//   write_frames(writer, record)              fills a packet payload with what is due, in this order: MAX_DATA,
//                                             MAX_STREAMS, MAX_STREAM_DATA, DATA_BLOCKED, STREAMS_BLOCKED, then per
//                                             stream STREAM_DATA_BLOCKED, RESET_STREAM, STOP_SENDING, then STREAM
//                                             data round-robin over the streams with data (lost bytes first within
//                                             a stream). What it wrote goes in `record` (SentStreamFrames), which
//                                             the connection keeps with the sent packet and hands back:
//   on_acked(record) / on_lost(record)        when loss detection decides. A lost frame is queued again as RFC 9000
//                                             section 13.3 says: STREAM data (unless the stream was reset),
//                                             RESET_STREAM until acknowledged, STOP_SENDING while the receive part
//                                             still waits for data, flow-control updates only if the lost value is
//                                             still the current one (a newer one carries its own loss), blocked
//                                             signals only while still blocked at that limit.
// A peer's STOP_SENDING makes us reset the send part with the peer's error code (section 3.5); a STREAM frame
// whose data the receive ring's range set cannot hold is dropped with *stored = false, and the connection must then
// not acknowledge the packet (the peer sends the data again).
//
// Message channels: send_message() writes all of a message or nothing (-EAGAIN: no ring room or no flow-control
// credit for all of it now). A message from next_message() stays valid until release_message() or the next
// next_message() on ANY stream: a message that wraps around its ring is gathered in one scratch buffer shared by
// the table. For channels never to stall, config.max_message_bytes plus its length prefix must fit in half of
// each receive window and in both rings, which create() checks for our side (the peer's windows are its own).
//
// Not thread-safe; no allocation after create(); no exceptions.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>

#include "engine/quic/endpoint_role.hpp"
#include "engine/quic/flow_control.hpp"
#include "engine/quic/frames.hpp"
#include "engine/quic/receive_buffer.hpp"
#include "engine/quic/stream_id.hpp"
#include "engine/quic/stream_limits.hpp"
#include "engine/quic/transport_error.hpp"
#include "engine/quic/transport_parameters.hpp"
#include "engine/quic/varint.hpp"

namespace cf::quic {

struct StreamTableConfig {
    // Streams open at once, per type: ours (we open them within the peer's MAX_STREAMS) and the peer's (the
    // MAX_STREAMS we allow). At most kMaxStreamsPerType each.
    std::uint32_t local_bidi_streams = 16;
    std::uint32_t local_uni_streams = 16;
    std::uint32_t peer_bidi_streams = 16;
    std::uint32_t peer_uni_streams = 16;
    // Ring bytes per stream and direction: powers of two, at least 16.
    std::uint32_t send_ring_bytes = 64 * 1024;
    std::uint32_t receive_ring_bytes = 64 * 1024;
    // Receive windows: a stream's starts at stream_window (at most receive_ring_bytes) and auto-tunes up to
    // receive_ring_bytes; the connection's starts at connection_window and auto-tunes up to max_connection_window.
    std::uint64_t stream_window = 32 * 1024;
    std::uint64_t connection_window = 1024 * 1024;
    std::uint64_t max_connection_window = kDefaultMaxConnectionWindow;
    // The largest message of the message helpers (0: no message helpers, no scratch buffer).
    std::uint32_t max_message_bytes = 8 * 1024;
};

// RFC 9000 section 3.1: the sending part of a stream. `none` for a unidirectional stream we only receive on.
enum class SendState : std::uint8_t { none, ready, send, data_sent, data_recvd, reset_sent, reset_recvd };
// Section 3.2: the receiving part. `none` for a unidirectional stream we only send on.
enum class ReceiveState : std::uint8_t { none, recv, size_known, data_recvd, data_read, reset_recvd, reset_read };

// What one packet carried of the stream table's frames: the connection stores it with the sent packet and hands it
// back to on_acked() or on_lost(). write_frames() stops adding frames once kMaxFrames are in.
struct SentStreamFrames {
    static constexpr std::uint32_t kMaxFrames = 16;
    enum class Kind : std::uint8_t {
        stream, max_data, max_stream_data, max_streams_bidi, max_streams_uni, data_blocked, stream_data_blocked,
        streams_blocked_bidi, streams_blocked_uni, reset_stream, stop_sending,
    };
    struct Entry {
        StreamId stream_id = 0;     // STREAM, MAX_STREAM_DATA, STREAM_DATA_BLOCKED, RESET_STREAM, STOP_SENDING
        std::uint64_t value = 0;    // STREAM: the offset; MAX_* and *_BLOCKED: the limit carried
        std::uint32_t length = 0;   // STREAM: data bytes
        Kind kind = Kind::stream;
        bool fin = false;           // STREAM: the frame had the FIN bit
    };
    Entry entries[kMaxFrames];
    std::uint32_t count = 0;

    bool empty() const noexcept { return count == 0; }
    bool full() const noexcept { return count == kMaxFrames; }
};

// What read() hands out: the readable bytes in place (valid until consume() or the next call on the table), whether
// they end the stream, or the peer's reset.
struct StreamReadView {
    ReceiveBuffer::Spans data;
    bool fin = false;             // data runs to the stream's final size (consuming all of it ends the stream)
    bool reset = false;           // the peer reset the stream: no data, error_code is its application error
    std::uint64_t error_code = 0;
};

struct StreamStatus {
    SendState send = SendState::none;
    ReceiveState receive = ReceiveState::none;
    bool stop_sending_received = false;   // the peer asked us to stop (we reset with its code)
    std::uint64_t peer_stop_code = 0;
    std::uint64_t send_credit = 0;        // bytes write() could take now (send_room)
};

class StreamTable {
public:
    static constexpr std::uint32_t kMaxStreamsPerType = 1u << 16;

    // -EINVAL (a bad config: ring sizes, windows, counts, messages that could not fit) or -ENOMEM.
    static int create(const StreamTableConfig& config, EndpointRole role, std::unique_ptr<StreamTable>& out) noexcept;
    ~StreamTable();
    StreamTable(const StreamTable&) = delete;
    StreamTable& operator=(const StreamTable&) = delete;

    // --- The connection ---------------------------------------------------------------------------------------
    // Our flow-control and stream-count transport parameters (the others in `parameters` are left alone).
    void local_parameters(TransportParameters& parameters) const noexcept;
    // The peer's: our send credit and how many streams we may open. Limits only grow.
    void set_peer_parameters(const TransportParameters& peer) noexcept;
    void set_clock(std::uint64_t now_ns, std::uint64_t smoothed_rtt_ns) noexcept {
        now_ns_ = now_ns;
        smoothed_rtt_ns_ = smoothed_rtt_ns;
    }

    TransportError on_stream_frame(const StreamFrame& frame, bool* stored = nullptr) noexcept;
    TransportError on_reset_stream(const ResetStreamFrame& frame) noexcept;
    TransportError on_stop_sending(const StopSendingFrame& frame) noexcept;
    TransportError on_max_data(const MaxDataFrame& frame) noexcept;
    TransportError on_max_stream_data(const MaxStreamDataFrame& frame) noexcept;
    TransportError on_max_streams(const MaxStreamsFrame& frame) noexcept;
    TransportError on_data_blocked(const DataBlockedFrame& frame) noexcept;
    TransportError on_stream_data_blocked(const StreamDataBlockedFrame& frame) noexcept;
    TransportError on_streams_blocked(const StreamsBlockedFrame& frame) noexcept;

    // Appends the frames due to `out` (never fails it: a frame that does not fit stays due) and records them in
    // `record` (reset first). Returns the bytes written; 0 if nothing was due or nothing fitted.
    std::size_t write_frames(ByteWriter& out, SentStreamFrames& record) noexcept;
    void on_acked(const SentStreamFrames& record) noexcept;
    void on_lost(const SentStreamFrames& record) noexcept;
    // Something may be due for write_frames() (it may still write nothing: a stream queued for data can have
    // none left).
    bool wants_to_send() const noexcept;

    // --- The application --------------------------------------------------------------------------------------
    // A new stream of ours: its ID, -EAGAIN (the peer's MAX_STREAMS) or -ENOBUFS (all our slots of that type used).
    std::int64_t open_stream(StreamDirection direction) noexcept;
    // Bytes taken (0 when the ring is full or there is no credit), or -ENOENT (no such open stream), -EINVAL (we do
    // not send on it), -EPIPE (finished, reset, or the peer sent STOP_SENDING).
    std::int64_t write(StreamId id, const void* data, std::size_t length) noexcept;
    // What write() could take now: ring room and flow-control credit.
    std::size_t send_room(StreamId id) const noexcept;
    // The stream ends after what was written. 0, -ENOENT, -EINVAL, -EPIPE.
    int finish(StreamId id) noexcept;
    // Abandons the send part: RESET_STREAM with `application_error` (from Ready, Send or Data Sent).
    // 0, -ENOENT, -EINVAL, -EPIPE (already all acknowledged or reset).
    int reset(StreamId id, std::uint64_t application_error) noexcept;

    // 0 with `out` filled (maybe no data yet), or -ENOENT, -EINVAL (we do not receive on it), -EPIPE (we called
    // stop_sending). Seeing the end or a reset here completes the receive part (the stream may close at once).
    int read(StreamId id, StreamReadView& out) noexcept;
    // Frees the first `bytes` read() handed out (at most all of them). 0, -ENOENT, -EINVAL.
    int consume(StreamId id, std::size_t bytes) noexcept;
    // Abandons the receive part: STOP_SENDING with `application_error`; data still arriving is dropped (and its
    // flow-control credit returned). 0, -ENOENT, -EINVAL, -EPIPE (already stopped or done).
    int stop_sending(StreamId id, std::uint64_t application_error) noexcept;
    // A stream with something new for read() (data, its end, the peer's reset); false if none. A stream may come
    // out again with nothing new (it was read meanwhile).
    bool next_readable(StreamId& id) noexcept;
    // 0 or -ENOENT.
    int status(StreamId id, StreamStatus& out) const noexcept;

    // One message: 0, -EAGAIN (no room or credit for all of it now), -EMSGSIZE (above max_message_bytes), and
    // write()'s errors.
    int send_message(StreamId id, const void* data, std::size_t length) noexcept;
    // 1 with the next message, 0 if none is complete yet, -ENODATA (the stream ended: every message read),
    // -ECONNRESET (the peer reset it), -EMSGSIZE (the peer announced a message above max_message_bytes: the reader
    // stays broken, the application should stop_sending/reset), and read()'s errors.
    int next_message(StreamId id, const std::uint8_t*& data, std::size_t& length) noexcept;
    // Frees the message next_message() returned. 0, -ENOENT, -EINVAL.
    int release_message(StreamId id) noexcept;

    // --- Counts (tests, statistics) ---------------------------------------------------------------------------
    std::uint32_t open_streams() const noexcept { return open_count_; }
    std::uint64_t closed_streams() const noexcept { return closed_count_; }
    std::uint64_t peer_blocked_signals() const noexcept { return peer_blocked_signals_; }
    EndpointRole role() const noexcept { return role_; }
    const SendCredit& connection_send_credit() const noexcept { return connection_send_; }
    const ReceiveCredit& connection_receive_credit() const noexcept { return connection_receive_; }
    // Slot number of an open stream (-ENOENT): for tests that check slots are reused.
    int slot_of(StreamId id) const noexcept;

private:
    struct Stream;
    struct Pool {
        std::uint32_t first = 0;   // slots [first, first + count)
        std::uint32_t count = 0;
        std::uint32_t free = 0;    // head of the free list (kNoSlot: none)
    };
    struct List {
        std::uint32_t head;
        std::uint32_t tail;
    };
    enum Queue : std::uint8_t { kSendQueue, kControlQueue, kReadableQueue, kQueues };

    explicit StreamTable(EndpointRole role) noexcept;
    int init(const StreamTableConfig& config) noexcept;

    Stream* find(StreamId id) const noexcept;
    std::uint32_t home(StreamId id) const noexcept;
    void index_insert(std::uint32_t slot) noexcept;
    void index_erase(StreamId id) noexcept;
    int pool_of(StreamId id) const noexcept;
    Stream* open_slot(StreamId id) noexcept;
    void maybe_close(Stream& stream) noexcept;

    void push(Queue queue, Stream& stream) noexcept;
    void unlink(Queue queue, Stream& stream) noexcept;

    TransportError stream_for_frame(StreamId id, bool receiving, Stream*& out) noexcept;
    TransportError account_received(Stream& stream, std::uint64_t end) noexcept;
    void after_receive(Stream& stream) noexcept;
    void account_consumed(Stream& stream, std::uint64_t bytes) noexcept;
    void discard_readable(Stream& stream) noexcept;
    void start_reset(Stream& stream, std::uint64_t application_error) noexcept;
    Stream* sending_stream(StreamId id, int& error) noexcept;
    Stream* receiving_stream(StreamId id, int& error) noexcept;
    std::uint64_t commit_room(const Stream& stream) const noexcept;
    void note_written(Stream& stream, std::size_t requested, std::size_t written) noexcept;
    bool wants_max_stream_data(const Stream& stream) const noexcept;
    bool wants_other_control(const Stream& stream) const noexcept;

    EndpointRole role_;
    StreamTableConfig config_{};
    std::unique_ptr<Stream[]> slots_;
    std::unique_ptr<std::uint8_t[]> rings_;
    std::unique_ptr<std::uint8_t[]> message_scratch_;
    std::unique_ptr<std::uint32_t[]> index_;   // slot + 1 per bucket, 0: empty
    std::uint32_t index_mask_ = 0;
    std::uint32_t index_shift_ = 0;
    Pool pools_[4];                             // local bidi, local uni, peer bidi, peer uni
    List queues_[kQueues];

    OpenedStreams opened_[2];                   // ours, [bidirectional, unidirectional]
    PeerStreams peer_streams_[2];               // the peer's
    std::uint64_t peer_stream_window_[4] = {};  // the peer's initial send credit for a new stream, per pool
    SendCredit connection_send_;
    ReceiveCredit connection_receive_;
    std::uint64_t received_sum_ = 0;            // the highest offsets of every stream, added up

    bool max_data_resend_ = false;
    bool max_streams_resend_[2] = {};
    bool data_blocked_due_ = false;
    bool streams_blocked_due_[2] = {};

    std::uint64_t now_ns_ = 0;
    std::uint64_t smoothed_rtt_ns_ = 0;
    std::uint32_t open_count_ = 0;
    std::uint64_t closed_count_ = 0;
    std::uint64_t peer_blocked_signals_ = 0;
};

}  // namespace cf::quic
