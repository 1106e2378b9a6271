// Packet and header protection (RFC 9001 section 5) and key update (section 6): RFC 9001 appendix A byte for
// byte (A.2 client Initial, A.3 server Initial, A.5 ChaCha20-Poly1305 short header), round trips at every suite
// against a reference seal made with GnuTLS directly and a nonce computed here, every flipped bit refused, every
// truncation refused, and the key update rotation against keys installed fresh from the "quic ku" chain.
// The unprotected headers are written here byte by byte (the packet header codec is not this part's).
#include <doctest/doctest.h>

#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>

#include <cerrno>
#include <cstdint>
#include <cstring>
#include <random>
#include <vector>

#include "engine/quic/cipher_suite.hpp"
#include "engine/quic/header_protection.hpp"
#include "engine/quic/initial_secrets.hpp"
#include "engine/quic/packet_keys.hpp"
#include "engine/quic/packet_number.hpp"
#include "engine/quic/packet_protection.hpp"
#include "tests/quic/protection_test_support.hpp"

using namespace cf::quic;
using cf::quic::test::bytes_of;
using cf::quic::test::hex;

namespace {

constexpr CipherSuite kAllSuites[] = {CipherSuite::aes_128_gcm_sha256, CipherSuite::aes_256_gcm_sha384,
                                      CipherSuite::chacha20_poly1305_sha256};

struct Initials {
    InitialSecrets secrets;
    PacketProtector client_write;   // the client's sealing side
    PacketProtector server_read;    // the server's opening side of the same direction
    PacketProtector server_write;
    PacketProtector client_read;
};

void install_initials(Initials& initials) {
    const std::vector<std::uint8_t> dcid = hex("8394c8f03e515708");
    REQUIRE(derive_initial_secrets(dcid.data(), dcid.size(), initials.secrets) == 0);
    REQUIRE(initials.client_write.install(kInitialCipherSuite, initials.secrets.write_secret(false), 32, false) == 0);
    REQUIRE(initials.server_read.install(kInitialCipherSuite, initials.secrets.read_secret(true), 32, false) == 0);
    REQUIRE(initials.server_write.install(kInitialCipherSuite, initials.secrets.write_secret(true), 32, false) == 0);
    REQUIRE(initials.client_read.install(kInitialCipherSuite, initials.secrets.read_secret(false), 32, false) == 0);
}

// RFC 9001 A.2: the unprotected client Initial, header then the CRYPTO frame padded to 1162 bytes, with room for
// the tag.
std::vector<std::uint8_t> client_initial_plaintext(std::size_t* header_len) {
    std::vector<std::uint8_t> packet = hex("c300000001088394c8f03e5157080000449e00000002");
    *header_len = packet.size();
    std::vector<std::uint8_t> payload = hex(test::kClientInitialCrypto);
    payload.resize(1162, 0x00);   // PADDING frames
    packet.insert(packet.end(), payload.begin(), payload.end());
    packet.resize(packet.size() + kAeadTagBytes);
    return packet;
}

gnutls_cipher_algorithm_t reference_aead(CipherSuite suite) {
    return suite == CipherSuite::aes_128_gcm_sha256   ? GNUTLS_CIPHER_AES_128_GCM
           : suite == CipherSuite::aes_256_gcm_sha384 ? GNUTLS_CIPHER_AES_256_GCM
                                                      : GNUTLS_CIPHER_CHACHA20_POLY1305;
}

// The reference: GnuTLS's AEAD called directly, a fresh handle, the nonce made here from the RFC's words.
std::vector<std::uint8_t> reference_seal(CipherSuite suite, const std::vector<std::uint8_t>& secret,
                                         const std::vector<std::uint8_t>& header,
                                         const std::vector<std::uint8_t>& payload, std::uint64_t pn) {
    PacketKeys keys;
    REQUIRE(derive_packet_keys(suite, secret.data(), secret.size(), keys) == 0);
    std::uint8_t nonce[12];
    std::memcpy(nonce, keys.iv, 12);
    for (int i = 0; i < 8; ++i) nonce[11 - i] ^= static_cast<std::uint8_t>(pn >> (8 * i));
    gnutls_datum_t key{keys.key, static_cast<unsigned>(aead_key_bytes(suite))};
    gnutls_aead_cipher_hd_t handle = nullptr;
    REQUIRE(gnutls_aead_cipher_init(&handle, reference_aead(suite), &key) == 0);
    std::vector<std::uint8_t> out(payload.size() + 16);
    std::size_t out_len = out.size();
    REQUIRE(gnutls_aead_cipher_encrypt(handle, nonce, 12, header.data(), header.size(), 16, payload.data(),
                                       payload.size(), out.data(), &out_len) == 0);
    gnutls_aead_cipher_deinit(handle);
    REQUIRE(out_len == out.size());
    return out;
}

std::vector<std::uint8_t> random_bytes(std::mt19937_64& random, std::size_t size) {
    std::vector<std::uint8_t> bytes(size);
    for (auto& byte : bytes) byte = static_cast<std::uint8_t>(random());
    return bytes;
}

// A random unprotected header: long (Initial/0-RTT/Handshake type bits, random CIDs, a 2-byte Length) or short
// (random DCID), ending with a pn_bytes-long packet number field holding the low bytes of `pn`.
std::vector<std::uint8_t> random_header(std::mt19937_64& random, bool long_header, std::size_t pn_bytes,
                                        std::uint64_t pn, std::size_t payload_len) {
    std::vector<std::uint8_t> header;
    const std::uint8_t low = static_cast<std::uint8_t>(pn_bytes - 1);
    if (long_header) {
        header.push_back(static_cast<std::uint8_t>(0xc0 | ((random() % 3) << 4) | low));
        for (std::uint8_t byte : {0x00, 0x00, 0x00, 0x01}) header.push_back(byte);
        for (int cid = 0; cid < 2; ++cid) {
            const std::size_t length = random() % 21;
            header.push_back(static_cast<std::uint8_t>(length));
            const auto bytes = random_bytes(random, length);
            header.insert(header.end(), bytes.begin(), bytes.end());
        }
        const std::size_t length = pn_bytes + payload_len + kAeadTagBytes;
        header.push_back(static_cast<std::uint8_t>(0x40 | (length >> 8)));
        header.push_back(static_cast<std::uint8_t>(length));
    } else {
        header.push_back(static_cast<std::uint8_t>(0x40 | (random() & 0x24) | low));   // spin and key phase bits
        const auto dcid = random_bytes(random, random() % 21);
        header.insert(header.end(), dcid.begin(), dcid.end());
    }
    for (std::size_t i = pn_bytes; i-- > 0;) header.push_back(static_cast<std::uint8_t>(pn >> (8 * i)));
    return header;
}

}  // namespace

