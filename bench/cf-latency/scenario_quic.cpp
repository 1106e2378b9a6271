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
// Side by side with ngtcp2 0.12 in this process (quic_ngtcp2_peer.hpp: same certificate, ciphers, ALPN, initial RTT,
// CUBIC, datagram size), both in memory on this thread:
//  - the whole handshake, as ours above; ngtcp2's transport share is taken against the same TLS-alone row;
//  - bulk: 64 MiB (4 MiB in runs under 3 s) one way over one stream, both ends on this thread, no loss, 1 MiB
//    stream window: Gbit/s of each stack, the median of 5 transfers each (3 in short runs), alternating, and
//    ours / ngtcp2.
// Last, heap allocator calls and system calls per 64 B message on our UDP path, from cf-quic-message-costs
// (quic_message_costs.cpp: it replaces malloc to count, which this process must not).
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <thread>
#include <cstdio>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "bench/cf-latency/quic_bench_certificate.hpp"
#include "bench/cf-latency/quic_in_memory.hpp"
#include "bench/cf-latency/quic_ngtcp2_peer.hpp"
#include "bench/cf-latency/scenario.hpp"
#include "bench/cf-latency/series.hpp"
#include "engine/quic/connection.hpp"
#include "engine/quic/endpoint.hpp"
#include "platform/cpu/affinity.hpp"
#include "platform/os/last_error.hpp"

