// HKDF-Expand-Label, the Initial secrets, the keys a secret expands to and the key update chain, against RFC 9001
// appendix A (A.1 keys, A.5's ChaCha20 secret and its "quic ku" successor, section 5.8's Retry key and nonce) and,
// for SHA-384 where the RFC has no example, against HKDF-Expand spelled out over HMAC (RFC 5869 section 2.3).
#include <doctest/doctest.h>

#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>

#include <algorithm>
#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "engine/quic/cipher_suite.hpp"
#include "engine/quic/hkdf_label.hpp"
#include "engine/quic/initial_secrets.hpp"
#include "engine/quic/packet_keys.hpp"
#include "tests/quic/protection_test_support.hpp"

using namespace cf::quic;
using cf::quic::test::bytes_of;
using cf::quic::test::hex;

namespace {

std::vector<std::uint8_t> expand_label(HkdfHash hash, const std::vector<std::uint8_t>& secret, const char* label,
                                       std::size_t length) {
    std::vector<std::uint8_t> out(length);
    REQUIRE(hkdf_expand_label(hash, secret.data(), secret.size(), label, std::strlen(label), nullptr, 0, out.data(),
                              out.size()) == 0);
    return out;
}

// The slow reference: HkdfLabel written out byte by byte, then T(i) = HMAC(PRK, T(i-1) | info | i).
std::vector<std::uint8_t> reference_expand_label(gnutls_mac_algorithm_t mac, std::size_t hash_len,
                                                 const std::vector<std::uint8_t>& secret, const std::string& label,
                                                 const std::vector<std::uint8_t>& context, std::size_t length) {
    const std::string full = "tls13 " + label;
    // Sized up front: uint16 length, the label with its length byte, the context with its length byte.
    std::vector<std::uint8_t> info(2 + 1 + full.size() + 1 + context.size());
    std::size_t at = 0;
    info[at++] = static_cast<std::uint8_t>(length >> 8);
    info[at++] = static_cast<std::uint8_t>(length & 0xff);
    info[at++] = static_cast<std::uint8_t>(full.size());
    for (const char c : full) info[at++] = static_cast<std::uint8_t>(c);
    info[at++] = static_cast<std::uint8_t>(context.size());
    for (const std::uint8_t byte : context) info[at++] = byte;
    std::vector<std::uint8_t> out;
    std::vector<std::uint8_t> previous;
    for (std::uint8_t counter = 1; out.size() < length; ++counter) {
        std::vector<std::uint8_t> message(previous.size() + info.size() + 1);
        std::copy(previous.begin(), previous.end(), message.begin());
        std::copy(info.begin(), info.end(), message.begin() + static_cast<std::ptrdiff_t>(previous.size()));
        message.back() = counter;
        previous.assign(hash_len, 0);
        REQUIRE(gnutls_hmac_fast(mac, secret.data(), secret.size(), message.data(), message.size(),
                                 previous.data()) == 0);
        out.insert(out.end(), previous.begin(), previous.end());
    }
    out.resize(length);
    return out;
}

// HKDF-Expand with the RFC's own HkdfLabel bytes (appendix A.1 lists them), bypassing our label encoding.
std::vector<std::uint8_t> expand_with_info(const std::vector<std::uint8_t>& secret, const char* info_hex,
                                           std::size_t length) {
    std::vector<std::uint8_t> info = hex(info_hex);
    std::vector<std::uint8_t> key = secret;
    const gnutls_datum_t key_datum{key.data(), static_cast<unsigned>(key.size())};
    const gnutls_datum_t info_datum{info.data(), static_cast<unsigned>(info.size())};
    std::vector<std::uint8_t> out(length);
    REQUIRE(gnutls_hkdf_expand(GNUTLS_MAC_SHA256, &key_datum, &info_datum, out.data(), out.size()) == 0);
    return out;
}

// The client's Destination Connection ID of every appendix A example.
std::vector<std::uint8_t> example_dcid() { return hex("8394c8f03e515708"); }

}  // namespace

