// Which of a peer's data frames for one topic id are news: the receive-side sequence rules of the bridge
// (bridge.hpp, "Receiving"), kept apart so they can be tested and fuzzed without sockets. Inline: one call per
// received frame, no allocation, no branch that depends on anything but the frame and this state.
#pragma once

#include <cstdint>
#include <limits>

namespace cf {

enum class SequenceVerdict : std::uint8_t {
    publish,     // in order or ahead (within the jump limit): deliver it
    duplicate,   // seen before: drop
    late,        // behind `expected`, not seen (reordered, or too far back to tell): drop
    rejected,    // too far ahead (or the one sequence that would wrap `expected`): drop, `expected` unchanged
};

struct SequenceResult {
    SequenceVerdict verdict;
    bool session_reset;     // the frame's session replaced one already tracked
    bool resynced;          // published after a run of kResyncRun consecutive frames beyond the limit
    std::uint64_t gaps;     // publish: sequences skipped over
};

class SequenceWindow {
public:
    static constexpr std::uint32_t kSeenBits = 64;    // sequences below `expected` whose arrival is remembered
    // A sender that really jumped further than the limit (a long outage on a fast topic) must not be shut out for
    // the rest of its session: this many consecutive sequences beyond the limit, in order, move `expected` to
    // them. One forged or corrupted datagram is not a run; a forger who can send a run could as well send a new
    // session, which resets tracking anyway (only the MAC of a keyed bridge stops both).
    static constexpr std::uint32_t kResyncRun = 4;
    // No sender reaches this sequence (a topic position); accepting it would wrap `expected` to 0.
    static constexpr std::uint64_t kNeverValid = std::numeric_limits<std::uint64_t>::max();

    // Judges one frame. `max_jump`: the largest sequence - expected that is accepted (the bridge's
    // max_sequence_jump). A rejected frame changes nothing but the run that may lead to a resync.
    SequenceResult accept(std::uint32_t session, std::uint64_t sequence, std::uint64_t max_jump) noexcept {
        SequenceResult result{SequenceVerdict::rejected, false, false, 0};
        if (sequence == kNeverValid) [[unlikely]] return result;
        if (!tracking_ || session_ != session) {
            result.session_reset = tracking_;
            tracking_ = true;
            session_ = session;
            expected_ = sequence;
            seen_ = 0;
            run_ = 0;
        }
        if (sequence >= expected_) {
            const std::uint64_t skipped = sequence - expected_;
            if (skipped > max_jump) [[unlikely]] {
                run_ = run_ != 0 && sequence == run_next_ ? run_ + 1 : 1;
                run_next_ = sequence + 1;   // sequence < kNeverValid: no wrap
                if (run_ < kResyncRun) return result;
                result.resynced = true;
            }
            run_ = 0;
            result.verdict = SequenceVerdict::publish;
            result.gaps = skipped;
            seen_ = skipped + 1 >= kSeenBits ? 0 : seen_ << (skipped + 1);
            seen_ |= 1;
            expected_ = sequence + 1;   // <= kNeverValid
            return result;
        }
        const std::uint64_t below = expected_ - 1 - sequence;   // its bit in `seen_`
        if (below < kSeenBits && ((seen_ >> below) & 1) != 0) {
            result.verdict = SequenceVerdict::duplicate;
            return result;
        }
        result.verdict = SequenceVerdict::late;
        if (below < kSeenBits) seen_ |= std::uint64_t{1} << below;
        return result;
    }

    void clear() noexcept { tracking_ = false; }
    bool tracking() const noexcept { return tracking_; }
    std::uint32_t session() const noexcept { return session_; }
    std::uint64_t expected() const noexcept { return expected_; }   // the next sequence in order

private:
    bool tracking_ = false;       // a session has been seen
    std::uint32_t session_ = 0;
    std::uint32_t run_ = 0;       // consecutive frames beyond the limit so far
    std::uint64_t expected_ = 0;
    std::uint64_t seen_ = 0;      // bit i: sequence expected - 1 - i arrived
    std::uint64_t run_next_ = 0;  // the sequence that would continue the run
};

}  // namespace cf
