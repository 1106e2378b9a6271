/* The QUIC C API compiled as C11 against the shared library: a listener and a client (through its connection pool)
 * in one thread over loopback, with an Ed25519 CA and server certificate made by certtool at run time. Messages go
 * both ways over one channel that is reused after the connection went back to the pool; every content and the order
 * are checked, then the statistics, a replacement after the server closes, and the error paths.
 * Exit 77 (skipped) without certtool (gnutls-bin). */
#define _POSIX_C_SOURCE 200809L   /* mkdtemp, popen */
#include <chronofabric/chronofabric.h>

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static int passed = 0;
static int failed = 0;

#define EXPECT(condition)                                                                    \
    do {                                                                                     \
        if (condition) {                                                                     \
            ++passed;                                                                        \
        } else {                                                                             \
            ++failed;                                                                        \
            fprintf(stderr, "%s:%d: expectation failed: %s (last error: %s)\n", __FILE__, __LINE__, #condition, \
                    cf_last_error_message());                                                \
        }                                                                                    \
    } while (0)

static char dir[64];
static char path_buffer[8][256];

/* dir/name, in one of a few rotating buffers. */
static const char* path(const char* name) {
    static int next = 0;
    char* out = path_buffer[next++ % 8];
    snprintf(out, sizeof path_buffer[0], "%s/%s", dir, name);
    return out;
}

static int run(const char* command) {
    char line[1024];
    snprintf(line, sizeof line, "%s >>'%s/certtool.log' 2>&1", command, dir);
    return system(line);
}

static int write_file(const char* name, const char* text) {
    FILE* f = fopen(path(name), "w");
    if (f == NULL) return -1;
    fputs(text, f);
    return fclose(f);
}

/* A CA, and a server certificate for localhost it signed. 0 on success. */
static int make_keys(void) {
    char command[1024];
    if (write_file("ca.tmpl", "cn = quic C test CA\nca\ncert_signing_key\nexpiration_days = 2\n") != 0 ||
        write_file("server.tmpl", "cn = localhost\ndns_name = localhost\nip_address = 127.0.0.1\ntls_www_server\n"
                                  "signing_key\nexpiration_days = 2\n") != 0) {
        return -1;
    }
    snprintf(command, sizeof command, "certtool --generate-privkey --key-type=ed25519 --outfile '%s'",
             path("ca.key"));
    if (run(command) != 0) return -1;
    snprintf(command, sizeof command, "certtool --generate-self-signed --load-privkey '%s' --template '%s' "
             "--outfile '%s'", path("ca.key"), path("ca.tmpl"), path("ca.pem"));
    if (run(command) != 0) return -1;
    snprintf(command, sizeof command, "certtool --generate-privkey --key-type=ed25519 --outfile '%s'",
             path("server.key"));
    if (run(command) != 0) return -1;
    snprintf(command, sizeof command, "certtool --generate-certificate --load-privkey '%s' --load-ca-certificate "
             "'%s' --load-ca-privkey '%s' --template '%s' --outfile '%s'", path("server.key"), path("ca.pem"),
             path("ca.key"), path("server.tmpl"), path("server.pem"));
    return run(command);
}

/* The server certificate's public key pin as 64 hex digits. 0 on success. */
static int server_pin(char out[65]) {
    char command[512];
    snprintf(command, sizeof command, "certtool --key-id --hash sha256 --infile '%s' 2>/dev/null",
             path("server.pem"));
    FILE* p = popen(command, "r");
    if (p == NULL) return -1;
    const int ok = fscanf(p, "%64s", out) == 1 && strlen(out) == 64;
    return pclose(p) == 0 && ok ? 0 : -1;
}

static double seconds_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* Polls both sides once. */
static void poll_both(cf_quic_listener_t* listener, cf_quic_client_t* client) {
    EXPECT(cf_quic_listener_poll(listener) >= 0);
    EXPECT(cf_quic_client_poll(client) >= 0);
}

