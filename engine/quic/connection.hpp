// One QUIC connection (RFC 9000), client or server, driven by its owner's thread: datagrams in
// (receive_datagram), datagrams out (write_datagram), time passed in by the caller. It owns the TLS session, the
// three packet number spaces with their keys, acknowledgements and CRYPTO streams, and the connection's state.
//
// What this first slice does, and what it does not yet:
//   - the full handshake: Initial, Handshake and 1-RTT keys from TLS, CRYPTO data both ways in coalesced packets,
//     client Initials padded to 1200 bytes, transport parameters exchanged and checked (section 7.3), HANDSHAKE_DONE,
//     Initial keys discarded when the first Handshake packet goes out (client) or opens (server), Handshake keys
//     once the handshake is confirmed (RFC 9001 section 4.9);
//   - acknowledgements of every space (AckTracker), duplicates dropped, CRYPTO data acknowledged;
//   - CONNECTION_CLOSE sent on any error (the RFC's code: frame errors, TLS alerts, transport parameters) and
//     received (draining);
//   - loss recovery (RFC 9002, loss_detection.hpp): packets declared lost by an ACK or the loss timer have their
//     CRYPTO data and HANDSHAKE_DONE sent again; a probe timeout sends one or two ack-eliciting packets (the
//     unacknowledged CRYPTO data again, else a PING); the congestion window gates what is ack-eliciting;
//   - the anti-amplification limit: a server sends at most three times what it received until a Handshake packet
//     from the client proves its address (RFC 9000 section 8.1);
//   - the idle timeout (section 10.1): the smaller of both sides' max_idle_timeout, at least three PTOs, restarted
//     by every packet that opens and by the first ack-eliciting packet sent after one; then the connection is
//     closed silently (timed_out);
//   - key update (RFC 9001 section 6): initiated on demand once the handshake is confirmed and the previous update
//     was acknowledged three PTOs ago, and answered when the peer's packets flip the Key Phase bit;
//   - Retry at the client (section 17.2.5.2: the integrity tag checked, at most one, none after a server packet;
//     Initial keys from the Retry's SCID, the token in every Initial after it, the ClientHello sent again) and at
//     the server (made by the Endpoint from a checked token, with the parameters section 7.3 asks for);
//     Version Negotiation at the client (section 6.2: a packet that lists our version or does not echo our IDs is
//     ignored, one that does not abandons the attempt);
//   - streams (stream_table.hpp): once the handshake completed at this end, the application's streams and message
//     channels go out in 1-RTT packets, their frames acknowledged or sent again with the packets that carried them,
//     and the peer's stream and flow-control frames are checked and applied; streams() is the application's side;
//   - pacing (RFC 9002 section 7.7, pacer.hpp): stream data leaves at 5/4 of the congestion window per smoothed
//     RTT, in bursts of a millisecond at that rate (at least an initial window, at most kMaxPacingBurstBytes: one
//     GSO send); ACKs, CRYPTO data, probes and CONNECTION_CLOSE are not held back. When only the pacer holds data
//     back, next_timeout() says when it may go;
//   - connection IDs (sections 5.1, 19.15, 19.16; local_connection_ids.hpp, peer_connection_ids.hpp): once the
//     handshake completed at this end we issue NEW_CONNECTION_ID frames until the peer holds min(its
//     active_connection_id_limit, 4) of ours, each with a stateless reset token (from ConnectionConfig::reset_key,
//     else random), and replace each one it retires; a server also sends the stateless_reset_token parameter for
//     its handshake ID. We keep up to 4 of the peer's (our active_connection_id_limit), retire what its
//     retire_prior_to asks and move off a retired one; switch_peer_cid() moves to a fresh one on demand. Both
//     frames are sent again when lost. Packets are taken on any of our active IDs;
//   - stateless reset (section 10.3.1): a datagram in which no packet opens and whose last 16 bytes equal the
//     token of one of the peer's IDs drains the connection (reset_by_peer(), "stateless reset" as its message);
//     receive_stateless_reset() does the same check for a datagram the Endpoint could not route;
//   - not yet: path validation and migration, 0-RTT.
//
// Every datagram is untrusted: a packet that fails to parse, has no keys, does not open, or repeats a packet number
// is dropped and counted (dropped_packets()); a frame that breaks a rule closes the connection with its code.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>

