#include "chronofabric/chronofabric.h"
#include "platform/os/last_error.hpp"

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
        default: return "unknown status";
    }
}

const char* cf_last_error_message(void) { return cf::platform::last_error_message(); }

}
