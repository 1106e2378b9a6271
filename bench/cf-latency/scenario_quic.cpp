// quic: what a QUIC handshake costs with our transport, how much of it is TLS, and what a message round trip costs.
//  - TLS 1.3 alone: two GnuTLS sessions (client and server) handing each other their handshake messages in memory,
//    the work GnuTLS does in any QUIC handshake (Ed25519 certificate, X25519 key exchange);
//  - QUIC in memory: our client and server Connections exchanging datagrams in memory: TLS plus our packets,
//    protection, acknowledgements and recovery;
//  - QUIC over UDP: two Endpoints on one thread over 127.0.0.1 (socket driver), connect to confirmed.
// Each sample is one whole handshake, both ends, on this thread: wall time is CPU time here. The transport's share
// is (QUIC in memory - TLS alone) / QUIC in memory at p50. The certificate is made at start-up with GnuTLS.
// Then 64 B message round trips between two pinned threads over 127.0.0.1 (socket driver), the server echoing:
//  - over one long-lived stream (messages length-prefixed on it: what channels do);
//  - over a new stream per message (open, send, finish; the echo comes back on it, which then closes);
//  - raw UDP through the same driver, no QUIC (what a bridge datagram rides on).
// Not here yet: ngtcp2 side by side (it needs an in-process ngtcp2 harness).
#include <gnutls/gnutls.h>
#include <gnutls/x509.h>
#include <stdlib.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <thread>
#include <cstdio>
#include <cstring>
#include <deque>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "bench/cf-latency/scenario.hpp"
#include "bench/cf-latency/series.hpp"
#include "engine/quic/connection.hpp"
#include "engine/quic/endpoint.hpp"
#include "engine/quic/packet_header.hpp"
#include "platform/cpu/affinity.hpp"
#include "platform/os/last_error.hpp"