TEST_CASE("protection: RFC 9001 A.2, the client Initial protected byte for byte and opened again") {
    Initials initials;
    install_initials(initials);
    std::size_t header_len = 0;
    std::vector<std::uint8_t> packet = client_initial_plaintext(&header_len);
    REQUIRE(header_len == 22);
    REQUIRE(packet.size() == 1200);
    const std::vector<std::uint8_t> plaintext = packet;

    // The mask the RFC shows for the sample it shows.
    HeaderProtectionKey hp;
    PacketKeys keys;
    REQUIRE(derive_packet_keys(kInitialCipherSuite, initials.secrets.client, 32, keys) == 0);
    REQUIRE(hp.install(kInitialCipherSuite, keys.hp) == 0);
    std::uint8_t mask[kHpMaskBytes];
    REQUIRE(hp.mask(hex("d1b1c98dd7689fb8ec11d242b123dc9b").data(), mask) == 0);
    CHECK(bytes_of(mask, 5) == hex("437b9aec36"));

    REQUIRE(initials.client_write.protect_packet(packet.data(), header_len, 1162, 2) == 0);
    CHECK(packet == hex(test::kClientInitialProtected));

    // The server: header protection off (the packet number field starts at byte 18), then the payload.
    ProtectedFields fields;
    REQUIRE(initials.server_read.remove_header_protection(packet.data(), packet.size(), 18, &fields) == 0);
    CHECK(fields.first_byte == 0xc3);
    CHECK(fields.packet_number_length == 4);
    CHECK(fields.truncated_packet_number == 2);
    CHECK(bytes_of(packet.data(), 22) == bytes_of(plaintext.data(), 22));
    std::size_t payload_len = 0;
    REQUIRE(initials.server_read.open_packet(packet.data(), 22, packet.size(), 2, &payload_len) == 0);
    CHECK(payload_len == 1162);
    CHECK(bytes_of(packet.data(), 22 + 1162) == bytes_of(plaintext.data(), 22 + 1162));

    // The client's own read keys are the server's: they do not open it.
    std::vector<std::uint8_t> again = hex(test::kClientInitialProtected);
    REQUIRE(initials.client_read.remove_header_protection(again.data(), again.size(), 18, &fields) == 0);
    const std::size_t wrong_header_len = 18 + fields.packet_number_length;
    CHECK(initials.client_read.open_packet(again.data(), wrong_header_len, again.size(), 2, &payload_len) ==
          -EBADMSG);
}

