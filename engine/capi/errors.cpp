#include <cerrno>

#include "chronofabric/chronofabric.h"
#include "engine/capi/status.hpp"
#include "platform/os/last_error.hpp"

// The header spells the codes as numbers (so it needs no <errno.h>); they must be this platform's errnos.
static_assert(CF_EINVAL == -EINVAL && CF_ENOMEM == -ENOMEM && CF_EAGAIN == -EAGAIN && CF_EPERM == -EPERM);
static_assert(CF_ENOTSUP == -ENOTSUP && CF_ERANGE == -ERANGE && CF_EBUSY == -EBUSY && CF_EIO == -EIO);
static_assert(CF_ENOENT == -ENOENT && CF_EEXIST == -EEXIST && CF_ENOSPC == -ENOSPC && CF_EPROTO == -EPROTO);
static_assert(CF_EUSERS == -EUSERS && CF_EMSGSIZE == -EMSGSIZE && CF_ETIMEDOUT == -ETIMEDOUT);
static_assert(CF_ESTALE == -ESTALE && CF_EACCES == -EACCES && CF_EADDRINUSE == -EADDRINUSE);
static_assert(CF_ECONNRESET == -ECONNRESET);

namespace cf::capi {

int api_status(int status) noexcept {
    switch (status) {
        case CF_OK: case CF_EINVAL: case CF_ENOMEM: case CF_EAGAIN: case CF_EPERM: case CF_ENOTSUP: case CF_ERANGE:
        case CF_EBUSY: case CF_EIO: case CF_ENOENT: case CF_EEXIST: case CF_ENOSPC: case CF_EPROTO: case CF_EUSERS:
        case CF_EMSGSIZE: case CF_ETIMEDOUT: case CF_ESTALE: case CF_EACCES: case CF_EADDRINUSE:
        case CF_ECONNRESET:
            return status;
        case -ELOOP: return CF_EACCES;                      // a symbolic link where a segment should be
        case -EMFILE: case -ENFILE: return CF_ENOSPC;       // no file descriptor left
        case -EADDRNOTAVAIL: return CF_EADDRINUSE;
        default: return status > 0 ? status : CF_EIO;      // counts stay counts
    }
}

int Call::operator()(int status) const noexcept {
    const int mapped = api_status(status);
    if (mapped < 0 && platform::failure_count() == failures_) {
        return platform::fail(-mapped, "%s failed: %s", name_, cf_strerror(mapped));
    }
    return mapped;
}

}  // namespace cf::capi

extern "C" {

const char* cf_strerror(int status) {
    switch (status) {
        case CF_OK: return "success";
        case CF_EINVAL: return "invalid argument";
        case CF_ENOMEM: return "capacity exhausted";
        case CF_EAGAIN: return "try again";
        case CF_EPERM: return "not permitted";
        case CF_ENOTSUP: return "not supported on this host";
        case CF_ERANGE: return "value out of range";
        case CF_EBUSY: return "busy";
        case CF_EIO: return "input/output error";
        case CF_ENOENT: return "no such topic or segment";
        case CF_EEXIST: return "already exists";
        case CF_ENOSPC: return "no space left in a fixed table";
        case CF_EPROTO: return "incompatible or corrupt shared segment";
        case CF_EUSERS: return "too many publishers or subscribers";
        case CF_EMSGSIZE: return "message too long for the topic";
        case CF_ETIMEDOUT: return "timed out";
        case CF_ESTALE: return "stale: reclaimed or replaced";
        case CF_EACCES: return "permission denied: another user's segment, or a wider mode than asked";
        case CF_EADDRINUSE: return "address in use or not available";
        case CF_ECONNRESET: return "connection closed or channel ended";
        default: return "unknown status";
    }
}

const char* cf_last_error_message(void) { return cf::platform::last_error_message(); }

}
