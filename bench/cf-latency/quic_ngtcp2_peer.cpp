#include "bench/cf-latency/quic_ngtcp2_peer.hpp"

#include <cerrno>

#if CF_HAVE_NGTCP2

#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>
#include <gnutls/x509.h>
#include <netinet/in.h>
#include <ngtcp2/ngtcp2.h>
#include <ngtcp2/ngtcp2_crypto.h>
#include <ngtcp2/ngtcp2_crypto_gnutls.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstring>

namespace cf::latency {
namespace {

// cf::quic::TlsContext's priority string with all three ciphers (tls_context.cpp), so both stacks negotiate alike.
constexpr const char* kPriority =
    "%DISABLE_TLS13_COMPAT_MODE:NORMAL:-VERS-ALL:+VERS-TLS1.3:-CIPHER-ALL:+AES-128-GCM:+AES-256-GCM:+CHACHA20-POLY1305";
constexpr const char* kAlpn = "cf-bench";
constexpr std::size_t kMaxDatagramBytes = 1452;
// Stream data is handed to ngtcp2 in place (it keeps a pointer until the bytes are acknowledged): a constant
// pattern twice as long as the longest piece offered, so every offset has a contiguous view.
constexpr std::size_t kPatternPeriod = kBulkPatternPeriod;

std::uint64_t monotonic_ns() {
    const auto since = std::chrono::steady_clock::now().time_since_epoch();
    return static_cast<std::uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(since).count());
}

}  // namespace

struct Ngtcp2Pair::State {
    gnutls_certificate_credentials_t client_credentials = nullptr;
    gnutls_certificate_credentials_t server_credentials = nullptr;
    gnutls_priority_t priority = nullptr;
    unsigned char server_key_id[32] = {};   // SHA-256 of the server's public key: the client's pin
    std::uint8_t pattern[2 * kPatternPeriod] = {};
    sockaddr_in client_address{}, server_address{};

    ~State() {
        if (priority != nullptr) gnutls_priority_deinit(priority);
        if (client_credentials != nullptr) gnutls_certificate_free_credentials(client_credentials);
        if (server_credentials != nullptr) gnutls_certificate_free_credentials(server_credentials);
    }
};

namespace {

using State = Ngtcp2Pair::State;

// One end: its ngtcp2 connection, its GnuTLS session, and what the callbacks saw.
struct End {
    ngtcp2_crypto_conn_ref ref{};   // what the crypto helper finds through gnutls_session_get_ptr
    const State* state = nullptr;
    ngtcp2_conn* conn = nullptr;
    gnutls_session_t tls = nullptr;
    ngtcp2_path path{};
    bool confirmed = false;
    std::uint64_t received = 0;   // stream bytes (the server in a bulk transfer)
    bool corrupt = false;

