/**
 * @file chronofabric/quic.h
 * QUIC (RFC 9000/9001/9002) between engines: listeners (servers), clients that keep connections ready per peer,
 * and message channels on a connection. Version 0.x: this part of the API may still change before it joins a
 * numbered release node.
 *
 * A listener or a client owns one UDP socket and its connections, and is driven by one thread: that thread calls
 * its poll function in a loop and every other function on it and on its connections; none may be called
 * concurrently. poll never blocks; what the channel functions queue goes out at the next poll.
 *
 * A client keeps connections to each peer it was given (cf_quic_client_add_peer) established ahead of use: at
 * least pool_min_idle beyond those in use, at most pool_max_per_peer. cf_quic_connection_acquire hands out a ready
 * one (CF_EAGAIN while none is: poll and try again) and cf_quic_connection_release gives it back with its channels
 * still open, so the next acquire of that peer may get the same connection and reuse its channels. A connection
 * that closes is replaced; a handle to it reports CF_ECONNRESET until it is released.
 * A listener accepts connections by itself; cf_quic_listener_accept hands out each established one once, and
 * cf_quic_connection_release on it closes the connection.
 *
 * A channel is one bidirectional QUIC stream carrying whole messages (a length prefix each), in order. Either side
 * opens one (cf_quic_channel_open) and sends on it; the other side learns of it from its first message
 * (cf_quic_channel_poll) and may answer on the same channel. A message from cf_quic_channel_poll stays valid until
 * cf_quic_channel_release, which must come before the next poll of a channel of that connection.
 *
 * Peer authentication: a client needs ca_file (the server's chain must verify against it and name server_name) or
 * pinned keys (SHA-256 of the server certificate's public key, `certtool --key-id --hash sha256 --infile cert.pem`),
 * or verify_peer = 0. A listener with require_client_certificate checks its clients the same way.
 */
#ifndef CHRONOFABRIC_QUIC_H
#define CHRONOFABRIC_QUIC_H

#include "chronofabric/status.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct cf_quic_listener cf_quic_listener_t;
typedef struct cf_quic_client cf_quic_client_t;
typedef struct cf_quic_connection cf_quic_connection_t;

#define CF_QUIC_PIN_BYTES 32u   /**< a pinned public key: SHA-256 of its SubjectPublicKeyInfo */

/**
 * Listener and client configuration. Size-versioned like cf_engine_config_t: cf_quic_config_init fills the
 * defaults and struct_size. Strings are copied; files are read when the listener or client is created.
 */
typedef struct cf_quic_config {
    uint32_t struct_size;
    uint32_t max_connections;        /**< connections at once, closed ones lingering included, 1 .. 65536 (16) */
    const char* bind;                /**< the local address, port 0 picks a free one (NULL: "0.0.0.0:0") */
    const char* driver;              /**< "auto" (NULL: io_uring where the kernel allows it), "uring", "socket" */
    const char* certificate_file;    /**< PEM; a listener needs one, a client only for mutual authentication */
    const char* key_file;            /**< PEM, the certificate's private key */
    const char* ca_file;             /**< PEM: the peer's chain must verify against it (NULL: none) */
    const char* server_name;         /**< client: sent as SNI and checked in the server's certificate (NULL: none) */
    const char* alpn;                /**< comma-separated protocol names, each 1 .. 255 bytes (NULL: "chronofabric") */
    const char* pinned_keys;         /**< comma-separated pins, 64 hex digits each (NULL: none) */
    const uint8_t* pinned_key_bytes; /**< pinned_key_count pins of CF_QUIC_PIN_BYTES bytes each, one after another */
    uint32_t pinned_key_count;
    uint32_t verify_peer;            /**< client: 0 accepts any server (tests only) (1) */
    uint32_t require_client_certificate;   /**< listener: 1 refuses clients without an accepted certificate (0) */
    uint32_t max_channels;           /**< channels each side may have open per connection, 1 .. 65536 (8) */
    const char* congestion;          /**< congestion controller: "cubic" or "newreno" (NULL: "cubic") */
    uint64_t stream_window;          /**< bytes a peer may send on one channel ahead of our reading, at least twice
                                          max_message_bytes plus 8, at most 16 MiB (32 KiB) */
    uint64_t connection_window;      /**< the same for all channels of a connection, stream_window .. 2^40 (1 MiB) */
    uint32_t max_message_bytes;      /**< the largest message, 1 .. 1 MiB (8 KiB) */
    uint32_t pool_max_per_peer;      /**< client: connections per peer, 1 .. 64 (4) */
    uint32_t pool_min_idle;          /**< client: kept ready beyond those in use, 0 .. pool_max_per_peer (1) */
    uint32_t max_peers;              /**< client: peers, 1 .. 4096 (8); max_connections should cover
                                          max_peers * pool_max_per_peer plus closed ones lingering (~100 ms) */
    uint64_t idle_timeout_ns;        /**< a connection silent this long closes (0: never), at least 1 ms (30 s) */
    uint64_t handshake_timeout_ns;   /**< client: an attempt not established by then is given up, 1 ms .. 1 h (5 s) */
} cf_quic_config_t;

