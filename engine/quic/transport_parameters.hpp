// QUIC transport parameters (RFC 9000 sections 7.4, 18; RFC 9221 section 3 for max_datagram_frame_size).
//
// Each endpoint sends its parameters once, in the TLS quic_transport_parameters extension, as a sequence of
//   Transport Parameter { ID (varint), Length (varint), Value (Length bytes) }
// TransportParameters holds every parameter RFC 9000 section 18.2 defines plus max_datagram_frame_size (0x20),
// each with the RFC's default when absent. Integer values are varints that must fill their Length exactly.
//
// decode_transport_parameters() returns TransportError::no_error or TRANSPORT_PARAMETER_ERROR, the code RFC 9000
// requires for every rule broken here (sections 7.4 and 18.2):
//   - an ID, Length or Value running past the end of the extension;
//   - a known parameter sent twice (section 7.4; unknown IDs are not tracked, they are skipped however often);
//   - an integer value whose varint does not fill the Length exactly; disable_active_migration not empty;
//     stateless_reset_token not 16 bytes; a connection ID above 20 bytes; a preferred_address not exactly 41 bytes
//     plus its CID, or with a zero-length CID;
//   - values out of range: max_udp_payload_size < 1200, ack_delay_exponent > 20, max_ack_delay >= 2^14,
//     active_connection_id_limit < 2, initial_max_streams_bidi or _uni > 2^60;
//   - a server-only parameter (original_destination_connection_id, stateless_reset_token, preferred_address,
//     retry_source_connection_id) sent by a client.
// Unknown parameters, reserved ones (31 * N + 27) included, are ignored (section 18.1).
//
// encode_transport_parameters() writes the parameters in ID order, leaving out values equal to their default
// (absent and default mean the same); it refuses (-EINVAL) a set that decode would reject for the same sender, so
// whatever it writes decodes to an equal struct.
//
// check_handshake_connection_ids() is section 7.3: once the peer's parameters are authenticated, their CIDs must
// match what the packets of the handshake carried.
//
// Times (max_idle_timeout, max_ack_delay) stay in the RFC's milliseconds. No allocation: std::optional and fixed
// arrays.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>

#include "engine/quic/connection_id.hpp"
#include "engine/quic/endpoint_role.hpp"
#include "engine/quic/stream_id.hpp"
#include "engine/quic/transport_error.hpp"

namespace cf::quic {

enum class TransportParameterId : std::uint64_t {
    original_destination_connection_id = 0x00,
    max_idle_timeout = 0x01,
    stateless_reset_token = 0x02,
    max_udp_payload_size = 0x03,
    initial_max_data = 0x04,
    initial_max_stream_data_bidi_local = 0x05,
    initial_max_stream_data_bidi_remote = 0x06,
    initial_max_stream_data_uni = 0x07,
    initial_max_streams_bidi = 0x08,
    initial_max_streams_uni = 0x09,
    ack_delay_exponent = 0x0a,
    max_ack_delay = 0x0b,
    disable_active_migration = 0x0c,
    preferred_address = 0x0d,
    active_connection_id_limit = 0x0e,
    initial_source_connection_id = 0x0f,
    retry_source_connection_id = 0x10,
    max_datagram_frame_size = 0x20,   // RFC 9221
};

inline constexpr std::uint64_t kDefaultMaxUdpPayloadSize = 65527;
inline constexpr std::uint64_t kMinMaxUdpPayloadSize = 1200;
inline constexpr std::uint64_t kDefaultAckDelayExponent = 3;
inline constexpr std::uint64_t kMaxAckDelayExponent = 20;
inline constexpr std::uint64_t kDefaultMaxAckDelayMs = 25;
inline constexpr std::uint64_t kMaxAckDelayLimitMs = std::uint64_t{1} << 14;   // values must be below this
inline constexpr std::uint64_t kDefaultActiveConnectionIdLimit = 2;
// Bytes of a preferred_address value besides its connection ID.
inline constexpr std::size_t kPreferredAddressFixedSize = 4 + 2 + 16 + 2 + 1 + StatelessResetToken::kSize;

// True for the reserved IDs that exercise "ignore unknown parameters" (section 18.1).
constexpr bool is_reserved_transport_parameter(std::uint64_t id) noexcept { return id % 31 == 27; }

struct PreferredAddress {
    std::array<std::uint8_t, 4> ipv4_address{};   // all zero with port 0: no IPv4 address
    std::uint16_t ipv4_port = 0;
    std::array<std::uint8_t, 16> ipv6_address{};
    std::uint16_t ipv6_port = 0;
    ConnectionId connection_id;                    // 1..20 bytes
    StatelessResetToken stateless_reset_token;

