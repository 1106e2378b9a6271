#include "engine/quic/peer_connection_ids.hpp"

#include <cerrno>
#include <cstring>

namespace cf::quic {

void PeerConnectionIds::reset(const ConnectionId& handshake_cid, const StatelessResetToken* token,
                              std::size_t limit) noexcept {
    for (Entry& e : entries_) e = Entry{};
    Entry& first = entries_[0];
    first.sequence = 0;
    first.cid = handshake_cid;
    first.has_token = token != nullptr;
    if (token != nullptr) first.token = *token;
    first.state = State::active;
    first.used = true;
    current_ = 0;
    limit_ = limit < 2 ? 2 : (limit > kMaxLimit ? kMaxLimit : limit);
    retire_prior_to_ = 0;
}

PeerConnectionIds::Entry* PeerConnectionIds::find_sequence(std::uint64_t sequence) noexcept {
    for (Entry& e : entries_) {
        if (e.state != State::free && e.sequence == sequence) return &e;
    }
    return nullptr;
}

PeerConnectionIds::Entry* PeerConnectionIds::free_slot() noexcept {
    for (Entry& e : entries_) {
        if (e.state == State::free) return &e;
    }
    return nullptr;
}

void PeerConnectionIds::retire(Entry& entry) noexcept {
    entry.state = State::retiring;
    entry.retire_in_flight = false;
}

std::size_t PeerConnectionIds::active() const noexcept {
    std::size_t count = 0;
    for (const Entry& e : entries_) count += e.state == State::active;
    return count;
}

TransportError PeerConnectionIds::on_new_connection_id(const NewConnectionIdFrame& frame, bool& stored) noexcept {
    stored = true;
    if (current().empty()) return TransportError::protocol_violation;   // section 19.15: we use zero-length IDs
    if (frame.retire_prior_to > frame.sequence_number || frame.connection_id_length == 0 ||
        frame.connection_id_length > kMaxConnectionIdBytes) {
        return TransportError::frame_encoding_error;
    }
    ConnectionId cid;
    (void)cid.assign(frame.connection_id.data(), frame.connection_id_length);
    StatelessResetToken token;
    token.bytes = frame.stateless_reset_token;
    Entry* same = nullptr;
    for (Entry& e : entries_) {
        if (e.state == State::free) continue;
        const bool same_sequence = e.sequence == frame.sequence_number;
        const bool same_cid = e.cid == cid;
        if (same_sequence != same_cid) return TransportError::protocol_violation;   // one changed, not the other
        if (same_sequence && (!e.has_token || e.token != token)) return TransportError::protocol_violation;
        if (same_sequence) same = &e;
    }
    const std::uint64_t retire_below =
        frame.retire_prior_to > retire_prior_to_ ? frame.retire_prior_to : retire_prior_to_;
    const bool already_retired = frame.sequence_number < retire_below;
    // Check room before changing anything, so a frame we cannot store leaves no trace and can come again.
    if (same == nullptr) {
        std::size_t active_after = already_retired ? 0 : 1;
        for (const Entry& e : entries_) active_after += e.state == State::active && e.sequence >= retire_below;
        if (active_after > limit_) return TransportError::connection_id_limit_error;
        if (free_slot() == nullptr) {
            stored = false;
            return TransportError::no_error;
        }
    }
    if (retire_below > retire_prior_to_) {
        retire_prior_to_ = retire_below;
        for (Entry& e : entries_) {
            if (e.state == State::active && e.sequence < retire_below) retire(e);
        }
    }
    if (same == nullptr) {
        Entry& e = *free_slot();
        e = Entry{};
        e.sequence = frame.sequence_number;
        e.cid = cid;
        e.token = token;
        e.has_token = true;
        e.state = State::active;
        if (already_retired) retire(e);   // section 5.1.2: retired on arrival, never used
    }
    if (entries_[current_].state != State::active) {
        // The ID we sent to was retired: the lowest active one takes over (this frame's is active at least).
        std::size_t best = kSlots;
        for (std::size_t i = 0; i < kSlots; ++i) {
            if (entries_[i].state != State::active) continue;
            if (best == kSlots || entries_[i].sequence < entries_[best].sequence) best = i;
        }
        if (best != kSlots) {
            current_ = best;
            entries_[best].used = true;
        }
    }
    return TransportError::no_error;
}

int PeerConnectionIds::switch_to_fresh() noexcept {
    std::size_t best = kSlots;
    for (std::size_t i = 0; i < kSlots; ++i) {
        const Entry& e = entries_[i];
        if (e.state != State::active || e.used) continue;
        if (best == kSlots || e.sequence < entries_[best].sequence) best = i;
    }
    if (best == kSlots) return -EAGAIN;
    retire(entries_[current_]);
    current_ = best;
    entries_[best].used = true;
    return 0;
}

bool PeerConnectionIds::wants_to_send() const noexcept {
    for (const Entry& e : entries_) {
        if (e.state == State::retiring && !e.retire_in_flight) return true;
    }
    return false;
}

bool PeerConnectionIds::next_frame(RetireConnectionIdFrame& out) noexcept {
    for (Entry& e : entries_) {
        if (e.state != State::retiring || e.retire_in_flight) continue;
        e.retire_in_flight = true;
        out.sequence_number = e.sequence;
        return true;
    }
    return false;
}

void PeerConnectionIds::on_acked(std::uint64_t sequence) noexcept {
    Entry* e = find_sequence(sequence);
    if (e != nullptr && e->state == State::retiring) *e = Entry{};
}

void PeerConnectionIds::on_lost(std::uint64_t sequence) noexcept {
    Entry* e = find_sequence(sequence);
    if (e != nullptr && e->state == State::retiring) e->retire_in_flight = false;
}

bool PeerConnectionIds::checks_token(const Entry& entry) noexcept {
    return entry.state == State::active && entry.used && entry.has_token;
}

bool PeerConnectionIds::matches_reset_token(const std::uint8_t* tail) const noexcept {
    bool match = false;
    for (const Entry& e : entries_) {
        // Every slot is compared, whether its token counts or not, so the time does not say which matched.
        const bool equal = constant_time_equal(e.token, tail);
        match |= equal && checks_token(e);
    }
    return match;
}

bool PeerConnectionIds::any_token() const noexcept {
    for (const Entry& e : entries_) {
        if (checks_token(e)) return true;
    }
    return false;
}

}  // namespace cf::quic
