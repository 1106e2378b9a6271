// How the bus rings (SpscRing, MpscRing, BroadcastRing) lay themselves out in a caller's block of memory.
//
// A ring lives entirely in one block: in-process from the heap or a mapped region, across processes inside a
// shared-memory mapping that sits at a different address in each process. So the block holds no pointers, only
// positions and offsets, every shared word is a lock-free, address-free std::atomic<std::uint64_t>, and nothing
// in it needs a constructor or destructor run by its users: format() writes it, attach() checks it, and the ring
// objects are small views (pointers into the block plus each side's private state) that every thread or process
// builds for itself.
//
//     offset 0             RingHeader, 64 bytes, immutable once formatted; its magic is written last (release)
//     offset 128           control regions of 128 bytes each: the words one side writes (producer, consumer,
//                          writer, each broadcast reader), 128 apart so that neither false sharing nor the
//                          adjacent-line prefetcher couples two sides (as Folly and rigtorp do)
//     slots_offset         capacity slots of slot_stride bytes
//
// Positions are monotonically increasing 64-bit counts (slot = position & (capacity - 1)): they do not wrap in
// centuries, so there is no ABA. Payloads start at the first byte of their slot and are 8-byte aligned in every
// ring (the block must be 64-byte aligned, the slots start on a 64-byte boundary, the stride is a multiple of 8).
// Slots are packed rather than padded to cache lines: a slot may share a line with its neighbours, which costs
// nothing when the writer runs ahead of the readers (it fills lines in order) and saves the padding's memory
// traffic on every message (the bus-throughput benchmark measures both). Rings with per-slot control words (MPSC,
// broadcast) keep them in a 16-byte SlotTrailer right after the payload, at round_up(slot_bytes, 8).
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <type_traits>

namespace cf::bus {

static_assert(std::atomic<std::uint64_t>::is_always_lock_free,
              "rings in shared memory need lock-free (hence address-free) 64-bit atomics");

inline constexpr std::size_t kCacheLine = 64;
inline constexpr std::size_t kIndexSpacing = 128;     // between words written by different sides
inline constexpr std::size_t kRingAlignment = 64;     // required of the block, guaranteed for payloads
inline constexpr std::size_t kControlOffset = 128;    // first control region (the header has 0..63)
inline constexpr std::size_t kSlotTrailerBytes = 16;
inline constexpr std::size_t kSlotAlignment = 8;      // of every slot, payload and trailer

inline constexpr std::uint32_t kMinRingCapacity = 2;
inline constexpr std::uint32_t kMaxRingCapacity = std::uint32_t{1} << 24;
inline constexpr std::uint32_t kMaxSlotBytes = std::uint32_t{1} << 20;
inline constexpr std::uint32_t kMaxBroadcastReaders = 64;

inline constexpr std::uint64_t kRingMagic = 0x31474E49522D4643;  // "CF-RING1" in a little-endian hex dump
inline constexpr std::uint32_t kRingLayoutVersion = 2;   // 2: slots packed to 8 bytes instead of 64

// Broadcast options as stored in RingHeader::flags.
inline constexpr std::uint32_t kRingFlagLossy = 1;
inline constexpr std::uint32_t kRingFlagMultiWriter = 2;

struct RingGeometry {
    std::uint32_t capacity = 0;     // slots: a power of two in [2, 2^24]
    std::uint32_t slot_bytes = 0;   // usable payload bytes per slot: [1, 1 MiB]
};

enum class RingKind : std::uint32_t { spsc = 1, mpsc = 2, broadcast = 3 };

enum class OverflowPolicy : std::uint32_t {
    back_pressure = 0,   // the writer waits (try_claim fails) until every active reader released the slot
    lossy = 1,           // the writer never waits; readers that fall a lap behind skip ahead and count the loss
};

// The first 64 bytes of every ring block.
struct alignas(kCacheLine) RingHeader {
    std::atomic<std::uint64_t> magic;   // kRingMagic once format() finished: release, paired with attach's acquire
    std::uint32_t layout_version;
    std::uint32_t kind;                 // RingKind
    std::uint32_t capacity;
    std::uint32_t slot_bytes;
    std::uint32_t slot_stride;
    std::uint32_t trailer_offset;       // within a slot; 0 for rings without trailers
    std::uint32_t max_readers;          // broadcast only, else 0
    std::uint32_t flags;                // kRingFlag*, broadcast only
    std::uint64_t total_bytes;
    std::uint64_t slots_offset;
    std::uint64_t checksum;             // FNV-1a over the fields above except magic
};
static_assert(sizeof(RingHeader) == kCacheLine);

// The words one side writes, alone in a 128-byte region.
template <class Words>
struct alignas(kCacheLine) IndexRegion : Words {
    unsigned char padding[kIndexSpacing - sizeof(Words)];
};

// Per-slot control words of the MPSC and broadcast rings, after the payload.
struct SlotTrailer {
    std::atomic<std::uint64_t> sequence;
    std::atomic<std::uint64_t> flags;   // kSlotReclaimed, set by whoever reclaimed a dead claim (else 0)
};

// The position's claim was reclaimed (its writer never committed it): readers skip it.
inline constexpr std::uint64_t kSlotReclaimed = 1;
static_assert(sizeof(SlotTrailer) == kSlotTrailerBytes);

// Where everything is, derived from the geometry and options alone, so attach() can recompute it and compare.
struct RingLayout {
    RingKind kind = RingKind::spsc;
    RingGeometry geometry;
    std::uint32_t max_readers = 0;
    std::uint32_t flags = 0;
    std::uint32_t slot_stride = 0;
    std::uint32_t trailer_offset = 0;
    std::uint64_t readers_offset = 0;   // broadcast: first reader region
    std::uint64_t slots_offset = 0;
    std::uint64_t total_bytes = 0;
};

// A ring's slots as every view addresses them, read-only after attach: position -> slot (positions wrap by the
// power-of-two capacity), and the trailer word inside a slot for the rings that have one.
struct SlotArray {
    std::byte* base = nullptr;
    std::uint64_t mask = 0;             // capacity - 1
    std::uint64_t stride = 0;           // bytes from one slot to the next
    std::uint32_t trailer_offset = 0;   // 0 for rings without a trailer
    std::uint32_t capacity = 0;
    std::uint32_t slot_bytes = 0;       // payload bytes a slot holds

