// The bytes cf-h3-peer serves for a path "/N" (N bytes) and the SHA-256 its client reports: test support.
//
// Content: byte i of every body is pattern[i % kPeriod], pattern being a fixed xorshift64 sequence. kPeriod is a
// prime, so no power-of-two chunk, ring or packet size lines up with it: data delivered at the wrong offset changes
// the checksum. `cf-h3-peer content N` prints the same N bytes, for the expected checksum.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

namespace cf::quic::h3 {

class Content {
public:
    static constexpr std::size_t kPeriod = 1'000'003;
    static constexpr std::size_t kMaxChunk = 64 * 1024;   // what one at() call may hand out in one piece

    // The bytes from `offset` on: at least min(kMaxChunk, ...) of them are contiguous.
    static const std::uint8_t* at(std::uint64_t offset) noexcept;
};

// SHA-256 through GnuTLS, incrementally; hex() ends it.
class Sha256 {
public:
    Sha256();
    ~Sha256();
    Sha256(const Sha256&) = delete;
    Sha256& operator=(const Sha256&) = delete;
    void update(const std::uint8_t* data, std::size_t size);
    std::string hex();

private:
    void* hash_ = nullptr;   // gnutls_hash_hd_t
};

}  // namespace cf::quic::h3
