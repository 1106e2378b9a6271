#include "bench/cf-latency/compute_peers.hpp"

#include <dlfcn.h>

#include <climits>
#include <cstdlib>
#include <cstring>

namespace cf::latency {
namespace {

#if defined(__x86_64__)
#define CF_MULTIARCH "x86_64-linux-gnu"
#else
#define CF_MULTIARCH "aarch64-linux-gnu"
#endif

// The soname first (Debian's alternatives link in the multiarch directory), then each flavour's own directory.
constexpr const char* kOpenBlasPaths[] = {
    "libopenblas.so.0",
    "/usr/lib/" CF_MULTIARCH "/openblas-pthread/libopenblas.so.0",
    "/usr/lib/" CF_MULTIARCH "/openblas-openmp/libopenblas.so.0",
    "/usr/lib/" CF_MULTIARCH "/openblas-serial/libopenblas.so.0",
};
constexpr const char* kBlisPaths[] = {
    "libblis.so.4",
    "/usr/lib/" CF_MULTIARCH "/blis-openmp/libblis.so.4",
    "/usr/lib/" CF_MULTIARCH "/blis-pthread/libblis.so.4",
    "/usr/lib/" CF_MULTIARCH "/blis-serial/libblis.so.4",
};

std::string base_name(const std::string& path) {
    const std::size_t slash = path.rfind('/');
    return slash == std::string::npos ? path : path.substr(slash + 1);
}

// The file a symbol was found in, with links resolved ("?" if unknown).
std::string file_of(void* symbol) {
    Dl_info info{};
    if (dladdr(symbol, &info) == 0 || info.dli_fname == nullptr) return "?";
    char resolved[PATH_MAX];
    return realpath(info.dli_fname, resolved) != nullptr ? resolved : info.dli_fname;
}

// The name a symbol's library was opened under, unresolved (the soname's link, not its target).
std::string opened_as(void* symbol) {
    Dl_info info{};
    if (dladdr(symbol, &info) == 0 || info.dli_fname == nullptr) return "?";
    return base_name(info.dli_fname);
}

template <class Function>
Function symbol(void* handle, const char* name) {
    return reinterpret_cast<Function>(dlsym(handle, name));
}

// dlopen()s the first path that loads; the error of the first (the soname) if none does.
void* open_first(const char* const* paths, std::size_t count, std::string& error) {
    for (std::size_t i = 0; i < count; ++i) {
        if (void* handle = dlopen(paths[i], RTLD_LOCAL | RTLD_NOW)) return handle;
        const char* reason = dlerror();
        if (i == 0) error = std::string("dlopen(") + paths[i] + ") failed: " + (reason != nullptr ? reason : "?");
    }
    return nullptr;
}

// Resolves the three entry points and checks they are the handle's own, not another library's.
bool resolve_cblas(void* handle, const std::string& soname, BlasPeer& peer, std::string& error) {
    peer.api.ddot = symbol<decltype(peer.api.ddot)>(handle, "cblas_ddot");
    peer.api.dgemv = symbol<decltype(peer.api.dgemv)>(handle, "cblas_dgemv");
    peer.api.dgemm = symbol<decltype(peer.api.dgemm)>(handle, "cblas_dgemm");
    const std::pair<const char*, void*> entries[] = {{"cblas_ddot", reinterpret_cast<void*>(peer.api.ddot)},
                                                     {"cblas_dgemv", reinterpret_cast<void*>(peer.api.dgemv)},
                                                     {"cblas_dgemm", reinterpret_cast<void*>(peer.api.dgemm)}};
    for (const auto& [name, address] : entries) {
        if (address == nullptr) {
            error = std::string(name) + " not found in " + soname;
            return false;
        }
        if (opened_as(address) != soname) {
            error = std::string(name) + " resolved in " + opened_as(address) + ", not in " + soname;
            return false;
        }
    }
    return true;
}

void load_openblas(ComputePeers& peers) {
    std::string error;
    void* handle = open_first(kOpenBlasPaths, std::size(kOpenBlasPaths), error);
    if (handle == nullptr) {
        peers.notes.push_back("OpenBLAS skipped: " + error + " (Debian: apt-get install libopenblas-dev)");
        return;
    }
    BlasPeer peer;
    peer.name = "OpenBLAS";
    if (!resolve_cblas(handle, "libopenblas.so.0", peer, error)) {
        peers.notes.push_back("OpenBLAS skipped: " + error);
        return;
    }
    if (auto set_threads = symbol<void (*)(int)>(handle, "openblas_set_num_threads")) set_threads(1);
    auto get_threads = symbol<int (*)()>(handle, "openblas_get_num_threads");
    auto config = symbol<char* (*)()>(handle, "openblas_get_config");
    auto core = symbol<char* (*)()>(handle, "openblas_get_corename");
    peer.about = std::string(config != nullptr ? config() : "OpenBLAS (no openblas_get_config)") + ", core " +
                 (core != nullptr ? core() : "?") + ", " + file_of(reinterpret_cast<void*>(peer.api.ddot)) + ", " +
                 (get_threads != nullptr ? std::to_string(get_threads()) : std::string("?")) + " thread(s)";
    peers.blas.push_back(std::move(peer));
}

void load_blis(ComputePeers& peers) {
    std::string error;
    void* handle = open_first(kBlisPaths, std::size(kBlisPaths), error);
    if (handle == nullptr) {
        peers.notes.push_back("BLIS skipped: " + error + " (Debian: apt-get install libblis-dev)");
        return;
    }
    BlasPeer peer;
    peer.name = "BLIS";
    if (!resolve_cblas(handle, "libblis.so.4", peer, error)) {
        peers.notes.push_back("BLIS skipped: " + error);
        return;
    }
    // gint_t is 64-bit in every BLIS build; the BLAS/CBLAS integer width is a configure option.
    if (auto int_size = symbol<long (*)()>(handle, "bli_info_get_blas_int_type_size")) {
        if (int_size() != 32) {
            peers.notes.push_back("BLIS skipped: its BLAS integers are " + std::to_string(int_size()) +
                                  "-bit; the scenario calls CBLAS with 32-bit ones");
            return;
        }
    }
    if (auto set_threads = symbol<void (*)(long)>(handle, "bli_thread_set_num_threads")) set_threads(1);
    auto get_threads = symbol<long (*)()>(handle, "bli_thread_get_num_threads");
    auto version = symbol<const char* (*)()>(handle, "bli_info_get_version_str");
    auto arch_id = symbol<long (*)()>(handle, "bli_arch_query_id");
    auto arch_name = symbol<const char* (*)(long)>(handle, "bli_arch_string");
    peer.about = std::string("BLIS ") + (version != nullptr ? version() : "?") + ", sub-configuration " +
                 (arch_id != nullptr && arch_name != nullptr ? arch_name(arch_id()) : "?") + ", " +
                 file_of(reinterpret_cast<void*>(peer.api.ddot)) + ", " +
                 (get_threads != nullptr ? std::to_string(get_threads()) : std::string("?")) + " thread(s)";
    peers.blas.push_back(std::move(peer));
}

}  // namespace

const ComputePeers& compute_peers() {
    static const ComputePeers loaded = [] {
        // Read when the libraries initialise (OpenBLAS sizes its thread pool then), so set before loading.
        setenv("OPENBLAS_NUM_THREADS", "1", 1);
        setenv("BLIS_NUM_THREADS", "1", 1);
        ComputePeers peers;
        load_openblas(peers);
        load_blis(peers);
        return peers;
    }();
    return loaded;
}

}  // namespace cf::latency
