// Every status the C API returns is one of the CF_E* codes chronofabric.h documents. Internals return any
// -errno (the kernel's among them); api_status() turns the ones the header does not list into the documented
// code that means the same to a caller, and keeps the thread's message, which still says exactly what failed.
#pragma once

namespace cf::capi {

int api_status(int status) noexcept;

}  // namespace cf::capi