/* A message of the exchange: its length and bytes from a fixed-seed generator, so both sides know them. */
static size_t message_of(uint32_t index, int reply, uint8_t* out) {
    uint32_t state = index * 2654435761u + (reply ? 0x9e3779b9u : 1u);
    const size_t length = index == 0 ? 0 : 1 + (state >> 7) % 1500;   /* the first one is empty */
    for (size_t i = 0; i < length; ++i) {
        state = state * 1664525u + 1013904223u;
        out[i] = (uint8_t)(state >> 24);
    }
    return length;
}

static void base_config(cf_quic_config_t* config) {
    cf_quic_config_init(config);
    config->bind = "127.0.0.1:0";
    config->alpn = "cf-test,cf-other";
    config->max_message_bytes = 2048;
    config->stream_window = 8192;
}

static void test_config_errors(void) {
    cf_quic_config_init(NULL);   /* nothing, no crash */
    cf_quic_listener_t* listener = NULL;
    cf_quic_client_t* client = NULL;
    cf_quic_config_t config;

    EXPECT(cf_quic_listener_create(NULL, &listener) == CF_EINVAL);
    EXPECT(strstr(cf_last_error_message(), "NULL") != NULL);
    base_config(&config);
    EXPECT(cf_quic_listener_create(&config, NULL) == CF_EINVAL);
    EXPECT(cf_quic_client_create(NULL, &client) == CF_EINVAL);

    base_config(&config);
    config.struct_size = 8;
    EXPECT(cf_quic_listener_create(&config, &listener) == CF_EINVAL);
    EXPECT(strstr(cf_last_error_message(), "struct_size") != NULL);
    config.struct_size = sizeof config + 8;
    EXPECT(cf_quic_client_create(&config, &client) == CF_EINVAL);

    /* A listener needs a certificate; files that do not exist are CF_ENOENT and named. */
    base_config(&config);
    EXPECT(cf_quic_listener_create(&config, &listener) == CF_EINVAL);
    EXPECT(strstr(cf_last_error_message(), "certificate") != NULL);
    config.certificate_file = path("missing.pem");
    config.key_file = path("server.key");
    EXPECT(cf_quic_listener_create(&config, &listener) == CF_ENOENT);
    EXPECT(strstr(cf_last_error_message(), "missing.pem") != NULL);

    /* Unknown congestion controller, bad windows, bad bind address, bad ALPN. */
    base_config(&config);
    config.certificate_file = path("server.pem");
    config.key_file = path("server.key");
    config.congestion = "bbr";
    EXPECT(cf_quic_listener_create(&config, &listener) == CF_EINVAL);
    EXPECT(strstr(cf_last_error_message(), "bbr") != NULL);
    config.congestion = "newreno";
    config.stream_window = 100;   /* below twice max_message_bytes */
    EXPECT(cf_quic_listener_create(&config, &listener) == CF_EINVAL);
    EXPECT(strstr(cf_last_error_message(), "stream_window") != NULL);
    config.stream_window = 8192;
    config.bind = "127.0.0.1:not-a-port";
    EXPECT(cf_quic_listener_create(&config, &listener) == CF_EINVAL);
    config.bind = "127.0.0.1:0";
    config.driver = "carrier-pigeon";
    EXPECT(cf_quic_listener_create(&config, &listener) == CF_EINVAL);
    EXPECT(strstr(cf_last_error_message(), "carrier-pigeon") != NULL);
    config.driver = NULL;
    config.alpn = "cf-test,,x";
    EXPECT(cf_quic_listener_create(&config, &listener) == CF_EINVAL);
    EXPECT(strstr(cf_last_error_message(), "alpn") != NULL);
    config.alpn = "cf-test";
    config.max_connections = 0;
    EXPECT(cf_quic_listener_create(&config, &listener) == CF_EINVAL);
    EXPECT(listener == NULL);

    /* A client with nothing to verify the server with, bad pins, an impossible pool. */
    base_config(&config);
    EXPECT(cf_quic_client_create(&config, &client) == CF_EINVAL);
    EXPECT(strstr(cf_last_error_message(), "CA file or pinned keys") != NULL);
    config.pinned_keys = "1234";
    EXPECT(cf_quic_client_create(&config, &client) == CF_EINVAL);
    EXPECT(strstr(cf_last_error_message(), "64") != NULL);
    config.pinned_keys = "zz6f37b645b474b77e0fa0054e88df3da20057c5e7d3c9abf96786de3c8b7fcd";
    EXPECT(cf_quic_client_create(&config, &client) == CF_EINVAL);
    config.pinned_keys = "9c6f37b645b474b77e0fa0054e88df3da20057c5e7d3c9abf96786de3c8b7fcd,";
    EXPECT(cf_quic_client_create(&config, &client) == CF_EINVAL);
    config.pinned_keys = "9c6f37b645b474b77e0fa0054e88df3da20057c5e7d3c9abf96786de3c8b7fcd "
                         "9c6f37b645b474b77e0fa0054e88df3da20057c5e7d3c9abf96786de3c8b7fcd";
    EXPECT(cf_quic_client_create(&config, &client) == CF_EINVAL);
    EXPECT(strstr(cf_last_error_message(), "commas") != NULL);
    config.pinned_keys = NULL;
    config.pinned_key_count = 1;   /* and no bytes */
    EXPECT(cf_quic_client_create(&config, &client) == CF_EINVAL);
    EXPECT(strstr(cf_last_error_message(), "pinned_key_bytes") != NULL);
    config.pinned_key_count = 0;
    config.ca_file = path("ca.pem");
    config.pool_min_idle = config.pool_max_per_peer + 1;
    EXPECT(cf_quic_client_create(&config, &client) == CF_EINVAL);
    EXPECT(strstr(cf_last_error_message(), "pool_") != NULL);
    config.pool_min_idle = 1;
    config.handshake_timeout_ns = 0;
    EXPECT(cf_quic_client_create(&config, &client) == CF_EINVAL);
    config.ca_file = path("no-such-ca.pem");
    config.handshake_timeout_ns = 1000000000;
    EXPECT(cf_quic_client_create(&config, &client) == CF_ENOENT);
    EXPECT(client == NULL);

    /* NULL handles everywhere. */
    cf_quic_connection_t* connection = NULL;
    uint32_t peer = 0;
    char text[64];
    EXPECT(cf_quic_listener_poll(NULL) == CF_EINVAL);
    EXPECT(cf_quic_client_poll(NULL) == CF_EINVAL);
    EXPECT(cf_quic_listener_accept(NULL, &connection) == CF_EINVAL);
    EXPECT(cf_quic_listener_local_address(NULL, text, sizeof text) == CF_EINVAL);
    EXPECT(cf_quic_client_local_address(NULL, text, sizeof text) == CF_EINVAL);
    EXPECT(cf_quic_client_add_peer(NULL, "127.0.0.1:1", NULL, &peer) == CF_EINVAL);
    EXPECT(cf_quic_connection_acquire(NULL, 0, &connection) == CF_EINVAL);
    EXPECT(cf_quic_connection_release(NULL) == CF_EINVAL);
    EXPECT(cf_quic_connection_close(NULL, 0, NULL) == CF_EINVAL);
    cf_quic_connection_stats_t stats;
    stats.struct_size = sizeof stats;
    EXPECT(cf_quic_connection_stats(NULL, &stats) == CF_EINVAL);
    uint64_t channel = 0;
    EXPECT(cf_quic_channel_open(NULL, &channel) == CF_EINVAL);
    EXPECT(cf_quic_channel_send(NULL, 0, "x", 1) == CF_EINVAL);
    const uint8_t* data = NULL;
    size_t length = 0;
    EXPECT(cf_quic_channel_poll(NULL, &channel, &data, &length) == CF_EINVAL);
    EXPECT(cf_quic_channel_release(NULL, 0) == CF_EINVAL);
    EXPECT(cf_quic_channel_close(NULL, 0) == CF_EINVAL);
    EXPECT(cf_quic_listener_destroy(NULL) == CF_OK);
    EXPECT(cf_quic_client_destroy(NULL) == CF_OK);
    EXPECT(strcmp(cf_strerror(CF_ECONNRESET), "unknown status") != 0);
}

