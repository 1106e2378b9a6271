#include "engine/quic/local_connection_ids.hpp"

#include <cstring>

namespace cf::quic {

void LocalConnectionIds::reset(const ConnectionId& handshake_cid, const StatelessResetToken& token) noexcept {
    for (Entry& e : entries_) e = Entry{};
    entries_[0].sequence = 0;
    entries_[0].cid = handshake_cid;
    entries_[0].token = token;
    next_sequence_ = 1;
}

std::uint64_t LocalConnectionIds::add(const ConnectionId& cid, const StatelessResetToken& token) noexcept {
    if (next_sequence_ >= kMaxVarint) return kNone;   // would not encode (never reached in practice)
    for (Entry& e : entries_) {
        if (e.sequence != kNone) continue;
        e.sequence = next_sequence_++;
        e.cid = cid;
        e.token = token;
        e.send_pending = true;
        return e.sequence;
    }
    return kNone;
}

std::uint64_t LocalConnectionIds::find(std::span<const std::uint8_t> bytes) const noexcept {
    for (const Entry& e : entries_) {
        if (e.sequence != kNone && equals(e.cid, bytes)) return e.sequence;
    }
    return kNone;
}

LocalConnectionIds::Entry* LocalConnectionIds::entry(std::uint64_t sequence) noexcept {
    for (Entry& e : entries_) {
        if (e.sequence == sequence && sequence != kNone) return &e;
    }
    return nullptr;
}

TransportError LocalConnectionIds::retire(std::uint64_t sequence, std::uint64_t packet_sequence,
                                          bool& retired) noexcept {
    retired = false;
    if (sequence >= next_sequence_) return TransportError::protocol_violation;   // never issued
    if (sequence == packet_sequence) return TransportError::protocol_violation;  // the one this packet came to
    Entry* e = entry(sequence);
    if (e == nullptr) return TransportError::no_error;   // retired before: a repeated frame
    *e = Entry{};
    retired = true;
    return TransportError::no_error;
}

std::size_t LocalConnectionIds::active() const noexcept {
    std::size_t count = 0;
    for (const Entry& e : entries_) count += e.sequence != kNone;
    return count;
}

bool LocalConnectionIds::wants_to_send() const noexcept {
    for (const Entry& e : entries_) {
        if (e.sequence != kNone && e.send_pending) return true;
    }
    return false;
}

bool LocalConnectionIds::next_frame(NewConnectionIdFrame& out) noexcept {
    Entry* oldest = nullptr;
    for (Entry& e : entries_) {
        if (e.sequence != kNone && e.send_pending && (oldest == nullptr || e.sequence < oldest->sequence)) oldest = &e;
    }
    if (oldest == nullptr) return false;
    out = NewConnectionIdFrame{};
    out.sequence_number = oldest->sequence;
    out.retire_prior_to = 0;
    out.connection_id_length = static_cast<std::uint8_t>(oldest->cid.size());
    std::memcpy(out.connection_id.data(), oldest->cid.data(), oldest->cid.size());
    out.stateless_reset_token = oldest->token.bytes;
    oldest->send_pending = false;
    return true;
}

void LocalConnectionIds::on_lost(std::uint64_t sequence) noexcept {
    if (Entry* e = entry(sequence); e != nullptr && sequence != 0) e->send_pending = true;
}

}  // namespace cf::quic
