/**
 * @file chronofabric/publisher.h
 * Publishing on a topic: copy a message in (cf_publisher_publish, _batch) or claim a slot, write it in place and
 * commit it (zero copy). A publisher is used by one thread at a time; nothing here blocks, allocates or calls the
 * kernel. Every message is stamped with the engine's HLC at commit. Messages of 0 bytes are allowed: a
 * subscriber receives them with length 0.
 */
#ifndef CHRONOFABRIC_PUBLISHER_H
#define CHRONOFABRIC_PUBLISHER_H

#include "chronofabric/topic.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct cf_publisher cf_publisher_t;

/** Attaches a publisher. @return status: 0; CF_EUSERS (max_publishers attached, in every process); CF_EINVAL;
 *  CF_ENOMEM. */
CF_NODISCARD CF_API int cf_publisher_create(cf_topic_t* topic, cf_publisher_t** publisher);
/** Detaches. An outstanding claim is abandoned: never visible on single-publisher topics; on many-publisher topics
 *  its position is consumed without a message (a sequence jump, see cf_message_t). @return status: 0 (also NULL). */
CF_NODISCARD CF_API int cf_publisher_destroy(cf_publisher_t* publisher);

/**
 * Copies @p length bytes (0 allowed; @p data may then be NULL) into the topic and publishes them.
 * @return status: 0; CF_EAGAIN when full (back-pressure: retry or drop; counted in back_pressure_events);
 * CF_EMSGSIZE; CF_EBUSY (a claim is outstanding); CF_EINVAL.
 */
CF_NODISCARD CF_API int cf_publisher_publish(cf_publisher_t* publisher, const void* data, uint32_t length);
/**
 * Copies and publishes up to @p count messages (@p data[i], @p lengths[i]) as one burst: one HLC reservation
 * (consecutive stamps) and one release on single-publisher topics; one by one on many-publisher topics.
 * @return count: how many were published, in order (fewer, possibly 0, when the topic filled up); or CF_EMSGSIZE
 * (a length is above the maximum: nothing published); CF_EBUSY (a claim is outstanding); CF_EINVAL (also for a
 * @p count above INT_MAX, such as a negative int passed by mistake).
 */
CF_NODISCARD CF_API int cf_publisher_publish_batch(cf_publisher_t* publisher, const void* const* data,
                                                   const uint32_t* lengths, uint32_t count);
/** Zero copy: a slot for up to @p length bytes in *@p data, to be written and then committed. One claim at a
 *  time. @return status: 0; CF_EAGAIN when full; CF_EBUSY (a claim is outstanding); CF_EMSGSIZE; CF_EINVAL. */
CF_NODISCARD CF_API int cf_publisher_claim(cf_publisher_t* publisher, uint32_t length, void** data);
/** Publishes the claimed slot with @p length bytes (0 .. the claimed length). @return status: 0; CF_EINVAL (no
 *  claim, or a longer length); CF_ESTALE (many-publisher shared topics: the claim stalled so long that a subscriber
 *  recovered its position as dead; the message is dropped). */
CF_NODISCARD CF_API int cf_publisher_commit(cf_publisher_t* publisher, uint32_t length);
/**
 * The sequence the next message of this publisher gets: exact on single-publisher topics (also for a publisher
 * that a restarted process attached to a shared topic: where the previous one stopped); on many-publisher topics
 * the topic's next position now, which another publisher may take first. @return status: 0 or CF_EINVAL.
 */
CF_NODISCARD CF_API int cf_publisher_next_sequence(const cf_publisher_t* publisher, uint64_t* sequence);

#ifdef __cplusplus
}
#endif

#endif /* CHRONOFABRIC_PUBLISHER_H */
