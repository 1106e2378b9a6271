// PacketProtector: the protection of one direction (read or write) at one encryption level (Initial, 0-RTT,
// Handshake, 1-RTT), RFC 9001 section 5, built from a TLS traffic secret (or an Initial secret).
//
// Sending a packet whose header (ending with the packet number field, its length in the first byte's low 2 bits)
// and payload sit contiguously in a buffer with kAeadTagBytes spare after the payload:
//
//   protect_packet(packet, header_len, payload_len, packet_number);   // seal in place + tag, header protection
//
// Receiving one (the packet layer finds pn_offset and the packet's end from the still-unprotected fields):
//
//   remove_header_protection(packet, packet_len, pn_offset, &fields);   // first byte, pn length, truncated pn
//   ... the packet layer expands fields.truncated_packet_number to the full packet number ...
//   open_packet(packet, pn_offset + fields.packet_number_length, packet_len, packet_number, &payload_len,
//               generation);
//
// seal()/open() on separate header and payload pointers are there too. Nothing here allocates per packet: GnuTLS
// handles are made when keys are installed (install()) and, for the one new key, at a key update.
//
// Key update (1-RTT only, install(..., true)): three payload keys are kept, the current one, the next one
// (derived ahead with "quic ku" so that a packet with the other Key Phase bit can be opened at once) and, after an
// update, the previous one. update_keys() makes next current, current previous, and derives a new next (one
// GnuTLS handle made, the old previous one freed: payload_key.hpp says why it is not re-keyed in place); the
// header protection key never changes. What the connection decides (RFC 9001 section 6): when to update (not
// before the handshake is confirmed, not again before a packet of the current phase is acknowledged), which key a
// received packet's Key Phase bit selects (the other bit means `next` for packet numbers above those of the
// current phase and `previous` below them), when to call update_keys() on the read side (after a packet opened
// with `next`), when to call discard_previous() (about three PTOs after the update), and the AEAD limits
// (cipher_suite.hpp). Read and write sides are separate protectors, updated together by the connection.
//
// Errors (negative errno, noexcept, no exceptions): -EINVAL for a caller's mistake, with a message;
// -EMSGSIZE (too short for the tag or the header protection sample) and -EBADMSG (the tag does not verify) for a
// received packet, which the RFC says to discard, without a message. Not thread-safe: one per connection thread.
#pragma once

#include <cstddef>
#include <cstdint>

#include "engine/quic/cipher_suite.hpp"
#include "engine/quic/header_protection.hpp"
#include "engine/quic/payload_key.hpp"

namespace cf::quic {

enum class KeyGeneration : std::uint8_t { current, next, previous };

class PacketProtector {
public:
    PacketProtector() noexcept = default;
    ~PacketProtector();
    PacketProtector(const PacketProtector&) = delete;
    PacketProtector& operator=(const PacketProtector&) = delete;

    // Derives key, IV and header protection key from `secret` (secret_bytes(suite) bytes) and creates the cipher
    // handles (this allocates). With `key_update` (1-RTT) also the next phase's secret, and its keys unless
    // `next_keys_ahead` is false: a write side opens nothing with `next`, so its keys can wait for update_keys()
    // (one derivation and one handle less per connection, and only ever paid by a connection that updates).
    // Replaces what was installed. 0, or -EINVAL / -ENOMEM / -EIO with a message (nothing is installed then).
    int install(CipherSuite suite, const std::uint8_t* secret, std::size_t secret_len, bool key_update,
                bool next_keys_ahead = true) noexcept;
    // Frees the handles and wipes keys and secrets (a level's keys are discarded: RFC 9001 section 4.9).
    void clear() noexcept;
    bool installed() const noexcept { return installed_; }
    CipherSuite suite() const noexcept { return suite_; }

    // ---- per packet ----

