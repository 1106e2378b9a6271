// Writing QUIC packet headers (RFC 9000 sections 17.2 and 17.3.1) and sizing datagrams (section 14.1).
//
// A long header's Length counts what follows it (packet number, payload, AEAD tag), which is not known when the
// header is written. write_long_header() therefore writes Length as a 2-byte varint placeholder (room for packets
// up to 16383 bytes past the Length field, far above any UDP path here) and returns where it is;
// patch_long_header_length() fills it once the packet's protected size is known, before protection (the header is
// the AEAD's associated data). The first byte is written unprotected: reserved bits 0, fixed bit set, the packet
// number length in the low two bits; header protection is applied later by the packet protection code.
//
//   ByteWriter writer(datagram, capacity);
//   LongHeaderLayout layout;
//   write_long_header(writer, {.type = PacketType::initial, .dcid = ..., .scid = ..., .packet_number = pn,
//                              .packet_number_length = packet_number_length(pn, largest_acked)}, layout);
//   ... frames; for a client's Initial, PADDING up to initial_datagram_padding(...) ...
//   patch_long_header_length(datagram, layout, writer.size() + aead_tag_size);
//
// Status returns: 0, -EINVAL (a field the format cannot carry: nothing is written), -ENOBUFS (the buffer is too
// small: the ByteWriter is then failed()). No allocation.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>

#include "engine/quic/connection_id.hpp"
#include "engine/quic/endpoint_role.hpp"
#include "engine/quic/packet_header.hpp"
#include "engine/quic/varint.hpp"

namespace cf::quic {

// Largest Length the 2-byte placeholder holds.
inline constexpr std::size_t kMaxPatchableLength = (std::size_t{1} << 14) - 1;

struct LongHeaderFields {
    PacketType type = PacketType::initial;   // initial, zero_rtt or handshake
    std::uint32_t version = kVersion1;
    ConnectionId dcid;
    ConnectionId scid;
    std::span<const std::uint8_t> token;      // Initial only: a client's token from Retry or NEW_TOKEN
    std::uint64_t packet_number = 0;          // the full number: its low packet_number_length bytes are written
    std::size_t packet_number_length = 4;     // 1..4, see packet_number_length()
};

// Offsets in the ByteWriter's buffer.
struct LongHeaderLayout {
    std::size_t start = 0;                    // the first byte
    std::size_t length_offset = 0;            // the 2-byte Length placeholder
    std::size_t pn_offset = 0;                // the packet number
    std::size_t packet_number_length = 0;
};

int write_long_header(ByteWriter& writer, const LongHeaderFields& fields, LongHeaderLayout& layout) noexcept;

// Sets Length to packet_end - pn_offset (`buffer` is the ByteWriter's buffer; packet_end the offset where the
// protected packet ends, AEAD tag included). -EINVAL if that is shorter than the packet number or longer than
// kMaxPatchableLength.
int patch_long_header_length(std::uint8_t* buffer, const LongHeaderLayout& layout, std::size_t packet_end) noexcept;

struct ShortHeaderFields {
    ConnectionId dcid;
    std::uint64_t packet_number = 0;
    std::size_t packet_number_length = 4;     // 1..4
    bool spin_bit = false;
    bool key_phase = false;
};

// Writes the 1-RTT header; `pn_offset` is where the packet number went in the ByteWriter's buffer.
int write_short_header(ByteWriter& writer, const ShortHeaderFields& fields, std::size_t& pn_offset) noexcept;

// Section 14.1: a client expands every datagram carrying an Initial packet to at least 1200 bytes, a server every
// datagram carrying an ack-eliciting Initial packet (a server's datagram with only ACKs in its Initial need not be).
constexpr bool datagram_needs_expanding(EndpointRole sender, bool carries_initial,
                                        bool initial_is_ack_eliciting) noexcept {
    return carries_initial && (sender == EndpointRole::client || initial_is_ack_eliciting);
}

// Bytes to add to a datagram that would be `datagram_size` bytes once protected (every packet's AEAD tag
// counted) to reach 1200. Add them inside the last packet, as PADDING frames (zero bytes) before protection, so
// they count in its Length; or coalesce another packet.
constexpr std::size_t initial_datagram_padding(std::size_t datagram_size) noexcept {
    return datagram_size < kMinInitialDatagramSize ? kMinInitialDatagramSize - datagram_size : 0;
}

}  // namespace cf::quic