    friend bool operator==(const PreferredAddress&, const PreferredAddress&) = default;
};

struct TransportParameters {
    std::optional<ConnectionId> original_destination_connection_id;   // server only
    std::uint64_t max_idle_timeout_ms = 0;                             // 0: no idle timeout
    std::optional<StatelessResetToken> stateless_reset_token;          // server only
    std::uint64_t max_udp_payload_size = kDefaultMaxUdpPayloadSize;
    std::uint64_t initial_max_data = 0;
    std::uint64_t initial_max_stream_data_bidi_local = 0;
    std::uint64_t initial_max_stream_data_bidi_remote = 0;
    std::uint64_t initial_max_stream_data_uni = 0;
    std::uint64_t initial_max_streams_bidi = 0;
    std::uint64_t initial_max_streams_uni = 0;
    std::uint64_t ack_delay_exponent = kDefaultAckDelayExponent;
    std::uint64_t max_ack_delay_ms = kDefaultMaxAckDelayMs;
    bool disable_active_migration = false;
    std::optional<PreferredAddress> preferred_address;                 // server only
    std::uint64_t active_connection_id_limit = kDefaultActiveConnectionIdLimit;
    std::optional<ConnectionId> initial_source_connection_id;          // both must send it (may be empty)
    std::optional<ConnectionId> retry_source_connection_id;            // server only, after a Retry
    std::uint64_t max_datagram_frame_size = 0;                         // RFC 9221: 0 = no DATAGRAM frames

    friend bool operator==(const TransportParameters&, const TransportParameters&) = default;
};

// Decodes the extension `sender` (the peer) sent into `out` (reset to defaults first). no_error or
// transport_parameter_error.
TransportError decode_transport_parameters(const std::uint8_t* data, std::size_t size, EndpointRole sender,
                                           TransportParameters& out) noexcept;

// The rules decode checks on values, on a struct: no_error or transport_parameter_error.
TransportError validate_transport_parameters(const TransportParameters& parameters, EndpointRole sender) noexcept;

inline constexpr std::uint64_t kNoReservedParameter = ~std::uint64_t{0};

// Writes `parameters` as `sender` sends them; with `reserved_id` (31 * N + 27) also an empty reserved parameter
// first, to keep peers honest about ignoring unknown IDs. Bytes written, or -EINVAL (a set decode would reject,
// or a reserved_id that is not reserved), -ENOBUFS.
int encode_transport_parameters(const TransportParameters& parameters, EndpointRole sender, std::uint8_t* out,
                                std::size_t capacity, std::uint64_t reserved_id = kNoReservedParameter) noexcept;

// What this endpoint saw and sent during the handshake, to check the peer's CID parameters against (section 7.3).
struct HandshakeConnectionIds {
    ConnectionId peer_initial_scid;   // SCID of the first Initial packet received from the peer
    // Client only:
    ConnectionId original_dcid;       // DCID of the client's first Initial packet
    bool retry_received = false;
    ConnectionId retry_scid;          // SCID of the Retry packet the client accepted
};

// Section 7.3, with the peer's authenticated parameters, at the endpoint `local_role`:
//   - initial_source_connection_id absent, or != peer_initial_scid;
//   - at a client: original_destination_connection_id absent or != original_dcid; retry_source_connection_id
//     present without a Retry, absent after one, or != retry_scid;
// each gives TRANSPORT_PARAMETER_ERROR (the RFC allows it or PROTOCOL_VIOLATION for mismatches; one code keeps the
// tests exact). A server-only parameter from a client is already refused by decode. Else no_error.
TransportError check_handshake_connection_ids(const TransportParameters& peer, EndpointRole local_role,
                                              const HandshakeConnectionIds& seen) noexcept;

}  // namespace cf::quic