TEST_CASE("keys: HKDF-Expand-Label builds the RFC 9001 A.1 labels byte for byte") {
    const std::vector<std::uint8_t> secret = hex("c00cf151ca5be075ed0ebfb5c80323c42d6b7db67881289af4008f1f6c357aea");
    CHECK(expand_label(HkdfHash::sha256, secret, "client in", 32) ==
          expand_with_info(secret, "00200f746c73313320636c69656e7420696e00", 32));
    CHECK(expand_label(HkdfHash::sha256, secret, "server in", 32) ==
          expand_with_info(secret, "00200f746c7331332073657276657220696e00", 32));
    CHECK(expand_label(HkdfHash::sha256, secret, "quic key", 16) ==
          expand_with_info(secret, "00100e746c7331332071756963206b657900", 16));
    CHECK(expand_label(HkdfHash::sha256, secret, "quic iv", 12) ==
          expand_with_info(secret, "000c0d746c733133207175696320697600", 12));
    CHECK(expand_label(HkdfHash::sha256, secret, "quic hp", 16) ==
          expand_with_info(secret, "00100d746c733133207175696320687000", 16));
}

TEST_CASE("keys: RFC 9001 A.1, the initial secret and both sides' Initial secrets, keys, IVs and hp keys") {
    const std::vector<std::uint8_t> kDcid = example_dcid();
    std::uint8_t initial_secret[32];
    REQUIRE(hkdf_extract(HkdfHash::sha256, kQuicV1InitialSalt, sizeof(kQuicV1InitialSalt), kDcid.data(),
                         kDcid.size(), initial_secret) == 0);
    CHECK(bytes_of(initial_secret, 32) == hex("7db5df06e7a69e432496adedb00851923595221596ae2ae9fb8115c1e9ed0a44"));

    InitialSecrets secrets;
    REQUIRE(derive_initial_secrets(kDcid.data(), kDcid.size(), secrets) == 0);
    CHECK(bytes_of(secrets.client, 32) == hex("c00cf151ca5be075ed0ebfb5c80323c42d6b7db67881289af4008f1f6c357aea"));
    CHECK(bytes_of(secrets.server, 32) == hex("3c199828fd139efd216c155ad844cc81fb82fa8d7446fa7d78be803acdda951b"));
    CHECK(secrets.write_secret(false) == secrets.client);
    CHECK(secrets.read_secret(false) == secrets.server);
    CHECK(secrets.write_secret(true) == secrets.server);
    CHECK(secrets.read_secret(true) == secrets.client);

    PacketKeys client;
    REQUIRE(derive_packet_keys(kInitialCipherSuite, secrets.client, 32, client) == 0);
    CHECK(bytes_of(client.key, 16) == hex("1f369613dd76d5467730efcbe3b1a22d"));
    CHECK(bytes_of(client.iv, 12) == hex("fa044b2f42a3fd3b46fb255c"));
    CHECK(bytes_of(client.hp, 16) == hex("9f50449e04a0e810283a1e9933adedd2"));

    PacketKeys server;
    REQUIRE(derive_packet_keys(kInitialCipherSuite, secrets.server, 32, server) == 0);
    CHECK(bytes_of(server.key, 16) == hex("cf3a5331653c364c88f0f379b6067e37"));
    CHECK(bytes_of(server.iv, 12) == hex("0ac1493ca1905853b0bba03e"));
    CHECK(bytes_of(server.hp, 16) == hex("c206b8d9b9f0f37644430b490eeaa314"));
}