/* Acquires a connection to `peer`, polling until one is ready (a deadline against a hang, not a measurement). */
static cf_quic_connection_t* acquire(cf_quic_listener_t* listener, cf_quic_client_t* client, uint32_t peer) {
    cf_quic_connection_t* connection = NULL;
    const double end = seconds_now() + 5.0;
    while (seconds_now() < end) {
        poll_both(listener, client);
        const int status = cf_quic_connection_acquire(client, peer, &connection);
        if (status == CF_OK) return connection;
        if (status != CF_EAGAIN) break;
    }
    return NULL;
}

static cf_quic_connection_t* accept_one(cf_quic_listener_t* listener, cf_quic_client_t* client) {
    cf_quic_connection_t* connection = NULL;
    const double end = seconds_now() + 5.0;
    while (seconds_now() < end) {
        poll_both(listener, client);
        if (cf_quic_listener_accept(listener, &connection) == CF_OK) return connection;
    }
    return NULL;
}

/* Sends `count` messages from index `first` on `channel` and checks that `to` receives exactly them, in order, on
 * one channel (whose id it returns in *seen, UINT64_MAX if none came); `reply` picks the other direction's
 * contents. Sends as fast as the flow-control credit lets. */
static void exchange(cf_quic_listener_t* listener, cf_quic_client_t* client, cf_quic_connection_t* from,
                     uint64_t channel, cf_quic_connection_t* to, uint32_t first, uint32_t count, int reply,
                     uint64_t* seen) {
    uint8_t expected[2048];
    uint8_t outgoing[2048];
    uint32_t sent = 0, received = 0, wrong = 0, out_of_channel = 0;
    *seen = UINT64_MAX;
    const double end = seconds_now() + 10.0;
    while (received < count && seconds_now() < end) {
        while (sent < count) {
            const size_t length = message_of(first + sent, reply, outgoing);
            const int status = cf_quic_channel_send(from, channel, outgoing, length);
            if (status == CF_EAGAIN) break;
            EXPECT(status == CF_OK);
            if (status != CF_OK) return;
            ++sent;
        }
        poll_both(listener, client);
        uint64_t got_channel = 0;
        const uint8_t* data = NULL;
        size_t length = 0;
        int status;
        while ((status = cf_quic_channel_poll(to, &got_channel, &data, &length)) == 1) {
            const size_t want = message_of(first + received, reply, expected);
            if (length != want || (want != 0 && memcmp(data, expected, want) != 0)) ++wrong;
            if (*seen == UINT64_MAX) *seen = got_channel;
            if (got_channel != *seen) ++out_of_channel;
            EXPECT(cf_quic_channel_release(to, got_channel) == CF_OK);
            ++received;
        }
        EXPECT(status == 0);
    }
    EXPECT(sent == count);
    EXPECT(received == count);
    EXPECT(wrong == 0);
    EXPECT(out_of_channel == 0);
}

