// The three packet number spaces of a QUIC connection (RFC 9000 section 12.3). Each has its own packet numbers,
// acknowledgments and loss recovery state; 0-RTT and 1-RTT packets share the application space.
#pragma once

#include <cstddef>
#include <cstdint>

namespace cf::quic {

enum class PacketNumberSpace : std::uint8_t { initial = 0, handshake = 1, application = 2 };

inline constexpr std::size_t kPacketNumberSpaceCount = 3;

constexpr std::size_t space_index(PacketNumberSpace space) noexcept { return static_cast<std::size_t>(space); }

}  // namespace cf::quic
