// TLS 1.3 handshakes between two in-process TlsSessions, handshake bytes handed over by level as QUIC's CRYPTO
// frames would carry them. Keys and certificates are made at test time with certtool (gnutls-bin): none is
// committed.
#include "engine/quic/tls_session.hpp"

#include <doctest/doctest.h>

#include <unistd.h>

#include <array>
#include <cstdio>
#include <cstdlib>
#include <deque>
#include <fstream>
#include <map>
#include <random>
#include <string>
#include <vector>

#include "engine/quic/transport_error.hpp"
#include "platform/os/last_error.hpp"
#include "tests/quic/test_pki.hpp"

using namespace cf::quic;
using cf::quic::test::pki;

namespace {

constexpr std::uint64_t kBadCertificate = 0x0100 + 42;
constexpr std::uint64_t kMissingExtension = 0x0100 + 109;
constexpr std::uint64_t kNoApplicationProtocol = 0x0100 + 120;

// One end: what TLS asked it to send per level, the secrets it got, the peer's transport parameters.
struct End : TlsEvents {
    std::map<int, std::deque<std::uint8_t>> outbox;
    std::map<std::pair<int, int>, std::vector<std::uint8_t>> secrets;   // (level, direction) -> secret
    std::vector<std::uint8_t> peer_parameters;
    std::uint64_t refuse_parameters = 0;
    std::unique_ptr<TlsContext> context;
    std::unique_ptr<TlsSession> session;

    std::uint64_t on_handshake_bytes(EncryptionLevel level, const std::uint8_t* data, std::size_t size) noexcept override {
        auto& box = outbox[static_cast<int>(level)];
        box.insert(box.end(), data, data + size);
        return 0;
    }
    std::uint64_t on_secret(EncryptionLevel level, SecretDirection direction, CipherSuite, const std::uint8_t* secret,
                            std::size_t size) noexcept override {
        secrets[{static_cast<int>(level), static_cast<int>(direction)}].assign(secret, secret + size);
        return 0;
    }
    std::uint64_t on_peer_transport_parameters(const std::uint8_t* data, std::size_t size) noexcept override {
        peer_parameters.assign(data, data + size);
        return refuse_parameters;
    }
    const std::vector<std::uint8_t>& secret(EncryptionLevel level, SecretDirection direction) {
        return secrets[{static_cast<int>(level), static_cast<int>(direction)}];
    }
};

TlsConfig server_config(const std::string& name = "server") {
    TlsConfig config;
    config.role = EndpointRole::server;
    config.certificate_file = pki().path(name + ".pem");
    config.key_file = pki().path(name + ".key");
    config.alpn = {"cf-test"};
    return config;
}

TlsConfig client_config() {
    TlsConfig config;
    config.role = EndpointRole::client;
    config.ca_file = pki().path("ca.pem");
    config.server_name = "localhost";
    config.alpn = {"cf-test"};
    return config;
}

void open(End& end, const TlsConfig& config, const std::vector<std::uint8_t>& parameters) {
    REQUIRE_MESSAGE(TlsContext::create(config, end.context) == 0, cf::platform::last_error_message());
    REQUIRE(TlsSession::create(*end.context, end, end.session) == 0);
    REQUIRE(end.session->set_local_transport_parameters(parameters.data(), parameters.size()) == 0);
}

// Hands each side's bytes to the other, level by level, until neither has anything to say.
void exchange(End& client, End& server) {
    REQUIRE(client.session->start() == 0);
    for (int round = 0; round < 20; ++round) {
        bool moved = false;
        for (auto [from, to] : {std::pair{&client, &server}, std::pair{&server, &client}}) {
            for (auto& [level, bytes] : from->outbox) {
                if (bytes.empty()) continue;
                const std::vector<std::uint8_t> chunk(bytes.begin(), bytes.end());
                bytes.clear();
                moved = true;
                if (to->session->receive(static_cast<EncryptionLevel>(level), chunk.data(), chunk.size()) != 0) return;
            }
        }
        if (!moved) return;
    }
}

const std::vector<std::uint8_t> kClientParameters = {0x0f, 0x04, 0xc1, 0xc2, 0xc3, 0xc4};   // initial_source_cid
const std::vector<std::uint8_t> kServerParameters = {0x0f, 0x02, 0x5e, 0x5f, 0x01, 0x02, 0x43, 0xe8};

struct Handshake {
    End client, server;
    Handshake(const TlsConfig& client_settings, const TlsConfig& server_settings) {
        open(client, client_settings, kClientParameters);
        open(server, server_settings, kServerParameters);
        exchange(client, server);
    }
};

void check_keys_agree(End& client, End& server, std::size_t secret_bytes) {
    for (const EncryptionLevel level : {EncryptionLevel::handshake, EncryptionLevel::application}) {
        const auto& client_write = client.secret(level, SecretDirection::write);
        CHECK(client_write.size() == secret_bytes);
        CHECK(client_write == server.secret(level, SecretDirection::read));
        CHECK(server.secret(level, SecretDirection::write) == client.secret(level, SecretDirection::read));
        CHECK(client_write != server.secret(level, SecretDirection::write));
    }
}

}  // namespace

