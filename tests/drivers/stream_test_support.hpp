// What the TCP stream suites share: random frame lengths and payloads, the slow reference of the wire format (each
// frame as its 4-byte little-endian length, then its bytes), opening a driver or saying why io_uring cannot run
// here, plain blocking sockets that play a raw peer, and an Endpoint that polls a driver and keeps everything it
// handed out, so tests can check order, ids and stats exactly afterwards.
// Every wait is a bounded number of poll rounds (kPollRounds), never a time, except where the awaited thing is a
// time (the timers of accepted connections): those waits are bounded by kTimerWait of wall time, far beyond the
// tens of milliseconds the tests configure.
#pragma once

#include <doctest/doctest.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sched.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstring>
#include <functional>
#include <map>
#include <memory>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "drivers/driver_choice.hpp"
#include "drivers/packet.hpp"
#include "drivers/stream_driver.hpp"
#include "engine/time/counter_clock.hpp"
#include "engine/time/duration.hpp"
#include "engine/time/instant.hpp"
#include "platform/os/last_error.hpp"

namespace cf::drivers::testing {

using Bytes = std::vector<std::uint8_t>;

// Poll rounds a wait may take before the test fails: loopback needs a handful; the bound only matters when
// something is lost or stuck.
inline constexpr int kPollRounds = 200000;

// How long a wait for a timer may take before the test fails: the timers under test are tens of milliseconds; the
// bound only matters when a timer never fires (and leaves room for a noisy, shared machine).
inline constexpr std::chrono::milliseconds kTimerWait{10000};

// Lengths that reach the edges often: empty, exactly `max`, tiny, and anything in between.
inline std::uint32_t random_length(std::mt19937_64& random, std::uint32_t max) {
    switch (random() % 8) {
        case 0: return 0;
        case 1: return max;
        case 2: return static_cast<std::uint32_t>(std::min<std::uint64_t>(random() % 16, max));
        default: return static_cast<std::uint32_t>(random() % (std::uint64_t{max} + 1));
    }
}

inline Bytes random_bytes(std::mt19937_64& random, std::uint32_t length) {
    Bytes bytes(length);
    for (auto& byte : bytes) byte = static_cast<std::uint8_t>(random());
    return bytes;
}

// The wire format, written the slow way: length word (little-endian) then payload.
inline void append_wire(Bytes& stream, std::uint32_t length_word, const Bytes& payload) {
    for (int shift = 0; shift < 32; shift += 8) stream.push_back(static_cast<std::uint8_t>(length_word >> shift));
    stream.insert(stream.end(), payload.begin(), payload.end());
}

inline Bytes wire_of(const std::vector<Bytes>& frames) {
    Bytes stream;
    for (const Bytes& frame : frames) append_wire(stream, static_cast<std::uint32_t>(frame.size()), frame);
    return stream;
}

inline Bytes bytes_of(const PacketBuffer& buffer) {
    const auto* data = reinterpret_cast<const std::uint8_t*>(buffer.data);
    return {data, data + buffer.length};
}

inline std::string text_of(const PeerAddress& address) {
    char text[64];
    return address.format(text, sizeof text);
}

inline const char* kind_name(DriverKind kind) { return driver_kind_name(kind); }

// A configuration for loopback tests: small pools and rings, no hugepages (the machine is shared).
inline TcpConfig loopback_config() {
    TcpConfig config;
    config.pool.count = 512;
    config.pool.buffer_bytes = 2048;   // a multiple of 64: the pool keeps it as is, so it is the frame limit
    config.pool.prefer_hugepages = false;
    config.max_connections = 8;
    config.rx_stream_bytes = 64u << 10;
    config.tx_stream_bytes = 64u << 10;
    return config;
}

// loopback_config() with the timers of accepted connections set (zero disables one).
inline TcpConfig timed_config(Duration first_frame_timeout, Duration idle_timeout) {
    TcpConfig config = loopback_config();
    config.first_frame_timeout = first_frame_timeout;
    config.idle_timeout = idle_timeout;
    return config;
}

inline PeerAddress loopback_any_port() {
    PeerAddress address;
    REQUIRE(PeerAddress::parse("127.0.0.1:0", address) == 0);
    return address;
}

// Opens a driver of `kind` into `out`. false (after saying why) when `kind` is uring and io_uring cannot be used
// here (qemu-user, a kernel or container that forbids it, a build without liburing): the caller returns.
// Any other failure fails the test.
inline bool open_or_skip(DriverKind kind, const TcpConfig& config, std::unique_ptr<StreamDriver>& out) {
    const int status = open_tcp(kind, config, out);
    const std::string why = platform::last_error_message();
    if (kind == DriverKind::uring && uring_unusable(status)) {
        MESSAGE("io_uring tcp driver unavailable, test skipped: ", why);
        return false;
    }
    INFO("open_tcp(", kind_name(kind), "): ", why);
    REQUIRE(status == 0);
    REQUIRE(out != nullptr);
    if (kind != DriverKind::automatic) REQUIRE(out->kind() == kind);
    return true;
}

// ---- raw peers: plain blocking sockets the test drives byte by byte ----

inline PeerAddress local_address_of(int fd) {
    PeerAddress address;
    address.length = sizeof address.addr;
    REQUIRE(getsockname(fd, &address.addr.any, &address.length) == 0);
    return address;
}

// A TCP socket bound to 127.0.0.1 on a free port that does not listen: connecting to it is refused, and holding it
// keeps anyone else from taking the port meanwhile.
inline int bound_not_listening(PeerAddress& address) {
    const int fd = socket(AF_INET, SOCK_STREAM, 0);
    REQUIRE(fd >= 0);
    const PeerAddress any = loopback_any_port();
    REQUIRE(bind(fd, &any.addr.any, any.length) == 0);
    address = local_address_of(fd);
    return fd;
}

// A blocking socket connected to `to` (the kernel completes the handshake from the listen backlog), with
// TCP_NODELAY so one-byte writes go out one by one.
inline int raw_connect(const PeerAddress& to) {
    const int fd = socket(to.addr.any.sa_family, SOCK_STREAM, 0);
    REQUIRE(fd >= 0);
    const int on = 1;
    REQUIRE(setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &on, sizeof on) == 0);
    REQUIRE(connect(fd, &to.addr.any, to.length) == 0);
    return fd;
}

