// LossyRelay: a userspace UDP relay that impairs traffic the way a bad path would, for the QUIC loss, reordering,
// interop and congestion-control tests (these machines have no netem). Test support, not part of the engine.
//
// Topology. The relay listens on one UDP address. The first address it hears from there is "the client": its
// datagrams go out of a second socket, connected to the server address, and what the server sends back goes to
// the client from the listening socket. Datagrams from any other address (and server datagrams that arrive before
// a client spoke) are counted in `foreign` and dropped.
//
// What happens to a datagram, per direction (each direction has its own Impairment, counters and random stream):
//   1. loss: dropped with probability loss_percent; with loss_burst = B > 0, losses come in runs of mean length
//      B (a two-state chain: P(lost | previous lost) = 1 - 1/B, and P(lost | previous kept) chosen so that the
//      long-run fraction is still loss_percent); without it, each datagram is lost independently;
//   2. duplication: a kept datagram gets a copy right behind it with probability duplicate_percent;
//   3. the bottleneck: with a rate, each datagram (and copy) takes size * 8 / rate to serialise, first come first
//      served. The queue is the bytes not yet serialised when a datagram arrives; one that would take it past
//      queue_bytes is dropped (tail drop, like a router's FIFO);
//   4. the path: a fixed one-way delay after serialisation;
//   5. reordering: when it leaves the path, a datagram (each copy on its own) is held back with probability
//      reorder_percent, and goes out right after the reorder_gap-th later datagram of its direction, or
//      reorder_hold_ns after it left the path if that comes first (so a quiet sender never strands one).
// Every datagram's fate is drawn when it arrives: four draws per datagram whatever happens to it, so datagram k
// of a direction meets the same fate in every run with the same seed. Timing decides only the queue (how fast
// the sender sends against the rate) and releases by hold time.
//
// Time. Arrival is the kernel's receive time stamp (SO_TIMESTAMPNS, converted to CLOCK_MONOTONIC; the read time
// where there is none), so the bottleneck model does not depend on when the relay thread got to read: a burst sent
// faster than the rate fills the queue even if the relay was descheduled meanwhile. Departures and releases are
// computed in model time (nanoseconds, CLOCK_MONOTONIC; the link in picoseconds so rates do not drift), and a
// datagram is sent at the first wake-up at or after its time minus send_window_ns (one wake-up per window, not per
// datagram, at high rates).
//
// Implementation. One thread, ppoll() on the two sockets and an eventfd (the stop request), with the timeout set
// by the next release. Sockets are non-blocking; datagrams are read with recvmmsg straight into preallocated
// slots (`slots` per direction, max_datagram_bytes each) and sent with sendmmsg. Release times within a direction
// never decrease (arrivals are clamped to be monotonic, the link is FIFO, the delay is fixed, the hold time is
// fixed), so the pending datagrams live in three preallocated FIFO rings (path, held back, outbox) of slot
// indices instead of a heap. Nothing is allocated after create(). A datagram that finds no free slot is dropped
// and counted (dropped_no_slot); one longer than max_datagram_bytes is dropped and counted (dropped_oversized).
// If the socket towards a receiver is full (EAGAIN), the outbox waits for POLLOUT, in order.
//
// Counters, per direction, always consistent once the relay stopped:
//   received + duplicated == forwarded + dropped_loss + dropped_queue + dropped_no_slot + dropped_oversized
//                            + send_errors + pending
// `reordered` counts datagrams held back (whether or not a later one then overtook them).
//
// Use in a test: LossyRelay::create(config, relay); relay->start(); ...; relay->stop(); relay->stats().
// stats() may be called from any thread at any time (relaxed atomics: each counter is exact, a set read while
// the relay runs is not a snapshot). The program cf-lossy-relay (lossy_relay_main.cpp, options in
// lossy_relay_options.hpp) wraps the same class.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <thread>

#include "drivers/packet.hpp"

