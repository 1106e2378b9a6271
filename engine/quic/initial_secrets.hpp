// Initial packet secrets (RFC 9001 section 5.2): both directions' secrets come from the Destination Connection ID
// of the client's first Initial packet, with a salt fixed per QUIC version, so anyone who sees that packet can
// derive them (Initial protection keeps out off-path attackers and mangled packets, not observers):
//
//   initial_secret        = HKDF-Extract(initial_salt, client_dst_connection_id)
//   client_initial_secret = HKDF-Expand-Label(initial_secret, "client in", "", 32)
//   server_initial_secret = HKDF-Expand-Label(initial_secret, "server in", "", 32)
//
// always with SHA-256 and AES-128-GCM (CipherSuite::aes_128_gcm_sha256). A client writes with the client secret and
// reads with the server's; a server the other way round. After a Retry the client derives them again from the
// Retry's Source Connection ID. Cold path (once per connection, or per Retry).
#pragma once

#include <cstddef>
#include <cstdint>

#include "engine/quic/cipher_suite.hpp"
#include "engine/quic/connection_id.hpp"

namespace cf::quic {

inline constexpr std::size_t kInitialSecretBytes = 32;
inline constexpr CipherSuite kInitialCipherSuite = CipherSuite::aes_128_gcm_sha256;
inline constexpr std::uint8_t kQuicV1InitialSalt[20] = {0x38, 0x76, 0x2c, 0xf7, 0xf5, 0x59, 0x34, 0xb3, 0x4d, 0x17,
                                                        0x9a, 0xe6, 0xa4, 0xc8, 0x0c, 0xad, 0xcc, 0xbb, 0x7f, 0x0a};

// Both directions' secrets. The destructor wipes them.
struct InitialSecrets {
    std::uint8_t client[kInitialSecretBytes] = {};
    std::uint8_t server[kInitialSecretBytes] = {};

    // What an endpoint seals its own packets with, and what it opens its peer's with.
    const std::uint8_t* write_secret(bool is_server) const noexcept { return is_server ? server : client; }
    const std::uint8_t* read_secret(bool is_server) const noexcept { return is_server ? client : server; }

    InitialSecrets() noexcept = default;
    InitialSecrets(const InitialSecrets&) = delete;
    InitialSecrets& operator=(const InitialSecrets&) = delete;
    ~InitialSecrets();
};

// The QUIC version 1 secrets for a client Destination Connection ID of `dcid_len` bytes (0..20; the rule that a
// client's first one is at least 8 bytes long is the packet layer's to enforce). 0, or -EINVAL (longer than 20
// bytes) / -EIO, with a message.
int derive_initial_secrets(const std::uint8_t* dcid, std::size_t dcid_len, InitialSecrets& secrets) noexcept;

}  // namespace cf::quic