    // packet[0, header_len) is the header, its last (packet[0] & 3) + 1 bytes the packet number field;
    // packet[header_len, header_len + payload_len) the payload, sealed in place with the current key; the tag
    // goes after it and then header protection is applied. The packet is header_len + payload_len + kAeadTagBytes
    // long afterwards. The sample must fit: pn length + payload_len >= 4 (pad the payload otherwise). 0, -EINVAL
    // or -EMSGSIZE (the packet would be too short for the sample).
    int protect_packet(std::uint8_t* packet, std::size_t header_len, std::size_t payload_len,
                       std::uint64_t packet_number) noexcept;

    // The two steps of protect_packet(): PayloadKey::seal with the current key, HeaderProtectionKey::apply.
    int seal(const std::uint8_t* header, std::size_t header_len, std::uint8_t* payload, std::size_t payload_len,
             std::uint64_t packet_number) noexcept {
        return payload_[current_].seal(header, header_len, payload, payload_len, packet_number);
    }
    int apply_header_protection(std::uint8_t* packet, std::size_t packet_len, std::size_t pn_offset) noexcept {
        return header_.apply(packet, packet_len, pn_offset);
    }

    // HeaderProtectionKey::remove: on failure (-EMSGSIZE: the sample runs past packet_len) nothing is changed.
    int remove_header_protection(std::uint8_t* packet, std::size_t packet_len, std::size_t pn_offset,
                                 ProtectedFields* fields) noexcept {
        return header_.remove(packet, packet_len, pn_offset, fields);
    }
    // Opens packet[header_len, packet_len) with packet[0, header_len) (header protection removed) as associated
    // data; the plaintext payload is packet[header_len, header_len + *payload_len). -EINVAL also when `generation`
    // has no key (next/previous without key update, previous before an update or after discard_previous()).
    // After a failure the payload bytes are cleared: the packet is discarded, not retried with another key.
    int open_packet(std::uint8_t* packet, std::size_t header_len, std::size_t packet_len,
                    std::uint64_t packet_number, std::size_t* payload_len,
                    KeyGeneration generation = KeyGeneration::current) noexcept;
    // PayloadKey::open with the key of `generation`.
    int open(const std::uint8_t* header, std::size_t header_len, std::uint8_t* payload, std::size_t protected_len,
             std::uint64_t packet_number, std::size_t* payload_len,
             KeyGeneration generation = KeyGeneration::current) noexcept;

    // ---- key update (1-RTT) ----

    bool key_update_enabled() const noexcept { return key_update_; }
    // The Key Phase bit of packets the current key protects (0 when installed, flips with every update).
    bool key_phase() const noexcept { return (updates_ & 1) != 0; }
    // Key updates since install().
    std::uint64_t key_updates() const noexcept { return updates_; }
    bool has_previous() const noexcept { return has_previous_; }
    // Rotates previous <- current <- next <- a newly derived one. Allocates the new key's handle (once per update,
    // not per packet). 0, or -EINVAL (not installed with key update) / -ENOMEM / -EIO with a message; on failure
    // current and next are unchanged and previous is gone.
    int update_keys() noexcept;
    // Forgets the previous key, freeing its handle (RFC 9001 section 6.5: old read keys go after about three PTOs).
    void discard_previous() noexcept;

private:
    PayloadKey* key_of(KeyGeneration generation) noexcept;

    HeaderProtectionKey header_;
    PayloadKey payload_[3];   // slots; current_/next_/previous_ say which is which
    std::uint8_t current_ = 0;
    std::uint8_t next_ = 1;
    std::uint8_t previous_ = 2;
    bool installed_ = false;
    bool key_update_ = false;
    bool has_previous_ = false;
    bool next_keys_ahead_ = true;   // false: `next` holds no keys; update_keys() derives them from next_secret_
    CipherSuite suite_ = CipherSuite::aes_128_gcm_sha256;
    std::uint64_t updates_ = 0;
    std::uint8_t next_secret_[kMaxSecretBytes] = {};   // the secret `next` came from: the one after derives from it
};

}  // namespace cf::quic
