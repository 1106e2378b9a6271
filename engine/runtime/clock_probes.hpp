// Clock probes: the bridge's control messages, and the probes it sent and still waits answers for.
//
// Control payload (a frame with flag kFrameControl, topic id 0, sequence = the probe's number), 64 bytes,
// integers little-endian:
//   offset size field
//        0    1 kind: 1 probe, 2 answer
//        1    1 control version, 2
//        2    6 zero
//        8    8 nonce: the probe's, echoed by its answer
//       16   16 t1: the prober's time when it sent the probe (echoed by the answer)
//       32   16 t2: the answerer's time when it decoded the probe (0 in a probe)
//       48   16 t3: the answerer's time when it built the answer (0 in a probe)
// Times are signed 128-bit femtosecond counts since the epoch, low 64 bits first. Anything else (another size,
// version, kind, or non-zero reserved bytes) is counted and dropped. Version 1 (before nonces) was 56 bytes:
// kind, 7 zero bytes, t1, t2, t3. Each side refuses the other's control frames by their size, so an old peer's
// probes are neither believed nor answered and ours are dropped by it (both count control_rejected); data frames,
// whose layout did not change, still flow.
//
// Why a nonce. An answer says "your clock and mine, at t1 .. t4"; believing one that answers no probe of ours lets
// anyone who can send from the peer's address set our offset estimate. Each probe carries a fresh 64-bit nonce
// (HMAC-SHA-256 of a counter under a key drawn from getrandom when the bridge opens: unpredictable without the
// key, and no system call per probe); an answer counts only if its nonce and t1 are those of a probe still
// outstanding and it arrives within max_age of t1. Each probe is answered at most once. At most kOutstanding
// probes are outstanding: a new one takes the oldest slot only once that probe was answered or is older than
// max_age, so on a path whose round trip exceeds kOutstanding probe intervals probing slows down to what the
// path carries instead of forgetting every probe before its answer can arrive. On an unkeyed bridge an on-path attacker still sees the nonce: only the datagram MAC
// (wire/datagram_auth.hpp) stops that one.
#pragma once

#include <cstddef>
#include <cstdint>

#include "engine/time/instant.hpp"
#include "engine/wire/mac_key.hpp"

namespace cf {

inline constexpr std::uint32_t kControlBytes = 64;
inline constexpr std::uint8_t kControlVersion = 2;

enum class ControlKind : std::uint8_t { probe = 1, answer = 2 };

struct ControlMessage {
    ControlKind kind = ControlKind::probe;
    std::uint64_t nonce = 0;
    Instant t1, t2, t3;
};

// 0 with the message in `out`, or -EBADMSG (wrong size, version, kind or reserved bytes; `out` untouched).
int decode_control(const std::byte* payload, std::uint32_t length, ControlMessage& out) noexcept;
void encode_control(const ControlMessage& message, std::byte (&out)[kControlBytes]) noexcept;

class ProbeBook {
public:
    static constexpr std::uint32_t kOutstanding = 16;   // 160 ms of round trip at the default 10 ms interval
    enum class Match : std::uint8_t {
        accepted,      // the answer to a probe outstanding, in time: the probe is consumed
        unsolicited,   // no probe outstanding with this nonce and t1 (never sent, forgotten, or already answered)
        stale,         // its probe, but later than max_age after t1: the probe is consumed, the answer dropped
    };

    // Draws the nonce key from getrandom and sets the age limit (> 0). 0, or a negative errno with a message.
    int open(Duration max_age) noexcept;

    // Remembers a probe sent at `t1` and sets `nonce` to its nonce. False (nothing recorded): the oldest slot
    // holds a probe still unanswered and not older than max_age; send no probe now.
    bool record(Instant t1, std::uint64_t& nonce) noexcept;

    // Judges an answer echoing `nonce` and `t1`, arrived at `t4`.
    Match match(std::uint64_t nonce, Instant t1, Instant t4) noexcept;

    std::uint32_t outstanding() const noexcept;

private:
    struct Slot {
        std::uint64_t nonce = 0;
        Instant t1;
        bool live = false;
    };
    Slot slots_[kOutstanding];
    std::uint32_t next_ = 0;       // the slot the next probe takes (round robin: the oldest)
    std::uint64_t counter_ = 0;    // probes recorded: the PRF's input
    Duration max_age_;
    wire::MacKey prf_;
};

}  // namespace cf
