// The wire frame: how topic messages (and the bridge's control messages) travel between hosts in UDP datagrams.
//
// Format (version 1). All integers little-endian, whatever the host's byte order. A frame is a 40-byte header,
// the payload, then zero padding up to a multiple of 8 bytes (so every header in a datagram is 8-byte aligned
// relative to the datagram's start). A datagram is one or more frames back to back and ends exactly at the end of
// a frame's padding.
//
//   offset size field
//        0    2 magic 0xC7F1
//        2    1 version, 1
//        3    1 flags: bit 0 kFrameControl (payload is a bridge control message, not topic data); others must be 0
//        4    4 topic id
//        8    8 sequence (the sender's topic sequence)
//       16    8 HLC word (HlcStamp::word)
//       24    2 HLC node (HlcStamp::node)
//       26    2 reserved, must be 0
//       28    4 payload length in bytes
//       32    4 session: the sender's bridge session id (a restarted sender uses a new one)
//       36    4 CRC-32C (compute::crc32c) over header bytes [0, 36) followed by the payload; not the padding
//
// Receiving. DatagramReader checks each frame in this order and rejects it for the first check that fails:
//   1. fewer than 40 bytes left (also: an empty datagram, or 1..39 bytes after the last good frame)  truncated
//   2. magic                                                                                        bad_magic
//   3. version                                                                                      bad_version
//   4. flag bits other than kFrameControl                                                           bad_flags
//   5. reserved field not 0                                                                         bad_reserved
//   6. payload length above the reader's max_payload                                                oversized
//   7. header + payload + padding longer than what is left of the datagram                          truncated
//   8. CRC-32C                                                                                      corrupt
//   9. padding bytes not 0                                                                          bad_padding
// Fixed-field checks come first because they are cheap and say the most about what arrived (another protocol,
// another version); the length is bounded before it is used; the CRC runs only over bytes that are there.
// The first bad frame ends the walk: once a length may be wrong, nothing behind it can be trusted, so the rest of
// the datagram is dropped with it.
#pragma once

#include <cstddef>
#include <cstdint>

#include "engine/time/hlc.hpp"

namespace cf::wire {

inline constexpr std::uint16_t kFrameMagic = 0xC7F1;
inline constexpr std::uint8_t kFrameVersion = 1;
inline constexpr std::uint32_t kFrameHeaderBytes = 40;
inline constexpr std::uint32_t kFrameAlignment = 8;

inline constexpr std::uint8_t kFrameControl = 0x01;
inline constexpr std::uint8_t kFrameKnownFlags = kFrameControl;

// The largest UDP payload over IPv4 (65535 - 20-byte IP header - 8-byte UDP header); IPv6 allows 20 bytes more.
inline constexpr std::uint32_t kMaxUdpPayloadBytes = 65507;
// The largest payload whose frame (header + payload + padding) still fits one UDP datagram over IPv4 or IPv6.
inline constexpr std::uint32_t kMaxPayloadBytes = (kMaxUdpPayloadBytes & ~(kFrameAlignment - 1)) - kFrameHeaderBytes;

// Bytes a frame with `payload_length` payload bytes takes: header + payload + padding. 64-bit, so any 32-bit
// length (even a hostile one read off the wire) gives the right answer.
constexpr std::uint64_t frame_bytes(std::uint32_t payload_length) noexcept {
    return (std::uint64_t{kFrameHeaderBytes} + payload_length + (kFrameAlignment - 1)) &
           ~std::uint64_t{kFrameAlignment - 1};
}
static_assert(frame_bytes(kMaxPayloadBytes) <= kMaxUdpPayloadBytes);
static_assert(frame_bytes(kMaxPayloadBytes + 1) > kMaxUdpPayloadBytes);

// What a frame's header says besides its length, magic and version.
struct FrameFields {
    std::uint32_t topic_id = 0;
    std::uint64_t sequence = 0;
    HlcStamp stamp;
    std::uint32_t session = 0;
    std::uint8_t flags = 0;      // kFrameControl or 0

    friend constexpr bool operator==(const FrameFields&, const FrameFields&) noexcept = default;
};

// Appends frames to a datagram being built in a caller's buffer (e.g. a drivers::PacketBuffer). No allocation;
// the buffer needs no alignment. Not thread-safe (one writer per buffer).
class DatagramWriter {
public:
    DatagramWriter(std::byte* buffer, std::size_t capacity) noexcept : buffer_(buffer), capacity_(capacity) {}

