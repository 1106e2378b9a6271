#include "engine/quic/message_framing.hpp"

#include <cerrno>
#include <cstring>

#include "engine/quic/varint.hpp"

namespace cf::quic {
namespace {

// Copies `length` readable bytes from `skip` on out of the two spans.
void gather(const ReceiveBuffer::Spans& spans, std::size_t skip, std::size_t length, std::uint8_t* out) noexcept {
    if (skip < spans.first_size) {
        const std::size_t first = length < spans.first_size - skip ? length : spans.first_size - skip;
        std::memcpy(out, spans.first + skip, first);
        out += first;
        length -= first;
        skip = 0;
    } else {
        skip -= spans.first_size;
    }
    if (length != 0) std::memcpy(out, spans.second + skip, length);
}

}  // namespace

int write_message(SendBuffer& stream, const void* data, std::size_t length, std::uint32_t max_message_bytes) noexcept {
    if (length > max_message_bytes) return -EMSGSIZE;
    std::uint8_t header[8];
    ByteWriter writer(header, sizeof header);
    writer.varint(length);
    if (stream.room() < writer.size() + length) return -EAGAIN;
    (void)stream.write(header, writer.size());
    (void)stream.write(data, length);
    return 0;
}

int MessageReader::next(ReceiveBuffer& stream, const std::uint8_t*& data, std::size_t& length) noexcept {
    if (broken_) return -EMSGSIZE;
    release(stream);
    const ReceiveBuffer::Spans spans = stream.peek();
    if (spans.size() == 0) return 0;
    const std::size_t header_size = varint_size_from_first_byte(spans.first[0]);
    if (spans.size() < header_size) return 0;
    std::uint8_t header[8];
    gather(spans, 0, header_size, header);
    ByteReader reader(header, header_size);
    const std::uint64_t announced = reader.varint();
    if (announced > max_) {
        broken_ = true;
        return -EMSGSIZE;
    }
    if (spans.size() - header_size < announced) return 0;
    length = static_cast<std::size_t>(announced);
    if (header_size + length <= spans.first_size) {
        data = spans.first + header_size;   // in place
    } else {
        gather(spans, header_size, length, scratch_);
        data = scratch_;
    }
    pending_ = header_size + length;
    return 1;
}

}  // namespace cf::quic
