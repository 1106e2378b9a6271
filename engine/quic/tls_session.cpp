#include "engine/quic/tls_session.hpp"

#include <gnutls/gnutls.h>

#include <cerrno>
#include <cstring>

#include "engine/quic/transport_error.hpp"
#include "platform/os/last_error.hpp"

namespace cf::quic {
namespace {

constexpr std::uint16_t kTransportParametersExtension = 0x39;   // RFC 9001 section 8.2
constexpr std::uint8_t kAlertBadCertificate = 42;
constexpr std::uint8_t kAlertMissingExtension = 109;
constexpr std::uint8_t kAlertNoApplicationProtocol = 120;
constexpr std::uint8_t kAlertInternalError = 80;
constexpr std::uint8_t kAlertUnexpectedMessage = 10;

gnutls_session_t native(void* session) { return static_cast<gnutls_session_t>(session); }

bool cipher_of(gnutls_cipher_algorithm_t algorithm, CipherSuite& out) {
    switch (algorithm) {
        case GNUTLS_CIPHER_AES_128_GCM: out = CipherSuite::aes_128_gcm_sha256; return true;
        case GNUTLS_CIPHER_AES_256_GCM: out = CipherSuite::aes_256_gcm_sha384; return true;
        case GNUTLS_CIPHER_CHACHA20_POLY1305: out = CipherSuite::chacha20_poly1305_sha256; return true;
        default: return false;
    }
}

}  // namespace

// GnuTLS's callbacks, each finding its TlsSession through the session pointer. A callback that fails records the
// QUIC error in pending_error_ and returns -1, which makes GnuTLS abandon the handshake.
struct TlsSession::Callbacks {
    static TlsSession& of(gnutls_session_t session) { return *static_cast<TlsSession*>(gnutls_session_get_ptr(session)); }

    static int refuse(TlsSession& tls, std::uint64_t code, const char* why, const char* detail = "") noexcept {
        if (tls.pending_error_ == 0) {
            tls.pending_error_ = code;
            try {
                tls.message_ = std::string(why) + detail;
            } catch (...) {   // out of memory: the code alone says enough
            }
        }
        return -1;
    }

    static int handshake_bytes(gnutls_session_t session, gnutls_record_encryption_level_t level,
                               gnutls_handshake_description_t type, const void* data, std::size_t size) {
        TlsSession& tls = of(session);
        if (type == GNUTLS_HANDSHAKE_CHANGE_CIPHER_SPEC) return 0;   // not part of QUIC (RFC 9001 section 8.4)
        const std::uint64_t code =
            tls.events_.on_handshake_bytes(static_cast<EncryptionLevel>(level), static_cast<const std::uint8_t*>(data), size);
        return code == 0 ? 0 : refuse(tls, code, "the connection refused handshake bytes");
    }

    static int secret(gnutls_session_t session, gnutls_record_encryption_level_t level, const void* read_secret,
                      const void* write_secret, std::size_t size) {
        TlsSession& tls = of(session);
        const auto our_level = static_cast<EncryptionLevel>(level);
        // The peer's transport parameters come before these keys: ClientHello before the server's handshake keys,
        // EncryptedExtensions before the client's application keys. A peer that sent none is refused now.
        const bool server = tls.context_.config().role == EndpointRole::server;
        if (!tls.peer_parameters_seen_ && ((server && our_level == EncryptionLevel::handshake) ||
                                           (!server && our_level == EncryptionLevel::application))) {
            return refuse(tls, crypto_error(kAlertMissingExtension),
                          "the peer sent no QUIC transport parameters (TLS extension 0x39)");
        }
        CipherSuite cipher{};
        const gnutls_cipher_algorithm_t algorithm =
            our_level == EncryptionLevel::early_data ? gnutls_early_cipher_get(session) : gnutls_cipher_get(session);
        if (!cipher_of(algorithm, cipher)) {
            const char* name = gnutls_cipher_get_name(algorithm);
            return refuse(tls, crypto_error(kAlertInternalError), "TLS negotiated a cipher QUIC cannot use: ",
                          name != nullptr ? name : "?");
        }
        const std::pair<const void*, SecretDirection> secrets[] = {{read_secret, SecretDirection::read},
                                                                   {write_secret, SecretDirection::write}};
        for (const auto& [bytes, direction] : secrets) {
            if (bytes == nullptr) continue;   // secrets come asymmetrically: install each as it arrives
            if (direction == SecretDirection::read) tls.readable_levels_ |= static_cast<std::uint8_t>(1u << level);
            const std::uint64_t code =
                tls.events_.on_secret(our_level, direction, cipher, static_cast<const std::uint8_t*>(bytes), size);
            if (code != 0) return refuse(tls, code, "the connection refused a traffic secret");
        }
        return 0;
    }

