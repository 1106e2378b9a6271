// For libFuzzer targets: room for run_fuzz.sh's -max_len (65536) followed by an inaccessible page, so an input
// copied to end - size makes a read past its end fault at once (libFuzzer's own copy sits in a larger heap block).
#pragma once

#include <sys/mman.h>
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>

namespace cf::fuzz {

struct GuardedBuffer {
    static constexpr std::size_t kRoom = 65536;
    std::uint8_t* end = nullptr;
    std::size_t capacity = 0;
    GuardedBuffer() {
        const auto page = static_cast<std::size_t>(sysconf(_SC_PAGESIZE));
        capacity = (kRoom + page - 1) / page * page;
        void* map = mmap(nullptr, capacity + page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (map == MAP_FAILED || mprotect(static_cast<std::uint8_t*>(map) + capacity, page, PROT_NONE) != 0) {
            std::perror("fuzz target: guard page");
            std::abort();
        }
        end = static_cast<std::uint8_t*>(map) + capacity;
    }
};

}  // namespace cf::fuzz
