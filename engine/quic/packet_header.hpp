// Reading QUIC packet headers out of a received UDP datagram (RFC 9000 sections 12.2, 17; RFC 8999 for the
// version-independent fields).
//
// What the parser reads is everything in front of packet protection. It reports where the (still protected)
// packet number starts (pn_offset) and where the packet ends; removing header protection, reading the packet
// number length and decrypting belong to the packet protection code (RFC 9001), which works on that view.
//
//   long header   first byte: 1 (form), fixed bit, 2-bit type, 4 type-specific bits; version (32); DCID length
//                 (8), DCID; SCID length (8), SCID; then by type:
//                   Initial     token length (varint), token, Length (varint), packet number, payload
//                   0-RTT       Length, packet number, payload
//                   Handshake   Length, packet number, payload
//                   Retry       retry token (everything up to the last 16 bytes), 16-byte integrity tag
//                 Version 0 is Version Negotiation: first byte 1 + 7 unused bits, then the CIDs (up to 255 bytes
//                 each) and a list of 32-bit versions filling the rest of the datagram.
//   short header  first byte: 0 (form), fixed bit, spin, 2 reserved, key phase, 2-bit packet number length; DCID
//                 (its length is not on the wire: the receiver's own CID length, PacketParseOptions); packet
//                 number; payload to the end of the datagram.
//
// Length (Initial, 0-RTT, Handshake) counts the packet number and the payload, and bounds the packet, so several
// packets can share a datagram (section 12.2, coalescing). Retry, Version Negotiation and short header packets
// have no Length and take the rest of the datagram. PacketWalker walks a datagram's packets one by one.
//
// What is dropped, and why. Every check here fails with a HeaderStatus and the caller drops the packet without a
// word to the peer (section 5.2: packets that cannot be attributed to, or processed in, a connection are
// discarded; a forged or corrupted header must not be able to close a connection). Nothing the parser sees is a
// connection error. Since a bad Length makes everything behind it unreadable, the rest of the datagram goes with
// the packet: when the first packet fails, the whole datagram is dropped (and a server may still answer
// unsupported_version with Version Negotiation, section 6.1). Each check runs when its field is read, in wire
// order; a field that runs past the end of the datagram (or an empty rest of datagram) is `truncated`:
//   unsupported_version         a long header with a version other than 1 or 0: only version, DCID and SCID are
//                               filled (CIDs up to 255 bytes, RFC 8999); a server may answer with Version
//                               Negotiation (section 6), a client drops it
//   fixed_bit_zero              the fixed bit (0x40) is 0 (sections 17.2, 17.3.1), unless the peer sent
//                               grease_quic_bit (RFC 9287, PacketParseOptions::fixed_bit_may_be_zero); not
//                               checked in Version Negotiation, where the bit is unused
//   unexpected_packet_type      a type this role never receives: Version Negotiation or Retry at a server, 0-RTT
//                               at a client
//   connection_id_too_long      a version 1 DCID or SCID longer than 20 bytes (section 17.2)
//   empty_retry_token           a Retry without a token (section 17.2.5)
//   token_from_server           a client got an Initial with a token (section 17.2.2: discard, or error; we discard)
//   length_past_datagram        Length runs past the end of the datagram (section 12.2)
//   too_short_to_unprotect      fewer than 4 + 16 bytes from the packet number on: no header protection sample
//                               (RFC 9001 section 5.4.2)
//   malformed_version_negotiation  no version listed, or the list is not whole 32-bit versions
// and in PacketWalker, for the datagram as a whole:
//   initial_datagram_too_small  a server got an Initial in a datagram under 1200 bytes (section 14.1)
//   different_connection_id     a later packet's DCID is not the first packet's (section 12.2: receivers SHOULD
//                               ignore such packets)
// After header protection is removed, the reserved bits must be 0: check_reserved_bits() gives the one header
// rule that IS a connection error (PROTOCOL_VIOLATION, sections 17.2 and 17.3.1), because only then is the header
// authenticated.
//
// The view points into the caller's datagram (no copy, no allocation) and is valid as long as the datagram is.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>

#include "engine/quic/endpoint_role.hpp"
#include "engine/quic/transport_error.hpp"

