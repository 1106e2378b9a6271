// The quic scenario's in-memory measurements of our own stack, both ends on the caller's thread (no sockets): the
// TLS 1.3 handshake alone (two GnuTLS sessions handing each other their messages by level), our whole QUIC
// handshake (client and server Connections handing each other their datagrams), and our side of the bulk transfer
// (quic_ngtcp2_peer.hpp has ngtcp2's, measured the same way). Also used by cf-quic-handshake-profile.
#pragma once

#include <cstdint>

#include "bench/cf-latency/quic_ngtcp2_peer.hpp"
#include "engine/quic/connection.hpp"
#include "engine/quic/tls_context.hpp"

namespace cf::latency {

// The transport parameters every benchmark connection starts from (the stream and flow-control ones are then the
// connection's own, from its StreamTableConfig).
cf::quic::TransportParameters bench_parameters();

// One TLS 1.3 handshake between a client and a server session of these contexts; true when both completed.
bool tls_handshake(const cf::quic::TlsContext& client_tls, const cf::quic::TlsContext& server_tls);

// One whole QUIC handshake of our client and server in memory, until both confirmed it: time passes 1 us per
// exchange round (ours never waits on a timer here).
bool quic_handshake_in_memory(const cf::quic::TlsContext& client_tls, const cf::quic::TlsContext& server_tls);

// A handshake (not timed), then `bytes` client to server over one bidirectional stream, both ends on this thread,
// time from the monotonic clock; the streams' rings are as large as the stream window. False on any failure.
bool cf_bulk(const cf::quic::TlsContext& client_tls, const cf::quic::TlsContext& server_tls, std::uint64_t bytes,
             const BulkWindows& windows, BulkTransfer& out);

}  // namespace cf::latency