    ~End() {
        if (conn != nullptr) ngtcp2_conn_del(conn);
        if (tls != nullptr) gnutls_deinit(tls);
    }
};

ngtcp2_conn* conn_of(ngtcp2_crypto_conn_ref* ref) { return static_cast<End*>(ref->user_data)->conn; }

void random_bytes(std::uint8_t* out, std::size_t size, const ngtcp2_rand_ctx*) {
    (void)gnutls_rnd(GNUTLS_RND_NONCE, out, size);
}

int new_connection_id(ngtcp2_conn*, ngtcp2_cid* cid, std::uint8_t* token, std::size_t length, void*) {
    if (gnutls_rnd(GNUTLS_RND_NONCE, cid->data, length) < 0 ||
        gnutls_rnd(GNUTLS_RND_NONCE, token, NGTCP2_STATELESS_RESET_TOKENLEN) < 0) {
        return NGTCP2_ERR_CALLBACK_FAILURE;
    }
    cid->datalen = length;
    return 0;
}

// Both ends check the negotiated ALPN, as our TlsSession does at completion.
int handshake_completed(ngtcp2_conn*, void* user_data) {
    gnutls_datum_t selected{};
    auto* end = static_cast<End*>(user_data);
    if (gnutls_alpn_get_selected_protocol(end->tls, &selected) < 0 || selected.size != std::strlen(kAlpn) ||
        std::memcmp(selected.data, kAlpn, selected.size) != 0) {
        return NGTCP2_ERR_CALLBACK_FAILURE;
    }
    if (ngtcp2_conn_is_server(end->conn)) end->confirmed = true;   // confirmed at completion (RFC 9001 4.1.2)
    return 0;
}

int handshake_confirmed(ngtcp2_conn*, void* user_data) {
    static_cast<End*>(user_data)->confirmed = true;
    return 0;
}

// The server's side of a bulk transfer: check the bytes against the pattern, give the credit back at once.
int stream_data(ngtcp2_conn* conn, std::uint32_t, std::int64_t stream_id, std::uint64_t offset,
                const std::uint8_t* data, std::size_t length, void* user_data, void*) {
    auto* end = static_cast<End*>(user_data);
    if (length != 0 &&
        (data[0] != bulk_pattern_byte(offset) || data[length - 1] != bulk_pattern_byte(offset + length - 1))) {
        end->corrupt = true;
    }
    end->received += length;
    if (ngtcp2_conn_extend_max_stream_offset(conn, stream_id, length) != 0) return NGTCP2_ERR_CALLBACK_FAILURE;
    ngtcp2_conn_extend_max_offset(conn, length);
    return 0;
}

// The client's pin: the server's public key, hashed as cf::quic's pins are (SHA-256 of the key).
int verify_server(gnutls_session_t session) {
    auto* end = static_cast<End*>(static_cast<ngtcp2_crypto_conn_ref*>(gnutls_session_get_ptr(session))->user_data);
    unsigned count = 0;
    const gnutls_datum_t* chain = gnutls_certificate_get_peers(session, &count);
    if (chain == nullptr || count == 0) return -1;
    gnutls_x509_crt_t certificate = nullptr;
    unsigned char id[32];
    std::size_t id_size = sizeof id;
    bool ok = gnutls_x509_crt_init(&certificate) >= 0 &&
              gnutls_x509_crt_import(certificate, &chain[0], GNUTLS_X509_FMT_DER) >= 0 &&
              gnutls_x509_crt_get_key_id(certificate, GNUTLS_KEYID_USE_SHA256, id, &id_size) >= 0 &&
              id_size == sizeof id && std::memcmp(id, end->state->server_key_id, sizeof id) == 0;
    if (certificate != nullptr) gnutls_x509_crt_deinit(certificate);
    return ok ? 0 : -1;
}

ngtcp2_callbacks callbacks_for(bool server) {
    ngtcp2_callbacks callbacks{};
    if (server) {
        callbacks.recv_client_initial = ngtcp2_crypto_recv_client_initial_cb;
    } else {
        callbacks.client_initial = ngtcp2_crypto_client_initial_cb;
        callbacks.recv_retry = ngtcp2_crypto_recv_retry_cb;
    }
    callbacks.recv_crypto_data = ngtcp2_crypto_recv_crypto_data_cb;
    callbacks.encrypt = ngtcp2_crypto_encrypt_cb;
    callbacks.decrypt = ngtcp2_crypto_decrypt_cb;
    callbacks.hp_mask = ngtcp2_crypto_hp_mask_cb;
    callbacks.update_key = ngtcp2_crypto_update_key_cb;
    callbacks.delete_crypto_aead_ctx = ngtcp2_crypto_delete_crypto_aead_ctx_cb;
    callbacks.delete_crypto_cipher_ctx = ngtcp2_crypto_delete_crypto_cipher_ctx_cb;
    callbacks.get_path_challenge_data = ngtcp2_crypto_get_path_challenge_data_cb;
    callbacks.version_negotiation = ngtcp2_crypto_version_negotiation_cb;
    callbacks.rand = random_bytes;
    callbacks.get_new_connection_id = new_connection_id;
    callbacks.handshake_completed = handshake_completed;
    callbacks.handshake_confirmed = handshake_confirmed;
    callbacks.recv_stream_data = stream_data;
    return callbacks;
}

// The same transport parameters as the scenario's bench_parameters(), with the bulk windows when given.
void fill_parameters(ngtcp2_transport_params& params, const BulkWindows* windows) {
    ngtcp2_transport_params_default(&params);
    params.max_idle_timeout = 30 * NGTCP2_SECONDS;
    params.initial_max_data = windows != nullptr ? windows->connection_window : 1 << 20;
    params.initial_max_stream_data_bidi_local = windows != nullptr ? windows->stream_window : 1 << 18;
    params.initial_max_stream_data_bidi_remote = windows != nullptr ? windows->stream_window : 1 << 18;
    params.initial_max_streams_bidi = 16;
}

void fill_settings(ngtcp2_settings& settings, std::uint64_t now, const BulkWindows* windows) {
    ngtcp2_settings_default(&settings);
    settings.initial_ts = now;
    settings.cc_algo = NGTCP2_CC_ALGO_CUBIC;
    settings.initial_rtt = NGTCP2_DEFAULT_INITIAL_RTT;
    settings.max_tx_udp_payload_size = kMaxDatagramBytes;
    settings.no_tx_udp_payload_size_shaping = 1;
    settings.no_pmtud = 1;
    if (windows != nullptr) {
        settings.max_window = windows->connection_window;
        settings.max_stream_window = windows->stream_window;
    }
}

bool make_session(End& end, const State& state, bool server) {
    const unsigned flags = (server ? GNUTLS_SERVER | GNUTLS_NO_AUTO_SEND_TICKET : GNUTLS_CLIENT) |
                           GNUTLS_ENABLE_EARLY_DATA | GNUTLS_NO_END_OF_EARLY_DATA;
    if (gnutls_init(&end.tls, flags) < 0) return false;
    const gnutls_datum_t alpn{reinterpret_cast<unsigned char*>(const_cast<char*>(kAlpn)),
                              static_cast<unsigned>(std::strlen(kAlpn))};
    bool ok = gnutls_priority_set(end.tls, state.priority) >= 0 &&
              gnutls_credentials_set(end.tls, GNUTLS_CRD_CERTIFICATE,
                                     server ? state.server_credentials : state.client_credentials) >= 0 &&
              (server ? ngtcp2_crypto_gnutls_configure_server_session(end.tls)
                      : ngtcp2_crypto_gnutls_configure_client_session(end.tls)) == 0 &&
              gnutls_alpn_set_protocols(end.tls, &alpn, 1, GNUTLS_ALPN_MANDATORY) >= 0;
    if (ok && !server) {
        ok = gnutls_server_name_set(end.tls, GNUTLS_NAME_DNS, "localhost", 9) >= 0;
        gnutls_session_set_verify_function(end.tls, verify_server);
    }
    end.ref.get_conn = conn_of;
    end.ref.user_data = &end;
    end.state = &state;
    gnutls_session_set_ptr(end.tls, &end.ref);
    return ok;
}

ngtcp2_cid random_cid() {
    ngtcp2_cid cid{};
    cid.datalen = 8;
    (void)gnutls_rnd(GNUTLS_RND_NONCE, cid.data, cid.datalen);
    return cid;
}

// A client and, once its first datagram arrives, a server: both connections and their sessions.
class Pair {
public:
    Pair(State& state, const BulkWindows* windows) : state_(state), windows_(windows) {
        client_.path = {{reinterpret_cast<ngtcp2_sockaddr*>(&state.client_address), sizeof(sockaddr_in)},
                        {reinterpret_cast<ngtcp2_sockaddr*>(&state.server_address), sizeof(sockaddr_in)},
                        nullptr};
        server_.path = {client_.path.remote, client_.path.local, nullptr};
    }

