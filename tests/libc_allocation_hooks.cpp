#include "tests/libc_allocation_hooks.hpp"

#include <cerrno>
#include <cstddef>

// A sanitizer's runtime replaces malloc itself (and counts nothing for us): the tests skip their counts there, and
// these replacements are left out.
#if !defined(__SANITIZE_ADDRESS__) && !defined(__SANITIZE_THREAD__)

extern "C" {
void* malloc(std::size_t bytes) noexcept {
    cf_test_on_allocation();
    return __libc_malloc(bytes);
}
void* calloc(std::size_t count, std::size_t bytes) noexcept {
    cf_test_on_allocation();
    return __libc_calloc(count, bytes);
}
void* realloc(void* block, std::size_t bytes) noexcept {
    cf_test_on_allocation();
    return __libc_realloc(block, bytes);
}
void free(void* block) noexcept {
    cf_test_on_allocation();
    __libc_free(block);
}
void* memalign(std::size_t alignment, std::size_t bytes) noexcept {
    cf_test_on_allocation();
    return __libc_memalign(alignment, bytes);
}
void* aligned_alloc(std::size_t alignment, std::size_t bytes) noexcept {
    cf_test_on_allocation();
    return __libc_memalign(alignment, bytes);
}
int posix_memalign(void** out, std::size_t alignment, std::size_t bytes) noexcept {
    cf_test_on_allocation();
    if (alignment < sizeof(void*) || (alignment & (alignment - 1)) != 0) return EINVAL;
    void* block = __libc_memalign(alignment, bytes);
    if (block == nullptr) return ENOMEM;
    *out = block;
    return 0;
}
}  // extern "C"

#endif  // no sanitizer
