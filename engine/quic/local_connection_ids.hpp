// Our connection IDs, the ones the peer sends to (RFC 9000 sections 5.1.1, 5.1.2, 19.15, 19.16).
//
// Sequence 0 is the handshake's (the SCID of our long headers). Once the handshake completes the connection adds
// more, each with its stateless reset token, and NEW_CONNECTION_ID frames carry them to the peer, until the peer
// holds min(its active_connection_id_limit, kCapacity). The peer retires one with RETIRE_CONNECTION_ID; it is
// forgotten at once (packets to it no longer route) and the connection adds a replacement.
//
// Rules checked here (section 19.16), with the code to close with:
//   - RETIRE_CONNECTION_ID for a sequence number never issued                            PROTOCOL_VIOLATION
//   - RETIRE_CONNECTION_ID for the connection ID the packet carrying it was sent to      PROTOCOL_VIOLATION
// Retiring one already retired is not an error (frames are sent again after a loss).
//
// Sending: every added ID waits to be sent (send_pending); next_frame() hands out one NEW_CONNECTION_ID at a time,
// on_lost() puts an ID back in the queue unless it was retired meanwhile (section 13.3). retire_prior_to is always
// 0: we never ask the peer to drop IDs of ours.
//
// Fixed storage (kCapacity entries), no allocation; lookups compare at most kCapacity IDs.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>

#include "engine/quic/connection_id.hpp"
#include "engine/quic/frames.hpp"
#include "engine/quic/transport_error.hpp"

namespace cf::quic {

class LocalConnectionIds {
public:
    static constexpr std::size_t kCapacity = 4;   // the most of ours the peer may hold at once
    static constexpr std::uint64_t kNone = UINT64_MAX;

    struct Entry {
        std::uint64_t sequence = kNone;   // kNone: the slot is free
        ConnectionId cid;
        StatelessResetToken token;
        bool send_pending = false;        // its NEW_CONNECTION_ID is still to (re)send
    };

    // Forgets everything and starts over with the handshake's ID, sequence 0 (never sent in a frame).
    void reset(const ConnectionId& handshake_cid, const StatelessResetToken& token) noexcept;

    // Adds the next sequence number, to be sent: its sequence, or kNone when kCapacity are active.
    std::uint64_t add(const ConnectionId& cid, const StatelessResetToken& token) noexcept;

    // The sequence number of the active ID equal to `bytes`, or kNone.
    std::uint64_t find(std::span<const std::uint8_t> bytes) const noexcept;
    bool contains(std::span<const std::uint8_t> bytes) const noexcept { return find(bytes) != kNone; }

    // The peer's RETIRE_CONNECTION_ID for `sequence`, in a packet sent to our ID number `packet_sequence` (kNone if
    // it came to no ID of this set, e.g. a server's original DCID). no_error, with `retired` true if an active ID
    // went; else the error above.
    TransportError retire(std::uint64_t sequence, std::uint64_t packet_sequence, bool& retired) noexcept;

    std::size_t active() const noexcept;
    std::uint64_t next_sequence() const noexcept { return next_sequence_; }
    std::span<const Entry> entries() const noexcept { return entries_; }

    // Sending.
    bool wants_to_send() const noexcept;
    // The NEW_CONNECTION_ID of the oldest ID waiting, now taken as sent: false if none waits.
    bool next_frame(NewConnectionIdFrame& out) noexcept;
    // A packet that carried `sequence` was lost: send it again if the ID is still active.
    void on_lost(std::uint64_t sequence) noexcept;

private:
    Entry* entry(std::uint64_t sequence) noexcept;

    Entry entries_[kCapacity];
    std::uint64_t next_sequence_ = 0;
};

}  // namespace cf::quic