    bool start(std::uint64_t now) {
        if (!make_session(client_, state_, false)) return false;
        const ngtcp2_cid dcid = random_cid(), scid = random_cid();
        const ngtcp2_callbacks callbacks = callbacks_for(false);
        ngtcp2_settings settings;
        fill_settings(settings, now, windows_);
        ngtcp2_transport_params params;
        fill_parameters(params, windows_);
        if (ngtcp2_conn_client_new(&client_.conn, &dcid, &scid, &client_.path, NGTCP2_PROTO_VER_V1, &callbacks,
                                   &settings, &params, nullptr, &client_) != 0) {
            return false;
        }
        ngtcp2_conn_set_tls_native_handle(client_.conn, client_.tls);
        return true;
    }

    // Hands a client datagram to the server, making the server from the first one.
    bool to_server(const std::uint8_t* data, std::size_t size, std::uint64_t now) {
        if (server_.conn == nullptr && !accept(data, size, now)) return false;
        ngtcp2_pkt_info info{};
        return ngtcp2_conn_read_pkt(server_.conn, &server_.path, &info, data, size, now) == 0;
    }
    bool to_client(const std::uint8_t* data, std::size_t size, std::uint64_t now) {
        ngtcp2_pkt_info info{};
        return ngtcp2_conn_read_pkt(client_.conn, &client_.path, &info, data, size, now) == 0;
    }

    // Everything one end has to send now, each datagram handed over as it is made. False on an error.
    bool flush(bool from_client, std::uint64_t now, bool& moved, BulkTransfer* counts = nullptr) {
        End& end = from_client ? client_ : server_;
        if (end.conn == nullptr) return true;
        for (;;) {
            ngtcp2_pkt_info info{};
            const ngtcp2_ssize size = ngtcp2_conn_write_pkt(end.conn, nullptr, &info, datagram_, sizeof datagram_, now);
            if (size < 0) return false;
            if (size == 0) break;
            moved = true;
            count(counts, size);
            if (!(from_client ? to_server(datagram_, size, now) : to_client(datagram_, size, now))) return false;
        }
        ngtcp2_conn_update_pkt_tx_time(end.conn, now);
        return true;
    }

