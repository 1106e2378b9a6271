// Morton codes and ISA-L checksums through the C API.
#include <cerrno>

#include "chronofabric/chronofabric.h"
#include "engine/capi/counts.hpp"
#include "engine/compute/checksum.hpp"
#include "engine/compute/morton.hpp"
#include "platform/os/last_error.hpp"

namespace {

using namespace cf::compute;
using cf::capi::check_count;

int null_output(const char* function) noexcept {
    return cf::platform::fail(EINVAL, "%s: an output pointer is NULL", function);
}

int null_array(const char* function) noexcept {
    return cf::platform::fail(EINVAL, "%s: an array is NULL with n > 0", function);
}

}  // namespace

extern "C" {

uint32_t cf_morton_encode_2d32(uint32_t x, uint32_t y) { return morton_encode_2d32(x, y); }
uint64_t cf_morton_encode_2d64(uint32_t x, uint32_t y) { return morton_encode_2d64(x, y); }
uint32_t cf_morton_encode_3d32(uint32_t x, uint32_t y, uint32_t z) { return morton_encode_3d32(x, y, z); }
uint64_t cf_morton_encode_3d64(uint32_t x, uint32_t y, uint32_t z) { return morton_encode_3d64(x, y, z); }

int cf_morton_decode_2d32(uint32_t code, uint32_t* x, uint32_t* y) {
    if (x == nullptr || y == nullptr) return null_output("cf_morton_decode_2d32");
    const MortonPoint2 point = morton_decode_2d32(code);
    *x = point.x;
    *y = point.y;
    return CF_OK;
}

int cf_morton_decode_2d64(uint64_t code, uint32_t* x, uint32_t* y) {
    if (x == nullptr || y == nullptr) return null_output("cf_morton_decode_2d64");
    const MortonPoint2 point = morton_decode_2d64(code);
    *x = point.x;
    *y = point.y;
    return CF_OK;
}

int cf_morton_decode_3d32(uint32_t code, uint32_t* x, uint32_t* y, uint32_t* z) {
    if (x == nullptr || y == nullptr || z == nullptr) return null_output("cf_morton_decode_3d32");
    const MortonPoint3 point = morton_decode_3d32(code);
    *x = point.x;
    *y = point.y;
    *z = point.z;
    return CF_OK;
}

int cf_morton_decode_3d64(uint64_t code, uint32_t* x, uint32_t* y, uint32_t* z) {
    if (x == nullptr || y == nullptr || z == nullptr) return null_output("cf_morton_decode_3d64");
    const MortonPoint3 point = morton_decode_3d64(code);
    *x = point.x;
    *y = point.y;
    *z = point.z;
    return CF_OK;
}

int cf_morton_encode_2d64_batch(const uint32_t* x, const uint32_t* y, uint64_t* codes, size_t n) {
    // The widest element (a 64-bit code) bounds n for every array.
    if (const int status = check_count("cf_morton_encode_2d64_batch", "n", n, sizeof(uint64_t)); status != 0) {
        return status;
    }
    if (n != 0 && (x == nullptr || y == nullptr || codes == nullptr)) return null_array("cf_morton_encode_2d64_batch");
    morton_encode_2d64_batch(x, y, codes, n);
    return CF_OK;
}

int cf_morton_decode_2d64_batch(const uint64_t* codes, uint32_t* x, uint32_t* y, size_t n) {
    if (const int status = check_count("cf_morton_decode_2d64_batch", "n", n, sizeof(uint64_t)); status != 0) {
        return status;
    }
    if (n != 0 && (x == nullptr || y == nullptr || codes == nullptr)) return null_array("cf_morton_decode_2d64_batch");
    morton_decode_2d64_batch(codes, x, y, n);
    return CF_OK;
}

int cf_morton_encode_3d64_batch(const uint32_t* x, const uint32_t* y, const uint32_t* z, uint64_t* codes, size_t n) {
    if (const int status = check_count("cf_morton_encode_3d64_batch", "n", n, sizeof(uint64_t)); status != 0) {
        return status;
    }
    if (n != 0 && (x == nullptr || y == nullptr || z == nullptr || codes == nullptr)) {
        return null_array("cf_morton_encode_3d64_batch");
    }
    morton_encode_3d64_batch(x, y, z, codes, n);
    return CF_OK;
}

int cf_morton_decode_3d64_batch(const uint64_t* codes, uint32_t* x, uint32_t* y, uint32_t* z, size_t n) {
    if (const int status = check_count("cf_morton_decode_3d64_batch", "n", n, sizeof(uint64_t)); status != 0) {
        return status;
    }
    if (n != 0 && (x == nullptr || y == nullptr || z == nullptr || codes == nullptr)) {
        return null_array("cf_morton_decode_3d64_batch");
    }
    morton_decode_3d64_batch(codes, x, y, z, n);
    return CF_OK;
}

const char* cf_morton_impl_name(void) { return morton_impl_name(active_morton_impl()); }

int cf_crc32c(const void* data, size_t length, uint32_t* crc) {
    if (const int status = check_count("cf_crc32c", "length", length, 1); status != 0) return status;
    if (crc == nullptr || (data == nullptr && length != 0)) {
        return cf::platform::fail(EINVAL, "cf_crc32c: crc is NULL, or data is NULL with a length");
    }
    *crc = crc32c(*crc, data, length);
    return CF_OK;
}

int cf_crc64(const void* data, size_t length, uint64_t* crc) {
    if (const int status = check_count("cf_crc64", "length", length, 1); status != 0) return status;
    if (crc == nullptr || (data == nullptr && length != 0)) {
        return cf::platform::fail(EINVAL, "cf_crc64: crc is NULL, or data is NULL with a length");
    }
    *crc = crc64(*crc, data, length);
    return CF_OK;
}

}