inline void raw_write_all(int fd, const std::uint8_t* data, std::size_t size) {
    while (size > 0) {
        const ssize_t wrote = send(fd, data, size, MSG_NOSIGNAL);
        REQUIRE(wrote > 0);
        data += wrote;
        size -= static_cast<std::size_t>(wrote);
    }
}

// What a non-blocking read finds: bytes appended to `into`; returns the recv result (0: the peer closed, -1 with
// errno EAGAIN: nothing yet).
inline ssize_t raw_read_some(int fd, Bytes& into) {
    std::uint8_t chunk[65536];
    const ssize_t got = recv(fd, chunk, sizeof chunk, MSG_DONTWAIT);
    if (got > 0) into.insert(into.end(), chunk, chunk + got);
    return got;
}

// Whether the other side closed a raw peer's connection: a read finds the end of the stream or a reset. What it
// reads otherwise is dropped.
inline bool raw_peer_closed(int fd) {
    Bytes dropped;
    const ssize_t got = raw_read_some(fd, dropped);
    return got == 0 || (got < 0 && errno == ECONNRESET);
}

// ---- polling a driver and keeping what it handed out ----

struct ReceivedFrame {
    PeerAddress peer;
    Bytes bytes;
};

// One driver and everything it handed out, in order. poll() is one round: events, then frames (released at once
// after copying), then completions. Each event remembers how many frames its connection had delivered when it
// came out, so a test can check that a `closed` event follows the connection's last frame.
class Endpoint {
public:
    // With `clock` (the one the driver's config names), each burst's rx_time is checked: one value per burst,
    // read during the rx_burst call.
    Endpoint(StreamDriver& driver, std::uint32_t rx_max = 64, const CounterClock* clock = nullptr)
        : driver_(driver), rx_max_(rx_max), clock_(clock) {}

    StreamDriver& driver() { return driver_; }