namespace cf::quic {

inline constexpr std::uint32_t kVersion1 = 0x00000001;
inline constexpr std::uint32_t kVersionNegotiationVersion = 0;

inline constexpr std::uint8_t kHeaderFormLong = 0x80;
inline constexpr std::uint8_t kFixedBit = 0x40;
inline constexpr std::uint8_t kLongReservedBits = 0x0c;
inline constexpr std::uint8_t kShortReservedBits = 0x18;
inline constexpr std::uint8_t kShortSpinBit = 0x20;
inline constexpr std::uint8_t kShortKeyPhaseBit = 0x04;
inline constexpr std::uint8_t kPacketNumberLengthBits = 0x03;

// The smallest datagram that may carry a client's Initial (and a server's ack-eliciting Initial), section 14.1.
inline constexpr std::size_t kMinInitialDatagramSize = 1200;
inline constexpr std::size_t kRetryIntegrityTagSize = 16;
// Header protection samples 16 bytes starting 4 bytes after the packet number's start (RFC 9001 section 5.4.2):
// every packet with a packet number holds at least this many bytes from pn_offset on.
inline constexpr std::size_t kMinBytesFromPacketNumber = 4 + 16;

enum class PacketType : std::uint8_t {
    initial,
    zero_rtt,
    handshake,
    retry,
    version_negotiation,
    one_rtt,   // short header
};

enum class HeaderStatus : std::uint8_t {
    ok,
    truncated,
    unsupported_version,
    connection_id_too_long,
    fixed_bit_zero,
    unexpected_packet_type,
    token_from_server,
    empty_retry_token,
    malformed_version_negotiation,
    length_past_datagram,
    too_short_to_unprotect,
    initial_datagram_too_small,
    different_connection_id,
};

const char* packet_type_name(PacketType type) noexcept;
const char* header_status_name(HeaderStatus status) noexcept;

struct PacketParseOptions {
    EndpointRole receiver = EndpointRole::server;
    // Length of the connection IDs this endpoint issued: a short header's DCID is one of them (0..20; above 20,
    // every short header is dropped as truncated).
    std::size_t short_header_dcid_length = 0;
    // The peer sent the grease_quic_bit transport parameter (RFC 9287): it may clear the fixed bit.
    bool fixed_bit_may_be_zero = false;
};

// One packet's header. Offsets count from `packet`.
struct PacketHeader {
    PacketType type = PacketType::initial;
    std::uint8_t first_byte = 0;        // as received: its low bits are still header-protected
    std::uint32_t version = 0;          // 0 for short headers (none on the wire) and Version Negotiation
    std::span<const std::uint8_t> dcid;
    std::span<const std::uint8_t> scid;  // empty for short headers
    std::span<const std::uint8_t> token;  // Initial: the address validation token; Retry: the retry token
    const std::uint8_t* packet = nullptr;
    std::size_t size = 0;               // the packet is [packet, packet + size)
    // Initial, 0-RTT, Handshake, 1-RTT: where the protected packet number starts; packet + size - pn_offset >=
    // kMinBytesFromPacketNumber. 0 for the other types.
    std::size_t pn_offset = 0;
    // Retry: where the 16-byte integrity tag starts (it ends the packet).
    std::size_t retry_tag_offset = 0;
    // Version Negotiation: the supported versions, 4 bytes each, network order.
    const std::uint8_t* supported_versions = nullptr;
    std::size_t supported_version_count = 0;

    const std::uint8_t* end() const noexcept { return packet + size; }
    bool is_long() const noexcept { return type != PacketType::one_rtt; }
    bool has_packet_number() const noexcept {
        return type != PacketType::retry && type != PacketType::version_negotiation;
    }
    std::uint32_t supported_version(std::size_t index) const noexcept;
};

// Parses the packet at the start of [data, data + size) (what is left of a datagram). Fills `out` on ok; on
// unsupported_version fills version, dcid, scid, packet and size (the rest of the datagram); otherwise `out` is
// unspecified.
HeaderStatus parse_packet_header(const std::uint8_t* data, std::size_t size, const PacketParseOptions& options,
                                 PacketHeader& out) noexcept;

// The packets of one datagram, in order (section 12.2).
//   PacketWalker walker(datagram, size, options);
//   PacketHeader header;
//   while (walker.next(header)) { ... unprotect and process header ... }
//   if (walker.status() != HeaderStatus::ok) { ... the rest (everything, if walker.packets() == 0) dropped ... }
class PacketWalker {
public:
    PacketWalker(const std::uint8_t* datagram, std::size_t size, const PacketParseOptions& options) noexcept
        : datagram_(datagram), size_(size), options_(options) {}

    // True: `out` is the next packet. False: no more packets; status() is ok if the datagram ended right after
    // the last one, else why the rest was dropped. Once false, stays false.
    bool next(PacketHeader& out) noexcept;

    HeaderStatus status() const noexcept { return status_; }
    std::size_t packets() const noexcept { return packets_; }
    std::size_t offset() const noexcept { return offset_; }   // bytes of the datagram walked so far

private:
    const std::uint8_t* datagram_;
    std::size_t size_;
    PacketParseOptions options_;
    std::size_t offset_ = 0;
    std::size_t packets_ = 0;
    std::span<const std::uint8_t> first_dcid_;
    HeaderStatus status_ = HeaderStatus::ok;
    bool done_ = false;
};

// After header protection is removed (unprotected first byte):
constexpr bool is_long_header(std::uint8_t first_byte) noexcept { return (first_byte & kHeaderFormLong) != 0; }
constexpr std::size_t packet_number_length_of(std::uint8_t unprotected_first_byte) noexcept {
    return static_cast<std::size_t>(unprotected_first_byte & kPacketNumberLengthBits) + 1;
}
constexpr bool key_phase_of(std::uint8_t unprotected_first_byte) noexcept {
    return (unprotected_first_byte & kShortKeyPhaseBit) != 0;
}
// Reserved bits set in a packet that then decrypts: PROTOCOL_VIOLATION (sections 17.2 and 17.3.1).
constexpr TransportError check_reserved_bits(std::uint8_t unprotected_first_byte) noexcept {
    const std::uint8_t reserved = is_long_header(unprotected_first_byte) ? kLongReservedBits : kShortReservedBits;
    return (unprotected_first_byte & reserved) != 0 ? TransportError::protocol_violation : TransportError::no_error;
}

}  // namespace cf::quic
