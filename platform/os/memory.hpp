// Memory reserved once at start-up: locked against paging, pre-faulted, on hugepages when the host has them.
// Nothing here is for the hot path; it is how the hot path gets memory that never faults.
#pragma once

#include <cstddef>
#include <cstdint>

namespace cf::platform {

// mlockall(MCL_CURRENT | MCL_FUTURE). 0, or a negative errno with last_error_message() naming the limit
// to raise (RLIMIT_MEMLOCK, CAP_IPC_LOCK).
int lock_process_memory() noexcept;

struct HugepageFacts {
    std::size_t page_bytes = 0;       // default hugepage size (0: kernel has no hugetlbfs)
    std::uint64_t total_pages = 0;    // HugePages_Total
    std::uint64_t free_pages = 0;     // HugePages_Free
    char transparent[32] = "n/a";     // THP mode: "always", "madvise", "never" or "n/a"
};

HugepageFacts hugepage_facts() noexcept;

struct MappedRegion {
    void* base = nullptr;
    std::size_t bytes = 0;            // rounded up to the page size actually used
    std::size_t page_bytes = 0;       // that page size (the hugepage size when hugepages)
    bool hugepages = false;           // true: backed by explicit hugepages (MAP_HUGETLB)
};

inline constexpr int kAnyNode = -1;

// Maps `bytes` of zeroed, pre-faulted, private memory. Tries explicit hugepages first when `prefer_hugepages`,
// and falls back to 4 KiB pages (advised for transparent hugepages) if none are free; the caller learns which
// from region.hugepages and should warn. With a `node` (numa.hpp), the pages are bound to it before they are
// faulted in, best effort (a machine without NUMA policy maps as without). Returns 0 or a negative errno
// (last_error_message() says why).
int map_region(std::size_t bytes, bool prefer_hugepages, MappedRegion& region, int node = kAnyNode) noexcept;

// map_region in two steps, for a caller that places parts of one region on different nodes: reserve_region maps
// (hugepages reserved, nothing faulted in yet), prefault_region touches every page after the caller bound them.
int reserve_region(std::size_t bytes, bool prefer_hugepages, MappedRegion& region) noexcept;
void prefault_region(const MappedRegion& region) noexcept;

// Unmaps a region from map_region and clears it. Safe on an empty region.
void unmap_region(MappedRegion& region) noexcept;

}  // namespace cf::platform