    static int alert(gnutls_session_t session, gnutls_record_encryption_level_t, gnutls_alert_level_t,
                     gnutls_alert_description_t description) {
        TlsSession& tls = of(session);
        const char* name = gnutls_alert_get_strname(description);
        (void)refuse(tls, crypto_error(static_cast<std::uint8_t>(description)), "TLS alert: ",
                     name != nullptr ? name : "?");
        return 0;
    }

    static int parameters_received(gnutls_session_t session, const unsigned char* data, std::size_t size) {
        TlsSession& tls = of(session);
        tls.peer_parameters_seen_ = true;
        const std::uint64_t code = tls.events_.on_peer_transport_parameters(data, size);
        return code == 0 ? 0 : refuse(tls, code, "the peer's transport parameters were refused");
    }

    static int parameters_to_send(gnutls_session_t session, gnutls_buffer_t out) {
        TlsSession& tls = of(session);
        return gnutls_buffer_append_data(out, tls.local_parameters_, tls.local_parameters_size_) < 0 ? -1 : 0;
    }

    // The peer's certificate: accepted when its key is pinned, or its chain verifies against the CA (and, for a
    // server, names server_name); a client with verify_peer off accepts any server.
    static int verify(gnutls_session_t session) {
        TlsSession& tls = of(session);
        const TlsConfig& config = tls.context_.config();
        const bool client = config.role == EndpointRole::client;
        unsigned count = 0;
        const gnutls_datum_t* chain = gnutls_certificate_get_peers(session, &count);
        if (chain == nullptr || count == 0) {
            if (!client && !config.require_client_certificate) return 0;
            return refuse(tls, crypto_error(kAlertBadCertificate), "the peer presented no certificate");
        }
        if (tls.context_.pinned(chain[0].data, chain[0].size)) {
            tls.peer_authenticated_ = true;
            return 0;
        }
        if (!config.ca_file.empty()) {
            unsigned status = 0;
            const char* name = client && !config.server_name.empty() ? config.server_name.c_str() : nullptr;
            const int rc = gnutls_certificate_verify_peers3(session, name, &status);
            if (rc < 0) return refuse(tls, crypto_error(kAlertBadCertificate), "verifying the peer failed: ", gnutls_strerror(rc));
            if (status != 0) {
                gnutls_datum_t text{};
                const bool printed = gnutls_certificate_verification_status_print(
                                         status, gnutls_certificate_type_get(session), &text, 0) >= 0;
                (void)refuse(tls, crypto_error(kAlertBadCertificate), "the peer's certificate did not verify: ",
                             printed ? reinterpret_cast<const char*>(text.data) : "?");
                if (printed) gnutls_free(text.data);
                return -1;
            }
            tls.peer_authenticated_ = true;
            return 0;
        }
        if (client && !config.verify_peer) return 0;
        return refuse(tls, crypto_error(kAlertBadCertificate), "the peer's public key is not pinned");
    }
};

int TlsSession::create(const TlsContext& context, TlsEvents& events, std::unique_ptr<TlsSession>& out) noexcept {
    const TlsConfig& config = context.config();
    std::unique_ptr<TlsSession> tls(new (std::nothrow) TlsSession(context, events));
    if (tls == nullptr) return platform::fail(ENOMEM, "TLS: out of memory");
    const bool server = config.role == EndpointRole::server;
    // Early data is negotiated per connection later; TLS's EndOfEarlyData does not exist in QUIC (RFC 9001 8.3).
    const unsigned flags = (server ? GNUTLS_SERVER | GNUTLS_NO_AUTO_SEND_TICKET : GNUTLS_CLIENT) |
                           GNUTLS_ENABLE_EARLY_DATA | GNUTLS_NO_END_OF_EARLY_DATA;
    gnutls_session_t session = nullptr;
    if (const int rc = gnutls_init(&session, flags); rc < 0) return platform::fail(ENOMEM, "TLS: %s", gnutls_strerror(rc));
    tls->session_ = session;
    gnutls_session_set_ptr(session, tls.get());
    int rc = gnutls_priority_set(session, static_cast<gnutls_priority_t>(context.priority()));
    if (rc >= 0) {
        rc = gnutls_credentials_set(session, GNUTLS_CRD_CERTIFICATE,
                                    static_cast<gnutls_certificate_credentials_t>(context.credentials()));
    }
    if (rc >= 0) {
        gnutls_handshake_set_read_function(session, &Callbacks::handshake_bytes);
        gnutls_handshake_set_secret_function(session, &Callbacks::secret);
        gnutls_alert_set_read_function(session, &Callbacks::alert);
        gnutls_session_set_verify_function(session, &Callbacks::verify);
        rc = gnutls_session_ext_register(session, "quic_transport_parameters", kTransportParametersExtension,
                                         GNUTLS_EXT_TLS, &Callbacks::parameters_received,
                                         &Callbacks::parameters_to_send, nullptr, nullptr, nullptr,
                                         GNUTLS_EXT_FLAG_TLS | GNUTLS_EXT_FLAG_CLIENT_HELLO | GNUTLS_EXT_FLAG_EE);
    }
    if (rc >= 0 && server) {
        gnutls_certificate_server_set_request(session, config.require_client_certificate ? GNUTLS_CERT_REQUIRE
                                                                                         : GNUTLS_CERT_IGNORE);
    }
    if (rc >= 0 && !server && !config.server_name.empty()) {
        rc = gnutls_server_name_set(session, GNUTLS_NAME_DNS, config.server_name.data(), config.server_name.size());
    }
    if (rc >= 0 && !config.alpn.empty()) {
        std::vector<gnutls_datum_t> protocols;
        try {
            for (const std::string& name : config.alpn) {
                protocols.push_back({reinterpret_cast<unsigned char*>(const_cast<char*>(name.data())),
                                     static_cast<unsigned>(name.size())});
            }
        } catch (...) {
            return platform::fail(ENOMEM, "TLS: out of memory");
        }
        rc = gnutls_alpn_set_protocols(session, protocols.data(), static_cast<unsigned>(protocols.size()),
                                       GNUTLS_ALPN_MANDATORY);
    }
    if (rc < 0) return platform::fail(EIO, "TLS: setting up the session failed: %s", gnutls_strerror(rc));
    out = std::move(tls);
    return 0;
}

TlsSession::~TlsSession() {
    if (session_ != nullptr) gnutls_deinit(native(session_));
}

int TlsSession::set_local_transport_parameters(const std::uint8_t* data, std::size_t size) noexcept {
    if (size > kMaxTransportParameterBytes) return -EMSGSIZE;
    if (size != 0) std::memcpy(local_parameters_, data, size);
    local_parameters_size_ = size;
    return 0;
}

std::uint64_t TlsSession::fail(std::uint64_t code, const char* why, const char* detail) noexcept {
    if (error_ == 0) {
        error_ = code;
        try {
            if (message_.empty()) message_ = std::string(why) + detail;   // a callback's reason comes first
        } catch (...) {   // out of memory: the code alone says enough
        }
    }
    return error_;
}

std::uint64_t TlsSession::start() noexcept {
    if (error_ != 0) return error_;
    if (context_.config().role != EndpointRole::client) return fail(code_of(TransportError::internal_error), "TLS: start() is for clients");
    return drive();
}

std::uint64_t TlsSession::check_message_sizes(EncryptionLevel level, const std::uint8_t* data,
                                              std::size_t size) noexcept {
    MessageFraming& framing = framing_[static_cast<std::size_t>(level) & 3];
    std::size_t at = 0;
    while (at < size) {
        if (framing.body_left != 0) {
            const std::size_t take = size - at < framing.body_left ? size - at : framing.body_left;
            framing.body_left -= static_cast<std::uint32_t>(take);
            at += take;
            continue;
        }
        framing.header[framing.header_seen++] = data[at++];
        if (framing.header_seen < 4) continue;
        framing.header_seen = 0;
        framing.body_left = std::uint32_t{framing.header[1]} << 16 | std::uint32_t{framing.header[2]} << 8 |
                            framing.header[3];
        if (framing.body_left > kMaxHandshakeMessageBytes) {
            return fail(code_of(TransportError::crypto_buffer_exceeded),
                        "the peer announced a handshake message above 64 KiB");
        }
    }
    return 0;
}

std::uint64_t TlsSession::receive(EncryptionLevel level, const std::uint8_t* data, std::size_t size) noexcept {
    if (error_ != 0) return error_;
    if (static_cast<unsigned>(level) > 3 || (readable_levels_ & (1u << static_cast<unsigned>(level))) == 0) {
        return fail(code_of(TransportError::protocol_violation), "TLS: handshake bytes at a level without read keys");
    }
    if (complete_ && context_.config().role == EndpointRole::server) {
        return fail(crypto_error(kAlertUnexpectedMessage), "TLS: a client sent a post-handshake message");
    }
    if (const std::uint64_t code = check_message_sizes(level, data, size); code != 0) return code;
    if (size != 0) {
        const int rc = gnutls_handshake_write(native(session_), static_cast<gnutls_record_encryption_level_t>(level),
                                              data, size);
        if (pending_error_ != 0) return fail(pending_error_, "");
        if (rc < 0 && gnutls_error_is_fatal(rc)) {
            return fail(crypto_error(kAlertInternalError), "TLS: ", gnutls_strerror(rc));
        }
    }
    // After the handshake TLS only takes post-handshake messages (tickets): calling gnutls_handshake() again would
    // start a TLS key update, which QUIC forbids (RFC 9001 section 6).
    return complete_ ? 0 : drive();
}

std::uint64_t TlsSession::drive() noexcept {
    const int rc = gnutls_handshake(native(session_));
    if (rc == GNUTLS_E_NO_APPLICATION_PROTOCOL) {   // GnuTLS would say decode_error (RFC 9001 section 8.1)
        pending_error_ = 0;
        return fail(crypto_error(kAlertNoApplicationProtocol), "no ALPN protocol in common with the peer");
    }
    if (pending_error_ != 0) return fail(pending_error_, "");
    if (rc == 0) {
        if (!peer_parameters_seen_) {
            return fail(crypto_error(kAlertMissingExtension), "the peer sent no QUIC transport parameters");
        }
        gnutls_datum_t selected{};
        if (!context_.config().alpn.empty() && gnutls_alpn_get_selected_protocol(native(session_), &selected) < 0) {
            return fail(crypto_error(kAlertNoApplicationProtocol), "the peer selected no ALPN protocol");
        }
        complete_ = true;
        return 0;
    }
    if (!gnutls_error_is_fatal(rc)) return 0;   // waits for more handshake bytes
    gnutls_alert_description_t alert = GNUTLS_A_INTERNAL_ERROR;
    int alert_level = 0;
    const int mapped = gnutls_error_to_alert(rc, &alert_level);
    if (mapped >= 0) alert = static_cast<gnutls_alert_description_t>(mapped);
    return fail(crypto_error(static_cast<std::uint8_t>(alert)), "TLS: ", gnutls_strerror(rc));
}

std::string TlsSession::alpn() const {
    gnutls_datum_t selected{};
    if (!complete_ || gnutls_alpn_get_selected_protocol(native(session_), &selected) < 0) return {};
    return std::string(reinterpret_cast<const char*>(selected.data), selected.size);
}

CipherSuite TlsSession::cipher() const noexcept {
    CipherSuite cipher = CipherSuite::aes_128_gcm_sha256;
    (void)cipher_of(gnutls_cipher_get(native(session_)), cipher);
    return cipher;
}

}  // namespace cf::quic
