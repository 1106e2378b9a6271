// A bridge: forwards chosen topics of one engine to a peer engine (another process or host) over UDP, republishes
// what the peer forwards on local topics, and estimates the peer's clock offset from probes it exchanges with it.
//
// Shape. A bridge belongs to one engine and talks to one peer address. It owns one DatagramDriver (io_uring or
// sockets) and is driven by one thread calling poll(): each call is one run-to-completion step
//   1. sends what an earlier step could not (the driver's queue was full);
//   2. receives a burst, decodes it (wire/frame.hpp) and republishes data frames, answers and consumes probes;
//   3. sends a clock probe when probe_interval has passed;
//   4. drains every forwarded topic's subscriber into datagrams (several frames per datagram, up to
//      max_datagram_bytes) and hands them to the driver in one burst.
// Nothing on that path allocates, locks or makes a system call besides the driver's one per burst. Set-up calls
// (forward, republish, set_peer) and the statistics are for the polling thread too (or before it starts): the
// bridge is not thread-safe. Forwarded and republished topics are endpoints of their topics: they keep the topics
// (and so the engine) from closing until the bridge is destroyed.
//
// Sending. forward(topic, id) attaches a subscriber to the local topic; each message becomes a frame {topic id,
// sequence = the message's sequence on the local topic, stamp = its HLC stamp, session = this bridge's session id
// (random per bridge, so a restarted sender is recognised)}. A message whose frame does not fit an empty datagram
// is dropped and counted (too_large). While the driver's queue is full the subscriber is not read, so a
// back-pressure topic holds its publisher back instead of the bridge dropping messages.
//
// Receiving, per republished topic id. The bridge keeps the peer's session and the next sequence it expects:
//   - a new session (or the first frame) resets the tracking: session_resets counts resets after the first (a
//     frame of the old session arriving after the new one's resets it again: sessions are not ordered);
//   - sequence == expected: published;
//   - expected < sequence <= expected + max_sequence_jump: gaps += sequence - expected (those messages never
//     came, or are late), published;
//   - sequence > expected + max_sequence_jump, or sequence == 2^64-1 (no sender gets there; accepting it would
//     wrap `expected`): rejected and counted (sequence_rejected), `expected` stays: one datagram with an absurd
//     sequence cannot make the next genuine frames look late. A sender that really jumped that far is followed
//     after SequenceWindow::kResyncRun (4) consecutive sequences beyond the limit, in order (counted in
//     sequence_resyncs; the rejected ones and the jump count as gaps). The default limit, 2^32, is more than a
//     million messages a second for an hour; a restarted sender starts a new session, which is always accepted.
//     This guards against a stray or corrupted datagram, not a forger: whoever can send from the peer's address
//     can also start a new session;
//   - sequence <  expected: a duplicate if that sequence was already seen (a 64-sequence window below expected
//     remembers which were), else late (reordered). Both are counted and dropped: the local topic's order is the
//     sender's. A late sequence is remembered, so a second copy of it counts as a duplicate. Sequences more than
//     64 below expected cannot be told apart and count as late.
// Datagrams from any address other than the peer's are dropped and counted (foreign_datagrams); frames for topic
// ids nobody republishes are dropped and counted (unknown_topic).
//
// Sequences. Subscribers of a republished topic see the sender's sequences as their message sequences when the
// local topic's positions line up with them. Before publishing sequence s the bridge looks at the local topic's
// next position p: when s > p and s - p <= the topic's depth, it fills positions p .. s-1 with abandoned messages
// (Publisher::publish_abandoned; every subscriber skips them), so the message lands at position s. What holds:
//   - on a topic the bridge alone publishes on, every message published at position == its sequence is exact;
//     messages published anywhere else are counted in `misaligned`;
//   - the first message of a session aligns if the local topic's next position is at most its sequence and the
//     difference fits the ring (<= depth) and its free room; every gap likewise;
//   - it cannot hold when the local topic is already past the sender (it was not empty when bridging started, or
//     the sender restarted with a new session from lower sequences): positions never go back, so the session stays
//     misaligned; nor for a jump larger than the ring's depth (not filled: filling a whole ring would only push
//     real messages out). On a back-pressure topic whose subscribers lag, a fill takes only the free room; the
//     next messages fill the rest as room appears, so alignment comes back by itself.
//   - a message dropped because the local topic was full (publish_full) leaves its position to be filled by the
//     next one, so it reads as a gap to local subscribers, as it is.
//
// HLC. Before a data frame is published its stamp is merged into this thread's lane of the engine's clock
// (ClockLane::observe), so the republished message's stamp (taken at commit) is after the sender's. A stamp more than the engine's
// hlc_max_drift ahead is not merged and counted (hlc_rejected), but the message is still delivered: the data is
// good, only its clock is suspect, and dropping it would turn a clock problem into data loss. Its local stamp
// then need not be after the sender's.
//
// Keys. Without a key (the default) a bridge trusts its network: anyone who can send from the peer's address can
// inject frames, answers and sessions. With BridgeConfig::key every datagram starts with a 24-byte auth header
// (magic 0xC7A5, version 1, key id, an HMAC-SHA-256-128 tag over the datagram; wire/datagram_auth.hpp) and a
// receiver drops, before decoding anything, every datagram whose tag does not match under the key its id names:
// auth_failed (bad tag, malformed header), auth_unknown_key, auth_missing (no auth header). A keyless bridge
// drops keyed datagrams (auth_unexpected). The MAC authenticates, it does not encrypt; replayed datagrams verify
// again, and only the sequence rules above (duplicates, late, the jump limit, within a session) and one answer
// per probe limit what a replay does; a datagram replayed after the peer started a new session resets tracking
// to the old session once. Two keys live at once, current and next, each with a one-byte id: the current one
// signs, either one verifies; rotate with set_next_key (both peers), then rotate_key (each), see below.
//
// Clock offset. Every probe_interval (of the bridge's time source) the bridge sends a control frame carrying t1
// and a fresh nonce; the peer answers with both echoed, t2 (its time when it decoded the probe) and t3 (its time
// when it built the answer); the answer's arrival is t4. An answer counts only if it matches a probe still
// outstanding (nonce and t1; each answered once) and arrives within max_probe_age of t1. At most 16 probes are
// outstanding: while all are unanswered and younger than max_probe_age no probe is sent (probes_deferred), so a
// round trip longer than 16 probe intervals slows probing down instead of outrunning every answer. Any other
// answer is dropped and counted (answers_unsolicited, answers_stale), so nobody can feed the estimate
// exchanges we never started (on a keyless bridge, except someone on the path who reads our probes: only a key
// stops that one). The exchange goes to an OffsetEstimator (time/offset_estimator.hpp), whose estimate
// comes with an uncertainty bound that holds as long as the peer's clock runs at a constant rate relative to
// ours. Both sides probe, so each knows the other's offset. The time source is injectable (BridgeConfig::now) so
// tests can run a bridge on a deliberately offset and skewed clock.
//
// Control frames (flag kFrameControl, topic id 0, sequence = probe number) carry a 64-byte payload, integers
// little-endian: byte 0 kind (1 probe, 2 answer), byte 1 control version (2), bytes 2..7 zero, bytes 8..15 the
// nonce, then t1, t2, t3 as signed 128-bit femtosecond counts since the epoch (low 64 bits first). A probe
// carries t2 = t3 = 0. Anything else is counted and dropped (control_rejected): a peer of control version 1
// (56-byte payloads without a nonce) is neither believed nor answered, and drops ours (runtime/clock_probes.hpp).
#pragma once

