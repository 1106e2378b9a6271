// One TLS 1.3 handshake for one QUIC connection, through GnuTLS's QUIC interface (RFC 9001 section 4): TLS never
// sees a record or a socket. Handshake bytes go in and out per encryption level, and traffic secrets come out
// per level and direction as soon as TLS has them; the connection carries the bytes in CRYPTO frames and derives
// packet keys from the secrets.
//
//   connection                             TlsSession                               GnuTLS
//   start() (client)               ->  gnutls_handshake                    ->  ClientHello
//   CRYPTO frame at level L        ->  receive(L, bytes)                   ->  gnutls_handshake_write + handshake
//   TlsEvents::on_handshake_bytes  <-  bytes to send at level L            <-  read function
//   TlsEvents::on_secret           <-  read/write secret for level L       <-  secret function
//   TlsEvents::on_peer_transport_parameters <- extension 0x39 from the peer
//
// The transport parameters (RFC 9000 section 18) travel in TLS extension 0x39 (ClientHello, EncryptedExtensions).
// They are opaque bytes here: the caller encodes its own before start() (set_local_transport_parameters) and
// decodes the peer's in on_peer_transport_parameters, where it may refuse them with a transport error code.
//
// Errors are QUIC error codes (what CONNECTION_CLOSE 0x1c carries): crypto_error(alert) for a TLS failure
// (RFC 9001 section 4.8), or the code the caller's handler returned. The two GnuTLS gaps RFC 9001 cares about are
// closed here: a peer without extension 0x39 fails with missing_extension (0x016d), and a failed ALPN agreement
// with no_application_protocol (0x0178) instead of GnuTLS's decode_error.
//
// Not on any per-packet path: a handshake allocates inside GnuTLS. One session belongs to one thread.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

#include "engine/quic/tls_context.hpp"

namespace cf::quic {

// GnuTLS's numbering of encryption levels (and RFC 9001's order).
enum class EncryptionLevel : std::uint8_t { initial = 0, early_data = 1, handshake = 2, application = 3 };
enum class SecretDirection : std::uint8_t { read, write };

// What a connection does with what the handshake produces. Each returns 0, or a QUIC error code (> 0) that fails
// the handshake with that code.
class TlsEvents {
public:
    virtual std::uint64_t on_handshake_bytes(EncryptionLevel level, const std::uint8_t* data,
                                             std::size_t size) noexcept = 0;
    virtual std::uint64_t on_secret(EncryptionLevel level, SecretDirection direction, CipherSuite cipher,
                                    const std::uint8_t* secret, std::size_t size) noexcept = 0;
    virtual std::uint64_t on_peer_transport_parameters(const std::uint8_t* data, std::size_t size) noexcept = 0;

protected:
    ~TlsEvents() = default;
};

class TlsSession {
public:
    static constexpr std::size_t kMaxTransportParameterBytes = 1024;
    // The largest handshake message taken from the peer (a certificate chain is the largest): GnuTLS would buffer up
    // to the 16 MiB a message header can announce, so a larger one fails with CRYPTO_BUFFER_EXCEEDED at once.
    static constexpr std::uint32_t kMaxHandshakeMessageBytes = 65536;

    // A session of `context`'s role reporting to `events` (both must outlive it). 0, or -ENOMEM / -EIO with a message.
    static int create(const TlsContext& context, TlsEvents& events, std::unique_ptr<TlsSession>& out) noexcept;
    ~TlsSession();
    TlsSession(const TlsSession&) = delete;
    TlsSession& operator=(const TlsSession&) = delete;

    // Our transport parameters, encoded (RFC 9000 section 18), sent in extension 0x39. Before start()/receive().
    // 0, or -EMSGSIZE above kMaxTransportParameterBytes.
    int set_local_transport_parameters(const std::uint8_t* data, std::size_t size) noexcept;

    // Client: produces the ClientHello (through on_handshake_bytes at the initial level). 0, or the error code.
    std::uint64_t start() noexcept;
    // Handshake bytes the peer sent at `level` (CRYPTO frames, in order, without gaps). 0, or a QUIC error code;
    // after an error the session is failed and every call returns that code. Bytes at a level whose read secret
    // TLS has not given yet fail with PROTOCOL_VIOLATION (TLS would buffer them unread), and so do bytes a
    // server gets after the handshake (QUIC has no post-handshake message from a client: RFC 9001 section 4.1.3
    // and 6), with unexpected_message.
    std::uint64_t receive(EncryptionLevel level, const std::uint8_t* data, std::size_t size) noexcept;

    bool handshake_complete() const noexcept { return complete_; }
    std::uint64_t error_code() const noexcept { return error_; }
    // Why it failed, in words (GnuTLS's reason, or which check refused the peer).
    const std::string& error_message() const noexcept { return message_; }
    // The ALPN protocol agreed on ("" before the handshake completes, or without ALPN).
    std::string alpn() const;
    // The negotiated cipher (valid once a handshake secret came out).
    CipherSuite cipher() const noexcept;
    bool peer_authenticated() const noexcept { return peer_authenticated_; }

private:
    struct Callbacks;
    friend struct Callbacks;
    TlsSession(const TlsContext& context, TlsEvents& events) : context_(context), events_(events) {}
    std::uint64_t drive() noexcept;
    std::uint64_t check_message_sizes(EncryptionLevel level, const std::uint8_t* data, std::size_t size) noexcept;
    std::uint64_t fail(std::uint64_t code, const char* why, const char* detail = "") noexcept;

    const TlsContext& context_;
    TlsEvents& events_;
    void* session_ = nullptr;   // gnutls_session_t
    // Per level: where the peer's handshake message framing (1-byte type, 24-bit length) stands.
    struct MessageFraming {
        std::uint32_t body_left = 0;      // bytes of the current message's body still to come
        std::uint8_t header_seen = 0;     // bytes of the next header seen (0..3)
        std::uint8_t header[4] = {};
    };
    MessageFraming framing_[4];
    std::uint8_t local_parameters_[kMaxTransportParameterBytes] = {};
    std::size_t local_parameters_size_ = 0;
    std::uint8_t readable_levels_ = 1u << 0;   // bit per EncryptionLevel: initial, then each read secret's
    bool peer_parameters_seen_ = false;
    bool peer_authenticated_ = false;
    bool complete_ = false;
    std::uint64_t error_ = 0;
    std::uint64_t pending_error_ = 0;   // set inside a GnuTLS callback, reported when GnuTLS returns
    std::string message_;
};

}  // namespace cf::quic
