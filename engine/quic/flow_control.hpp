// Flow control (RFC 9000 section 4): one limit per stream and one per connection, in each direction.
//
// ReceiveCredit is what we let the peer send: the limit we advertised (MAX_DATA / MAX_STREAM_DATA), checked
// against the highest offset the peer's frames reach (beyond it: FLOW_CONTROL_ERROR), and raised as the
// application consumes data. The window (limit - consumed) starts at the configured size and auto-tunes: when an
// update is due less than two round trips after the previous one, the window was what held the sender back, so it
// doubles, up to the configured maximum (by default 10 MB per stream and 100 MB per connection, the figures this
// engine is sized for). An update is due once the application consumed half the window since the last one, so a
// sender that keeps up never stalls and a slow reader sends few updates.
//
// SendCredit is what the peer lets us send: its limit only grows (a smaller MAX_DATA is ignored, section 4.1), and
// once we are held at a limit the DATA_BLOCKED / STREAM_DATA_BLOCKED signal for that limit is due once.
//
// Plain state, one connection's thread; times are nanoseconds of any monotonic clock.
#pragma once

#include <cstdint>

#include "engine/quic/transport_error.hpp"

namespace cf::quic {

inline constexpr std::uint64_t kDefaultMaxStreamWindow = 10'000'000;        // 10 MB
inline constexpr std::uint64_t kDefaultMaxConnectionWindow = 100'000'000;   // 100 MB

class ReceiveCredit {
public:
    ReceiveCredit() noexcept = default;
    // `window` is the first limit advertised (in the transport parameters); it never grows past `max_window`.
    ReceiveCredit(std::uint64_t window, std::uint64_t max_window) noexcept
        : limit_(window), window_(window), max_window_(max_window < window ? window : max_window) {}

    // The peer's data now reaches `end` (a frame's offset + length, or a final size). FLOW_CONTROL_ERROR if it
    // goes past the limit we advertised.
    TransportError on_received(std::uint64_t end) noexcept {
        if (end > limit_) return TransportError::flow_control_error;
        if (end > highest_received_) highest_received_ = end;
        return TransportError::no_error;
    }
    // The application took `bytes` more (never more than was received). Decides whether an update is due.
    void on_consumed(std::uint64_t bytes, std::uint64_t now_ns, std::uint64_t smoothed_rtt_ns) noexcept {
        consumed_ += bytes;
        if (update_due_ || limit_ - consumed_ > window_ / 2) return;
        if (last_update_ns_ != 0 && now_ns - last_update_ns_ < 2 * smoothed_rtt_ns && window_ < max_window_) {
            window_ = window_ > max_window_ / 2 ? max_window_ : window_ * 2;
        }
        update_due_ = true;
    }
    // Whether a MAX_DATA / MAX_STREAM_DATA frame should go out, and with which limit.
    bool update_due() const noexcept { return update_due_; }
    std::uint64_t next_limit() const noexcept { return consumed_ + window_; }
    // The update was sent: the new limit holds from now on (a lost frame is sent again with next_limit()).
    void on_update_sent(std::uint64_t now_ns) noexcept {
        limit_ = next_limit();
        last_update_ns_ = now_ns;
        update_due_ = false;
    }

    std::uint64_t limit() const noexcept { return limit_; }
    std::uint64_t window() const noexcept { return window_; }
    std::uint64_t highest_received() const noexcept { return highest_received_; }
    std::uint64_t consumed() const noexcept { return consumed_; }

private:
    std::uint64_t limit_ = 0;
    std::uint64_t window_ = 0;
    std::uint64_t max_window_ = 0;
    std::uint64_t highest_received_ = 0;
    std::uint64_t consumed_ = 0;
    std::uint64_t last_update_ns_ = 0;
    bool update_due_ = false;
};

class SendCredit {
public:
    SendCredit() noexcept = default;
    explicit SendCredit(std::uint64_t peer_limit) noexcept : limit_(peer_limit) {}

    std::uint64_t available() const noexcept { return limit_ - sent_; }
    std::uint64_t limit() const noexcept { return limit_; }
    std::uint64_t sent() const noexcept { return sent_; }

    // New bytes sent (retransmissions do not count): at most available().
    void on_sent(std::uint64_t bytes) noexcept { sent_ += bytes <= available() ? bytes : available(); }
    // The peer's MAX_DATA / MAX_STREAM_DATA: limits only grow.
    void on_peer_limit(std::uint64_t limit) noexcept {
        if (limit > limit_) limit_ = limit;
    }
    // True once per limit while we are held at it: time to send DATA_BLOCKED(limit()).
    bool take_blocked_signal() noexcept {
        if (available() != 0 || blocked_signalled_at_ == limit_ + 1) return false;
        blocked_signalled_at_ = limit_ + 1;
        return true;
    }

private:
    std::uint64_t limit_ = 0;
    std::uint64_t sent_ = 0;
    std::uint64_t blocked_signalled_at_ = 0;   // limit + 1 of the last signal (0: none)
};

}  // namespace cf::quic
