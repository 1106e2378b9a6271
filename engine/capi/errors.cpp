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
        default: return "unknown status";
    }
}

const char* cf_last_error_message(void) { return cf::platform::last_error_message(); }

}
