// Stream IDs (RFC 9000 section 2.1): the two low bits say who opened the stream and whether it is bidirectional;
// the rest count streams of that type, so stream n of a type is id n * 4 + type. Stream IDs are never reused, and
// MAX_STREAMS limits the count of each type cumulatively (section 4.6).
#pragma once

#include <cstdint>

#include "engine/quic/endpoint_role.hpp"
#include "engine/quic/transport_error.hpp"
#include "engine/quic/varint.hpp"

namespace cf::quic {

using StreamId = std::uint64_t;
static_assert(static_cast<int>(EndpointRole::client) == 0 && static_cast<int>(EndpointRole::server) == 1,
              "a stream id's low bit is its initiator's role");

enum class StreamDirection : std::uint8_t { bidirectional = 0, unidirectional = 1 };

// The largest stream count MAX_STREAMS may announce: a higher one could not be encoded as a stream ID (section 4.6).
inline constexpr std::uint64_t kMaxStreamsLimit = std::uint64_t{1} << 60;

constexpr EndpointRole initiator_of(StreamId id) noexcept { return static_cast<EndpointRole>(id & 1); }
constexpr StreamDirection direction_of(StreamId id) noexcept { return static_cast<StreamDirection>((id >> 1) & 1); }
constexpr std::uint64_t index_of(StreamId id) noexcept { return id >> 2; }   // 0 for the first of its type
constexpr StreamId stream_id(EndpointRole initiator, StreamDirection direction, std::uint64_t index) noexcept {
    return index << 2 | std::uint64_t{static_cast<std::uint8_t>(direction)} << 1 |
           static_cast<std::uint8_t>(initiator);
}

// What an endpoint may do on a stream: `local` is the endpoint's own role.
constexpr bool locally_initiated(StreamId id, EndpointRole local) noexcept { return initiator_of(id) == local; }
constexpr bool can_send(StreamId id, EndpointRole local) noexcept {
    return direction_of(id) == StreamDirection::bidirectional || locally_initiated(id, local);
}
constexpr bool can_receive(StreamId id, EndpointRole local) noexcept {
    return direction_of(id) == StreamDirection::bidirectional || !locally_initiated(id, local);
}

}  // namespace cf::quic
