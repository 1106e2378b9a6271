// The peer's connection IDs, the ones we send to (RFC 9000 sections 5.1.1, 5.1.2, 10.3.1, 19.15).
//
// Sequence 0 is the handshake's (the SCID of the peer's long headers), with the server's stateless_reset_token
// transport parameter when we are the client. NEW_CONNECTION_ID adds more, up to the active_connection_id_limit we
// sent (at most kMaxLimit); retire_prior_to retires the older ones, each with a RETIRE_CONNECTION_ID to send, and
// if the ID we send to is among them we move to the lowest active one. switch_to_fresh() moves to an unused ID on
// demand (what a client does when it migrates) and retires the old one.
//
// Rules checked here, with the code to close with:
//   - NEW_CONNECTION_ID while we send to a zero-length connection ID                      PROTOCOL_VIOLATION
//   - retire_prior_to greater than the sequence number (the frame parser checks it too)   FRAME_ENCODING_ERROR
//   - a sequence number seen before with another connection ID or token                    PROTOCOL_VIOLATION
//   - a connection ID seen before under another sequence number                            PROTOCOL_VIOLATION
//   - more active IDs than our limit, once retire_prior_to is applied                      CONNECTION_ID_LIMIT_ERROR
// A repeated frame (same sequence, ID and token) changes nothing. A frame for a sequence below a retire_prior_to
// seen earlier is answered with its RETIRE_CONNECTION_ID and not used (section 5.1.2).
//
// Storage: 3 * kMaxLimit fixed slots, so that twice the limit of IDs can wait on their RETIRE_CONNECTION_ID's
// acknowledgement (section 5.1.2 asks for at least that) beside the active ones. When every slot is still busy a
// new frame is not stored (`stored` false): the caller leaves its packet unacknowledged and the peer sends it
// again once our retirements got through.
//
// Stateless reset detection compares a datagram's last 16 bytes with the tokens of the IDs we sent to and did not
// retire (section 10.3.1 forbids checking the others), in constant time: every slot is compared, no early exit.
#pragma once

#include <cstddef>
#include <cstdint>

#include "engine/quic/connection_id.hpp"
#include "engine/quic/frames.hpp"
#include "engine/quic/transport_error.hpp"

namespace cf::quic {

class PeerConnectionIds {
public:
    static constexpr std::size_t kMaxLimit = 4;                 // the active_connection_id_limit we send
    static constexpr std::size_t kSlots = 3 * kMaxLimit;
    static constexpr std::uint64_t kNone = UINT64_MAX;

    enum class State : std::uint8_t { free, active, retiring };
    struct Entry {
        std::uint64_t sequence = kNone;
        ConnectionId cid;
        StatelessResetToken token;
        bool has_token = false;
        State state = State::free;
        bool retire_in_flight = false;   // retiring: its RETIRE_CONNECTION_ID was sent, not yet acknowledged
        bool used = false;               // we sent to it (a fresh one for switch_to_fresh() was never used)
    };

    // Starts over with the handshake's ID (sequence 0, the one we send to) and its token if the peer gave one;
    // `limit` is the active_connection_id_limit we sent (clamped to 2..kMaxLimit).
    void reset(const ConnectionId& handshake_cid, const StatelessResetToken* token, std::size_t limit) noexcept;

    // A NEW_CONNECTION_ID frame: no_error or the code to close with (see above). `stored` false: no room now, the
    // frame was ignored (do not acknowledge its packet).
    TransportError on_new_connection_id(const NewConnectionIdFrame& frame, bool& stored) noexcept;

    // Moves to the active ID with the lowest sequence number that was never used, retiring the current one:
    // 0, or -EAGAIN when there is none.
    int switch_to_fresh() noexcept;

    const ConnectionId& current() const noexcept { return entries_[current_].cid; }
    std::uint64_t current_sequence() const noexcept { return entries_[current_].sequence; }
    std::size_t active() const noexcept;
    std::uint64_t retire_prior_to() const noexcept { return retire_prior_to_; }
    std::size_t limit() const noexcept { return limit_; }
    const Entry* entries() const noexcept { return entries_; }

    // Sending RETIRE_CONNECTION_ID.
    bool wants_to_send() const noexcept;
    // The next retirement waiting, now taken as sent: false if none waits.
    bool next_frame(RetireConnectionIdFrame& out) noexcept;
    void on_acked(std::uint64_t sequence) noexcept;   // the retirement is done: the slot is free
    void on_lost(std::uint64_t sequence) noexcept;    // send it again

    // The datagram ends with the token of an ID we sent to and did not retire (section 10.3.1): `tail` is its last
    // 16 bytes.
    bool matches_reset_token(const std::uint8_t* tail) const noexcept;
    // There is such a token to check.
    bool any_token() const noexcept;

private:
    static bool checks_token(const Entry& entry) noexcept;
    Entry* find_sequence(std::uint64_t sequence) noexcept;
    Entry* free_slot() noexcept;
    void retire(Entry& entry) noexcept;

    Entry entries_[kSlots];
    std::size_t current_ = 0;        // the slot we send to
    std::size_t limit_ = 2;
    std::uint64_t retire_prior_to_ = 0;
};

}  // namespace cf::quic
