// The Retry Integrity Tag (RFC 9001 section 5.8) against appendix A.4, and every way a Retry can be wrong: a
// flipped bit in the packet or its tag, another original DCID, a truncated packet.
#include <doctest/doctest.h>

#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>

#include <cerrno>
#include <cstdint>
#include <random>
#include <vector>

#include "engine/quic/retry_integrity.hpp"
#include "tests/quic/protection_test_support.hpp"

using namespace cf::quic;
using cf::quic::test::bytes_of;
using cf::quic::test::hex;

namespace {

// The reference: the pseudo-packet concatenated into one buffer, GnuTLS's AEAD over it with the RFC's key and nonce.
std::vector<std::uint8_t> reference_tag(const std::vector<std::uint8_t>& odcid,
                                        const std::vector<std::uint8_t>& retry) {
    std::vector<std::uint8_t> pseudo{static_cast<std::uint8_t>(odcid.size())};
    pseudo.insert(pseudo.end(), odcid.begin(), odcid.end());
    pseudo.insert(pseudo.end(), retry.begin(), retry.end());
    std::vector<std::uint8_t> key = hex("be0c690b9f66575a1d766b54e368c84e");
    const std::vector<std::uint8_t> nonce = hex("461599d35d632bf2239825bb");
    gnutls_datum_t key_datum{key.data(), 16};
    gnutls_aead_cipher_hd_t handle = nullptr;
    REQUIRE(gnutls_aead_cipher_init(&handle, GNUTLS_CIPHER_AES_128_GCM, &key_datum) == 0);
    std::vector<std::uint8_t> tag(16);
    std::size_t tag_len = tag.size();
    REQUIRE(gnutls_aead_cipher_encrypt(handle, nonce.data(), 12, pseudo.data(), pseudo.size(), 16, nullptr, 0,
                                       tag.data(), &tag_len) == 0);
    gnutls_aead_cipher_deinit(handle);
    return tag;
}

}  // namespace

TEST_CASE("retry: RFC 9001 A.4, the tag of the sample Retry, computed and verified") {
    RetryIntegrity integrity;
    REQUIRE(integrity.open() == 0);
    const std::vector<std::uint8_t> odcid = hex("8394c8f03e515708");
    const std::vector<std::uint8_t> packet = hex(test::kRetryPacket);
    REQUIRE(packet.size() == 36);
    std::uint8_t tag[kRetryIntegrityTagBytes];
    REQUIRE(integrity.compute(odcid.data(), odcid.size(), packet.data(), 20, tag) == 0);
    CHECK(bytes_of(tag, 16) == hex("04a265ba2eff4d829058fb3f0f2496ba"));
    CHECK(bytes_of(tag, 16) == reference_tag(odcid, bytes_of(packet.data(), 20)));
    CHECK(integrity.verify(odcid.data(), odcid.size(), packet.data(), packet.size()) == 0);
}

TEST_CASE("retry: a flipped bit anywhere, another original DCID or a truncation fails verification") {
    RetryIntegrity integrity;
    REQUIRE(integrity.open() == 0);
    const std::vector<std::uint8_t> odcid = hex("8394c8f03e515708");
    const std::vector<std::uint8_t> packet = hex(test::kRetryPacket);
    for (std::size_t bit = 0; bit < packet.size() * 8; ++bit) {
        std::vector<std::uint8_t> flipped = packet;
        flipped[bit / 8] ^= static_cast<std::uint8_t>(1u << (bit % 8));
        CHECK_MESSAGE(integrity.verify(odcid.data(), odcid.size(), flipped.data(), flipped.size()) == -EBADMSG,
                      "bit " << bit);
    }
    for (std::size_t bit = 0; bit < odcid.size() * 8; ++bit) {
        std::vector<std::uint8_t> other = odcid;
        other[bit / 8] ^= static_cast<std::uint8_t>(1u << (bit % 8));
        CHECK(integrity.verify(other.data(), other.size(), packet.data(), packet.size()) == -EBADMSG);
    }
    CHECK(integrity.verify(odcid.data(), odcid.size() - 1, packet.data(), packet.size()) == -EBADMSG);
    CHECK(integrity.verify(nullptr, 0, packet.data(), packet.size()) == -EBADMSG);
    for (std::size_t length = 0; length < packet.size(); ++length) {
        const std::vector<std::uint8_t> truncated(packet.begin(), packet.begin() + length);
        CHECK(integrity.verify(odcid.data(), odcid.size(), truncated.data(), truncated.size()) ==
              (length < 16 ? -EMSGSIZE : -EBADMSG));
    }
}

TEST_CASE("retry: random packets and DCIDs of every length match the reference") {
    RetryIntegrity integrity;
    REQUIRE(integrity.open() == 0);
    std::mt19937_64 random(0x9001'0508);
    for (int round = 0; round < 200; ++round) {
        std::vector<std::uint8_t> odcid(round % 21);
        for (auto& byte : odcid) byte = static_cast<std::uint8_t>(random());
        std::vector<std::uint8_t> retry(round == 0 ? 0 : random() % 1500);
        for (auto& byte : retry) byte = static_cast<std::uint8_t>(random());
        std::uint8_t tag[kRetryIntegrityTagBytes];
        REQUIRE(integrity.compute(odcid.data(), odcid.size(), retry.data(), retry.size(), tag) == 0);
        CHECK(bytes_of(tag, 16) == reference_tag(odcid, retry));
        retry.insert(retry.end(), tag, tag + 16);
        CHECK(integrity.verify(odcid.data(), odcid.size(), retry.data(), retry.size()) == 0);
    }
}

TEST_CASE("retry: a caller's mistakes are refused") {
    RetryIntegrity integrity;
    std::uint8_t packet[40] = {};
    std::uint8_t tag[kRetryIntegrityTagBytes];
    CHECK_FALSE(integrity.is_open());
    CHECK(integrity.compute(packet, 8, packet, 20, tag) == -EINVAL);
    CHECK(integrity.verify(packet, 8, packet, 40) == -EINVAL);
    REQUIRE(integrity.open() == 0);
    CHECK(integrity.compute(packet, 21, packet, 20, tag) == -EINVAL);   // a v1 connection ID is at most 20 bytes
    CHECK(integrity.compute(packet, 20, packet, 20, tag) == 0);
    integrity.close();
    CHECK_FALSE(integrity.is_open());
}