    // Ids this side may legitimately see frames on before an event names them (its own connect() results).
    void expect(ConnectionId id) { known_.insert(id); }

    bool poll() {
        bool progress = false;
        // Every event first (a batch at a time), so frames never come on a connection whose event still waits.
        StreamEvent batch[16];
        for (int events = 16; events == 16;) {
            events = driver_.poll_events(batch, 16);
            INFO("poll_events: ", std::string(platform::last_error_message()));
            REQUIRE(events >= 0);
            REQUIRE(events <= 16);
            take_events(batch, events);
            progress = progress || events > 0;
        }

        PacketBuffer* burst[64];
        const std::uint32_t max = rx_max_ < 64 ? rx_max_ : 64;
        const Instant before = clock_ != nullptr ? clock_->now() : Instant();
        const int count = driver_.rx_burst(burst, max);
        const Instant after = clock_ != nullptr ? clock_->now() : Instant();
        INFO("rx_burst: ", std::string(platform::last_error_message()));
        REQUIRE(count >= 0);
        REQUIRE(static_cast<std::uint32_t>(count) <= max);
        for (int i = 0; i < count; ++i) {
            PacketBuffer* buffer = burst[i];
            CHECK(driver_.pool().owns(buffer));
            CHECK(buffer->length <= driver_.pool().buffer_bytes());
            if (clock_ != nullptr) {
                if (buffer->rx_time != burst[0]->rx_time || buffer->rx_time < before || buffer->rx_time > after) {
                    ++frames_with_wrong_time_;
                }
                ++frames_timed_;
            }
            if (known_.count(buffer->connection) == 0) ++frames_on_unknown_;
            if (closed_.count(buffer->connection) != 0) ++frames_after_close_;
            if (auto peer = peers_.find(buffer->connection); peer != peers_.end() && !(peer->second == buffer->peer)) {
                ++frames_with_wrong_peer_;
            }
            frames_[buffer->connection].push_back({buffer->peer, bytes_of(*buffer)});
            ++frame_count_;
            driver_.release(buffer);
            progress = true;
        }

        const int completions = driver_.poll_completions();
        INFO("poll_completions: ", std::string(platform::last_error_message()));
        REQUIRE(completions == 0);
        return progress;
    }

    const std::vector<StreamEvent>& events() const { return events_; }
    std::size_t frames_at_event(std::size_t index) const { return frames_at_event_[index]; }
    const std::vector<ReceivedFrame>& frames(ConnectionId id) { return frames_[id]; }
    std::uint64_t frame_count() const { return frame_count_; }
    bool closed(ConnectionId id) const { return closed_.count(id) != 0; }
    // The first event of `kind` (on `id` when nonzero), or nullptr.
    const StreamEvent* find_event(StreamEventKind kind, ConnectionId id = 0) const {
        for (const StreamEvent& event : events_) {
            if (event.kind == kind && (id == 0 || event.connection == id)) return &event;
        }
        return nullptr;
    }
    std::size_t count_events(StreamEventKind kind) const {
        std::size_t count = 0;
        for (const StreamEvent& event : events_) count += event.kind == kind ? 1 : 0;
        return count;
    }

    // Misbehaviour counted while polling, checked by check_clean().
    void check_clean() const {
        CHECK(frames_on_unknown_ == 0);       // a frame on a connection no event (or connect()) named
        CHECK(frames_after_close_ == 0);      // a frame on a connection after its `closed` event
        CHECK(frames_with_wrong_peer_ == 0);  // buffer.peer differs from the connection's event peer
        CHECK(frames_with_wrong_time_ == 0);  // rx_time not one clock read per burst, taken during the call
        if (clock_ != nullptr) CHECK(frames_timed_ == frame_count_);
        CHECK(driver_.pool().misuse_count() == 0);
    }

private:
    void take_events(const StreamEvent* batch, int count) {
        for (int i = 0; i < count; ++i) {
            const StreamEvent& event = batch[i];
            CHECK(event.connection > 0);
            CHECK(event.connection < (1u << 31));
            CHECK(closed_.count(event.connection) == 0);   // nothing after a connection's `closed` event
            events_.push_back(event);
            frames_at_event_.push_back(frames_[event.connection].size());
            if (event.kind == StreamEventKind::closed) {
                closed_.insert(event.connection);
            } else {
                known_.insert(event.connection);
                peers_[event.connection] = event.peer;
            }
        }
    }

