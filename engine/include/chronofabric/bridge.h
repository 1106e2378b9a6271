/**
 * @file chronofabric/bridge.h
 * Bridges: topics forwarded to and republished from a peer engine over UDP, with clock offset estimates.
 */
#ifndef CHRONOFABRIC_BRIDGE_H
#define CHRONOFABRIC_BRIDGE_H

#include "chronofabric/clock.h"
#include "chronofabric/topic.h"

#ifdef __cplusplus
extern "C" {
#endif

/* An engine forwards chosen topics to a peer engine (another process or host) over UDP; the
 * peer republishes them on its local topics with the sender's sequence numbers, counts gaps, duplicates and
 * late (reordered) messages, and merges the HLC. Delivery is best effort: losses are counted, not repaired.
 * Both bridges also exchange clock probes (NTP-style, four timestamps) and estimate each other's clock offset
 * with a bound that holds while the two clocks run at a constant relative rate.
 *
 * A bridge is polled by one thread (cf_bridge_poll); none of its functions may be called concurrently. It holds
 * its forwarded and republished topics open (cf_topic_destroy and cf_engine_destroy return CF_EBUSY until it is
 * destroyed); destroy every bridge before its engine.
 */

typedef struct cf_bridge cf_bridge_t;

/** Bridge configuration. Size-versioned like cf_engine_config_t: cf_bridge_config_init fills the defaults. */
typedef struct cf_bridge_config {
    uint32_t struct_size;
    uint32_t max_datagram_bytes;     /**< frames are packed into datagrams of up to this size, 48 (72 with a key)
                                          .. 65507 (1472) */
    const char* peer;                /**< "1.2.3.4:5000" or "[::1]:5000"; NULL: set it later (cf_bridge_set_peer) */
    const char* bind;                /**< the local address, port 0 picks a free one (NULL: "0.0.0.0:0") */
    const char* driver;              /**< "auto" (NULL: io_uring where the kernel allows it), "uring", "socket" */
    uint64_t probe_interval_ns;      /**< how often to probe the peer's clock (10 ms); 0: never (still answers) */
    uint32_t max_topics;             /**< forwarded topic ids, and separately republished ones, 1 .. 4096 (64) */
    uint32_t buffers;                /**< packet buffers for receiving and sending, 1024 .. 1048576 (4096) */
    /** The time source for clock probes (NULL: cf_time_now's clock). Tests give a bridge a skewed clock here. */
    cf_instant_t (*now)(void* context);
    void* now_context;
        /** A data frame further ahead of the next expected sequence is dropped and counted (sequence_rejected);
     *  1 .. 2^64-1 (2^32). */
    uint64_t max_sequence_jump;
    /** Answers to clock probes arriving later than this after the probe are dropped (answers_stale); 1 ns ..
     *  1 hour (1 s). */
    uint64_t max_probe_age_ns;
    /**
     * Pre-shared key: CF_BRIDGE_KEY_BYTES in @p key with @p key_length = CF_BRIDGE_KEY_BYTES makes the bridge keyed
     * (every datagram carries an HMAC-SHA-256-128 under it, datagrams without a good one are dropped);
     * key_length 0 (the default): no key, the bridge trusts its network. @p key_id (0..255) names the key on the
     * wire; both peers use the same id for the same key. The next key (same rules, another id, only with a key)
     * is accepted too, for rotation (cf_bridge_set_next_key, cf_bridge_rotate_key).
     */
    uint32_t key_length;
    uint32_t key_id;
    uint8_t key[32];
    uint32_t next_key_length;
    uint32_t next_key_id;
    uint8_t next_key[32];
} cf_bridge_config_t;

#define CF_BRIDGE_KEY_BYTES 32u   /**< the length of a bridge key */

/** Fills @p config with the defaults and its struct_size. */
CF_API void cf_bridge_config_init(cf_bridge_config_t* config);

/**
 * Creates a bridge of @p engine: binds its UDP socket and preallocates everything.
 * @return status: 0; CF_EINVAL (NULL, unknown struct_size, bad address, driver name or field); CF_ENOMEM; CF_ENOTSUP or
 * CF_EPERM (driver "uring" where io_uring is missing or forbidden); CF_EADDRINUSE (the local address is taken
 * or not on this host); CF_EIO (another failure of the kernel: cf_last_error_message() says which).
 */
CF_NODISCARD CF_API int cf_bridge_create(cf_engine_t* engine, const cf_bridge_config_t* config, cf_bridge_t** bridge);
/** Destroys a bridge, closing its subscribers and publishers. @return status: 0 (also for NULL). */
CF_NODISCARD CF_API int cf_bridge_destroy(cf_bridge_t* bridge);
/** Sets (or changes) the peer: datagrams go there and are accepted only from there (nothing is sent or accepted
 *  before a peer is set). @return status: 0; CF_EINVAL for NULL or a bad address. */
CF_NODISCARD CF_API int cf_bridge_set_peer(cf_bridge_t* bridge, const char* peer);
/**
 * Key rotation of a keyed bridge. cf_bridge_set_next_key puts @p key (@p key_length = CF_BRIDGE_KEY_BYTES) under
 * @p key_id into the slot that does not sign, replacing the key there; from then on datagrams under either key are
 * accepted. cf_bridge_rotate_key makes that key the signing one; the previous key is still accepted until the next
 * cf_bridge_set_next_key replaces it. To rotate: set the next key on both peers, then rotate each.
 * @return status: 0; CF_EINVAL (NULL, a keyless bridge, a wrong length, the signing key's id); CF_ENOENT (rotate: no
 * next key). Not for the polling loop: each call allocates.
 */
CF_NODISCARD CF_API int cf_bridge_set_next_key(cf_bridge_t* bridge, uint32_t key_id, const uint8_t* key,
                                              size_t key_length);
CF_NODISCARD CF_API int cf_bridge_rotate_key(cf_bridge_t* bridge);
/**
 * Sends @p topic's messages to the peer as @p topic_id, through a subscriber of the bridge's own (so it sees what
 * a new subscriber sees: from now on, plus what is still unread on a one-subscriber topic).
 * @return status: 0; CF_EINVAL (NULL, a topic of another engine); CF_EEXIST (the id is already forwarded); CF_ENOSPC
 * (max_topics forwarded); CF_EUSERS (the topic has its max_subscribers).
 */
CF_NODISCARD CF_API int cf_bridge_forward(cf_bridge_t* bridge, cf_topic_t* topic, uint32_t topic_id);
/**
 * Publishes what the peer sends as @p topic_id on @p topic.
 * @return status: 0; CF_EINVAL; CF_EEXIST (the id is already republished); CF_ENOSPC; CF_EUSERS (max_publishers).
 */
CF_NODISCARD CF_API int cf_bridge_republish(cf_bridge_t* bridge, uint32_t topic_id, cf_topic_t* topic);
/**
 * One step: sends what is waiting on forwarded topics, receives and republishes, probes and answers probes.
 * Never blocks. @return count: the frames sent and received (>= 0), or a negative CF_E* code (the socket failed).
 */
CF_NODISCARD CF_API int cf_bridge_poll(cf_bridge_t* bridge);
/** The bound local address as "ip:port" in @p buffer (@p size bytes with the terminating NUL; 64 is always enough).
 *  @return status: 0; CF_EINVAL for NULL, a buffer too small, or a size above PTRDIFF_MAX. */
CF_NODISCARD CF_API int cf_bridge_local_address(const cf_bridge_t* bridge, char* buffer, size_t size);

/** Counters of one topic id, in both directions. Set struct_size = sizeof(cf_bridge_topic_stats_t). */
typedef struct cf_bridge_topic_stats {
    uint32_t struct_size;
    uint32_t reserved;
    uint64_t received;               /**< data frames for this id, including those dropped below */
    uint64_t republished;            /**< published on the local topic */
    uint64_t gaps;                   /**< sender sequences skipped over (lost, or arriving late) */
    uint64_t duplicates;             /**< dropped: the sequence was seen before */
    uint64_t late;                   /**< dropped: arrived after a later sequence */
    uint64_t session_resets;         /**< the sender restarted (a new session id) */
    uint64_t publish_full;           /**< dropped: the local topic was full */
    uint64_t too_large;              /**< dropped: longer than the local topic's max_message_bytes */
    uint64_t hlc_rejected;           /**< delivered, but the stamp was beyond max drift and not merged */
    uint64_t misaligned;             /**< published at a local sequence other than the sender's */
    uint64_t filled;                 /**< empty positions published to keep local sequences equal to the sender's */
    uint64_t forwarded;              /**< frames sent for this id */
    uint64_t forward_too_large;      /**< not sent: the message does not fit max_datagram_bytes */
    uint64_t forward_dropped;        /**< not sent: no packet buffer */
    uint64_t source_lost;            /**< lossy forwarded topic: messages the bridge's subscriber lost */
    uint64_t sequence_rejected;      /**< dropped: further ahead than max_sequence_jump, or sequence 2^64-1 */
    uint64_t sequence_resyncs;       /**< a run of consecutive sequences beyond max_sequence_jump was followed */
} cf_bridge_topic_stats_t;
/** @return status: 0; CF_ENOENT if @p topic_id is neither forwarded nor republished; CF_EINVAL for NULL or a wrong
 *  struct_size. */
CF_NODISCARD CF_API int cf_bridge_topic_stats(const cf_bridge_t* bridge, uint32_t topic_id,
                                             cf_bridge_topic_stats_t* stats);

/** Counters of the whole bridge. Set struct_size = sizeof(cf_bridge_stats_t). */
typedef struct cf_bridge_stats {
    uint32_t struct_size;
    uint32_t reserved;
    uint64_t datagrams_in;           /**< from the peer, decoded (good or not) */
    uint64_t datagrams_out;          /**< handed to the kernel */
    uint64_t frames_in;              /**< good data frames received */
    uint64_t frames_out;             /**< data frames sent */
    uint64_t foreign_datagrams;      /**< dropped: not from the peer's address */
    uint64_t unknown_topic;          /**< dropped: data frames for an id nobody republishes */
    uint64_t rx_errors;
    uint64_t tx_errors;
    uint64_t probes_sent;
    uint64_t probes_answered;        /**< answers to our probes that fed the offset estimate */
    uint64_t probes_rejected;        /**< answers with impossible timestamps */
    uint64_t answers_sent;           /**< answers to the peer's probes */
    uint64_t control_rejected;       /**< control frames of a wrong size, version or kind */
    uint64_t control_dropped;        /**< probes or answers not sent (no buffer) */
    uint64_t rejected_datagrams;     /**< datagrams cut short by a bad frame; the reasons: */
    uint64_t rejected_truncated;
    uint64_t rejected_oversized;
    uint64_t rejected_bad_magic;
    uint64_t rejected_bad_version;
    uint64_t rejected_bad_flags;
    uint64_t rejected_bad_reserved;
    uint64_t rejected_bad_padding;
    uint64_t rejected_corrupt;       /**< CRC-32C mismatch */
    uint64_t answers_unsolicited;    /**< dropped: probe answers matching no probe outstanding (nonce and t1) */
    uint64_t answers_stale;          /**< dropped: answers to our probe later than max_probe_age_ns */
    uint64_t auth_failed;            /**< keyed: dropped, the MAC does not match or the auth header is malformed */
    uint64_t auth_unknown_key;       /**< keyed: dropped, a key id the bridge does not hold */
    uint64_t auth_missing;           /**< keyed: dropped, an unkeyed datagram */
    uint64_t auth_unexpected;        /**< keyless: dropped, a keyed datagram */
    uint64_t probes_deferred;        /**< probes not sent: 16 still awaiting answers (a very long round trip) */
} cf_bridge_stats_t;
/** @return status: 0; CF_EINVAL for NULL or a wrong struct_size. */
CF_NODISCARD CF_API int cf_bridge_stats(const cf_bridge_t* bridge, cf_bridge_stats_t* stats);

/**
 * The peer's clock minus ours now (by the bridge's time source), rounded to nanoseconds: the true offset lies
 * within @p bound_ns of @p offset_ns as long as the two clocks run at a constant relative rate (the estimator's
 * assumption; a clock step is detected and the estimate restarts). @p drift_ppm (may be NULL) receives the
 * estimated relative rate (peer / ours - 1) in parts per million.
 * @return status: 0; CF_EAGAIN before the first answer to a probe; CF_EINVAL for NULL.
 */
CF_NODISCARD CF_API int cf_bridge_clock_offset(const cf_bridge_t* bridge, int64_t* offset_ns, uint64_t* bound_ns,
                                               double* drift_ppm);

#ifdef __cplusplus
}
#endif

#endif /* CHRONOFABRIC_BRIDGE_H */
