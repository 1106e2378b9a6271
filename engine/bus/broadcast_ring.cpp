#include "engine/bus/broadcast_ring.hpp"

#include <cerrno>
#include <new>

#include "platform/os/last_error.hpp"

namespace cf::bus {

using platform::fail;

namespace {

std::uint32_t flags_of(const BroadcastOptions& options) {
    return (options.policy == OverflowPolicy::lossy ? kRingFlagLossy : 0) |
           (options.multi_writer ? kRingFlagMultiWriter : 0);
}

int layout_of(const RingGeometry& geometry, const BroadcastOptions& options, RingLayout& out) {
    if (options.policy != OverflowPolicy::back_pressure && options.policy != OverflowPolicy::lossy) {
        return fail(EINVAL, "broadcast ring overflow policy %u is unknown", static_cast<unsigned>(options.policy));
    }
    return compute_ring_layout(RingKind::broadcast, geometry, options.max_readers, flags_of(options), out);
}

const char* writers_name(bool multi_writer) { return multi_writer ? "multi-writer" : "single-writer"; }
const char* policy_name(bool lossy) { return lossy ? "lossy" : "back-pressure"; }

}  // namespace

std::size_t BroadcastRing::bytes_needed(const RingGeometry& geometry, const BroadcastOptions& options) noexcept {
    RingLayout layout;
    if (layout_of(geometry, options, layout) != 0) return 0;
    return layout.total_bytes;
}

int BroadcastRing::format(void* memory, std::size_t bytes, const RingGeometry& geometry,
                          const BroadcastOptions& options) noexcept {
    RingLayout layout;
    if (const int rc = layout_of(geometry, options, layout); rc != 0) return rc;
    if (const int rc = prepare_ring_block(memory, bytes, layout); rc != 0) return rc;
    auto* base = static_cast<std::byte*>(memory);
    ::new (base + kControlOffset) Control{};
    for (std::uint32_t i = 0; i < layout.max_readers; ++i) {
        ::new (base + layout.readers_offset + i * kIndexSpacing) IndexRegion<ReaderWords>{};
    }
    // Sequence 0: never written (position p reads 2p + 1 while written, 2p + 2 once published).
    const SlotArray slots = SlotArray::of(memory, layout);
    for (std::uint64_t p = 0; p < slots.capacity; ++p) {
        ::new (slots.at(p) + slots.trailer_offset) SlotTrailer{};
    }
    publish_ring_block(memory);
    return 0;
}

int BroadcastRing::attach(void* memory, std::size_t bytes, BroadcastRing& out) noexcept {
    RingLayout layout;
    if (const int rc = attach_ring_block(memory, bytes, RingKind::broadcast, layout); rc != 0) return rc;
    auto* base = static_cast<std::byte*>(memory);
    BroadcastRing view;
    view.control_ = reinterpret_cast<Control*>(base + kControlOffset);
    view.readers_ = reinterpret_cast<IndexRegion<ReaderWords>*>(base + layout.readers_offset);
    view.slots_ = SlotArray::of(memory, layout);
    view.max_readers_ = layout.max_readers;
    view.lossy_ = (layout.flags & kRingFlagLossy) != 0;
    view.multi_writer_ = (layout.flags & kRingFlagMultiWriter) != 0;

    // Every reader is in a known state and not ahead of the writers (its cursor is read first: both only grow).
    for (std::uint32_t i = 0; i < view.max_readers_; ++i) {
        const ReaderWords& reader = view.readers_[i];
        const std::uint64_t state = reader.state.load(std::memory_order_acquire);
        const std::uint64_t cursor = reader.cursor.load(std::memory_order_acquire);
        const std::uint64_t head = view.writer_position();
        if (state > kReaderActive) {
            return fail(EPROTO, "broadcast ring reader %u is corrupt: state %llu", i,
                        static_cast<unsigned long long>(state));
        }
        if (state == kReaderActive && cursor > head) {
            return fail(EPROTO, "broadcast ring reader %u is corrupt: cursor %llu is past the writers (%llu)", i,
                        static_cast<unsigned long long>(cursor), static_cast<unsigned long long>(head));
        }
    }

    out = view;
    return 0;
}

template <bool MultiWriter, bool Lossy>
int BroadcastRingOf<MultiWriter, Lossy>::attach(void* memory, std::size_t bytes, BroadcastRingOf& out) noexcept {
    BroadcastRingOf view;
    if (const int rc = BroadcastRing::attach(memory, bytes, static_cast<BroadcastRing&>(view)); rc != 0) return rc;
    if (view.multi_writer_ != MultiWriter || view.lossy_ != Lossy) {
        return fail(EPROTO, "broadcast ring is %s, %s; this view is for a %s, %s ring",
                    writers_name(view.multi_writer_), policy_name(view.lossy_), writers_name(MultiWriter),
                    policy_name(Lossy));
    }
    if constexpr (!MultiWriter) {
        // A read-modify-write (of the same value) for the same reason as in shared_gate_position: the gate scan
        // below may then rely on it against readers joining meanwhile. A single writer never races it with a store.
        view.claims_.published = view.control_->published.cursor.fetch_add(0, std::memory_order_acq_rel);
        view.claims_.next = view.claims_.published;
        view.claims_.batch_start = view.claims_.published;
        view.claims_.gate = view.writer_gate();
    }
    out = view;
    return 0;
}

template int BroadcastRingOneWriter::attach(void*, std::size_t, BroadcastRingOneWriter&) noexcept;
template int BroadcastRingManyWriters::attach(void*, std::size_t, BroadcastRingManyWriters&) noexcept;
template int LossyBroadcastRingOneWriter::attach(void*, std::size_t, LossyBroadcastRingOneWriter&) noexcept;
template int LossyBroadcastRingManyWriters::attach(void*, std::size_t, LossyBroadcastRingManyWriters&) noexcept;

std::uint64_t BroadcastRing::gate_position(std::uint64_t bound) const noexcept {
    // Pairs with the fence in add_reader (Dekker): the writers' last position store (the cursor, or the
    // fetch_add on the tail) precedes this fence, the reader's "active" store precedes its fence. Either we see
    // the reader active below, or its second load of the writer position sees at least `bound`.
    std::atomic_thread_fence(std::memory_order_seq_cst);
    std::uint64_t gate = bound;
    for (std::uint32_t i = 0; i < max_readers_; ++i) {
        const ReaderWords& reader = readers_[i];
        // Acquire, pairs with add_reader's release: the reader's first cursor is visible with its state.
        if (reader.state.load(std::memory_order_acquire) != kReaderActive) continue;
        // Pairs with release(): the reader's reads of every position below its cursor are done.
        const std::uint64_t cursor = reader.cursor.load(std::memory_order_acquire);
        if (cursor < gate) gate = cursor;
    }
    return gate;
}

std::uint64_t BroadcastRing::shared_gate_position() noexcept {
    // A read-modify-write reads the newest tail and is a modification ordered before gate_position's fence, which
    // is what the Dekker argument with add_reader needs (a plain load would not be).
    const std::uint64_t bound = control_->writers.tail.fetch_add(0, std::memory_order_relaxed);
    const std::uint64_t gate = gate_position(bound);
    // Any value ever computed here stays a lower bound of every active reader (cursors only grow, and readers that
    // join later start at or past it), so writers racing to store it need no ordering among themselves. Release:
    // a writer that acquires the gate inherits our acquire of the readers' cursors.
    control_->writers.gate.store(gate, std::memory_order_release);
    return gate;
}

int BroadcastRing::add_reader() noexcept {
    for (std::uint32_t i = 0; i < max_readers_; ++i) {
        if (join_reader(i)) return static_cast<int>(i);
    }
    return fail(EBUSY, "all %u readers of the broadcast ring are taken", max_readers_);
}

int BroadcastRing::add_reader_at(int reader) noexcept {
    if (reader < 0 || static_cast<std::uint32_t>(reader) >= max_readers_) {
        return fail(EINVAL, "broadcast ring reader %d is out of range [0, %u)", reader, max_readers_);
    }
    if (!join_reader(static_cast<std::uint32_t>(reader))) {
        return fail(EBUSY, "broadcast ring reader %d is taken", reader);
    }
    return reader;
}

bool BroadcastRing::join_reader(std::uint32_t index) noexcept {
    ReaderWords& reader = readers_[index];
    std::uint64_t expected = kReaderFree;
    if (!reader.state.compare_exchange_strong(expected, kReaderJoining, std::memory_order_acq_rel,
                                              std::memory_order_relaxed)) {
        return false;
    }
    // A first start, so that a writer which sees us active never gates on the previous occupant's cursor.
    const std::uint64_t first = writer_position();
    reader.cursor.store(first, std::memory_order_relaxed);
    reader.end.store(first, std::memory_order_relaxed);
    reader.lost.store(0, std::memory_order_relaxed);
    reader.state.store(kReaderActive, std::memory_order_release);
    // Pairs with the fence in gate_position (see there).
    std::atomic_thread_fence(std::memory_order_seq_cst);
    const std::uint64_t start = writer_position();
    reader.end.store(start, std::memory_order_relaxed);
    reader.cursor.store(start, std::memory_order_release);
    return true;
}

int BroadcastRing::remove_reader(int reader) noexcept {
    if (reader < 0 || static_cast<std::uint32_t>(reader) >= max_readers_) {
        return fail(EINVAL, "broadcast ring reader %d is out of range [0, %u)", reader, max_readers_);
    }
    auto& state = readers_[reader].state;
    std::uint64_t current = state.load(std::memory_order_relaxed);
    // Release pairs with the writers' acquire of the state: the reader's last reads are done before a writer that
    // sees it gone reuses its slots.
    while (current != kReaderFree) {
        if (state.compare_exchange_weak(current, kReaderFree, std::memory_order_release, std::memory_order_relaxed)) {
            return 0;
        }
    }
    return fail(EINVAL, "broadcast ring reader %d is not active", reader);
}

int BroadcastRing::reclaim_position(std::uint64_t position) noexcept {
    SlotTrailer& trailer = trailer_at(position);
    std::uint64_t expected = 2 * position + 1;
    // Acquire pairs with the claiming writer's fence: its cleared flag is ordered before our mark.
    if (trailer.sequence.compare_exchange_strong(expected, 2 * position, std::memory_order_acquire,
                                                 std::memory_order_relaxed)) {
        trailer.flags.store(kSlotReclaimed, std::memory_order_relaxed);
        trailer.sequence.store(2 * position + 2, std::memory_order_release);   // pairs with the readers' acquire
        return 0;
    }
    if (expected == 2 * position + 2 || expected == 2 * position) {
        return fail(EALREADY, "broadcast position %llu was published or reclaimed meanwhile",
                    static_cast<unsigned long long>(position));
    }
    return fail(EINVAL, "broadcast position %llu is not claimed and unpublished (slot sequence %llu)",
                static_cast<unsigned long long>(position), static_cast<unsigned long long>(expected));
}

}  // namespace cf::bus
