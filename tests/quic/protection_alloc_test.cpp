// Packet protection allocates nothing per packet: counted, not assumed. This executable replaces the C allocator
// entry points (GnuTLS allocates through malloc, and operator new ends there too) with counting versions that
// forward to glibc's own; the count moves only inside a window opened on the measuring thread, and no doctest macro
// runs inside one. Measured per suite: protect_packet, remove_header_protection, open_packet (good and forged
// packets, too short ones), header masks, and Retry tags. Reported, not asserted (they may allocate and that is
// allowed): installing keys and a key update, and what GnuTLS's other AEAD calls do on this machine.
//
// Sanitizer runtimes own malloc: under ASan/TSan the hooks are not compiled and the suite says it skipped.
#include <doctest/doctest.h>

#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>

#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "engine/quic/cipher_suite.hpp"
#include "engine/quic/packet_protection.hpp"
#include "engine/quic/retry_integrity.hpp"
#include "tests/libc_allocation_hooks.hpp"

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define CF_QUIC_ALLOC_SANITIZED 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer) || __has_feature(memory_sanitizer)
#define CF_QUIC_ALLOC_SANITIZED 1
#endif
#endif
#ifndef CF_QUIC_ALLOC_SANITIZED
#define CF_QUIC_ALLOC_SANITIZED 0
#endif

#if CF_QUIC_ALLOC_SANITIZED

TEST_CASE("protection allocations: skipped under a sanitizer") {
    MESSAGE("skipped: this build has a sanitizer runtime, which replaces malloc itself; the normal build counts.");
}

#else

namespace {

thread_local constinit bool tl_counting = false;
thread_local constinit std::uint64_t tl_allocations = 0;   // allocator calls, frees included

void count() noexcept {
    if (tl_counting) ++tl_allocations;
}

// Opens a window on construction; count() closes it and says how many allocator calls it saw.
class Window {
public:
    Window() noexcept {
        tl_allocations = 0;
        tl_counting = true;
    }
    std::uint64_t close() noexcept {
        tl_counting = false;
        return tl_allocations;
    }
    ~Window() { tl_counting = false; }
};

void escape(const void* p) noexcept { asm volatile("" : : "g"(p) : "memory"); }

}  // namespace

extern "C" void cf_test_on_allocation() noexcept { count(); }

using namespace cf::quic;

namespace {

constexpr CipherSuite kAllSuites[] = {CipherSuite::aes_128_gcm_sha256, CipherSuite::aes_256_gcm_sha384,
                                      CipherSuite::chacha20_poly1305_sha256};
constexpr int kPackets = 1000;

std::string name_of(CipherSuite suite) {
    return suite == CipherSuite::aes_128_gcm_sha256   ? "AES-128-GCM"
           : suite == CipherSuite::aes_256_gcm_sha384 ? "AES-256-GCM"
                                                      : "ChaCha20-Poly1305";
}

struct Outcome {
    std::uint64_t allocations = 0;
    int failures = 0;   // calls that did not return what they should have
};

// kPackets short header packets with a 1200-byte payload, each protected, unprotected and opened, then forged and
// too-short ones refused, all inside one window.
Outcome per_packet(PacketProtector& write, PacketProtector& read) {
    static std::uint8_t packet[1 + 8 + 2 + 1200 + kAeadTagBytes];
    Outcome outcome;
    Window window;
    for (int i = 0; i < kPackets; ++i) {
        const std::uint64_t pn = 1000 + static_cast<std::uint64_t>(i);
        std::memset(packet, static_cast<int>(i), sizeof(packet));
        packet[0] = 0x41;   // short header, 2-byte packet number
        packet[9] = static_cast<std::uint8_t>(pn >> 8);
        packet[10] = static_cast<std::uint8_t>(pn);
        if (write.protect_packet(packet, 11, 1200, pn) != 0) ++outcome.failures;
        ProtectedFields fields;
        if (read.remove_header_protection(packet, sizeof(packet), 9, &fields) != 0) ++outcome.failures;
        std::size_t payload_len = 0;
        if (read.open_packet(packet, 11, sizeof(packet), pn, &payload_len) != 0) ++outcome.failures;
        // Forged: resealed, one payload bit flipped.
        if (write.seal(packet, 11, packet + 11, 1200, pn) != 0) ++outcome.failures;
        packet[100] ^= 0x04;
        if (read.open_packet(packet, 11, sizeof(packet), pn, &payload_len) != -EBADMSG) ++outcome.failures;
        // Too short for the sample, and too short for a tag.
        if (read.remove_header_protection(packet, 9 + 19, 9, &fields) != -EMSGSIZE) ++outcome.failures;
        if (read.open_packet(packet, 11, 11 + 15, pn, &payload_len) != -EMSGSIZE) ++outcome.failures;
    }
    outcome.allocations = window.close();
    return outcome;
}

}  // namespace

TEST_CASE("protection allocations: the counter sees a deliberate allocation") {
    Window window;
    void* block = std::malloc(64);
    escape(block);
    std::free(block);
    const std::uint64_t seen = window.close();
    CHECK(seen == 2);
}

TEST_CASE("protection allocations: none per packet at every suite, forged and short packets included") {
    for (const CipherSuite suite : kAllSuites) {
        CAPTURE(name_of(suite));
        std::vector<std::uint8_t> secret(secret_bytes(suite), 0x42);
        PacketProtector write;
        PacketProtector read;
        REQUIRE(write.install(suite, secret.data(), secret.size(), true) == 0);
        REQUIRE(read.install(suite, secret.data(), secret.size(), true) == 0);
        per_packet(write, read);   // warm-up: anything lazy in GnuTLS happens here
        const Outcome outcome = per_packet(write, read);
        CHECK(outcome.failures == 0);
        CHECK(outcome.allocations == 0);
        MESSAGE(name_of(suite) << ": " << outcome.allocations << " allocator calls in " << kPackets
                               << " x (protect, unprotect, open, forged open, two short packets)");
    }
}