TEST_CASE("protection: RFC 9001 A.3, the server Initial protected byte for byte and opened again") {
    Initials initials;
    install_initials(initials);
    std::vector<std::uint8_t> packet = hex("c1000000010008f067a5502a4262b50040750001");
    const std::size_t header_len = packet.size();
    const std::vector<std::uint8_t> payload = hex(test::kServerInitialPayload);
    packet.insert(packet.end(), payload.begin(), payload.end());
    packet.resize(packet.size() + kAeadTagBytes);
    const std::vector<std::uint8_t> plaintext = packet;

    REQUIRE(initials.server_write.protect_packet(packet.data(), header_len, payload.size(), 1) == 0);
    CHECK(packet == hex(test::kServerInitialProtected));
    CHECK(bytes_of(packet.data(), 20) == hex("cf000000010008f067a5502a4262b5004075c0d9"));

    ProtectedFields fields;
    REQUIRE(initials.client_read.remove_header_protection(packet.data(), packet.size(), 18, &fields) == 0);
    CHECK(fields.first_byte == 0xc1);
    CHECK(fields.packet_number_length == 2);
    CHECK(fields.truncated_packet_number == 1);
    std::size_t payload_len = 0;
    REQUIRE(initials.client_read.open_packet(packet.data(), 20, packet.size(), 1, &payload_len) == 0);
    CHECK(payload_len == payload.size());
    CHECK(bytes_of(packet.data(), 20 + payload.size()) == bytes_of(plaintext.data(), 20 + payload.size()));
}

TEST_CASE("protection: RFC 9001 A.5, a ChaCha20-Poly1305 short header packet byte for byte") {
    const std::vector<std::uint8_t> secret = hex("9ac312a7f877468ebe69422748ad00a15443f18203a07d6060f688f30f21632b");
    PacketProtector write;
    PacketProtector read;
    REQUIRE(write.install(CipherSuite::chacha20_poly1305_sha256, secret.data(), secret.size(), true) == 0);
    REQUIRE(read.install(CipherSuite::chacha20_poly1305_sha256, secret.data(), secret.size(), true) == 0);

    constexpr std::uint64_t kPn = 654360564;
    std::vector<std::uint8_t> packet = hex("4200bff4 01");
    packet.resize(packet.size() + kAeadTagBytes);
    REQUIRE(write.seal(packet.data(), 4, packet.data() + 4, 1, kPn) == 0);
    CHECK(bytes_of(packet.data() + 4, 17) == hex("655e5cd55c41f69080575d7999c25a5bfb"));

    HeaderProtectionKey hp;
    PacketKeys keys;
    REQUIRE(derive_packet_keys(CipherSuite::chacha20_poly1305_sha256, secret.data(), 32, keys) == 0);
    REQUIRE(hp.install(CipherSuite::chacha20_poly1305_sha256, keys.hp) == 0);
    std::uint8_t mask[kHpMaskBytes];
    REQUIRE(hp.mask(hex("5e5cd55c41f69080575d7999c25a5bfb").data(), mask) == 0);
    CHECK(bytes_of(mask, 5) == hex("aefefe7d03"));

    REQUIRE(write.apply_header_protection(packet.data(), packet.size(), 1) == 0);
    CHECK(packet == hex("4cfe4189655e5cd55c41f69080575d7999c25a5bfb"));

    // Whole-packet protect gives the same.
    std::vector<std::uint8_t> whole = hex("4200bff4 01");
    whole.resize(whole.size() + kAeadTagBytes);
    REQUIRE(write.protect_packet(whole.data(), 4, 1, kPn) == 0);
    CHECK(whole == packet);

    ProtectedFields fields;
    REQUIRE(read.remove_header_protection(packet.data(), packet.size(), 1, &fields) == 0);
    CHECK(fields.first_byte == 0x42);
    CHECK(fields.packet_number_length == 3);
    CHECK(fields.truncated_packet_number == 0x00bff4);
    CHECK(decode_packet_number(654360563, fields.truncated_packet_number, 3) == kPn);
    std::size_t payload_len = 0;
    REQUIRE(read.open_packet(packet.data(), 4, packet.size(), kPn, &payload_len) == 0);
    CHECK(payload_len == 1);
    CHECK(packet[4] == 0x01);

    // 21 bytes is the least: one byte fewer and the sample runs past the end, and nothing is touched.
    std::vector<std::uint8_t> short_packet = hex("4cfe4189655e5cd55c41f69080575d7999c25a5b");
    const std::vector<std::uint8_t> before = short_packet;
    CHECK(read.remove_header_protection(short_packet.data(), short_packet.size(), 1, &fields) == -EMSGSIZE);
    CHECK(short_packet == before);
}

