// NUMA placement: which node a thread runs on, how many nodes there are, and putting a region's pages on a node.
//
// Everything here is cold (start-up, a thread's first use of a pool, a topic's creation). A kernel built without
// NUMA, a VM with one node, or a sandbox that forbids the policy calls (ENOSYS, EPERM) is one node, node 0, and
// binding is then a no-op that says so (-EOPNOTSUPP): callers treat placement as best effort, never as a failure.
// Binding uses MPOL_PREFERRED, not MPOL_BIND: pages go to the node while it has memory and elsewhere after that,
// so pre-faulting a region on a full node never ends in SIGBUS or the OOM killer.
//
// NumaTopology is what the pool asks (node count, node of the calling thread, bind), as a table of functions so a
// test can run the multi-node paths on a one-node machine (a fake topology); system_numa_topology() is the real one.
#pragma once

#include <cstddef>
#include <cstdint>

namespace cf::platform {

inline constexpr int kMaxNumaNodes = 64;   // nodes this code places memory on; higher node numbers count as node 0

// Nodes of this machine (highest node number + 1, at most kMaxNumaNodes); 1 without NUMA support.
int numa_node_count() noexcept;

// The node of the CPU the calling thread runs on now (getcpu); 0 without NUMA support. A thread that is not pinned
// may be elsewhere a moment later.
int current_numa_node() noexcept;

// Prefers `node` for the pages of [addr, addr + bytes) (mbind MPOL_PREFERRED; pages already faulted elsewhere are
// moved, MPOL_MF_MOVE). addr must be page-aligned (hugepage-aligned for MAP_HUGETLB memory); bytes is rounded up
// by the kernel. Bind before touching the pages when you can: faulting them in place costs nothing, moving them
// does. 0; -EOPNOTSUPP when the kernel or sandbox has no NUMA policy (ENOSYS/EPERM); -EINVAL for a node outside
// 0 .. numa_node_count() - 1 or a bad range; another negative errno from mbind (last_error_message() says why).
int bind_region_to_node(void* addr, std::size_t bytes, int node) noexcept;

// The node of each page holding pages[i] (move_pages with no target nodes: a query), into nodes[i]: a node, or a
// negative errno for that page (-ENOENT: not faulted in). Returns 0, or -EOPNOTSUPP / another negative errno when
// the query itself failed (nodes[] then untouched).
int numa_nodes_of_pages(const void* const* pages, std::size_t count, int* nodes) noexcept;

// The policy of the page holding addr (get_mempolicy MPOL_F_ADDR): mode (MPOL_DEFAULT, MPOL_PREFERRED, ...) and
// the lowest node of its node mask (-1 if empty). 0, or -EOPNOTSUPP / another negative errno.
int numa_policy_of(const void* addr, int& mode, int& first_node) noexcept;

// The node questions the memory pool asks, behind function pointers so tests can substitute a fake machine.
struct NumaTopology {
    int node_count = 1;                                                          // 1 .. kMaxNumaNodes
    int (*node_of_current_thread)(void* context) noexcept = nullptr;             // 0 .. node_count - 1
    int (*bind)(void* context, void* addr, std::size_t bytes, int node) noexcept = nullptr;   // bind_region_to_node
    void* context = nullptr;
};

// This machine: numa_node_count(), current_numa_node(), bind_region_to_node().
const NumaTopology& system_numa_topology() noexcept;

}  // namespace cf::platform
