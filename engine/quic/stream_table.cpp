#include "engine/quic/stream_table.hpp"

#include <cerrno>
#include <new>

#include "engine/quic/message_framing.hpp"
#include "engine/quic/send_buffer.hpp"

namespace cf::quic {
namespace {

constexpr std::uint32_t kNoSlot = 0xffffffffu;

constexpr bool power_of_two_ring(std::uint32_t bytes) noexcept { return bytes >= 16 && (bytes & (bytes - 1)) == 0; }

template <class T> constexpr T smallest(T a, T b) noexcept { return a < b ? a : b; }

// Appends a small control frame only if all of it fits, so `out` never fails on our account.
template <class F> bool put(ByteWriter& out, const F& frame) noexcept {
    std::uint8_t scratch[32];   // the largest, RESET_STREAM, takes 1 + 3 * 8 bytes
    ByteWriter probe(scratch, sizeof scratch);
    if (!encode(probe, frame) || probe.size() > out.remaining()) return false;
    out.bytes(scratch, probe.size());
    return true;
}

SentStreamFrames::Entry entry(SentStreamFrames::Kind kind, StreamId id, std::uint64_t value) noexcept {
    SentStreamFrames::Entry e;
    e.kind = kind;
    e.stream_id = id;
    e.value = value;
    return e;
}

bool sending(SendState state) noexcept { return state == SendState::ready || state == SendState::send; }
bool can_reset(SendState state) noexcept { return sending(state) || state == SendState::data_sent; }
bool reset_received(ReceiveState state) noexcept {
    return state == ReceiveState::reset_recvd || state == ReceiveState::reset_read;
}
bool waiting_for_data(ReceiveState state) noexcept {
    return state == ReceiveState::recv || state == ReceiveState::size_known;
}

// Keeps the first `length` bytes of a chunk (a frame carries one span; a cut chunk no longer ends the stream).
void cut(SendBuffer::Chunk& chunk, std::size_t length) noexcept {
    if (length >= chunk.length) return;
    chunk.length = length;
    chunk.fin = false;
    if (chunk.first_size > length) chunk.first_size = length;
    if (chunk.first_size == length) chunk.second = nullptr;
}

}  // namespace

struct StreamTable::Stream {
    StreamId id = 0;
    bool in_use = false;
    std::uint8_t pool = 0;
    std::uint32_t slot = 0;
    std::uint32_t next_free = kNoSlot;
    std::uint8_t* send_ring = nullptr;      // fixed at creation, like the slot
    std::uint8_t* receive_ring = nullptr;

    SendState send_state = SendState::none;
    ReceiveState receive_state = ReceiveState::none;
    bool finish_requested = false;
    bool receive_abandoned = false;         // we sent STOP_SENDING: arriving data is dropped
    bool stop_received = false;
    // Control frames due for this stream (it sits in the control queue while any is).
    bool max_stream_data_resend = false;    // a lost MAX_STREAM_DATA with the current limit
    bool stream_data_blocked_due = false;
    bool reset_due = false;
    bool stop_sending_due = false;
    std::uint64_t reset_error = 0;          // ours
    std::uint64_t reset_final_size = 0;
    std::uint64_t stop_error = 0;           // ours
    std::uint64_t peer_reset_error = 0;
    std::uint64_t peer_stop_error = 0;

    bool queued[kQueues] = {};
    std::uint32_t next[kQueues] = {kNoSlot, kNoSlot, kNoSlot};
    std::uint32_t prev[kQueues] = {kNoSlot, kNoSlot, kNoSlot};

