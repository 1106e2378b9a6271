// Size classes: which block size serves a request of `bytes`.
//
// The default classes are the powers of two from 64 B to 64 KiB (11 classes); size_class_of() maps a request to
// one of them with three instructions and no table. A caller may give its own list instead (ascending multiples
// of 64 B up to 1 MiB): SizeClassMap then uses the same bit trick when the list is a run of consecutive powers of
// two, and otherwise a byte table indexed by the request's 64-byte granule (one load, built once at start-up).
// Every block size is a multiple of 64 B, so blocks carved back to back from a 64-byte aligned arena stay
// 64-byte aligned.
#pragma once

#include <bit>
#include <cerrno>
#include <cstddef>
#include <cstdint>

#include "platform/os/last_error.hpp"

namespace cf::mem {

inline constexpr std::size_t kBlockAlignment = 64;                 // every block starts on a cache line
inline constexpr int kGranuleShift = 6;                            // log2(kBlockAlignment)
inline constexpr std::size_t kMaxBlockBytes = std::size_t{1} << 20;  // largest class a caller list may have
inline constexpr int kMaxClasses = 32;
static_assert(sizeof(std::size_t) == sizeof(unsigned long long), "class_of counts leading zeros of 64 bits");

inline constexpr std::size_t kDefaultMinClassBytes = 64;
inline constexpr std::size_t kDefaultMaxClassBytes = 64 * 1024;
inline constexpr int kDefaultClassCount = 11;                      // 64, 128, ..., 64 KiB

constexpr std::size_t default_class_bytes(int class_index) noexcept {
    return kDefaultMinClassBytes << class_index;
}

// The default class of a request: 0 for 1..64 B, 1 for 65..128 B, ..., 10 for 32 KiB + 1 .. 64 KiB, and -1 for
// 0 B or more than 64 KiB. bytes - 1 wraps 0 to SIZE_MAX, so one unsigned compare rejects both; OR-ing in 63
// folds every request up to 64 B into class 0 before bit_width (LZCNT) finds the power of two.
constexpr int size_class_of(std::size_t bytes) noexcept {
    const std::size_t last = bytes - 1;
    if (last >= kDefaultMaxClassBytes) return -1;
    return static_cast<int>(std::bit_width(last | (kDefaultMinClassBytes - 1))) - kGranuleShift;
}

static_assert(size_class_of(0) == -1 && size_class_of(1) == 0 && size_class_of(64) == 0);
static_assert(size_class_of(65) == 1 && size_class_of(128) == 1 && size_class_of(129) == 2);
static_assert(size_class_of(kDefaultMaxClassBytes) == kDefaultClassCount - 1);
static_assert(size_class_of(kDefaultMaxClassBytes + 1) == -1 && size_class_of(SIZE_MAX) == -1);

// The classes of one pool: request size -> class index, class index -> block size.
class SizeClassMap {
public:
    // Takes `count` block sizes, strictly ascending multiples of 64 B, at most kMaxBlockBytes, at most
    // kMaxClasses of them. 0, or -EINVAL with last_error_message() naming the offending entry.
    int init(const std::size_t* block_bytes, int count) noexcept;

    // The smallest class whose blocks hold `bytes`, or -1 for 0 B or more than the largest class.
    int class_of(std::size_t bytes) const noexcept {
        const std::size_t last = bytes - 1;  // 0 wraps to SIZE_MAX and fails the range check with the too-large
        if (last >= max_bytes_) [[unlikely]] return -1;
        // last | min_mask_ is never 0, so the count of leading zeros needs no zero check (bit_width has one).
        if (pow2_shift_ != 0) [[likely]] return 64 - __builtin_clzll(last | min_mask_) - pow2_shift_;
        return granule_class_[(last >> kGranuleShift) & (kGranules - 1)];  // the mask is a no-op: last < max
    }

    int count() const noexcept { return count_; }
    std::size_t block_bytes(int class_index) const noexcept { return bytes_[class_index]; }
    std::size_t max_bytes() const noexcept { return max_bytes_; }
    bool powers_of_two() const noexcept { return pow2_shift_ != 0; }

private:
    std::size_t max_bytes_ = 0;   // largest block size; 0 until init() (every request is then out of range)
    std::size_t min_mask_ = 0;    // smallest block size - 1 (power-of-two layout)
    int pow2_shift_ = 0;          // log2 of the smallest block size when the list is consecutive powers of two
    int count_ = 0;
    std::size_t bytes_[kMaxClasses] = {};
    static constexpr std::size_t kGranules = kMaxBlockBytes >> kGranuleShift;
    std::uint8_t granule_class_[kGranules] = {};  // (bytes - 1) / 64 -> class
};

inline int SizeClassMap::init(const std::size_t* block_bytes, int count) noexcept {
    *this = SizeClassMap{};
    if (count <= 0 || count > kMaxClasses) {
        return platform::fail(EINVAL, "size classes: %d classes (1..%d allowed)", count, kMaxClasses);
    }
    bool consecutive_powers = std::has_single_bit(block_bytes[0]);
    for (int i = 0; i < count; ++i) {
        const std::size_t bytes = block_bytes[i];
        if (bytes == 0 || bytes % kBlockAlignment != 0 || bytes > kMaxBlockBytes) {
            return platform::fail(EINVAL, "size classes: class %d is %zu B (a multiple of %zu up to %zu expected)", i,
                                  bytes, kBlockAlignment, kMaxBlockBytes);
        }
        if (i > 0 && bytes <= block_bytes[i - 1]) {
            return platform::fail(EINVAL, "size classes: class %d (%zu B) is not larger than class %d (%zu B)", i,
                                  bytes, i - 1, block_bytes[i - 1]);
        }
        if (i > 0 && bytes != block_bytes[i - 1] * 2) consecutive_powers = false;
    }
    count_ = count;
    max_bytes_ = block_bytes[count - 1];
    std::size_t granule = 0;
    for (int i = 0; i < count; ++i) {
        bytes_[i] = block_bytes[i];
        for (; granule < (bytes_[i] >> kGranuleShift); ++granule) {
            granule_class_[granule] = static_cast<std::uint8_t>(i);
        }
    }
    if (consecutive_powers) {
        min_mask_ = block_bytes[0] - 1;
        pow2_shift_ = std::countr_zero(block_bytes[0]);
    }
    return 0;
}

}  // namespace cf::mem