#include <cstdint>
#include <memory>

#include "drivers/datagram_driver.hpp"
#include "engine/bus/publisher.hpp"
#include "engine/bus/subscriber.hpp"
#include "engine/runtime/clock_probes.hpp"
#include "engine/runtime/engine.hpp"
#include "engine/runtime/sequence_window.hpp"
#include "engine/time/offset_estimator.hpp"
#include "engine/wire/datagram_auth.hpp"
#include "engine/wire/frame.hpp"

namespace cf {

// A pre-shared key for a bridge's datagram MAC (wire/datagram_auth.hpp): both peers hold the same bytes under the
// same id.
struct BridgeKey {
    bool set = false;
    std::uint8_t id = 0;
    std::uint8_t bytes[wire::kMacKeyBytes] = {};
};

struct BridgeConfig {
    drivers::DriverKind driver = drivers::DriverKind::automatic;
    drivers::UdpConfig udp;                       // the bind address (port 0: any), buffers, socket options
    drivers::PeerAddress peer;                    // unset (length 0): set_peer() later; nothing is sent until then
    std::uint32_t max_datagram_bytes = 1472;      // an Ethernet MTU's UDP payload; 48 .. min(65507, buffer bytes)
    std::uint32_t max_topics = 64;                // forwarded ids, and separately republished ids: 1 .. 4096
    Duration probe_interval = Duration::from_millis(10);   // zero: no probes (answers are still given)
    // The furthest ahead of the next expected sequence a data frame may be (1 .. 2^64-1; see "Receiving" above).
    std::uint64_t max_sequence_jump = std::uint64_t{1} << 32;
    // An answer arriving later than this after its probe was sent is dropped (answers_stale): its round trip
    // would say little, and a probe must not stay answerable for ever. > 0.
    Duration max_probe_age = Duration::from_seconds(1);
    OffsetEstimator::Config offset;
    Instant (*now)(void* context) = nullptr;      // the time source for probes; null: default_clock()
    void* now_context = nullptr;
    // Set: every datagram carries a MAC under `key` and only datagrams with a good MAC under `key` or `next_key`
    // (by key id) are accepted ("Keys" above). Unset: no MAC, the network is trusted. next_key needs key, and
    // another id.
    BridgeKey key;
    BridgeKey next_key;
};

// Counters for one topic id, as seen by this bridge (both directions, if the id is forwarded and republished).
struct BridgeTopicStats {
    // receiving (republish)
    std::uint64_t received = 0;        // data frames for this id, including the dropped ones below
    std::uint64_t republished = 0;     // published on the local topic
    std::uint64_t gaps = 0;            // sequences skipped over
    std::uint64_t duplicates = 0;      // dropped: seen before
    std::uint64_t late = 0;            // dropped: arrived after a later sequence
    std::uint64_t session_resets = 0;  // the peer's session changed
    std::uint64_t publish_full = 0;    // dropped: the local topic was full (or the claim was reclaimed)
    std::uint64_t too_large = 0;       // dropped: longer than the local topic's max_message_bytes
    std::uint64_t hlc_rejected = 0;    // delivered, but the stamp was too far ahead to merge
    std::uint64_t misaligned = 0;      // published at a local position other than the sender's sequence
    std::uint64_t filled = 0;          // abandoned positions published to keep positions aligned
    std::uint64_t sequence_rejected = 0;   // dropped: further ahead than max_sequence_jump (or 2^64-1)
    std::uint64_t sequence_resyncs = 0;    // a run of frames beyond max_sequence_jump was followed
    // sending (forward)
    std::uint64_t forwarded = 0;       // frames handed to the driver
    std::uint64_t forward_too_large = 0;   // dropped: the frame does not fit max_datagram_bytes
    std::uint64_t forward_dropped = 0;     // dropped: no packet buffer (never expected: poll reads only what fits)
    std::uint64_t source_lost = 0;     // lossy local topic: messages the bridge's subscriber lost
};

struct BridgeStats {
    std::uint64_t datagrams_in = 0;        // from the peer, walked (the wire counters below say how many were bad)
    std::uint64_t datagrams_out = 0;       // accepted by the driver
    std::uint64_t frames_in = 0;           // good data frames
    std::uint64_t frames_out = 0;          // data frames sent
    std::uint64_t foreign_datagrams = 0;   // from another address than the peer's (or before a peer was set)
    std::uint64_t unknown_topic = 0;       // data frames for an id nobody republishes
    std::uint64_t rx_errors = 0;           // rx_burst failures
    std::uint64_t tx_errors = 0;           // tx_burst failures (the datagrams were dropped)
    std::uint64_t probes_sent = 0;
    std::uint64_t probes_deferred = 0;     // not sent: 16 probes still awaiting answers (a very long round trip)
    std::uint64_t probes_answered = 0;     // answers to our probes, accepted by the estimator
    std::uint64_t probes_rejected = 0;     // answers the estimator refused (malformed timestamps)
    std::uint64_t answers_unsolicited = 0; // dropped: answers no outstanding probe of ours asked (nonce and t1)
    std::uint64_t answers_stale = 0;       // dropped: answers to our probe, but later than max_probe_age
    std::uint64_t answers_sent = 0;        // answers to the peer's probes
    std::uint64_t control_rejected = 0;    // control frames of a wrong size, version or kind
    std::uint64_t control_dropped = 0;     // probes or answers not sent: no buffer or queue room
    // keyed bridges (each datagram counted once, in datagrams_in and in at most one of these)
    std::uint64_t auth_failed = 0;         // dropped: the MAC does not match (or the auth header is malformed)
    std::uint64_t auth_unknown_key = 0;    // dropped: a key id neither of our keys has
    std::uint64_t auth_missing = 0;        // dropped: no auth header (an unkeyed sender)
    // keyless bridges
    std::uint64_t auth_unexpected = 0;     // dropped: a keyed datagram (the peer has a key, we have none)
    wire::WireCounters wire;               // frames and rejects by reason (DatagramReader)
};

class Bridge {
public:
    // Opens the driver and preallocates everything. 0, or -EINVAL (bad configuration), -ENOMEM, or the driver's
    // error (address in use, io_uring missing...), with a message.
    static int create(Engine& engine, const BridgeConfig& config, std::unique_ptr<Bridge>& out) noexcept;
    ~Bridge();
    Bridge(const Bridge&) = delete;
    Bridge& operator=(const Bridge&) = delete;