    SendBuffer send;
    ReceiveBuffer receive;
    SendCredit send_credit;
    ReceiveCredit receive_credit;
    MessageReader reader;
};

StreamTable::StreamTable(EndpointRole role) noexcept : role_(role) {
    for (List& list : queues_) list = List{kNoSlot, kNoSlot};
}

StreamTable::~StreamTable() = default;

int StreamTable::create(const StreamTableConfig& config, EndpointRole role,
                        std::unique_ptr<StreamTable>& out) noexcept {
    std::unique_ptr<StreamTable> table(new (std::nothrow) StreamTable(role));
    if (!table) return -ENOMEM;
    const int result = table->init(config);
    if (result != 0) return result;
    out = std::move(table);
    return 0;
}

int StreamTable::init(const StreamTableConfig& config) noexcept {
    const std::uint32_t counts[4] = {config.local_bidi_streams, config.local_uni_streams, config.peer_bidi_streams,
                                     config.peer_uni_streams};
    for (const std::uint32_t count : counts)
        if (count > kMaxStreamsPerType) return -EINVAL;
    if (!power_of_two_ring(config.send_ring_bytes) || !power_of_two_ring(config.receive_ring_bytes)) return -EINVAL;
    if (config.stream_window > config.receive_ring_bytes || config.connection_window > kMaxVarint) return -EINVAL;
    if (config.max_message_bytes != 0) {
        // A whole message must fit in the rings and in half of each window (the part the peer can count on before
        // the next update), or a channel could wait for credit that never comes.
        const std::uint64_t need = varint_size(config.max_message_bytes) + std::uint64_t{config.max_message_bytes};
        if (need > config.send_ring_bytes || need > config.receive_ring_bytes || need > config.stream_window / 2 ||
            need > config.connection_window / 2)
            return -EINVAL;
    }
    config_ = config;

    const std::uint64_t send = config.send_ring_bytes;
    const std::uint64_t receive = config.receive_ring_bytes;
    const std::uint64_t ring_bytes[4] = {send + receive, send, send + receive, receive};
    std::uint64_t total_bytes = 0;
    std::uint32_t total_slots = 0;
    for (int p = 0; p < 4; ++p) {
        pools_[p] = Pool{total_slots, counts[p], kNoSlot};
        total_slots += counts[p];
        total_bytes += counts[p] * ring_bytes[p];
    }
    if (total_bytes > (std::uint64_t{1} << 40)) return -ENOMEM;   // a config mistake, not a workload

    slots_.reset(new (std::nothrow) Stream[total_slots == 0 ? 1 : total_slots]);
    rings_.reset(new (std::nothrow) std::uint8_t[total_bytes == 0 ? 1 : static_cast<std::size_t>(total_bytes)]);
    if (config.max_message_bytes != 0) message_scratch_.reset(new (std::nothrow) std::uint8_t[config.max_message_bytes]);
    std::uint32_t buckets = 2;
    std::uint32_t bits = 1;
    while (buckets < 2 * total_slots) {
        buckets *= 2;
        ++bits;
    }
    index_.reset(new (std::nothrow) std::uint32_t[buckets]());
    if (!slots_ || !rings_ || !index_ || (config.max_message_bytes != 0 && !message_scratch_)) return -ENOMEM;
    index_mask_ = buckets - 1;
    index_shift_ = 64 - bits;

    // Every slot gets its rings for good; the free lists hand out the lowest slots first.
    std::uint8_t* memory = rings_.get();
    for (int p = 0; p < 4; ++p) {
        const bool has_send = p != 3;
        const bool has_receive = p != 1;
        for (std::uint32_t i = 0; i < counts[p]; ++i) {
            Stream& stream = slots_[pools_[p].first + i];
            stream.slot = pools_[p].first + i;
            stream.pool = static_cast<std::uint8_t>(p);
            if (has_send) {
                stream.send_ring = memory;
                memory += send;
            }
            if (has_receive) {
                stream.receive_ring = memory;
                memory += receive;
            }
        }
        for (std::uint32_t i = counts[p]; i-- > 0;) {
            slots_[pools_[p].first + i].next_free = pools_[p].free;
            pools_[p].free = pools_[p].first + i;
        }
    }

    peer_streams_[0] = PeerStreams(config.peer_bidi_streams);
    peer_streams_[1] = PeerStreams(config.peer_uni_streams);
    connection_receive_ = ReceiveCredit(config.connection_window, config.max_connection_window);
    return 0;
}

void StreamTable::local_parameters(TransportParameters& parameters) const noexcept {
    parameters.initial_max_data = config_.connection_window;
    parameters.initial_max_stream_data_bidi_local = config_.stream_window;
    parameters.initial_max_stream_data_bidi_remote = config_.stream_window;
    parameters.initial_max_stream_data_uni = config_.stream_window;
    parameters.initial_max_streams_bidi = config_.peer_bidi_streams;
    parameters.initial_max_streams_uni = config_.peer_uni_streams;
}

void StreamTable::set_peer_parameters(const TransportParameters& peer) noexcept {
    connection_send_.on_peer_limit(peer.initial_max_data);
    opened_[0].on_peer_limit(peer.initial_max_streams_bidi);
    opened_[1].on_peer_limit(peer.initial_max_streams_uni);
    // The peer's names are from its side: our bidirectional streams are "remote" to it.
    peer_stream_window_[0] = peer.initial_max_stream_data_bidi_remote;
    peer_stream_window_[1] = peer.initial_max_stream_data_uni;
    peer_stream_window_[2] = peer.initial_max_stream_data_bidi_local;
    peer_stream_window_[3] = 0;
    for (int p = 0; p < 3; ++p) {
        for (std::uint32_t i = 0; i < pools_[p].count; ++i) {
            Stream& stream = slots_[pools_[p].first + i];
            if (stream.in_use) stream.send_credit.on_peer_limit(peer_stream_window_[p]);
        }
    }
}

// --- Slots and the index --------------------------------------------------------------------------------------

int StreamTable::pool_of(StreamId id) const noexcept {
    return (locally_initiated(id, role_) ? 0 : 2) + (direction_of(id) == StreamDirection::unidirectional ? 1 : 0);
}

std::uint32_t StreamTable::home(StreamId id) const noexcept {
    return static_cast<std::uint32_t>((id * 0x9e3779b97f4a7c15ull) >> index_shift_);   // Fibonacci hashing
}

StreamTable::Stream* StreamTable::find(StreamId id) const noexcept {
    for (std::uint32_t i = home(id);; i = (i + 1) & index_mask_) {
        const std::uint32_t entry = index_[i];
        if (entry == 0) return nullptr;
        if (slots_[entry - 1].id == id) return &slots_[entry - 1];
    }
}

void StreamTable::index_insert(std::uint32_t slot) noexcept {
    std::uint32_t i = home(slots_[slot].id);
    while (index_[i] != 0) i = (i + 1) & index_mask_;   // at most half full: there is always an empty bucket
    index_[i] = slot + 1;
}

// Linear probing without tombstones: entries after the hole move back when the hole lies on their probe path.
void StreamTable::index_erase(StreamId id) noexcept {
    std::uint32_t hole = home(id);
    while (slots_[index_[hole] - 1].id != id) hole = (hole + 1) & index_mask_;
    for (std::uint32_t j = (hole + 1) & index_mask_; index_[j] != 0; j = (j + 1) & index_mask_) {
        const std::uint32_t start = home(slots_[index_[j] - 1].id);
        if (((j - start) & index_mask_) >= ((j - hole) & index_mask_)) {
            index_[hole] = index_[j];
            hole = j;
        }
    }
    index_[hole] = 0;
}

StreamTable::Stream* StreamTable::open_slot(StreamId id) noexcept {
    Pool& pool = pools_[pool_of(id)];
    if (pool.free == kNoSlot) return nullptr;
    Stream& stream = slots_[pool.free];
    pool.free = stream.next_free;

    const std::uint32_t slot = stream.slot;
    const std::uint8_t pool_number = stream.pool;
    std::uint8_t* const send_ring = stream.send_ring;
    std::uint8_t* const receive_ring = stream.receive_ring;
    stream = Stream{};
    stream.slot = slot;
    stream.pool = pool_number;
    stream.send_ring = send_ring;
    stream.receive_ring = receive_ring;
    stream.id = id;
    stream.in_use = true;
    if (can_send(id, role_)) {
        (void)stream.send.init(send_ring, config_.send_ring_bytes);
        stream.send_state = SendState::ready;
        stream.send_credit = SendCredit(peer_stream_window_[pool_number]);
    }
    if (can_receive(id, role_)) {
        (void)stream.receive.init(receive_ring, config_.receive_ring_bytes);
        stream.receive_state = ReceiveState::recv;
        stream.receive_credit = ReceiveCredit(config_.stream_window, config_.receive_ring_bytes);
        stream.reader.init(message_scratch_.get(), config_.max_message_bytes);
    }
    index_insert(slot);
    ++open_count_;
    return &stream;
}

void StreamTable::maybe_close(Stream& stream) noexcept {
    const SendState send = stream.send_state;
    const ReceiveState receive = stream.receive_state;
    const bool send_done = send == SendState::none || send == SendState::data_recvd || send == SendState::reset_recvd;
    const bool receive_done =
        receive == ReceiveState::none || receive == ReceiveState::data_read || receive == ReceiveState::reset_read;
    if (!send_done || !receive_done) return;
    for (int q = 0; q < kQueues; ++q) unlink(static_cast<Queue>(q), stream);
    index_erase(stream.id);
    stream.in_use = false;
    Pool& pool = pools_[stream.pool];
    stream.next_free = pool.free;
    pool.free = stream.slot;
    --open_count_;
    ++closed_count_;
    if (!locally_initiated(stream.id, role_)) {
        peer_streams_[direction_of(stream.id) == StreamDirection::bidirectional ? 0 : 1].on_closed();
    }
}

void StreamTable::push(Queue queue, Stream& stream) noexcept {
    if (stream.queued[queue]) return;
    List& list = queues_[queue];
    stream.queued[queue] = true;
    stream.next[queue] = kNoSlot;
    stream.prev[queue] = list.tail;
    if (list.tail != kNoSlot) slots_[list.tail].next[queue] = stream.slot;
    else list.head = stream.slot;
    list.tail = stream.slot;
}

void StreamTable::unlink(Queue queue, Stream& stream) noexcept {
    if (!stream.queued[queue]) return;
    List& list = queues_[queue];
    const std::uint32_t next = stream.next[queue];
    const std::uint32_t prev = stream.prev[queue];
    if (prev != kNoSlot) slots_[prev].next[queue] = next;
    else list.head = next;
    if (next != kNoSlot) slots_[next].prev[queue] = prev;
    else list.tail = prev;
    stream.queued[queue] = false;
}

int StreamTable::slot_of(StreamId id) const noexcept {
    const Stream* stream = find(id);
    return stream != nullptr ? static_cast<int>(stream->slot) : -ENOENT;
}

// --- Frames from the peer -------------------------------------------------------------------------------------

// The stream a peer's frame names, opening the peer's streams up to it (section 3.2: a stream opens every lower one
// of its type). `receiving`: the frame is about the part we receive on (STREAM, RESET_STREAM, STREAM_DATA_BLOCKED)
// rather than the part we send on (MAX_STREAM_DATA, STOP_SENDING). `out` stays null for a stream already closed.
TransportError StreamTable::stream_for_frame(StreamId id, bool receiving, Stream*& out) noexcept {
    out = nullptr;
    if (receiving ? !can_receive(id, role_) : !can_send(id, role_)) return TransportError::stream_state_error;
    const int type = direction_of(id) == StreamDirection::bidirectional ? 0 : 1;
    const std::uint64_t index = index_of(id);
    if (locally_initiated(id, role_)) {
        if (index >= opened_[type].opened()) return TransportError::stream_state_error;
        out = find(id);
        return TransportError::no_error;
    }
    PeerStreams& peer = peer_streams_[type];
    const std::uint64_t before = peer.opened();
    const TransportError error = peer.on_stream(index);
    if (error != TransportError::no_error) return error;
    for (std::uint64_t i = before; i < peer.opened(); ++i) {
        // PeerStreams never lets more of the peer's streams be open than we have slots for.
        if (open_slot(stream_id(peer_of(role_), direction_of(id), i)) == nullptr) return TransportError::internal_error;
    }
    out = find(id);
    return TransportError::no_error;
}

// The peer's data on `stream` reaches `end`: both flow-control limits, the connection's over every stream's highest
// offset.
TransportError StreamTable::account_received(Stream& stream, std::uint64_t end) noexcept {
    const std::uint64_t before = stream.receive_credit.highest_received();
    if (end <= before) return TransportError::no_error;
    const std::uint64_t sum = received_sum_ + (end - before);
    if (stream.receive_credit.on_received(end) != TransportError::no_error ||
        connection_receive_.on_received(sum) != TransportError::no_error)
        return TransportError::flow_control_error;
    received_sum_ = sum;
    return TransportError::no_error;
}

void StreamTable::after_receive(Stream& stream) noexcept {
    ReceiveBuffer& buffer = stream.receive;
    if (stream.receive_state == ReceiveState::recv && buffer.final_size_known()) {
        stream.receive_state = ReceiveState::size_known;   // no more MAX_STREAM_DATA (section 3.2)
        stream.max_stream_data_resend = false;
    }
    if (stream.receive_state == ReceiveState::size_known &&
        buffer.read_offset() + buffer.readable() == buffer.final_size())
        stream.receive_state = ReceiveState::data_recvd;
    if (stream.receive_abandoned) {
        discard_readable(stream);
        return;
    }
    if (buffer.readable() != 0 || stream.receive_state == ReceiveState::data_recvd) push(kReadableQueue, stream);
}

void StreamTable::account_consumed(Stream& stream, std::uint64_t bytes) noexcept {
    if (bytes == 0) return;
    stream.receive_credit.on_consumed(bytes, now_ns_, smoothed_rtt_ns_);
    connection_receive_.on_consumed(bytes, now_ns_, smoothed_rtt_ns_);
    if (wants_max_stream_data(stream)) push(kControlQueue, stream);
}

// After stop_sending: what arrives is thrown away, and its credit given back so the connection does not stall.
void StreamTable::discard_readable(Stream& stream) noexcept {
    ReceiveBuffer& buffer = stream.receive;
    const std::size_t readable = buffer.readable();
    buffer.consume(readable);
    account_consumed(stream, readable);
    if (buffer.finished() && !reset_received(stream.receive_state) &&
        stream.receive_state != ReceiveState::data_read) {
        stream.receive_state = ReceiveState::data_read;
        maybe_close(stream);
    }
}

TransportError StreamTable::on_stream_frame(const StreamFrame& frame, bool* stored) noexcept {
    if (stored != nullptr) *stored = true;
    Stream* stream = nullptr;
    TransportError error = stream_for_frame(frame.stream_id, true, stream);
    if (error != TransportError::no_error || stream == nullptr) return error;
    if (frame.offset > kMaxVarint || frame.data.size() > kMaxVarint - frame.offset)
        return TransportError::frame_encoding_error;
    const std::uint64_t end = frame.offset + frame.data.size();
    error = account_received(*stream, end);
    if (error != TransportError::no_error) return error;
    ReceiveBuffer& buffer = stream->receive;
    if (reset_received(stream->receive_state)) {   // late data: only its final size matters now
        if (end > buffer.final_size() || (frame.fin && end != buffer.final_size()))
            return TransportError::final_size_error;
        return TransportError::no_error;
    }
    bool kept = true;
    error = buffer.receive(frame.offset, frame.data.data(), frame.data.size(), frame.fin, &kept);
    if (error != TransportError::no_error) return error;
    if (!kept && stored != nullptr) *stored = false;
    after_receive(*stream);
    return TransportError::no_error;
}

TransportError StreamTable::on_reset_stream(const ResetStreamFrame& frame) noexcept {
    Stream* stream = nullptr;
    TransportError error = stream_for_frame(frame.stream_id, true, stream);
    if (error != TransportError::no_error || stream == nullptr) return error;
    if (frame.final_size > kMaxVarint) return TransportError::frame_encoding_error;
    error = account_received(*stream, frame.final_size);
    if (error != TransportError::no_error) return error;
    ReceiveBuffer& buffer = stream->receive;
    if (reset_received(stream->receive_state))
        return frame.final_size == buffer.final_size() ? TransportError::no_error : TransportError::final_size_error;
    error = buffer.receive(frame.final_size, nullptr, 0, true);   // the final size rules, no data
    if (error != TransportError::no_error) return error;
    // Every byte is here already (or was read): deliver it rather than the reset (section 3.2).
    if (stream->receive_state == ReceiveState::data_recvd || stream->receive_state == ReceiveState::data_read)
        return TransportError::no_error;
    // The bytes the application will now never read count as consumed for the connection (section 4.5).
    connection_receive_.on_consumed(frame.final_size - buffer.read_offset(), now_ns_, smoothed_rtt_ns_);
    stream->receive_state = ReceiveState::reset_recvd;
    stream->peer_reset_error = frame.application_error_code;
    stream->max_stream_data_resend = false;
    stream->stop_sending_due = false;
    if (stream->receive_abandoned) {
        stream->receive_state = ReceiveState::reset_read;
        maybe_close(*stream);
        return TransportError::no_error;
    }
    push(kReadableQueue, *stream);
    return TransportError::no_error;
}

TransportError StreamTable::on_stop_sending(const StopSendingFrame& frame) noexcept {
    Stream* stream = nullptr;
    const TransportError error = stream_for_frame(frame.stream_id, false, stream);
    if (error != TransportError::no_error || stream == nullptr) return error;
    stream->stop_received = true;
    stream->peer_stop_error = frame.application_error_code;
    // Section 3.5: answer with RESET_STREAM (in Data Sent we may, and do, reset at once rather than wait).
    if (can_reset(stream->send_state)) start_reset(*stream, frame.application_error_code);
    return TransportError::no_error;
}

TransportError StreamTable::on_max_data(const MaxDataFrame& frame) noexcept {
    connection_send_.on_peer_limit(frame.maximum_data);
    return TransportError::no_error;
}

TransportError StreamTable::on_max_stream_data(const MaxStreamDataFrame& frame) noexcept {
    Stream* stream = nullptr;
    const TransportError error = stream_for_frame(frame.stream_id, false, stream);
    if (error != TransportError::no_error || stream == nullptr) return error;
    stream->send_credit.on_peer_limit(frame.maximum_stream_data);
    return TransportError::no_error;
}

TransportError StreamTable::on_max_streams(const MaxStreamsFrame& frame) noexcept {
    if (frame.maximum_streams > kMaxStreamsLimit) return TransportError::frame_encoding_error;
    opened_[frame.bidirectional ? 0 : 1].on_peer_limit(frame.maximum_streams);
    return TransportError::no_error;
}

TransportError StreamTable::on_data_blocked(const DataBlockedFrame&) noexcept {
    ++peer_blocked_signals_;
    return TransportError::no_error;
}

TransportError StreamTable::on_stream_data_blocked(const StreamDataBlockedFrame& frame) noexcept {
    Stream* stream = nullptr;
    const TransportError error = stream_for_frame(frame.stream_id, true, stream);
    if (error == TransportError::no_error) ++peer_blocked_signals_;
    return error;
}

TransportError StreamTable::on_streams_blocked(const StreamsBlockedFrame& frame) noexcept {
    if (frame.maximum_streams > kMaxStreamsLimit) return TransportError::frame_encoding_error;
    ++peer_blocked_signals_;
    return TransportError::no_error;
}

// --- Frames to the peer ---------------------------------------------------------------------------------------

bool StreamTable::wants_max_stream_data(const Stream& stream) const noexcept {
    return stream.receive_state == ReceiveState::recv && !stream.receive_abandoned &&
           (stream.receive_credit.update_due() || stream.max_stream_data_resend);
}

bool StreamTable::wants_other_control(const Stream& stream) const noexcept {
    return stream.stream_data_blocked_due || stream.reset_due || stream.stop_sending_due;
}

bool StreamTable::wants_to_send() const noexcept {
    return connection_receive_.update_due() || max_data_resend_ || peer_streams_[0].update_due() ||
           peer_streams_[1].update_due() || max_streams_resend_[0] || max_streams_resend_[1] || data_blocked_due_ ||
           streams_blocked_due_[0] || streams_blocked_due_[1] || queues_[kControlQueue].head != kNoSlot ||
           queues_[kSendQueue].head != kNoSlot;
}

std::size_t StreamTable::write_frames(ByteWriter& out, SentStreamFrames& record) noexcept {
    using Kind = SentStreamFrames::Kind;
    record.count = 0;
    if (out.failed()) return 0;
    const std::size_t start = out.size();
    bool room = true;   // false once a frame did not fit: the packet is done
    auto add = [&](const auto& frame, const SentStreamFrames::Entry& what) noexcept {
        if (!room || record.full() || !put(out, frame)) {
            room = false;
            return false;
        }
        record.entries[record.count++] = what;
        return true;
    };

    // Flow-control updates first: a peer waiting for credit waits for these.
    if (connection_receive_.update_due() || max_data_resend_) {
        const bool update = connection_receive_.update_due();
        const std::uint64_t limit = update ? connection_receive_.next_limit() : connection_receive_.limit();
        if (add(MaxDataFrame{limit}, entry(Kind::max_data, 0, limit))) {
            if (update) connection_receive_.on_update_sent(now_ns_);
            max_data_resend_ = false;
        }
    }
    for (int type = 0; type < 2; ++type) {
        PeerStreams& peer = peer_streams_[type];
        if (!peer.update_due() && !max_streams_resend_[type]) continue;
        const bool update = peer.update_due();
        const std::uint64_t limit = update ? peer.next_limit() : peer.limit();
        if (add(MaxStreamsFrame{type == 0, limit},
                entry(type == 0 ? Kind::max_streams_bidi : Kind::max_streams_uni, 0, limit))) {
            if (update) peer.on_update_sent();
            max_streams_resend_[type] = false;
        }
    }
    for (std::uint32_t slot = queues_[kControlQueue].head; slot != kNoSlot && room;) {
        Stream& stream = slots_[slot];
        slot = stream.next[kControlQueue];
        if (!wants_max_stream_data(stream)) continue;
        const bool update = stream.receive_credit.update_due();
        const std::uint64_t limit = update ? stream.receive_credit.next_limit() : stream.receive_credit.limit();
        if (add(MaxStreamDataFrame{stream.id, limit}, entry(Kind::max_stream_data, stream.id, limit))) {
            if (update) stream.receive_credit.on_update_sent(now_ns_);
            stream.max_stream_data_resend = false;
        }
    }

    // Blocked signals.
    if (data_blocked_due_ && add(DataBlockedFrame{connection_send_.limit()},
                                 entry(Kind::data_blocked, 0, connection_send_.limit())))
        data_blocked_due_ = false;
    for (int type = 0; type < 2; ++type) {
        const std::uint64_t limit = opened_[type].limit();
        if (streams_blocked_due_[type] &&
            add(StreamsBlockedFrame{type == 0, limit},
                entry(type == 0 ? Kind::streams_blocked_bidi : Kind::streams_blocked_uni, 0, limit)))
            streams_blocked_due_[type] = false;
    }

    // The rest of each stream's control frames; a stream leaves the queue once it has none due.
    for (std::uint32_t slot = queues_[kControlQueue].head; slot != kNoSlot && room;) {
        Stream& stream = slots_[slot];
        slot = stream.next[kControlQueue];
        if (stream.stream_data_blocked_due) {
            const std::uint64_t limit = stream.send_credit.limit();
            if (!sending(stream.send_state) ||
                add(StreamDataBlockedFrame{stream.id, limit}, entry(Kind::stream_data_blocked, stream.id, limit)))
                stream.stream_data_blocked_due = false;
        }
        if (stream.reset_due &&
            add(ResetStreamFrame{stream.id, stream.reset_error, stream.reset_final_size},
                entry(Kind::reset_stream, stream.id, stream.reset_final_size)))
            stream.reset_due = false;
        if (stream.stop_sending_due) {
            if (!waiting_for_data(stream.receive_state) ||
                add(StopSendingFrame{stream.id, stream.stop_error}, entry(Kind::stop_sending, stream.id, 0)))
                stream.stop_sending_due = false;
        }
        if (!wants_max_stream_data(stream) && !wants_other_control(stream)) unlink(kControlQueue, stream);
    }

    // STREAM data, one frame per stream in turn. With a few bytes of room, next_chunk() saying no means the stream
    // has nothing to send (not that nothing fits), so the stream can leave the queue.
    constexpr std::size_t kSmallestStreamFrame = 3;   // type, stream ID, length
    while (room && !record.full() && queues_[kSendQueue].head != kNoSlot && out.remaining() >= kSmallestStreamFrame) {
        Stream& stream = slots_[queues_[kSendQueue].head];
        SendBuffer::Chunk chunk;
        if (!can_reset(stream.send_state) ||
            !stream.send.next_chunk(out.remaining(), ~std::uint64_t{0}, chunk)) {
            unlink(kSendQueue, stream);   // nothing (left) to send
            continue;
        }
        cut(chunk, stream_data_that_fits(stream.id, chunk.offset, out.remaining(), true));
        cut(chunk, chunk.first_size);   // the bytes up to the ring's end; the rest goes in the next frame
        if ((chunk.length == 0 && !chunk.fin) ||
            stream_frame_overhead(stream.id, chunk.offset, chunk.length, true) + chunk.length > out.remaining())
            break;
        const StreamFrame frame{stream.id, chunk.offset, Bytes{chunk.first, chunk.length}, chunk.fin, true};
        if (!encode(out, frame)) break;   // cannot happen: the size was checked
        stream.send.on_sent(chunk);
        SentStreamFrames::Entry& sent = record.entries[record.count++];
        sent = entry(Kind::stream, stream.id, chunk.offset);
        sent.length = static_cast<std::uint32_t>(chunk.length);
        sent.fin = chunk.fin;
        if (chunk.fin) stream.send_state = SendState::data_sent;
        else if (stream.send_state == SendState::ready) stream.send_state = SendState::send;
        unlink(kSendQueue, stream);   // to the back: round-robin
        push(kSendQueue, stream);
    }
    return out.size() - start;
}

void StreamTable::on_acked(const SentStreamFrames& record) noexcept {
    using Kind = SentStreamFrames::Kind;
    for (std::uint32_t i = 0; i < record.count && i < SentStreamFrames::kMaxFrames; ++i) {
        const SentStreamFrames::Entry& e = record.entries[i];
        if (e.kind != Kind::stream && e.kind != Kind::reset_stream) continue;   // nothing to release for the rest
        Stream* stream = find(e.stream_id);
        if (stream == nullptr) continue;   // closed since
        if (e.kind == Kind::stream) {
            if (stream->send_state != SendState::send && stream->send_state != SendState::data_sent) continue;
            stream->send.on_acked(e.value, e.length, e.fin);
            if (stream->send_state == SendState::data_sent && stream->send.all_acked()) {
                stream->send_state = SendState::data_recvd;
                maybe_close(*stream);
            }
        } else if (stream->send_state == SendState::reset_sent) {
            stream->send_state = SendState::reset_recvd;
            stream->reset_due = false;
            maybe_close(*stream);
        }
    }
}

void StreamTable::on_lost(const SentStreamFrames& record) noexcept {
    using Kind = SentStreamFrames::Kind;
    for (std::uint32_t i = 0; i < record.count && i < SentStreamFrames::kMaxFrames; ++i) {
        const SentStreamFrames::Entry& e = record.entries[i];
        switch (e.kind) {
            case Kind::max_data:
                if (e.value == connection_receive_.limit()) max_data_resend_ = true;
                continue;
            case Kind::max_streams_bidi:
            case Kind::max_streams_uni: {
                const int type = e.kind == Kind::max_streams_bidi ? 0 : 1;
                if (e.value == peer_streams_[type].limit()) max_streams_resend_[type] = true;
                continue;
            }
            case Kind::data_blocked:
                if (e.value == connection_send_.limit() && connection_send_.available() == 0) data_blocked_due_ = true;
                continue;
            case Kind::streams_blocked_bidi:
            case Kind::streams_blocked_uni: {
                const OpenedStreams& opened = opened_[e.kind == Kind::streams_blocked_bidi ? 0 : 1];
                if (e.value == opened.limit() && opened.opened() >= opened.limit())
                    streams_blocked_due_[e.kind == Kind::streams_blocked_bidi ? 0 : 1] = true;
                continue;
            }
            default:
                break;
        }
        Stream* stream = find(e.stream_id);
        if (stream == nullptr) continue;   // closed since: nothing to send again
        switch (e.kind) {
            case Kind::stream:
                if (stream->send_state != SendState::send && stream->send_state != SendState::data_sent) break;
                stream->send.on_lost(e.value, e.length, e.fin);
                push(kSendQueue, *stream);
                break;
            case Kind::max_stream_data:
                if (stream->receive_state == ReceiveState::recv && !stream->receive_abandoned &&
                    e.value == stream->receive_credit.limit()) {
                    stream->max_stream_data_resend = true;
                    push(kControlQueue, *stream);
                }
                break;
            case Kind::stream_data_blocked:
                if (sending(stream->send_state) && e.value == stream->send_credit.limit() &&
                    stream->send_credit.available() == 0) {
                    stream->stream_data_blocked_due = true;
                    push(kControlQueue, *stream);
                }
                break;
            case Kind::reset_stream:
                if (stream->send_state == SendState::reset_sent) {
                    stream->reset_due = true;
                    push(kControlQueue, *stream);
                }
                break;
            case Kind::stop_sending:
                if (stream->receive_abandoned && waiting_for_data(stream->receive_state)) {
                    stream->stop_sending_due = true;
                    push(kControlQueue, *stream);
                }
                break;
            default:
                break;
        }
    }
}

// --- The application: sending ---------------------------------------------------------------------------------

std::int64_t StreamTable::open_stream(StreamDirection direction) noexcept {
    const int type = direction == StreamDirection::bidirectional ? 0 : 1;
    OpenedStreams& opened = opened_[type];
    if (opened.opened() >= opened.limit()) {
        if (opened.take_blocked_signal()) streams_blocked_due_[type] = true;
        return -EAGAIN;
    }
    if (pools_[type].free == kNoSlot) return -ENOBUFS;   // pools 0 and 1 are ours, by type
    std::uint64_t index = 0;
    (void)opened.open(index);
    const StreamId id = stream_id(role_, direction, index);
    (void)open_slot(id);
    return static_cast<std::int64_t>(id);
}

StreamTable::Stream* StreamTable::sending_stream(StreamId id, int& error) noexcept {
    if (!can_send(id, role_)) {
        error = -EINVAL;
        return nullptr;
    }
    Stream* stream = find(id);
    if (stream == nullptr) error = -ENOENT;
    return stream;
}

StreamTable::Stream* StreamTable::receiving_stream(StreamId id, int& error) noexcept {
    if (!can_receive(id, role_)) {
        error = -EINVAL;
        return nullptr;
    }
    Stream* stream = find(id);
    if (stream == nullptr) error = -ENOENT;
    return stream;
}

std::uint64_t StreamTable::commit_room(const Stream& stream) const noexcept {
    if (!sending(stream.send_state) || stream.finish_requested) return 0;
    return smallest<std::uint64_t>(stream.send.room(),
                                   smallest(stream.send_credit.available(), connection_send_.available()));
}

// Credit is taken when bytes are written, so a stream's buffered bytes may always be sent. A write cut short by a
// limit makes the blocked signal for that limit due (once per limit).
void StreamTable::note_written(Stream& stream, std::size_t requested, std::size_t written) noexcept {
    if (written != 0) {
        stream.send_credit.on_sent(written);
        connection_send_.on_sent(written);
        push(kSendQueue, stream);
    }
    if (written == requested) return;
    if (stream.send_credit.take_blocked_signal()) {
        stream.stream_data_blocked_due = true;
        push(kControlQueue, stream);
    }
    if (connection_send_.take_blocked_signal()) data_blocked_due_ = true;
}

std::int64_t StreamTable::write(StreamId id, const void* data, std::size_t length) noexcept {
    int error = 0;
    Stream* stream = sending_stream(id, error);
    if (stream == nullptr) return error;
    if (!sending(stream->send_state) || stream->finish_requested) return -EPIPE;
    const std::size_t room = static_cast<std::size_t>(smallest<std::uint64_t>(length, commit_room(*stream)));
    const std::size_t written = room != 0 ? stream->send.write(data, room) : 0;
    note_written(*stream, length, written);
    return static_cast<std::int64_t>(written);
}

std::size_t StreamTable::send_room(StreamId id) const noexcept {
    const Stream* stream = can_send(id, role_) ? find(id) : nullptr;
    return stream != nullptr ? static_cast<std::size_t>(commit_room(*stream)) : 0;
}

int StreamTable::finish(StreamId id) noexcept {
    int error = 0;
    Stream* stream = sending_stream(id, error);
    if (stream == nullptr) return error;
    if (!sending(stream->send_state) || stream->finish_requested) return -EPIPE;
    stream->finish_requested = true;
    stream->send.finish();
    push(kSendQueue, *stream);
    return 0;
}

void StreamTable::start_reset(Stream& stream, std::uint64_t application_error) noexcept {
    stream.send_state = SendState::reset_sent;
    stream.reset_error = application_error;
    stream.reset_final_size = stream.send.write_offset();   // every byte written took credit
    stream.reset_due = true;
    stream.stream_data_blocked_due = false;
    unlink(kSendQueue, stream);
    push(kControlQueue, stream);
}

int StreamTable::reset(StreamId id, std::uint64_t application_error) noexcept {
    int error = 0;
    Stream* stream = sending_stream(id, error);
    if (stream == nullptr) return error;
    if (!can_reset(stream->send_state)) return -EPIPE;
    start_reset(*stream, application_error);
    return 0;
}

int StreamTable::send_message(StreamId id, const void* data, std::size_t length) noexcept {
    int error = 0;
    Stream* stream = sending_stream(id, error);
    if (stream == nullptr) return error;
    if (!sending(stream->send_state) || stream->finish_requested) return -EPIPE;
    if (length > config_.max_message_bytes) return -EMSGSIZE;
    const std::size_t total = varint_size(length) + length;
    if (total > stream->send_credit.available() || total > connection_send_.available()) return -EAGAIN;
    const int result = write_message(stream->send, data, length, config_.max_message_bytes);
    if (result != 0) return result;
    note_written(*stream, total, total);
    return 0;
}

// --- The application: receiving -------------------------------------------------------------------------------

int StreamTable::read(StreamId id, StreamReadView& out) noexcept {
    out = StreamReadView{};
    int error = 0;
    Stream* stream = receiving_stream(id, error);
    if (stream == nullptr) return error;
    if (stream->receive_abandoned) return -EPIPE;
    if (reset_received(stream->receive_state)) {
        out.reset = true;
        out.error_code = stream->peer_reset_error;
        if (stream->receive_state == ReceiveState::reset_recvd) {
            stream->receive_state = ReceiveState::reset_read;
            maybe_close(*stream);
        }
        return 0;
    }
    const ReceiveBuffer& buffer = stream->receive;
    out.data = buffer.peek();
    out.fin = buffer.final_size_known() && buffer.read_offset() + out.data.size() == buffer.final_size();
    if (out.fin && out.data.size() == 0 && stream->receive_state != ReceiveState::data_read) {
        stream->receive_state = ReceiveState::data_read;
        maybe_close(*stream);
    }
    return 0;
}

int StreamTable::consume(StreamId id, std::size_t bytes) noexcept {
    int error = 0;
    Stream* stream = receiving_stream(id, error);
    if (stream == nullptr) return error;
    ReceiveBuffer& buffer = stream->receive;
    const std::size_t taken = smallest(bytes, buffer.readable());
    buffer.consume(taken);
    account_consumed(*stream, taken);
    if (buffer.finished() && stream->receive_state == ReceiveState::data_recvd) {
        stream->receive_state = ReceiveState::data_read;
        maybe_close(*stream);
    }
    return 0;
}

int StreamTable::stop_sending(StreamId id, std::uint64_t application_error) noexcept {
    int error = 0;
    Stream* stream = receiving_stream(id, error);
    if (stream == nullptr) return error;
    const ReceiveState state = stream->receive_state;
    if (stream->receive_abandoned || state == ReceiveState::data_read || state == ReceiveState::reset_read)
        return -EPIPE;
    stream->receive_abandoned = true;
    stream->stop_error = application_error;
    stream->max_stream_data_resend = false;
    unlink(kReadableQueue, *stream);
    if (state == ReceiveState::reset_recvd) {
        stream->receive_state = ReceiveState::reset_read;
        maybe_close(*stream);
        return 0;
    }
    if (waiting_for_data(state)) {   // section 3.5: only while data may still come
        stream->stop_sending_due = true;
        push(kControlQueue, *stream);
    }
    discard_readable(*stream);
    return 0;
}

bool StreamTable::next_readable(StreamId& id) noexcept {
    const std::uint32_t slot = queues_[kReadableQueue].head;
    if (slot == kNoSlot) return false;
    unlink(kReadableQueue, slots_[slot]);
    id = slots_[slot].id;
    return true;
}

int StreamTable::status(StreamId id, StreamStatus& out) const noexcept {
    const Stream* stream = find(id);
    if (stream == nullptr) return -ENOENT;
    out.send = stream->send_state;
    out.receive = stream->receive_state;
    out.stop_sending_received = stream->stop_received;
    out.peer_stop_code = stream->peer_stop_error;
    out.send_credit = can_send(id, role_) ? commit_room(*stream) : 0;
    return 0;
}

int StreamTable::next_message(StreamId id, const std::uint8_t*& data, std::size_t& length) noexcept {
    int error = 0;
    Stream* stream = receiving_stream(id, error);
    if (stream == nullptr) return error;
    if (stream->receive_abandoned) return -EPIPE;
    if (reset_received(stream->receive_state)) {
        if (stream->receive_state == ReceiveState::reset_recvd) {
            stream->receive_state = ReceiveState::reset_read;
            maybe_close(*stream);
        }
        return -ECONNRESET;
    }
    if (config_.max_message_bytes == 0) return -EMSGSIZE;
    ReceiveBuffer& buffer = stream->receive;
    const std::uint64_t before = buffer.read_offset();
    const int result = stream->reader.next(buffer, data, length);
    account_consumed(*stream, buffer.read_offset() - before);   // next() released the previous message
    if (result != 0) return result;
    if (buffer.finished()) {
        if (stream->receive_state != ReceiveState::data_read) {
            stream->receive_state = ReceiveState::data_read;
            maybe_close(*stream);
        }
        return -ENODATA;
    }
    // Everything arrived and what is left is not a whole message: the peer ended the stream mid-message.
    if (stream->receive_state == ReceiveState::data_recvd) return -EBADMSG;
    return 0;
}

int StreamTable::release_message(StreamId id) noexcept {
    int error = 0;
    Stream* stream = receiving_stream(id, error);
    if (stream == nullptr) return error;
    ReceiveBuffer& buffer = stream->receive;
    const std::uint64_t before = buffer.read_offset();
    stream->reader.release(buffer);
    account_consumed(*stream, buffer.read_offset() - before);
    if (buffer.finished() && stream->receive_state == ReceiveState::data_recvd) {
        stream->receive_state = ReceiveState::data_read;
        maybe_close(*stream);
    }
    return 0;
}

}  // namespace cf::quic