#include "engine/quic/ack_tracker.hpp"
#include "engine/quic/connection_id.hpp"
#include "engine/quic/local_connection_ids.hpp"
#include "engine/quic/loss_detection.hpp"
#include "engine/quic/pacer.hpp"
#include "engine/quic/packet_protection.hpp"
#include "engine/quic/peer_connection_ids.hpp"
#include "engine/quic/receive_buffer.hpp"
#include "engine/quic/send_buffer.hpp"
#include "engine/quic/stateless_reset.hpp"
#include "engine/quic/stream_table.hpp"
#include "engine/quic/tls_session.hpp"
#include "engine/quic/transport_parameters.hpp"
#include "engine/quic/uninitialized_array.hpp"

namespace cf::quic {

struct ConnectionConfig {
    const TlsContext* tls = nullptr;   // its role is the connection's; must outlive the connection
    TransportParameters parameters;    // ours; the connection fills in the connection-ID, stream and flow-control ones
    StreamTableConfig streams;         // stream slots, rings and windows (stream_table.hpp)
    std::uint32_t crypto_buffer_bytes = 16384;   // per space and direction, a power of two (a certificate chain fits)
    // Where the stateless reset tokens of our connection IDs come from (must outlive the connection); none: random
    // tokens, which only this connection knows (so no reset can be sent for it once its state is gone).
    const StatelessResetKey* reset_key = nullptr;
    CongestionAlgorithm congestion = CongestionAlgorithm::cubic;   // per connection (cf_quic_config's choice)
};

enum class ConnectionState : std::uint8_t {
    handshaking,   // keys and CRYPTO data being exchanged
    established,   // the TLS handshake completed at this end
    confirmed,     // RFC 9001 section 4.1.2: the server at completion, the client on HANDSHAKE_DONE
    closing,       // we sent CONNECTION_CLOSE
    draining,      // the peer did
    timed_out,     // the idle timeout passed (closed silently, RFC 9000 section 10.1)
    abandoned,     // a client's attempt given up: the server speaks none of our versions (section 6.2)
};

// A server connection made after a Retry (the Endpoint checked the client's token): what the client first sent to,
// and the connection ID the Retry gave it, which its Initials now use (and the Initial keys come from).
struct RetryContext {
    ConnectionId original_dcid;
    ConnectionId retry_scid;
};

const char* connection_state_name(ConnectionState state) noexcept;

class Connection {
public:
    static constexpr std::size_t kMaxDatagramBytes = 1452;   // what we send; what we take is up to 65527
    static constexpr std::uint64_t kMaxPacingBurstBytes = 65536;   // stream data sent back to back at most
    static constexpr std::size_t kMaxCloseReasonBytes = 256;   // of our own reason phrase, sent in CONNECTION_CLOSE
    static constexpr std::size_t kMaxTokenBytes = 512;         // a Retry token we keep (longer ones are dropped)

    // A client towards a server, from our connection ID and the random `original_dcid` (8 to 20 bytes) its first
    // Initial goes to. 0, or -EINVAL / -ENOMEM / -EIO with a message.
    static int connect(const ConnectionConfig& config, const ConnectionId& local_cid, const ConnectionId& original_dcid,
                       std::uint64_t now_ns, std::unique_ptr<Connection>& out) noexcept;
    // A server for a client whose first Initial packet came to `original_dcid` from `client_cid` (from the header:
    // parse_packet_header). The caller then hands it that datagram with receive_datagram().
    // After a Retry, `client_dcid` is the Retry's SCID and `retry` says what the client first sent to.
    static int accept(const ConnectionConfig& config, const ConnectionId& local_cid, const ConnectionId& client_dcid,
                      const ConnectionId& client_cid, std::uint64_t now_ns, std::unique_ptr<Connection>& out,
                      const RetryContext* retry = nullptr) noexcept;

