#include "engine/quic/send_buffer.hpp"

#include <cerrno>
#include <cstring>

namespace cf::quic {

int SendBuffer::init(std::uint8_t* memory, std::uint32_t capacity) noexcept {
    if (memory == nullptr || capacity < 16 || (capacity & (capacity - 1)) != 0) return -EINVAL;
    *this = SendBuffer{};
    ring_ = memory;
    capacity_ = capacity;
    return 0;
}

std::size_t SendBuffer::write(const void* data, std::size_t length) noexcept {
    if (finished_) return 0;
    if (length > room()) length = room();
    const std::size_t at = static_cast<std::size_t>(write_offset_ & (capacity_ - 1));
    const std::size_t first = length < capacity_ - at ? length : capacity_ - at;
    if (first != 0) std::memcpy(ring_ + at, data, first);
    if (first < length) std::memcpy(ring_, static_cast<const std::uint8_t*>(data) + first, length - first);
    write_offset_ += length;
    return length;
}

void SendBuffer::span(std::uint64_t offset, std::size_t length, Chunk& out) const noexcept {
    const std::size_t at = static_cast<std::size_t>(offset & (capacity_ - 1));
    out.offset = offset;
    out.length = length;
    out.first = ring_ + at;
    out.first_size = length < capacity_ - at ? length : capacity_ - at;
    out.second = out.first_size < length ? ring_ : nullptr;
}

bool SendBuffer::next_chunk(std::size_t max_length, std::uint64_t new_allowed, Chunk& out) const noexcept {
    out = Chunk{};
    if (!lost_.empty()) {   // lost bytes first, from the lowest
        const OffsetRange lost = lost_[0];
        const std::size_t length = lost.size() < max_length ? static_cast<std::size_t>(lost.size()) : max_length;
        if (length == 0) return false;
        span(lost.start, length, out);
        out.retransmission = true;
        out.fin = fin_lost_ && lost.start + length == write_offset_;
        return true;
    }
    std::uint64_t length = write_offset_ - sent_offset_;
    if (length > new_allowed) length = new_allowed;
    if (length > max_length) length = max_length;
    const bool fin_now = finished_ && sent_offset_ + length == write_offset_ && (!fin_sent_ || fin_lost_);
    if (length == 0 && !fin_now) return false;
    span(sent_offset_, static_cast<std::size_t>(length), out);
    out.fin = fin_now;
    out.retransmission = fin_sent_;   // only a lost FIN goes again with no new byte
    return true;
}

void SendBuffer::on_sent(const Chunk& chunk) noexcept {
    const std::uint64_t end = chunk.offset + chunk.length;
    if (chunk.retransmission) {
        (void)lost_.subtract(chunk.offset, end);
    } else if (end > sent_offset_) {
        sent_offset_ = end;
    }
    if (chunk.fin) {
        fin_sent_ = true;
        fin_lost_ = false;
    }
}

void SendBuffer::on_acked(std::uint64_t offset, std::size_t length, bool fin) noexcept {
    const std::uint64_t end = offset + length;
    if (fin) {
        fin_acked_ = true;
        fin_lost_ = false;
    }
    (void)lost_.subtract(offset, end);   // no need to send again what arrived (a hole that will not fit stays lost)
    if (end <= acked_prefix_) return;
    // Forgetting an acknowledgement above the prefix is safe (the bytes may go again); losing one is not possible.
    (void)acked_.add(offset > acked_prefix_ ? offset : acked_prefix_, end);
    advance_prefix();
}

void SendBuffer::advance_prefix() noexcept {
    if (acked_.empty() || acked_[0].start != acked_prefix_) return;
    acked_prefix_ = acked_[0].end;
    acked_.trim_below(acked_prefix_);
}

void SendBuffer::on_lost(std::uint64_t offset, std::size_t length, bool fin) noexcept {
    if (fin && !fin_acked_) fin_lost_ = true;
    std::uint64_t start = offset > acked_prefix_ ? offset : acked_prefix_;
    const std::uint64_t end = offset + length;
    if (start >= end) return;
    if (!lost_.add(start, end)) {
        // Too many holes to keep: send again everything from the first loss on (never less than was lost).
        start = lost_[0].start < start ? lost_[0].start : start;
        lost_.clear();
        (void)lost_.add(start, sent_offset_ > end ? sent_offset_ : end);
    }
    // Bytes another copy already delivered stay delivered.
    for (const OffsetRange& acked : acked_) {
        if (!lost_.subtract(acked.start, acked.end)) break;   // would split past the cap: send them again, harmless
    }
}

}  // namespace cf::quic
