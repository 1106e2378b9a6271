// What a polling loop does when a poll found nothing, as Aeron's idle strategies: users trade wake-up latency
// for CPU. Call idle(work) after every poll with the number of messages it handled; work resets the back-off.
//  - spin:             never yields the core (lowest latency, a full core forever)
//  - spin_then_pause:  spins `spins` empty polls, then executes PAUSE/YIELD between polls (saves power and
//                      the SMT sibling's share; latency + tens of ns)
//  - sleep:            after the spins, sleeps `sleep_ns` per empty poll (frees the core; latency + the
//                      kernel's timer slack, tens of microseconds)
#pragma once

#include <cstdint>
#include <ctime>

#include "platform/os/cycle_counter.hpp"

namespace cf::bus {

enum class IdleKind : std::uint8_t { spin, spin_then_pause, sleep };

class IdleStrategy {
public:
    explicit IdleStrategy(IdleKind kind = IdleKind::spin, std::uint32_t spins = 1000,
                          std::uint32_t sleep_ns = 50'000) noexcept
        : kind_(kind), spins_(spins), sleep_ns_(sleep_ns) {}

    void idle(std::uint32_t work) noexcept {
        if (work != 0) {
            empty_polls_ = 0;
            return;
        }
        if (kind_ == IdleKind::spin || empty_polls_ < spins_) {
            ++empty_polls_;
            return;
        }
        if (kind_ == IdleKind::spin_then_pause) {
            platform::cpu_relax();
            return;
        }
        const timespec pause{0, static_cast<long>(sleep_ns_)};
        nanosleep(&pause, nullptr);
    }

    IdleKind kind() const noexcept { return kind_; }
    // True once `spins` empty polls in a row have passed (spin never backs off): idle() now pauses or sleeps.
    bool backing_off() const noexcept { return kind_ != IdleKind::spin && empty_polls_ >= spins_; }

private:
    IdleKind kind_;
    std::uint32_t spins_;
    std::uint32_t sleep_ns_;
    std::uint32_t empty_polls_ = 0;
};

}  // namespace cf::bus
