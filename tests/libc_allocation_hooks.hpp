// Counting every heap allocation in a test executable: tests/libc_allocation_hooks.cpp replaces glibc's malloc
// family (malloc, calloc, realloc, free, memalign, aligned_alloc, posix_memalign) with versions that call
// cf_test_on_allocation() and forward to glibc's own entry points (__libc_*: no dlsym, which may allocate).
// operator new ends in malloc, so it is counted too. A test that links the .cpp defines cf_test_on_allocation():
// it runs on every call, from any thread, before the thread-local machinery of a new thread is set up, so it must
// only touch constinit thread_locals or atomics. In a sanitizer build (ASan, TSan) the replacements are left out
// and nothing is counted: tests skip their counts there.
#pragma once

#include <cstddef>

extern "C" {
void cf_test_on_allocation() noexcept;
// glibc's own entry points, for a test's operator new/delete that bypass the counting above.
void* __libc_malloc(std::size_t bytes);
void* __libc_calloc(std::size_t count, std::size_t bytes);
void* __libc_realloc(void* block, std::size_t bytes);
void* __libc_memalign(std::size_t alignment, std::size_t bytes);
void __libc_free(void* block);
}
