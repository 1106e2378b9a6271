#include "engine/runtime/bridge.hpp"

#include <sys/random.h>

#include <cerrno>
#include <new>

#include "platform/os/last_error.hpp"

namespace cf {

using platform::fail;

namespace {

constexpr std::uint32_t kRxBurst = 32;
constexpr std::uint32_t kMinDatagramBytes = wire::kFrameHeaderBytes + 8;
constexpr std::uint32_t kMaxBridgeTopics = 4096;

// A random non-zero session id, so a restarted bridge is told apart from its earlier self.
std::uint32_t new_session() noexcept {
    std::uint32_t session = 0;
    if (getrandom(&session, sizeof session, GRND_NONBLOCK) != sizeof session) {
        // No entropy yet (early boot): the clock's low bits still differ between runs.
        session = static_cast<std::uint32_t>(default_clock().now().femtos() >> 10);
    }
    return session != 0 ? session : 1;
}

}  // namespace

struct Bridge::Outbound {
    EngineTopic* topic = nullptr;
    std::uint32_t id = 0;
    bus::Subscriber subscriber;
    std::uint64_t forwarded = 0;
    std::uint64_t too_large = 0;
    std::uint64_t dropped = 0;
};

struct Bridge::Inbound {
    EngineTopic* topic = nullptr;
    std::uint32_t id = 0;
    std::uint32_t depth = 0;
    bus::Publisher publisher;
    SequenceWindow window;
    BridgeTopicStats stats;
};

Bridge::Bridge() noexcept = default;

int Bridge::create(Engine& engine, const BridgeConfig& config, std::unique_ptr<Bridge>& out) noexcept {
    const std::uint32_t buffer_bytes = config.udp.pool.buffer_bytes;
    const std::uint32_t largest = buffer_bytes < wire::kMaxUdpPayloadBytes ? buffer_bytes : wire::kMaxUdpPayloadBytes;
    const std::uint32_t auth_bytes = config.key.set ? wire::kAuthHeaderBytes : 0;
    if (config.max_datagram_bytes < kMinDatagramBytes + auth_bytes || config.max_datagram_bytes > largest) {
        return fail(EINVAL, "bridge: max_datagram_bytes %u is outside %u .. %u (the packet buffers' size, at most %u)",
                    config.max_datagram_bytes, kMinDatagramBytes + auth_bytes, largest, wire::kMaxUdpPayloadBytes);
    }
    if (config.next_key.set && !config.key.set) return fail(EINVAL, "bridge: next_key is set but key is not");
    if (config.max_topics == 0 || config.max_topics > kMaxBridgeTopics) {
        return fail(EINVAL, "bridge: max_topics %u is outside 1..%u", config.max_topics, kMaxBridgeTopics);
    }
    if (config.probe_interval < Duration{}) return fail(EINVAL, "bridge: probe_interval is negative");
    if (config.max_sequence_jump == 0) return fail(EINVAL, "bridge: max_sequence_jump must be at least 1");
    std::unique_ptr<Bridge> bridge(new (std::nothrow) Bridge());
    if (!bridge) return fail(ENOMEM, "bridge: out of memory");
    bridge->outbound_.reset(new (std::nothrow) Outbound[config.max_topics]);
    bridge->inbound_.reset(new (std::nothrow) Inbound[config.max_topics]);
    if (!bridge->outbound_ || !bridge->inbound_) {
        return fail(ENOMEM, "bridge: out of memory for %u topics", config.max_topics);
    }
    if (const int status = OffsetEstimator::create(config.offset, bridge->estimator_); status != 0) return status;
    if (const int status = bridge->probes_.open(config.max_probe_age); status != 0) return status;
    if (config.key.set) {
        const bool next = config.next_key.set;
        const int status = bridge->auth_.open(config.key.id, config.key.bytes, next ? &config.next_key.id : nullptr,
                                              next ? &config.next_key.bytes : nullptr);
        if (status != 0) return status;
    }
    if (const int status = drivers::open_udp(config.driver, config.udp, bridge->driver_); status != 0) return status;
    bridge->engine_ = &engine;
    bridge->max_topics_ = config.max_topics;
    bridge->peer_ = config.peer;
    bridge->session_ = new_session();
    bridge->auth_bytes_ = auth_bytes;
    bridge->frame_room_ = config.max_datagram_bytes - auth_bytes;
    bridge->probe_interval_ = config.probe_interval;
    bridge->max_sequence_jump_ = config.max_sequence_jump;
    bridge->now_ = config.now;
    bridge->now_context_ = config.now_context;
    out = std::move(bridge);
    return 0;
}

Bridge::~Bridge() {
    close_endpoints();
    if (driver_) {
        // Buffers still ours go back before the driver (and its pool) goes.
        for (std::uint32_t i = 0; i < queued_; ++i) driver_->release(queue_[i]);
        if (open_ != nullptr) driver_->release(open_);
    }
    queued_ = 0;
    open_ = nullptr;
}

void Bridge::close_endpoints() noexcept {
    for (std::uint32_t i = 0; i < outbound_count_; ++i) {
        Outbound& outbound = outbound_[i];
        if (outbound.topic->shared()) outbound.topic->shared_topic().close_subscriber(outbound.subscriber);
        else outbound.subscriber.close();
    }
    for (std::uint32_t i = 0; i < inbound_count_; ++i) {
        Inbound& inbound = inbound_[i];
        if (inbound.topic->shared()) inbound.topic->shared_topic().close_publisher(inbound.publisher);
        else inbound.publisher.close();
    }
    outbound_count_ = 0;
    inbound_count_ = 0;
}

Instant Bridge::now() const noexcept { return now_ != nullptr ? now_(now_context_) : default_clock().now(); }

int Bridge::forward(EngineTopic* topic, std::uint32_t topic_id) noexcept {
    if (topic == nullptr) return fail(EINVAL, "bridge forward: the topic is NULL");
    if (&topic->engine() != engine_) {
        return fail(EINVAL, "bridge forward: topic '%s' belongs to another engine", topic->name().c_str());
    }
    for (std::uint32_t i = 0; i < outbound_count_; ++i) {
        if (outbound_[i].id == topic_id) {
            return fail(EEXIST, "bridge forward: topic id %u is already forwarded (topic '%s')", topic_id,
                        outbound_[i].topic->name().c_str());
        }
    }
    if (outbound_count_ == max_topics_) {
        return fail(ENOSPC, "bridge forward: all %u forward places are taken", max_topics_);
    }
    Outbound& outbound = outbound_[outbound_count_];
    const int status = topic->shared() ? topic->shared_topic().open_subscriber(outbound.subscriber)
                                       : bus::Subscriber::open(topic->topic(), outbound.subscriber);
    if (status != 0) return status;
    outbound.topic = topic;
    outbound.id = topic_id;
    outbound.forwarded = outbound.too_large = outbound.dropped = 0;
    ++outbound_count_;
    return 0;
}

int Bridge::republish(std::uint32_t topic_id, EngineTopic* topic) noexcept {
    if (topic == nullptr) return fail(EINVAL, "bridge republish: the topic is NULL");
    if (&topic->engine() != engine_) {
        return fail(EINVAL, "bridge republish: topic '%s' belongs to another engine", topic->name().c_str());
    }
    if (find_inbound(topic_id) != nullptr) {
        return fail(EEXIST, "bridge republish: topic id %u is already republished (on topic '%s')", topic_id,
                    find_inbound(topic_id)->topic->name().c_str());
    }
    if (inbound_count_ == max_topics_) {
        return fail(ENOSPC, "bridge republish: all %u republish places are taken", max_topics_);
    }
    Inbound& inbound = inbound_[inbound_count_];
    HybridLogicalClock& clock = engine_->clock();
    const int status = topic->shared() ? topic->shared_topic().open_publisher(clock, inbound.publisher)
                                       : bus::Publisher::open(topic->topic(), clock, inbound.publisher);
    if (status != 0) return status;
    inbound.topic = topic;
    inbound.id = topic_id;
    inbound.depth = topic->topic().depth();
    inbound.window.clear();
    inbound.stats = BridgeTopicStats{};
    ++inbound_count_;
    return 0;
}

int Bridge::set_peer(const drivers::PeerAddress& peer) noexcept {
    if (peer.length == 0) return fail(EINVAL, "bridge: the peer address is unset");
    peer_ = peer;
    return 0;
}

int Bridge::set_next_key(std::uint8_t id, const std::uint8_t (&bytes)[wire::kMacKeyBytes]) noexcept {
    return auth_.set_next(id, bytes);
}

int Bridge::rotate_key() noexcept { return auth_.rotate(); }

Bridge::Inbound* Bridge::find_inbound(std::uint32_t topic_id) noexcept {
    // A handful of ids per bridge: a scan of a small contiguous array beats hashing.
    for (std::uint32_t i = 0; i < inbound_count_; ++i) {
        if (inbound_[i].id == topic_id) return &inbound_[i];
    }
    return nullptr;
}

int Bridge::topic_stats(std::uint32_t topic_id, BridgeTopicStats& out) const noexcept {
    bool found = false;
    BridgeTopicStats stats;
    for (std::uint32_t i = 0; i < inbound_count_; ++i) {
        if (inbound_[i].id != topic_id) continue;
        stats = inbound_[i].stats;
        found = true;
    }
    for (std::uint32_t i = 0; i < outbound_count_; ++i) {
        const Outbound& outbound = outbound_[i];
        if (outbound.id != topic_id) continue;
        stats.forwarded = outbound.forwarded;
        stats.forward_too_large = outbound.too_large;
        stats.forward_dropped = outbound.dropped;
        stats.source_lost = outbound.subscriber.lost();
        found = true;
    }
    if (!found) return fail(ENOENT, "bridge: topic id %u is neither forwarded nor republished", topic_id);
    out = stats;
    return 0;
}

int Bridge::clock_offset(OffsetEstimator::Estimate& out) const noexcept {
    const OffsetEstimator::Estimate estimate = estimator_->estimate_at(now());
    if (!estimate.valid) {
        return fail(EAGAIN, "bridge: no clock offset yet (%llu probes answered)",
                    static_cast<unsigned long long>(stats_.probes_answered));
    }
    out = estimate;
    return 0;
}

// ---- the polling step ----

int Bridge::poll() noexcept {
    handled_ = 0;
    int error = 0;
    if (queued_ != 0) {
        if (const int status = flush(); status < 0) error = status;
    }

    drivers::PacketBuffer* received[kRxBurst];
    const int count = driver_->rx_burst(received, kRxBurst);
    if (count < 0) {
        ++stats_.rx_errors;
        error = count;
    }
    for (int i = 0; i < count; ++i) {
        drivers::PacketBuffer* buffer = received[i];
        if (peer_.length == 0 || !(buffer->peer == peer_)) {
            ++stats_.foreign_datagrams;
        } else if (buffer->segment_size == 0) {
            receive_datagram(buffer->data, buffer->length);
        } else {   // GRO: several datagrams of segment_size bytes (the last may be shorter)
            for (std::uint32_t at = 0; at < buffer->length; at += buffer->segment_size) {
                const std::uint32_t left = buffer->length - at;
                receive_datagram(buffer->data + at, left < buffer->segment_size ? left : buffer->segment_size);
            }
        }
        driver_->release(buffer);
    }

    if (peer_.length != 0) {
        if (probe_interval_ > Duration{}) {
            const Instant time = now();
            if (!probed_ || time - last_probe_ >= probe_interval_) {
                last_probe_ = time;
                probed_ = true;
                send_probe();
            }
        }
        for (std::uint32_t i = 0; i < outbound_count_; ++i) {
            // Each message may start a datagram (one queue place, one buffer) and the last one needs sealing:
            // take only as many as surely fit, so nothing read from a topic is ever dropped for lack of room.
            const std::uint32_t queue_room = queued_ + 1 < kTxQueue ? kTxQueue - queued_ - 1 : 0;
            const std::uint32_t buffers = driver_->pool().available();
            std::uint32_t budget = queue_room < buffers ? queue_room : buffers;
            if (budget > bus::kMaxPollBatch) budget = bus::kMaxPollBatch;
            if (budget == 0) break;
            drain(outbound_[i], budget);
        }
    }

    if (open_ != nullptr && writer_.frames() != 0) (void)seal_datagram();
    if (queued_ != 0) {
        if (const int status = flush(); status < 0) error = status;
    }
    return error < 0 ? error : static_cast<int>(handled_);
}

int Bridge::drain(Outbound& outbound, std::uint32_t budget) noexcept {
    const std::uint32_t count = outbound.subscriber.receive(batch_, budget);
    for (std::uint32_t i = 0; i < count; ++i) {
        const bus::Message& message = batch_[i];
        if (wire::frame_bytes(message.length) > frame_room_) {
            ++outbound.too_large;
            continue;
        }
        const wire::FrameFields fields{outbound.id, message.sequence, message.stamp, session_, 0};
        if (!append(fields, message.data, message.length)) {
            ++outbound.dropped;   // cannot happen within the budget; counted rather than assumed
            continue;
        }
        ++outbound.forwarded;
        ++stats_.frames_out;
        ++handled_;
    }
    outbound.subscriber.release();
    return static_cast<int>(count);
}

void Bridge::send_probe() noexcept {
    ControlMessage probe;
    probe.kind = ControlKind::probe;
    probe.t1 = now();   // as late as possible: t1 must not be after the probe leaves
    if (!probes_.record(probe.t1, probe.nonce)) {
        ++stats_.probes_deferred;
        return;
    }
    std::byte payload[kControlBytes];
    encode_control(probe, payload);
    const wire::FrameFields fields{0, probe_number_, HlcStamp{}, session_, wire::kFrameControl};
    if (!append(fields, payload, kControlBytes)) {
        ++stats_.control_dropped;   // its slot stays taken until pushed out: nobody can answer an unsent nonce
        return;
    }
    ++probe_number_;
    ++stats_.probes_sent;
    ++handled_;
}

void Bridge::receive_datagram(const std::byte* data, std::size_t size) noexcept {
    ++stats_.datagrams_in;
    if (auth_bytes_ != 0) {
        switch (auth_.verify(data, size)) {
            case wire::AuthVerdict::good: break;
            case wire::AuthVerdict::bad: ++stats_.auth_failed; return;
            case wire::AuthVerdict::unknown_key: ++stats_.auth_unknown_key; return;
            case wire::AuthVerdict::missing: ++stats_.auth_missing; return;
        }
        data += wire::kAuthHeaderBytes;
        size -= wire::kAuthHeaderBytes;
    } else if (wire::looks_keyed(data, size)) {
        ++stats_.auth_unexpected;
        return;
    }
    wire::DatagramReader reader(data, size, wire::kMaxPayloadBytes, stats_.wire);
    wire::DecodedFrame frame;
    while (reader.next(frame) == 1) {
        if ((frame.fields.flags & wire::kFrameControl) != 0) receive_control(frame);
        else receive_data(frame);
    }
}

void Bridge::receive_control(const wire::DecodedFrame& frame) noexcept {
    ControlMessage message;
    if (decode_control(frame.payload, frame.length, message) != 0) {
        ++stats_.control_rejected;
        return;
    }
    ++handled_;
    if (message.kind == ControlKind::probe) {
        ControlMessage answer;
        answer.kind = ControlKind::answer;
        answer.nonce = message.nonce;
        answer.t1 = message.t1;
        answer.t2 = now();
        answer.t3 = now();   // t3 must not be after the answer leaves: taken last
        std::byte payload[kControlBytes];
        encode_control(answer, payload);
        const wire::FrameFields fields{0, frame.fields.sequence, HlcStamp{}, session_, wire::kFrameControl};
        if (append(fields, payload, kControlBytes)) ++stats_.answers_sent;
        else ++stats_.control_dropped;
        return;
    }
    const Instant t4 = now();
    switch (probes_.match(message.nonce, message.t1, t4)) {
        case ProbeBook::Match::unsolicited: ++stats_.answers_unsolicited; return;
        case ProbeBook::Match::stale: ++stats_.answers_stale; return;
        case ProbeBook::Match::accepted: break;
    }
    OffsetEstimator::Exchange exchange;
    exchange.t1 = message.t1;
    exchange.t2 = message.t2;
    exchange.t3 = message.t3;
    exchange.t4 = t4;
    if (estimator_->add(exchange) == 0) ++stats_.probes_answered;
    else ++stats_.probes_rejected;
}

void Bridge::receive_data(const wire::DecodedFrame& frame) noexcept {
    ++stats_.frames_in;
    ++handled_;
    Inbound* inbound = find_inbound(frame.fields.topic_id);
    if (inbound == nullptr) {
        ++stats_.unknown_topic;
        return;
    }
    BridgeTopicStats& stats = inbound->stats;
    ++stats.received;
    const SequenceResult result =
        inbound->window.accept(frame.fields.session, frame.fields.sequence, max_sequence_jump_);
    stats.session_resets += result.session_reset ? 1 : 0;
    switch (result.verdict) {
        case SequenceVerdict::publish:
            stats.gaps += result.gaps;
            stats.sequence_resyncs += result.resynced ? 1 : 0;
            publish(*inbound, frame);
            return;
        case SequenceVerdict::duplicate: ++stats.duplicates; return;
        case SequenceVerdict::late: ++stats.late; return;
        case SequenceVerdict::rejected: ++stats.sequence_rejected; return;
    }
}

void Bridge::publish(Inbound& inbound, const wire::DecodedFrame& frame) noexcept {
    BridgeTopicStats& stats = inbound.stats;
    bus::Publisher& publisher = inbound.publisher;
    if (frame.length > publisher.max_message_bytes()) {
        ++stats.too_large;
        return;
    }
    // The receive rule, on this thread's clock lane: the publish below stamps after the frame's stamp.
    if (engine_->clock().this_thread_lane().observe(frame.fields.stamp) != 0) ++stats.hlc_rejected;

    const std::uint64_t sequence = frame.fields.sequence;
    std::uint64_t position = publisher.next_position();
    if (sequence > position && sequence - position <= inbound.depth) {
        const int used = publisher.publish_abandoned(static_cast<std::uint32_t>(sequence - position));
        if (used > 0) {
            stats.filled += static_cast<std::uint64_t>(used);
            position = publisher.next_position();
        }
    }
    const int status = publisher.publish(frame.payload, frame.length);
    if (status == 0) {
        ++stats.republished;
        if (position != sequence) ++stats.misaligned;
    } else {
        ++stats.publish_full;   // -EAGAIN (full), or -ESTALE (multi-writer: the claim was reclaimed)
    }
}

// ---- building and sending datagrams ----

bool Bridge::open_datagram() noexcept {
    drivers::PacketBuffer* buffer = driver_->allocate();
    if (buffer == nullptr) return false;
    open_ = buffer;
    writer_ = wire::DatagramWriter(buffer->data + auth_bytes_, frame_room_);
    return true;
}

bool Bridge::seal_datagram() noexcept {
    if (open_ == nullptr || writer_.frames() == 0) return true;
    if (queued_ == kTxQueue) return false;
    open_->length = auth_bytes_ + static_cast<std::uint32_t>(writer_.size());
    if (auth_bytes_ != 0) auth_.seal(open_->data, open_->length);
    open_->peer = peer_;
    queue_[queued_++] = open_;
    open_ = nullptr;
    return true;
}

bool Bridge::append(const wire::FrameFields& fields, const void* payload, std::uint32_t length) noexcept {
    if (open_ == nullptr && !open_datagram()) return false;
    int status = writer_.append(fields, payload, length);
    if (status == -ENOSPC) {
        if (!seal_datagram() || !open_datagram()) return false;
        status = writer_.append(fields, payload, length);
    }
    return status >= 0;
}

int Bridge::flush() noexcept {
    const int accepted = driver_->tx_burst(queue_, queued_);
    if (accepted < 0) {
        // The socket itself failed: these datagrams cannot go; keep the buffers for the next ones.
        ++stats_.tx_errors;
        for (std::uint32_t i = 0; i < queued_; ++i) driver_->release(queue_[i]);
        queued_ = 0;
        return accepted;
    }
    stats_.datagrams_out += static_cast<std::uint64_t>(accepted);
    const auto sent = static_cast<std::uint32_t>(accepted);
    for (std::uint32_t i = sent; i < queued_; ++i) queue_[i - sent] = queue_[i];
    queued_ -= sent;
    return 0;
}

}  // namespace cf