namespace cf::latency {
namespace {

using namespace cf::quic;

// An Ed25519 key and a self-signed certificate for "localhost", written as PEM files into a temporary directory.
class BenchCertificate {
public:
    BenchCertificate() {
        char pattern[] = "/tmp/cf-latency-quic-XXXXXX";
        if (mkdtemp(pattern) == nullptr) return;
        dir_ = pattern;
        gnutls_x509_privkey_t key = nullptr;
        gnutls_x509_crt_t crt = nullptr;
        bool ok = gnutls_x509_privkey_init(&key) >= 0 &&
                  gnutls_x509_privkey_generate(key, GNUTLS_PK_EDDSA_ED25519, 256, 0) >= 0 &&
                  gnutls_x509_crt_init(&crt) >= 0;
        const unsigned char serial[] = {1};
        const time_t now = time(nullptr);
        ok = ok && gnutls_x509_crt_set_version(crt, 3) >= 0 && gnutls_x509_crt_set_serial(crt, serial, 1) >= 0 &&
             gnutls_x509_crt_set_activation_time(crt, now - 60) >= 0 &&
             gnutls_x509_crt_set_expiration_time(crt, now + 86400) >= 0 &&
             gnutls_x509_crt_set_dn_by_oid(crt, GNUTLS_OID_X520_COMMON_NAME, 0, "localhost", 9) >= 0 &&
             gnutls_x509_crt_set_subject_alt_name(crt, GNUTLS_SAN_DNSNAME, "localhost", 9, GNUTLS_FSAN_SET) >= 0 &&
             gnutls_x509_crt_set_key(crt, key) >= 0 && gnutls_x509_crt_sign2(crt, crt, key, GNUTLS_DIG_UNKNOWN, 0) >= 0;
        gnutls_datum_t pem{};
        ok = ok && gnutls_x509_privkey_export2_pkcs8(key, GNUTLS_X509_FMT_PEM, nullptr, GNUTLS_PKCS_PLAIN, &pem) >= 0 &&
             write(key_path(), pem);
        gnutls_free(pem.data);
        pem = {};
        ok = ok && gnutls_x509_crt_export2(crt, GNUTLS_X509_FMT_PEM, &pem) >= 0 && write(certificate_path(), pem);
        gnutls_free(pem.data);
        if (crt != nullptr) gnutls_x509_crt_deinit(crt);
        if (key != nullptr) gnutls_x509_privkey_deinit(key);
        ok_ = ok;
    }
    ~BenchCertificate() {
        if (dir_.empty()) return;
        std::remove(key_path().c_str());
        std::remove(certificate_path().c_str());
        rmdir(dir_.c_str());
    }
    bool ok() const { return ok_; }
    std::string key_path() const { return dir_ + "/key.pem"; }
    std::string certificate_path() const { return dir_ + "/cert.pem"; }

private:
    static bool write(const std::string& path, const gnutls_datum_t& data) {
        FILE* file = std::fopen(path.c_str(), "w");
        if (file == nullptr) return false;
        const bool ok = std::fwrite(data.data, 1, data.size, file) == data.size;
        return std::fclose(file) == 0 && ok;
    }
    std::string dir_;
    bool ok_ = false;
};

TransportParameters bench_parameters() {
    TransportParameters p;
    p.max_idle_timeout_ms = 30000;
    p.initial_max_data = 1 << 20;
    p.initial_max_stream_data_bidi_local = 1 << 18;
    p.initial_max_stream_data_bidi_remote = 1 << 18;
    p.initial_max_streams_bidi = 16;
    return p;
}

std::uint64_t wall_ns() {
    const auto since = std::chrono::steady_clock::now().time_since_epoch();
    return static_cast<std::uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(since).count());
}

// TLS alone: handshake bytes handed across by level until both ends are done.
struct TlsEnd : TlsEvents {
    std::map<int, std::deque<std::uint8_t>> outbox;
    std::unique_ptr<TlsSession> session;
    std::uint64_t on_handshake_bytes(EncryptionLevel level, const std::uint8_t* data,
                                     std::size_t size) noexcept override {
        auto& box = outbox[static_cast<int>(level)];
        box.insert(box.end(), data, data + size);
        return 0;
    }
    std::uint64_t on_secret(EncryptionLevel, SecretDirection, CipherSuite, const std::uint8_t*,
                            std::size_t) noexcept override {
        return 0;
    }
    std::uint64_t on_peer_transport_parameters(const std::uint8_t*, std::size_t) noexcept override { return 0; }
};

bool tls_handshake(const TlsContext& client_tls, const TlsContext& server_tls) {
    TlsEnd client, server;
    const std::uint8_t parameters[] = {0x0f, 0x00};   // an empty initial_source_connection_id
    if (TlsSession::create(client_tls, client, client.session) != 0 ||
        TlsSession::create(server_tls, server, server.session) != 0) {
        return false;
    }
    client.session->set_local_transport_parameters(parameters, sizeof parameters);
    server.session->set_local_transport_parameters(parameters, sizeof parameters);
    if (client.session->start() != 0) return false;
    std::vector<std::uint8_t> chunk;
    for (int round = 0; round < 10; ++round) {
        for (auto [from, to] : {std::pair{&client, &server}, std::pair{&server, &client}}) {
            for (auto& [level, bytes] : from->outbox) {
                if (bytes.empty()) continue;
                chunk.assign(bytes.begin(), bytes.end());
                bytes.clear();
                if (to->session->receive(static_cast<EncryptionLevel>(level), chunk.data(), chunk.size()) != 0) {
                    return false;
                }
            }
        }
        if (client.session->handshake_complete() && server.session->handshake_complete()) return true;
    }
    return false;
}

ConnectionId bench_cid(std::uint8_t seed) {
    ConnectionId id;
    std::uint8_t bytes[8];
    for (std::uint8_t& b : bytes) b = seed++;
    (void)id.assign(bytes, sizeof bytes);
    return id;
}

bool quic_handshake_in_memory(const TlsContext& client_tls, const TlsContext& server_tls) {
    ConnectionConfig client_config, server_config;
    client_config.tls = &client_tls;
    client_config.parameters = bench_parameters();
    server_config.tls = &server_tls;
    server_config.parameters = bench_parameters();
    std::unique_ptr<Connection> client, server;
    if (Connection::connect(client_config, bench_cid(0x10), bench_cid(0xa0), 1, client) != 0) return false;
    std::uint8_t datagram[Connection::kMaxDatagramBytes];
    std::uint64_t now = 1;
    for (int round = 0; round < 64; ++round) {
        now += 1000;
        bool moved = false;
        for (std::size_t size; (size = client->write_datagram(datagram, sizeof datagram, now)) != 0;) {
            moved = true;
            if (server == nullptr) {
                PacketParseOptions options;
                PacketHeader header;
                if (parse_packet_header(datagram, size, options, header) != HeaderStatus::ok ||
                    Connection::accept(server_config, bench_cid(0x20), ConnectionId::from(header.dcid),
                                       ConnectionId::from(header.scid), now, server) != 0) {
                    return false;
                }
            }
            server->receive_datagram(datagram, size, now);
        }
        if (server != nullptr) {
            for (std::size_t size; (size = server->write_datagram(datagram, sizeof datagram, now)) != 0;) {
                moved = true;
                client->receive_datagram(datagram, size, now);
            }
        }
        if (client->handshake_confirmed() && server != nullptr && server->handshake_confirmed()) return true;
        if (!moved || client->closed()) return false;
    }
    return false;
}

std::unique_ptr<Endpoint> bench_endpoint(const TlsContext& tls, std::string& error) {
    EndpointConfig config;
    config.driver = drivers::DriverKind::socket;
    (void)drivers::PeerAddress::parse("127.0.0.1:0", config.udp.bind);
    config.udp.pool.count = 256;
    config.udp.pool.prefer_hugepages = false;
    config.max_connections = 64;
    config.connection.tls = &tls;
    config.connection.parameters = bench_parameters();
    std::unique_ptr<Endpoint> endpoint;
    if (Endpoint::open(config, endpoint) != 0) error = platform::last_error_message();
    return endpoint;
}

constexpr std::size_t kMessageBytes = 64;

// The echo side of the round trips, on its own thread: every message goes back on the stream it came on; a stream
// the client ended is ended here too (stream-per-message), so it closes and its credit returns.
void echo_streams(Endpoint& server, const std::atomic<bool>& stop, int cpu) {
    if (cpu >= 0) (void)platform::pin_current_thread(cpu);
    while (!stop.load(std::memory_order_relaxed)) {
        (void)server.poll(wall_ns());
        for (std::uint32_t i = 0; i < server.capacity(); ++i) {
            Connection* connection = server.connection(i);
            if (connection == nullptr || connection->closed()) continue;
            StreamTable& table = connection->streams();
            StreamId id = 0;
            while (table.next_readable(id)) {
                const std::uint8_t* data = nullptr;
                std::size_t length = 0;
                int rc = 0;
                while ((rc = table.next_message(id, data, length)) == 1) {
                    (void)table.send_message(id, data, length);
                    (void)table.release_message(id);
                }
                if (rc == -ENODATA) (void)table.finish(id);
            }
        }
    }
}

void echo_datagrams(drivers::DatagramDriver& driver, const std::atomic<bool>& stop, int cpu) {
    if (cpu >= 0) (void)platform::pin_current_thread(cpu);
    drivers::PacketBuffer* burst[32];
    while (!stop.load(std::memory_order_relaxed)) {
        const int count = driver.rx_burst(burst, 32);
        for (int i = 0; i < count; ++i) {
            if (driver.tx_burst(&burst[i], 1) != 1) driver.release(burst[i]);   // back to its sender
        }
    }
}

// One 64 B round trip from the client's thread: on `stream` (reused), or on a new stream when stream < 0.
bool stream_round_trip(Endpoint& client, Connection& connection, std::int64_t stream, LatencyHistogram& out) {
    StreamTable& table = connection.streams();
    std::uint8_t message[kMessageBytes];
    std::memset(message, 0x5a, sizeof message);
    const std::uint64_t t0 = wall_ns(), deadline = t0 + 1'000'000'000;
    const bool per_message = stream < 0;
    std::int64_t id = stream;
    while (per_message && (id = table.open_stream(StreamDirection::bidirectional)) < 0) {   // waits for credit
        if (wall_ns() > deadline || connection.closed()) return false;
        (void)client.poll(wall_ns());
    }
    const auto stream_id = static_cast<StreamId>(id);
    if (table.send_message(stream_id, message, sizeof message) != 0) return false;
    if (per_message) (void)table.finish(stream_id);
    const std::uint8_t* data = nullptr;
    std::size_t length = 0;
    for (;;) {
        (void)client.poll(wall_ns());
        if (table.next_message(stream_id, data, length) == 1) {
            out.record(static_cast<std::int64_t>((wall_ns() - t0) * 1000));
            (void)table.release_message(stream_id);
            break;
        }
        if (wall_ns() > deadline || connection.closed()) return false;
    }
    // A stream per message ends when the echo's end arrives (outside the timed part): read to it (-ENOENT: releasing
    // the echo after the end arrived closed the stream already).
    for (int rc = 0; per_message && (rc = table.next_message(stream_id, data, length)) != -ENODATA && rc != -ENOENT;) {
        if (wall_ns() > deadline || connection.closed()) return false;
        (void)client.poll(wall_ns());
    }
    return true;
}

bool datagram_round_trip(drivers::DatagramDriver& client, const drivers::PeerAddress& server, LatencyHistogram& out) {
    drivers::PacketBuffer* buffer = client.allocate();
    if (buffer == nullptr) return false;
    std::memset(buffer->data, 0x5a, kMessageBytes);
    buffer->length = kMessageBytes;
    buffer->peer = server;
    const std::uint64_t t0 = wall_ns();
    if (client.tx_burst(&buffer, 1) != 1) {
        client.release(buffer);
        return false;
    }
    drivers::PacketBuffer* reply = nullptr;
    while (client.rx_burst(&reply, 1) != 1) {
        if (wall_ns() - t0 > 1'000'000'000) return false;
    }
    out.record(static_cast<std::int64_t>((wall_ns() - t0) * 1000));
    client.release(reply);
    return true;
}

}  // namespace

ScenarioResult run_quic_scenario(ScenarioContext& context) {
    ScenarioResult result;
    result.scenario = "quic";
    result.description = "one whole handshake, both ends on this thread (wall = CPU here): TLS 1.3 alone (GnuTLS, "
                         "Ed25519 + X25519, in memory), our QUIC in memory, our QUIC over UDP 127.0.0.1; then 64 B "
                         "round trips to an echo on another CPU: over one long-lived stream, a new stream per "
                         "message, and raw UDP";
    const BenchCertificate certificate;
    if (!certificate.ok()) {
        result.notes.push_back("not measured: the benchmark's Ed25519 certificate could not be made");
        return result;
    }
    TlsConfig client_settings, server_settings;
    client_settings.role = EndpointRole::client;
    client_settings.pinned_keys.resize(1);
    client_settings.server_name = "localhost";
    client_settings.alpn = {"cf-bench"};
    server_settings.role = EndpointRole::server;
    server_settings.certificate_file = certificate.certificate_path();
    server_settings.key_file = certificate.key_path();
    server_settings.alpn = {"cf-bench"};
    std::unique_ptr<TlsContext> client_tls, server_tls;
    if (public_key_pin_of_certificate(certificate.certificate_path(), client_settings.pinned_keys[0]) != 0 ||
        TlsContext::create(client_settings, client_tls) != 0 || TlsContext::create(server_settings, server_tls) != 0) {
        result.notes.push_back(std::string("not measured: ") + platform::last_error_message());
        return result;
    }
    std::string error;
    auto server = bench_endpoint(*server_tls, error);
    auto client = bench_endpoint(*client_tls, error);
    if (server == nullptr || client == nullptr) result.notes.push_back("UDP not measured: " + error);

    LatencyHistogram tls_alone = make_picosecond_histogram(), in_memory = make_picosecond_histogram(),
                     over_udp = make_picosecond_histogram();
    std::uint64_t failures = 0;
    context.progress.begin("quic", context.duration_s);
    const std::uint64_t start = wall_ns();
    const auto slice_ns = static_cast<std::uint64_t>(context.duration_s * 1e9 / 24);   // half: 4 rounds x 3 kinds
    for (int round = 0; round < 4; ++round) {
        for (std::uint64_t end = wall_ns() + slice_ns; wall_ns() < end;) {
            const std::uint64_t t0 = wall_ns();
            if (tls_handshake(*client_tls, *server_tls)) tls_alone.record((wall_ns() - t0) * 1000);
            else ++failures;
        }
        for (std::uint64_t end = wall_ns() + slice_ns; wall_ns() < end;) {
            const std::uint64_t t0 = wall_ns();
            if (quic_handshake_in_memory(*client_tls, *server_tls)) in_memory.record((wall_ns() - t0) * 1000);
            else ++failures;
        }
        for (std::uint64_t end = wall_ns() + slice_ns; server != nullptr && client != nullptr && wall_ns() < end;) {
            const std::uint64_t t0 = wall_ns();
            Connection* connection = nullptr;
            if (client->connect(server->local_address(), t0, connection) != 0) {
                ++failures;
                break;
            }
            bool confirmed = false;
            for (std::uint64_t now = t0; now - t0 < 2'000'000'000; now = wall_ns()) {
                (void)client->poll(now);
                (void)server->poll(now);
                if (connection->handshake_confirmed()) {
                    confirmed = true;
                    break;
                }
            }
            if (confirmed) over_udp.record((wall_ns() - t0) * 1000);
            else ++failures;
            connection->close(0, true, "");
            // Closed connections hold their slot for the closing period (100 ms): drain only when the table is
            // nearly full, outside the timed part.
            for (std::uint64_t drain = wall_ns() + 300'000'000;
                 wall_ns() < drain && client->connections() + 2 > client->capacity();) {
                (void)client->poll(wall_ns());
                (void)server->poll(wall_ns());
            }
        }
        context.progress.update(static_cast<double>(wall_ns() - start) / 1e9);
    }

    // Round trips: the server's endpoint and a raw driver echo on the next CPU, the client measures on this one.
    LatencyHistogram reused = make_picosecond_histogram(), per_message = make_picosecond_histogram(),
                     raw = make_picosecond_histogram();
    const int echo_cpu = context.cpus.size() > 1 ? context.cpus[1] : -1;
    std::uint64_t rtt_failures = 0;
    if (server != nullptr && client != nullptr) {
        std::atomic<bool> stop{false};
        std::thread echo([&] { echo_streams(*server, stop, echo_cpu); });
        Connection* connection = nullptr;
        const std::uint64_t t0 = wall_ns();
        if (client->connect(server->local_address(), t0, connection) == 0) {
            while (!connection->handshake_confirmed() && !connection->closed() && wall_ns() - t0 < 5'000'000'000) {
                (void)client->poll(wall_ns());
            }
            const std::int64_t stream = connection->streams().open_stream(StreamDirection::bidirectional);
            const EndpointStats before = client->stats();
            const auto rtt_slice = static_cast<std::uint64_t>(context.duration_s * 1e9 / 12);   // 2 rounds x 3
            for (int round = 0; round < 2 && stream >= 0 && connection->handshake_confirmed(); ++round) {
                for (std::uint64_t end = wall_ns() + rtt_slice; wall_ns() < end;) {
                    if (!stream_round_trip(*client, *connection, stream, reused)) ++rtt_failures;
                }
                for (std::uint64_t end = wall_ns() + rtt_slice; wall_ns() < end;) {
                    if (!stream_round_trip(*client, *connection, -1, per_message)) ++rtt_failures;
                }
                context.progress.update(static_cast<double>(wall_ns() - start) / 1e9);
            }
            if (stream < 0 || !connection->handshake_confirmed()) ++rtt_failures;
            const std::uint64_t trips = reused.count() + per_message.count();
            if (trips != 0) {
                const EndpointStats& after = client->stats();
                result.figures.push_back({"64 B RTT: client datagrams sent per round trip",
                                          static_cast<double>(after.datagrams_sent - before.datagrams_sent) /
                                              static_cast<double>(trips), ""});
                result.figures.push_back({"64 B RTT: client datagrams received per round trip",
                                          static_cast<double>(after.datagrams_received - before.datagrams_received) /
                                              static_cast<double>(trips), ""});
            }
            connection->close(0, true, "");
        } else {
            ++rtt_failures;
        }
        stop.store(true);
        echo.join();
    }
    {
        drivers::UdpConfig udp;
        (void)drivers::PeerAddress::parse("127.0.0.1:0", udp.bind);
        udp.pool.count = 256;
        udp.pool.prefer_hugepages = false;
        std::unique_ptr<drivers::DatagramDriver> near, far;
        if (drivers::open_udp(drivers::DriverKind::socket, udp, near) == 0 &&
            drivers::open_udp(drivers::DriverKind::socket, udp, far) == 0) {
            std::atomic<bool> stop{false};
            std::thread echo([&] { echo_datagrams(*far, stop, echo_cpu); });
            const auto raw_slice = static_cast<std::uint64_t>(context.duration_s * 1e9 / 12);
            for (std::uint64_t end = wall_ns() + raw_slice; wall_ns() < end;) {
                if (!datagram_round_trip(*near, far->local_address(), raw)) ++rtt_failures;
            }
            stop.store(true);
            echo.join();
        } else {
            result.notes.push_back(std::string("raw UDP not measured: ") + platform::last_error_message());
        }
    }
    context.progress.end();
    if (failures != 0) result.notes.push_back("ERROR: " + std::to_string(failures) + " handshakes failed");
    if (rtt_failures != 0) result.notes.push_back("ERROR: " + std::to_string(rtt_failures) + " round trips failed");
    const Series tls = make_series("handshake: TLS 1.3 alone (GnuTLS, both ends, in memory)", tls_alone);
    const Series quic = make_series("handshake: cf QUIC, both ends, in memory", in_memory);
    result.series = {tls, quic};
    if (over_udp.count() != 0) result.series.push_back(make_series("handshake: cf QUIC over UDP 127.0.0.1", over_udp));
    result.ratios.push_back(make_ratio("handshake: cf QUIC in memory / TLS alone", quic, tls));
    const Series rtt_reused = make_series("64 B RTT: cf QUIC, one long-lived stream", reused);
    const Series rtt_new = make_series("64 B RTT: cf QUIC, a new stream per message", per_message);
    const Series rtt_raw = make_series("64 B RTT: raw UDP, same driver (no QUIC)", raw);
    for (const Series* series : {&rtt_reused, &rtt_new, &rtt_raw}) {
        if (series->count != 0) result.series.push_back(*series);
    }
    if (rtt_reused.count != 0 && rtt_new.count != 0) {
        result.ratios.push_back(make_ratio("64 B RTT: reused stream / stream per message", rtt_reused, rtt_new));
    }
    if (rtt_reused.count != 0 && rtt_raw.count != 0) {
        result.ratios.push_back(make_ratio("64 B RTT: reused stream / raw UDP", rtt_reused, rtt_raw));
    }
    if (quic.p50_ns > 0) {
        result.figures.push_back({"handshake: our transport's share of a QUIC handshake (p50)",
                                  100.0 * (quic.p50_ns - tls.p50_ns) / quic.p50_ns, "%"});
    }
    result.notes.push_back("ngtcp2 side by side is not built yet (an in-process ngtcp2 harness is needed)");
    return result;
}

}  // namespace cf::latency