    // Appends one frame carrying a copy of `payload` (`length` bytes; may be null when 0). Returns the bytes the
    // frame took (frame_bytes(length)), or
    //   -ENOSPC  it does not fit in what is left of the buffer: nothing is written, size() is unchanged. No message:
    //            this is the ordinary "datagram full, send it and start the next" signal on the send path.
    //   -EINVAL  length > kMaxPayloadBytes, flag bits other than kFrameControl, null payload with a length, or a
    //            frame opened with begin_frame() still open; with a message.
    int append(const FrameFields& fields, const void* payload, std::uint32_t length) noexcept;

    // Zero-copy variant: reserves a frame for `length` payload bytes and returns where the caller writes them
    // (the header and padding are already written); end_frame() then seals it (computes the CRC) and adds it to
    // size(). nullptr when it does not fit (no message, nothing written) or on the -EINVAL cases of append()
    // (with a message). Until end_frame(), size() and frames() leave the open frame out.
    std::byte* begin_frame(const FrameFields& fields, std::uint32_t length) noexcept;
    void end_frame() noexcept;   // no-op when no frame is open

    std::size_t size() const noexcept { return size_; }          // bytes of sealed frames: the datagram to send
    std::uint32_t frames() const noexcept { return frames_; }
    std::size_t capacity() const noexcept { return capacity_; }
    const std::byte* data() const noexcept { return buffer_; }

    // Starts a new datagram in the same buffer (drops an open frame).
    void reset() noexcept {
        size_ = 0;
        frames_ = 0;
        open_ = false;
    }

private:
    int check(const FrameFields& fields, std::uint32_t length) const noexcept;
    std::byte* open(const FrameFields& fields, std::uint32_t length) noexcept;

    std::byte* buffer_;
    std::size_t capacity_;
    std::size_t size_ = 0;
    std::uint32_t frames_ = 0;
    std::uint32_t open_length_ = 0;
    bool open_ = false;
};

// Why a received frame was rejected. The order of the checks is in the comment at the top of this file.
enum class FrameReject : std::uint8_t {
    truncated,
    oversized,
    bad_magic,
    bad_version,
    bad_flags,
    bad_reserved,
    bad_padding,
    corrupt,       // CRC-32C mismatch
};
inline constexpr std::size_t kRejectKinds = 8;

// "truncated", "bad_magic", ... ("unknown" for a value outside the enum).
const char* frame_reject_name(FrameReject reason) noexcept;

// Receive-path counters, owned by the caller (one set per receiving thread) and only ever incremented.
struct WireCounters {
    std::uint64_t datagrams = 0;            // datagrams walked (one per DatagramReader constructed)
    std::uint64_t frames = 0;               // good frames handed out, including those before a bad frame
    std::uint64_t rejected_datagrams = 0;   // datagrams whose walk ended at a bad frame
    std::uint64_t rejected[kRejectKinds] = {};   // the same, by reason (index: FrameReject)

    std::uint64_t rejected_for(FrameReject reason) const noexcept {
        return rejected[static_cast<std::size_t>(reason)];
    }
};

// One good frame, read in place: `payload` points into the datagram and is valid as long as the datagram is.
struct DecodedFrame {
    FrameFields fields;
    const std::byte* payload = nullptr;
    std::uint32_t length = 0;
};

// Walks one received datagram frame by frame. Never reads outside [data, data + size); no alignment needed.
// No allocation and no message per rejected frame, only counters: this is the receive path, and a flood of
// garbage must not cost more than counting it.
class DatagramReader {
public:
    // Counts the datagram in `counters`. Frames whose payload is longer than `max_payload` (clamped to
    // kMaxPayloadBytes) are rejected as oversized.
    DatagramReader(const std::byte* data, std::size_t size, std::uint32_t max_payload,
                   WireCounters& counters) noexcept;

    // 1 with the next frame in `out`; 0 at the clean end of the datagram (and from then on); -EBADMSG at the
    // first bad frame (and from then on, counted once), with the reason in last_reject(). `out` is untouched
    // unless 1 is returned.
    int next(DecodedFrame& out) noexcept;

    // The reason of the rejection; meaningful only once next() returned -EBADMSG.
    FrameReject last_reject() const noexcept { return last_reject_; }
    // Where the next frame starts (after a rejection: where the bad frame starts).
    std::size_t offset() const noexcept { return offset_; }

private:
    enum class State : std::uint8_t { walking, done, rejected };
    int reject(FrameReject reason) noexcept;

    const std::byte* data_;
    std::size_t size_;
    std::size_t offset_ = 0;
    WireCounters& counters_;
    std::uint32_t max_payload_;
    State state_ = State::walking;
    FrameReject last_reject_ = FrameReject::truncated;
};

}  // namespace cf::wire