    // Sends `topic`'s messages as `topic_id`, through a subscriber of its own: what a new subscriber sees (on
    // broadcast topics the messages published from now on; on SPSC/MPSC topics also what is still unread in the
    // ring). 0; -EINVAL (null, a topic of another engine), -EEXIST (the id is already forwarded), -ENOSPC
    // (max_topics forwarded), or the subscriber's error (-EUSERS: the topic has its max_subscribers).
    int forward(EngineTopic* topic, std::uint32_t topic_id) noexcept;
    // Publishes the peer's frames for `topic_id` on `topic`. 0; -EINVAL, -EEXIST (id already republished),
    // -ENOSPC, or the publisher's error (-EUSERS: the topic has its max_publishers).
    int republish(std::uint32_t topic_id, EngineTopic* topic) noexcept;
    // Where datagrams go and are accepted from. 0, or -EINVAL for an unset address.
    int set_peer(const drivers::PeerAddress& peer) noexcept;

    // Key rotation ("Keys" above). set_next_key puts a key into the slot that is not sending (replacing the key
    // there, typically the one rotated away from): 0, -EINVAL (a keyless bridge, or the sending key's id), or
    // -ENOMEM/-EIO from GnuTLS. rotate_key makes the other slot's key the sending one; the previous key keeps
    // being accepted until set_next_key replaces it (wait a round trip after the peer rotated, so its datagrams
    // sealed under the old key have arrived): 0, or -ENOENT (no next key). Both allocate: not per message.
    int set_next_key(std::uint8_t id, const std::uint8_t (&bytes)[wire::kMacKeyBytes]) noexcept;
    int rotate_key() noexcept;
    bool keyed() const noexcept { return auth_.keyed(); }
    std::uint8_t key_id() const noexcept { return auth_.current_id(); }   // the sending key's id (keyed only)

