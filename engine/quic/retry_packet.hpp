// Retry packets (RFC 9000 section 17.2.5) and the pseudo-packet their integrity tag covers (RFC 9001 section 5.8).
//
// The tag is AEAD output over the Retry pseudo-packet: the client's original DCID (length byte, then the bytes)
// followed by the Retry packet without its tag. Computing and checking the tag is the packet protection code's
// job; this file lays the bytes out for it.
//
// Sending (server): write_retry_packet() writes the pseudo-packet prefix and the Retry packet into one buffer,
// leaving 16 bytes for the tag:
//   buffer: [ODCID length][ODCID][Retry packet header + token][tag: 16 bytes, left as zeros]
//            \___________ pseudo-packet: [0, tag_offset) ___________/
//                                 \______ packet to send: [packet_offset, size) ______/
// so the tag is computed over buffer[0, tag_offset) and written at tag_offset, with no copy.
// Receiving (client): parse_packet_header() gives the Retry view (token, retry_tag_offset);
// build_retry_pseudo_packet() copies the pseudo-packet into scratch space to check the tag against. The other
// section 17.2.5.2 rules (at most one Retry per connection attempt, none after a server packet was processed)
// are the connection's.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>

#include "engine/quic/connection_id.hpp"
#include "engine/quic/packet_header.hpp"

namespace cf::quic {

struct RetryFields {
    std::uint32_t version = kVersion1;
    ConnectionId original_dcid;   // the DCID of the client's first Initial (only in the pseudo-packet)
    ConnectionId dcid;            // the client's SCID
    ConnectionId scid;            // the CID the server picked: the client's next DCID
    std::span<const std::uint8_t> token;   // must not be empty
    std::uint8_t unused_bits = 0;          // the first byte's low 4 bits (any value; receivers ignore them)
};

struct RetryPacketLayout {
    std::size_t packet_offset = 0;   // the Retry packet starts here (after the ODCID prefix)
    std::size_t tag_offset = 0;      // the pseudo-packet is [0, tag_offset); the tag goes here
    std::size_t size = 0;            // tag_offset + 16: the packet is [packet_offset, size)
};

// 0, -EINVAL (empty token), -ENOBUFS.
int write_retry_packet(std::uint8_t* buffer, std::size_t capacity, const RetryFields& fields,
                       RetryPacketLayout& layout) noexcept;

// The pseudo-packet of a received Retry (`retry` from parse_packet_header()) for the client whose first Initial
// went to `original_dcid`: its size in `out`, or -EINVAL (not a Retry), -ENOBUFS.
int build_retry_pseudo_packet(const ConnectionId& original_dcid, const PacketHeader& retry, std::uint8_t* out,
                              std::size_t capacity) noexcept;

}  // namespace cf::quic
