#include "engine/quic/ecn_validator.hpp"

namespace cf::quic {

void EcnValidator::on_packet_sent(PacketNumberSpace space, EcnCodepoint codepoint) noexcept {
    Space& s = spaces_[space_index(space)];
    if (codepoint == EcnCodepoint::ect0) ++s.sent_ect0;
    if (codepoint == EcnCodepoint::ect1) ++s.sent_ect1;
    if (state_ == EcnState::testing && (codepoint == EcnCodepoint::ect0 || codepoint == EcnCodepoint::ect1)) {
        if (++testing_sent_ >= kTestingPackets) state_ = EcnState::unknown;
    }
}

void EcnValidator::on_marked_packet_lost() noexcept {
    if (state_ != EcnState::testing && state_ != EcnState::unknown) return;
    ++testing_lost_;
    if (testing_sent_ >= kTestingPackets && testing_lost_ >= testing_sent_) state_ = EcnState::failed;
}

bool EcnValidator::on_ack(PacketNumberSpace space, const EcnCounts* counts, std::uint64_t newly_ect0,
                          std::uint64_t newly_ect1) noexcept {
    if (state_ == EcnState::failed) return false;
    Space& s = spaces_[space_index(space)];
    if (counts == nullptr) {
        if (newly_ect0 + newly_ect1 != 0) state_ = EcnState::failed;
        return false;
    }
    const EcnCounts& previous = s.reported;
    if (counts->ect0 < previous.ect0 || counts->ect1 < previous.ect1 || counts->ce < previous.ce ||
        counts->ect0 > s.sent_ect0 || counts->ect1 > s.sent_ect1 || counts->ce > s.sent_ect0 + s.sent_ect1) {
        state_ = EcnState::failed;
        return false;
    }
    // Every count is now bounded by packets sent, so these sums cannot overflow.
    const std::uint64_t ect0_rise = counts->ect0 - previous.ect0;
    const std::uint64_t ect1_rise = counts->ect1 - previous.ect1;
    const std::uint64_t ce_rise = counts->ce - previous.ce;
    if (ect0_rise + ce_rise < newly_ect0 || ect1_rise + ce_rise < newly_ect1) {
        state_ = EcnState::failed;
        return false;
    }
    s.reported = *counts;
    if (newly_ect0 + newly_ect1 != 0 && (state_ == EcnState::testing || state_ == EcnState::unknown)) {
        state_ = EcnState::capable;
    }
    return ce_rise != 0;
}

}  // namespace cf::quic
