// How many streams of each type each side may open (RFC 9000 sections 4.6 and 19.11): a cumulative count that
// only grows. Stream IDs are never reused, so a long-lived connection keeps working only if credit comes back as
// streams end: like the connection's flow-control window, once half of the streams we allowed have finished, a
// MAX_STREAMS update is due (a peer opening and closing streams one after another never runs dry).
//
// OpenedStreams is our side (we open, the peer allows); PeerStreams is the peer's side (it opens, we allow). A
// peer stream beyond our limit is STREAM_LIMIT_ERROR; opening stream n implicitly opens every lower one of its
// type (section 3.2), which the caller learns from the count.
#pragma once

#include <cstdint>

#include "engine/quic/stream_id.hpp"
#include "engine/quic/transport_error.hpp"

namespace cf::quic {

class OpenedStreams {
public:
    OpenedStreams() noexcept = default;
    explicit OpenedStreams(std::uint64_t peer_limit) noexcept : limit_(peer_limit) {}

    // The next stream's index, or false if the peer's limit is reached (then a STREAMS_BLOCKED is due once).
    bool open(std::uint64_t& index) noexcept {
        if (opened_ >= limit_) return false;
        index = opened_++;
        return true;
    }
    void on_peer_limit(std::uint64_t limit) noexcept {
        if (limit > limit_) limit_ = limit < kMaxStreamsLimit ? limit : kMaxStreamsLimit;
    }
    bool take_blocked_signal() noexcept {
        if (opened_ < limit_ || blocked_signalled_at_ == limit_ + 1) return false;
        blocked_signalled_at_ = limit_ + 1;
        return true;
    }
    std::uint64_t opened() const noexcept { return opened_; }
    std::uint64_t limit() const noexcept { return limit_; }

private:
    std::uint64_t opened_ = 0;
    std::uint64_t limit_ = 0;
    std::uint64_t blocked_signalled_at_ = 0;
};

class PeerStreams {
public:
    PeerStreams() noexcept = default;
    // `window`: how many of the peer's streams may be open at once (our initial_max_streams_*).
    explicit PeerStreams(std::uint64_t window) noexcept : limit_(window), window_(window) {}

    // A frame names the peer's stream `index`: STREAM_LIMIT_ERROR past our limit; otherwise it and every lower one
    // are open (opened() tells how many now).
    TransportError on_stream(std::uint64_t index) noexcept {
        if (index >= limit_) return TransportError::stream_limit_error;
        if (index >= opened_) opened_ = index + 1;
        return TransportError::no_error;
    }
    // One of the peer's streams finished (both directions done, or reset): its credit comes back.
    void on_closed() noexcept {
        if (closed_ < opened_) ++closed_;
    }
    bool update_due() const noexcept {
        return window_ != 0 && next_limit() > limit_ && next_limit() - limit_ >= (window_ + 1) / 2;
    }
    std::uint64_t next_limit() const noexcept {
        const std::uint64_t next = closed_ + window_;
        return next < kMaxStreamsLimit ? next : kMaxStreamsLimit;
    }
    void on_update_sent() noexcept { limit_ = next_limit(); }

    std::uint64_t opened() const noexcept { return opened_; }
    std::uint64_t limit() const noexcept { return limit_; }

private:
    std::uint64_t opened_ = 0;
    std::uint64_t closed_ = 0;
    std::uint64_t limit_ = 0;
    std::uint64_t window_ = 0;
};

}  // namespace cf::quic
