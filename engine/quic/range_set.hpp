// A set of disjoint [start, end) ranges of 64-bit offsets or packet numbers in fixed storage: what a stream
// received or had acknowledged, which of its bytes were lost, which packet numbers to acknowledge. At most
// `Capacity` ranges; an insertion that would need one more fails and changes nothing, so the owner decides what is
// safe (drop a frame and let it come again, retransmit more than needed, acknowledge less).
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>

namespace cf::quic {

struct OffsetRange {
    std::uint64_t start = 0;
    std::uint64_t end = 0;   // one past the last
    std::uint64_t size() const noexcept { return end - start; }
    friend constexpr bool operator==(const OffsetRange&, const OffsetRange&) noexcept = default;
};

template <std::uint32_t Capacity>
class RangeSet {
public:
    static constexpr std::uint32_t kCapacity = Capacity;

    std::uint32_t size() const noexcept { return count_; }
    bool empty() const noexcept { return count_ == 0; }
    const OffsetRange& operator[](std::uint32_t i) const noexcept { return ranges_[i]; }   // ascending
    const OffsetRange* begin() const noexcept { return ranges_; }
    const OffsetRange* end() const noexcept { return ranges_ + count_; }

    // Adds [start, end), merging with ranges it overlaps or touches. False (and no change) if it would make more
    // than Capacity ranges. An empty range is a no-op.
    bool add(std::uint64_t start, std::uint64_t end) noexcept {
        if (start >= end) return true;
        std::uint32_t first = 0;   // the first range that ends at or after start (touching counts)
        while (first < count_ && ranges_[first].end < start) ++first;
        std::uint32_t last = first;   // one past the last range that starts at or before end
        while (last < count_ && ranges_[last].start <= end) ++last;
        if (first == last) {
            if (count_ == Capacity) return false;
            shift(first, first + 1);
            ranges_[first] = OffsetRange{start, end};
            return true;
        }
        ranges_[first] = OffsetRange{start < ranges_[first].start ? start : ranges_[first].start,
                                     end > ranges_[last - 1].end ? end : ranges_[last - 1].end};
        shift(last, first + 1);
        return true;
    }

    // Removes [start, end). False (and no change) if splitting a range would make more than Capacity.
    bool subtract(std::uint64_t start, std::uint64_t end) noexcept {
        if (start >= end) return true;
        for (std::uint32_t i = 0; i < count_; ++i) {
            OffsetRange& range = ranges_[i];
            if (range.end <= start || range.start >= end) continue;
            if (range.start < start && range.end > end) {   // a hole in the middle: one range becomes two
                if (count_ == Capacity) return false;
                shift(i + 1, i + 2);
                ranges_[i + 1] = OffsetRange{end, range.end};
                range.end = start;
                return true;
            }
        }
        std::uint32_t kept = 0;
        for (std::uint32_t i = 0; i < count_; ++i) {
            OffsetRange range = ranges_[i];
            if (range.end > start && range.start < end) {
                if (range.start < start) range.end = start;
                else if (range.end > end) range.start = end;
                else continue;   // entirely inside: gone
            }
            ranges_[kept++] = range;
        }
        count_ = kept;
        return true;
    }

    // Drops everything below `offset`.
    void trim_below(std::uint64_t offset) noexcept { (void)subtract(0, offset); }
    bool contains(std::uint64_t offset) const noexcept {
        for (std::uint32_t i = 0; i < count_; ++i) {
            if (offset < ranges_[i].start) return false;
            if (offset < ranges_[i].end) return true;
        }
        return false;
    }
    void clear() noexcept { count_ = 0; }

private:
    // Moves ranges [from, count_) to start at `to`, and fixes the count.
    void shift(std::uint32_t from, std::uint32_t to) noexcept {
        std::memmove(&ranges_[to], &ranges_[from], (count_ - from) * sizeof(OffsetRange));
        count_ = count_ - from + to;
    }

    std::uint32_t count_ = 0;
    OffsetRange ranges_[Capacity] = {};
};

}  // namespace cf::quic
