/**
 * @file chronofabric/topic.h
 * Topics: named rings of fixed-maximum-size messages, in this process or in a shared-memory segment other
 * processes open. Publishers (publisher.h) write them, subscribers (subscriber.h) read them.
 */
#ifndef CHRONOFABRIC_TOPIC_H
#define CHRONOFABRIC_TOPIC_H

#include "chronofabric/engine.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct cf_topic cf_topic_t;

#define CF_OVERFLOW_BACK_PRESSURE 0u   /**< publish returns CF_EAGAIN while a subscriber is a full ring behind */
#define CF_OVERFLOW_LOSSY 1u           /**< publish never waits; slow subscribers skip ahead and count losses */

/** cf_topic_config_t.owner_uid: this process's effective uid. */
#define CF_OWNER_SELF 0xFFFFFFFFu

/** Topic configuration. Size-versioned like cf_engine_config_t: cf_topic_config_init fills the defaults. */
typedef struct cf_topic_config {
    uint32_t struct_size;
    uint32_t max_message_bytes;      /**< 1 .. 1 MiB - 64; messages of 0 .. this many bytes are allowed */
    uint32_t depth;                  /**< messages in flight, a power of two 2 .. 2^24 */
    uint32_t max_publishers;         /**< 1 .. 64 (default 1) */
    uint32_t max_subscribers;        /**< 1 .. 64 (default 1) */
    uint32_t overflow;               /**< CF_OVERFLOW_* */
    uint32_t shared;                 /**< 0: this process only; 1: a shared-memory segment other processes open */
    uint32_t mode;                   /**< shared: permission bits of a new segment (0 = 0600); an existing segment
                                          with wider bits is refused (CF_EACCES): every process passes the same */
    const char* name;                /**< 1..63 of [A-Za-z0-9._-] */
    uint32_t owner_uid;              /**< shared: whose segment; CF_OWNER_SELF (the default) = this process's
                                          effective uid, which creates it if need be; another uid: open that
                                          user's existing topic only (its mode must allow us) */
} cf_topic_config_t;

/** Fills @p config with defaults (1 publisher, 1 subscriber, back-pressure, in-process) and its struct_size. */
CF_API void cf_topic_config_init(cf_topic_config_t* config);

/**
 * Creates a topic. Shared topics are created, or opened if another living process created them with the same
 * configuration (else CF_EPROTO: cf_topic_peer_layout tells a peer of another library version); a segment left by
 * a dead earlier run is reset. A shared topic is the file /dev/shm/chronofabric-<uid>/topic.<name>, in a
 * directory only its owner can write, so other users cannot take or block its name; a segment or directory of
 * another owner, a symbolic link, or a mode wider than @p mode is refused with CF_EACCES and a message naming
 * its owner and mode.
 * @return status: 0; CF_EINVAL; CF_EEXIST (this engine holds a topic of that name); CF_EPROTO (another
 * configuration or library version, or corrupt); CF_EACCES; CF_ENOENT (another owner's topic that does not
 * exist); CF_ENOSPC (a table, /dev/shm or the file descriptors are full); CF_ENOMEM; CF_ETIMEDOUT; CF_EIO.
 */
CF_NODISCARD CF_API int cf_topic_create(cf_engine_t* engine, const cf_topic_config_t* config, cf_topic_t** topic);
/**
 * Opens the existing shared topic @p name of @p owner_uid (CF_OWNER_SELF: ours) with the configuration its
 * segment holds, for a process that does not know it (cf_topic_get_config then tells it). Never creates.
 * @p mode as in cf_topic_config_t (0 = 0600).
 * @return status: 0; CF_EINVAL; CF_ENOENT (no such topic); CF_EEXIST (this engine holds a topic of that name:
 * cf_topic_find); CF_EPROTO (a peer of another library version, or corrupt); CF_EACCES; CF_ESTALE (left by a
 * dead run, reset by the next create); CF_ENOSPC; CF_ENOMEM; CF_ETIMEDOUT; CF_EIO.
 */
CF_NODISCARD CF_API int cf_topic_open(cf_engine_t* engine, const char* name, uint32_t mode, uint32_t owner_uid,
                                      cf_topic_t** topic);
/** The topic of that name this engine holds (every handle to one topic is the same pointer).
 *  @return status: 0, CF_ENOENT, CF_EINVAL. */
