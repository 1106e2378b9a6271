#include "engine/quic/receive_buffer.hpp"

#include <cerrno>
#include <cstring>

#include "engine/quic/varint.hpp"

namespace cf::quic {

int ReceiveBuffer::init(std::uint8_t* memory, std::uint32_t capacity) noexcept {
    if (memory == nullptr || capacity < 16 || (capacity & (capacity - 1)) != 0) return -EINVAL;
    *this = ReceiveBuffer{};
    ring_ = memory;
    capacity_ = capacity;
    return 0;
}

TransportError ReceiveBuffer::receive(std::uint64_t offset, const std::uint8_t* data, std::size_t length, bool fin,
                                      bool* stored) noexcept {
    if (stored != nullptr) *stored = true;
    if (offset > kMaxVarint || length > kMaxVarint - offset) return TransportError::frame_encoding_error;
    const std::uint64_t end = offset + length;
    if (fin) {
        if ((final_known_ && end != final_size_) || end < highest_) return TransportError::final_size_error;
        final_known_ = true;
        final_size_ = end;
    } else if (final_known_ && end > final_size_) {
        return TransportError::final_size_error;
    }
    if (end > read_offset_ + capacity_) return TransportError::flow_control_error;
    if (end > highest_) highest_ = end;
    // What is new: the part at or above the read offset.
    const std::uint64_t start = offset > read_offset_ ? offset : read_offset_;
    if (start >= end) return TransportError::no_error;   // all of it was read already (or an empty frame)
    if (!received_.add(start, end)) {
        ++dropped_;
        if (stored != nullptr) *stored = false;
        return TransportError::no_error;
    }
    copy_in(start, data + (start - offset), static_cast<std::size_t>(end - start));
    return TransportError::no_error;
}

void ReceiveBuffer::copy_in(std::uint64_t offset, const std::uint8_t* data, std::size_t length) noexcept {
    const std::size_t at = static_cast<std::size_t>(offset & (capacity_ - 1));
    const std::size_t first = length < capacity_ - at ? length : capacity_ - at;
    std::memcpy(ring_ + at, data, first);
    if (first < length) std::memcpy(ring_, data + first, length - first);
}

std::size_t ReceiveBuffer::readable() const noexcept {
    if (received_.empty() || received_[0].start != read_offset_) return 0;
    return static_cast<std::size_t>(received_[0].end - read_offset_);
}

ReceiveBuffer::Spans ReceiveBuffer::peek() const noexcept {
    Spans spans;
    const std::size_t size = readable();
    if (size == 0) return spans;
    const std::size_t at = static_cast<std::size_t>(read_offset_ & (capacity_ - 1));
    spans.first = ring_ + at;
    spans.first_size = size < capacity_ - at ? size : capacity_ - at;
    if (spans.first_size < size) {
        spans.second = ring_;
        spans.second_size = size - spans.first_size;
    }
    return spans;
}

void ReceiveBuffer::consume(std::size_t bytes) noexcept {
    const std::size_t size = readable();
    if (bytes > size) bytes = size;
    if (bytes == 0) return;
    read_offset_ += bytes;
    received_.trim_below(read_offset_);
}

}  // namespace cf::quic
