#include "engine/runtime/clock_probes.hpp"

#include <sys/random.h>

#include <cerrno>
#include <cstring>

#include "engine/wire/little_endian.hpp"
#include "platform/os/last_error.hpp"

namespace cf {
namespace {

constexpr std::size_t kKindAt = 0, kVersionAt = 1, kNonceAt = 8, kT1At = 16, kT2At = 32, kT3At = 48;
static_assert(kT3At + 16 == kControlBytes);

void store_instant(std::byte* out, Instant time) noexcept {
    __extension__ using U128 = unsigned __int128;
    const auto bits = static_cast<U128>(time.femtos());
    wire::store_le<std::uint64_t>(out, static_cast<std::uint64_t>(bits));
    wire::store_le<std::uint64_t>(out + 8, static_cast<std::uint64_t>(bits >> 64));
}

Instant load_instant(const std::byte* in) noexcept {
    __extension__ using U128 = unsigned __int128;
    const U128 bits = (U128{wire::load_le<std::uint64_t>(in + 8)} << 64) | wire::load_le<std::uint64_t>(in);
    return Instant::from_femtos(static_cast<Femtos>(bits));   // clamped: a hostile value stays in range
}

}  // namespace

int decode_control(const std::byte* payload, std::uint32_t length, ControlMessage& out) noexcept {
    if (length != kControlBytes) return -EBADMSG;
    const auto kind = std::to_integer<std::uint8_t>(payload[kKindAt]);
    if (kind != static_cast<std::uint8_t>(ControlKind::probe) && kind != static_cast<std::uint8_t>(ControlKind::answer)) {
        return -EBADMSG;
    }
    if (std::to_integer<std::uint8_t>(payload[kVersionAt]) != kControlVersion) return -EBADMSG;
    for (std::size_t i = kVersionAt + 1; i < kNonceAt; ++i) {
        if (payload[i] != std::byte{0}) return -EBADMSG;
    }
    out.kind = static_cast<ControlKind>(kind);
    out.nonce = wire::load_le<std::uint64_t>(payload + kNonceAt);
    out.t1 = load_instant(payload + kT1At);
    out.t2 = load_instant(payload + kT2At);
    out.t3 = load_instant(payload + kT3At);
    return 0;
}

void encode_control(const ControlMessage& message, std::byte (&out)[kControlBytes]) noexcept {
    std::memset(out, 0, kControlBytes);
    out[kKindAt] = static_cast<std::byte>(message.kind);
    out[kVersionAt] = std::byte{kControlVersion};
    wire::store_le<std::uint64_t>(out + kNonceAt, message.nonce);
    store_instant(out + kT1At, message.t1);
    store_instant(out + kT2At, message.t2);
    store_instant(out + kT3At, message.t3);
}

int ProbeBook::open(Duration max_age) noexcept {
    if (max_age <= Duration{}) return platform::fail(EINVAL, "clock probes: the answer age limit must be positive");
    std::uint8_t key[wire::kMacKeyBytes];
    // Blocking (flags 0) only until the kernel's pool was first seeded, which is long past after boot; set-up time.
    if (getrandom(key, sizeof key, 0) != static_cast<ssize_t>(sizeof key)) {
        return platform::fail(errno != 0 ? errno : EIO, "clock probes: getrandom for the nonce key failed");
    }
    const int status = prf_.open(key);
    std::memset(key, 0, sizeof key);
    if (status != 0) return status;
    max_age_ = max_age;
    for (Slot& slot : slots_) slot.live = false;
    return 0;
}

bool ProbeBook::record(Instant t1, std::uint64_t& nonce) noexcept {
    Slot& slot = slots_[next_];
    if (slot.live && t1 - slot.t1 <= max_age_) return false;
    std::byte counter[8];
    wire::store_le<std::uint64_t>(counter, counter_++);
    const wire::MacKey::Piece piece{counter, sizeof counter};
    std::uint8_t tag[wire::kMacTagBytes];
    prf_.tag(&piece, 1, tag);
    next_ = (next_ + 1) % kOutstanding;
    slot.nonce = wire::load_le<std::uint64_t>(reinterpret_cast<const std::byte*>(tag));
    slot.t1 = t1;
    slot.live = true;
    nonce = slot.nonce;
    return true;
}

ProbeBook::Match ProbeBook::match(std::uint64_t nonce, Instant t1, Instant t4) noexcept {
    for (Slot& slot : slots_) {
        if (!slot.live || slot.nonce != nonce || slot.t1 != t1) continue;
        slot.live = false;   // one answer per probe: a replayed answer finds nothing
        return t4 - t1 > max_age_ ? Match::stale : Match::accepted;
    }
    return Match::unsolicited;
}

std::uint32_t ProbeBook::outstanding() const noexcept {
    std::uint32_t count = 0;
    for (const Slot& slot : slots_) count += slot.live ? 1 : 0;
    return count;
}

}  // namespace cf