TEST_CASE("tls: an Ed25519 handshake verified against the CA: both ends agree on every secret, ALPN and parameters") {
    Handshake h(client_config(), server_config());
    REQUIRE_MESSAGE(h.client.session->handshake_complete(), h.client.session->error_message());
    REQUIRE_MESSAGE(h.server.session->handshake_complete(), h.server.session->error_message());
    CHECK(h.client.session->alpn() == "cf-test");
    CHECK(h.server.session->alpn() == "cf-test");
    CHECK(h.client.session->peer_authenticated());
    CHECK(h.server.peer_parameters == kClientParameters);
    CHECK(h.client.peer_parameters == kServerParameters);
    CHECK(h.client.session->cipher() == h.server.session->cipher());
    check_keys_agree(h.client, h.server, secret_bytes(h.client.session->cipher()));
    // Nothing left unsent, and no secret for 0-RTT without a ticket.
    for (End* end : {&h.client, &h.server}) {
        for (const auto& [level, bytes] : end->outbox) CHECK(bytes.empty());
        CHECK(end->secret(EncryptionLevel::early_data, SecretDirection::write).empty());
    }
}

TEST_CASE("tls: each cipher suite alone, with its secret size (SHA-256 or SHA-384)") {
    const std::pair<CipherSuite, std::size_t> suites[] = {
        {CipherSuite::aes_128_gcm_sha256, 32},
        {CipherSuite::aes_256_gcm_sha384, 48},
        {CipherSuite::chacha20_poly1305_sha256, 32}};
    for (const auto& [cipher, secret_bytes] : suites) {
        TlsConfig client = client_config();
        client.ciphers = {cipher};
        Handshake h(client, server_config());
        REQUIRE_MESSAGE(h.server.session->handshake_complete(), h.server.session->error_message());
        CHECK(h.client.session->cipher() == cipher);
        CHECK(h.server.session->cipher() == cipher);
        check_keys_agree(h.client, h.server, secret_bytes);
    }
}

TEST_CASE("tls: an ECDSA P-256 server certificate is accepted too") {
    Handshake h(client_config(), server_config("server-p256"));
    CHECK_MESSAGE(h.client.session->handshake_complete(), h.client.session->error_message());
    CHECK(h.client.session->peer_authenticated());
}

TEST_CASE("tls: a server the CA did not sign, or with another name, is refused with bad_certificate") {
    {
        Handshake h(client_config(), server_config("stranger"));
        CHECK_FALSE(h.client.session->handshake_complete());
        CHECK(h.client.session->error_code() == kBadCertificate);
        CHECK(h.client.session->error_message().find("did not verify") != std::string::npos);
        CHECK(h.client.secret(EncryptionLevel::application, SecretDirection::read).empty());
    }
    {
        TlsConfig client = client_config();
        client.server_name = "elsewhere.example";
        Handshake h(client, server_config());
        CHECK(h.client.session->error_code() == kBadCertificate);
    }
}

