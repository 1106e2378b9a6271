#include "engine/quic/tls_context.hpp"

#include <gnutls/abstract.h>
#include <gnutls/gnutls.h>
#include <gnutls/x509.h>

#include <cerrno>
#include <cstring>

#include "platform/os/last_error.hpp"

namespace cf::quic {
namespace {

using platform::fail;

// TLS 1.3 only, and without the compatibility mode's legacy session id, which QUIC forbids (RFC 9001 section 8.4).
std::string priority_string(const std::vector<CipherSuite>& ciphers) {
    std::string priority = "%DISABLE_TLS13_COMPAT_MODE:NORMAL:-VERS-ALL:+VERS-TLS1.3:-CIPHER-ALL";
    const std::vector<CipherSuite> all = {CipherSuite::aes_128_gcm_sha256, CipherSuite::aes_256_gcm_sha384,
                                          CipherSuite::chacha20_poly1305_sha256};
    for (const CipherSuite cipher : ciphers.empty() ? all : ciphers) {
        switch (cipher) {
            case CipherSuite::aes_128_gcm_sha256: priority += ":+AES-128-GCM"; break;
            case CipherSuite::aes_256_gcm_sha384: priority += ":+AES-256-GCM"; break;
            case CipherSuite::chacha20_poly1305_sha256: priority += ":+CHACHA20-POLY1305"; break;
        }
    }
    return priority;
}

int file_error(int gnutls_code, const char* what, const std::string& file) {
    const int errnum = gnutls_code == GNUTLS_E_FILE_ERROR ? ENOENT : EINVAL;
    return fail(errnum, "TLS: cannot load the %s '%s': %s", what, file.c_str(), gnutls_strerror(gnutls_code));
}

}  // namespace

int TlsContext::create(const TlsConfig& config, std::unique_ptr<TlsContext>& out) noexcept {
    if (config.role == EndpointRole::server && (config.certificate_file.empty() || config.key_file.empty())) {
        return fail(EINVAL, "TLS: a server needs a certificate and its key");
    }
    if (config.certificate_file.empty() != config.key_file.empty()) {
        return fail(EINVAL, "TLS: a certificate needs its key, and a key its certificate");
    }
    const bool authenticates = !config.ca_file.empty() || !config.pinned_keys.empty();
    if (config.role == EndpointRole::client && config.verify_peer && !authenticates) {
        return fail(EINVAL, "TLS: a client needs a CA file or pinned keys to verify the server (or verify_peer off)");
    }
    if (config.role == EndpointRole::server && config.require_client_certificate && !authenticates) {
        return fail(EINVAL, "TLS: requiring client certificates needs a CA file or pinned keys to check them with");
    }
    if (config.role == EndpointRole::client && config.alpn.empty()) {
        return fail(EINVAL, "TLS: a QUIC client must offer at least one ALPN protocol (RFC 9001 section 8.1)");
    }
    for (const std::string& protocol : config.alpn) {
        if (protocol.empty() || protocol.size() > 255) {
            return fail(EINVAL, "TLS: ALPN protocol names are 1 to 255 bytes ('%s')", protocol.c_str());
        }
    }

    std::unique_ptr<TlsContext> context(new (std::nothrow) TlsContext());
    if (context == nullptr) return fail(ENOMEM, "TLS: out of memory");
    try {
        context->config_ = config;
    } catch (...) {
        return fail(ENOMEM, "TLS: out of memory");
    }
    gnutls_certificate_credentials_t credentials = nullptr;
    if (const int rc = gnutls_certificate_allocate_credentials(&credentials); rc < 0) {
        return fail(ENOMEM, "TLS: %s", gnutls_strerror(rc));
    }
    context->credentials_ = credentials;
    if (!config.certificate_file.empty()) {
        const int rc = gnutls_certificate_set_x509_key_file2(credentials, config.certificate_file.c_str(),
                                                             config.key_file.c_str(), GNUTLS_X509_FMT_PEM, nullptr, 0);
        if (rc < 0) return file_error(rc, "certificate or key", config.certificate_file + "' / '" + config.key_file);
    }
    if (!config.ca_file.empty()) {
        const int rc = gnutls_certificate_set_x509_trust_file(credentials, config.ca_file.c_str(), GNUTLS_X509_FMT_PEM);
        if (rc < 0) return file_error(rc, "CA file", config.ca_file);
        if (rc == 0) return fail(EINVAL, "TLS: the CA file '%s' holds no certificate", config.ca_file.c_str());
    }
    gnutls_priority_t priority = nullptr;
    const std::string priority_text = priority_string(config.ciphers);
    const char* error_at = nullptr;
    if (const int rc = gnutls_priority_init(&priority, priority_text.c_str(), &error_at); rc < 0) {
        return fail(EINVAL, "TLS: priority string rejected at '%s': %s", error_at != nullptr ? error_at : "?",
                    gnutls_strerror(rc));
    }
    context->priority_ = priority;
    out = std::move(context);
    return 0;
}

TlsContext::~TlsContext() {
    if (priority_ != nullptr) gnutls_priority_deinit(static_cast<gnutls_priority_t>(priority_));
    if (credentials_ != nullptr) {
        gnutls_certificate_free_credentials(static_cast<gnutls_certificate_credentials_t>(credentials_));
    }
}

namespace {

// The SHA-256 key id (of the SubjectPublicKeyInfo) of a DER certificate.
int key_pin(const gnutls_datum_t& der, PublicKeyPin& out) {
    gnutls_pubkey_t key = nullptr;
    if (gnutls_pubkey_init(&key) < 0) return -ENOMEM;
    int rc = gnutls_pubkey_import_x509_raw(key, &der, GNUTLS_X509_FMT_DER, 0);
    if (rc >= 0) {
        std::size_t size = out.size();
        rc = gnutls_pubkey_get_key_id(key, GNUTLS_KEYID_USE_SHA256, out.data(), &size);
        if (rc >= 0 && size != out.size()) rc = GNUTLS_E_INTERNAL_ERROR;
    }
    gnutls_pubkey_deinit(key);
    return rc < 0 ? -EINVAL : 0;
}

}  // namespace

bool TlsContext::pinned(const std::uint8_t* der, std::size_t size) const noexcept {
    if (config_.pinned_keys.empty()) return false;
    const gnutls_datum_t datum{const_cast<unsigned char*>(der), static_cast<unsigned>(size)};
    PublicKeyPin pin{};
    if (key_pin(datum, pin) != 0) return false;
    for (const PublicKeyPin& candidate : config_.pinned_keys) {
        if (candidate == pin) return true;
    }
    return false;
}

int public_key_pin_of_certificate(const std::string& certificate_file, PublicKeyPin& out) noexcept {
    gnutls_datum_t file{};
    if (const int rc = gnutls_load_file(certificate_file.c_str(), &file); rc < 0) {
        return fail(ENOENT, "TLS: cannot read '%s': %s", certificate_file.c_str(), gnutls_strerror(rc));
    }
    gnutls_x509_crt_t certificate = nullptr;
    int rc = gnutls_x509_crt_init(&certificate);
    if (rc >= 0) {
        rc = gnutls_x509_crt_import(certificate, &file, GNUTLS_X509_FMT_PEM);
        if (rc < 0) rc = gnutls_x509_crt_import(certificate, &file, GNUTLS_X509_FMT_DER);
    }
    gnutls_datum_t der{};
    if (rc >= 0) rc = gnutls_x509_crt_export2(certificate, GNUTLS_X509_FMT_DER, &der);
    int status = rc < 0 ? fail(EINVAL, "TLS: '%s' is not a certificate: %s", certificate_file.c_str(),
                               gnutls_strerror(rc))
                        : key_pin(der, out);
    if (status == -EINVAL && rc >= 0) status = fail(EINVAL, "TLS: no public key in '%s'", certificate_file.c_str());
    gnutls_free(der.data);
    if (certificate != nullptr) gnutls_x509_crt_deinit(certificate);
    gnutls_free(file.data);
    return status;
}

}  // namespace cf::quic
