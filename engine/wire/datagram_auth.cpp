#include "engine/wire/datagram_auth.hpp"

#include <cerrno>
#include <cstring>

#include "engine/wire/little_endian.hpp"
#include "platform/os/last_error.hpp"

namespace cf::wire {
namespace {

constexpr std::size_t kMagicAt = 0, kVersionAt = 2, kKeyIdAt = 3, kReservedAt = 4, kTagAt = 8;
constexpr std::size_t kCoveredHeader = kTagAt;   // bytes of the header the tag covers
static_assert(kTagAt + kMacTagBytes == kAuthHeaderBytes);
static_assert(kAuthHeaderBytes % 8 == 0, "frames behind the header stay 8-byte aligned");

}  // namespace

bool looks_keyed(const std::byte* datagram, std::size_t size) noexcept {
    return size >= 2 && load_le<std::uint16_t>(datagram + kMagicAt) == kAuthMagic;
}

int DatagramAuth::open(std::uint8_t id, const std::uint8_t (&key)[kMacKeyBytes], const std::uint8_t* next_id,
                       const std::uint8_t (*next)[kMacKeyBytes]) noexcept {
    if ((next_id == nullptr) != (next == nullptr)) return platform::fail(EINVAL, "datagram keys: next id without key");
    if (next_id != nullptr && *next_id == id) {
        return platform::fail(EINVAL, "datagram keys: the next key has the current key's id %u", unsigned{id});
    }
    if (const int status = slots_[0].key.open(key); status != 0) return status;
    slots_[0].id = id;
    current_ = 0;
    if (next == nullptr) {
        slots_[1].key.close();
        return 0;
    }
    if (const int status = slots_[1].key.open(*next); status != 0) {
        slots_[0].key.close();
        return status;
    }
    slots_[1].id = *next_id;
    return 0;
}

int DatagramAuth::set_next(std::uint8_t id, const std::uint8_t (&key)[kMacKeyBytes]) noexcept {
    if (!keyed()) return platform::fail(EINVAL, "datagram keys: a keyless bridge cannot take a next key");
    if (id == current_id()) {
        return platform::fail(EINVAL, "datagram keys: key id %u is the current key's", unsigned{id});
    }
    Slot& other = slots_[1 - current_];
    if (const int status = other.key.open(key); status != 0) return status;
    other.id = id;
    return 0;
}

int DatagramAuth::rotate() noexcept {
    if (!slots_[1 - current_].key.is_open()) {
        return platform::fail(ENOENT, "datagram keys: no next key to rotate to (set one first)");
    }
    current_ = 1 - current_;
    return 0;
}

void DatagramAuth::tag(MacKey& key, const std::byte* datagram, std::size_t size,
                       std::uint8_t (&out)[kMacTagBytes]) noexcept {
    const MacKey::Piece pieces[2] = {{datagram, kCoveredHeader},
                                     {datagram + kAuthHeaderBytes, size - kAuthHeaderBytes}};
    key.tag(pieces, 2, out);
}

void DatagramAuth::seal(std::byte* datagram, std::size_t size) noexcept {
    Slot& slot = slots_[current_];
    store_le<std::uint16_t>(datagram + kMagicAt, kAuthMagic);
    datagram[kVersionAt] = std::byte{kAuthVersion};
    datagram[kKeyIdAt] = std::byte{slot.id};
    store_le<std::uint32_t>(datagram + kReservedAt, 0);
    std::uint8_t out[kMacTagBytes];
    tag(slot.key, datagram, size, out);
    std::memcpy(datagram + kTagAt, out, kMacTagBytes);
}

AuthVerdict DatagramAuth::verify(const std::byte* datagram, std::size_t size) noexcept {
    if (!looks_keyed(datagram, size)) return AuthVerdict::missing;
    if (size < kAuthHeaderBytes) return AuthVerdict::bad;
    if (std::to_integer<std::uint8_t>(datagram[kVersionAt]) != kAuthVersion ||
        load_le<std::uint32_t>(datagram + kReservedAt) != 0) {
        return AuthVerdict::bad;
    }
    const auto id = std::to_integer<std::uint8_t>(datagram[kKeyIdAt]);
    Slot* slot = nullptr;
    for (Slot& candidate : slots_) {
        if (candidate.key.is_open() && candidate.id == id) slot = &candidate;
    }
    if (slot == nullptr) return AuthVerdict::unknown_key;
    std::uint8_t expected[kMacTagBytes];
    tag(slot->key, datagram, size, expected);
    return tags_equal(expected, reinterpret_cast<const std::uint8_t*>(datagram + kTagAt)) ? AuthVerdict::good
                                                                                          : AuthVerdict::bad;
}

}  // namespace cf::wire
