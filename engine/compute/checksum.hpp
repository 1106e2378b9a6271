// Checksums through Intel ISA-L, which picks its fastest code for the CPU itself (SSE4.2 CRC32 / PCLMULQDQ /
// VPCLMULQDQ folding on x86_64, the CRC32 and PMULL instructions on ARM64).
//
// Both functions take the CRC of the bytes before `data` (0 to start) and return the CRC of everything so far,
// zlib-style: crc(crc(0, a), b) == crc(0, a + b), so a message can be checksummed in pieces.
//     crc32c   CRC-32C (Castagnoli, polynomial 0x1EDC6F41 reflected, init and final xor 0xFFFFFFFF) as in iSCSI
//              (RFC 3720), SCTP, ext4, and our wire frames. Check value ("123456789"): 0xE3069283.
//              ISA-L's crc32_iscsi() neither inverts its seed nor its result, so we invert on both sides.
//     crc64    CRC-64/XZ (ECMA-182 polynomial 0x42F0E1EBA9EA3693 reflected, init and final xor all ones), the
//              CRC-64 of xz and of Go's crc64.ECMA table: the common one with published test vectors.
//              Check value ("123456789"): 0x995DC9BBDF1939FA. ISA-L's crc64_ecma_refl() inverts both sides itself.
// `data` may be null when `size` is 0. No alignment requirement. Thread-safe, allocation-free.
#pragma once

#include <cstddef>
#include <cstdint>

namespace cf::compute {

inline constexpr std::uint32_t kCrc32cCheck = 0xE3069283u;          // crc32c(0, "123456789", 9)
inline constexpr std::uint64_t kCrc64Check = 0x995DC9BBDF1939FAull;  // crc64(0, "123456789", 9)

std::uint32_t crc32c(std::uint32_t crc, const void* data, std::size_t size) noexcept;
std::uint64_t crc64(std::uint64_t crc, const void* data, std::size_t size) noexcept;

}  // namespace cf::compute
