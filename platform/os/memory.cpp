#include "platform/os/memory.hpp"

#include <sys/mman.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>

#include "platform/os/last_error.hpp"
#include "platform/os/numa.hpp"

namespace cf::platform {

int lock_process_memory() noexcept {
    if (mlockall(MCL_CURRENT | MCL_FUTURE) == 0) return 0;
    const int err = errno;
    if (err == ENOMEM || err == EPERM) {
        return fail(err,
                    "mlockall failed (%s): raise RLIMIT_MEMLOCK (ulimit -l unlimited, or LimitMEMLOCK= in the "
                    "systemd unit) or grant CAP_IPC_LOCK",
                    std::strerror(err));
    }
    return fail(err, "mlockall failed: %s", std::strerror(err));
}

HugepageFacts hugepage_facts() noexcept {
    HugepageFacts facts;
    if (std::FILE* meminfo = std::fopen("/proc/meminfo", "r")) {
        char line[256];
        while (std::fgets(line, sizeof line, meminfo)) {
            unsigned long long value = 0;
            if (std::sscanf(line, "HugePages_Total: %llu", &value) == 1) facts.total_pages = value;
            else if (std::sscanf(line, "HugePages_Free: %llu", &value) == 1) facts.free_pages = value;
            else if (std::sscanf(line, "Hugepagesize: %llu kB", &value) == 1) facts.page_bytes = value * 1024;
        }
        std::fclose(meminfo);
    }
    if (std::FILE* thp = std::fopen("/sys/kernel/mm/transparent_hugepage/enabled", "r")) {
        // The active mode is the bracketed word: "always [madvise] never".
        char text[128] = {};
        if (std::fgets(text, sizeof text, thp)) {
            const char* open = std::strchr(text, '[');
            const char* close = open ? std::strchr(open, ']') : nullptr;
            if (open && close && close - open - 1 < static_cast<long>(sizeof facts.transparent)) {
                std::memcpy(facts.transparent, open + 1, static_cast<std::size_t>(close - open - 1));
                facts.transparent[close - open - 1] = '\0';
            }
        }
        std::fclose(thp);
    }
    return facts;
}

namespace {

std::size_t round_up(std::size_t value, std::size_t multiple) { return (value + multiple - 1) / multiple * multiple; }

// Touch every page so the first message never takes a fault (MAP_POPULATE is a hint the kernel may skip).
void prefault(void* base, std::size_t bytes, std::size_t page) {
    volatile char* bytes_ptr = static_cast<volatile char*>(base);
    for (std::size_t offset = 0; offset < bytes; offset += page) bytes_ptr[offset] = 0;
}

}  // namespace

int reserve_region(std::size_t bytes, bool prefer_hugepages, MappedRegion& region) noexcept {
    region = {};
    if (bytes == 0) return fail(EINVAL, "map_region: size is zero");
    // No MAP_POPULATE: pages are faulted in by prefault_region, after the caller placed them. Explicit hugepages
    // are reserved by mmap itself, so faulting them in later cannot fail.
    const int flags = MAP_PRIVATE | MAP_ANONYMOUS;
    if (prefer_hugepages) {
        const HugepageFacts facts = hugepage_facts();
        if (facts.page_bytes != 0 && facts.free_pages * facts.page_bytes >= bytes) {
            const std::size_t rounded = round_up(bytes, facts.page_bytes);
            void* base = mmap(nullptr, rounded, PROT_READ | PROT_WRITE, flags | MAP_HUGETLB, -1, 0);
            if (base != MAP_FAILED) {
                region = {base, rounded, facts.page_bytes, true};
                return 0;
            }
        }
    }
    const std::size_t page = static_cast<std::size_t>(sysconf(_SC_PAGESIZE));
    const std::size_t rounded = round_up(bytes, page);
    void* base = mmap(nullptr, rounded, PROT_READ | PROT_WRITE, flags, -1, 0);
    if (base == MAP_FAILED) {
        const int err = errno;
        return fail(err, "map_region: mmap of %zu bytes failed: %s", rounded, std::strerror(err));
    }
    madvise(base, rounded, MADV_HUGEPAGE);  // transparent hugepages where enabled; harmless otherwise
    region = {base, rounded, page, false};
    return 0;
}

void prefault_region(const MappedRegion& region) noexcept {
    if (region.base != nullptr) prefault(region.base, region.bytes, region.page_bytes);
}

int map_region(std::size_t bytes, bool prefer_hugepages, MappedRegion& region, int node) noexcept {
    if (const int status = reserve_region(bytes, prefer_hugepages, region); status != 0) return status;
    // Best effort: memory on another node is slower, not wrong (bind_region_to_node's message stays for a caller
    // that wants to know).
    if (node != kAnyNode) (void)bind_region_to_node(region.base, region.bytes, node);
    prefault_region(region);
    return 0;
}

void unmap_region(MappedRegion& region) noexcept {
    if (region.base != nullptr) munmap(region.base, region.bytes);
    region = {};
}

}  // namespace cf::platform