/** Fills @p config with the defaults and its struct_size (NULL: nothing). */
CF_API void cf_quic_config_init(cf_quic_config_t* config);

/**
 * Creates a listener: reads its certificate, key and CA, binds its UDP socket.
 * @return status: 0; CF_EINVAL (NULL, unknown struct_size, a bad field: the message names it; a certificate or
 * key that does not load; a bad pin; an unknown congestion controller or driver); CF_ENOENT (a file that does not
 * exist); CF_ENOMEM; CF_ENOTSUP or CF_EPERM (driver "uring" where io_uring is missing or forbidden);
 * CF_EADDRINUSE; CF_EIO.
 */
CF_NODISCARD CF_API int cf_quic_listener_create(const cf_quic_config_t* config, cf_quic_listener_t** listener);
/** Closes every connection at once (no CONNECTION_CLOSE is sent) and frees the listener; its connection handles
 *  become invalid. @return status: 0 (also for NULL). */
CF_NODISCARD CF_API int cf_quic_listener_destroy(cf_quic_listener_t* listener);
/** One turn: sends what is queued, receives, runs timers. Never blocks.
 *  @return count: datagrams moved (0: idle), or CF_EINVAL for NULL. */
CF_NODISCARD CF_API int cf_quic_listener_poll(cf_quic_listener_t* listener);
/** An established connection not handed out before, oldest first.
 *  @return status: 0; CF_EAGAIN (none waiting); CF_EINVAL for NULL. */
CF_NODISCARD CF_API int cf_quic_listener_accept(cf_quic_listener_t* listener, cf_quic_connection_t** connection);
/** The bound local address as "ip:port" in @p buffer (@p size bytes with the NUL; 64 is always enough).
 *  @return status: 0; CF_EINVAL for NULL or a buffer too small. */
CF_NODISCARD CF_API int cf_quic_listener_local_address(const cf_quic_listener_t* listener, char* buffer, size_t size);

/** Creates a client: reads its files, binds its UDP socket, reserves its connection pool. @return status: as
 *  cf_quic_listener_create. */
CF_NODISCARD CF_API int cf_quic_client_create(const cf_quic_config_t* config, cf_quic_client_t** client);
/** Frees the client and its connections (no CONNECTION_CLOSE is sent); its handles become invalid.
 *  @return status: 0 (also for NULL). */
CF_NODISCARD CF_API int cf_quic_client_destroy(cf_quic_client_t* client);
/** One turn (as cf_quic_listener_poll), then the pool's upkeep: replaces closed connections, opens new ones up to
 *  each peer's minimum. @return count: datagrams moved, or CF_EINVAL for NULL. */
CF_NODISCARD CF_API int cf_quic_client_poll(cf_quic_client_t* client);
/**
 * A server to keep connections to: @p address ("1.2.3.4:4433", "[::1]:4433"), and @p server_name (NULL: the
 * config's) for SNI and the certificate check. Connections start at the next poll. @p peer receives its number.
 * @return status: 0; CF_EINVAL (NULL, a bad address); CF_EEXIST (already a peer: @p peer says which); CF_ENOSPC
 * (max_peers). Not for the polling loop: it allocates.
 */
CF_NODISCARD CF_API int cf_quic_client_add_peer(cf_quic_client_t* client, const char* address,
                                               const char* server_name, uint32_t* peer);
/** The bound local address, as cf_quic_listener_local_address. */
CF_NODISCARD CF_API int cf_quic_client_local_address(const cf_quic_client_t* client, char* buffer, size_t size);

/** An established connection to @p peer, in use until released.
 *  @return status: 0; CF_EAGAIN (none ready yet: poll); CF_EINVAL (NULL, no such peer). */
