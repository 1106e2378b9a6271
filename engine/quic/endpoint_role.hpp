// Which end of a QUIC connection a piece of code speaks for. Several RFC 9000 rules depend on it: only a server
// sends Retry and the server-only transport parameters, only a client receives Version Negotiation, a server drops
// Initial packets in datagrams under 1200 bytes.
#pragma once

#include <cstdint>

namespace cf::quic {

enum class EndpointRole : std::uint8_t { client, server };

constexpr EndpointRole peer_of(EndpointRole role) noexcept {
    return role == EndpointRole::client ? EndpointRole::server : EndpointRole::client;
}

}  // namespace cf::quic
