// One stream's send side (RFC 9000 sections 2.2, 3.1 and 13.3): bytes the application wrote, kept in a bounded ring
// the caller preallocates until the peer acknowledged them, so lost ones can be sent again.
//
//   acked prefix      sent offset       write offset
//   |  in flight or lost  |  not sent yet  |  free room  ...
//   ^ ring space is freed when the prefix below it is acknowledged
//
// next_chunk() picks what to send: lost bytes first (in order), then new bytes; the caller puts them in a STREAM
// frame (data in place, up to two spans) and reports on_sent(). When a packet is acknowledged or declared lost
// (loss detection), the connection reports each STREAM frame it carried with on_acked() / on_lost(). Lost data
// already acknowledged by another copy is not sent again. Ranges are bounded: when the lost set is full, everything
// from its first loss to the sent offset is marked lost (more is sent again than needed, nothing is missed); when
// the acknowledged set is full, an acknowledgement above the prefix is forgotten (its bytes may be sent again).
//
// No allocation; one connection's thread.
#pragma once

#include <cstddef>
#include <cstdint>

#include "engine/quic/range_set.hpp"

namespace cf::quic {

class SendBuffer {
public:
    static constexpr std::uint32_t kMaxRanges = 32;

    struct Chunk {
        std::uint64_t offset = 0;
        std::size_t length = 0;
        bool fin = false;                       // the frame ends the stream
        bool retransmission = false;            // lost bytes again (flow control counts only new bytes)
        const std::uint8_t* first = nullptr;    // the bytes, in place: first_size from `first`, then the rest
        std::size_t first_size = 0;             //   from the ring's start
        const std::uint8_t* second = nullptr;
    };

    // Uses `memory` (`capacity` bytes, a power of two, at least 16). 0 or -EINVAL.
    int init(std::uint8_t* memory, std::uint32_t capacity) noexcept;

    // Copies up to `length` bytes in (as many as there is room for) and returns how many. 0 after finish().
    std::size_t write(const void* data, std::size_t length) noexcept;
    std::size_t room() const noexcept { return capacity_ - static_cast<std::size_t>(write_offset_ - acked_prefix_); }
    // No more writes: the stream ends at write_offset(). The FIN goes with the last bytes (or alone).
    void finish() noexcept { finished_ = true; }

    // What to send next, at most `max_length` bytes (the frame's room), and of new data at most `new_allowed`
    // (flow control). False if there is nothing to send.
    bool next_chunk(std::size_t max_length, std::uint64_t new_allowed, Chunk& out) const noexcept;
    void on_sent(const Chunk& chunk) noexcept;
    void on_acked(std::uint64_t offset, std::size_t length, bool fin) noexcept;
    void on_lost(std::uint64_t offset, std::size_t length, bool fin) noexcept;

    std::uint64_t write_offset() const noexcept { return write_offset_; }
    std::uint64_t sent_offset() const noexcept { return sent_offset_; }
    std::uint64_t acked_prefix() const noexcept { return acked_prefix_; }
    bool has_lost() const noexcept { return !lost_.empty() || fin_lost_; }
    // Every byte and the FIN acknowledged: the send side is done (RFC 9000 "Data Recvd").
    bool all_acked() const noexcept { return finished_ && fin_acked_ && acked_prefix_ == write_offset_; }

private:
    void span(std::uint64_t offset, std::size_t length, Chunk& out) const noexcept;
    void advance_prefix() noexcept;

    std::uint8_t* ring_ = nullptr;
    std::uint32_t capacity_ = 0;
    std::uint64_t write_offset_ = 0;
    std::uint64_t sent_offset_ = 0;
    std::uint64_t acked_prefix_ = 0;
    RangeSet<kMaxRanges> acked_;   // acknowledged above the prefix
    RangeSet<kMaxRanges> lost_;    // to send again, not acknowledged
    bool finished_ = false;
    bool fin_sent_ = false;
    bool fin_acked_ = false;
    bool fin_lost_ = false;
};

}  // namespace cf::quic