    // The client's stream data while it has credit and window, then whatever else is due.
    bool send_stream(std::int64_t stream, std::uint64_t& offset, std::uint64_t total, std::uint64_t now, bool& moved,
                     BulkTransfer& counts) {
        for (;;) {
            const std::uint64_t left = total - offset;
            const std::size_t piece = left < kPatternPeriod ? static_cast<std::size_t>(left) : kPatternPeriod;
            ngtcp2_vec data{const_cast<std::uint8_t*>(state_.pattern) + offset % kPatternPeriod, piece};
            ngtcp2_ssize taken = -1;
            ngtcp2_pkt_info info{};
            ngtcp2_ssize size = ngtcp2_conn_writev_stream(client_.conn, nullptr, &info, datagram_, sizeof datagram_,
                                                          &taken, NGTCP2_WRITE_STREAM_FLAG_NONE,
                                                          piece != 0 ? stream : -1, &data, piece != 0 ? 1 : 0, now);
            if (size == NGTCP2_ERR_STREAM_DATA_BLOCKED) {   // no credit: acknowledgements and the like only
                size = ngtcp2_conn_write_pkt(client_.conn, nullptr, &info, datagram_, sizeof datagram_, now);
            }
            if (size < 0) return false;
            if (size == 0) break;
            if (taken > 0) offset += static_cast<std::uint64_t>(taken);
            moved = true;
            count(&counts, size);
            if (!to_server(datagram_, static_cast<std::size_t>(size), now)) return false;
        }
        ngtcp2_conn_update_pkt_tx_time(client_.conn, now);
        return true;
    }

    // Timers due at `now` (loss detection, acknowledgement delay, pacing), both ends.
    bool expire(std::uint64_t now) {
        for (End* end : {&client_, &server_}) {
            if (end->conn != nullptr && ngtcp2_conn_get_expiry(end->conn) <= now &&
                ngtcp2_conn_handle_expiry(end->conn, now) != 0) {
                return false;
            }
        }
        return true;
    }

    std::uint64_t next_expiry() const {
        std::uint64_t due = UINT64_MAX;
        for (const End* end : {&client_, &server_}) {
            if (end->conn != nullptr) due = std::min<std::uint64_t>(due, ngtcp2_conn_get_expiry(end->conn));
        }
        return due;
    }
    bool confirmed() const { return client_.confirmed && server_.confirmed; }
    End& client() { return client_; }
    End& server() { return server_; }

private:
    bool accept(const std::uint8_t* data, std::size_t size, std::uint64_t now) {
        ngtcp2_pkt_hd header{};
        if (ngtcp2_accept(&header, data, size) != 0 || !make_session(server_, state_, true)) return false;
        const ngtcp2_cid scid = random_cid();
        const ngtcp2_callbacks callbacks = callbacks_for(true);
        ngtcp2_settings settings;
        fill_settings(settings, now, windows_);
        ngtcp2_transport_params params;
        fill_parameters(params, windows_);
        params.original_dcid = header.dcid;
        if (ngtcp2_conn_server_new(&server_.conn, &header.scid, &scid, &server_.path, header.version, &callbacks,
                                   &settings, &params, nullptr, &server_) != 0) {
            return false;
        }
        ngtcp2_conn_set_tls_native_handle(server_.conn, server_.tls);
        return true;
    }
    static void count(BulkTransfer* counts, ngtcp2_ssize size) {
        if (counts == nullptr) return;
        ++counts->datagrams;
        counts->datagram_bytes += static_cast<std::uint64_t>(size);
    }

    State& state_;
    const BulkWindows* windows_;
    End client_, server_;
    std::uint8_t datagram_[kMaxDatagramBytes];
};

// Exchanges datagrams until both ends confirmed the handshake: a fake clock advancing 1 us per round, or the
// monotonic clock. ngtcp2 paces its packets from the start (at the initial RTT of 333 ms its client's Finished
// waits ~30 ms), so when nothing moves the clock goes on to the earliest timer, as an event loop would sleep to
// it: no CPU is spent there, and the fake clock does not have to wait for it.
bool run_handshake(Pair& pair, bool real_time) {
    std::uint64_t now = real_time ? monotonic_ns() : 1;
    if (!pair.start(now)) return false;
    for (int round = 0; round < 64; ++round) {
        now = real_time ? monotonic_ns() : now + 1000;
        bool moved = false;
        if (!pair.flush(true, now, moved) || !pair.flush(false, now, moved)) return false;
        if (pair.confirmed()) return true;
        if (!moved) {
            const std::uint64_t due = pair.next_expiry();
            if (due == UINT64_MAX) return false;
            if (!real_time) now = due;
            while (real_time && (now = monotonic_ns()) < due) {
            }
            if (!pair.expire(now)) return false;
        }
    }
    return false;
}

}  // namespace

