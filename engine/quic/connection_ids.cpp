// Connection's connection IDs and stateless reset (RFC 9000 sections 5.1, 10.3, 19.15, 19.16): issuing ours,
// keeping the peer's, their frames on the sent-packet records, and reset detection. Apart from connection.cpp so
// that the packet path there only calls in.
#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "engine/quic/connection.hpp"

namespace cf::quic {
namespace {

std::size_t new_connection_id_frame_size(const NewConnectionIdFrame& frame) noexcept {
    return 1 + varint_size(frame.sequence_number) + varint_size(frame.retire_prior_to) + 1 +
           frame.connection_id_length + StatelessResetToken::kSize;
}

}  // namespace

int Connection::make_reset_token(const ConnectionId& cid, StatelessResetToken& out) noexcept {
    if (reset_key_ != nullptr) return reset_key_->token(cid, out);
    return gnutls_rnd(GNUTLS_RND_RANDOM, out.bytes.data(), out.bytes.size()) == 0 ? 0 : -EIO;
}

// The peer's handshake ID is sequence 0 of its IDs, with the server's stateless_reset_token parameter if any.
void Connection::init_peer_cids() noexcept {
    if (peer_ids_ready_) return;
    const auto& token = peer_parameters_.stateless_reset_token;
    peer_ids_.reset(peer_cid_, token ? &*token : nullptr, local_parameters_.active_connection_id_limit);
    peer_ids_ready_ = true;
}

// Tops ours up to min(the peer's active_connection_id_limit, our capacity): random IDs of our handshake ID's
// length (the Endpoint parses short headers with that length).
void Connection::issue_connection_ids() noexcept {
    if (local_cid_.empty() || closed()) return;   // zero-length IDs: there is nothing to issue (section 5.1.1)
    const std::size_t target = static_cast<std::size_t>(
        std::min<std::uint64_t>(peer_parameters_.active_connection_id_limit, LocalConnectionIds::kCapacity));
    for (int guard = 0; guard < 16 && local_ids_.active() < target; ++guard) {
        std::uint8_t bytes[kMaxConnectionIdBytes];
        if (gnutls_rnd(GNUTLS_RND_NONCE, bytes, local_cid_.size()) != 0) return;
        ConnectionId cid;
        (void)cid.assign(bytes, local_cid_.size());
        if (local_ids_.contains(cid.bytes()) || cid == original_dcid_) continue;   // 2^-64: draw again
        StatelessResetToken token;
        if (make_reset_token(cid, token) != 0) return;
        if (local_ids_.add(cid, token) == LocalConnectionIds::kNone) return;
    }
}

TransportError Connection::on_connection_id_frame(const Frame& frame) noexcept {
    TransportError error = TransportError::no_error;
    const char* why = "";
    if (kind_of(frame) == FrameKind::new_connection_id) {
        init_peer_cids();   // a server may read the client's 1-RTT packets before its own handshake completes
        bool stored = true;
        error = peer_ids_.on_new_connection_id(std::get<NewConnectionIdFrame>(frame), stored);
        if (!stored) refuse_packet_ = true;   // no room while retirements are in flight: the peer sends it again
        peer_cid_ = peer_ids_.current();
        why = error == TransportError::connection_id_limit_error
                  ? "the peer's connection IDs exceed our active_connection_id_limit"
                  : "a NEW_CONNECTION_ID frame that contradicts an earlier one, or to a zero-length connection ID";
    } else {
        bool retired = false;
        error = local_ids_.retire(std::get<RetireConnectionIdFrame>(frame).sequence_number, packet_dcid_sequence_,
                                  retired);
        if (retired) issue_connection_ids();   // a replacement keeps the peer's supply up
        why = "RETIRE_CONNECTION_ID for a connection ID never issued, or for the one its packet was sent to";
    }
    if (error != TransportError::no_error) fail(code_of(error), why, wire_type_of(frame));
    return error;
}

bool Connection::connection_id_frames_due() const noexcept {
    return local_ids_.wants_to_send() || peer_ids_.wants_to_send() || test_frame_size_ != 0;
}

// As many NEW_CONNECTION_ID and RETIRE_CONNECTION_ID frames as the record and the packet take; true if any went.
bool Connection::write_connection_id_frames(ByteWriter& payload, SentCidFrames& record) noexcept {
    bool wrote = false;
    if (test_frame_size_ != 0 && test_frame_size_ <= payload.remaining()) {
        payload.bytes(test_frame_, test_frame_size_);
        test_frame_size_ = 0;
        wrote = true;
    }
    NewConnectionIdFrame issued;
    while (record.new_count < SentCidFrames::kMax && local_ids_.next_frame(issued)) {
        // A frame that does not fit would fail the writer (and the packet): check first, keep it for later.
        if (new_connection_id_frame_size(issued) > payload.remaining() || !encode(payload, issued)) {
            local_ids_.on_lost(issued.sequence_number);
            break;
        }
        record.new_sequence[record.new_count++] = issued.sequence_number;
        wrote = true;
    }
    RetireConnectionIdFrame retire;
    while (record.retire_count < SentCidFrames::kMax && peer_ids_.next_frame(retire)) {
        if (1 + varint_size(retire.sequence_number) > payload.remaining() || !encode(payload, retire)) {
            peer_ids_.on_lost(retire.sequence_number);
            break;
        }
        record.retire_sequence[record.retire_count++] = retire.sequence_number;
        wrote = true;
    }
    return wrote;
}

void Connection::on_connection_id_frames_acked(const SentCidFrames& record) noexcept {
    for (std::size_t i = 0; i < record.retire_count; ++i) peer_ids_.on_acked(record.retire_sequence[i]);
}

void Connection::on_connection_id_frames_lost(const SentCidFrames& record) noexcept {
    for (std::size_t i = 0; i < record.new_count; ++i) local_ids_.on_lost(record.new_sequence[i]);
    for (std::size_t i = 0; i < record.retire_count; ++i) peer_ids_.on_lost(record.retire_sequence[i]);
}

int Connection::switch_peer_cid() noexcept {
    if (!peer_ids_ready_ || closed()) return -ENOTCONN;
    if (const int rc = peer_ids_.switch_to_fresh(); rc != 0) return rc;
    peer_cid_ = peer_ids_.current();
    return 0;
}

bool Connection::owns_cid(std::span<const std::uint8_t> dcid) const noexcept {
    return local_ids_.contains(dcid) || (role_ == EndpointRole::server && equals(original_dcid_, dcid));
}

bool Connection::receive_stateless_reset(const std::uint8_t* data, std::size_t size) noexcept {
    if (state_ == ConnectionState::draining || state_ == ConnectionState::timed_out ||
        state_ == ConnectionState::abandoned || !peer_ids_ready_ || size < kMinStatelessResetSize) {
        return false;
    }
    if (!peer_ids_.matches_reset_token(data + size - StatelessResetToken::kSize)) return false;
    on_stateless_reset();
    return true;
}

// Section 10.3.1: draining, and nothing more is sent.
void Connection::on_stateless_reset() noexcept {
    reset_by_peer_ = true;
    close_pending_ = false;
    state_ = ConnectionState::draining;
    error_message_.clear();
    set_message("stateless reset: the peer has no state for this connection");
}

bool Connection::send_frame_bytes_for_testing(std::span<const std::uint8_t> frames) noexcept {
    if (frames.empty() || frames.size() > kMaxTestFrameBytes || test_frame_size_ != 0) return false;
    std::memcpy(test_frame_, frames.data(), frames.size());
    test_frame_size_ = frames.size();
    return true;
}

}  // namespace cf::quic