    // One step (see the top of this file). Returns the frames handled (sent + received, >= 0), or the driver's
    // negative errno (message set) after finishing the rest of the step.
    int poll() noexcept;

    const drivers::PeerAddress& local_address() const noexcept { return driver_->local_address(); }
    const drivers::PeerAddress& peer() const noexcept { return peer_; }
    std::uint32_t session() const noexcept { return session_; }
    Instant now() const noexcept;   // the bridge's time source

    // 0 with the id's counters, or -ENOENT (neither forwarded nor republished) with a message.
    int topic_stats(std::uint32_t topic_id, BridgeTopicStats& out) const noexcept;
    const BridgeStats& stats() const noexcept { return stats_; }
    const drivers::DriverStats& driver_stats() const noexcept { return driver_->stats(); }
    drivers::DriverKind driver_kind() const noexcept { return driver_->kind(); }

    // The peer's clock offset (peer - local) at the time source's `now()`, with its bound and drift: 0, or
    // -EAGAIN (message set) until the estimator has enough answers.
    int clock_offset(OffsetEstimator::Estimate& out) const noexcept;
    const OffsetEstimator& offset_estimator() const noexcept { return *estimator_; }

private:
    struct Outbound;
    struct Inbound;
    Bridge() noexcept;

    void receive_datagram(const std::byte* data, std::size_t size) noexcept;
    void receive_data(const wire::DecodedFrame& frame) noexcept;
    void receive_control(const wire::DecodedFrame& frame) noexcept;
    void publish(Inbound& inbound, const wire::DecodedFrame& frame) noexcept;
    void send_probe() noexcept;
    int drain(Outbound& outbound, std::uint32_t budget) noexcept;
    // Appends a frame to the datagram being built, starting a new one when it is full. False: no buffer or no
    // queue room (nothing appended).
    bool append(const wire::FrameFields& fields, const void* payload, std::uint32_t length) noexcept;
    bool open_datagram() noexcept;
    bool seal_datagram() noexcept;
    int flush() noexcept;
    Inbound* find_inbound(std::uint32_t topic_id) noexcept;
    void close_endpoints() noexcept;

