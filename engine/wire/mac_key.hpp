// An HMAC-SHA-256 key, ready to tag messages: the keyed bridges' datagram MAC (datagram_auth.hpp) and the clock
// probes' nonces (runtime/clock_probes.hpp) use it.
//
// Why this shape. gnutls_hmac_init allocates its state, so it runs once per key (open()); a tag is then
// gnutls_hmac (absorb the bytes) and gnutls_hmac_output, which writes the digest and resets the state to the
// keyed one: no allocation, lock or system call per tag. (gnutls_hmac_fast would expand the key for every
// message.) Tags are the digest's first 16 bytes (HMAC-SHA-256-128, as RFC 4868 truncates it): 128 bits are far
// beyond what an online forger can try. Not thread-safe: one key per polling thread.
#pragma once

#include <cstddef>
#include <cstdint>

namespace cf::wire {

inline constexpr std::size_t kMacKeyBytes = 32;   // a key is exactly this long (SHA-256's output size)
inline constexpr std::size_t kMacTagBytes = 16;

class MacKey {
public:
    MacKey() noexcept = default;
    ~MacKey();
    MacKey(const MacKey&) = delete;
    MacKey& operator=(const MacKey&) = delete;

    // Loads `key` (kMacKeyBytes bytes), replacing the one held. 0, or -ENOMEM / -EIO with a message.
    int open(const std::uint8_t (&key)[kMacKeyBytes]) noexcept;
    void close() noexcept;
    bool is_open() const noexcept { return handle_ != nullptr; }

    // The tag of the concatenation of the pieces (a piece may be empty). The key must be open.
    struct Piece {
        const void* data;
        std::size_t size;
    };
    void tag(const Piece* pieces, std::size_t count, std::uint8_t (&out)[kMacTagBytes]) noexcept;

private:
    void* handle_ = nullptr;   // gnutls_hmac_hd_t, kept out of this header
};

// Constant-time equality of two tags: a forger learns nothing from how long the comparison took.
bool tags_equal(const std::uint8_t* a, const std::uint8_t* b) noexcept;

}  // namespace cf::wire