    ~Connection();
    Connection(const Connection&) = delete;
    Connection& operator=(const Connection&) = delete;

    // A datagram from the peer, decrypted in place (its bytes are overwritten).
    void receive_datagram(std::uint8_t* data, std::size_t size, std::uint64_t now_ns) noexcept;
    // The next datagram to send into out[0, capacity) (at least kMaxDatagramBytes): its size, or 0 if nothing is due.
    std::size_t write_datagram(std::uint8_t* out, std::size_t capacity, std::uint64_t now_ns) noexcept;
    // When the connection's timer is due (loss detection or probe timeout, RFC 9002), UINT64_MAX for none; the
    // caller calls on_timeout() then, and reads next_timeout() again after every call into the connection.
    std::uint64_t next_timeout() const noexcept;
    // The earliest delayed acknowledgement falling due (UINT64_MAX: none owed); part of next_timeout().
    std::uint64_t ack_deadline() const noexcept;
    void on_timeout(std::uint64_t now_ns) noexcept;

    // Asks for an ack-eliciting packet now (a PING if nothing else is due): keeps a path alive, measures RTT.
    void send_ping() noexcept;
    // Starts a key update (RFC 9001 section 6): 0, or -EAGAIN before the handshake is confirmed, while the
    // previous update is not yet acknowledged or for three PTOs after that (section 6.5; by the time of the last
    // call into the connection), or the key derivation's error. The peer answers with its own.
    int update_keys() noexcept;
    // Key updates done by each side's keys (ours initiated or answered).
    std::uint64_t key_updates() const noexcept;

    // Moves to one of the peer's connection IDs never used before (what a client does when it migrates; RFC 9000
    // section 9.5) and retires the one in use with RETIRE_CONNECTION_ID: 0, or -EAGAIN when the peer gave none
    // unused, -ENOTCONN before the handshake completed or once closed.
    int switch_peer_cid() noexcept;
    // Routing: true if packets to `dcid` are ours (an active ID of ours, or a server's original DCID).
    bool owns_cid(std::span<const std::uint8_t> dcid) const noexcept;
    // A datagram the Endpoint could not route to any connection: true if it is a stateless reset from our peer
    // (its last 16 bytes are one of the peer's tokens, compared in constant time); the connection then drains.
    bool receive_stateless_reset(const std::uint8_t* data, std::size_t size) noexcept;
    // The connection ended on the peer's stateless reset (it is draining).
    bool reset_by_peer() const noexcept { return reset_by_peer_; }
    // Our IDs the peer holds, and the peer's IDs we hold.
    const LocalConnectionIds& local_cids() const noexcept { return local_ids_; }
    const PeerConnectionIds& peer_cids() const noexcept { return peer_ids_; }

    // For tests that break the rules on purpose: `frames` (encoded frames, unchecked) go as they are in the next
    // 1-RTT packet, once, never sent again. false if longer than kMaxTestFrameBytes or some are already waiting.
    static constexpr std::size_t kMaxTestFrameBytes = 64;
    bool send_frame_bytes_for_testing(std::span<const std::uint8_t> frames) noexcept;

    // Closes with a transport error code (or an application one) and a reason phrase (at most
    // kMaxCloseReasonBytes of it is sent): CONNECTION_CLOSE goes out with the next datagram.
    void close(std::uint64_t error_code, bool application, const char* reason) noexcept;

    ConnectionState state() const noexcept { return state_; }
    bool handshake_confirmed() const noexcept { return state_ == ConnectionState::confirmed; }
    bool closed() const noexcept {
        return state_ == ConnectionState::closing || state_ == ConnectionState::draining ||
               state_ == ConnectionState::timed_out || state_ == ConnectionState::abandoned;
    }
    // A client that followed a Retry (RFC 9000 section 8.1.2).
    bool retried() const noexcept { return retry_received_; }
    // Why it closed: our error code or the peer's, and a reason in words.
    std::uint64_t error_code() const noexcept { return error_code_; }
    bool closed_by_peer() const noexcept { return state_ == ConnectionState::draining; }
    const std::string& error_message() const noexcept { return error_message_; }

