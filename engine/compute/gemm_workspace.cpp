#include "engine/compute/gemm_workspace.hpp"

#include <cerrno>
#include <new>

namespace cf::compute {

namespace {

// Freed by the thread_local destructor at thread exit.
thread_local std::unique_ptr<GemmWorkspace> t_workspace;

}  // namespace

int GemmWorkspace::create(std::unique_ptr<GemmWorkspace>& out) noexcept {
    std::unique_ptr<GemmWorkspace> workspace(new (std::nothrow) GemmWorkspace);
    if (workspace == nullptr) return -ENOMEM;
    if (int rc = platform::map_region(kPackABytes + kPackBBytes, true, workspace->region_); rc != 0) return rc;
    out = std::move(workspace);
    return 0;
}

GemmWorkspace::~GemmWorkspace() { platform::unmap_region(region_); }

GemmWorkspace* GemmWorkspace::this_thread() noexcept {
    if (!t_workspace) [[unlikely]] {
        if (create(t_workspace) != 0) return nullptr;
    }
    return t_workspace.get();
}

int GemmWorkspace::prepare_this_thread() noexcept { return this_thread() != nullptr ? 0 : -ENOMEM; }

}  // namespace cf::compute