    static SlotArray of(void* block, const RingLayout& layout) noexcept {
        return SlotArray{static_cast<std::byte*>(block) + layout.slots_offset,
                         std::uint64_t{layout.geometry.capacity} - 1, layout.slot_stride, layout.trailer_offset,
                         layout.geometry.capacity, layout.geometry.slot_bytes};
    }
    std::byte* at(std::uint64_t position) const noexcept { return base + (position & mask) * stride; }
    template <class Trailer>
    Trailer& trailer(std::uint64_t position) const noexcept {
        return *reinterpret_cast<Trailer*>(at(position) + trailer_offset);
    }
};

// Validates the geometry (capacity, slot size, and for broadcast rings max_readers in [1, 64] and known flags;
// other kinds need both 0) and computes the layout. 0, or -EINVAL with a message.
int compute_ring_layout(RingKind kind, const RingGeometry& geometry, std::uint32_t max_readers, std::uint32_t flags,
                        RingLayout& out) noexcept;

// format(), part one: checks the block (not null, 64-byte aligned, at least layout.total_bytes), clears the
// magic, zeroes the control regions and writes the header fields. 0, or -EINVAL with a message.
int prepare_ring_block(void* memory, std::size_t bytes, const RingLayout& layout) noexcept;

// format(), last step: stores the magic with release, so an attach that sees it sees everything format wrote.
void publish_ring_block(void* memory) noexcept;

// attach(), common part: checks the block and its header (magic, layout version, kind, checksum, a layout that
// matches its own geometry, a block large enough for it) and returns the layout. 0, -EINVAL (null, misaligned
// or too small a block) or -EPROTO (no ring, another kind or version, a corrupt header), with a message.
int attach_ring_block(const void* memory, std::size_t bytes, RingKind kind, RingLayout& out) noexcept;

const char* ring_kind_name(std::uint32_t kind) noexcept;

// Hands one polled payload to a poll() callback: f(payload, position) when the callback takes the position (so
// a reader can check a slot against the position it indexed, see message.hpp), else f(payload).
template <class F>
inline constexpr bool kPollCallbackTakesPosition = std::is_invocable_v<F&, const std::byte*, std::uint64_t>;
template <class F>
inline constexpr bool kNothrowPollCallback =
    kPollCallbackTakesPosition<F> ? std::is_nothrow_invocable_v<F&, const std::byte*, std::uint64_t>
                                  : std::is_nothrow_invocable_v<F&, const std::byte*>;
template <class F>
inline void invoke_poll_callback(F& f, const std::byte* payload, std::uint64_t position) noexcept(
    kNothrowPollCallback<F>) {
    if constexpr (kPollCallbackTakesPosition<F>) f(payload, position);
    else f(payload);
}

// How many positions in [read, end) a reader may take, from an `end` read in shared memory (so untrusted): at most
// `capacity` when `end` is ahead of `read` by more than a ring (a corrupt or forged writer position), and 0 when it
// is behind `read` (the subtraction would otherwise wrap to a giant count).
inline std::uint64_t bounded_ready(std::uint64_t end, std::uint64_t read, std::uint32_t capacity) noexcept {
    const std::uint64_t ready = end - read;
    if (ready <= capacity) [[likely]] return ready;
    return static_cast<std::int64_t>(ready) < 0 ? 0 : capacity;
}

// Free positions for a writer whose last known reader position is `reader` (untrusted: from shared memory), with
// `claimed` positions handed out so far: 0 unless the distance is a real one in [0, capacity].
inline std::uint64_t bounded_free(std::uint64_t claimed, std::uint64_t reader, std::uint32_t capacity) noexcept {
    const std::uint64_t used = claimed - reader;
    return used <= capacity ? capacity - used : 0;
}

// Copies a slot that a lossy writer may be overwriting right now. The caller validates the copy against the
// slot's sequence afterwards (seqlock), so a torn copy is never delivered; the race is deliberate. Under
// ThreadSanitizer the copy is an uninstrumented byte loop, so the tool does not report it (nor is memcpy
// intercepted); everywhere else it is memcpy.
#if defined(__SANITIZE_THREAD__)
#define CF_RING_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define CF_RING_TSAN 1
#endif
#endif

#if defined(CF_RING_TSAN)
[[gnu::no_sanitize("thread"), gnu::noinline]] inline void copy_racing_payload(std::byte* to, const std::byte* from,
                                                                               std::size_t bytes) noexcept {
    const volatile std::byte* source = from;
    volatile std::byte* target = to;
    for (std::size_t i = 0; i < bytes; ++i) target[i] = source[i];
}
#else
inline void copy_racing_payload(std::byte* to, const std::byte* from, std::size_t bytes) noexcept {
    std::memcpy(to, from, bytes);
}
#endif

}  // namespace cf::bus
