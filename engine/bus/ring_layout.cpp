#include "engine/bus/ring_layout.hpp"

#include <cerrno>
#include <cstdio>
#include <new>

#include "platform/os/last_error.hpp"

namespace cf::bus {
namespace {

using platform::fail;

constexpr std::uint64_t round_up(std::uint64_t value, std::uint64_t multiple) {
    return (value + multiple - 1) / multiple * multiple;
}

constexpr bool is_power_of_two(std::uint32_t value) { return value != 0 && (value & (value - 1)) == 0; }

// Control regions before the slots: each side's words, 128 bytes each.
std::uint64_t control_regions(RingKind kind, std::uint32_t max_readers) {
    return kind == RingKind::broadcast ? 2 + std::uint64_t{max_readers} : 2;
}

std::uint64_t header_checksum(const RingHeader& header) noexcept {
    const std::uint64_t fields[] = {header.layout_version, header.kind,           header.capacity,
                                    header.slot_bytes,     header.slot_stride,    header.trailer_offset,
                                    header.max_readers,    header.flags,          header.total_bytes,
                                    header.slots_offset};
    std::uint64_t hash = 0xcbf29ce484222325;   // FNV-1a, 64-bit
    for (const std::uint64_t field : fields) {
        for (int shift = 0; shift < 64; shift += 8) {
            hash ^= (field >> shift) & 0xff;
            hash *= 0x100000001b3;
        }
    }
    return hash;
}

bool is_known_kind(std::uint32_t kind) {
    return kind == static_cast<std::uint32_t>(RingKind::spsc) || kind == static_cast<std::uint32_t>(RingKind::mpsc) ||
           kind == static_cast<std::uint32_t>(RingKind::broadcast);
}

int check_block(const void* memory, std::size_t bytes, std::size_t needed, const char* kind) {
    if (memory == nullptr) return fail(EINVAL, "no memory for the %s ring", kind);
    if (reinterpret_cast<std::uintptr_t>(memory) % kRingAlignment != 0) {
        return fail(EINVAL, "ring block at %p is not %zu-byte aligned", memory, kRingAlignment);
    }
    if (bytes < needed) {
        return fail(EINVAL, "ring block of %zu bytes is too small: the %s ring needs %zu", bytes, kind, needed);
    }
    return 0;
}

}  // namespace

const char* ring_kind_name(std::uint32_t kind) noexcept {
    switch (kind) {
        case static_cast<std::uint32_t>(RingKind::spsc): return "SPSC";
        case static_cast<std::uint32_t>(RingKind::mpsc): return "MPSC";
        case static_cast<std::uint32_t>(RingKind::broadcast): return "broadcast";
        default: return "unknown";
    }
}

int compute_ring_layout(RingKind kind, const RingGeometry& geometry, std::uint32_t max_readers, std::uint32_t flags,
                        RingLayout& out) noexcept {
    const auto kind_value = static_cast<std::uint32_t>(kind);
    if (!is_known_kind(kind_value)) return fail(EINVAL, "unknown ring kind %u", kind_value);
    const char* name = ring_kind_name(kind_value);
    if (geometry.capacity < kMinRingCapacity || geometry.capacity > kMaxRingCapacity ||
        !is_power_of_two(geometry.capacity)) {
        return fail(EINVAL, "%s ring capacity %u is not a power of two in [%u, %u]", name, geometry.capacity,
                    kMinRingCapacity, kMaxRingCapacity);
    }
    if (geometry.slot_bytes == 0 || geometry.slot_bytes > kMaxSlotBytes) {
        return fail(EINVAL, "%s ring slot size %u is not in [1, %u] bytes", name, geometry.slot_bytes, kMaxSlotBytes);
    }
    if (kind == RingKind::broadcast) {
        if (max_readers == 0 || max_readers > kMaxBroadcastReaders) {
            return fail(EINVAL, "broadcast ring max_readers %u is not in [1, %u]", max_readers, kMaxBroadcastReaders);
        }
        if ((flags & ~(kRingFlagLossy | kRingFlagMultiWriter)) != 0) {
            return fail(EINVAL, "broadcast ring flags %#x has unknown bits", flags);
        }
    } else if (max_readers != 0 || flags != 0) {
        return fail(EINVAL, "%s ring takes no readers or flags (got %u readers, flags %#x)", name, max_readers,
                    flags);
    }

    RingLayout layout;
    layout.kind = kind;
    layout.geometry = geometry;
    layout.max_readers = max_readers;
    layout.flags = flags;
    if (kind == RingKind::spsc) {
        layout.trailer_offset = 0;
        layout.slot_stride = static_cast<std::uint32_t>(round_up(geometry.slot_bytes, kSlotAlignment));
    } else {
        layout.trailer_offset = static_cast<std::uint32_t>(round_up(geometry.slot_bytes, kSlotAlignment));
        layout.slot_stride = layout.trailer_offset + static_cast<std::uint32_t>(kSlotTrailerBytes);
    }
    layout.readers_offset = kind == RingKind::broadcast ? kControlOffset + 2 * kIndexSpacing : 0;
    layout.slots_offset = kControlOffset + control_regions(kind, max_readers) * kIndexSpacing;
    layout.total_bytes = layout.slots_offset + std::uint64_t{geometry.capacity} * layout.slot_stride;
    out = layout;
    return 0;
}

int prepare_ring_block(void* memory, std::size_t bytes, const RingLayout& layout) noexcept {
    const char* name = ring_kind_name(static_cast<std::uint32_t>(layout.kind));
    if (const int rc = check_block(memory, bytes, layout.total_bytes, name); rc != 0) return rc;
    // Magic 0 first: an attach that races this format is refused instead of reading a half-written header.
    auto* header = ::new (memory) RingHeader{};
    std::memset(static_cast<std::byte*>(memory) + sizeof(RingHeader), 0, layout.slots_offset - sizeof(RingHeader));
    header->layout_version = kRingLayoutVersion;
    header->kind = static_cast<std::uint32_t>(layout.kind);
    header->capacity = layout.geometry.capacity;
    header->slot_bytes = layout.geometry.slot_bytes;
    header->slot_stride = layout.slot_stride;
    header->trailer_offset = layout.trailer_offset;
    header->max_readers = layout.max_readers;
    header->flags = layout.flags;
    header->total_bytes = layout.total_bytes;
    header->slots_offset = layout.slots_offset;
    header->checksum = header_checksum(*header);
    return 0;
}

void publish_ring_block(void* memory) noexcept {
    static_cast<RingHeader*>(memory)->magic.store(kRingMagic, std::memory_order_release);
}

int attach_ring_block(const void* memory, std::size_t bytes, RingKind kind, RingLayout& out) noexcept {
    const char* name = ring_kind_name(static_cast<std::uint32_t>(kind));
    if (const int rc = check_block(memory, bytes, kControlOffset, name); rc != 0) return rc;
    const auto* header = static_cast<const RingHeader*>(memory);
    // Pairs with publish_ring_block: the header and control words format wrote are visible from here on.
    const std::uint64_t magic = header->magic.load(std::memory_order_acquire);
    if (magic == 0) return fail(EPROTO, "no %s ring in this block: not formatted (or format has not finished)", name);
    if (magic != kRingMagic) {
        return fail(EPROTO, "no %s ring in this block: magic %#llx is not %#llx", name,
                    static_cast<unsigned long long>(magic), static_cast<unsigned long long>(kRingMagic));
    }
    if (header->layout_version != kRingLayoutVersion) {
        return fail(EPROTO, "ring block has layout version %u, this build reads version %u", header->layout_version,
                    kRingLayoutVersion);
    }
    if (header->kind != static_cast<std::uint32_t>(kind)) {
        return fail(EPROTO, "ring block holds the wrong kind of ring: %s (%u), not %s", ring_kind_name(header->kind),
                    header->kind, name);
    }
    if (header_checksum(*header) != header->checksum) {
        return fail(EPROTO, "%s ring header is corrupt (checksum mismatch)", name);
    }
    RingLayout layout;
    if (compute_ring_layout(kind, RingGeometry{header->capacity, header->slot_bytes}, header->max_readers,
                            header->flags, layout) != 0) {
        char why[256];
        std::snprintf(why, sizeof why, "%s", platform::last_error_message());
        return fail(EPROTO, "%s ring header is corrupt: %s", name, why);
    }
    if (layout.slot_stride != header->slot_stride || layout.trailer_offset != header->trailer_offset ||
        layout.slots_offset != header->slots_offset || layout.total_bytes != header->total_bytes) {
        return fail(EPROTO, "%s ring header is corrupt: its layout does not match its geometry", name);
    }
    if (bytes < layout.total_bytes) {
        return fail(EINVAL, "ring block of %zu bytes is smaller than the %s ring in it (%llu bytes)", bytes, name,
                    static_cast<unsigned long long>(layout.total_bytes));
    }
    out = layout;
    return 0;
}

}  // namespace cf::bus