static void test_exchange(void) {
    cf_quic_config_t server_config;
    base_config(&server_config);
    server_config.certificate_file = path("server.pem");
    server_config.key_file = path("server.key");
    server_config.congestion = "newreno";
    cf_quic_listener_t* listener = NULL;
    EXPECT(cf_quic_listener_create(&server_config, &listener) == CF_OK);
    if (listener == NULL) return;
    char address[64];
    EXPECT(cf_quic_listener_local_address(listener, address, 4) == CF_EINVAL);   /* too small */
    EXPECT(cf_quic_listener_local_address(listener, address, sizeof address) == CF_OK);
    EXPECT(strncmp(address, "127.0.0.1:", 10) == 0);

    cf_quic_config_t client_config;
    base_config(&client_config);
    client_config.alpn = "cf-other";   /* the server's second */
    client_config.ca_file = path("ca.pem");
    client_config.server_name = "localhost";
    client_config.congestion = "cubic";
    client_config.driver = "socket";
    client_config.pool_max_per_peer = 2;
    client_config.pool_min_idle = 1;
    cf_quic_client_t* client = NULL;
    EXPECT(cf_quic_client_create(&client_config, &client) == CF_OK);
    if (client == NULL) {
        EXPECT(cf_quic_listener_destroy(listener) == CF_OK);
        return;
    }
    uint32_t peer = 99, again = 99;
    EXPECT(cf_quic_client_add_peer(client, "127.0.0.1:x", NULL, &peer) == CF_EINVAL);
    EXPECT(cf_quic_client_add_peer(client, address, NULL, &peer) == CF_OK);
    EXPECT(peer == 0);
    EXPECT(cf_quic_client_add_peer(client, address, NULL, &again) == CF_EEXIST);
    EXPECT(again == 0);
    cf_quic_connection_t* none = NULL;
    EXPECT(cf_quic_connection_acquire(client, 7, &none) == CF_EINVAL);

    cf_quic_connection_t* connection = acquire(listener, client, peer);
    EXPECT(connection != NULL);
    cf_quic_connection_t* accepted = accept_one(listener, client);
    EXPECT(accepted != NULL);
    if (connection == NULL || accepted == NULL) goto out;

    /* Client to server and back on one channel, 200 messages each way (the first empty, up to 1500 bytes). */
    uint64_t channel = 0, server_channel = 0, client_channel = 0;
    EXPECT(cf_quic_channel_open(connection, &channel) == CF_OK);
    exchange(listener, client, connection, channel, accepted, 0, 200, 0, &server_channel);
    EXPECT(server_channel == channel);
    exchange(listener, client, accepted, server_channel, connection, 0, 200, 1, &client_channel);
    EXPECT(client_channel == channel);

    /* Back to the pool and out again: the same connection (the pool's other one is only standing by), and the
     * channel is still there. */
    EXPECT(cf_quic_connection_release(connection) == CF_OK);
    EXPECT(cf_quic_connection_release(connection) == CF_EINVAL);
    EXPECT(cf_quic_channel_open(connection, &client_channel) == CF_EINVAL);   /* released */
    cf_quic_connection_t* reacquired = acquire(listener, client, peer);
    EXPECT(reacquired == connection);
    if (reacquired != connection) goto out;
    exchange(listener, client, connection, channel, accepted, 200, 100, 0, &server_channel);
    EXPECT(server_channel == channel);
    exchange(listener, client, accepted, channel, connection, 200, 100, 1, &client_channel);
    EXPECT(client_channel == channel);

    /* Statistics: both sides measured an RTT and sent packets over one open channel. */
    uint8_t big[4096];
    cf_quic_connection_stats_t stats;
    memset(&stats, 0, sizeof stats);
    EXPECT(cf_quic_connection_stats(connection, &stats) == CF_EINVAL);   /* struct_size unset */
    stats.struct_size = sizeof stats;
    EXPECT(cf_quic_connection_stats(connection, NULL) == CF_EINVAL);
    EXPECT(cf_quic_connection_stats(connection, &stats) == CF_OK);
    EXPECT(stats.smoothed_rtt_ns > 0 && stats.smoothed_rtt_ns < 333000000u);   /* a sample replaced 333 ms */
    EXPECT(stats.min_rtt_ns > 0 && stats.min_rtt_ns <= stats.smoothed_rtt_ns + stats.rtt_variance_ns * 4);
    EXPECT(stats.congestion_window >= 2 * 1200);
    EXPECT(stats.packets_sent > 0 && stats.packets_received > 0);
    size_t payload = 0;   /* what the client sent in messages: its packets carried at least that */
    for (uint32_t i = 0; i < 300; ++i) payload += message_of(i, 0, big);
    EXPECT(stats.bytes_sent > payload);
    EXPECT(stats.packets_retransmitted <= stats.packets_lost);
    printf("client: srtt %llu ns, rttvar %llu ns, cwnd %llu, sent %llu, lost %llu, retransmitted %llu\n",
           (unsigned long long)stats.smoothed_rtt_ns, (unsigned long long)stats.rtt_variance_ns,
           (unsigned long long)stats.congestion_window, (unsigned long long)stats.packets_sent,
           (unsigned long long)stats.packets_lost, (unsigned long long)stats.packets_retransmitted);
    EXPECT(stats.streams_open == 1);
    cf_quic_connection_stats_t server_stats;
    server_stats.struct_size = sizeof server_stats;
    EXPECT(cf_quic_connection_stats(accepted, &server_stats) == CF_OK);
    EXPECT(server_stats.streams_open == 1);

    /* Channel errors. */
    memset(big, 7, sizeof big);
    EXPECT(cf_quic_channel_send(connection, channel, big, 2049) == CF_EMSGSIZE);
    EXPECT(cf_quic_channel_send(connection, channel, NULL, 1) == CF_EINVAL);
    EXPECT(cf_quic_channel_send(connection, channel, big, (size_t)-1) == CF_EINVAL);
    EXPECT(cf_quic_channel_send(connection, channel + 400, big, 1) == CF_ENOENT);
    EXPECT(cf_quic_channel_release(connection, channel) == CF_EINVAL);   /* nothing out */
    EXPECT(cf_quic_channel_close(connection, channel + 400) == CF_ENOENT);
    EXPECT(cf_quic_channel_send(connection, channel, "one", 3) == CF_OK);
    EXPECT(cf_quic_channel_send(connection, channel, "two", 3) == CF_OK);
    uint64_t got = 0;
    const uint8_t* data = NULL;
    size_t length = 0;
    int status = 0;
    const double end = seconds_now() + 5.0;
    while ((status = cf_quic_channel_poll(accepted, &got, &data, &length)) == 0 && seconds_now() < end) {
        poll_both(listener, client);
    }
    EXPECT(status == 1);
    EXPECT(got == channel && length == 3 && memcmp(data, "one", 3) == 0);
    EXPECT(cf_quic_channel_poll(accepted, &got, &data, &length) == CF_EBUSY);   /* "one" is still out */
    EXPECT(cf_quic_channel_release(accepted, channel + 4) == CF_EINVAL);
    EXPECT(cf_quic_channel_release(accepted, channel) == CF_OK);
    EXPECT(cf_quic_channel_poll(accepted, &got, &data, &length) == 1);
    EXPECT(got == channel && length == 3 && memcmp(data, "two", 3) == 0);
    EXPECT(cf_quic_channel_release(accepted, channel) == CF_OK);
    /* Our side of the channel ends; sending on it afterwards is refused. */
    EXPECT(cf_quic_channel_close(connection, channel) == CF_OK);
    EXPECT(cf_quic_channel_send(connection, channel, "late", 4) == CF_ECONNRESET);
    /* The server reads the end and closes its side too: then the channel is gone at both ends. */
    cf_quic_connection_stats_t server_after;
    server_after.struct_size = sizeof server_after;
    const double closed_end = seconds_now() + 5.0;
    for (;;) {
        poll_both(listener, client);
        EXPECT(cf_quic_channel_poll(accepted, &got, &data, &length) == 0);
        EXPECT(cf_quic_channel_poll(connection, &got, &data, &length) == 0);
        EXPECT(cf_quic_connection_stats(connection, &stats) == CF_OK);
        EXPECT(cf_quic_connection_stats(accepted, &server_after) == CF_OK);
        if ((stats.streams_open == 0 && server_after.streams_open == 0) || seconds_now() > closed_end) break;
    }
    EXPECT(stats.streams_open == 0);
    EXPECT(server_after.streams_open == 0);
    EXPECT(cf_quic_channel_send(accepted, channel, "gone", 4) == CF_ENOENT);

    /* The server closes: the client's handle reports it, its release frees the entry, and the pool hands out a
     * fresh connection that works. */
    EXPECT(cf_quic_connection_close(accepted, 1ULL << 62, "x") == CF_EINVAL);
    EXPECT(cf_quic_connection_close(accepted, 7, "done with you") == CF_OK);
    EXPECT(cf_quic_connection_close(accepted, 7, NULL) == CF_ECONNRESET);
    const double close_end = seconds_now() + 5.0;
    while (cf_quic_channel_open(connection, &got) != CF_ECONNRESET && seconds_now() < close_end) {
        poll_both(listener, client);
    }
    EXPECT(cf_quic_channel_open(connection, &got) == CF_ECONNRESET);
    EXPECT(cf_quic_connection_stats(connection, &stats) == CF_ECONNRESET);
    EXPECT(cf_quic_connection_release(connection) == CF_OK);
    EXPECT(cf_quic_connection_release(accepted) == CF_OK);
    EXPECT(cf_quic_connection_release(accepted) == CF_EINVAL);
    cf_quic_connection_t* fresh = acquire(listener, client, peer);
    EXPECT(fresh != NULL);
    if (fresh != NULL) {
        cf_quic_connection_t* fresh_accepted = accept_one(listener, client);
        EXPECT(fresh_accepted != NULL);
        uint64_t fresh_channel = 0, seen = 0;
        EXPECT(cf_quic_channel_open(fresh, &fresh_channel) == CF_OK);
        if (fresh_accepted != NULL) {
            exchange(listener, client, fresh, fresh_channel, fresh_accepted, 500, 20, 0, &seen);
            EXPECT(seen == fresh_channel);
            EXPECT(cf_quic_connection_release(fresh_accepted) == CF_OK);
        }
        EXPECT(cf_quic_connection_release(fresh) == CF_OK);
    }

out:
    EXPECT(cf_quic_client_destroy(client) == CF_OK);
    EXPECT(cf_quic_listener_destroy(listener) == CF_OK);
}

