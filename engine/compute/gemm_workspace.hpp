// Packing buffers for GEMM: one per thread, allocated once (at start-up, ideally) and reused by every call, so
// a gemm call never allocates. Big enough for the largest cache blocking of every ISA, f32 and f64
// (gemm_blocking.hpp checks each ISA's blocking against these sizes at compile time).
#pragma once

#include <cstddef>
#include <memory>

#include "platform/os/memory.hpp"

namespace cf::compute {

class GemmWorkspace {
public:
    static constexpr std::size_t kAlignment = 64;
    // A block: MC x KC elements (MC rounded up to MR). B block: KC x NC (NC rounded up to NR).
    static constexpr std::size_t kPackABytes = std::size_t{512} << 10;
    static constexpr std::size_t kPackBBytes = (std::size_t{2} << 20) + (std::size_t{64} << 10);

    // The calling thread's workspace, allocated (and pre-faulted) on the thread's first call and freed at thread
    // exit. nullptr if that allocation fails (a later call tries again).
    static GemmWorkspace* this_thread() noexcept;

    // Allocates the calling thread's workspace now (start-up), so no later call allocates. 0, or -ENOMEM.
    static int prepare_this_thread() noexcept;

    // A workspace of the caller's own (e.g. one per shard, passed explicitly). 0, or a negative errno (-ENOMEM
    // when the mapping is refused; `out` unchanged, last_error_message() says why).
    static int create(std::unique_ptr<GemmWorkspace>& out) noexcept;

    GemmWorkspace(const GemmWorkspace&) = delete;
    GemmWorkspace& operator=(const GemmWorkspace&) = delete;
    ~GemmWorkspace();

    // Page-aligned (at least kAlignment), kPackABytes / kPackBBytes long.
    std::byte* pack_a() noexcept { return static_cast<std::byte*>(region_.base); }
    std::byte* pack_b() noexcept { return pack_a() + kPackABytes; }
    bool on_hugepages() const noexcept { return region_.hugepages; }

private:
    GemmWorkspace() noexcept = default;   // only through create()

    // One mapping for both buffers: pre-faulted, on hugepages when the host has them free (fewer TLB misses while
    // the micro-kernel streams a 2 MiB B block), and page-aligned whatever the heap looked like before.
    platform::MappedRegion region_;
};

}  // namespace cf::compute