TEST_CASE("protection allocations: none per Retry tag") {
    RetryIntegrity integrity;
    REQUIRE(integrity.open() == 0);
    std::uint8_t odcid[8] = {1, 2, 3, 4, 5, 6, 7, 8};
    static std::uint8_t retry[200 + kRetryIntegrityTagBytes];
    std::uint8_t tag[kRetryIntegrityTagBytes];
    int failures = 0;
    Window window;
    for (int i = 0; i < kPackets; ++i) {
        retry[0] = static_cast<std::uint8_t>(i);
        if (integrity.compute(odcid, sizeof(odcid), retry, 200, tag) != 0) ++failures;
        std::memcpy(retry + 200, tag, sizeof(tag));
        if (integrity.verify(odcid, sizeof(odcid), retry, sizeof(retry)) != 0) ++failures;
    }
    const std::uint64_t seen = window.close();
    CHECK(failures == 0);
    CHECK(seen == 0);
}

TEST_CASE("protection allocations: what installing keys and a key update cost (reported)") {
    for (const CipherSuite suite : kAllSuites) {
        std::vector<std::uint8_t> secret(secret_bytes(suite), 0x17);
        PacketProtector protector;
        Window install_window;
        const int installed = protector.install(suite, secret.data(), secret.size(), true);
        const std::uint64_t install_calls = install_window.close();
        REQUIRE(installed == 0);
        protector.update_keys();   // the first update frees nothing (no previous yet); measure a steady one
        Window update_window;
        const int updated = protector.update_keys();
        const std::uint64_t update_calls = update_window.close();
        REQUIRE(updated == 0);
        MESSAGE(name_of(suite) << ": install with key update " << install_calls << " allocator calls, a key update "
                               << update_calls);
    }
}

TEST_CASE("protection allocations: GnuTLS's other AEAD calls on this machine (reported)") {
    // Why packet protection uses the one-shot calls and never gnutls_aead_cipher_set_key (payload_key.hpp).
    const gnutls_cipher_algorithm_t ciphers[] = {GNUTLS_CIPHER_AES_128_GCM, GNUTLS_CIPHER_AES_256_GCM,
                                                 GNUTLS_CIPHER_CHACHA20_POLY1305};
    for (const gnutls_cipher_algorithm_t cipher : ciphers) {
        std::uint8_t key1[32], key2[32], nonce[12] = {}, ad[20] = {}, tag[16];
        std::memset(key1, 1, sizeof(key1));
        std::memset(key2, 2, sizeof(key2));
        const unsigned key_size = static_cast<unsigned>(gnutls_cipher_get_key_size(cipher));
        gnutls_datum_t first{key1, key_size}, second{key2, key_size};
        gnutls_aead_cipher_hd_t rekeyed = nullptr, fresh = nullptr;
        REQUIRE(gnutls_aead_cipher_init(&rekeyed, cipher, &first) == 0);
        REQUIRE(gnutls_aead_cipher_init(&fresh, cipher, &second) == 0);
        static std::uint8_t buffer[1200 + 16];
        giovec_t ad_piece{ad, sizeof(ad)}, data_piece{buffer, 1200};
        std::size_t tag_len = sizeof(tag);
        (void)gnutls_aead_cipher_encryptv2(fresh, nonce, 12, &ad_piece, 1, &data_piece, 1, tag, &tag_len);
        Window v2_window;
        tag_len = sizeof(tag);
        const int encrypted = gnutls_aead_cipher_encryptv2(fresh, nonce, 12, &ad_piece, 1, &data_piece, 1, tag, &tag_len);
        const int decrypted = gnutls_aead_cipher_decryptv2(fresh, nonce, 12, &ad_piece, 1, &data_piece, 1, tag, 16);
        const std::uint64_t v2_calls = v2_window.close();
        Window set_key_window;
        const int rekey = gnutls_aead_cipher_set_key(rekeyed, &second);
        const std::uint64_t set_key_calls = set_key_window.close();

        std::uint8_t out_rekeyed[48], out_fresh[48], plain[32] = {};
        std::size_t len_rekeyed = sizeof(out_rekeyed), len_fresh = sizeof(out_fresh);
        REQUIRE(gnutls_aead_cipher_encrypt(rekeyed, nonce, 12, nullptr, 0, 16, plain, 32, out_rekeyed,
                                           &len_rekeyed) == 0);
        REQUIRE(gnutls_aead_cipher_encrypt(fresh, nonce, 12, nullptr, 0, 16, plain, 32, out_fresh, &len_fresh) == 0);
        const bool same = std::memcmp(out_rekeyed, out_fresh, sizeof(out_fresh)) == 0;
        MESSAGE(std::string(gnutls_cipher_get_name(cipher)) << ": encryptv2+decryptv2 (one piece each) " << v2_calls
                                               << " allocator calls (status " << encrypted << ", " << decrypted
                                               << "); set_key " << set_key_calls << " calls (status " << rekey
                                               << "), re-keyed output " << std::string(same ? "matches" : "DIFFERS FROM")
                                               << " a fresh handle's");
        gnutls_aead_cipher_deinit(rekeyed);
        gnutls_aead_cipher_deinit(fresh);
    }
}

#endif