namespace cf::quic::testing {

using drivers::PeerAddress;

// How one direction is impaired. All zero: forwarded as is, at once.
struct Impairment {
    double loss_percent = 0;         // 0..100
    double loss_burst = 0;           // mean length of a run of losses (>= 1); 0: independent losses
    double duplicate_percent = 0;    // 0..100
    double reorder_percent = 0;      // 0..100
    std::uint32_t reorder_gap = 3;   // a held datagram goes after this many later ones (0: by hold time only)
    std::uint64_t reorder_hold_ns = 20'000'000;   // ... or after this long, whichever comes first (> 0)
    std::uint64_t delay_ns = 0;      // one-way, after serialisation
    std::uint64_t rate_bits_per_second = 0;   // the bottleneck; 0: no limit (and then no queue either)
    std::uint64_t queue_bytes = 0;   // the bottleneck's queue; 0: bounded only by the relay's slots
};

struct LossyRelayConfig {
    PeerAddress listen;   // port 0: the kernel picks one (listen_address() says which)
    PeerAddress server;
    Impairment to_server, to_client;
    std::uint64_t seed = 1;
    std::uint32_t slots = 8192;                 // datagrams one direction can hold (queue, path, held, outbox)
    std::uint32_t max_datagram_bytes = 2048;    // longer ones are dropped (dropped_oversized)
    std::uint64_t send_window_ns = 50'000;      // datagrams due this soon go out with the current batch
};

struct DirectionStats {
    std::uint64_t received = 0;          // datagrams read from this direction's sender
    std::uint64_t forwarded = 0;         // datagrams (copies included) the kernel accepted towards the receiver
    std::uint64_t dropped_loss = 0;
    std::uint64_t dropped_queue = 0;     // tail drops at the bottleneck
    std::uint64_t duplicated = 0;        // copies made
    std::uint64_t reordered = 0;         // datagrams held back
    std::uint64_t max_queue_bytes = 0;   // the most the bottleneck queue held (bytes not yet serialised)
    std::uint64_t dropped_no_slot = 0;   // the relay's own buffers were full
    std::uint64_t dropped_oversized = 0; // longer than max_datagram_bytes
    std::uint64_t send_errors = 0;       // refused by the kernel (e.g. ECONNREFUSED from the server's port)
    std::uint64_t pending = 0;           // in the relay now (queue, path, held back, not yet sent)
};

struct LossyRelayStats {
    DirectionStats to_server, to_client;
    std::uint64_t foreign = 0;   // from another address than the client, or from the server before a client
    bool client_known = false;
};

// The checks create() makes, on their own: 0, or -EINVAL with last_error_message() naming the field
// (`direction` names it in the message, e.g. "to-server").
int validate_impairment(const Impairment& impairment, const char* direction) noexcept;

// "to-server: received=... | to-client: ..." (one line, no newline) into `out`. Returns `out`.
const char* format_stats(const LossyRelayStats& stats, char* out, std::size_t size) noexcept;

class LossyRelay {
public:
    // Validates the configuration, opens and binds both sockets (the server side is connected to config.server),
    // and allocates every buffer. 0; -EINVAL for a bad configuration; the socket call's -errno; -ENOMEM; each with
    // last_error_message() saying what failed.
    static int create(const LossyRelayConfig& config, std::unique_ptr<LossyRelay>& out) noexcept;
    ~LossyRelay();   // stops and joins the thread if start() started one
    LossyRelay(const LossyRelay&) = delete;
    LossyRelay& operator=(const LossyRelay&) = delete;

    const PeerAddress& listen_address() const noexcept { return listen_address_; }   // with the port bound
    const PeerAddress& server_side_address() const noexcept { return server_side_address_; }   // what the server sees

    // Relays on the calling thread until request_stop() or, with duration_ns > 0, that long. 0, or the -errno of
    // a failing poll (with last_error_message()). Call it once per relay (start() calls it).
    int run(std::uint64_t duration_ns = 0) noexcept;
    // run() on a thread of its own. 0, or -EAGAIN if no thread could be made (or one was already started).
    int start() noexcept;
    // request_stop(), then joins the thread start() made. Returns run()'s status (0 if none was started).
    int stop() noexcept;
    // Makes run() return soon. Async-signal-safe (an atomic store and a write to an eventfd): a SIGINT handler
    // may call it.
    void request_stop() noexcept;

    LossyRelayStats stats() const noexcept;

private:
    struct Direction;
    LossyRelay() = default;
    int open_sockets() noexcept;
    void receive(Direction& direction, std::uint64_t now_ns) noexcept;
    void admit(Direction& direction, std::uint32_t slot, std::uint32_t length, std::uint64_t arrival_ns) noexcept;
    void enqueue(Direction& direction, std::uint32_t slot, std::uint64_t arrival_ns, bool hold) noexcept;
    void release_due(Direction& direction, std::uint64_t now_ns) noexcept;
    void flush(Direction& direction) noexcept;
    std::uint64_t next_due_ns(const Direction& direction) const noexcept;

    LossyRelayConfig config_;
    PeerAddress listen_address_, server_side_address_;
    int listen_fd_ = -1, server_fd_ = -1, wake_fd_ = -1;
    std::unique_ptr<Direction> to_server_, to_client_;
    PeerAddress client_;
    std::atomic<bool> client_known_{false};
    std::atomic<std::uint64_t> foreign_{0};
    std::atomic<bool> stop_requested_{false};
    std::thread thread_;
    int thread_status_ = 0;
};

}  // namespace cf::quic::testing
