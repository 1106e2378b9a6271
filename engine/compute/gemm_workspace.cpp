#include "engine/compute/gemm_workspace.hpp"

#include <cerrno>
#include <cstring>
#include <new>

namespace cf::compute {

namespace {

// Freed by the thread_local destructor at thread exit.
thread_local std::unique_ptr<GemmWorkspace> t_workspace;

}  // namespace

int GemmWorkspace::create(std::unique_ptr<GemmWorkspace>& out) noexcept {
    // One allocation (aligned new honours alignas(64)); touching every page now keeps page faults out of calls.
    auto* workspace = new (std::nothrow) GemmWorkspace;
    if (workspace == nullptr) return -ENOMEM;
    std::memset(workspace->pack_a_, 0, sizeof workspace->pack_a_);
    std::memset(workspace->pack_b_, 0, sizeof workspace->pack_b_);
    out.reset(workspace);
    return 0;
}

GemmWorkspace* GemmWorkspace::this_thread() noexcept {
    if (!t_workspace) [[unlikely]] {
        if (create(t_workspace) != 0) return nullptr;
    }
    return t_workspace.get();
}

int GemmWorkspace::prepare_this_thread() noexcept { return this_thread() != nullptr ? 0 : -ENOMEM; }

}  // namespace cf::compute
