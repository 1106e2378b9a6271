/**
 * @file chronofabric/subscriber.h
 * Subscribing to a topic: poll messages in place, in order, in batches of at most CF_POLL_MAX; they stay valid
 * until the subscriber's next poll, release or maintain. A subscriber is used by one thread at a time.
 */
#ifndef CHRONOFABRIC_SUBSCRIBER_H
#define CHRONOFABRIC_SUBSCRIBER_H

#include "chronofabric/clock.h"
#include "chronofabric/topic.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct cf_subscriber cf_subscriber_t;

/**
 * A received message, read in place (lossy topics: a checked copy).
 *
 * sequence is the message's position in the topic, from 0. It goes up by one from message to message unless
 * positions were consumed without being delivered; the jump is the sum of:
 *  - messages lost (lossy topics only: the subscriber fell a lap behind): cf_subscriber_lost counts them;
 *  - corrupt slots of a shared topic (never delivered): cf_subscriber_corrupt counts them;
 *  - abandoned or recovered claims on many-publisher topics: a publisher destroyed between claim and commit, or
 *    one whose process died there (recovered by cf_subscriber_maintain), or a bridge filling a peer's gap. No
 *    message was ever written at those positions, so nothing was lost and no counter moves.
 * On a back-pressure topic a jump that neither counter explains is therefore a claim that never became a message.
 */
typedef struct cf_message {
    const void* data;                /**< never NULL, also for a 0-byte message */
    uint32_t length;
    uint64_t sequence;
    cf_hlc_t stamp;                  /**< the publisher's HLC at commit */
} cf_message_t;

/** The most messages one poll returns (a larger @p max is served as this many). */
#define CF_POLL_MAX 64u

/** Attaches a subscriber; it sees messages published from now on. @return status: 0; CF_EUSERS
 *  (max_subscribers attached, in every process); CF_EINVAL; CF_ENOMEM. */
CF_NODISCARD CF_API int cf_subscriber_create(cf_topic_t* topic, cf_subscriber_t** subscriber);
/** Detaches, releasing what the last poll returned. @return status: 0 (also for NULL). */
CF_NODISCARD CF_API int cf_subscriber_destroy(cf_subscriber_t* subscriber);
/**
 * Releases what the previous poll returned, then returns up to min(@p max, CF_POLL_MAX) messages in
 * @p messages, in order, without copying (lossy topics copy). Never blocks.
 * @return count: how many (0: nothing new), or CF_EINVAL (NULL, or NULL messages with a max).
 */
CF_NODISCARD CF_API int cf_subscriber_poll(cf_subscriber_t* subscriber, cf_message_t* messages, uint32_t max);

/** What cf_subscriber_poll_wait does between empty polls (the engine's idle strategies). */
#define CF_IDLE_SPIN 0             /**< poll again at once: the lowest latency, a full core */
#define CF_IDLE_SPIN_THEN_PAUSE 1  /**< 1000 empty polls, then a CPU pause (PAUSE / YIELD) between polls */
#define CF_IDLE_SLEEP 2            /**< 1000 empty polls, then sleep 50 us between polls: frees the core */

/** cf_subscriber_poll_wait's timeout_ns: no limit. */
#define CF_WAIT_FOREVER UINT64_MAX

/**
 * cf_subscriber_poll, repeated until it returns a message or @p timeout_ns nanoseconds (CLOCK_MONOTONIC) have
 * passed, idling between empty polls as @p idle (CF_IDLE_*) says. A timeout of 0 polls once. The deadline is
 * checked between polls, so CF_IDLE_SLEEP may return up to one sleep later. A @p max of 0 returns 0 at once.
 * @return count: how many (>= 1); CF_ETIMEDOUT (nothing arrived in time); CF_EINVAL (as cf_subscriber_poll, or
 * an unknown @p idle).
 */
CF_NODISCARD CF_API int cf_subscriber_poll_wait(cf_subscriber_t* subscriber, cf_message_t* messages, uint32_t max,
                                                uint64_t timeout_ns, int idle);
/** Frees the slots of the last poll so publishers can reuse them (their messages become invalid).
 *  @return status: 0 or CF_EINVAL. */
CF_NODISCARD CF_API int cf_subscriber_release(cf_subscriber_t* subscriber);
/** Messages this subscriber lost on a lossy topic (0 on back-pressure topics). @return status: 0 or CF_EINVAL. */
CF_NODISCARD CF_API int cf_subscriber_lost(const cf_subscriber_t* subscriber, uint64_t* lost);
/** Slots this subscriber consumed without returning them because their header was corrupt: a length above
 *  max_message_bytes, a sequence that is not the slot's position, unknown flags, or a position already consumed.
 *  Shared memory is writable by other processes; a poll never returns such a slot. @return status: 0 or
 *  CF_EINVAL. */
CF_NODISCARD CF_API int cf_subscriber_corrupt(const cf_subscriber_t* subscriber, uint64_t* corrupt);
/**
 * Housekeeping from the subscriber's thread, now and then (between polls): first releases the messages of the last
 * poll (as cf_subscriber_release: they become invalid), then, on shared many-publisher topics, recovers a position
 * that a publisher killed between claim and commit left behind (its dead process is named in the slot, or the
 * claim stalled for 1 s), so the messages behind it flow again.
 * @return count: 1 if it recovered a position, 0 if not (always 0 on single-publisher topics); or CF_EINVAL.
 */
CF_NODISCARD CF_API int cf_subscriber_maintain(cf_subscriber_t* subscriber);

#ifdef __cplusplus
}
#endif

#endif /* CHRONOFABRIC_SUBSCRIBER_H */
