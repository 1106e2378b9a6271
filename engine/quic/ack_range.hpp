// What an ACK frame says (RFC 9000 section 19.3), in the terms both the frame codec and loss recovery use: ranges of
// acknowledged packet numbers, and the ECN counts of type 0x03.
#pragma once

#include <cstdint>

namespace cf::quic {

// Packet numbers smallest..largest, both included.
struct AckRange {
    std::uint64_t smallest = 0;
    std::uint64_t largest = 0;
    friend bool operator==(const AckRange&, const AckRange&) noexcept = default;
};

// The three counts of an ACK frame of type 0x03 (section 19.3.2).
struct EcnCounts {
    std::uint64_t ect0 = 0;
    std::uint64_t ect1 = 0;
    std::uint64_t ce = 0;
    friend bool operator==(const EcnCounts&, const EcnCounts&) noexcept = default;
};

}  // namespace cf::quic