    EndpointRole role() const noexcept { return role_; }
    const TlsSession& tls() const noexcept { return *tls_; }
    const TransportParameters& peer_parameters() const noexcept { return peer_parameters_; }
    const ConnectionId& local_cid() const noexcept { return local_cid_; }
    const ConnectionId& peer_cid() const noexcept { return peer_cid_; }
    // The Destination Connection ID the client's Initials use, which the Initial keys come from (its first one, or
    // the Retry's SCID after a Retry). A server also takes packets sent to it until the client uses the server's.
    const ConnectionId& original_dcid() const noexcept { return original_dcid_; }

    std::uint64_t dropped_packets() const noexcept { return dropped_packets_; }
    // Frames of kinds this slice does not act on yet (paths, datagrams), counted.
    std::uint64_t unhandled_frames() const noexcept { return unhandled_frames_; }
    std::uint64_t packets_sent() const noexcept { return packets_sent_; }
    std::uint64_t packets_received() const noexcept { return packets_received_; }
    // Packets declared lost whose frames (CRYPTO, STREAM, HANDSHAKE_DONE...) were queued to go again.
    std::uint64_t packets_retransmitted() const noexcept { return packets_retransmitted_; }
    std::uint64_t bytes_sent() const noexcept { return bytes_sent_; }
    std::uint64_t bytes_received() const noexcept { return bytes_received_; }
    bool address_validated() const noexcept { return address_validated_; }
    // The application's streams and message channels (open_stream, write, send_message, next_readable, read...).
    // Calls between the connection's; what they queue goes out with the next write_datagram().
    StreamTable& streams() noexcept { return *streams_; }
    const StreamTable& streams() const noexcept { return *streams_; }
    // RTT, congestion window, bytes in flight, losses (RFC 9002 state).
    const LossDetection& recovery() const noexcept { return *recovery_; }

private:
    struct Space;
    // The connection ID frames one 1-RTT packet carried (sequence numbers), to act on its fate.
    struct SentCidFrames {
        static constexpr std::size_t kMax = 4;   // of each kind per packet
        std::uint8_t new_count = 0;
        std::uint8_t retire_count = 0;
        std::uint64_t new_sequence[kMax] = {};
        std::uint64_t retire_sequence[kMax] = {};
    };
    class TlsGlue;

    Connection(EndpointRole role) noexcept;
    int start(const ConnectionConfig& config, const ConnectionId& local_cid, const ConnectionId& original_dcid,
              std::uint64_t now_ns) noexcept;
    void receive_packet(std::uint8_t* packet, const struct PacketHeader& header, std::uint64_t now_ns) noexcept;
    void process_frames(Space& space, class FrameParser& parser, std::uint64_t now_ns) noexcept;
    bool write_packet(Space& space, std::uint8_t* out, std::size_t capacity, std::size_t datagram_so_far,
                      std::uint64_t now_ns, std::size_t& written) noexcept;
    void on_ack(Space& space, const struct AckFrame& ack) noexcept;
    void requeue_lost(Space& space) noexcept;
    TransportError on_stream_frame(const Frame& frame) noexcept;
    void receive_retry(const struct PacketHeader& header) noexcept;
    void receive_version_negotiation(const struct PacketHeader& header) noexcept;
    int install_initial_keys(const ConnectionId& dcid) noexcept;
    std::uint64_t idle_timeout_ns() const noexcept;
    void restart_idle_timer(std::uint64_t now_ns) noexcept;
    bool pacer_allows(std::uint64_t now_ns) noexcept;
    void feed_tls(Space& space) noexcept;
    void discard(Space& space) noexcept;
    void fail(std::uint64_t error_code, const char* why, std::uint64_t frame_type = 0) noexcept;
    void set_message(const char* why) noexcept;
    std::uint64_t check_peer_parameters(const std::uint8_t* data, std::size_t size) noexcept;
    // Connection IDs (connection_ids.cpp).
    int make_reset_token(const ConnectionId& cid, StatelessResetToken& out) noexcept;
    void init_peer_cids() noexcept;
    void issue_connection_ids() noexcept;
    TransportError on_connection_id_frame(const Frame& frame) noexcept;
    bool write_connection_id_frames(ByteWriter& payload, SentCidFrames& record) noexcept;
    void on_connection_id_frames_acked(const SentCidFrames& record) noexcept;
    void on_connection_id_frames_lost(const SentCidFrames& record) noexcept;
    bool connection_id_frames_due() const noexcept;
    void on_stateless_reset() noexcept;