/* A client that knows the server only by its pinned key (no CA), given as hex and as bytes; a wrong pin fails the
 * handshake, so nothing is ever handed out. */
static void test_pins(void) {
    char pin[65];
    EXPECT(server_pin(pin) == 0);
    cf_quic_config_t server_config;
    base_config(&server_config);
    server_config.certificate_file = path("server.pem");
    server_config.key_file = path("server.key");
    cf_quic_listener_t* listener = NULL;
    EXPECT(cf_quic_listener_create(&server_config, &listener) == CF_OK);
    if (listener == NULL) return;
    char address[64];
    EXPECT(cf_quic_listener_local_address(listener, address, sizeof address) == CF_OK);

    uint8_t bytes[CF_QUIC_PIN_BYTES];
    for (unsigned i = 0; i < CF_QUIC_PIN_BYTES; ++i) {
        unsigned value = 0;
        EXPECT(sscanf(pin + 2 * i, "%2x", &value) == 1);
        bytes[i] = (uint8_t)value;
    }
    for (int form = 0; form < 3; ++form) {
        cf_quic_config_t config;
        base_config(&config);
        uint8_t wrong[CF_QUIC_PIN_BYTES];
        memcpy(wrong, bytes, sizeof wrong);
        wrong[5] ^= 1;
        if (form == 0) config.pinned_keys = pin;
        config.pinned_key_bytes = form == 1 ? bytes : wrong;
        config.pinned_key_count = form == 0 ? 0 : 1;
        config.handshake_timeout_ns = 2000000000u;
        cf_quic_client_t* client = NULL;
        EXPECT(cf_quic_client_create(&config, &client) == CF_OK);
        if (client == NULL) continue;
        uint32_t peer = 0;
        EXPECT(cf_quic_client_add_peer(client, address, "localhost", &peer) == CF_OK);
        if (form < 2) {
            cf_quic_connection_t* connection = acquire(listener, client, peer);
            EXPECT(connection != NULL);
            if (connection != NULL) EXPECT(cf_quic_connection_release(connection) == CF_OK);
        } else {
            /* Long enough for the handshake to fail (a few round trips on loopback), then still nothing. */
            cf_quic_connection_t* connection = NULL;
            for (int i = 0; i < 2000; ++i) {
                poll_both(listener, client);
                EXPECT(cf_quic_connection_acquire(client, peer, &connection) == CF_EAGAIN);
            }
        }
        EXPECT(cf_quic_client_destroy(client) == CF_OK);
    }
    EXPECT(cf_quic_listener_destroy(listener) == CF_OK);
}

int main(void) {
    if (system("certtool --version >/dev/null 2>&1") != 0) {
        printf("SKIP: certtool (gnutls-bin) is not installed\n");
        return 77;
    }
    snprintf(dir, sizeof dir, "/tmp/cf-quic-c-XXXXXX");
    if (mkdtemp(dir) == NULL || make_keys() != 0) {
        fprintf(stderr, "could not make the test keys in %s (see certtool.log there)\n", dir);
        return 1;
    }
    test_config_errors();
    test_exchange();
    test_pins();
    char command[128];
    snprintf(command, sizeof command, "rm -rf '%s'", dir);
    if (system(command) != 0) fprintf(stderr, "could not remove %s\n", dir);
    printf("%d passed, %d failed\n", passed, failed);
    return failed == 0 ? 0 : 1;
}
