#include "tests/quic/h3/h3_content.hpp"

#include <gnutls/crypto.h>

#include <cstdio>
#include <cstdlib>
#include <vector>

namespace cf::quic::h3 {

namespace {

// One period plus one chunk, so a chunk starting anywhere in the period is contiguous.
std::vector<std::uint8_t> make_pattern() {
    std::vector<std::uint8_t> pattern(Content::kPeriod + Content::kMaxChunk);
    std::uint64_t x = 0x9e3779b97f4a7c15ull;
    for (std::size_t i = 0; i < Content::kPeriod; ++i) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        pattern[i] = static_cast<std::uint8_t>(x >> 24);
    }
    for (std::size_t i = 0; i < Content::kMaxChunk; ++i) pattern[Content::kPeriod + i] = pattern[i];
    return pattern;
}

}  // namespace

const std::uint8_t* Content::at(std::uint64_t offset) noexcept {
    static const std::vector<std::uint8_t> pattern = make_pattern();
    return pattern.data() + offset % kPeriod;
}

Sha256::Sha256() {
    gnutls_hash_hd_t hash = nullptr;
    if (gnutls_hash_init(&hash, GNUTLS_DIG_SHA256) != 0) {
        std::fprintf(stderr, "h3: gnutls_hash_init(SHA-256) failed\n");
        std::abort();   // test support: no SHA-256 means no test
    }
    hash_ = hash;
}

Sha256::~Sha256() {
    if (hash_ != nullptr) gnutls_hash_deinit(static_cast<gnutls_hash_hd_t>(hash_), nullptr);
}

void Sha256::update(const std::uint8_t* data, std::size_t size) {
    if (size > 0) (void)gnutls_hash(static_cast<gnutls_hash_hd_t>(hash_), data, size);
}

std::string Sha256::hex() {
    std::uint8_t digest[32];
    gnutls_hash_output(static_cast<gnutls_hash_hd_t>(hash_), digest);   // also starts a new hash
    static const char digits[] = "0123456789abcdef";
    std::string out;
    for (const std::uint8_t b : digest) {
        out += digits[b >> 4];
        out += digits[b & 15];
    }
    return out;
}

}  // namespace cf::quic::h3
