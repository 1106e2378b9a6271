// Packing buffers for GEMM: one per thread, allocated once (at start-up, ideally) and reused by every call, so
// a gemm call never allocates. Big enough for the largest cache blocking of every ISA, f32 and f64
// (gemm_blocking.hpp checks each ISA's blocking against these sizes at compile time).
#pragma once

#include <cstddef>
#include <memory>

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

    // A workspace of the caller's own (e.g. one per shard, passed explicitly). 0, or -ENOMEM (`out` unchanged).
    static int create(std::unique_ptr<GemmWorkspace>& out) noexcept;

    GemmWorkspace(const GemmWorkspace&) = delete;
    GemmWorkspace& operator=(const GemmWorkspace&) = delete;
    ~GemmWorkspace() = default;

    // 64-byte aligned, kPackABytes / kPackBBytes long.
    std::byte* pack_a() noexcept { return pack_a_; }
    std::byte* pack_b() noexcept { return pack_b_; }

private:
    GemmWorkspace() noexcept = default;   // only through create(): the object is megabytes, never on a stack

    alignas(kAlignment) std::byte pack_a_[kPackABytes];
    alignas(kAlignment) std::byte pack_b_[kPackBBytes];
};

}  // namespace cf::compute