    StreamDriver& driver_;
    std::uint32_t rx_max_;
    const CounterClock* clock_;
    std::vector<StreamEvent> events_;
    std::vector<std::size_t> frames_at_event_;
    std::map<ConnectionId, std::vector<ReceivedFrame>> frames_;
    std::map<ConnectionId, PeerAddress> peers_;
    std::set<ConnectionId> known_, closed_;
    std::uint64_t frame_count_ = 0;
    std::uint64_t frames_on_unknown_ = 0, frames_after_close_ = 0, frames_with_wrong_peer_ = 0;
    std::uint64_t frames_with_wrong_time_ = 0, frames_timed_ = 0;
};

// Polls every endpoint, round after round, until `done` says so; fails naming `what` when kPollRounds run out.
// Yields the CPU on a round where nothing happened (the machine is shared; loopback needs the peer to run).
inline void pump_until(std::vector<Endpoint*> endpoints, const std::function<bool()>& done, const char* what,
                       int rounds = kPollRounds) {
    for (int round = 0; round < rounds && !done(); ++round) {
        bool progress = false;
        for (Endpoint* endpoint : endpoints) progress = endpoint->poll() || progress;
        if (!progress) sched_yield();
    }
    REQUIRE_MESSAGE(done(), "gave up after ", rounds, " poll rounds waiting for: ", std::string(what));
}

// Polls every endpoint until `done` says so; fails naming `what` when `limit` of wall time has passed. Sleeps a
// little on a round where nothing happened: what it waits for is a timer.
inline void pump_for(std::vector<Endpoint*> endpoints, const std::function<bool()>& done, const char* what,
                     std::chrono::milliseconds limit = kTimerWait) {
    const auto give_up = std::chrono::steady_clock::now() + limit;
    while (!done() && std::chrono::steady_clock::now() < give_up) {
        bool progress = false;
        for (Endpoint* endpoint : endpoints) progress = endpoint->poll() || progress;
        if (!progress) std::this_thread::sleep_for(std::chrono::microseconds(200));
    }
    REQUIRE_MESSAGE(done(), "gave up after ", limit.count(), " ms waiting for: ", std::string(what));
}

// Polls every endpoint for `span` of wall time (to see that nothing happens meanwhile).
inline void pump_during(std::vector<Endpoint*> endpoints, std::chrono::milliseconds span) {
    const auto end = std::chrono::steady_clock::now() + span;
    while (std::chrono::steady_clock::now() < end) {
        bool progress = false;
        for (Endpoint* endpoint : endpoints) progress = endpoint->poll() || progress;
        if (!progress) std::this_thread::sleep_for(std::chrono::microseconds(200));
    }
}

// Polls a fixed number of rounds (to see that nothing more comes).
inline void pump_rounds(std::vector<Endpoint*> endpoints, int rounds) {
    for (int round = 0; round < rounds; ++round) {
        bool progress = false;
        for (Endpoint* endpoint : endpoints) progress = endpoint->poll() || progress;
        if (!progress) sched_yield();
    }
}

// A buffer from `driver`'s pool holding `payload`, to go out on `connection`.
inline PacketBuffer* make_frame(StreamDriver& driver, ConnectionId connection, const Bytes& payload) {
    PacketBuffer* buffer = driver.allocate();
    REQUIRE(buffer != nullptr);
    REQUIRE(payload.size() <= buffer->capacity);
    if (!payload.empty()) std::memcpy(buffer->data, payload.data(), payload.size());
    buffer->length = static_cast<std::uint32_t>(payload.size());
    buffer->connection = connection;
    return buffer;
}

}  // namespace cf::drivers::testing

// Addresses print as text in failed checks.
template <>
struct doctest::StringMaker<cf::drivers::PeerAddress> {
    static doctest::String convert(const cf::drivers::PeerAddress& address) {
        return cf::drivers::testing::text_of(address).c_str();
    }
};
