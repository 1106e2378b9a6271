#include "platform/os/numa.hpp"

#include <numa.h>
#include <numaif.h>
#include <sched.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "platform/os/last_error.hpp"

namespace cf::platform {
namespace {

// get_mempolicy refuses a node mask shorter than the kernel's node ids (nr_node_ids, at most 1024 in practice).
constexpr unsigned long kQueryMaskBits = 1024;
constexpr unsigned long kBitsPerWord = 8 * sizeof(unsigned long);

// ENOSYS: a kernel without CONFIG_NUMA (or an emulator that lacks the call); EPERM: a seccomp policy or container.
bool unsupported(int err) { return err == ENOSYS || err == EPERM; }

int detect_node_count() {
    if (numa_available() < 0) return 1;
    const int highest = numa_max_node();
    if (highest < 0) return 1;
    return highest + 1 < kMaxNumaNodes ? highest + 1 : kMaxNumaNodes;
}

int system_node_of_current_thread(void*) noexcept { return current_numa_node(); }
int system_bind(void*, void* addr, std::size_t bytes, int node) noexcept {
    return bind_region_to_node(addr, bytes, node);
}

}  // namespace

int numa_node_count() noexcept {
    static const int count = detect_node_count();
    return count;
}

int current_numa_node() noexcept {
    if (numa_node_count() == 1) return 0;
    unsigned cpu = 0;
    unsigned node = 0;
    if (getcpu(&cpu, &node) != 0) return 0;
    return node < static_cast<unsigned>(numa_node_count()) ? static_cast<int>(node) : 0;
}

int bind_region_to_node(void* addr, std::size_t bytes, int node) noexcept {
    if (node < 0 || node >= numa_node_count()) {
        return fail(EINVAL, "bind_region_to_node: node %d is not one of this machine's %d nodes", node,
                    numa_node_count());
    }
    const auto page = static_cast<std::uintptr_t>(sysconf(_SC_PAGESIZE));
    if (addr == nullptr || bytes == 0 || reinterpret_cast<std::uintptr_t>(addr) % page != 0) {
        return fail(EINVAL, "bind_region_to_node: %p + %zu is not a page-aligned, non-empty range", addr, bytes);
    }
    // maxnode counts one more than the bits the kernel reads (a historical off-by-one that libnuma also follows).
    unsigned long mask = 1UL << node;
    if (mbind(addr, bytes, MPOL_PREFERRED, &mask, kMaxNumaNodes + 1, MPOL_MF_MOVE) == 0) return 0;
    const int err = errno;
    if (unsupported(err)) {
        return fail(EOPNOTSUPP, "bind_region_to_node: no NUMA policy here (mbind: %s)", std::strerror(err));
    }
    return fail(err, "bind_region_to_node: mbind of %zu bytes at %p to node %d failed: %s", bytes, addr, node,
                std::strerror(err));
}

int numa_nodes_of_pages(const void* const* pages, std::size_t count, int* nodes) noexcept {
    if (count == 0) return 0;
    if (pages == nullptr || nodes == nullptr) return fail(EINVAL, "numa_nodes_of_pages: NULL pages or nodes");
    // move_pages takes void** (it never writes through it with nodes == NULL).
    if (move_pages(0, count, const_cast<void**>(pages), nullptr, nodes, 0) == 0) return 0;
    const int err = errno;
    if (unsupported(err)) {
        return fail(EOPNOTSUPP, "numa_nodes_of_pages: no NUMA here (move_pages: %s)", std::strerror(err));
    }
    return fail(err, "numa_nodes_of_pages: move_pages failed: %s", std::strerror(err));
}

int numa_policy_of(const void* addr, int& mode, int& first_node) noexcept {
    unsigned long mask[kQueryMaskBits / kBitsPerWord] = {};
    int policy = 0;
    if (get_mempolicy(&policy, mask, kQueryMaskBits, const_cast<void*>(addr), MPOL_F_ADDR) != 0) {
        const int err = errno;
        if (unsupported(err)) {
            return fail(EOPNOTSUPP, "numa_policy_of: no NUMA here (get_mempolicy: %s)", std::strerror(err));
        }
        return fail(err, "numa_policy_of: get_mempolicy of %p failed: %s", addr, std::strerror(err));
    }
    mode = policy;
    first_node = -1;
    for (unsigned long bit = 0; bit < kQueryMaskBits; ++bit) {
        if ((mask[bit / kBitsPerWord] >> (bit % kBitsPerWord)) & 1UL) {
            first_node = static_cast<int>(bit);
            break;
        }
    }
    return 0;
}

const NumaTopology& system_numa_topology() noexcept {
    static const NumaTopology topology{numa_node_count(), &system_node_of_current_thread, &system_bind, nullptr};
    return topology;
}

}  // namespace cf::platform
