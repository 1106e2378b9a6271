// libFuzzer target for the QUIC transport parameters codec (engine/quic/transport_parameters.hpp). Built and run
// by run_fuzz.sh with clang++.
//
// The input's first byte picks the sender (bit 0: client, else server); the rest is a quic_transport_parameters
// extension, copied to end right before a PROT_NONE page. Oracles, any failure abort()s:
//   - whatever decodes re-encodes (no -EINVAL: decode and encode agree on what is valid) into no more bytes than
//     the input (encode leaves out defaults and unknown IDs and writes shortest varints), and that encoding
//     decodes to an equal struct and encodes to the same bytes again;
//   - a decoded set never holds a server-only parameter from a client, nor a value out of range;
//   - the section 7.3 check runs on every decoded set.

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "engine/quic/transport_parameters.hpp"
#include "tests/fuzz/guarded_buffer.hpp"

using namespace cf::quic;

namespace {

[[noreturn]] void fail(const char* what) {
    std::fprintf(stderr, "quic_transport_parameters_fuzz: %s\n", what);
    std::abort();
}

std::uint8_t encoded[65536];
std::uint8_t encoded_again[65536];

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* input, std::size_t size) {
    static cf::fuzz::GuardedBuffer guarded;
    if (size == 0) return 0;
    const EndpointRole sender = (input[0] & 1) != 0 ? EndpointRole::client : EndpointRole::server;
    ++input;
    --size;
    const std::uint8_t* data = input;
    if (size <= guarded.capacity) {
        std::uint8_t* copy = guarded.end - size;
        if (size != 0) std::memcpy(copy, input, size);
        data = copy;
    }

    TransportParameters decoded;
    const TransportError status = decode_transport_parameters(data, size, sender, decoded);
    if (status != TransportError::no_error) {
        if (status != TransportError::transport_parameter_error) fail("decode returned another error code");
        return 0;
    }
    if (sender == EndpointRole::client &&
        (decoded.original_destination_connection_id || decoded.stateless_reset_token || decoded.preferred_address ||
         decoded.retry_source_connection_id)) {
        fail("a server-only parameter accepted from a client");
    }
    if (decoded.max_udp_payload_size < 1200 || decoded.ack_delay_exponent > 20 || decoded.max_ack_delay_ms >= 16384 ||
        decoded.active_connection_id_limit < 2 || decoded.initial_max_streams_bidi > (std::uint64_t{1} << 60) ||
        decoded.initial_max_streams_uni > (std::uint64_t{1} << 60) ||
        (decoded.preferred_address && decoded.preferred_address->connection_id.empty())) {
        fail("a value out of range accepted");
    }
    const int written = encode_transport_parameters(decoded, sender, encoded, sizeof encoded);
    if (written < 0) fail("a decoded set does not encode");
    if (static_cast<std::size_t>(written) > size) fail("the encoding is longer than the input");
    TransportParameters again;
    if (decode_transport_parameters(encoded, static_cast<std::size_t>(written), sender, again) !=
            TransportError::no_error ||
        !(again == decoded)) {
        fail("the re-encoded set decodes to something else");
    }
    const int rewritten = encode_transport_parameters(again, sender, encoded_again, sizeof encoded_again);
    if (rewritten != written || std::memcmp(encoded, encoded_again, static_cast<std::size_t>(written)) != 0) {
        fail("encoding is not stable");
    }
    HandshakeConnectionIds seen;
    if (decoded.initial_source_connection_id) seen.peer_initial_scid = *decoded.initial_source_connection_id;
    const TransportError check = check_handshake_connection_ids(decoded, peer_of(sender), seen);
    if (check != TransportError::no_error && check != TransportError::transport_parameter_error) {
        fail("the section 7.3 check returned another error code");
    }
    return 0;
}
