#include "engine/quic/version_negotiation.hpp"

#include <cerrno>

namespace cf::quic {

int write_version_negotiation(ByteWriter& writer, std::uint8_t unused_bits, std::span<const std::uint8_t> dcid,
                              std::span<const std::uint8_t> scid, std::span<const std::uint32_t> versions) noexcept {
    if (dcid.size() > 255 || scid.size() > 255 || versions.empty()) return -EINVAL;
    writer.u8(static_cast<std::uint8_t>(kHeaderFormLong | kFixedBit | (unused_bits & 0x7f)));
    writer.u32(kVersionNegotiationVersion);
    writer.u8(static_cast<std::uint8_t>(dcid.size()));
    writer.bytes(dcid.data(), dcid.size());
    writer.u8(static_cast<std::uint8_t>(scid.size()));
    writer.bytes(scid.data(), scid.size());
    for (const std::uint32_t version : versions) writer.u32(version);
    return writer.failed() ? -ENOBUFS : 0;
}

VersionNegotiationVerdict client_version_negotiation_verdict(const PacketHeader& packet, std::uint32_t chosen_version,
                                                             const ConnectionId& sent_dcid,
                                                             const ConnectionId& sent_scid,
                                                             bool processed_another_packet) noexcept {
    if (processed_another_packet || packet.type != PacketType::version_negotiation) {
        return VersionNegotiationVerdict::ignore;
    }
    if (!equals(sent_scid, packet.dcid) || !equals(sent_dcid, packet.scid)) return VersionNegotiationVerdict::ignore;
    for (std::size_t i = 0; i < packet.supported_version_count; ++i) {
        if (packet.supported_version(i) == chosen_version) return VersionNegotiationVerdict::ignore;
    }
    return VersionNegotiationVerdict::abandon;
}

}  // namespace cf::quic
