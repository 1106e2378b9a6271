// Counts and lengths passed to the C API: one rule, checked before anything touches memory. A count whose bytes
// could not be one object is refused with CF_EINVAL; the usual cause is a negative int converted to size_t
// ((size_t)-1 is SIZE_MAX), which would otherwise send a kernel running off the end of the caller's array.
// Internal to the library.
#pragma once

#include <cerrno>
#include <cstddef>
#include <cstdint>

#include "platform/os/last_error.hpp"

namespace cf::capi {

// PTRDIFF_MAX bytes is the largest object C and C++ allow (pointer differences inside it must fit ptrdiff_t), and
// what the kernels' index arithmetic assumes; a multiplication would overflow for the same counts, so divide.
constexpr bool fits_one_object(std::size_t count, std::size_t element_bytes) noexcept {
    return count <= static_cast<std::size_t>(PTRDIFF_MAX) / element_bytes;
}

// 0, or -EINVAL with "function: name = count ..." as the thread's last error.
inline int check_count(const char* function, const char* name, std::size_t count,
                       std::size_t element_bytes) noexcept {
    if (fits_one_object(count, element_bytes)) [[likely]] return 0;
    return platform::fail(EINVAL, "%s: %s = %zu elements of %zu bytes is larger than any object (a negative count "
                          "passed as size_t?)", function, name, count, element_bytes);
}

}  // namespace cf::capi