CF_NODISCARD CF_API int cf_quic_connection_acquire(cf_quic_client_t* client, uint32_t peer,
                                                  cf_quic_connection_t** connection);
/** Gives a connection back: a client's to its pool (channels stay open), a listener's is closed.
 *  @return status: 0; CF_EINVAL (NULL, or released already). */
CF_NODISCARD CF_API int cf_quic_connection_release(cf_quic_connection_t* connection);
/** Closes the connection with an application @p error_code and @p reason (may be NULL; up to 256 bytes are sent).
 *  The handle still has to be released. @return status: 0; CF_EINVAL; CF_ECONNRESET (closed already). */
CF_NODISCARD CF_API int cf_quic_connection_close(cf_quic_connection_t* connection, uint64_t error_code,
                                                const char* reason);

/** A connection's transport state. Set struct_size = sizeof(cf_quic_connection_stats_t). */
typedef struct cf_quic_connection_stats {
    uint32_t struct_size;
    uint32_t streams_open;           /**< channels open (ours and the peer's) */
    uint64_t smoothed_rtt_ns;        /**< RFC 9002 smoothed_rtt (the initial 333 ms before the first sample) */
    uint64_t rtt_variance_ns;        /**< rttvar */
    uint64_t min_rtt_ns;
    uint64_t congestion_window;      /**< bytes */
    uint64_t bytes_in_flight;
    uint64_t packets_sent;
    uint64_t packets_received;
    uint64_t packets_lost;           /**< declared lost */
    uint64_t packets_retransmitted;  /**< lost packets whose frames were queued again */
    uint64_t bytes_sent;             /**< UDP payload bytes */
    uint64_t bytes_received;
} cf_quic_connection_stats_t;
/** @return status: 0; CF_EINVAL (NULL, a wrong struct_size, a released handle); CF_ECONNRESET (the connection
 *  closed and is gone: release it). */
CF_NODISCARD CF_API int cf_quic_connection_stats(const cf_quic_connection_t* connection,
                                                cf_quic_connection_stats_t* stats);

/** Opens a channel; @p channel receives its id. @return status: 0; CF_EAGAIN (the peer's limit: try after a
 *  poll); CF_ENOSPC (max_channels of ours open); CF_EINVAL; CF_ECONNRESET (the connection closed). */
CF_NODISCARD CF_API int cf_quic_channel_open(cf_quic_connection_t* connection, uint64_t* channel);
/**
 * Queues one message (all of it or nothing); it goes out at the next poll.
 * @return status: 0; CF_EAGAIN (no room or flow-control credit for all of it now: poll and try again);
 * CF_EMSGSIZE (above max_message_bytes); CF_ENOENT (no such open channel); CF_ECONNRESET (the connection closed,
 * or the channel was finished or stopped); CF_EINVAL (NULL data with a length, a released handle).
 */
CF_NODISCARD CF_API int cf_quic_channel_send(cf_quic_connection_t* connection, uint64_t channel, const void* data,
                                            size_t length);
/**
 * The next message that arrived on any channel of the connection, in order within each channel: @p channel, @p
 * data and @p length receive it (valid until cf_quic_channel_release). A channel the peer closed is closed on this
 * side too once its messages are read; one the peer reset, or that announces a message above max_message_bytes,
 * is reset (its unread messages are dropped).
 * @return count: 1 (a message), 0 (none yet); CF_EBUSY (the previous message is not released); CF_EINVAL;
 * CF_ECONNRESET (the connection closed).
 */
CF_NODISCARD CF_API int cf_quic_channel_poll(cf_quic_connection_t* connection, uint64_t* channel,
                                            const uint8_t** data, size_t* length);
/** Frees the message cf_quic_channel_poll returned on @p channel. @return status: 0; CF_EINVAL (no message of that
 *  channel outstanding, NULL). */
CF_NODISCARD CF_API int cf_quic_channel_release(cf_quic_connection_t* connection, uint64_t channel);
/** Ends our side of a channel after what was sent. @return status: 0; CF_ENOENT; CF_ECONNRESET; CF_EINVAL. */
CF_NODISCARD CF_API int cf_quic_channel_close(cf_quic_connection_t* connection, uint64_t channel);

#ifdef __cplusplus
}
#endif

#endif /* CHRONOFABRIC_QUIC_H */
