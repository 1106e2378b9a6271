// libFuzzer target for the bridge's receive path (runtime/bridge.hpp): the datagram MAC (wire/datagram_auth.hpp),
// the frame walk (wire/frame.hpp), clock-probe control frames and the probes outstanding
// (runtime/clock_probes.hpp), the offset estimator behind them, and the data frames' sequence rules
// (runtime/sequence_window.hpp). Built and run by run_fuzz.sh with clang++, without sockets or an engine: the
// pieces are composed here in the order Bridge::receive_datagram uses them.
//
// The input is a script. Byte 0 picks the receiver: keyed or not, and its max_sequence_jump. Then operations,
// each one byte and its arguments (a script that runs out ends):
//   0 probe      [delta]            the clock moves delta us, a probe is sent (its nonce and t1 recorded) unless
//                                   the book is full of young unanswered probes
//   1 raw        [len] [bytes]      a datagram exactly as given (keyed or not, whatever it holds)
//   2 sealed     [slot] [flip] [len] [bytes]
//                                   the bytes behind a good auth header under key slot 0/1 (or an unknown id),
//                                   then one bit flipped where `flip` says (or none)
//   3 answer     [which] [how] [delta]
//                                   an answer to the which-th probe recorded (or a made-up one), right or wrong
//                                   in its nonce, t1 or version as `how` says, arriving delta us later; sealed
//                                   when keyed
//   4 data       [session] [jump x8] [count]
//                                   `count` data frames from expected + jump on (any 64-bit jump, so 2^63 and
//                                   2^64-1 come up), sealed when keyed
//   5 clock      [delta x2]         the clock moves, up to ~65 ms per step (past max_probe_age in a few)
// Oracles, any failure abort()s:
//   - the MAC verdict of every datagram equals a reference computed here with gnutls_hmac_fast from the layout;
//   - every answer's verdict equals a reference model of the probes outstanding (the last kOutstanding recorded,
//     each answerable once, within max_probe_age; a new probe replaces the oldest only once it is answered or
//     older than max_probe_age): no answer reaches the estimator unless it answers a probe we sent and did not
//     see answered, so the offset is never fed by unsolicited, replayed or stale answers;
//   - a rejected data frame (and a duplicate or late one) leaves the expected sequence and session as they were;
//     a published one sets expected to sequence + 1, never wrapping to 0;
//   - the counters add up.
#include <gnutls/crypto.h>

#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>

#include "engine/runtime/clock_probes.hpp"
#include "engine/runtime/sequence_window.hpp"
#include "engine/time/offset_estimator.hpp"
#include "engine/wire/datagram_auth.hpp"
#include "engine/wire/frame.hpp"

using namespace cf;

