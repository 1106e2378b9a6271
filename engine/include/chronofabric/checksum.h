/**
 * @file chronofabric/checksum.h
 * Checksums through Intel ISA-L: CRC-32C and CRC-64/XZ.
 */
#ifndef CHRONOFABRIC_CHECKSUM_H
#define CHRONOFABRIC_CHECKSUM_H

#include "chronofabric/status.h"

#ifdef __cplusplus
extern "C" {
#endif

/* *@p crc holds the checksum so far (0 to start) and receives it with @p data appended, so a message can be
 * checked in pieces: chaining over any split gives the one-pass value. Each returns a status: 0; CF_EINVAL for
 * NULL (data may be NULL when length is 0) or a length above PTRDIFF_MAX.
 */
/** CRC-32C (Castagnoli), as in iSCSI. */
CF_NODISCARD CF_API int cf_crc32c(const void* data, size_t length, uint32_t* crc);
/** CRC-64/XZ (ECMA-182, reflected). */
CF_NODISCARD CF_API int cf_crc64(const void* data, size_t length, uint64_t* crc);

#ifdef __cplusplus
}
#endif

#endif /* CHRONOFABRIC_CHECKSUM_H */
