#include "bench/cf-latency/quic_in_memory.hpp"

#include <chrono>
#include <deque>
#include <map>
#include <vector>

#include "engine/quic/packet_header.hpp"

namespace cf::latency {

using namespace cf::quic;

namespace {

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

ConnectionId bench_cid(std::uint8_t seed) {
    ConnectionId id;
    std::uint8_t bytes[8];
    for (std::uint8_t& b : bytes) b = seed++;
    (void)id.assign(bytes, sizeof bytes);
    return id;
}

// Our client and server exchanging datagrams in memory until both confirmed the handshake: a fake clock advancing
// 1 us per round, or the monotonic clock (for a bulk transfer that follows).
bool handshake_in_memory(const ConnectionConfig& client_config, const ConnectionConfig& server_config, bool real_time,
                         std::unique_ptr<Connection>& client, std::unique_ptr<Connection>& server) {
    std::uint64_t now = real_time ? wall_ns() : 1;
    if (Connection::connect(client_config, bench_cid(0x10), bench_cid(0xa0), now, client) != 0) return false;
    std::uint8_t datagram[Connection::kMaxDatagramBytes];
    for (int round = 0; round < 64; ++round) {
        now = real_time ? wall_ns() : now + 1000;
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

}  // namespace

TransportParameters bench_parameters() {
    TransportParameters p;
    p.max_idle_timeout_ms = 30000;
    p.initial_max_data = 1 << 20;
    p.initial_max_stream_data_bidi_local = 1 << 18;
    p.initial_max_stream_data_bidi_remote = 1 << 18;
    p.initial_max_streams_bidi = 16;
    return p;
}

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

bool quic_handshake_in_memory(const TlsContext& client_tls, const TlsContext& server_tls) {
    ConnectionConfig client_config, server_config;
    client_config.tls = &client_tls;
    client_config.parameters = bench_parameters();
    server_config.tls = &server_tls;
    server_config.parameters = bench_parameters();
    std::unique_ptr<Connection> client, server;
    return handshake_in_memory(client_config, server_config, false, client, server);
}

// Our side of the bulk transfer, the same loop as the ngtcp2 peer's (quic_ngtcp2_peer.cpp): each turn runs the
// timers due, the client writes what its stream takes and sends every datagram due straight into the server, the
// server reads what arrived and sends what it owes back. The streams' rings are as large as the stream window.
bool cf_bulk(const TlsContext& client_tls, const TlsContext& server_tls, std::uint64_t bytes,
             const BulkWindows& windows, BulkTransfer& out) {
    ConnectionConfig client_config, server_config;
    for (ConnectionConfig* config : {&client_config, &server_config}) {
        config->parameters = bench_parameters();
        StreamTableConfig& streams = config->streams;
        streams.local_bidi_streams = streams.peer_bidi_streams = 1;
        streams.local_uni_streams = streams.peer_uni_streams = 0;
        streams.send_ring_bytes = streams.receive_ring_bytes = static_cast<std::uint32_t>(windows.stream_window);
        streams.stream_window = windows.stream_window;
        streams.connection_window = streams.max_connection_window = windows.connection_window;
    }
    client_config.tls = &client_tls;
    server_config.tls = &server_tls;
    std::unique_ptr<Connection> client, server;
    if (!handshake_in_memory(client_config, server_config, true, client, server)) return false;
    StreamTable& sending = client->streams();
    StreamTable& receiving = server->streams();
    const std::int64_t opened = sending.open_stream(StreamDirection::bidirectional);
    if (opened < 0) return false;
    const auto stream = static_cast<StreamId>(opened);
    constexpr std::size_t kPeriod = kBulkPatternPeriod;
    std::vector<std::uint8_t> pattern(2 * kPeriod);
    for (std::size_t i = 0; i < pattern.size(); ++i) pattern[i] = bulk_pattern_byte(i);
    std::uint8_t datagram[Connection::kMaxDatagramBytes];
    out = {};
    out.bytes = bytes;
    std::uint64_t offset = 0, received = 0;
    const std::uint64_t start = wall_ns(), deadline = start + 60'000'000'000ull;
    while (received < bytes) {
        const std::uint64_t now = wall_ns();
        if (now > deadline || client->closed() || server->closed()) return false;
        for (Connection* connection : {client.get(), server.get()}) {
            if (connection->next_timeout() <= now) connection->on_timeout(now);
        }
        while (offset < bytes) {
            const std::uint64_t left = bytes - offset;
            const std::int64_t taken = sending.write(stream, pattern.data() + offset % kPeriod,
                                                     left < kPeriod ? static_cast<std::size_t>(left) : kPeriod);
            if (taken <= 0) break;
            offset += static_cast<std::uint64_t>(taken);
        }
        for (std::size_t size; (size = client->write_datagram(datagram, sizeof datagram, now)) != 0;) {
            ++out.datagrams;
            out.datagram_bytes += size;
            server->receive_datagram(datagram, size, now);
        }
        for (StreamId id = 0; receiving.next_readable(id);) {
            StreamReadView view;
            if (receiving.read(id, view) != 0) return false;
            const std::size_t size = view.data.size();
            if (size == 0) continue;
            const std::uint8_t last = view.data.second_size != 0 ? view.data.second[view.data.second_size - 1]
                                                                 : view.data.first[view.data.first_size - 1];
            if (id != stream || view.data.first[0] != bulk_pattern_byte(received) ||
                last != bulk_pattern_byte(received + size - 1)) {
                return false;   // corrupt
            }
            received += size;
            (void)receiving.consume(id, size);
        }
        for (std::size_t size; (size = server->write_datagram(datagram, sizeof datagram, now)) != 0;) {
            ++out.datagrams;
            out.datagram_bytes += size;
            client->receive_datagram(datagram, size, now);
        }
    }
    out.wall_ns = wall_ns() - start;
    return true;
}

}  // namespace cf::latency
