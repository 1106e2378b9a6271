// One stream's receive side (RFC 9000 sections 2.2 and 4.5): STREAM or CRYPTO frame data arriving at any offset, in
// any order, duplicated or overlapping, reassembled into a bounded ring the caller preallocates, and handed to the
// application in order without another copy (peek gives up to two spans, the ring may wrap).
//
// Bounds. The ring holds `capacity` bytes from the read offset on, so data past read offset + capacity is a flow
// control violation: the connection never advertises a stream window larger than the ring. Received data beyond
// the contiguous part is kept as at most kMaxRanges separate ranges; a frame that would need one more is dropped
// and counted. QUIC acknowledges packets, not frames, so receive() says so and the connection must not
// acknowledge the packet that carried it: the peer then sends the data again.
//
// Final size (section 4.5): a FIN fixes it; a different one later, data past it, or a FIN below data already
// received is FINAL_SIZE_ERROR.
#pragma once

#include <cstddef>
#include <cstdint>

#include "engine/quic/range_set.hpp"
#include "engine/quic/transport_error.hpp"

namespace cf::quic {

class ReceiveBuffer {
public:
    static constexpr std::uint32_t kMaxRanges = 32;

    struct Spans {
        const std::uint8_t* first = nullptr;
        std::size_t first_size = 0;
        const std::uint8_t* second = nullptr;   // the ring's start, when the readable bytes wrap
        std::size_t second_size = 0;
        std::size_t size() const noexcept { return first_size + second_size; }
    };

    // Uses `memory` (`capacity` bytes, a power of two, at least 16; the caller keeps it alive). 0 or -EINVAL.
    int init(std::uint8_t* memory, std::uint32_t capacity) noexcept;

    // Data at [offset, offset + length), the last of the stream if `fin`. no_error, FINAL_SIZE_ERROR,
    // FLOW_CONTROL_ERROR (beyond the ring), or FRAME_ENCODING_ERROR (past 2^62 - 1). `stored` (if given) is false
    // when the frame was dropped because the ranges are full: the packet that carried it must not be acknowledged.
    TransportError receive(std::uint64_t offset, const std::uint8_t* data, std::size_t length, bool fin,
                           bool* stored = nullptr) noexcept;

    // The bytes readable in order from read_offset(), in place.
    Spans peek() const noexcept;
    std::size_t readable() const noexcept;
    // Frees the first `bytes` readable bytes (at most readable()).
    void consume(std::size_t bytes) noexcept;

    std::uint64_t read_offset() const noexcept { return read_offset_; }
    std::uint64_t highest_received() const noexcept { return highest_; }
    bool final_size_known() const noexcept { return final_known_; }
    std::uint64_t final_size() const noexcept { return final_size_; }
    // Every byte up to the final size was read.
    bool finished() const noexcept { return final_known_ && read_offset_ == final_size_; }
    std::uint32_t ranges() const noexcept { return received_.size(); }
    std::uint64_t dropped_frames() const noexcept { return dropped_; }

private:
    void copy_in(std::uint64_t offset, const std::uint8_t* data, std::size_t length) noexcept;

    std::uint8_t* ring_ = nullptr;
    std::uint32_t capacity_ = 0;
    std::uint64_t read_offset_ = 0;
    std::uint64_t highest_ = 0;       // the largest end of any data received
    std::uint64_t final_size_ = 0;
    bool final_known_ = false;
    RangeSet<kMaxRanges> received_;   // what arrived at or above read_offset_
    std::uint64_t dropped_ = 0;
};

}  // namespace cf::quic
