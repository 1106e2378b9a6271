// What every TLS session of one QUIC endpoint shares: its certificate and key, how it judges the peer's
// certificate (a CA file, pinned public keys, or both), the ALPN protocols and the cipher suites. Made once per
// listener or connector, before any connection: it reads files and allocates, and reports what is wrong with
// them. TlsSession (tls_session.hpp) runs one handshake with it.
//
// Peer authentication. A peer is accepted when its certificate's public key is on the pinned list (SHA-256 of its
// SubjectPublicKeyInfo, what `certtool --key-id --hash sha256` prints), or when its chain verifies against the CA
// file (and, on a client, names server_name). With neither configured a client refuses to start (it would accept
// anyone), unless `verify_peer` is turned off explicitly. A server asks for client certificates only when
// `require_client_certificate` is set, and then refuses a client without one.
//
// Certificates: Ed25519 by default in the tests and documentation; ECDSA P-256 (and anything else GnuTLS accepts in
// TLS 1.3) works too. Cipher suites: TLS 1.3's AES-128-GCM, AES-256-GCM and ChaCha20-Poly1305 (RFC 9001 section 5.3;
// CCM is not offered), optionally narrowed to a subset.
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "engine/quic/cipher_suite.hpp"
#include "engine/quic/endpoint_role.hpp"

namespace cf::quic {

using PublicKeyPin = std::array<std::uint8_t, 32>;   // SHA-256 of a SubjectPublicKeyInfo

struct TlsConfig {
    EndpointRole role = EndpointRole::client;
    std::string certificate_file;       // PEM; a server needs one, a client only for mutual authentication
    std::string key_file;               // PEM, the certificate's private key
    std::string ca_file;                // PEM: the peer's chain must verify against it (unless its key is pinned)
    std::vector<PublicKeyPin> pinned_keys;
    std::string server_name;            // client: sent as SNI and checked against the server's certificate
    std::vector<std::string> alpn;      // client: offered in order; server: accepted (a client must offer one)
    bool require_client_certificate = false;   // server
    bool verify_peer = true;            // false: accept any server (interop tests against peers without a CA)
    std::vector<CipherSuite> ciphers;     // empty: all three
};

class TlsContext {
public:
    // Loads the certificate, key and CA, checks the configuration. 0, or -EINVAL / -ENOENT / -EIO with a message
    // (platform::last_error_message) naming the file or the setting.
    static int create(const TlsConfig& config, std::unique_ptr<TlsContext>& out) noexcept;

    ~TlsContext();
    TlsContext(const TlsContext&) = delete;
    TlsContext& operator=(const TlsContext&) = delete;

    const TlsConfig& config() const noexcept { return config_; }
    // GnuTLS handles, for TlsSession.
    void* credentials() const noexcept { return credentials_; }
    void* priority() const noexcept { return priority_; }

    // Whether a DER-encoded certificate's public key is pinned.
    bool pinned(const std::uint8_t* der, std::size_t size) const noexcept;

private:
    TlsContext() = default;

    TlsConfig config_;
    void* credentials_ = nullptr;   // gnutls_certificate_credentials_t
    void* priority_ = nullptr;      // gnutls_priority_t
};

// The SHA-256 pin of the public key in a PEM or DER certificate file: 0 or -errno with a message.
int public_key_pin_of_certificate(const std::string& certificate_file, PublicKeyPin& out) noexcept;

}  // namespace cf::quic