namespace cf::latency {
namespace {

using namespace cf::quic;

std::uint64_t wall_ns() {
    const auto since = std::chrono::steady_clock::now().time_since_epoch();
    return static_cast<std::uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(since).count());
}

// Heap and system calls per 64 B message on our UDP path, from cf-quic-message-costs (quic_message_costs.cpp), which
// sits next to this program: it counts heap calls by replacing malloc, which this process must not do. `batch`
// messages per round trip on `driver` ("socket" or "uring").
void add_message_costs(ScenarioResult& result, long round_trips, long batch, const std::string& driver) {
    char self[4096];
    const ssize_t size = readlink("/proc/self/exe", self, sizeof self - 1);
    std::string program = size > 0 ? std::string(self, static_cast<std::size_t>(size)) : std::string();
    program = program.substr(0, program.rfind('/') + 1) + "cf-quic-message-costs";
    const std::string what = "64 B over one stream, UDP 127.0.0.1, " +
                             (batch == 1 ? std::string("lock-step") : std::to_string(batch) + " per round trip") +
                             ", " + driver + " driver, one thread: ";
    if (program.find('\'') != std::string::npos || access(program.c_str(), X_OK) != 0) {
        result.notes.push_back(what + "system calls per message left out: " + program + " not found");
        return;
    }
    const std::string command =
        "'" + program + "' " + std::to_string(round_trips) + " " + std::to_string(batch) + " " + driver;
    FILE* pipe = popen(command.c_str(), "r");
    unsigned long long trips = 0, messages = 0, heap = 0, client = 0, server = 0, datagrams = 0;
    int heap_counted = 0;
    const bool read = pipe != nullptr &&
                      std::fscanf(pipe, "round_trips=%llu messages=%llu heap_calls=%llu client_syscalls=%llu "
                                        "server_syscalls=%llu datagrams=%llu heap_counted=%d",
                                  &trips, &messages, &heap, &client, &server, &datagrams, &heap_counted) == 7;
    const int status = pipe != nullptr ? pclose(pipe) : -1;
    if (status != -1 && WIFEXITED(status) && WEXITSTATUS(status) == 3) {   // io_uring forbidden here
        result.notes.push_back(what + "system calls per message left out: io_uring unavailable on this host");
        return;
    }
    if (status != 0 && (status == -1 || !WIFEXITED(status) || WEXITSTATUS(status) >= 126)) {   // could not run it
        result.notes.push_back(what + "system calls per message left out: " + program + " could not be run");
        return;
    }
    if (status != 0 || !read || messages == 0) {
        result.notes.push_back("ERROR: " + command + " failed");
        return;
    }
    const auto per_message = [&](unsigned long long count) { return static_cast<double>(count) / messages; };
    if (heap_counted != 0) {
        result.figures.push_back({what + "heap allocator calls per message (both ends)", per_message(heap), "per msg"});
    } else {
        result.notes.push_back("heap calls per message not counted: a sanitizer build (its runtime owns malloc)");
    }
    result.figures.push_back({what + "system calls per message, client", per_message(client), "per msg"});
    result.figures.push_back({what + "system calls per message, server", per_message(server), "per msg"});
    result.figures.push_back({what + "datagrams per message (both ways)", per_message(datagrams), "per msg"});
}

double median(std::vector<double> values) {
    if (values.empty()) return 0;
    std::sort(values.begin(), values.end());
    const std::size_t middle = values.size() / 2;
    return values.size() % 2 != 0 ? values[middle] : (values[middle - 1] + values[middle]) / 2;
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
                         "Ed25519 + X25519, in memory), our QUIC in memory, ngtcp2 in memory, our QUIC over UDP "
                         "127.0.0.1; bulk one way over one stream in memory, ours and ngtcp2; then 64 B round trips "
                         "to an echo on another CPU: over one long-lived stream, a new stream per message, and raw "
                         "UDP; heap and system calls per message";
    const BenchCertificate certificate;
    std::unique_ptr<TlsContext> client_tls, server_tls;
    if (make_bench_tls(certificate, client_tls, server_tls) != 0) {
        result.notes.push_back(std::string("not measured: ") + platform::last_error_message());
        return result;
    }
    std::string error;
    auto server = bench_endpoint(*server_tls, error);
    auto client = bench_endpoint(*client_tls, error);
    if (server == nullptr || client == nullptr) result.notes.push_back("UDP not measured: " + error);

    std::unique_ptr<Ngtcp2Pair> ngtcp2;
    std::string ngtcp2_error;
    if (Ngtcp2Pair::create(certificate.certificate_path(), certificate.key_path(), ngtcp2, ngtcp2_error) != 0) {
        result.notes.push_back("ngtcp2 rows left out: " + ngtcp2_error);
    }

    LatencyHistogram tls_alone = make_picosecond_histogram(), in_memory = make_picosecond_histogram(),
                     over_udp = make_picosecond_histogram(), ngtcp2_in_memory = make_picosecond_histogram();
    std::uint64_t failures = 0;
    context.progress.begin("quic", context.duration_s);
    const std::uint64_t start = wall_ns();
    // Handshakes take half of the time: 4 rounds x 4 kinds (3 without ngtcp2).
    const auto slice_ns = static_cast<std::uint64_t>(context.duration_s * 1e9 / 32);
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
        for (std::uint64_t end = wall_ns() + slice_ns; ngtcp2 != nullptr && wall_ns() < end;) {
            const std::uint64_t t0 = wall_ns();
            if (ngtcp2->handshake()) ngtcp2_in_memory.record((wall_ns() - t0) * 1000);
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

    // Bulk: the same transfer with each stack in turn, the median of each stack's transfers (5 of 64 MiB, or 3 of
    // 4 MiB in a short run, where time would not allow more).
    const bool long_run = context.duration_s >= 3;
    const std::uint64_t bulk_bytes = long_run ? 64ull << 20 : 4ull << 20;
    const BulkWindows windows;
    std::vector<double> cf_gbps, ngtcp2_gbps;
    BulkTransfer cf_last, ngtcp2_last;
    for (int run = 0; run < (long_run ? 5 : 3); ++run) {
        BulkTransfer transfer;
        if (cf_bulk(*client_tls, *server_tls, bulk_bytes, windows, transfer)) {
            cf_gbps.push_back(transfer.gbit_per_s());
            cf_last = transfer;
        } else {
            result.notes.push_back("ERROR: a cf QUIC bulk transfer failed");
        }
        if (ngtcp2 != nullptr && ngtcp2->bulk(bulk_bytes, windows, transfer)) {
            ngtcp2_gbps.push_back(transfer.gbit_per_s());
            ngtcp2_last = transfer;
        } else if (ngtcp2 != nullptr) {
            result.notes.push_back("ERROR: " + ngtcp2->error());
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
    const long rounds = context.duration_s >= 3 ? 20000 : 1000;
    add_message_costs(result, rounds, 1, "socket");
    add_message_costs(result, rounds / 10, 64, "socket");
    add_message_costs(result, rounds / 10, 64, "uring");
    context.progress.end();
    if (failures != 0) result.notes.push_back("ERROR: " + std::to_string(failures) + " handshakes failed");
    if (rtt_failures != 0) result.notes.push_back("ERROR: " + std::to_string(rtt_failures) + " round trips failed");
    const Series tls = make_series("handshake: TLS 1.3 alone (GnuTLS, both ends, in memory)", tls_alone);
    const Series quic = make_series("handshake: cf QUIC, both ends, in memory", in_memory);
    const Series peer = make_series("handshake: ngtcp2 0.12, both ends, in memory", ngtcp2_in_memory);
    result.series = {tls, quic};
    if (peer.count != 0) result.series.push_back(peer);
    if (over_udp.count() != 0) result.series.push_back(make_series("handshake: cf QUIC over UDP 127.0.0.1", over_udp));
    result.ratios.push_back(make_ratio("handshake: cf QUIC in memory / TLS alone", quic, tls));
    if (peer.count != 0) {
        result.ratios.push_back(make_ratio("handshake: cf QUIC / ngtcp2, both in memory", quic, peer));
    }
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
    if (peer.p50_ns > 0) {
        result.figures.push_back({"handshake: ngtcp2's transport share of its QUIC handshake (p50)",
                                  100.0 * (peer.p50_ns - tls.p50_ns) / peer.p50_ns, "%"});
    }
    const std::string bulk = "bulk " + std::to_string(bulk_bytes >> 20) + " MiB one way, one stream, in memory, "
                             "one thread (median of " + std::to_string(cf_gbps.size()) + "): ";
    if (!cf_gbps.empty()) {
        result.figures.push_back({bulk + "cf QUIC", median(cf_gbps), "Gbit/s"});
        result.figures.push_back({"bulk: cf QUIC bytes per datagram (both ways)",
                                  static_cast<double>(cf_last.datagram_bytes) / static_cast<double>(cf_last.datagrams),
                                  "B"});
    }
    if (!ngtcp2_gbps.empty()) {
        result.figures.push_back({bulk + "ngtcp2 0.12", median(ngtcp2_gbps), "Gbit/s"});
        result.figures.push_back({"bulk: ngtcp2 bytes per datagram (both ways)",
                                  static_cast<double>(ngtcp2_last.datagram_bytes) /
                                      static_cast<double>(ngtcp2_last.datagrams),
                                  "B"});
    }
    if (!cf_gbps.empty() && !ngtcp2_gbps.empty()) {
        result.figures.push_back({"bulk: cf QUIC / ngtcp2 throughput", median(cf_gbps) / median(ngtcp2_gbps), "x"});
    }
    return result;
}

}  // namespace cf::latency