TEST_CASE("tls: a pinned server key is accepted without a CA; a key not pinned is refused") {
    PublicKeyPin pin{};
    REQUIRE(public_key_pin_of_certificate(pki().path("server.pem"), pin) == 0);
    TlsConfig client = client_config();
    client.ca_file.clear();
    client.pinned_keys = {pin};
    {
        Handshake h(client, server_config());
        CHECK_MESSAGE(h.client.session->handshake_complete(), h.client.session->error_message());
        CHECK(h.client.session->peer_authenticated());
    }
    {
        Handshake h(client, server_config("server-p256"));
        CHECK(h.client.session->error_code() == kBadCertificate);
        CHECK(h.client.session->error_message().find("not pinned") != std::string::npos);
    }
    PublicKeyPin again{};
    REQUIRE(public_key_pin_of_certificate(pki().path("server.pem"), again) == 0);
    CHECK(again == pin);
    CHECK(public_key_pin_of_certificate(pki().path("server.key"), again) == -EINVAL);
    CHECK(public_key_pin_of_certificate(pki().path("absent.pem"), again) == -ENOENT);
}

TEST_CASE("tls: mutual authentication: the server requires a client certificate from its CA or a pinned key") {
    TlsConfig server = server_config();
    server.require_client_certificate = true;
    server.ca_file = pki().path("ca.pem");
    TlsConfig client = client_config();
    client.certificate_file = pki().path("client.pem");
    client.key_file = pki().path("client.key");
    {
        Handshake h(client, server);
        CHECK_MESSAGE(h.server.session->handshake_complete(), h.server.session->error_message());
        CHECK(h.server.session->peer_authenticated());
    }
    {
        Handshake h(client_config(), server);   // no certificate
        CHECK_FALSE(h.server.session->handshake_complete());
        CHECK(h.server.session->error_code() >= kCryptoErrorBase);
        CHECK(h.server.session->error_code() <= kCryptoErrorBase + 0xff);
    }
    {
        TlsConfig stranger = client;
        stranger.certificate_file = pki().path("stranger.pem");
        stranger.key_file = pki().path("stranger.key");
        Handshake h(stranger, server);
        CHECK(h.server.session->error_code() == kBadCertificate);
    }
    {
        PublicKeyPin pin{};
        REQUIRE(public_key_pin_of_certificate(pki().path("stranger.pem"), pin) == 0);
        TlsConfig pinning = server;
        pinning.pinned_keys = {pin};
        TlsConfig stranger = client;
        stranger.certificate_file = pki().path("stranger.pem");
        stranger.key_file = pki().path("stranger.key");
        Handshake h(stranger, pinning);
        CHECK_MESSAGE(h.server.session->handshake_complete(), h.server.session->error_message());
    }
}

TEST_CASE("tls: no ALPN in common fails with no_application_protocol, not decode_error") {
    TlsConfig client = client_config();
    client.alpn = {"h3"};
    Handshake h(client, server_config());
    CHECK(h.server.session->error_code() == kNoApplicationProtocol);
    CHECK_FALSE(h.client.session->handshake_complete());
}

TEST_CASE("tls: a peer without transport parameters fails with missing_extension") {
    End client, server;
    open(client, client_config(), {});   // nothing to send: the extension is left out
    open(server, server_config(), kServerParameters);
    exchange(client, server);
    CHECK(server.session->error_code() == kMissingExtension);
    CHECK(server.secret(EncryptionLevel::handshake, SecretDirection::write).empty());
}

TEST_CASE("tls: parameters the connection refuses fail the handshake with the connection's code") {
    End client, server;
    server.refuse_parameters = code_of(TransportError::transport_parameter_error);
    open(client, client_config(), kClientParameters);
    open(server, server_config(), kServerParameters);
    exchange(client, server);
    CHECK(server.session->error_code() == code_of(TransportError::transport_parameter_error));
    CHECK_FALSE(server.session->handshake_complete());
}

