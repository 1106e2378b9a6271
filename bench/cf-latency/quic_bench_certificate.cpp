#include "bench/cf-latency/quic_bench_certificate.hpp"

#include <gnutls/gnutls.h>
#include <gnutls/x509.h>
#include <stdlib.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <ctime>

#include "platform/os/last_error.hpp"

namespace cf::latency {
namespace {

bool write_file(const std::string& path, const gnutls_datum_t& data) {
    FILE* file = std::fopen(path.c_str(), "w");
    if (file == nullptr) return false;
    const bool ok = std::fwrite(data.data, 1, data.size, file) == data.size;
    return std::fclose(file) == 0 && ok;
}

}  // namespace

BenchCertificate::BenchCertificate() {
    char pattern[] = "/tmp/cf-latency-quic-XXXXXX";
    if (mkdtemp(pattern) == nullptr) return;
    dir_ = pattern;
    gnutls_x509_privkey_t key = nullptr;
    gnutls_x509_crt_t crt = nullptr;
    bool ok = gnutls_x509_privkey_init(&key) >= 0 &&
              gnutls_x509_privkey_generate(key, GNUTLS_PK_EDDSA_ED25519, 256, 0) >= 0 &&
              gnutls_x509_crt_init(&crt) >= 0;
    const unsigned char serial[] = {1};
    const time_t now = time(nullptr);
    ok = ok && gnutls_x509_crt_set_version(crt, 3) >= 0 && gnutls_x509_crt_set_serial(crt, serial, 1) >= 0 &&
         gnutls_x509_crt_set_activation_time(crt, now - 60) >= 0 &&
         gnutls_x509_crt_set_expiration_time(crt, now + 86400) >= 0 &&
         gnutls_x509_crt_set_dn_by_oid(crt, GNUTLS_OID_X520_COMMON_NAME, 0, "localhost", 9) >= 0 &&
         gnutls_x509_crt_set_subject_alt_name(crt, GNUTLS_SAN_DNSNAME, "localhost", 9, GNUTLS_FSAN_SET) >= 0 &&
         gnutls_x509_crt_set_key(crt, key) >= 0 && gnutls_x509_crt_sign2(crt, crt, key, GNUTLS_DIG_UNKNOWN, 0) >= 0;
    gnutls_datum_t pem{};
    ok = ok && gnutls_x509_privkey_export2_pkcs8(key, GNUTLS_X509_FMT_PEM, nullptr, GNUTLS_PKCS_PLAIN, &pem) >= 0 &&
         write_file(key_path(), pem);
    gnutls_free(pem.data);
    pem = {};
    ok = ok && gnutls_x509_crt_export2(crt, GNUTLS_X509_FMT_PEM, &pem) >= 0 && write_file(certificate_path(), pem);
    gnutls_free(pem.data);
    if (crt != nullptr) gnutls_x509_crt_deinit(crt);
    if (key != nullptr) gnutls_x509_privkey_deinit(key);
    ok_ = ok;
}

BenchCertificate::~BenchCertificate() {
    if (dir_.empty()) return;
    std::remove(key_path().c_str());
    std::remove(certificate_path().c_str());
    rmdir(dir_.c_str());
}

int make_bench_tls(const BenchCertificate& certificate, std::unique_ptr<quic::TlsContext>& client,
                   std::unique_ptr<quic::TlsContext>& server) {
    if (!certificate.ok()) return platform::fail(EIO, "the benchmark's Ed25519 certificate could not be made");
    quic::TlsConfig client_settings, server_settings;
    client_settings.role = quic::EndpointRole::client;
    client_settings.pinned_keys.resize(1);
    client_settings.server_name = "localhost";
    client_settings.alpn = {"cf-bench"};
    server_settings.role = quic::EndpointRole::server;
    server_settings.certificate_file = certificate.certificate_path();
    server_settings.key_file = certificate.key_path();
    server_settings.alpn = {"cf-bench"};
    if (const int rc = quic::public_key_pin_of_certificate(certificate.certificate_path(), client_settings.pinned_keys[0]);
        rc != 0) {
        return rc;
    }
    if (const int rc = quic::TlsContext::create(client_settings, client); rc != 0) return rc;
    return quic::TlsContext::create(server_settings, server);
}

}  // namespace cf::latency
