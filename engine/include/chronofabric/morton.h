/**
 * @file chronofabric/morton.h
 * Morton (Z-order) codes, 2D and 3D, 32- and 64-bit; names as the C++ morton_encode_2d32 and friends.
 */
#ifndef CHRONOFABRIC_MORTON_H
#define CHRONOFABRIC_MORTON_H

#include "chronofabric/status.h"

#ifdef __cplusplus
extern "C" {
#endif

/* x goes to the lowest code bit, then y (then z). Coordinate bits above the width are ignored (masked off); a
 * decode ignores code bits a 3D code does not use. Batches run the implementation chosen at start-up: BMI2
 * pdep/pext where it is fast, shift-and-mask where PDEP is microcoded (AMD before Zen 3), NEON on ARM64;
 * CF_MORTON=portable|bmi2|neon overrides. x, y, z and codes may be NULL when n is 0.
 */
CF_API uint32_t cf_morton_encode_2d32(uint32_t x, uint32_t y);               /**< 16-bit coordinates */
CF_API uint64_t cf_morton_encode_2d64(uint32_t x, uint32_t y);               /**< 32-bit coordinates */
CF_API uint32_t cf_morton_encode_3d32(uint32_t x, uint32_t y, uint32_t z);   /**< 10-bit coordinates */
CF_API uint64_t cf_morton_encode_3d64(uint32_t x, uint32_t y, uint32_t z);   /**< 21-bit coordinates */
/** Decodes. @return status: 0, or CF_EINVAL if an output pointer is NULL. */
CF_NODISCARD CF_API int cf_morton_decode_2d32(uint32_t code, uint32_t* x, uint32_t* y);
CF_NODISCARD CF_API int cf_morton_decode_2d64(uint64_t code, uint32_t* x, uint32_t* y);
CF_NODISCARD CF_API int cf_morton_decode_3d32(uint32_t code, uint32_t* x, uint32_t* y, uint32_t* z);
CF_NODISCARD CF_API int cf_morton_decode_3d64(uint64_t code, uint32_t* x, uint32_t* y, uint32_t* z);
/** Arrays of @p n coordinates to codes and back. @return status: 0; CF_EINVAL for a NULL array when n > 0, or n
 *  above PTRDIFF_MAX / 8. */
CF_NODISCARD CF_API int cf_morton_encode_2d64_batch(const uint32_t* x, const uint32_t* y, uint64_t* codes, size_t n);
CF_NODISCARD CF_API int cf_morton_decode_2d64_batch(const uint64_t* codes, uint32_t* x, uint32_t* y, size_t n);
CF_NODISCARD CF_API int cf_morton_encode_3d64_batch(const uint32_t* x, const uint32_t* y, const uint32_t* z,
                                                   uint64_t* codes, size_t n);
CF_NODISCARD CF_API int cf_morton_decode_3d64_batch(const uint64_t* codes, uint32_t* x, uint32_t* y, uint32_t* z,
                                                   size_t n);
/** "bmi2", "portable" or "neon": the implementation the batches use (the C++ morton_impl_name of
 *  active_morton_impl). Never NULL. */
CF_API const char* cf_morton_impl_name(void);

#ifdef __cplusplus
}
#endif

#endif /* CHRONOFABRIC_MORTON_H */
