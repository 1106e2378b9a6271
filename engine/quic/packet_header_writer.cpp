#include "engine/quic/packet_header_writer.hpp"

#include <cerrno>

#include "engine/quic/packet_number.hpp"

namespace cf::quic {

namespace {

std::uint8_t long_type_bits(PacketType type) {
    switch (type) {
        case PacketType::initial: return 0;
        case PacketType::zero_rtt: return 1;
        case PacketType::handshake: return 2;
        default: return 3;
    }
}

bool valid_packet_number_length(std::size_t length) { return length >= 1 && length <= 4; }

}  // namespace

int write_long_header(ByteWriter& writer, const LongHeaderFields& fields, LongHeaderLayout& layout) noexcept {
    const bool numbered_long_type = fields.type == PacketType::initial || fields.type == PacketType::zero_rtt ||
                                    fields.type == PacketType::handshake;
    if (!numbered_long_type || !valid_packet_number_length(fields.packet_number_length) ||
        (!fields.token.empty() && fields.type != PacketType::initial) || fields.token.size() > kMaxVarint ||
        fields.version == kVersionNegotiationVersion) {
        return -EINVAL;
    }
    const std::size_t start = writer.size();
    writer.u8(static_cast<std::uint8_t>(kHeaderFormLong | kFixedBit | long_type_bits(fields.type) << 4 |
                                        (fields.packet_number_length - 1)));
    writer.u32(fields.version);
    writer.u8(static_cast<std::uint8_t>(fields.dcid.size()));
    writer.bytes(fields.dcid.data(), fields.dcid.size());
    writer.u8(static_cast<std::uint8_t>(fields.scid.size()));
    writer.bytes(fields.scid.data(), fields.scid.size());
    if (fields.type == PacketType::initial) {
        writer.varint(fields.token.size());
        writer.bytes(fields.token.data(), fields.token.size());
    }
    const std::size_t length_offset = writer.size();
    writer.varint(0, 2);
    const std::size_t pn_offset = writer.size();
    writer.uint(truncate_packet_number(fields.packet_number, fields.packet_number_length),
                fields.packet_number_length);
    if (writer.failed()) return -ENOBUFS;
    layout = {start, length_offset, pn_offset, fields.packet_number_length};
    return 0;
}

int patch_long_header_length(std::uint8_t* buffer, const LongHeaderLayout& layout, std::size_t packet_end) noexcept {
    if (packet_end < layout.pn_offset + layout.packet_number_length) return -EINVAL;
    const std::size_t length = packet_end - layout.pn_offset;
    if (length > kMaxPatchableLength) return -EINVAL;
    ByteWriter patch(buffer + layout.length_offset, 2);
    patch.varint(length, 2);
    return 0;
}

int write_short_header(ByteWriter& writer, const ShortHeaderFields& fields, std::size_t& pn_offset) noexcept {
    if (!valid_packet_number_length(fields.packet_number_length)) return -EINVAL;
    writer.u8(static_cast<std::uint8_t>(kFixedBit | (fields.spin_bit ? kShortSpinBit : 0) |
                                        (fields.key_phase ? kShortKeyPhaseBit : 0) |
                                        (fields.packet_number_length - 1)));
    writer.bytes(fields.dcid.data(), fields.dcid.size());
    const std::size_t offset = writer.size();
    writer.uint(truncate_packet_number(fields.packet_number, fields.packet_number_length),
                fields.packet_number_length);
    if (writer.failed()) return -ENOBUFS;
    pn_offset = offset;
    return 0;
}

}  // namespace cf::quic