TEST_CASE("tls: garbage handshake bytes fail with a TLS alert or CRYPTO_BUFFER_EXCEEDED, every time after") {
    std::mt19937_64 random(9001);
    int alerts = 0, oversized = 0;
    for (int trial = 0; trial < 60; ++trial) {
        End server;
        open(server, server_config(), kServerParameters);
        std::vector<std::uint8_t> junk(1 + random() % 600);
        for (auto& byte : junk) byte = static_cast<std::uint8_t>(random());
        if (trial % 2 == 0 && junk.size() >= 4) {
            // One well-framed message with a random body (a ClientHello every other time): TLS itself must refuse.
            if (trial % 4 == 0) junk[0] = 1;
            const std::size_t body = junk.size() - 4;
            junk[1] = static_cast<std::uint8_t>(body >> 16);
            junk[2] = static_cast<std::uint8_t>(body >> 8);
            junk[3] = static_cast<std::uint8_t>(body);
        }
        const auto level = EncryptionLevel::initial;   // the only level a server reads before keys
        // A message that only looks incomplete waits for more: the junk keeps coming until past the largest
        // message the session takes.
        std::uint64_t code = 0;
        for (std::size_t fed = 0; code == 0 && fed <= TlsSession::kMaxHandshakeMessageBytes + 4; fed += junk.size()) {
            code = server.session->receive(level, junk.data(), junk.size());
        }
        INFO("trial ", trial, " level ", static_cast<int>(level), " first bytes ", int{junk[0]}, " ", int{junk[1]});
        if (code == code_of(TransportError::crypto_buffer_exceeded)) {
            ++oversized;
        } else {
            CHECK(code >= kCryptoErrorBase);
            CHECK(code <= kCryptoErrorBase + 0xff);
            ++alerts;
        }
        CHECK(server.session->receive(EncryptionLevel::initial, junk.data(), junk.size()) == code);
        CHECK_FALSE(server.session->handshake_complete());
    }
    CHECK(alerts > 10);
    CHECK(oversized > 10);
}

TEST_CASE("tls: bytes at a level without read keys, and a client's post-handshake bytes, are refused") {
    for (const EncryptionLevel level : {EncryptionLevel::early_data, EncryptionLevel::handshake,
                                        EncryptionLevel::application}) {
        End server;
        open(server, server_config(), kServerParameters);
        const std::uint8_t finished[] = {20, 0, 0, 32};
        CHECK(server.session->receive(level, finished, sizeof finished) == code_of(TransportError::protocol_violation));
        CHECK(server.session->receive(EncryptionLevel::initial, finished, 0) == code_of(TransportError::protocol_violation));
    }
    Handshake h(client_config(), server_config());
    REQUIRE(h.server.session->handshake_complete());
    const std::uint8_t key_update[] = {24, 0, 0, 1, 0};
    CHECK(h.server.session->receive(EncryptionLevel::application, key_update, sizeof key_update) == 0x0100 + 10);
    CHECK(h.server.session->error_message().find("post-handshake") != std::string::npos);
}

TEST_CASE("tls: configurations that cannot work are refused when the context is made, with the reason") {
    std::unique_ptr<TlsContext> context;
    TlsConfig server = server_config();
    server.certificate_file.clear();
    CHECK(TlsContext::create(server, context) == -EINVAL);
    server = server_config();
    server.certificate_file = pki().path("absent.pem");
    CHECK(TlsContext::create(server, context) == -ENOENT);
    CHECK(std::string(cf::platform::last_error_message()).find("absent.pem") != std::string::npos);
    TlsConfig client = client_config();
    client.ca_file.clear();
    CHECK(TlsContext::create(client, context) == -EINVAL);
    client.verify_peer = false;
    CHECK(TlsContext::create(client, context) == 0);
    client = client_config();
    client.alpn.clear();
    CHECK(TlsContext::create(client, context) == -EINVAL);
    client.alpn = {std::string(256, 'x')};
    CHECK(TlsContext::create(client, context) == -EINVAL);
    client = client_config();
    client.ca_file = pki().path("server.key");   // not a certificate
    CHECK(TlsContext::create(client, context) != 0);
    server = server_config();
    server.require_client_certificate = true;
    CHECK(TlsContext::create(server, context) == -EINVAL);
    End end;
    open(end, server_config(), kServerParameters);
    std::vector<std::uint8_t> big(TlsSession::kMaxTransportParameterBytes + 1);
    CHECK(end.session->set_local_transport_parameters(big.data(), big.size()) == -EMSGSIZE);
    CHECK(end.session->start() == code_of(TransportError::internal_error));   // start() is the client's
}
