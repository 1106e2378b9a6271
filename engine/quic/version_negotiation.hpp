// Version Negotiation (RFC 9000 sections 5.2.2, 6 and 17.2.1; RFC 8999 section 6).
//
// A server that gets a long header of a version it does not speak answers (if the datagram could have started a
// connection: 1200 bytes or more) with a Version Negotiation packet: version 0, the client's CIDs echoed (the
// client's SCID as DCID and the client's DCID as SCID, up to 255 bytes each since the client's version may allow
// longer ones), and the versions the server supports. Receiving one: parse_packet_header() gives the view
// (PacketType::version_negotiation); client_version_negotiation_verdict() applies section 6.2.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>

#include "engine/quic/connection_id.hpp"
#include "engine/quic/packet_header.hpp"
#include "engine/quic/varint.hpp"

namespace cf::quic {

// Section 5.2.2: answer only datagrams big enough to open a connection; smaller ones are dropped.
constexpr bool should_send_version_negotiation(std::size_t datagram_size) noexcept {
    return datagram_size >= kMinInitialDatagramSize;
}

// Writes a Version Negotiation packet. `unused_bits`: the first byte's low 7 bits, which should be unpredictable;
// 0x40 is always set so the packet looks like it has a fixed bit (section 17.2.1). 0, -EINVAL (a CID above 255
// bytes, no version), -ENOBUFS.
int write_version_negotiation(ByteWriter& writer, std::uint8_t unused_bits, std::span<const std::uint8_t> dcid,
                              std::span<const std::uint8_t> scid, std::span<const std::uint32_t> versions) noexcept;

enum class VersionNegotiationVerdict : std::uint8_t {
    ignore,    // discard the packet, go on with the connection attempt
    abandon,   // none of the listed versions is ours: give up the connection attempt
};

// Section 6.2 for a client speaking only `chosen_version`: ignore the packet if any packet of the connection
// was already processed, if it lists chosen_version (the server does speak it: a forged or stale packet), or if
// it does not echo the CIDs of our Initial (sent_dcid / sent_scid, section 17.2.1); else abandon.
VersionNegotiationVerdict client_version_negotiation_verdict(const PacketHeader& packet, std::uint32_t chosen_version,
                                                             const ConnectionId& sent_dcid,
                                                             const ConnectionId& sent_scid,
                                                             bool processed_another_packet) noexcept;

}  // namespace cf::quic
