// QUIC variable-length integers (RFC 9000 section 16) and the bounded cursors every QUIC codec reads and writes
// with. A varint's two top bits give its length (1, 2, 4 or 8 bytes, network byte order), so values go up to
// 2^62 - 1. Everything here reads untrusted bytes: a read past the end fails and leaves the cursor unusable
// (failed() stays true) instead of touching memory outside the buffer, so a codec can read a whole frame and check
// once. Not thread-safe (a cursor belongs to one codec call); no allocation.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>

namespace cf::quic {

inline constexpr std::uint64_t kMaxVarint = (std::uint64_t{1} << 62) - 1;

// Bytes the shortest encoding of `value` (<= kMaxVarint) takes: 1, 2, 4 or 8.
constexpr std::size_t varint_size(std::uint64_t value) noexcept {
    return value < (1u << 6) ? 1 : value < (1u << 14) ? 2 : value < (1u << 30) ? 4 : 8;
}

// The length a varint's first byte announces.
constexpr std::size_t varint_size_from_first_byte(std::uint8_t first) noexcept { return std::size_t{1} << (first >> 6); }

// Reads from [data, data + size). Every read returns a value and sets failed() if the bytes were not there (the
// value is then 0 and every later read fails too).
class ByteReader {
public:
    ByteReader(const std::uint8_t* data, std::size_t size) noexcept : data_(data), size_(size) {}

    std::size_t remaining() const noexcept { return size_ - offset_; }
    std::size_t offset() const noexcept { return offset_; }
    bool failed() const noexcept { return failed_; }
    bool empty() const noexcept { return offset_ == size_; }
    const std::uint8_t* current() const noexcept { return data_ + offset_; }

    std::uint8_t u8() noexcept {
        if (!take(1)) return 0;
        return data_[offset_ - 1];
    }
    // A fixed-size big-endian integer of `bytes` (1..8) bytes (packet numbers, versions).
    std::uint64_t uint(std::size_t bytes) noexcept {
        if (bytes == 0 || bytes > 8 || !take(bytes)) return fail_value();
        std::uint64_t value = 0;
        for (std::size_t i = offset_ - bytes; i < offset_; ++i) value = (value << 8) | data_[i];
        return value;
    }
    std::uint32_t u32() noexcept { return static_cast<std::uint32_t>(uint(4)); }
    std::uint64_t varint() noexcept {
        if (failed_ || offset_ >= size_) return fail_value();
        const std::size_t bytes = varint_size_from_first_byte(data_[offset_]);
        const std::uint64_t raw = uint(bytes);
        return raw & (bytes == 8 ? kMaxVarint : (std::uint64_t{1} << (8 * bytes - 2)) - 1);
    }
    // `length` bytes in place (nullptr if they are not all there).
    const std::uint8_t* bytes(std::size_t length) noexcept {
        if (!take(length)) return nullptr;
        return data_ + offset_ - length;
    }
    bool skip(std::size_t length) noexcept { return take(length); }

private:
    bool take(std::size_t length) noexcept {
        if (failed_ || length > size_ - offset_) {
            failed_ = true;
            offset_ = size_;
            return false;
        }
        offset_ += length;
        return true;
    }
    std::uint64_t fail_value() noexcept {
        failed_ = true;
        offset_ = size_;
        return 0;
    }

    const std::uint8_t* data_;
    std::size_t size_;
    std::size_t offset_ = 0;
    bool failed_ = false;
};

// Writes into [data, data + capacity). A write that does not fit (or a varint above kMaxVarint) writes nothing and
// sets failed(); later writes fail too, so a codec writes a whole frame and checks once.
class ByteWriter {
public:
    ByteWriter(std::uint8_t* data, std::size_t capacity) noexcept : data_(data), capacity_(capacity) {}

    std::size_t size() const noexcept { return offset_; }
    std::size_t remaining() const noexcept { return capacity_ - offset_; }
    bool failed() const noexcept { return failed_; }
    std::uint8_t* current() noexcept { return data_ + offset_; }

    void u8(std::uint8_t value) noexcept {
        if (reserve(1)) data_[offset_ - 1] = value;
    }
    void uint(std::uint64_t value, std::size_t bytes) noexcept {
        if (bytes == 0 || bytes > 8 || (bytes < 8 && value >> (8 * bytes) != 0)) {
            failed_ = true;
            return;
        }
        if (!reserve(bytes)) return;
        for (std::size_t i = 0; i < bytes; ++i) data_[offset_ - 1 - i] = static_cast<std::uint8_t>(value >> (8 * i));
    }
    void u32(std::uint32_t value) noexcept { uint(value, 4); }
    // The shortest encoding, or exactly `bytes` (1, 2, 4 or 8) bytes when the caller needs a fixed width (a length
    // written before what it measures is known).
    void varint(std::uint64_t value, std::size_t bytes = 0) noexcept {
        if (value > kMaxVarint) {
            failed_ = true;
            return;
        }
        if (bytes == 0) bytes = varint_size(value);
        if ((bytes != 1 && bytes != 2 && bytes != 4 && bytes != 8) || bytes < varint_size(value)) {
            failed_ = true;
            return;
        }
        const std::uint64_t prefix = std::uint64_t{bytes == 1 ? 0u : bytes == 2 ? 1u : bytes == 4 ? 2u : 3u}
                                     << (8 * bytes - 2);
        uint(value | prefix, bytes);
    }
    void bytes(const void* source, std::size_t length) noexcept {
        if (length != 0 && reserve(length)) std::memcpy(data_ + offset_ - length, source, length);
    }
    void zeros(std::size_t length) noexcept {
        if (length != 0 && reserve(length)) std::memset(data_ + offset_ - length, 0, length);
    }

private:
    bool reserve(std::size_t length) noexcept {
        if (failed_ || length > capacity_ - offset_) {
            failed_ = true;
            return false;
        }
        offset_ += length;
        return true;
    }

    std::uint8_t* data_;
    std::size_t capacity_;
    std::size_t offset_ = 0;
    bool failed_ = false;
};

}  // namespace cf::quic
