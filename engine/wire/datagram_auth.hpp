// Keyed datagrams: an optional pre-shared-key MAC in front of a datagram's frames, so a receiver drops what its
// peer did not send.
//
// Layout. A keyed datagram is a 24-byte auth header followed by frames exactly as frame.hpp describes them (so
// they stay 8-byte aligned); integers little-endian:
//   offset size field
//        0    2 magic 0xC7A5 (a frame starts with 0xC7F1: a receiver tells keyed from plain datagrams apart)
//        2    1 version, 1
//        3    1 key id: which of the receiver's keys checks the tag
//        4    4 zero
//        8   16 tag: HMAC-SHA-256 under that key over bytes [0, 8) then every byte from 24 to the end (the
//               frames with their headers, payloads and padding), truncated to its first 16 bytes
// The tag covers the whole datagram but itself, so a flipped bit anywhere, a cut or an added byte, or a header
// moved from one datagram onto another fails it.
//
// Why HMAC-SHA-256-128 rather than an AEAD tag (AES-GCM, ChaCha20-Poly1305). We want authenticity, not secrecy,
// and a pre-shared key that two processes hold for a long time across restarts: GCM's and Poly1305's security
// collapses when a (key, nonce) pair repeats, so every sender would need nonce state that survives restarts and
// never collides between the two peers; HMAC needs no nonce at all. Its cost is SHA-256 over the datagram (with
// the SHA extensions on current x86 and ARMv8 CPUs, a few hundred nanoseconds for an MTU-sized one), paid once
// per datagram, not per frame, and it allocates nothing (mac_key.hpp).
//
// What it does not do: encrypt (anyone on the path reads the frames), or stop replay by itself (a recorded
// datagram verifies again). The bridge's sequence tracking drops replayed data frames as duplicates or late
// within a session, and answers to probes count once; a datagram replayed after the sender started a new session
// is the one replay it cannot tell (bridge.hpp).
//
// Keys and rotation. Two key slots, each a key id and 32 key bytes: the current one seals what is sent; either one
// verifies what arrives, chosen by the datagram's key id. Rotating: install the next key on both peers
// (set_next), then each switches its sending to it (rotate); the previous key keeps verifying until the next
// set_next replaces it.
#pragma once

#include <cstddef>
#include <cstdint>

#include "engine/wire/mac_key.hpp"

namespace cf::wire {

inline constexpr std::uint16_t kAuthMagic = 0xC7A5;
inline constexpr std::uint8_t kAuthVersion = 1;
inline constexpr std::uint32_t kAuthHeaderBytes = 24;

enum class AuthVerdict : std::uint8_t {
    good,          // the frames start at kAuthHeaderBytes
    missing,       // not a keyed datagram (no auth magic): a keyless sender, or garbage
    bad,           // shorter than the header, wrong version or reserved bytes, or the tag does not match
    unknown_key,   // a key id neither slot holds
};

// A plain datagram (a keyless receiver's view) that carries the auth header's magic: from a keyed sender.
bool looks_keyed(const std::byte* datagram, std::size_t size) noexcept;

class DatagramAuth {
public:
    // Sets the current key (and the next one when `next` is not null; its id must differ). Replaces any keys held.
    // 0, or -EINVAL (same ids), or the MAC's error; with a message.
    int open(std::uint8_t id, const std::uint8_t (&key)[kMacKeyBytes], const std::uint8_t* next_id,
             const std::uint8_t (*next)[kMacKeyBytes]) noexcept;
    bool keyed() const noexcept { return slots_[current_].key.is_open(); }
    std::uint8_t current_id() const noexcept { return slots_[current_].id; }

    // Puts a key into the slot that is not current (replacing the previous key there). 0, -EINVAL (not keyed, or
    // the current key's id), or the MAC's error.
    int set_next(std::uint8_t id, const std::uint8_t (&key)[kMacKeyBytes]) noexcept;
    // Seals with the other slot's key from now on. 0, or -ENOENT when it holds none.
    int rotate() noexcept;

    // Writes the auth header of `datagram` (`size` bytes: the header's kAuthHeaderBytes, then the frames) under the
    // current key. Keyed only.
    void seal(std::byte* datagram, std::size_t size) noexcept;
    // Checks a received datagram. Keyed only.
    AuthVerdict verify(const std::byte* datagram, std::size_t size) noexcept;

private:
    struct Slot {
        std::uint8_t id = 0;
        MacKey key;
    };
    void tag(MacKey& key, const std::byte* datagram, std::size_t size, std::uint8_t (&out)[kMacTagBytes]) noexcept;

    Slot slots_[2];
    std::uint32_t current_ = 0;
};

}  // namespace cf::wire