TEST_CASE("keys: RFC 9001 A.5, a ChaCha20-Poly1305 secret's key, IV, hp key and key update secret") {
    const std::vector<std::uint8_t> secret = hex("9ac312a7f877468ebe69422748ad00a15443f18203a07d6060f688f30f21632b");
    PacketKeys keys;
    REQUIRE(derive_packet_keys(CipherSuite::chacha20_poly1305_sha256, secret.data(), secret.size(), keys) == 0);
    CHECK(keys.suite == CipherSuite::chacha20_poly1305_sha256);
    CHECK(bytes_of(keys.key, 32) == hex("c6d98ff3441c3fe1b2182094f69caa2ed4b716b65488960a7a984979fb23e1c8"));
    CHECK(bytes_of(keys.iv, 12) == hex("e0459b3474bdd0e44a41c144"));
    CHECK(bytes_of(keys.hp, 32) == hex("25a282b9e82f06f21f488917a4fc8f1b73573685608597d0efcb076b0ab7a7a4"));

    std::uint8_t next[32];
    REQUIRE(derive_next_secret(CipherSuite::chacha20_poly1305_sha256, secret.data(), secret.size(), next) == 0);
    CHECK(bytes_of(next, 32) == hex("1223504755036d556342ee9361d253421a826c9ecdf3c7148684b36b714881f9"));

    // In place (next == secret) gives the same, and the chain goes on from it.
    std::vector<std::uint8_t> chained = secret;
    REQUIRE(derive_next_secret(CipherSuite::chacha20_poly1305_sha256, chained.data(), 32, chained.data()) == 0);
    CHECK(chained == bytes_of(next, 32));
    REQUIRE(derive_next_secret(CipherSuite::chacha20_poly1305_sha256, chained.data(), 32, chained.data()) == 0);
    CHECK(chained == reference_expand_label(GNUTLS_MAC_SHA256, 32, bytes_of(next, 32), "quic ku", {}, 32));

    // A key update changes key and IV only.
    PacketKeys updated;
    REQUIRE(derive_payload_keys(CipherSuite::chacha20_poly1305_sha256, next, 32, updated) == 0);
    CHECK(bytes_of(updated.key, 32) == reference_expand_label(GNUTLS_MAC_SHA256, 32, bytes_of(next, 32), "quic key",
                                                              {}, 32));
    CHECK(bytes_of(updated.iv, 12) == reference_expand_label(GNUTLS_MAC_SHA256, 32, bytes_of(next, 32), "quic iv",
                                                             {}, 12));
    CHECK(bytes_of(updated.hp, 32) == std::vector<std::uint8_t>(32, 0));
}

TEST_CASE("keys: RFC 9001 section 5.8, the Retry key and nonce come from the published secret") {
    const std::vector<std::uint8_t> secret = hex("d9c9943e6101fd200021506bcc02814c73030f25c79d71ce876eca876e6fca8e");
    PacketKeys keys;
    REQUIRE(derive_payload_keys(CipherSuite::aes_128_gcm_sha256, secret.data(), secret.size(), keys) == 0);
    CHECK(bytes_of(keys.key, 16) == hex("be0c690b9f66575a1d766b54e368c84e"));
    CHECK(bytes_of(keys.iv, 12) == hex("461599d35d632bf2239825bb"));
}