    Engine* engine_ = nullptr;
    std::unique_ptr<drivers::DatagramDriver> driver_;
    std::unique_ptr<OffsetEstimator> estimator_;
    ProbeBook probes_;
    std::unique_ptr<Outbound[]> outbound_;
    std::unique_ptr<Inbound[]> inbound_;
    std::uint32_t outbound_count_ = 0;
    std::uint32_t inbound_count_ = 0;
    std::uint32_t max_topics_ = 0;

    drivers::PeerAddress peer_;
    std::uint32_t session_ = 0;
    std::uint32_t auth_bytes_ = 0;     // the auth header in front of the frames: kAuthHeaderBytes when keyed, else 0
    std::uint32_t frame_room_ = 0;     // max_datagram_bytes - auth_bytes_: what the frames of a datagram may take
    wire::DatagramAuth auth_;
    Duration probe_interval_;
    std::uint64_t max_sequence_jump_ = 0;
    Instant (*now_)(void* context) = nullptr;
    void* now_context_ = nullptr;
    Instant last_probe_;
    bool probed_ = false;
    std::uint64_t probe_number_ = 0;

    // Datagrams built and not yet accepted by the driver (in order), and the one being built.
    static constexpr std::uint32_t kTxQueue = 64;
    drivers::PacketBuffer* queue_[kTxQueue] = {};
    std::uint32_t queued_ = 0;
    drivers::PacketBuffer* open_ = nullptr;
    wire::DatagramWriter writer_{nullptr, 0};

    bus::Message batch_[bus::kMaxPollBatch];   // a forwarded topic's messages, read in place
    std::uint32_t handled_ = 0;                // frames this poll
    BridgeStats stats_;
};

}  // namespace cf
