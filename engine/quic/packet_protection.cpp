#include "engine/quic/packet_protection.hpp"

#include <cerrno>
#include <cstring>

#include "engine/quic/hkdf_label.hpp"
#include "engine/quic/packet_keys.hpp"
#include "platform/os/last_error.hpp"

namespace cf::quic {

PacketProtector::~PacketProtector() { clear(); }

int PacketProtector::install(CipherSuite suite, const std::uint8_t* secret, std::size_t secret_len, bool key_update,
                             bool next_keys_ahead) noexcept {
    clear();
    PacketKeys keys;
    int status = derive_packet_keys(suite, secret, secret_len, keys);
    if (status == 0) status = header_.install(suite, keys.hp);
    if (status == 0) status = payload_[current_].install(keys);
    if (status == 0 && key_update) {
        // The next phase's key now, so that the first packet of the peer's update opens without a derivation.
        status = derive_next_secret(suite, secret, secret_len, next_secret_);
        if (status == 0 && next_keys_ahead) status = derive_payload_keys(suite, next_secret_, secret_len, keys);
        if (status == 0 && next_keys_ahead) status = payload_[next_].install(keys);
    }
    if (status < 0) {
        clear();
        return status;
    }
    suite_ = suite;
    key_update_ = key_update;
    next_keys_ahead_ = next_keys_ahead;
    installed_ = true;
    return 0;
}

void PacketProtector::clear() noexcept {
    header_.clear();
    for (PayloadKey& key : payload_) key.clear();
    wipe_secret(next_secret_, sizeof(next_secret_));
    current_ = 0;
    next_ = 1;
    previous_ = 2;
    installed_ = false;
    key_update_ = false;
    has_previous_ = false;
    next_keys_ahead_ = true;
    updates_ = 0;
}

int PacketProtector::protect_packet(std::uint8_t* packet, std::size_t header_len, std::size_t payload_len,
                                    std::uint64_t packet_number) noexcept {
    if (header_len == 0) return platform::fail(EINVAL, "QUIC protect: an empty header");
    const std::size_t pn_length = (packet[0] & 0x03u) + 1;
    if (header_len <= pn_length) {
        return platform::fail(EINVAL, "QUIC protect: a header of %zu bytes cannot end with a %zu-byte packet number",
                              header_len, pn_length);
    }
    const std::size_t pn_offset = header_len - pn_length;
    // Checked before sealing, so that a packet too short for the sample is refused untouched.
    if (pn_length + payload_len < 4) return -EMSGSIZE;
    if (const int status = seal(packet, header_len, packet + header_len, payload_len, packet_number); status < 0) {
        return status;
    }
    return header_.apply(packet, header_len + payload_len + kAeadTagBytes, pn_offset);
}

PayloadKey* PacketProtector::key_of(KeyGeneration generation) noexcept {
    switch (generation) {
        case KeyGeneration::current: return &payload_[current_];
        case KeyGeneration::next: return key_update_ ? &payload_[next_] : nullptr;
        case KeyGeneration::previous: return has_previous_ ? &payload_[previous_] : nullptr;
    }
    return nullptr;
}

int PacketProtector::open(const std::uint8_t* header, std::size_t header_len, std::uint8_t* payload,
                          std::size_t protected_len, std::uint64_t packet_number, std::size_t* payload_len,
                          KeyGeneration generation) noexcept {
    PayloadKey* key = key_of(generation);
    if (key == nullptr) {
        return platform::fail(EINVAL, "QUIC open: no %s key", generation == KeyGeneration::next ? "next" : "previous");
    }
    return key->open(header, header_len, payload, protected_len, packet_number, payload_len);
}

int PacketProtector::open_packet(std::uint8_t* packet, std::size_t header_len, std::size_t packet_len,
                                 std::uint64_t packet_number, std::size_t* payload_len,
                                 KeyGeneration generation) noexcept {
    if (header_len > packet_len) return -EMSGSIZE;
    return open(packet, header_len, packet + header_len, packet_len - header_len, packet_number, payload_len,
                generation);
}

int PacketProtector::update_keys() noexcept {
    if (!installed_ || !key_update_) return platform::fail(EINVAL, "QUIC key update: no 1-RTT keys with key update");
    const std::size_t secret_len = secret_bytes(suite_);
    std::uint8_t secret[kMaxSecretBytes];
    PacketKeys keys;
    int status = 0;
    if (!next_keys_ahead_) {
        // `next` becomes current now, so its keys are due now; the ones after it wait for the next update.
        status = derive_payload_keys(suite_, next_secret_, secret_len, keys);
        if (status == 0) status = payload_[next_].install(keys);
    }
    if (status == 0) status = derive_next_secret(suite_, next_secret_, secret_len, secret);
    if (status == 0 && next_keys_ahead_) status = derive_payload_keys(suite_, secret, secret_len, keys);
    // The slot that becomes `next` is the old previous one (install() frees what it held).
    if (status == 0 && next_keys_ahead_) status = payload_[previous_].install(keys);
    if (status < 0) {
        // Ahead: the old previous slot may hold nothing usable now. Not ahead: current is unchanged, and a retry
        // derives `next` again from the same secret.
        if (next_keys_ahead_) has_previous_ = false;
        wipe_secret(secret, sizeof(secret));
        return status;
    }
    if (!next_keys_ahead_) payload_[previous_].clear();   // a write side keeps no previous key
    std::memcpy(next_secret_, secret, secret_len);
    wipe_secret(secret, sizeof(secret));
    const std::uint8_t recycled = previous_;
    previous_ = current_;
    current_ = next_;
    next_ = recycled;
    has_previous_ = true;
    ++updates_;
    return 0;
}

void PacketProtector::discard_previous() noexcept {
    if (!has_previous_) return;
    payload_[previous_].clear();
    has_previous_ = false;
}

}  // namespace cf::quic