    EndpointRole role_;
    ConnectionState state_ = ConnectionState::handshaking;
    std::unique_ptr<TlsSession> tls_;
    std::unique_ptr<TlsGlue> glue_;
    std::unique_ptr<Space> spaces_[3];   // initial, handshake, application
    std::unique_ptr<LossDetection> recovery_;
    std::unique_ptr<StreamTable> streams_;
    UninitializedArray<SentStreamFrames> stream_records_;   // per application-space sent-log entry
    bool refuse_packet_ = false;         // a frame of the packet being read could not be stored: do not acknowledge
    std::uint64_t now_ns_ = 0;           // of the call being handled
    std::uint64_t bytes_received_ = 0;
    std::uint64_t bytes_sent_ = 0;
    bool address_validated_ = false;     // a server's anti-amplification limit applies until then
    std::uint64_t idle_deadline_ns_ = UINT64_MAX;
    Pacer pacer_;
    std::uint64_t pacing_deadline_ns_ = UINT64_MAX;   // stream data waits for the pacer until then
    bool restart_idle_on_send_ = true;   // the first ack-eliciting packet after a receive restarts the timer
    bool ping_pending_ = false;
    // Key update: packet numbers of the current write phase start here; an update waits for one of them acked.
    std::uint64_t write_phase_start_ = 0;
    bool write_phase_acked_ = true;
    std::uint64_t next_key_update_ns_ = 0;   // three PTOs after the previous update was acknowledged
    std::uint64_t read_phase_start_ = 0;    // the first packet number seen in the current read phase
    std::unique_ptr<std::uint8_t[]> crypto_memory_;
    ConnectionId local_cid_;
    ConnectionId peer_cid_;
    ConnectionId original_dcid_;         // the DCID the client's Initials use (the Initial keys' input)
    ConnectionId first_dcid_;            // client: the DCID of its very first Initial (section 7.3)
    ConnectionId retry_scid_;
    bool retry_received_ = false;
    std::unique_ptr<std::uint8_t[]> token_;   // client: the Retry's token, sent in every later Initial
    std::size_t token_size_ = 0;
    bool peer_cid_chosen_ = false;       // client: the server's SCID replaced our random original DCID
    TransportParameters local_parameters_;
    TransportParameters peer_parameters_;
    bool handshake_done_pending_ = false;   // server: HANDSHAKE_DONE still to send
    bool close_pending_ = false;            // CONNECTION_CLOSE still to send
    bool close_application_ = false;
    std::string close_reason_;
    std::uint64_t close_frame_type_ = 0;
    std::uint64_t error_code_ = 0;
    std::string error_message_;
    std::uint64_t dropped_packets_ = 0;
    std::uint64_t unhandled_frames_ = 0;
    std::uint64_t packets_sent_ = 0;
    std::uint64_t packets_received_ = 0;
    // Connection IDs and stateless reset.
    const StatelessResetKey* reset_key_ = nullptr;
    LocalConnectionIds local_ids_;
    PeerConnectionIds peer_ids_;
    bool peer_ids_ready_ = false;          // peer_ids_ holds the peer's handshake ID (set once it is final)
    std::uint64_t packet_dcid_sequence_ = LocalConnectionIds::kNone;   // our ID the packet being read came to
    UninitializedArray<SentCidFrames> cid_records_;   // per application-space sent-log entry
    bool reset_by_peer_ = false;
    std::uint8_t test_frame_[kMaxTestFrameBytes] = {};
    std::size_t test_frame_size_ = 0;
    std::uint64_t packets_retransmitted_ = 0;
};

}  // namespace cf::quic
