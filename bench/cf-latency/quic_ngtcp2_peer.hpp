// ngtcp2 (libngtcp2 + libngtcp2_crypto_gnutls 0.12) in this process, measured exactly the way the quic scenario
// measures our own in-memory pair: a client and a server connection on the caller's thread handing each other
// their datagrams in memory (no sockets, no loss), with what our pair gets too:
//   - TLS: GnuTLS with the same priority string as cf::quic::TlsContext (TLS 1.3 only, its three AEADs, X25519
//     first), the same Ed25519 certificate files (quic_bench_certificate.hpp), the same session flags (no
//     automatic session ticket), ALPN "cf-bench" mandatory; the client accepts the server when its certificate is
//     the expected one (ours pins its key: both cheap next to the handshake's signature);
//   - transport: QUIC v1, 8-byte connection IDs, initial RTT 333 ms, CUBIC, datagrams up to 1452 bytes from the
//     start (ours sends that size; ngtcp2's path MTU probing is off), the flow-control limits the caller asks for.
// ngtcp2 does work of its own that ours does not do yet (spare connection IDs, pacing); that is part of its cost.
// Built without ngtcp2 (pkg-config libngtcp2_crypto_gnutls absent), create() answers -ENOSYS.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

namespace cf::latency {

// One bulk transfer: `bytes` of stream data from client to server on one stream.
struct BulkTransfer {
    std::uint64_t bytes = 0;
    std::uint64_t wall_ns = 0;           // first byte offered to the transport to the last one delivered
    std::uint64_t datagrams = 0;         // both ways
    std::uint64_t datagram_bytes = 0;    // both ways
    double gbit_per_s() const {
        return wall_ns == 0 ? 0 : static_cast<double>(bytes) * 8 / static_cast<double>(wall_ns);
    }
};

// The bytes a bulk transfer carries, a function of the stream offset repeating every 64 KiB (senders offer views
// of one pattern buffer), which the receiving end checks.
inline constexpr std::size_t kBulkPatternPeriod = 64 * 1024;
inline std::uint8_t bulk_pattern_byte(std::uint64_t offset) {
    return static_cast<std::uint8_t>(offset * 131 + (offset >> 8));
}

// Flow-control limits both stacks are given for a bulk transfer: the stream window stays at `stream_window`
// (no auto-tuning beyond it), the connection's at `connection_window`.
struct BulkWindows {
    std::uint64_t stream_window = 1 << 20;
    std::uint64_t connection_window = 16 << 20;
};

class Ngtcp2Pair {
public:
    // 0, -ENOSYS (built without ngtcp2) or -EIO, with `error` saying why.
    static int create(const std::string& certificate_file, const std::string& key_file,
                      std::unique_ptr<Ngtcp2Pair>& out, std::string& error);
    ~Ngtcp2Pair();
    Ngtcp2Pair(const Ngtcp2Pair&) = delete;
    Ngtcp2Pair& operator=(const Ngtcp2Pair&) = delete;

    // One whole handshake, both ends, in memory: new connections, from the client's first datagram until both
    // ends confirmed it; time passes 1 us per exchange round, as in the quic scenario's own in-memory handshake.
    bool handshake();
    // A handshake (not timed), then `bytes` client to server over one bidirectional stream, both ends on this
    // thread, time from the monotonic clock. False on any failure (error() says which).
    bool bulk(std::uint64_t bytes, const BulkWindows& windows, BulkTransfer& out);
    const std::string& error() const { return error_; }

    struct State;

private:
    Ngtcp2Pair() = default;
    std::unique_ptr<State> state_;
    std::string error_;
};

}  // namespace cf::latency
