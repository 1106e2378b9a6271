// ECN validation at the accounting level (RFC 9000 section 13.4.2; RFC 9002 section 7.1 and appendix B.7).
//
// The sender marks its first kTestingPackets packets ECT(0) (state testing), then stops marking (unknown) until an
// ACK shows the marks arrived (capable, marking resumes) or something proves the path or peer broken (failed,
// never marks again). Per packet number space it keeps the ECN counts the peer last reported and how many packets
// it sent with ECT(0) and ECT(1). An ACK frame is checked only if it raises the largest acknowledged number (older
// ones may be reordered). Validation fails when:
//   - the ACK newly acknowledges packets sent with an ECT mark but carries no ECN counts;
//   - a reported count went down;
//   - the ECT(0) increase plus the CE increase is below the newly acknowledged ECT(0) packets (same for ECT(1));
//   - a reported ECT(0) or ECT(1) total exceeds what was sent with that mark, or CE exceeds all marked packets;
//   - every packet marked during testing was declared lost.
// A CE increase on an ACK that passed is a congestion signal (the loss detector then runs a congestion event for
// the largest acknowledged packet's send time). The caller sets the codepoint from should_mark() on each packet.
// Not thread-safe; no allocation.
#pragma once

#include <array>
#include <cstdint>

#include "engine/quic/ack_range.hpp"
#include "engine/quic/packet_number_space.hpp"
#include "engine/quic/sent_packets.hpp"

namespace cf::quic {

enum class EcnState : std::uint8_t { testing, unknown, capable, failed };

class EcnValidator {
public:
    static constexpr std::uint32_t kTestingPackets = 10;

    EcnState state() const noexcept { return state_; }
    // The codepoint the next packet should carry.
    EcnCodepoint next_codepoint() const noexcept {
        return state_ == EcnState::capable || state_ == EcnState::testing ? EcnCodepoint::ect0 : EcnCodepoint::not_ect;
    }
    // Disables ECN (the path or socket cannot do it).
    void disable() noexcept { state_ = EcnState::failed; }

    void on_packet_sent(PacketNumberSpace space, EcnCodepoint codepoint) noexcept;
    // A marked packet was declared lost.
    void on_marked_packet_lost() noexcept;

    // One ACK frame that raised the largest acknowledged number. `counts` is nullptr for an ACK frame without them;
    // newly_ect0 / newly_ect1: newly acknowledged packets that were sent with those marks. Returns true if the
    // CE count rose on a path still considered usable (a congestion event is due).
    bool on_ack(PacketNumberSpace space, const EcnCounts* counts, std::uint64_t newly_ect0,
                std::uint64_t newly_ect1) noexcept;

    // The space's keys are gone: its counts are no longer reported.
    void discard_space(PacketNumberSpace space) noexcept { spaces_[space_index(space)] = {}; }

    const EcnCounts& reported(PacketNumberSpace space) const noexcept { return spaces_[space_index(space)].reported; }

private:
    struct Space {
        EcnCounts reported;
        std::uint64_t sent_ect0 = 0;
        std::uint64_t sent_ect1 = 0;
    };

    EcnState state_ = EcnState::testing;
    std::uint32_t testing_sent_ = 0;
    std::uint32_t testing_lost_ = 0;
    std::array<Space, kPacketNumberSpaceCount> spaces_{};
};

}  // namespace cf::quic
