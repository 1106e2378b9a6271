#include "engine/wire/frame.hpp"

#include <cerrno>
#include <cstring>

#include "engine/compute/checksum.hpp"
#include "engine/wire/little_endian.hpp"
#include "platform/os/last_error.hpp"

namespace cf::wire {
namespace {

// Header field offsets (the table at the top of frame.hpp).
constexpr std::size_t kMagicAt = 0;
constexpr std::size_t kVersionAt = 2;
constexpr std::size_t kFlagsAt = 3;
constexpr std::size_t kTopicAt = 4;
constexpr std::size_t kSequenceAt = 8;
constexpr std::size_t kHlcWordAt = 16;
constexpr std::size_t kHlcNodeAt = 24;
constexpr std::size_t kReservedAt = 26;
constexpr std::size_t kLengthAt = 28;
constexpr std::size_t kSessionAt = 32;
constexpr std::size_t kCrcAt = 36;
static_assert(kCrcAt + 4 == kFrameHeaderBytes);

// Everything but the CRC.
void write_header(std::byte* out, const FrameFields& fields, std::uint32_t length) noexcept {
    store_le<std::uint16_t>(out + kMagicAt, kFrameMagic);
    out[kVersionAt] = std::byte{kFrameVersion};
    out[kFlagsAt] = std::byte{fields.flags};
    store_le<std::uint32_t>(out + kTopicAt, fields.topic_id);
    store_le<std::uint64_t>(out + kSequenceAt, fields.sequence);
    store_le<std::uint64_t>(out + kHlcWordAt, fields.stamp.word);
    store_le<std::uint16_t>(out + kHlcNodeAt, fields.stamp.node);
    store_le<std::uint16_t>(out + kReservedAt, 0);
    store_le<std::uint32_t>(out + kLengthAt, length);
    store_le<std::uint32_t>(out + kSessionAt, fields.session);
}

std::uint32_t frame_crc(const std::byte* frame, std::uint32_t length) noexcept {
    const std::uint32_t header_crc = compute::crc32c(0, frame, kCrcAt);
    return compute::crc32c(header_crc, frame + kFrameHeaderBytes, length);
}

}  // namespace

int DatagramWriter::check(const FrameFields& fields, std::uint32_t length) const noexcept {
    if (length > kMaxPayloadBytes) {
        return platform::fail(EINVAL, "frame payload of %u bytes exceeds the maximum of %u", length, kMaxPayloadBytes);
    }
    if ((fields.flags & ~kFrameKnownFlags) != 0) {
        return platform::fail(EINVAL, "unknown frame flag bits 0x%02x", static_cast<unsigned>(fields.flags));
    }
    if (open_) return platform::fail(EINVAL, "a frame opened with begin_frame() is still open");
    return 0;
}

// Writes header (without CRC) and padding of a frame that fits; returns its start.
std::byte* DatagramWriter::open(const FrameFields& fields, std::uint32_t length) noexcept {
    std::byte* frame = buffer_ + size_;
    write_header(frame, fields, length);
    const std::size_t padded = static_cast<std::size_t>(frame_bytes(length));
    const std::size_t payload_end = kFrameHeaderBytes + std::size_t{length};
    std::memset(frame + payload_end, 0, padded - payload_end);
    return frame;
}

int DatagramWriter::append(const FrameFields& fields, const void* payload, std::uint32_t length) noexcept {
    if (const int status = check(fields, length); status < 0) return status;
    if (payload == nullptr && length != 0) return platform::fail(EINVAL, "null payload of %u bytes", length);
    const std::uint64_t bytes = frame_bytes(length);
    if (bytes > capacity_ - size_) return -ENOSPC;
    std::byte* frame = open(fields, length);
    if (length != 0) std::memcpy(frame + kFrameHeaderBytes, payload, length);
    store_le<std::uint32_t>(frame + kCrcAt, frame_crc(frame, length));
    size_ += static_cast<std::size_t>(bytes);
    ++frames_;
    return static_cast<int>(bytes);
}

std::byte* DatagramWriter::begin_frame(const FrameFields& fields, std::uint32_t length) noexcept {
    if (check(fields, length) < 0) return nullptr;
    if (frame_bytes(length) > capacity_ - size_) return nullptr;
    std::byte* frame = open(fields, length);
    open_ = true;
    open_length_ = length;
    return frame + kFrameHeaderBytes;
}

void DatagramWriter::end_frame() noexcept {
    if (!open_) return;
    std::byte* frame = buffer_ + size_;
    store_le<std::uint32_t>(frame + kCrcAt, frame_crc(frame, open_length_));
    size_ += static_cast<std::size_t>(frame_bytes(open_length_));
    ++frames_;
    open_ = false;
}

const char* frame_reject_name(FrameReject reason) noexcept {
    switch (reason) {
        case FrameReject::truncated: return "truncated";
        case FrameReject::oversized: return "oversized";
        case FrameReject::bad_magic: return "bad_magic";
        case FrameReject::bad_version: return "bad_version";
        case FrameReject::bad_flags: return "bad_flags";
        case FrameReject::bad_reserved: return "bad_reserved";
        case FrameReject::bad_padding: return "bad_padding";
        case FrameReject::corrupt: return "corrupt";
    }
    return "unknown";
}

DatagramReader::DatagramReader(const std::byte* data, std::size_t size, std::uint32_t max_payload,
                               WireCounters& counters) noexcept
    : data_(data),
      size_(data == nullptr ? 0 : size),
      counters_(counters),
      max_payload_(max_payload < kMaxPayloadBytes ? max_payload : kMaxPayloadBytes) {
    ++counters_.datagrams;
}

// No platform::fail() message here on purpose: a rejected frame costs two counter increments, nothing more.
int DatagramReader::reject(FrameReject reason) noexcept {
    state_ = State::rejected;
    last_reject_ = reason;
    ++counters_.rejected_datagrams;
    ++counters_.rejected[static_cast<std::size_t>(reason)];
    return -EBADMSG;
}

int DatagramReader::next(DecodedFrame& out) noexcept {
    if (state_ != State::walking) [[unlikely]] return state_ == State::done ? 0 : -EBADMSG;
    const std::size_t left = size_ - offset_;
    if (left == 0 && offset_ != 0) {   // an empty datagram is not a clean end: it carried no frame
        state_ = State::done;
        return 0;
    }
    if (left < kFrameHeaderBytes) return reject(FrameReject::truncated);

    const std::byte* frame = data_ + offset_;
    if (load_le<std::uint16_t>(frame + kMagicAt) != kFrameMagic) return reject(FrameReject::bad_magic);
    if (std::to_integer<std::uint8_t>(frame[kVersionAt]) != kFrameVersion) return reject(FrameReject::bad_version);
    const auto flags = std::to_integer<std::uint8_t>(frame[kFlagsAt]);
    if ((flags & ~kFrameKnownFlags) != 0) return reject(FrameReject::bad_flags);
    if (load_le<std::uint16_t>(frame + kReservedAt) != 0) return reject(FrameReject::bad_reserved);
    const auto length = load_le<std::uint32_t>(frame + kLengthAt);
    if (length > max_payload_) return reject(FrameReject::oversized);
    const std::uint64_t bytes = frame_bytes(length);   // <= frame_bytes(kMaxPayloadBytes): no overflow below
    if (bytes > left) return reject(FrameReject::truncated);
    if (frame_crc(frame, length) != load_le<std::uint32_t>(frame + kCrcAt)) return reject(FrameReject::corrupt);
    for (std::size_t i = kFrameHeaderBytes + length; i < bytes; ++i) {
        if (frame[i] != std::byte{0}) return reject(FrameReject::bad_padding);
    }

    out.fields.topic_id = load_le<std::uint32_t>(frame + kTopicAt);
    out.fields.sequence = load_le<std::uint64_t>(frame + kSequenceAt);
    out.fields.stamp.word = load_le<std::uint64_t>(frame + kHlcWordAt);
    out.fields.stamp.node = load_le<std::uint16_t>(frame + kHlcNodeAt);
    out.fields.session = load_le<std::uint32_t>(frame + kSessionAt);
    out.fields.flags = flags;
    out.payload = frame + kFrameHeaderBytes;
    out.length = length;
    offset_ += static_cast<std::size_t>(bytes);
    ++counters_.frames;
    return 1;
}

}  // namespace cf::wire
