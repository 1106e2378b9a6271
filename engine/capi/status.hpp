// Every status the C API returns is one of the CF_E* codes chronofabric/status.h documents, and every failure
// leaves a message of its own. Internals return any -errno (the kernel's among them); api_status() turns the ones
// the header does not list into the documented code that means the same to a caller, and keeps the thread's
// message, which still says exactly what failed. Internal to the library.
#pragma once

#include "platform/os/last_error.hpp"

namespace cf::capi {

int api_status(int status) noexcept;

// One C API call. Internals write their message where they fail, but not every path does (the hot paths stay
// message-free, counts are not failures): a failure that comes back without a message of this call gets a plain
// one here, so cf_last_error_message() never shows an older call's text.
class Call {
public:
    explicit Call(const char* name) noexcept : name_(name), failures_(platform::failure_count()) {}
    // api_status(status), with a message if this call has not left one.
    int operator()(int status) const noexcept;

private:
    const char* name_;
    unsigned long long failures_;
};

}  // namespace cf::capi