CF_NODISCARD CF_API int cf_topic_find(cf_engine_t* engine, const char* name, cf_topic_t** topic);
/** The topics this engine holds, in creation order, into @p topics[0 .. min(count, @p capacity)) (@p topics may
 *  be NULL when @p capacity is 0). @return count: how many topics it holds (also those that did not fit), or
 *  CF_EINVAL. */
CF_NODISCARD CF_API int cf_topic_list(cf_engine_t* engine, cf_topic_t** topics, uint32_t capacity);
/**
 * The configuration of an open topic into @p config (set its struct_size first, e.g. with cf_topic_config_init):
 * name points into the topic and is valid until it is destroyed; mode and owner_uid are what it was created or
 * opened with (0 and CF_OWNER_SELF for in-process topics). @return status: 0 or CF_EINVAL.
 */
CF_NODISCARD CF_API int cf_topic_get_config(cf_topic_t* topic, cf_topic_config_t* config);
/** Closes a topic with no open publisher or subscriber; @p unlink removes a shared topic's segment name too (the
 *  segment itself lives on while other processes map it). @return status: 0 (also for NULL); CF_EBUSY
 *  (publishers, subscribers or a bridge still use it: nothing closed). */
CF_NODISCARD CF_API int cf_topic_destroy(cf_topic_t* topic, int unlink);

/** One subscriber in cf_topic_stats_t. */
typedef struct cf_subscriber_lag {
    uint32_t place;                  /**< the subscriber's place (0 .. max_subscribers - 1) */
    uint32_t reserved;
    uint64_t lag;                    /**< messages published that it has not released yet */
    uint64_t lost;                   /**< lossy topics: messages it skipped, as of its last poll (else 0) */
} cf_subscriber_lag_t;

/** A topic's counters now, across every process. Set struct_size = sizeof(cf_topic_stats_t). */
typedef struct cf_topic_stats {
    uint32_t struct_size;
    uint32_t subscriber_count;       /**< out: subscribers attached now (also those that did not fit) */
    uint64_t published;              /**< out: messages published since creation (many-publisher topics: claimed) */
    uint64_t depth_in_use;           /**< out: slots the slowest subscriber holds or has not read, <= depth */
    uint64_t back_pressure_events;   /**< out: publishes refused with CF_EAGAIN because the topic was full */
    cf_subscriber_lag_t* subscribers;   /**< in: the caller's array (NULL when subscriber_capacity is 0) */
    uint32_t subscriber_capacity;    /**< in: its length; the first min(count, capacity) places are filled */
    uint32_t reserved;
} cf_topic_stats_t;
/** Reads the ring's positions (a snapshot; not for the hot path). @return status: 0; CF_EINVAL (NULL, struct_size
 *  not set, a NULL array with a capacity); CF_EPROTO (a corrupt shared ring). */
CF_NODISCARD CF_API int cf_topic_stats(cf_topic_t* topic, cf_topic_stats_t* stats);

/** The layout versions of a shared topic's segment: its header's, the topic header's and the ring header's. */
typedef struct cf_topic_layout {
    uint32_t struct_size;
    uint32_t segment;
    uint32_t topic;                  /**< 0: not readable (the segment's own layout is another one, or unformatted) */
    uint32_t ring;                   /**< 0: likewise */
} cf_topic_layout_t;
/**
 * The layout versions the segment of shared topic @p name of @p owner_uid was written with, read without
 * attaching: after CF_EPROTO from cf_topic_create/open, compare them with cf_topic_layout_local() to tell a peer
 * of another library version (a version differs) from another configuration (all equal). Set struct_size.
 * @return status: 0; CF_EINVAL; CF_ENOENT; CF_EACCES (a symbolic link, not a regular file, another owner's);
 * CF_EPROTO (not a segment at all).
 */
CF_NODISCARD CF_API int cf_topic_peer_layout(const char* name, uint32_t owner_uid, cf_topic_layout_t* peer);
/** The layout versions this library writes. Set struct_size. @return status: 0 or CF_EINVAL. */
CF_NODISCARD CF_API int cf_topic_layout_local(cf_topic_layout_t* local);

#ifdef __cplusplus
}
#endif

#endif /* CHRONOFABRIC_TOPIC_H */