namespace {

[[noreturn]] void fail(const char* what) {
    std::fprintf(stderr, "bridge_control_fuzz: %s\n", what);
    std::abort();
}

constexpr std::uint8_t kKeys[2][wire::kMacKeyBytes] = {
    {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31, 32},
    {99, 98, 97, 96, 95, 94, 93, 92, 91, 90, 89, 88, 87, 86, 85, 84, 83, 82, 81, 80, 79, 78, 77, 76, 75, 74, 73, 72,
     71, 70, 69, 68}};
constexpr std::uint8_t kKeyIds[2] = {7, 200};
const Duration kMaxAge = Duration::from_millis(200);

// The input, read front to back; reads past its end give zeros and mark it spent.
struct Script {
    const std::uint8_t* data;
    std::size_t size;
    std::size_t at = 0;
    bool spent() const { return at >= size; }
    std::uint8_t byte() { return at < size ? data[at++] : (at++, 0); }
    std::uint64_t bytes(int count) {
        std::uint64_t value = 0;
        for (int i = 0; i < count; ++i) value |= std::uint64_t{byte()} << (8 * i);
        return value;
    }
    std::size_t take(std::size_t wanted, const std::uint8_t*& out) {
        const std::size_t left = at < size ? size - at : 0;
        const std::size_t n = wanted < left ? wanted : left;
        out = data + (at < size ? at : size);
        at += n;
        return n;
    }
};

// The reference for the MAC: straight from the layout in datagram_auth.hpp.
wire::AuthVerdict reference_verdict(const std::byte* d, std::size_t size) {
    if (size < 2 || std::to_integer<int>(d[0]) != 0xA5 || std::to_integer<int>(d[1]) != 0xC7) {
        return wire::AuthVerdict::missing;
    }
    if (size < 24 || std::to_integer<int>(d[2]) != 1) return wire::AuthVerdict::bad;
    for (int i = 4; i < 8; ++i) {
        if (d[i] != std::byte{0}) return wire::AuthVerdict::bad;
    }
    const int id = std::to_integer<int>(d[3]);
    const int slot = id == kKeyIds[0] ? 0 : id == kKeyIds[1] ? 1 : -1;
    if (slot < 0) return wire::AuthVerdict::unknown_key;
    static std::uint8_t covered[wire::kMaxUdpPayloadBytes + 64];
    std::memcpy(covered, d, 8);
    std::memcpy(covered + 8, d + 24, size - 24);
    std::uint8_t digest[32];
    if (gnutls_hmac_fast(GNUTLS_MAC_SHA256, kKeys[slot], wire::kMacKeyBytes, covered, size - 16, digest) != 0) {
        fail("gnutls_hmac_fast failed");
    }
    return std::memcmp(digest, d + 8, 16) == 0 ? wire::AuthVerdict::good : wire::AuthVerdict::bad;
}

// The reference for the probes outstanding: every probe ever recorded, in order.
struct ProbeModel {
    struct Probe {
        std::uint64_t nonce;
        Instant t1;
        bool answered;
    };
    static constexpr std::size_t kMax = 4096;
    Probe probes[kMax];
    std::size_t count = 0;

    // Whether a probe at t1 may be recorded: the one it would replace (kOutstanding records back) is answered,
    // or older than max_age.
    bool may_record(Instant t1) const {
        if (count < ProbeBook::kOutstanding) return true;
        const Probe& oldest = probes[count - ProbeBook::kOutstanding];
        return oldest.answered || t1 - oldest.t1 > kMaxAge;
    }

