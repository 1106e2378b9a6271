#include "engine/quic/retry_packet.hpp"

#include <cerrno>
#include <climits>

#include "engine/quic/varint.hpp"

namespace cf::quic {

int write_retry_packet(std::uint8_t* buffer, std::size_t capacity, const RetryFields& fields,
                       RetryPacketLayout& layout) noexcept {
    if (fields.token.empty() || fields.version == kVersionNegotiationVersion) return -EINVAL;
    ByteWriter writer(buffer, capacity < INT_MAX ? capacity : INT_MAX);
    writer.u8(static_cast<std::uint8_t>(fields.original_dcid.size()));
    writer.bytes(fields.original_dcid.data(), fields.original_dcid.size());
    const std::size_t packet_offset = writer.size();
    writer.u8(static_cast<std::uint8_t>(kHeaderFormLong | kFixedBit | 0x30 | (fields.unused_bits & 0x0f)));
    writer.u32(fields.version);
    writer.u8(static_cast<std::uint8_t>(fields.dcid.size()));
    writer.bytes(fields.dcid.data(), fields.dcid.size());
    writer.u8(static_cast<std::uint8_t>(fields.scid.size()));
    writer.bytes(fields.scid.data(), fields.scid.size());
    writer.bytes(fields.token.data(), fields.token.size());
    const std::size_t tag_offset = writer.size();
    writer.zeros(kRetryIntegrityTagSize);
    if (writer.failed()) return -ENOBUFS;
    layout = {packet_offset, tag_offset, writer.size()};
    return 0;
}

int build_retry_pseudo_packet(const ConnectionId& original_dcid, const PacketHeader& retry, std::uint8_t* out,
                              std::size_t capacity) noexcept {
    if (retry.type != PacketType::retry || retry.retry_tag_offset > retry.size) return -EINVAL;
    ByteWriter writer(out, capacity < INT_MAX ? capacity : INT_MAX);
    writer.u8(static_cast<std::uint8_t>(original_dcid.size()));
    writer.bytes(original_dcid.data(), original_dcid.size());
    writer.bytes(retry.packet, retry.retry_tag_offset);
    if (writer.failed()) return -ENOBUFS;
    return static_cast<int>(writer.size());
}

}  // namespace cf::quic
