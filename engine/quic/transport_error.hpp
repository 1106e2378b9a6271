// QUIC transport error codes (RFC 9000 section 20.1): what a CONNECTION_CLOSE frame of type 0x1c carries, and what
// every QUIC codec and state machine here returns when the peer broke a rule. A TLS alert A maps to
// crypto_error(A) = 0x0100 + A.
#pragma once

#include <cstdint>

namespace cf::quic {

enum class TransportError : std::uint64_t {
    no_error = 0x00,
    internal_error = 0x01,
    connection_refused = 0x02,
    flow_control_error = 0x03,
    stream_limit_error = 0x04,
    stream_state_error = 0x05,
    final_size_error = 0x06,
    frame_encoding_error = 0x07,
    transport_parameter_error = 0x08,
    connection_id_limit_error = 0x09,
    protocol_violation = 0x0a,
    invalid_token = 0x0b,
    application_error = 0x0c,
    crypto_buffer_exceeded = 0x0d,
    key_update_error = 0x0e,
    aead_limit_reached = 0x0f,
    no_viable_path = 0x10,
};

inline constexpr std::uint64_t kCryptoErrorBase = 0x0100;
constexpr std::uint64_t crypto_error(std::uint8_t tls_alert) noexcept { return kCryptoErrorBase + tls_alert; }
constexpr std::uint64_t code_of(TransportError error) noexcept { return static_cast<std::uint64_t>(error); }

// The RFC's name ("FRAME_ENCODING_ERROR", "CRYPTO_ERROR" for 0x0100-0x01ff), or "unknown" for other codes.
const char* transport_error_name(std::uint64_t code) noexcept;

}  // namespace cf::quic