    ProbeBook::Match judge(std::uint64_t nonce, Instant t1, Instant t4) {
        // Only the last kOutstanding probes are remembered.
        const std::size_t first = count > ProbeBook::kOutstanding ? count - ProbeBook::kOutstanding : 0;
        for (std::size_t i = first; i < count; ++i) {
            Probe& probe = probes[i];
            if (probe.answered || probe.nonce != nonce || probe.t1 != t1) continue;
            probe.answered = true;
            return t4 - t1 > kMaxAge ? ProbeBook::Match::stale : ProbeBook::Match::accepted;
        }
        return ProbeBook::Match::unsolicited;
    }
};

struct Receiver {
    bool keyed = false;
    std::uint64_t max_jump = 0;
    wire::DatagramAuth auth;
    ProbeBook probes;
    ProbeModel model;
    std::unique_ptr<OffsetEstimator> estimator;
    SequenceWindow window;
    wire::WireCounters wire;
    Instant clock = Instant::from_femtos(Femtos{1'700'000'000} * 1'000'000'000'000'000);
    std::uint64_t fed = 0;            // answers handed to the estimator
    std::uint64_t published = 0, rejected = 0, duplicates = 0, late = 0, data_frames = 0;
    std::uint64_t control_rejected = 0, unsolicited = 0, stale = 0;

    // Bridge::receive_datagram, step by step.
    void receive(const std::byte* data, std::size_t size) {
        if (keyed) {
            const wire::AuthVerdict verdict = auth.verify(data, size);
            if (verdict != reference_verdict(data, size)) fail("MAC verdict differs from the reference");
            if (verdict != wire::AuthVerdict::good) return;
            data += wire::kAuthHeaderBytes;
            size -= wire::kAuthHeaderBytes;
        } else if (wire::looks_keyed(data, size)) {
            return;
        }
        wire::DatagramReader reader(data, size, wire::kMaxPayloadBytes, wire);
        wire::DecodedFrame frame;
        while (reader.next(frame) == 1) {
            if ((frame.fields.flags & wire::kFrameControl) != 0) control(frame);
            else data_frame(frame);
        }
    }

    void control(const wire::DecodedFrame& frame) {
        ControlMessage message;
        if (decode_control(frame.payload, frame.length, message) != 0) {
            ++control_rejected;
            return;
        }
        if (message.kind == ControlKind::probe) return;   // answered by the bridge: nothing to check here
        const ProbeBook::Match match = probes.match(message.nonce, message.t1, clock);
        if (match != model.judge(message.nonce, message.t1, clock)) fail("answer verdict differs from the model");
        if (match == ProbeBook::Match::unsolicited) ++unsolicited;
        if (match == ProbeBook::Match::stale) ++stale;
        if (match != ProbeBook::Match::accepted) return;
        ++fed;
        (void)estimator->add({message.t1, message.t2, message.t3, clock});
    }

    void data_frame(const wire::DecodedFrame& frame) {
        ++data_frames;
        const bool was_tracking = window.tracking();
        const std::uint32_t was_session = window.session();
        const std::uint64_t was_expected = window.expected();
        const std::uint64_t sequence = frame.fields.sequence;
        const SequenceResult result = window.accept(frame.fields.session, sequence, max_jump);
        const bool same_state = window.tracking() == was_tracking && window.session() == was_session &&
                                window.expected() == was_expected;
        switch (result.verdict) {
            case SequenceVerdict::publish:
                if (window.expected() != sequence + 1 || window.expected() == 0) fail("expected is not sequence + 1");
                if (!result.resynced && result.gaps > max_jump) fail("published beyond the jump limit");
                ++published;
                break;
            case SequenceVerdict::rejected:
                if (!same_state) fail("a rejected frame moved the sequence state");
                if (sequence != SequenceWindow::kNeverValid && sequence - was_expected <= max_jump) {
                    fail("rejected a frame within the limit");
                }
                ++rejected;
                break;
            case SequenceVerdict::duplicate:
            case SequenceVerdict::late:
                if (result.session_reset || window.expected() != was_expected) fail("a dropped frame moved expected");
                if (sequence >= window.expected()) fail("a frame at or after expected was dropped as old");
                ++(result.verdict == SequenceVerdict::late ? late : duplicates);
                break;
        }
    }
};

std::byte datagram[wire::kMaxUdpPayloadBytes + 64];

// Frames (already written at datagram + kAuthHeaderBytes, `frames` bytes) sealed like a keyed bridge sends them:
// under key slot 0 or 1, or (slot 2) under key 0's bytes with an id the receiver does not know.
std::size_t seal(std::size_t frames, int slot) {
    static wire::DatagramAuth sealers[3];
    static bool opened = false;
    if (!opened) {
        const std::uint8_t unknown = 42;
        if (sealers[0].open(kKeyIds[0], kKeys[0], nullptr, nullptr) != 0 ||
            sealers[1].open(kKeyIds[1], kKeys[1], nullptr, nullptr) != 0 ||
            sealers[2].open(unknown, kKeys[0], nullptr, nullptr) != 0) {
            fail("sealer keys");
        }
        opened = true;
    }
    const std::size_t size = wire::kAuthHeaderBytes + frames;
    sealers[slot].seal(datagram, size);
    return size;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* input, std::size_t size) {
    Script script{input, size};
    Receiver rx;
    const std::uint8_t mode = script.byte();
    rx.keyed = (mode & 1) != 0;
    static const std::uint64_t kJumps[4] = {1, 64, std::uint64_t{1} << 32, ~std::uint64_t{0} - 1};
    rx.max_jump = kJumps[(mode >> 1) & 3];
    if (rx.keyed && rx.auth.open(kKeyIds[0], kKeys[0], &kKeyIds[1], &kKeys[1]) != 0) fail("receiver keys");
    if (rx.probes.open(kMaxAge) != 0) fail("probe book");
    if (OffsetEstimator::create({}, rx.estimator) != 0) fail("estimator");
    const std::size_t prefix = rx.keyed ? wire::kAuthHeaderBytes : 0;

    for (int step = 0; step < 256 && !script.spent(); ++step) {
        switch (script.byte() % 6) {
            case 0: {   // probe
                rx.clock += Duration::from_micros(script.byte());
                if (rx.model.count == ProbeModel::kMax) break;
                std::uint64_t nonce = 0;
                const bool recorded = rx.probes.record(rx.clock, nonce);
                if (recorded != rx.model.may_record(rx.clock)) fail("probe recorded or deferred against the model");
                if (recorded) rx.model.probes[rx.model.count++] = {nonce, rx.clock, false};
                break;
            }
            case 1: {   // raw
                const std::uint8_t* bytes = nullptr;
                const std::size_t n = script.take(script.bytes(2), bytes);
                std::memcpy(datagram, bytes, n);
                rx.receive(datagram, n);
                break;
            }
            case 2: {   // sealed
                const int slot = script.byte() % 3;
                const std::uint16_t flip = static_cast<std::uint16_t>(script.bytes(2));
                const std::uint8_t* bytes = nullptr;
                const std::size_t n = script.take(script.bytes(2), bytes);
                std::memcpy(datagram + wire::kAuthHeaderBytes, bytes, n);
                const std::size_t total = seal(n, slot);
                if (flip < total * 8) datagram[flip / 8] ^= std::byte{static_cast<std::uint8_t>(1u << (flip % 8))};
                rx.receive(datagram, total);
                break;
            }
            case 3: {   // answer
                const std::uint8_t which = script.byte();
                const std::uint8_t how = script.byte();
                rx.clock += Duration::from_micros(script.byte());
                ControlMessage answer;
                answer.kind = ControlKind::answer;
                if (rx.model.count != 0 && which < 240) {
                    const ProbeModel::Probe& probe = rx.model.probes[rx.model.count - 1 - which % rx.model.count];
                    answer.nonce = probe.nonce ^ ((how & 1) != 0 ? 1 : 0);
                    answer.t1 = probe.t1 + Duration::from_femtos((how & 2) != 0 ? 1 : 0);
                } else {
                    answer.nonce = script.bytes(8);
                    answer.t1 = rx.clock - Duration::from_micros(50);
                }
                answer.t2 = answer.t1 + Duration::from_seconds((how & 4) != 0 ? 10 : 0);
                answer.t3 = answer.t2 + Duration::from_micros(1);
                std::byte payload[kControlBytes];
                encode_control(answer, payload);
                if ((how & 8) != 0) payload[1] = std::byte{1};   // control version 1
                wire::DatagramWriter writer(datagram + prefix, sizeof datagram - prefix);
                const wire::FrameFields fields{0, which, HlcStamp{}, 5, wire::kFrameControl};
                const int repeat = (how & 16) != 0 ? 2 : 1;   // the same answer twice in one datagram
                for (int i = 0; i < repeat; ++i) (void)writer.append(fields, payload, kControlBytes);
                const std::size_t total = rx.keyed ? seal(writer.size(), 0) : writer.size();
                rx.receive(datagram, total);
                break;
            }
            case 4: {   // data
                const std::uint32_t session = script.byte() % 3;
                const std::uint64_t jump = script.bytes(8);
                const int count = script.byte() % 8 + 1;
                wire::DatagramWriter writer(datagram + prefix, sizeof datagram - prefix);
                std::uint64_t sequence = rx.window.expected() + jump;
                for (int i = 0; i < count; ++i) {
                    const wire::FrameFields fields{1, sequence++, HlcStamp{}, session, 0};
                    (void)writer.append(fields, "x", 1);
                }
                const std::size_t total = rx.keyed ? seal(writer.size(), 0) : writer.size();
                rx.receive(datagram, total);
                break;
            }
            case 5:   // clock
                rx.clock += Duration::from_micros(static_cast<std::int64_t>(script.bytes(2)));
                break;
        }
    }

    if (rx.estimator->accepted() + rx.estimator->rejected() != rx.fed) fail("the estimator saw answers not fed");
    if (rx.published + rx.rejected + rx.duplicates + rx.late != rx.data_frames) fail("data verdicts do not add up");
    return 0;
}