TEST_CASE("keys: AES-256-GCM's SHA-384 secrets and random labels and contexts match HKDF spelled out over HMAC") {
    std::mt19937_64 random(0x9001'5eed);
    for (int round = 0; round < 50; ++round) {
        std::vector<std::uint8_t> secret(48);
        for (auto& byte : secret) byte = static_cast<std::uint8_t>(random());
        PacketKeys keys;
        REQUIRE(derive_packet_keys(CipherSuite::aes_256_gcm_sha384, secret.data(), 48, keys) == 0);
        CHECK(bytes_of(keys.key, 32) == reference_expand_label(GNUTLS_MAC_SHA384, 48, secret, "quic key", {}, 32));
        CHECK(bytes_of(keys.iv, 12) == reference_expand_label(GNUTLS_MAC_SHA384, 48, secret, "quic iv", {}, 12));
        CHECK(bytes_of(keys.hp, 32) == reference_expand_label(GNUTLS_MAC_SHA384, 48, secret, "quic hp", {}, 32));
        std::uint8_t next[48];
        REQUIRE(derive_next_secret(CipherSuite::aes_256_gcm_sha384, secret.data(), 48, next) == 0);
        CHECK(bytes_of(next, 48) == reference_expand_label(GNUTLS_MAC_SHA384, 48, secret, "quic ku", {}, 48));

        // Any label up to the limit, any context up to 255 bytes, outputs longer than one hash.
        std::string label(random() % (kMaxHkdfLabelBytes + 1), 'x');
        for (auto& c : label) c = static_cast<char>('a' + random() % 26);
        std::vector<std::uint8_t> context(random() % 256);
        for (auto& byte : context) byte = static_cast<std::uint8_t>(random());
        const std::size_t length = 1 + random() % 200;
        const bool sha384 = round % 2 == 0;
        std::vector<std::uint8_t> prk(sha384 ? 48 : 32);
        for (auto& byte : prk) byte = static_cast<std::uint8_t>(random());
        std::vector<std::uint8_t> out(length);
        REQUIRE(hkdf_expand_label(sha384 ? HkdfHash::sha384 : HkdfHash::sha256, prk.data(), prk.size(),
                                  label.data(), label.size(), context.data(), context.size(), out.data(),
                                  out.size()) == 0);
        CHECK(out == reference_expand_label(sha384 ? GNUTLS_MAC_SHA384 : GNUTLS_MAC_SHA256, sha384 ? 48 : 32, prk,
                                            label, context, length));
    }
}

TEST_CASE("keys: lengths out of range are refused") {
    std::uint8_t secret[48] = {};
    std::uint8_t out[64];
    const std::string too_long(kMaxHkdfLabelBytes + 1, 'x');
    CHECK(hkdf_expand_label(HkdfHash::sha256, secret, 32, too_long.data(), too_long.size(), nullptr, 0, out, 16) ==
          -EINVAL);
    std::uint8_t context[256] = {};
    CHECK(hkdf_expand_label(HkdfHash::sha256, secret, 32, "quic key", 8, context, 256, out, 16) == -EINVAL);
    CHECK(hkdf_expand_label(HkdfHash::sha256, secret, 32, "quic key", 8, nullptr, 0, out, 0) == -EINVAL);
    CHECK(hkdf_expand_label(HkdfHash::sha256, secret, 31, "quic key", 8, nullptr, 0, out, 16) == -EINVAL);
    CHECK(hkdf_expand_label(HkdfHash::sha384, secret, 32, "quic key", 8, nullptr, 0, out, 16) == -EINVAL);
    std::vector<std::uint8_t> huge(255 * 32 + 1);
    CHECK(hkdf_expand_label(HkdfHash::sha256, secret, 32, "quic key", 8, nullptr, 0, huge.data(), huge.size()) ==
          -EINVAL);
    CHECK(hkdf_expand_label(HkdfHash::sha256, secret, 32, "quic key", 8, nullptr, 0, huge.data(), 255 * 32) == 0);

    PacketKeys keys;
    CHECK(derive_packet_keys(CipherSuite::aes_256_gcm_sha384, secret, 32, keys) == -EINVAL);
    CHECK(derive_packet_keys(CipherSuite::aes_128_gcm_sha256, secret, 48, keys) == -EINVAL);
    CHECK(derive_next_secret(CipherSuite::chacha20_poly1305_sha256, secret, 0, out) == -EINVAL);

    InitialSecrets secrets;
    std::uint8_t dcid[21] = {};
    CHECK(derive_initial_secrets(dcid, 21, secrets) == -EINVAL);
    CHECK(derive_initial_secrets(dcid, 20, secrets) == 0);
    CHECK(derive_initial_secrets(nullptr, 0, secrets) == 0);   // an empty DCID still derives (the packet layer rules)
}

TEST_CASE("keys: the cipher suite table") {
    CipherSuite suite{};
    CHECK(cipher_suite_from_tls(0x1301, suite));
    CHECK(suite == CipherSuite::aes_128_gcm_sha256);
    CHECK(cipher_suite_from_tls(0x1302, suite));
    CHECK(suite == CipherSuite::aes_256_gcm_sha384);
    CHECK(cipher_suite_from_tls(0x1303, suite));
    CHECK(suite == CipherSuite::chacha20_poly1305_sha256);
    CHECK_FALSE(cipher_suite_from_tls(0x1304, suite));   // AES-128-CCM: not offered
    CHECK_FALSE(cipher_suite_from_tls(0x1305, suite));
    CHECK(secret_bytes(CipherSuite::aes_256_gcm_sha384) == 48);
    CHECK(aead_key_bytes(CipherSuite::aes_128_gcm_sha256) == 16);
    CHECK(hp_key_bytes(CipherSuite::chacha20_poly1305_sha256) == 32);
    CHECK(confidentiality_limit(CipherSuite::aes_128_gcm_sha256) == (std::uint64_t{1} << 23));
    CHECK(integrity_limit(CipherSuite::chacha20_poly1305_sha256) == (std::uint64_t{1} << 36));
}

TEST_CASE("keys: one keyed expander gives every label what a fresh expansion gives") {
    // Fixed-seed secrets, labels, contexts and lengths (one and several hash blocks) through one expander per
    // secret, in turn, against the slow reference: the keyed state must come back unchanged after every block and
    // label.
    std::mt19937 random(20261208);
    for (const bool sha384 : {false, true}) {
        const std::size_t hash_len = sha384 ? 48 : 32;
        const gnutls_mac_algorithm_t mac = sha384 ? GNUTLS_MAC_SHA384 : GNUTLS_MAC_SHA256;
        for (int round = 0; round < 20; ++round) {
            std::vector<std::uint8_t> secret(hash_len + random() % 17);
            for (std::uint8_t& byte : secret) byte = static_cast<std::uint8_t>(random());
            HkdfLabelExpander expander;
            REQUIRE(expander.init(sha384 ? HkdfHash::sha384 : HkdfHash::sha256, secret.data(), secret.size()) == 0);
            for (int label_index = 0; label_index < 5; ++label_index) {
                std::string label(1 + random() % 20, 'a');
                for (char& c : label) c = static_cast<char>('a' + random() % 26);
                std::vector<std::uint8_t> context(random() % 3 == 0 ? random() % 64 : 0);
                for (std::uint8_t& byte : context) byte = static_cast<std::uint8_t>(random());
                const std::size_t length = 1 + random() % (3 * hash_len);
                std::vector<std::uint8_t> out(length);
                REQUIRE(expander.expand(label.data(), label.size(), context.data(), context.size(), out.data(),
                                        out.size()) == 0);
                CHECK(out == reference_expand_label(mac, hash_len, secret, label, context, length));
            }
        }
    }
}

TEST_CASE("keys: an expander refuses use before a secret, short secrets and lengths out of range") {
    std::uint8_t secret[48] = {1}, out[16];
    HkdfLabelExpander expander;
    CHECK(expander.expand("quic key", 8, nullptr, 0, out, sizeof out) == -EINVAL);   // no secret yet
    CHECK(expander.init(HkdfHash::sha384, secret, 47) == -EINVAL);
    CHECK(expander.expand("quic key", 8, nullptr, 0, out, sizeof out) == -EINVAL);   // the failed init left none
    REQUIRE(expander.init(HkdfHash::sha256, secret, 32) == 0);
    CHECK(expander.expand("quic key", 8, nullptr, 0, out, 0) == -EINVAL);
    std::vector<std::uint8_t> huge(255 * 32 + 1);
    CHECK(expander.expand("quic key", 8, nullptr, 0, huge.data(), huge.size()) == -EINVAL);
    const std::string too_long(kMaxHkdfLabelBytes + 1, 'x');
    CHECK(expander.expand(too_long.data(), too_long.size(), nullptr, 0, out, sizeof out) == -EINVAL);
    // A refused call leaves the keyed state usable: the next label still matches a fresh expansion.
    std::uint8_t again[16], fresh[16];
    REQUIRE(expander.expand("quic iv", 7, nullptr, 0, again, sizeof again) == 0);
    REQUIRE(hkdf_expand_label(HkdfHash::sha256, secret, 32, "quic iv", 7, nullptr, 0, fresh, sizeof fresh) == 0);
    CHECK(std::memcmp(again, fresh, sizeof fresh) == 0);
    // Keyed again with another secret, it follows the new one.
    secret[0] = 2;
    REQUIRE(expander.init(HkdfHash::sha256, secret, 32) == 0);
    REQUIRE(expander.expand("quic iv", 7, nullptr, 0, again, sizeof again) == 0);
    CHECK(std::memcmp(again, fresh, sizeof fresh) != 0);
}
