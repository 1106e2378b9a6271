// The timers of accepted TCP connections: when each is due, and why.
#include "drivers/stream_timeouts.hpp"

#include <cerrno>

#include "platform/os/last_error.hpp"

namespace cf::drivers {
namespace {

// Far beyond any uptime plus any deadline, yet a sum of two stays inside int64: "never", in effect.
constexpr std::int64_t kLongest = std::int64_t{1} << 61;

int to_ns(Duration duration, const char* name, std::int64_t& out) noexcept {
    if (duration < Duration::zero()) return platform::fail(EINVAL, "tcp: %s must not be negative (0 disables)", name);
    if (!duration.to_nanos(out) || out > kLongest) out = kLongest;
    // Under a nanosecond still means "on", not "off".
    if (out == 0 && duration > Duration::zero()) out = 1;
    return 0;
}

}  // namespace

int StreamTimeouts::configure(const TcpConfig& config) noexcept {
    if (const int rc = to_ns(config.first_frame_timeout, "first_frame_timeout", first_frame_ns_); rc < 0) return rc;
    if (const int rc = to_ns(config.idle_timeout, "idle_timeout", idle_ns_); rc < 0) return rc;
    now_ = enabled() ? coarse_now() : 0;
    next_sweep_ = kNever;
    return 0;
}

void StreamTimeouts::start(StreamConnection& connection) noexcept {
    connection.timed = enabled();
    connection.framed = false;
    connection.accepted_at = connection.last_rx_at = now_;
    if (connection.timed && deadline(connection) < next_sweep_) next_sweep_ = deadline(connection);
}

std::int64_t StreamTimeouts::deadline(const StreamConnection& connection) const noexcept {
    std::int64_t due = kNever;
    if (first_frame_ns_ != 0 && !connection.framed) due = connection.accepted_at + first_frame_ns_;
    if (idle_ns_ != 0 && connection.last_rx_at + idle_ns_ < due) due = connection.last_rx_at + idle_ns_;
    return due;
}

int StreamTimeouts::overdue(const StreamConnections& connections, StreamConnection& connection) const noexcept {
    if (connections.frame_waiting(connection)) {
        // The peer did its part; the owner has not called rx_burst (or its pool is empty). Not the peer's idleness.
        connection.framed = true;
        connection.last_rx_at = now_;
        return 0;
    }
    const bool first_frame_due = first_frame_ns_ != 0 && !connection.framed &&
                                 now_ >= connection.accepted_at + first_frame_ns_;
    const bool idle_due = idle_ns_ != 0 && now_ >= connection.last_rx_at + idle_ns_;
    if (first_frame_due && idle_due) {
        // Both passed since the last look: the reason is the deadline that came first.
        return connection.accepted_at + first_frame_ns_ <= connection.last_rx_at + idle_ns_ ? kFirstFrameTimeout
                                                                                           : kIdleTimeout;
    }
    if (first_frame_due) return kFirstFrameTimeout;
    return idle_due ? kIdleTimeout : 0;
}

}  // namespace cf::drivers
