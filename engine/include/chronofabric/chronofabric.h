/**
 * @file chronofabric.h
 * The ChronoFabric C API.
 *
 * Conventions (every function):
 *  - returns 0 on success or a negative CF_E* status; never throws, never aborts on bad input;
 *  - on failure, cf_last_error_message() holds a sentence for this thread saying why;
 *  - output parameters are written only on success;
 *  - a count or length (size_t) whose bytes could not be one object (more than PTRDIFF_MAX bytes, e.g. (size_t)-1
 *    from a negative int) is CF_EINVAL before any memory is touched.
 */
#ifndef CHRONOFABRIC_H
#define CHRONOFABRIC_H

#include <stddef.h>
#include <stdint.h>

#include "chronofabric/version.h"

#if defined(CF_BUILDING_LIBRARY)
#define CF_API __attribute__((visibility("default")))
#else
#define CF_API
#endif

#ifdef __cplusplus
extern "C" {
#endif

/** Status codes: negative errno values, so they also read well in strace and perror. */
#define CF_OK 0
#define CF_EINVAL (-22)     /**< an argument is NULL, out of range or the wrong size */
#define CF_ENOMEM (-12)     /**< preallocated capacity exhausted */
#define CF_EAGAIN (-11)     /**< nothing to read, or full: try again */
#define CF_EPERM (-1)       /**< not permitted (privilege, limit) */
#define CF_ENOTSUP (-95)    /**< not supported on this host */
#define CF_ERANGE (-34)     /**< a value outside its allowed range (e.g. an HLC stamp beyond max drift) */
#define CF_EBUSY (-16)      /**< another thread holds the resource */
#define CF_EIO (-5)         /**< the hardware or kernel misbehaved */
#define CF_ENOENT (-2)      /**< no such topic or segment */
#define CF_EEXIST (-17)     /**< a topic of that name exists (in-process), or a live process holds the segment */
#define CF_ENOSPC (-28)     /**< a fixed table is full (topics, processes, file descriptors), or /dev/shm is */
#define CF_EPROTO (-71)     /**< a shared segment from another configuration or library version, or corrupt */
#define CF_EUSERS (-87)     /**< the topic already has its maximum of publishers or subscribers */
#define CF_EMSGSIZE (-90)   /**< the message is larger than the topic's max_message_bytes */
#define CF_ETIMEDOUT (-110) /**< waited too long (a shared segment that never became ready) */
#define CF_ESTALE (-116)    /**< this process was reclaimed as dead by a peer, or the segment was replaced */
#define CF_EACCES (-13)     /**< a shared segment (or its directory) of another user, a symbolic link, or a mode
                                 wider than asked (since 0.4) */
#define CF_EADDRINUSE (-98) /**< a bridge's local address is in use or not on this host (since 0.4) */
/* Any other failure of the kernel is reported as CF_EIO; cf_last_error_message() says what failed. */

/** Version of the library actually loaded (compare with CF_VERSION_NUMBER for the headers compiled against). */
CF_API uint32_t cf_version(void);
CF_API const char* cf_version_string(void);

/** A short English description of a status code ("invalid argument"). Never NULL. */
CF_API const char* cf_strerror(int status);

/** The calling thread's last failure, as a sentence ("" if none). Valid until this thread's next failure. */
CF_API const char* cf_last_error_message(void);

/** A point in time: seconds and femtoseconds (0 <= femtoseconds < 10^15) since 1970-01-01 UTC. */
typedef struct cf_instant {
    int64_t seconds;
    int64_t femtoseconds;
} cf_instant_t;

/**
 * The current time from the process clock (the calibrated cycle counter, steered to CLOCK_REALTIME).
 * Resolution: femtoseconds. Accuracy: what the hardware and the system clock's sync give (see README).
 * The first call in a process calibrates the counter (about 20 ms); later calls cost a few nanoseconds.
 * @return 0, or CF_EINVAL if @p now is NULL.
 */
CF_API int cf_time_now(cf_instant_t* now);

/* ------------------------------------------------------------------------------------------------------------
 * Engine: the process's hybrid logical clock, its static memory pool and its topics.
 * ------------------------------------------------------------------------------------------------------------ */

typedef struct cf_engine cf_engine_t;

/**
 * Engine configuration. Size-versioned: set struct_size = sizeof(cf_engine_config_t) (cf_engine_config_init does
 * it and fills the defaults), so a program built against these headers keeps working with later libraries.
 */
typedef struct cf_engine_config {
    uint32_t struct_size;
    uint16_t node_id;                /**< HLC node id, unique per engine in a system (default 0) */
    uint16_t reserved0;
    uint64_t hlc_max_drift_ns;       /**< remote HLC stamps further ahead of local time are refused (100 ms) */
    uint64_t pool_bytes_per_class;   /**< bytes reserved for each pool size class, 64 B .. 64 KiB (1 MiB) */
    uint32_t pool_max_threads;       /**< threads that may hold a pool cache at once (64) */
    uint32_t max_topics;             /**< topics open at once (64) */
    uint32_t prefer_hugepages;       /**< 1: back the pool with hugepages when free, else 4 KiB pages (1) */
    uint32_t reserved1;
} cf_engine_config_t;

/** Fills @p config with the defaults and its struct_size. */
CF_API void cf_engine_config_init(cf_engine_config_t* config);

/**
 * Creates an engine: reserves and pre-faults all its memory now.
 * @return 0; CF_EINVAL (NULL, a struct_size this library does not know, a bad field); CF_ENOMEM.
 * A pool that had to fall back to 4 KiB pages is not an error: cf_engine_warning() says so.
 */
CF_API int cf_engine_create(const cf_engine_config_t* config, cf_engine_t** engine);
/** Destroys an engine and every topic it still holds. CF_EBUSY while publishers or subscribers are open. */
CF_API int cf_engine_destroy(cf_engine_t* engine);
/** A sentence about something the engine had to settle for ("" if nothing), e.g. 4 KiB pages. Never NULL. */
CF_API const char* cf_engine_warning(const cf_engine_t* engine);

/**
 * Housekeeping for shared topics, every ~100 ms from one thread of each process: heartbeats this process and
 * reclaims what dead processes (kill -9) held. @p dead_processes (may be NULL) receives how many it reclaimed.
 */
CF_API int cf_engine_maintain(cf_engine_t* engine, uint32_t* dead_processes);

/* ------------------------------------------------------------------------------------------------------------
 * Hybrid logical clock (Kulkarni et al. 2014): stamps that respect causality across threads, processes, hosts.
 * ------------------------------------------------------------------------------------------------------------ */

/** word = physical time in units of 2^-24 s since 1970 << 8 | logical counter; node breaks ties. */
typedef struct cf_hlc {
    uint64_t word;
    uint16_t node;
} cf_hlc_t;

/** A stamp for a local or send event, larger than every stamp this engine issued or merged. */
CF_API int cf_hlc_now(cf_engine_t* engine, cf_hlc_t* stamp);
/** A receive event: merges @p remote. CF_ERANGE (counted, ignored) if it is more than max drift ahead. */
CF_API int cf_hlc_update(cf_engine_t* engine, const cf_hlc_t* remote, cf_hlc_t* stamp);
/** -1, 0 or 1 as @p a is before, equal to or after @p b (word, then node). */
CF_API int cf_hlc_compare(const cf_hlc_t* a, const cf_hlc_t* b);
/** The physical part of a stamp as a time. */
CF_API int cf_hlc_to_instant(const cf_hlc_t* stamp, cf_instant_t* time);

/* ------------------------------------------------------------------------------------------------------------
 * Pool: fixed-size blocks from memory reserved at cf_engine_create. Never grows, never calls the kernel.
 * ------------------------------------------------------------------------------------------------------------ */

/** A block of at least @p bytes (64-byte aligned). CF_ENOMEM when its size class is exhausted, CF_EINVAL for 0
 *  bytes or more than 64 KiB. Any thread. */
CF_API int cf_pool_alloc(cf_engine_t* engine, size_t bytes, void** block);
/**
 * Returns a block from cf_pool_alloc, from any thread. NULL is a no-op (0). Always checked: CF_EINVAL, nothing
 * freed, for a pointer that is not an allocated block of this engine's pool: a double free (the block is free
 * already, wherever it sits), a pointer inside a block or misaligned, another engine's block or any other memory.
 * Of two threads freeing the same block at once, exactly one gets 0.
 */
CF_API int cf_pool_free(cf_engine_t* engine, void* block);

typedef struct cf_pool_stats {
    uint32_t struct_size;
    uint32_t hugepages;              /**< 1 if backed by explicit hugepages */
    uint64_t capacity_bytes;
    uint64_t in_use_bytes;
    uint64_t in_use_blocks;
    uint64_t high_water_blocks;
    uint64_t failed_allocations;
    double fragmentation_percent;    /**< 100 * (1 - requested / block bytes) over every allocation served */
} cf_pool_stats_t;
CF_API int cf_pool_stats(const cf_engine_t* engine, cf_pool_stats_t* stats);

/* ------------------------------------------------------------------------------------------------------------
 * Topics, publishers, subscribers.
 * ------------------------------------------------------------------------------------------------------------ */

typedef struct cf_topic cf_topic_t;
typedef struct cf_publisher cf_publisher_t;
typedef struct cf_subscriber cf_subscriber_t;

#define CF_OVERFLOW_BACK_PRESSURE 0u   /**< publish returns CF_EAGAIN while a subscriber is a full ring behind */
#define CF_OVERFLOW_LOSSY 1u           /**< publish never waits; slow subscribers skip ahead and count losses */

typedef struct cf_topic_config {
    uint32_t struct_size;
    uint32_t max_message_bytes;      /**< 1 .. 1 MiB - 64 */
    uint32_t depth;                  /**< messages in flight, a power of two 2 .. 2^24 */
    uint32_t max_publishers;         /**< 1 .. 64 (default 1) */
    uint32_t max_subscribers;        /**< 1 .. 64 (default 1) */
    uint32_t overflow;               /**< CF_OVERFLOW_* */
    uint32_t shared;                 /**< 0: this process only; 1: a shared-memory segment other processes open */
    uint32_t mode;                   /**< shared: permission bits of a new segment (0 = 0600); an existing segment
                                          with wider bits is refused (CF_EACCES): every process passes the same */
    const char* name;                /**< 1..63 of [A-Za-z0-9._-] */
    uint32_t owner_uid;              /**< shared (since 0.4): whose segment; CF_OWNER_SELF (the default) = this
                                          process's effective uid, which creates it if need be; another uid:
                                          open that user's existing topic only (its mode must allow us) */
} cf_topic_config_t;

/** cf_topic_config_t.owner_uid: this process's effective uid. */
#define CF_OWNER_SELF 0xFFFFFFFFu

/** Fills @p config with defaults (1 publisher, 1 subscriber, back-pressure, in-process) and its struct_size. */
CF_API void cf_topic_config_init(cf_topic_config_t* config);

/**
 * Creates a topic. Shared topics are created, or opened if another living process created them with the same
 * configuration (else CF_EPROTO); a segment left by a dead earlier run is reset. A shared topic is the file
 * /dev/shm/chronofabric-<uid>/topic.<name>, in a directory only its owner can write, so other users cannot take
 * or block its name; a segment or directory of another owner, a symbolic link, or a mode wider than @p mode is
 * refused with CF_EACCES and a message naming its owner and mode.
 * @return 0, CF_EINVAL, CF_EEXIST (in-process name taken), CF_EPROTO (another configuration, or corrupt),
 * CF_EACCES, CF_ENOENT (another owner's topic that does not exist), CF_ENOSPC (a table, /dev/shm or the file
 * descriptors are full), CF_ENOMEM, CF_ETIMEDOUT, CF_EIO (any other failure of the kernel).
 */
CF_API int cf_topic_create(cf_engine_t* engine, const cf_topic_config_t* config, cf_topic_t** topic);
/** The in-process or shared topic of that name this engine holds: 0 or CF_ENOENT. */
CF_API int cf_topic_find(cf_engine_t* engine, const char* name, cf_topic_t** topic);
/** Closes a topic with no open publisher or subscriber (CF_EBUSY otherwise); @p unlink removes a shared
 *  topic's segment name too. */
CF_API int cf_topic_close(cf_topic_t* topic, int unlink);

/** Attaches a publisher (one thread at a time uses it). CF_EUSERS when max_publishers are attached. */
CF_API int cf_publisher_create(cf_topic_t* topic, cf_publisher_t** publisher);
CF_API int cf_publisher_destroy(cf_publisher_t* publisher);

/**
 * Copies @p length bytes into the topic and publishes them, stamped with the engine's HLC.
 * @return 0; CF_EAGAIN when full (back-pressure: retry or drop); CF_EMSGSIZE; CF_EINVAL.
 */
CF_API int cf_publish(cf_publisher_t* publisher, const void* data, uint32_t length);
/**
 * Copies and publishes up to @p count messages (@p data[i], @p lengths[i]) as one burst: one HLC reservation
 * (consecutive stamps) and one release on single-publisher topics; one by one on multi-publisher topics (since 0.2).
 * @return how many were published, in order (fewer, possibly 0, when the topic filled up); CF_EMSGSIZE (a length
 * is above the maximum: nothing published); CF_EBUSY (a claim is outstanding); CF_EINVAL (also for a @p count
 * above INT_MAX, such as a negative int passed by mistake).
 */
CF_API int cf_publish_batch(cf_publisher_t* publisher, const void* const* data, const uint32_t* lengths,
                            uint32_t count);
/** Zero copy: a slot for up to @p length bytes in *@p data, to be written and then cf_commit()ed. One claim at a
 *  time (CF_EBUSY otherwise); CF_EAGAIN when full. */
CF_API int cf_claim(cf_publisher_t* publisher, uint32_t length, void** data);
/** Publishes the claimed slot with @p length bytes (<= claimed). CF_EINVAL without a claim. */
CF_API int cf_commit(cf_publisher_t* publisher, uint32_t length);

/** A received message, read in place: valid until cf_release() or the next cf_poll() on its subscriber. */
typedef struct cf_message {
    const void* data;
    uint32_t length;
    uint64_t sequence;               /**< consecutive per topic; a jump means messages were lost (lossy topics) */
    cf_hlc_t stamp;                  /**< the publisher's HLC at commit */
} cf_message_t;

/** Attaches a subscriber; it sees messages published from now on. CF_EUSERS when max_subscribers attached. */
CF_API int cf_subscriber_create(cf_topic_t* topic, cf_subscriber_t** subscriber);
CF_API int cf_subscriber_destroy(cf_subscriber_t* subscriber);
/**
 * Up to @p max (at most 64) messages, in order, without copying (lossy topics copy). Never blocks.
 * @return how many (>= 0; 0: nothing new), or CF_EINVAL. Releases what the previous call returned.
 */
CF_API int cf_poll(cf_subscriber_t* subscriber, cf_message_t* messages, uint32_t max);
/** Frees the slots of the last cf_poll() so publishers can reuse them. */
CF_API int cf_release(cf_subscriber_t* subscriber);
/** Messages this subscriber lost on a lossy topic (0 on back-pressure topics). */
CF_API int cf_subscriber_lost(const cf_subscriber_t* subscriber, uint64_t* lost);
/** Slots this subscriber consumed without returning them because their header was corrupt: a length above
 *  max_message_bytes, a sequence that is not the slot's ring position, unknown flags, or a position already
 *  consumed. Shared memory is writable by other processes; cf_poll() never returns such a slot (since 0.4). */
CF_API int cf_subscriber_corrupt(const cf_subscriber_t* subscriber, uint64_t* corrupt);
/** Shared multi-publisher topics: from the subscriber's thread, now and then, recovers a position that a
 *  publisher killed between claim and commit left behind. @return 1 if it recovered one, 0 if not, < 0 error. */
CF_API int cf_subscriber_maintain(cf_subscriber_t* subscriber);

/* ---- Compute kernels (since 0.2) ----
 * Hand-written SIMD kernels for the ISA chosen at start-up (the best this CPU has, or CF_ISA=scalar|avx2|avx512|
 * neon in the environment, or cf_isa_force). BLAS semantics with stride-1 vectors: beta == 0 writes y / C without
 * reading it; alpha == 0 (or k == 0) only scales by beta and reads no A, B or x; otherwise NaN and Inf propagate.
 * Pointers need only the element type's alignment. Nothing is allocated per call, except the packing buffers of
 * a thread's first cf_gemm_* (call cf_compute_prepare_thread() at start-up to take that out of the hot path).
 */
#define CF_ISA_SCALAR 0
#define CF_ISA_AVX2 1       /**< AVX2 + FMA */
#define CF_ISA_AVX512 2     /**< AVX-512 F/BW/DQ/VL */
#define CF_ISA_NEON 3       /**< ARM64 Advanced SIMD */

#define CF_ROW_MAJOR 0
#define CF_COL_MAJOR 1
#define CF_NO_TRANS 0
#define CF_TRANS 1

/** The ISA the kernels use now (CF_ISA_*). */
CF_API int cf_isa_active(void);
/** "scalar", "avx2", "avx512", "neon", or NULL for another value. */
CF_API const char* cf_isa_name(int isa);
/** Uses @p isa's kernels from now on (all threads). CF_ENOTSUP if this CPU or build lacks it, CF_EINVAL if not
 *  a CF_ISA_* value. */
CF_API int cf_isa_force(int isa);
/** Allocates this thread's GEMM packing buffers now (else the thread's first large cf_gemm_* does). CF_ENOMEM. */
CF_API int cf_compute_prepare_thread(void);

/** *@p result = sum x[i] * y[i]. CF_EINVAL for NULL (x and y may be NULL when n is 0) or n above PTRDIFF_MAX / the
 *  element size. */
CF_API int cf_dot_f64(size_t n, const double* x, const double* y, double* result);
CF_API int cf_dot_f32(size_t n, const float* x, const float* y, float* result);
/** y = alpha * x + y. CF_EINVAL as cf_dot_f64. */
CF_API int cf_axpy_f64(size_t n, double alpha, const double* x, double* y);
CF_API int cf_axpy_f32(size_t n, float alpha, const float* x, float* y);
/**
 * y = alpha * op(A) * x + beta * y, A m x n in @p layout (CF_ROW_MAJOR / CF_COL_MAJOR) with leading dimension
 * @p lda, op(A) = A or A^T (@p trans CF_NO_TRANS / CF_TRANS). CF_EINVAL for NULL, lda too small, or a size or matrix
 * span above PTRDIFF_MAX bytes.
 */
CF_API int cf_gemv_f64(int layout, int trans, size_t m, size_t n, double alpha, const double* a, size_t lda,
                       const double* x, double beta, double* y);
CF_API int cf_gemv_f32(int layout, int trans, size_t m, size_t n, float alpha, const float* a, size_t lda,
                       const float* x, float beta, float* y);
/** C (m x n) = alpha * op(A) (m x k) * op(B) (k x n) + beta * C, all in @p layout. CF_EINVAL (as cf_gemv_f64),
 *  CF_ENOMEM. */
CF_API int cf_gemm_f64(int layout, int trans_a, int trans_b, size_t m, size_t n, size_t k, double alpha,
                       const double* a, size_t lda, const double* b, size_t ldb, double beta, double* c,
                       size_t ldc);
CF_API int cf_gemm_f32(int layout, int trans_a, int trans_b, size_t m, size_t n, size_t k, float alpha,
                       const float* a, size_t lda, const float* b, size_t ldb, float beta, float* c, size_t ldc);

/* ---- Morton (Z-order) codes (since 0.2) ----
 * x goes to the lowest code bit, then y (then z). Coordinate bits above the width are ignored (masked off); a
 * decode ignores code bits a 3D code does not use. Batches run the implementation chosen at start-up: BMI2
 * pdep/pext where it is fast, shift-and-mask where PDEP is microcoded (AMD before Zen 3), NEON on ARM64;
 * CF_MORTON=portable|bmi2|neon overrides. x, y, z and codes may be NULL when n is 0.
 */
CF_API uint32_t cf_morton2_encode32(uint32_t x, uint32_t y);               /**< 16-bit coordinates */
CF_API uint64_t cf_morton2_encode64(uint32_t x, uint32_t y);               /**< 32-bit coordinates */
CF_API uint32_t cf_morton3_encode32(uint32_t x, uint32_t y, uint32_t z);   /**< 10-bit coordinates */
CF_API uint64_t cf_morton3_encode64(uint32_t x, uint32_t y, uint32_t z);   /**< 21-bit coordinates */
/** Decodes: CF_EINVAL if an output pointer is NULL. */
CF_API int cf_morton2_decode32(uint32_t code, uint32_t* x, uint32_t* y);
CF_API int cf_morton2_decode64(uint64_t code, uint32_t* x, uint32_t* y);
CF_API int cf_morton3_decode32(uint32_t code, uint32_t* x, uint32_t* y, uint32_t* z);
CF_API int cf_morton3_decode64(uint64_t code, uint32_t* x, uint32_t* y, uint32_t* z);
/** Arrays of @p n coordinates to codes and back. CF_EINVAL for a NULL array when n > 0, or n above
 *  PTRDIFF_MAX / 8. */
CF_API int cf_morton2_encode64_batch(const uint32_t* x, const uint32_t* y, uint64_t* codes, size_t n);
CF_API int cf_morton2_decode64_batch(const uint64_t* codes, uint32_t* x, uint32_t* y, size_t n);
CF_API int cf_morton3_encode64_batch(const uint32_t* x, const uint32_t* y, const uint32_t* z, uint64_t* codes,
                                     size_t n);
CF_API int cf_morton3_decode64_batch(const uint64_t* codes, uint32_t* x, uint32_t* y, uint32_t* z, size_t n);
/** "bmi2", "portable" or "neon": what the batches use. */
CF_API const char* cf_morton_impl(void);

/* ---- Checksums through Intel ISA-L (since 0.2) ----
 * *@p crc holds the checksum so far (0 to start) and receives it with @p data appended, so a message can be
 * checked in pieces: chaining over any split gives the one-pass value. CF_EINVAL for NULL (data may be NULL when
 * length is 0) or a length above PTRDIFF_MAX.
 */
CF_API int cf_crc32c(const void* data, size_t length, uint32_t* crc);   /**< CRC-32C (Castagnoli), as in iSCSI */
CF_API int cf_crc64(const void* data, size_t length, uint64_t* crc);    /**< CRC-64/XZ (ECMA-182, reflected) */

/* ------------------------------------------------------------------------------------------------------------
 * Bridges (since 0.3): an engine forwards chosen topics to a peer engine (another process or host) over UDP; the
 * peer republishes them on its local topics with the sender's sequence numbers, counts gaps, duplicates and
 * late (reordered) messages, and merges the HLC. Delivery is best effort: losses are counted, not repaired.
 * Both bridges also exchange clock probes (NTP-style, four timestamps) and estimate each other's clock offset
 * with a bound that holds while the two clocks run at a constant relative rate.
 *
 * A bridge is polled by one thread (cf_bridge_poll); none of its functions may be called concurrently. It holds
 * its forwarded and republished topics open (cf_topic_close and cf_engine_destroy return CF_EBUSY until it is
 * destroyed); destroy every bridge before its engine.
 * ------------------------------------------------------------------------------------------------------------ */

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
    /* Since 0.4. Fields below came after the first version of this struct: a struct_size of the first version
     * leaves them all at their defaults, so such a bridge has no key. */
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
 * @return 0; CF_EINVAL (NULL, unknown struct_size, bad address, driver name or field); CF_ENOMEM; CF_ENOTSUP or
 * CF_EPERM (driver "uring" where io_uring is missing or forbidden); CF_EADDRINUSE (the local address is taken
 * or not on this host); CF_EIO (another failure of the kernel: cf_last_error_message() says which).
 */
CF_API int cf_bridge_create(cf_engine_t* engine, const cf_bridge_config_t* config, cf_bridge_t** bridge);
/** Destroys a bridge, closing its subscribers and publishers. CF_EINVAL for NULL. */
CF_API int cf_bridge_destroy(cf_bridge_t* bridge);
/** Sets (or changes) the peer: datagrams go there and are accepted only from there (nothing is sent or accepted
 *  before a peer is set). CF_EINVAL for a bad address. */
CF_API int cf_bridge_set_peer(cf_bridge_t* bridge, const char* peer);
/**
 * Key rotation of a keyed bridge. cf_bridge_set_next_key puts @p key (@p key_length = CF_BRIDGE_KEY_BYTES) under
 * @p key_id into the slot that does not sign, replacing the key there; from then on datagrams under either key are
 * accepted. cf_bridge_rotate_key makes that key the signing one; the previous key is still accepted until the next
 * cf_bridge_set_next_key replaces it. To rotate: set the next key on both peers, then rotate each.
 * @return 0; CF_EINVAL (NULL, a keyless bridge, a wrong length, the signing key's id); CF_ENOENT (rotate: no
 * next key). Not for the polling loop: each call allocates.
 */
CF_API int cf_bridge_set_next_key(cf_bridge_t* bridge, uint32_t key_id, const uint8_t* key, size_t key_length);
CF_API int cf_bridge_rotate_key(cf_bridge_t* bridge);
/**
 * Sends @p topic's messages to the peer as @p topic_id, through a subscriber of the bridge's own (so it sees what
 * a new subscriber sees: from now on, plus what is still unread on a one-subscriber topic).
 * @return 0; CF_EINVAL (NULL, a topic of another engine); CF_EEXIST (the id is already forwarded); CF_ENOSPC
 * (max_topics forwarded); CF_EUSERS (the topic has its max_subscribers).
 */
CF_API int cf_bridge_forward(cf_bridge_t* bridge, cf_topic_t* topic, uint32_t topic_id);
/**
 * Publishes what the peer sends as @p topic_id on @p topic.
 * @return 0; CF_EINVAL; CF_EEXIST (the id is already republished); CF_ENOSPC; CF_EUSERS (max_publishers).
 */
CF_API int cf_bridge_republish(cf_bridge_t* bridge, uint32_t topic_id, cf_topic_t* topic);
/**
 * One step: sends what is waiting on forwarded topics, receives and republishes, probes and answers probes.
 * Never blocks. @return the frames sent and received (>= 0), or a negative CF_E* code when the socket failed.
 */
CF_API int cf_bridge_poll(cf_bridge_t* bridge);
/** The bound local address as "ip:port" in @p buffer (@p size bytes with the terminating NUL; 64 is always enough).
 *  CF_EINVAL for NULL, a buffer too small, or a size above PTRDIFF_MAX. */
CF_API int cf_bridge_local_address(const cf_bridge_t* bridge, char* buffer, size_t size);

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
    /* Added in 0.4 (left unwritten when struct_size ends before them): */
    uint64_t sequence_rejected;      /**< dropped: further ahead than max_sequence_jump, or sequence 2^64-1 */
    uint64_t sequence_resyncs;       /**< a run of consecutive sequences beyond max_sequence_jump was followed */
} cf_bridge_topic_stats_t;
/** CF_ENOENT if @p topic_id is neither forwarded nor republished; CF_EINVAL for NULL or a wrong struct_size. */
CF_API int cf_bridge_topic_stats(const cf_bridge_t* bridge, uint32_t topic_id, cf_bridge_topic_stats_t* stats);

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
    /* Added in 0.4 (left unwritten when struct_size ends before them): */
    uint64_t answers_unsolicited;    /**< dropped: probe answers matching no probe outstanding (nonce and t1) */
    uint64_t answers_stale;          /**< dropped: answers to our probe later than max_probe_age_ns */
    uint64_t auth_failed;            /**< keyed: dropped, the MAC does not match or the auth header is malformed */
    uint64_t auth_unknown_key;       /**< keyed: dropped, a key id the bridge does not hold */
    uint64_t auth_missing;           /**< keyed: dropped, an unkeyed datagram */
    uint64_t auth_unexpected;        /**< keyless: dropped, a keyed datagram */
    uint64_t probes_deferred;        /**< probes not sent: 16 still awaiting answers (a very long round trip) */
} cf_bridge_stats_t;
CF_API int cf_bridge_stats(const cf_bridge_t* bridge, cf_bridge_stats_t* stats);

/**
 * The peer's clock minus ours now (by the bridge's time source), rounded to nanoseconds: the true offset lies
 * within @p bound_ns of @p offset_ns as long as the two clocks run at a constant relative rate (the estimator's
 * assumption; a clock step is detected and the estimate restarts). @p drift_ppm (may be NULL) receives the
 * estimated relative rate (peer / ours - 1) in parts per million.
 * @return 0; CF_EAGAIN before the first answer to a probe; CF_EINVAL for NULL.
 */
CF_API int cf_bridge_clock_offset(const cf_bridge_t* bridge, int64_t* offset_ns, uint64_t* bound_ns,
                                  double* drift_ppm);

#ifdef __cplusplus
}
#endif

#endif /* CHRONOFABRIC_H */