TEST_CASE("protection: AES header protection masks are AES-ECB blocks (FIPS-197 appendix C.1 and C.3)") {
    // The RFC's examples only cover AES-128; AES-256's mask is checked against the AES standard's own example.
    const std::vector<std::uint8_t> key = hex("000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f");
    const std::vector<std::uint8_t> block = hex("00112233445566778899aabbccddeeff");
    std::uint8_t mask[kHpMaskBytes];
    HeaderProtectionKey aes128;
    REQUIRE(aes128.install(CipherSuite::aes_128_gcm_sha256, key.data()) == 0);
    REQUIRE(aes128.mask(block.data(), mask) == 0);
    CHECK(bytes_of(mask, 5) == hex("69c4e0d86a"));   // of 69c4e0d86a7b0430d8cdb78070b4c55a
    HeaderProtectionKey aes256;
    REQUIRE(aes256.install(CipherSuite::aes_256_gcm_sha384, key.data()) == 0);
    for (int again = 0; again < 3; ++again) {   // the CBC state is reset for every mask
        REQUIRE(aes256.mask(block.data(), mask) == 0);
        CHECK(bytes_of(mask, 5) == hex("8ea2b7ca51"));   // of 8ea2b7ca516745bfeafc49904b496089
    }
}

TEST_CASE("protection: random round trips at every suite match a reference seal") {
    std::mt19937_64 random(0x9001'0a11);
    for (const CipherSuite suite : kAllSuites) {
        CAPTURE(static_cast<int>(suite));
        for (int round = 0; round < 60; ++round) {
            const std::vector<std::uint8_t> secret = random_bytes(random, secret_bytes(suite));
            const bool key_update = round % 2 == 0;
            PacketProtector write;
            PacketProtector read;
            REQUIRE(write.install(suite, secret.data(), secret.size(), key_update) == 0);
            REQUIRE(read.install(suite, secret.data(), secret.size(), key_update) == 0);
            REQUIRE(write.suite() == suite);

            const std::size_t pn_bytes = 1 + random() % 4;
            const std::uint64_t pn = round == 0 ? kMaxPacketNumber : random() & kMaxPacketNumber;
            // Payloads from the least the sample allows to a full datagram, edges included.
            const std::size_t least = pn_bytes >= 4 ? 0 : 4 - pn_bytes;
            const std::size_t payload_len = round == 1 ? least : round == 2 ? 1400 : least + random() % 1400;
            const bool long_header = random() % 2 == 0;
            const std::vector<std::uint8_t> header = random_header(random, long_header, pn_bytes, pn, payload_len);
            const std::vector<std::uint8_t> payload = random_bytes(random, payload_len);

            std::vector<std::uint8_t> packet = header;
            packet.insert(packet.end(), payload.begin(), payload.end());
            packet.resize(packet.size() + kAeadTagBytes);
            REQUIRE(write.protect_packet(packet.data(), header.size(), payload_len, pn) == 0);

            // The payload is exactly the reference's; the header differs only where header protection may act.
            CHECK(bytes_of(packet.data() + header.size(), payload_len + 16) ==
                  reference_seal(suite, secret, header, payload, pn));
            const std::size_t pn_offset = header.size() - pn_bytes;
            CHECK((packet[0] & ~(long_header ? 0x0f : 0x1f)) == (header[0] & ~(long_header ? 0x0f : 0x1f)));
            CHECK(bytes_of(packet.data() + 1, pn_offset - 1) == bytes_of(header.data() + 1, pn_offset - 1));

            ProtectedFields fields;
            REQUIRE(read.remove_header_protection(packet.data(), packet.size(), pn_offset, &fields) == 0);
            CHECK(fields.first_byte == header[0]);
            CHECK(fields.packet_number_length == pn_bytes);
            const std::uint64_t window = pn_bytes == 4 ? 0xffffffffu : (std::uint64_t{1} << (8 * pn_bytes)) - 1;
            CHECK(fields.truncated_packet_number == (pn & window));
            CHECK(bytes_of(packet.data(), header.size()) == header);
            std::size_t opened_len = 0;
            REQUIRE(read.open_packet(packet.data(), header.size(), packet.size(), pn, &opened_len) == 0);
            CHECK(opened_len == payload_len);
            CHECK(bytes_of(packet.data() + header.size(), payload_len) == payload);
        }
    }
}

TEST_CASE("protection: a flipped bit anywhere in the client Initial fails to open") {
    Initials initials;
    install_initials(initials);
    const std::vector<std::uint8_t> protected_packet = hex(test::kClientInitialProtected);
    std::size_t refused = 0;
    std::vector<std::uint8_t> packet;
    for (std::size_t bit = 0; bit < protected_packet.size() * 8; ++bit) {
        packet = protected_packet;
        packet[bit / 8] ^= static_cast<std::uint8_t>(1u << (bit % 8));
        ProtectedFields fields;
        // The length is unchanged, so header protection always comes off; what it reveals may be wrong.
        REQUIRE(initials.server_read.remove_header_protection(packet.data(), packet.size(), 18, &fields) == 0);
        const std::uint64_t pn = decode_packet_number(1, fields.truncated_packet_number, fields.packet_number_length);
        std::size_t payload_len = 0;
        const int status = initials.server_read.open_packet(packet.data(), 18 + fields.packet_number_length,
                                                            packet.size(), pn, &payload_len);
        if (status == -EBADMSG) ++refused;
        else FAIL_CHECK("bit " << bit << " flipped still opened (status " << status << ")");
    }
    CHECK(refused == protected_packet.size() * 8);
}

TEST_CASE("protection: a flipped bit in random short header packets at every suite fails to open") {
    std::mt19937_64 random(0x9001'f11b);
    for (const CipherSuite suite : kAllSuites) {
        const std::vector<std::uint8_t> secret = random_bytes(random, secret_bytes(suite));
        PacketProtector write;
        PacketProtector read;
        REQUIRE(write.install(suite, secret.data(), secret.size(), true) == 0);
        REQUIRE(read.install(suite, secret.data(), secret.size(), true) == 0);
        const std::uint64_t pn = 1000 + random() % 1000;
        const std::vector<std::uint8_t> header = random_header(random, false, 2, pn, 40);
        std::vector<std::uint8_t> original = header;
        const auto payload = random_bytes(random, 40);
        original.insert(original.end(), payload.begin(), payload.end());
        original.resize(original.size() + kAeadTagBytes);
        REQUIRE(write.protect_packet(original.data(), header.size(), payload.size(), pn) == 0);
        const std::size_t pn_offset = header.size() - 2;
        for (std::size_t bit = 0; bit < original.size() * 8; ++bit) {
            std::vector<std::uint8_t> packet = original;
            packet[bit / 8] ^= static_cast<std::uint8_t>(1u << (bit % 8));
            ProtectedFields fields;
            REQUIRE(read.remove_header_protection(packet.data(), packet.size(), pn_offset, &fields) == 0);
            const std::uint64_t decoded =
                decode_packet_number(pn - 1, fields.truncated_packet_number, fields.packet_number_length);
            std::size_t payload_len = 0;
            CHECK_MESSAGE(read.open_packet(packet.data(), pn_offset + fields.packet_number_length, packet.size(),
                                           decoded, &payload_len) == -EBADMSG,
                          "suite " << static_cast<int>(suite) << " bit " << bit);
        }
    }
}

TEST_CASE("protection: every truncation of the client Initial is refused, never read past its end") {
    Initials initials;
    install_initials(initials);
    const std::vector<std::uint8_t> protected_packet = hex(test::kClientInitialProtected);
    for (std::size_t length = 0; length < protected_packet.size(); ++length) {
        // Exactly `length` bytes on the heap, so a sanitizer sees any read beyond them.
        std::vector<std::uint8_t> packet(protected_packet.begin(), protected_packet.begin() + length);
        const std::vector<std::uint8_t> before = packet;
        ProtectedFields fields;
        const int removed = initials.server_read.remove_header_protection(packet.data(), packet.size(), 18, &fields);
        if (length < 18 + 4 + kHpSampleBytes) {
            CHECK(removed == -EMSGSIZE);
            CHECK(packet == before);
            continue;
        }
        REQUIRE(removed == 0);
        std::size_t payload_len = 0;
        const std::size_t header_len = 18 + fields.packet_number_length;
        const int opened = initials.server_read.open_packet(packet.data(), header_len, packet.size(), 2, &payload_len);
        CHECK_MESSAGE((opened == -EBADMSG || (opened == -EMSGSIZE && length < header_len + kAeadTagBytes)),
                      "length " << length << " status " << opened);
    }
    // The header alone, or a header longer than the packet.
    std::uint8_t tiny[22] = {};
    std::size_t payload_len = 0;
    CHECK(initials.server_read.open_packet(tiny, 22, 22, 2, &payload_len) == -EMSGSIZE);
    CHECK(initials.server_read.open_packet(tiny, 22, 21, 2, &payload_len) == -EMSGSIZE);
    CHECK(initials.server_read.open(tiny, 0, tiny, 15, 2, &payload_len) == -EMSGSIZE);
    CHECK(initials.server_read.open(tiny, 0, tiny, 16, 2, &payload_len) == -EBADMSG);   // empty payload, bad tag
}

TEST_CASE("protection: a packet too short for the sample is refused before anything is sealed") {
    const std::vector<std::uint8_t> secret(32, 0x5a);
    PacketProtector write;
    REQUIRE(write.install(CipherSuite::aes_128_gcm_sha256, secret.data(), secret.size(), false) == 0);
    for (std::size_t pn_bytes = 1; pn_bytes <= 4; ++pn_bytes) {
        const std::size_t least = pn_bytes >= 4 ? 0 : 4 - pn_bytes;
        std::vector<std::uint8_t> packet(1 + 8 + pn_bytes + least + kAeadTagBytes, 0x11);
        packet[0] = static_cast<std::uint8_t>(0x40 | (pn_bytes - 1));
        if (least > 0) {
            const std::vector<std::uint8_t> before = packet;
            CHECK(write.protect_packet(packet.data(), 1 + 8 + pn_bytes, least - 1, 7) == -EMSGSIZE);
            CHECK(packet == before);
        }
        CHECK(write.protect_packet(packet.data(), 1 + 8 + pn_bytes, least, 7) == 0);
    }
    // Header protection on its own, at the boundary.
    std::vector<std::uint8_t> packet(1 + 4 + 16, 0x40);
    CHECK(write.apply_header_protection(packet.data(), packet.size(), 1) == 0);
    CHECK(write.apply_header_protection(packet.data(), packet.size() - 1, 1) == -EMSGSIZE);
    CHECK(write.apply_header_protection(packet.data(), packet.size(), 2) == -EMSGSIZE);
    CHECK(write.apply_header_protection(packet.data(), 3, 40) == -EMSGSIZE);   // offset past the end
}

TEST_CASE("protection: a caller's mistakes are refused with -EINVAL") {
    PacketProtector none;
    std::uint8_t packet[64] = {0x40};
    std::size_t payload_len = 0;
    ProtectedFields fields;
    CHECK_FALSE(none.installed());
    CHECK(none.seal(packet, 5, packet + 5, 10, 1) == -EINVAL);
    CHECK(none.open(packet, 5, packet + 5, 30, 1, &payload_len) == -EINVAL);
    CHECK(none.protect_packet(packet, 5, 10, 1) == -EINVAL);
    CHECK(none.remove_header_protection(packet, sizeof(packet), 5, &fields) == -EINVAL);
    CHECK(none.update_keys() == -EINVAL);

    const std::vector<std::uint8_t> secret(48, 0x33);
    PacketProtector protector;
    CHECK(protector.install(CipherSuite::aes_256_gcm_sha384, secret.data(), 32, false) == -EINVAL);
    CHECK_FALSE(protector.installed());
    REQUIRE(protector.install(CipherSuite::aes_256_gcm_sha384, secret.data(), 48, false) == 0);
    CHECK(protector.seal(packet, 5, packet + 5, 10, kMaxPacketNumber + 1) == -EINVAL);
    CHECK(protector.open(packet, 5, packet + 5, 30, kMaxPacketNumber + 1, &payload_len) == -EINVAL);
    CHECK(protector.protect_packet(packet, 0, 10, 1) == -EINVAL);
    packet[0] = 0x43;   // a 4-byte packet number cannot fit in a 4-byte header
    CHECK(protector.protect_packet(packet, 4, 10, 1) == -EINVAL);
    CHECK(protector.remove_header_protection(packet, sizeof(packet), 0, &fields) == -EINVAL);
    // No key update: neither next nor previous keys.
    CHECK(protector.open(packet, 5, packet + 5, 30, 1, &payload_len, KeyGeneration::next) == -EINVAL);
    CHECK(protector.open(packet, 5, packet + 5, 30, 1, &payload_len, KeyGeneration::previous) == -EINVAL);
    CHECK(protector.update_keys() == -EINVAL);
    protector.clear();
    CHECK_FALSE(protector.installed());
    CHECK(protector.seal(packet, 5, packet + 5, 10, 1) == -EINVAL);
}

TEST_CASE("protection: key update rotates current, next and previous, matching keys installed fresh") {
    std::mt19937_64 random(0x9001'0006);
    for (const bool write_keys_ahead : {true, false})   // the writer derives `next` ahead, or at its update
    for (const CipherSuite suite : kAllSuites) {
        CAPTURE(write_keys_ahead);
        CAPTURE(static_cast<int>(suite));
        const std::size_t secret_len = secret_bytes(suite);
        std::vector<std::vector<std::uint8_t>> chain{random_bytes(random, secret_len)};
        for (int i = 0; i < 6; ++i) {
            std::vector<std::uint8_t> next(secret_len);
            REQUIRE(derive_next_secret(suite, chain.back().data(), secret_len, next.data()) == 0);
            chain.push_back(next);
        }
        PacketProtector write;
        PacketProtector read;
        REQUIRE(write.install(suite, chain[0].data(), secret_len, true, write_keys_ahead) == 0);
        REQUIRE(read.install(suite, chain[0].data(), secret_len, true) == 0);
        CHECK(read.key_update_enabled());
        CHECK_FALSE(read.has_previous());
        CHECK_FALSE(read.key_phase());
        std::size_t payload_len = 0;
        std::uint8_t scratch[64] = {};
        CHECK(read.open(scratch, 4, scratch, 32, 1, &payload_len, KeyGeneration::previous) == -EINVAL);

        const std::vector<std::uint8_t> header = hex("41 0102 0304");
        std::uint64_t pn = 0;
        for (int generation = 0; generation < 6; ++generation) {
            CAPTURE(generation);
            // The writer seals with generation `generation`: exactly the reference of that secret.
            const std::vector<std::uint8_t> payload = random_bytes(random, 1 + random() % 100);
            std::vector<std::uint8_t> sealed = payload;
            sealed.resize(payload.size() + kAeadTagBytes);
            REQUIRE(write.seal(header.data(), header.size(), sealed.data(), payload.size(), ++pn) == 0);
            CHECK(sealed == reference_seal(suite, chain[generation], header, payload, pn));
            CHECK(write.key_phase() == (generation % 2 == 1));
            CHECK(write.key_updates() == static_cast<std::uint64_t>(generation));

            // The reader has not updated yet: `next` opens it, current does not (and clears the copy it tried).
            std::vector<std::uint8_t> copy = sealed;
            if (generation > 0) {
                CHECK(read.open(header.data(), header.size(), copy.data(), copy.size(), pn, &payload_len) == -EBADMSG);
                copy = sealed;
                REQUIRE(read.open(header.data(), header.size(), copy.data(), copy.size(), pn, &payload_len,
                                  KeyGeneration::next) == 0);
                CHECK(bytes_of(copy.data(), payload_len) == payload);
                // The reader follows; the previous generation's packets still open with `previous`.
                REQUIRE(read.update_keys() == 0);
                CHECK(read.has_previous());
                const std::vector<std::uint8_t> old_payload = random_bytes(random, 20);
                std::vector<std::uint8_t> old = old_payload;
                old.resize(old.size() + kAeadTagBytes);
                PacketProtector old_writer;
                REQUIRE(old_writer.install(suite, chain[generation - 1].data(), secret_len, false) == 0);
                REQUIRE(old_writer.seal(header.data(), header.size(), old.data(), old_payload.size(), pn - 1) == 0);
                REQUIRE(read.open(header.data(), header.size(), old.data(), old.size(), pn - 1, &payload_len,
                                  KeyGeneration::previous) == 0);
                CHECK(bytes_of(old.data(), payload_len) == old_payload);
            }
            copy = sealed;
            REQUIRE(read.open(header.data(), header.size(), copy.data(), copy.size(), pn, &payload_len) == 0);
            CHECK(bytes_of(copy.data(), payload_len) == payload);
            CHECK(read.key_phase() == write.key_phase());

            if (generation == 3) {
                read.discard_previous();
                CHECK_FALSE(read.has_previous());
                CHECK(read.open(header.data(), header.size(), copy.data(), copy.size(), pn, &payload_len,
                                KeyGeneration::previous) == -EINVAL);
            }
            REQUIRE(write.update_keys() == 0);
        }

        // Header protection never changes: a packet protected after 6 updates comes off with a fresh reader of
        // the first secret's header key.
        std::vector<std::uint8_t> packet = hex("41 0a0b0c0d 0001 00000000000000000000000000000000");
        packet.resize(packet.size() + kAeadTagBytes);
        REQUIRE(write.protect_packet(packet.data(), 7, packet.size() - 7 - kAeadTagBytes, 1) == 0);
        PacketProtector fresh;
        REQUIRE(fresh.install(suite, chain[0].data(), secret_len, false) == 0);
        ProtectedFields fields;
        REQUIRE(fresh.remove_header_protection(packet.data(), packet.size(), 5, &fields) == 0);
        CHECK(fields.first_byte == 0x41);
        CHECK(fields.truncated_packet_number == 1);
    }
}

TEST_CASE("protection: reinstalling replaces keys, with another suite too") {
    std::mt19937_64 random(0x9001'1e57);
    PacketProtector write;
    PacketProtector read;
    for (int round = 0; round < 12; ++round) {
        const CipherSuite suite = kAllSuites[random() % 3];
        const std::vector<std::uint8_t> secret = random_bytes(random, secret_bytes(suite));
        const bool key_update = random() % 2 == 0;
        REQUIRE(write.install(suite, secret.data(), secret.size(), key_update) == 0);
        REQUIRE(read.install(suite, secret.data(), secret.size(), !key_update) == 0);
        CHECK(read.key_updates() == 0);
        CHECK_FALSE(read.has_previous());
        // Long header, empty CIDs, Length 24, a 4-byte packet number 7 at offset 9, a 4-byte payload.
        std::vector<std::uint8_t> packet = hex("c3 00000001 00 00 4018 00000007 01020304");
        packet.resize(packet.size() + kAeadTagBytes);
        REQUIRE(write.protect_packet(packet.data(), 13, 4, 7) == 0);
        ProtectedFields fields;
        REQUIRE(read.remove_header_protection(packet.data(), packet.size(), 9, &fields) == 0);
        CHECK(fields.truncated_packet_number == 7);
        std::size_t payload_len = 0;
        REQUIRE(read.open_packet(packet.data(), 13, packet.size(), 7, &payload_len) == 0);
        CHECK(bytes_of(packet.data() + 13, payload_len) == hex("01020304"));
    }
}
