// PacketPool::create and its teardown: two mappings made once (payload, descriptors + free stack), every buffer
// free at the start. Nothing here runs per packet; allocate() and release() are inline in packet.hpp.
#include <cerrno>
#include <cstring>
#include <new>
#include <type_traits>
#include <utility>

#include "drivers/packet.hpp"
#include "platform/os/last_error.hpp"

namespace cf::drivers {
namespace {

constexpr std::uint32_t kMaxBuffers = std::uint32_t{1} << 24;
constexpr std::uint32_t kMaxBufferBytes = std::uint32_t{1} << 20;
// Every payload starts on its own cache line (and io_uring/DMA-friendly alignment).
constexpr std::uint32_t kBufferAlignment = 64;

constexpr std::size_t round_up(std::size_t value, std::size_t multiple) {
    return (value + multiple - 1) / multiple * multiple;
}

// The pool never runs descriptor destructors: unmapping must be all the cleanup there is.
static_assert(std::is_trivially_destructible_v<PacketBuffer>);

// map_region's message, copied out: fail() formats into the buffer last_error_message() points at.
struct SavedMessage {
    char text[256];
    SavedMessage() noexcept {
        std::strncpy(text, platform::last_error_message(), sizeof text - 1);
        text[sizeof text - 1] = '\0';
    }
};

}  // namespace

int PacketPool::create(const Config& config, std::unique_ptr<PacketPool>& out) noexcept {
    out.reset();
    if (config.count == 0 || config.count > kMaxBuffers) {
        return platform::fail(EINVAL, "packet pool: count %u (1..%u allowed)", config.count, kMaxBuffers);
    }
    if (config.buffer_bytes == 0 || config.buffer_bytes > kMaxBufferBytes) {
        return platform::fail(EINVAL, "packet pool: buffer_bytes %u (1..%u allowed)", config.buffer_bytes,
                              kMaxBufferBytes);
    }
    // Both limits keep every size below 2^44: no overflow checks needed past this point.
    const auto buffer_bytes = static_cast<std::uint32_t>(round_up(config.buffer_bytes, kBufferAlignment));

    std::unique_ptr<PacketPool> pool(new (std::nothrow) PacketPool());
    if (!pool) return platform::fail(ENOMEM, "packet pool: out of memory for the pool object");

    const std::size_t payload_bytes = std::size_t{config.count} * buffer_bytes;
    if (const int status = platform::map_region(payload_bytes, config.prefer_hugepages, pool->payload_);
        status != 0) {
        const SavedMessage why;
        return platform::fail(-status, "packet pool: %u buffers of %u bytes: %s", config.count, buffer_bytes,
                              why.text);
    }
    const std::size_t descriptor_bytes = round_up(std::size_t{config.count} * sizeof(PacketBuffer), 64);
    const std::size_t meta_bytes = descriptor_bytes + std::size_t{config.count} * sizeof(std::uint32_t);
    // Descriptors are small; hugepages would waste most of a 2 MiB page for typical pools.
    if (const int status = platform::map_region(meta_bytes, false, pool->meta_); status != 0) {
        const SavedMessage why;
        return platform::fail(-status, "packet pool: descriptors for %u buffers: %s", config.count, why.text);
    }

    std::byte* const meta = static_cast<std::byte*>(pool->meta_.base);
    pool->buffers_ = reinterpret_cast<PacketBuffer*>(meta);
    pool->free_ = reinterpret_cast<std::uint32_t*>(meta + descriptor_bytes);
    pool->count_ = config.count;
    pool->buffer_bytes_ = buffer_bytes;
    std::byte* const base = pool->base();
    for (std::uint32_t i = 0; i < config.count; ++i) {
        PacketBuffer* buffer = new (&pool->buffers_[i]) PacketBuffer();
        buffer->data = base + std::size_t{i} * buffer_bytes;
        buffer->capacity = buffer_bytes;
        buffer->index = i;
        buffer->flags = kInPool;
        // Stack top is index 0, so a fresh pool hands out buffers in address order.
        pool->free_[i] = config.count - 1 - i;
    }
    pool->free_top_ = config.count;
    out = std::move(pool);
    return 0;
}

PacketPool::~PacketPool() {
    platform::unmap_region(meta_);
    platform::unmap_region(payload_);
}

}  // namespace cf::drivers