int Ngtcp2Pair::create(const std::string& certificate_file, const std::string& key_file,
                       std::unique_ptr<Ngtcp2Pair>& out, std::string& error) {
    std::unique_ptr<Ngtcp2Pair> pair(new Ngtcp2Pair());
    pair->state_ = std::make_unique<State>();
    State& state = *pair->state_;
    gnutls_datum_t pem{};
    gnutls_x509_crt_t certificate = nullptr;
    std::size_t id_size = sizeof state.server_key_id;
    const bool ok =
        gnutls_certificate_allocate_credentials(&state.server_credentials) >= 0 &&
        gnutls_certificate_set_x509_key_file2(state.server_credentials, certificate_file.c_str(), key_file.c_str(),
                                              GNUTLS_X509_FMT_PEM, nullptr, 0) >= 0 &&
        gnutls_certificate_allocate_credentials(&state.client_credentials) >= 0 &&
        gnutls_priority_init(&state.priority, kPriority, nullptr) >= 0 &&
        gnutls_load_file(certificate_file.c_str(), &pem) >= 0 && gnutls_x509_crt_init(&certificate) >= 0 &&
        gnutls_x509_crt_import(certificate, &pem, GNUTLS_X509_FMT_PEM) >= 0 &&
        gnutls_x509_crt_get_key_id(certificate, GNUTLS_KEYID_USE_SHA256, state.server_key_id, &id_size) >= 0;
    if (certificate != nullptr) gnutls_x509_crt_deinit(certificate);
    gnutls_free(pem.data);
    if (!ok) {
        error = "ngtcp2 peer: setting up GnuTLS failed";
        return -EIO;
    }
    for (std::size_t i = 0; i < sizeof state.pattern; ++i) state.pattern[i] = bulk_pattern_byte(i);
    state.client_address.sin_family = state.server_address.sin_family = AF_INET;
    state.client_address.sin_addr.s_addr = state.server_address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    state.client_address.sin_port = htons(40001);
    state.server_address.sin_port = htons(40002);
    out = std::move(pair);
    return 0;
}

Ngtcp2Pair::~Ngtcp2Pair() = default;

bool Ngtcp2Pair::handshake() {
    Pair pair(*state_, nullptr);
    if (run_handshake(pair, false)) return true;
    error_ = "ngtcp2 handshake failed";
    return false;
}

bool Ngtcp2Pair::bulk(std::uint64_t bytes, const BulkWindows& windows, BulkTransfer& out) {
    Pair pair(*state_, &windows);
    std::int64_t stream = -1;
    if (!run_handshake(pair, true) || ngtcp2_conn_open_bidi_stream(pair.client().conn, &stream, nullptr) != 0) {
        error_ = "ngtcp2 bulk: the handshake or opening the stream failed";
        return false;
    }
    out = {};
    out.bytes = bytes;
    std::uint64_t offset = 0;
    const std::uint64_t start = monotonic_ns(), deadline = start + 60'000'000'000ull;
    while (pair.server().received < bytes) {
        const std::uint64_t now = monotonic_ns();
        bool moved = false;
        if (!pair.expire(now) || !pair.send_stream(stream, offset, bytes, now, moved, out) ||
            !pair.flush(false, now, moved, &out) || now > deadline || pair.server().corrupt) {
            error_ = pair.server().corrupt ? "ngtcp2 bulk: the data arrived corrupt" : "ngtcp2 bulk: transfer failed";
            return false;
        }
    }
    out.wall_ns = monotonic_ns() - start;
    return true;
}

}  // namespace cf::latency

#else  // no ngtcp2

namespace cf::latency {

struct Ngtcp2Pair::State {};

int Ngtcp2Pair::create(const std::string&, const std::string&, std::unique_ptr<Ngtcp2Pair>&, std::string& error) {
    error = "ngtcp2 not installed";
    return -ENOSYS;
}
Ngtcp2Pair::~Ngtcp2Pair() = default;
bool Ngtcp2Pair::handshake() { return false; }
bool Ngtcp2Pair::bulk(std::uint64_t, const BulkWindows&, BulkTransfer&) { return false; }

}  // namespace cf::latency

#endif
