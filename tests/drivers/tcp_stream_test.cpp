// The TCP stream drivers over loopback, every scenario once with the socket driver and once with the io_uring one
// (which says why and returns where io_uring cannot run: qemu-user, a kernel or container that forbids it, a build
// without liburing): connections with the right events and peers; thousands of random frames (0 bytes to exactly
// buffer_bytes) both ways over 3 and over 40 connections, byte-exact and in order, with exact stats and one rx_time
// per burst; back-pressure from a small send ring, drained by polling alone; an empty pool holding frames back;
// frames too long or for connections not open refused and counted; raw peers (plain sockets in the test) writing
// a frame a byte at a time, many frames in one write, reading the wire format back, sending a bad length word
// (-EPROTO), closing inside a frame, resetting; orderly closes after every frame; refused connects; more
// connections than slots; close() by the owner and the slot's reuse; events polled late; IPv6; listen failures;
// the factory and bad configurations. The timers of accepted connections: silent peers filling every slot are
// closed at the first-frame deadline and a real client gets in; half a frame then nothing (first-frame deadline);
// frames then nothing (idle timeout); connections refused at once while every slot is taken; a peer that keeps
// sending is never closed.
// Every wait is a bounded number of poll rounds, never a time, except the waits for a timer (kTimerWait).
#include <doctest/doctest.h>

#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstdint>
#include <cstring>
#include <map>
#include <memory>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "drivers/datagram_driver.hpp"
#include "drivers/packet.hpp"
#include "drivers/stream_driver.hpp"
#include "engine/time/counter_clock.hpp"
#include "engine/time/duration.hpp"
#include "platform/os/last_error.hpp"
#include "tests/drivers/stream_test_support.hpp"

using cf::Duration;
using cf::drivers::ConnectionId;
using cf::drivers::DriverKind;
using cf::drivers::kFirstFrameTimeout;
using cf::drivers::kFramePrefixBytes;
using cf::drivers::kIdleTimeout;
using cf::drivers::PacketBuffer;
using cf::drivers::PeerAddress;
using cf::drivers::StreamDriver;
using cf::drivers::StreamEvent;
using cf::drivers::StreamEventKind;
using cf::drivers::StreamStats;
using cf::drivers::TcpConfig;
using namespace cf::drivers::testing;

namespace {

constexpr std::uint32_t kBufferBytes = 2048;   // loopback_config()'s pool.buffer_bytes: the frame limit

// Nothing went wrong that a scenario without errors must not see.
void check_no_errors(const StreamStats& stats) {
    CHECK(stats.tx_refused == 0);
    CHECK(stats.tx_dropped_bytes == 0);
    CHECK(stats.protocol_errors == 0);
    CHECK(stats.refused_full == 0);
}

// Sends one buffer per payload on `connection`, retrying what tx_burst leaves (polling `endpoints` in between).
void send_frames(Endpoint& sender, std::vector<Endpoint*> endpoints, ConnectionId connection,
                 const std::vector<Bytes>& payloads) {
    StreamDriver& driver = sender.driver();
    std::vector<PacketBuffer*> buffers;
    for (const Bytes& payload : payloads) buffers.push_back(make_frame(driver, connection, payload));
    std::size_t sent = 0;
    for (int round = 0; round < kPollRounds && sent < buffers.size(); ++round) {
        const int accepted = driver.tx_burst(buffers.data() + sent, static_cast<std::uint32_t>(buffers.size() - sent));
        INFO("tx_burst: ", std::string(cf::platform::last_error_message()));
        REQUIRE(accepted >= 0);
        sent += static_cast<std::size_t>(accepted);
        if (sent < buffers.size()) pump_rounds(endpoints, 1);
    }
    REQUIRE_MESSAGE(sent == buffers.size(), "tx_burst never took every frame");
}

// Two drivers of `kind`: `a` listens on 127.0.0.1 (port 0), `b` connects to it.
struct Pair {
    std::unique_ptr<StreamDriver> a, b;
    std::unique_ptr<Endpoint> ea, eb;
    std::vector<ConnectionId> a_ids;   // in the order A's `accepted` events came
    std::vector<ConnectionId> b_ids;   // in the order B called connect()

    bool open(DriverKind kind, const TcpConfig& config_a, const TcpConfig& config_b, std::uint32_t rx_max_a = 64) {
        if (!open_or_skip(kind, config_a, a) || !open_or_skip(kind, config_b, b)) return false;
        ea = std::make_unique<Endpoint>(*a, rx_max_a, config_a.clock);
        eb = std::make_unique<Endpoint>(*b, 64, config_b.clock);
        const int listening = a->listen(loopback_any_port());
        INFO("listen: ", std::string(cf::platform::last_error_message()));
        REQUIRE(listening == 0);
        CHECK(a->local_address().port() != 0);
        CHECK(text_of(a->local_address()).rfind("127.0.0.1:", 0) == 0);
        return true;
    }

    // open(), then one connection from B to A, up on both sides: its ids are a_ids[0] and b_ids[0].
    bool open_connected(DriverKind kind, const TcpConfig& config_a, const TcpConfig& config_b,
                        std::uint32_t rx_max_a = 64) {
        if (!open(kind, config_a, config_b, rx_max_a)) return false;
        connect_one();
        wait_connected(1);
        return true;
    }

    ConnectionId connect_one() {
        const int id = b->connect(a->local_address());
        INFO("connect: ", std::string(cf::platform::last_error_message()));
        REQUIRE(id > 0);
        b_ids.push_back(static_cast<ConnectionId>(id));
        eb->expect(static_cast<ConnectionId>(id));
        return static_cast<ConnectionId>(id);
    }

    // Waits until A accepted `total` connections in all and B saw every connect() finish, then checks the events.
    void wait_connected(std::size_t total) {
        pump_until({ea.get(), eb.get()}, [&] {
            return ea->count_events(StreamEventKind::accepted) >= total &&
                   eb->count_events(StreamEventKind::connected) >= b_ids.size();
        }, "accepted and connected events");
        a_ids.clear();
        std::set<std::uint16_t> ports;
        for (const StreamEvent& event : ea->events()) {
            if (event.kind != StreamEventKind::accepted) continue;
            a_ids.push_back(event.connection);
            CHECK(event.error == 0);
            CHECK(text_of(event.peer).rfind("127.0.0.1:", 0) == 0);
            CHECK(event.peer.port() != 0);
            CHECK(event.peer.port() != a->local_address().port());
            ports.insert(event.peer.port());
        }
        CHECK(a_ids.size() == total);
        CHECK(ports.size() == total);
        CHECK(std::set<ConnectionId>(a_ids.begin(), a_ids.end()).size() == total);
        for (const ConnectionId id : b_ids) {
            const StreamEvent* connected = eb->find_event(StreamEventKind::connected, id);
            REQUIRE(connected != nullptr);
            CHECK(connected->error == 0);
            CHECK(connected->peer == a->local_address());
        }
    }
};

// ---- scenarios ----

// `connections` connections B -> A; thousands of random frames both ways, in bursts that mix the connections; the
// first frame of each B connection (sent before connect() finished) says which it is.
void exchange(DriverKind kind, std::uint32_t connections, std::size_t frames_each_way) {
    TcpConfig config = loopback_config();
    config.max_connections = std::max(config.max_connections, connections);
    config.rx_stream_bytes = config.tx_stream_bytes = 16u << 10;
    TcpConfig timed = config;   // B stamps rx_time; A leaves it zero
    timed.clock = &cf::default_clock();
    Pair pair;
    if (!pair.open(kind, config, timed)) return;
    const std::uint32_t kConnections = connections;
    for (std::uint32_t i = 0; i < kConnections; ++i) pair.connect_one();
    // Hellos go into the send rings at once, before any poll: they wait for the connections to come up.
    std::vector<PacketBuffer*> hellos;
    for (std::uint32_t i = 0; i < kConnections; ++i) {
        hellos.push_back(make_frame(*pair.b, pair.b_ids[i], Bytes{static_cast<std::uint8_t>(i), 'h'}));
    }
    CHECK(pair.b->tx_burst(hellos.data(), kConnections) == static_cast<int>(kConnections));
    CHECK(pair.b->pool().available() == pair.b->pool().count());
    pair.wait_connected(kConnections);
    pump_until({pair.ea.get(), pair.eb.get()}, [&] { return pair.ea->frame_count() >= kConnections; }, "hellos");
    std::map<ConnectionId, std::uint32_t> index_of_a;   // A's id -> B connection index
    for (const ConnectionId id : pair.a_ids) {
        const auto& frames = pair.ea->frames(id);
        REQUIRE(frames.size() == 1);
        REQUIRE(frames[0].bytes.size() == 2);
        CHECK(frames[0].bytes[1] == 'h');
        index_of_a[id] = frames[0].bytes[0];
    }
    std::set<std::uint32_t> indices;
    for (const auto& [id, index] : index_of_a) indices.insert(index);
    REQUIRE(indices.size() == kConnections);
    REQUIRE(*indices.rbegin() == kConnections - 1);

    // Random traffic both ways at once.
    const std::size_t kFramesEachWay = frames_each_way;
    std::mt19937_64 random(0x7C9001);
    struct Side {
        StreamDriver* driver;
        std::vector<ConnectionId> ids;
        std::map<ConnectionId, std::vector<Bytes>> sent;
        std::vector<PacketBuffer*> burst;   // made, not accepted yet
        std::size_t made = 0;
        std::uint64_t bytes = 0;
        int partial_bursts = 0;
    };
    Side from_a{pair.a.get(), pair.a_ids, {}, {}, 0, 0, 0};
    Side from_b{pair.b.get(), pair.b_ids, {}, {}, 0, 0, 0};
    const auto received = [&](Endpoint& endpoint, const std::vector<ConnectionId>& ids, std::size_t skip) {
        std::size_t total = 0;
        for (const ConnectionId id : ids) total += endpoint.frames(id).size() - skip;
        return total;
    };
    for (int round = 0; round < kPollRounds; ++round) {
        for (Side* side : {&from_a, &from_b}) {
            if (side->burst.empty() && side->made < kFramesEachWay) {
                const std::size_t size = std::min<std::size_t>(1 + random() % 64, kFramesEachWay - side->made);
                for (std::size_t i = 0; i < size; ++i) {
                    const ConnectionId id = side->ids[random() % side->ids.size()];
                    Bytes payload = random_bytes(random, random_length(random, kBufferBytes));
                    side->burst.push_back(make_frame(*side->driver, id, payload));
                    side->bytes += payload.size();
                    side->sent[id].push_back(std::move(payload));
                }
                side->made += size;
            }
            if (side->burst.empty()) continue;
            const int accepted = side->driver->tx_burst(side->burst.data(),
                                                        static_cast<std::uint32_t>(side->burst.size()));
            INFO("tx_burst: ", std::string(cf::platform::last_error_message()));
            REQUIRE(accepted >= 0);
            REQUIRE(static_cast<std::size_t>(accepted) <= side->burst.size());
            if (static_cast<std::size_t>(accepted) < side->burst.size()) ++side->partial_bursts;
            side->burst.erase(side->burst.begin(), side->burst.begin() + accepted);
            // Accepted buffers are back in the pool at once: only the unaccepted rest is out.
            CHECK(side->driver->pool().available() == side->driver->pool().count() - side->burst.size());
        }
        const bool progress_a = pair.ea->poll();
        const bool progress_b = pair.eb->poll();
        if (!progress_a && !progress_b) sched_yield();
        if (from_a.made == kFramesEachWay && from_b.made == kFramesEachWay && from_a.burst.empty() &&
            from_b.burst.empty() && received(*pair.ea, pair.a_ids, 1) == kFramesEachWay &&
            received(*pair.eb, pair.b_ids, 0) == kFramesEachWay) {
            break;
        }
    }
    REQUIRE(received(*pair.ea, pair.a_ids, 1) == kFramesEachWay);
    REQUIRE(received(*pair.eb, pair.b_ids, 0) == kFramesEachWay);

    // Byte-exact and in order per connection, on the ids the events gave, from the peers they named.
    for (const ConnectionId a_id : pair.a_ids) {
        const ConnectionId b_id = pair.b_ids[index_of_a[a_id]];
        CAPTURE(a_id);
        CAPTURE(b_id);
        std::vector<Bytes> at_a, at_b;
        for (std::size_t i = 1; i < pair.ea->frames(a_id).size(); ++i) at_a.push_back(pair.ea->frames(a_id)[i].bytes);
        for (const ReceivedFrame& frame : pair.eb->frames(b_id)) {
            at_b.push_back(frame.bytes);
            CHECK(frame.peer == pair.a->local_address());
        }
        CHECK(at_a.size() == from_b.sent[b_id].size());
        CHECK(at_a == from_b.sent[b_id]);
        CHECK(at_b.size() == from_a.sent[a_id].size());
        CHECK(at_b == from_a.sent[a_id]);
    }
    pump_until({pair.ea.get(), pair.eb.get()}, [&] {
        for (const ConnectionId id : pair.a_ids) if (pair.a->tx_pending(id) != 0) return false;
        for (const ConnectionId id : pair.b_ids) if (pair.b->tx_pending(id) != 0) return false;
        return true;
    }, "empty send rings");
    pump_rounds({pair.ea.get(), pair.eb.get()}, 100);

    const StreamStats& a = pair.a->stats();
    const StreamStats& b = pair.b->stats();
    CHECK(a.rx_frames == kFramesEachWay + kConnections);
    CHECK(a.rx_bytes == from_b.bytes + 2 * kConnections);
    CHECK(a.tx_frames == kFramesEachWay);
    CHECK(a.tx_bytes == from_a.bytes);
    CHECK(b.rx_frames == kFramesEachWay);
    CHECK(b.rx_bytes == from_a.bytes);
    CHECK(b.tx_frames == kFramesEachWay + kConnections);
    CHECK(b.tx_bytes == from_b.bytes + 2 * kConnections);
    CHECK(a.accepted == kConnections);
    CHECK(a.connected == 0);
    CHECK(b.connected == kConnections);
    CHECK(b.accepted == 0);
    CHECK(a.closed == 0);
    CHECK(b.closed == 0);
    CHECK(a.syscalls > 0);
    check_no_errors(a);
    check_no_errors(b);
    CHECK(pair.ea->frame_count() == kFramesEachWay + kConnections);   // nothing more, nothing twice
    CHECK(pair.eb->frame_count() == kFramesEachWay);
    CHECK(pair.ea->events().size() == kConnections);
    CHECK(pair.eb->events().size() == kConnections);
    CHECK(pair.a->pool().available() == pair.a->pool().count());
    CHECK(pair.b->pool().available() == pair.b->pool().count());
    pair.ea->check_clean();
    pair.eb->check_clean();
}

// A small send ring: tx_burst takes a prefix, then nothing while the receiver does not read; once it reads,
// everything arrives exactly. The socket buffers are fixed (so what the kernels hold is bounded) but not tiny: a
// receive window under loopback's MSS (~64 KiB) stalls TCP until its persist timer fires, which a test bounded by
// poll rounds must not depend on.
void back_pressure(DriverKind kind) {
    TcpConfig small = loopback_config();
    small.tx_stream_bytes = 4096;
    small.rx_stream_bytes = 8192;
    small.socket_buffer_bytes = 256u << 10;
    Pair pair;
    if (!pair.open_connected(kind, small, small)) return;
    const ConnectionId a_id = pair.a_ids[0], b_id = pair.b_ids[0];

    constexpr std::size_t kFrames = 4000;
    std::mt19937_64 random(0xBAC4);
    std::vector<Bytes> sent;
    std::vector<PacketBuffer*> burst;
    std::size_t made = 0;
    int refusing_rounds = 0, prefixes = 0;
    const auto refill = [&] {
        while (burst.size() < 32 && made < kFrames) {
            Bytes payload = random_bytes(random, random_length(random, kBufferBytes));
            burst.push_back(make_frame(*pair.b, b_id, payload));
            sent.push_back(std::move(payload));
            ++made;
        }
    };
    const auto offer = [&] {
        const int accepted = pair.b->tx_burst(burst.data(), static_cast<std::uint32_t>(burst.size()));
        REQUIRE(accepted >= 0);
        REQUIRE(static_cast<std::size_t>(accepted) <= burst.size());
        if (accepted > 0 && static_cast<std::size_t>(accepted) < burst.size()) ++prefixes;
        burst.erase(burst.begin(), burst.begin() + accepted);
        CHECK(pair.b->pool().available() == pair.b->pool().count() - burst.size());
        return accepted;
    };
    // Phase 1: only the sender polls, until its ring and both kernels' buffers are full.
    for (int round = 0; round < kPollRounds && refusing_rounds < 200; ++round) {
        refill();
        const int accepted = offer();
        refusing_rounds = accepted == 0 ? refusing_rounds + 1 : 0;
        pair.eb->poll();
    }
    REQUIRE_MESSAGE(refusing_rounds >= 200, "the sender never ran out of room");
    CHECK(prefixes > 0);          // some burst was taken in part, not all or nothing
    CHECK(pair.b->tx_pending(b_id) > 0);
    CHECK(pair.b->tx_pending(b_id) <= 4096);
    CHECK(made < kFrames);        // the test did not simply run out of frames
    // Phase 2: the receiver reads; the sender only polls (no tx_burst): what its ring holds must still go out,
    // short sends included, until every accepted frame arrived and the ring is empty.
    const std::size_t accepted_so_far = sent.size() - burst.size();
    pump_until({pair.ea.get(), pair.eb.get()}, [&] {
        return pair.ea->frames(a_id).size() >= accepted_so_far && pair.b->tx_pending(b_id) == 0;
    }, "the send ring drained by polling alone");
    CHECK(pair.ea->frames(a_id).size() == accepted_so_far);
    // Phase 3: both poll and the sender offers the rest; everything arrives.
    for (int round = 0; round < kPollRounds; ++round) {
        refill();
        if (!burst.empty()) offer();
        const bool progress_a = pair.ea->poll();
        const bool progress_b = pair.eb->poll();
        if (!progress_a && !progress_b) sched_yield();
        if (burst.empty() && made == kFrames && pair.ea->frames(a_id).size() == kFrames) break;
    }
    const auto& frames = pair.ea->frames(a_id);
    REQUIRE(frames.size() == kFrames);
    bool exact = true;
    for (std::size_t i = 0; i < kFrames; ++i) exact = exact && frames[i].bytes == sent[i];
    CHECK(exact);
    CHECK(pair.a->stats().rx_frames == kFrames);
    CHECK(pair.b->stats().tx_frames == kFrames);
    check_no_errors(pair.a->stats());
    check_no_errors(pair.b->stats());
    pair.ea->check_clean();
    pair.eb->check_clean();
}

// A frame longer than buffer_bytes is refused (counted, buffer back in the pool) without harming the stream.
void too_long_refused(DriverKind kind) {
    Pair pair;
    if (!pair.open_connected(kind, loopback_config(), loopback_config())) return;
    const ConnectionId a_id = pair.a_ids[0], b_id = pair.b_ids[0];

    std::mt19937_64 random(5);
    const Bytes first = random_bytes(random, 10);
    const Bytes largest = random_bytes(random, kBufferBytes);
    PacketBuffer* burst[5] = {make_frame(*pair.b, b_id, first), make_frame(*pair.b, b_id, {}),
                              make_frame(*pair.b, b_id, largest), make_frame(*pair.b, b_id, {}),
                              make_frame(*pair.b, b_id, {7})};
    burst[1]->length = kBufferBytes + 1;   // longer than any receiver's buffer (and than its own)
    burst[3]->length = 1u << 20;
    CHECK(pair.b->tx_burst(burst, 5) == 5);
    CHECK(pair.b->stats().tx_refused == 2);
    CHECK(pair.b->stats().tx_frames == 3);
    CHECK(pair.b->stats().tx_bytes == 10 + kBufferBytes + 1);
    CHECK(pair.b->pool().available() == pair.b->pool().count());
    pump_until({pair.ea.get(), pair.eb.get()}, [&] { return pair.ea->frames(a_id).size() >= 3; }, "3 frames");
    pump_rounds({pair.ea.get(), pair.eb.get()}, 200);
    const auto& frames = pair.ea->frames(a_id);
    REQUIRE(frames.size() == 3);
    CHECK(frames[0].bytes == first);
    CHECK(frames[1].bytes == largest);
    CHECK(frames[2].bytes == Bytes{7});
    CHECK(pair.a->stats().protocol_errors == 0);
    CHECK(pair.ea->events().size() == 1);   // still open
    CHECK(pair.eb->events().size() == 1);
    pair.ea->check_clean();
    pair.eb->check_clean();
}

// Ids never opened, garbage, or of a closed connection: tx refused and counted, close -ENOENT, tx_pending 0.
void unknown_ids(DriverKind kind) {
    std::unique_ptr<StreamDriver> driver;
    if (!open_or_skip(kind, loopback_config(), driver)) return;
    const std::vector<ConnectionId> garbage = {0u, 1u, 65536u, 65537u, 0x7FFFFFFFu, 0x80010000u, 0xFFFFFFFFu};
    std::vector<PacketBuffer*> burst;
    for (const ConnectionId id : garbage) burst.push_back(make_frame(*driver, id, {1, 2, 3}));
    CHECK(driver->tx_burst(burst.data(), static_cast<std::uint32_t>(burst.size())) ==
          static_cast<int>(garbage.size()));
    CHECK(driver->stats().tx_refused == garbage.size());
    CHECK(driver->stats().tx_frames == 0);
    CHECK(driver->stats().tx_bytes == 0);
    CHECK(driver->pool().available() == driver->pool().count());
    for (const ConnectionId id : garbage) {
        CAPTURE(id);
        cf::platform::clear_last_error();
        CHECK(driver->close(id) == -ENOENT);
        CHECK(std::string(cf::platform::last_error_message()) != "");
        CHECK(driver->tx_pending(id) == 0);
    }
    CHECK(driver->tx_burst(burst.data(), 0) == 0);
    PacketBuffer* out[4];
    CHECK(driver->rx_burst(out, 4) == 0);
    StreamEvent events[4];
    CHECK(driver->poll_events(events, 4) == 0);
    CHECK(driver->stats().closed == 0);
}

// A raw peer writes frames one byte at a time, then hundreds of frames in one write; then reads what the driver
// sends and checks the wire format itself.
void raw_peer_cuts(DriverKind kind) {
    std::unique_ptr<StreamDriver> driver;
    if (!open_or_skip(kind, loopback_config(), driver)) return;
    REQUIRE(driver->listen(loopback_any_port()) == 0);
    Endpoint endpoint(*driver);
    const int raw = raw_connect(driver->local_address());
    pump_until({&endpoint}, [&] { return endpoint.count_events(StreamEventKind::accepted) == 1; }, "accepted");
    const StreamEvent accepted = endpoint.events()[0];
    CHECK(accepted.peer == local_address_of(raw));
    const ConnectionId id = accepted.connection;

    std::mt19937_64 random(0xB17E);
    std::vector<Bytes> expected = {{}, {0x42}, random_bytes(random, 7), random_bytes(random, kBufferBytes), {},
                                   random_bytes(random, 100)};
    const Bytes slow = wire_of(expected);
    for (const std::uint8_t byte : slow) {
        raw_write_all(raw, &byte, 1);
        endpoint.poll();
        endpoint.poll();
    }
    pump_until({&endpoint}, [&] { return endpoint.frames(id).size() >= expected.size(); }, "byte-by-byte frames");

    std::vector<Bytes> many;
    for (int i = 0; i < 300; ++i) many.push_back(random_bytes(random, random_length(random, kBufferBytes)));
    const Bytes fast = wire_of(many);
    expected.insert(expected.end(), many.begin(), many.end());
    std::atomic<bool> wrote{false};
    std::thread writer([&] {
        // One blocking send: the kernel cuts it as it likes; the driver must not care.
        std::size_t done = 0;
        while (done < fast.size()) {
            const ssize_t n = send(raw, fast.data() + done, fast.size() - done, MSG_NOSIGNAL);
            if (n <= 0) return;
            done += static_cast<std::size_t>(n);
        }
        wrote = true;
    });
    struct Join {
        std::thread& thread;
        int fd;
        ~Join() {
            if (!thread.joinable()) return;
            shutdown(fd, SHUT_RDWR);   // unblocks the writer if the test gave up
            thread.join();
        }
    } join{writer, raw};
    pump_until({&endpoint}, [&] { return endpoint.frames(id).size() >= expected.size(); }, "one-write frames");
    writer.join();
    CHECK(wrote.load());
    pump_rounds({&endpoint}, 200);
    const auto& frames = endpoint.frames(id);
    REQUIRE(frames.size() == expected.size());
    bool exact = true;
    for (std::size_t i = 0; i < expected.size(); ++i) exact = exact && frames[i].bytes == expected[i];
    CHECK(exact);
    for (const ReceivedFrame& frame : frames) CHECK(frame.peer == accepted.peer);
    CHECK(driver->stats().rx_frames == expected.size());

    // The other way: what the driver writes is the wire format, byte for byte.
    const std::vector<Bytes> outgoing = {{}, {1, 2, 3, 4, 5}, random_bytes(random, kBufferBytes), {}};
    const Bytes wire = wire_of(outgoing);
    send_frames(endpoint, {&endpoint}, id, outgoing);
    Bytes got;
    for (int round = 0; round < kPollRounds && got.size() < wire.size(); ++round) {
        const ssize_t n = raw_read_some(raw, got);
        REQUIRE((n > 0 || (n < 0 && errno == EAGAIN)));
        endpoint.poll();
    }
    CHECK(got == wire);
    CHECK(driver->tx_pending(id) == 0);
    endpoint.check_clean();
    ::close(raw);
}

// A length word over buffer_bytes: the frames before it arrive, then `closed` with -EPROTO; the listener goes on.
void bad_length_closes(DriverKind kind) {
    std::unique_ptr<StreamDriver> driver;
    if (!open_or_skip(kind, loopback_config(), driver)) return;
    REQUIRE(driver->listen(loopback_any_port()) == 0);
    Endpoint endpoint(*driver);
    std::uint64_t errors = 0;
    for (const std::uint32_t word : {kBufferBytes + 1, 0xFFFFFFFFu}) {
        CAPTURE(word);
        const std::size_t events_before = endpoint.events().size();
        const int raw = raw_connect(driver->local_address());
        pump_until({&endpoint}, [&] { return endpoint.events().size() == events_before + 1; }, "accepted");
        const ConnectionId id = endpoint.events().back().connection;
        Bytes stream = wire_of({{9, 8, 7}});
        append_wire(stream, word, Bytes(16, 0xEE));
        raw_write_all(raw, stream.data(), stream.size());
        pump_until({&endpoint}, [&] { return endpoint.closed(id); }, "closed by a bad length");
        const StreamEvent& closed = endpoint.events().back();
        CHECK(closed.kind == StreamEventKind::closed);
        CHECK(closed.connection == id);
        CHECK(closed.error == -EPROTO);
        CHECK(endpoint.frames_at_event(endpoint.events().size() - 1) == 1);   // the good frame came first
        REQUIRE(endpoint.frames(id).size() == 1);
        CHECK(endpoint.frames(id)[0].bytes == Bytes{9, 8, 7});
        CHECK(driver->stats().protocol_errors == ++errors);
        // The raw peer sees the connection end.
        Bytes ignored;
        ssize_t n = -1;
        for (int round = 0; round < kPollRounds; ++round) {
            n = raw_read_some(raw, ignored);
            if (n == 0 || (n < 0 && errno != EAGAIN)) break;
            endpoint.poll();
        }
        CHECK((n == 0 || (n < 0 && errno == ECONNRESET)));
        ::close(raw);
        // The id is stale now.
        PacketBuffer* frame = make_frame(*driver, id, {1});
        const std::uint64_t refused = driver->stats().tx_refused;
        CHECK(driver->tx_burst(&frame, 1) == 1);
        CHECK(driver->stats().tx_refused == refused + 1);
        CHECK(driver->close(id) == -ENOENT);
    }
    // Still listening, still receiving.
    const int raw = raw_connect(driver->local_address());
    const Bytes good = wire_of({{1, 2}});
    raw_write_all(raw, good.data(), good.size());
    pump_until({&endpoint}, [&] { return endpoint.frame_count() == 3; }, "a frame on a new connection");
    CHECK(driver->stats().closed == 2);
    CHECK(driver->pool().available() == driver->pool().count());
    endpoint.check_clean();
    ::close(raw);
}

// The peer sends frames, waits until its kernel has them all, and closes: `closed` with error 0 comes after
// every frame. A takes 3 frames per rx_burst, so most frames are still waiting in the driver when the end of
// stream is there to be seen.
void peer_closes(DriverKind kind) {
    Pair pair;
    if (!pair.open_connected(kind, loopback_config(), loopback_config(), 3)) return;
    const ConnectionId a_id = pair.a_ids[0], b_id = pair.b_ids[0];

    std::mt19937_64 random(0xC105E);
    std::vector<Bytes> payloads;
    for (int i = 0; i < 500; ++i) payloads.push_back(random_bytes(random, random_length(random, 100)));
    send_frames(*pair.eb, {pair.eb.get()}, b_id, payloads);
    pump_until({pair.eb.get()}, [&] { return pair.b->tx_pending(b_id) == 0; }, "B's send ring empty");
    CHECK(pair.b->close(b_id) == 0);
    CHECK(pair.b->stats().tx_dropped_bytes == 0);

    pump_until({pair.ea.get(), pair.eb.get()}, [&] { return pair.ea->closed(a_id); }, "A's closed event");
    const StreamEvent* closed = pair.ea->find_event(StreamEventKind::closed, a_id);
    REQUIRE(closed != nullptr);
    CHECK(closed->error == 0);
    CHECK(pair.ea->frames_at_event(static_cast<std::size_t>(closed - pair.ea->events().data())) == payloads.size());
    const auto& frames = pair.ea->frames(a_id);
    REQUIRE(frames.size() == payloads.size());
    bool exact = true;
    for (std::size_t i = 0; i < payloads.size(); ++i) exact = exact && frames[i].bytes == payloads[i];
    CHECK(exact);
    pump_rounds({pair.ea.get(), pair.eb.get()}, 500);
    CHECK(pair.eb->events().size() == 1);   // the owner's close has no event
    CHECK(pair.ea->events().size() == 2);
    CHECK(pair.a->stats().closed == 1);
    // A's id is stale now.
    PacketBuffer* frame = make_frame(*pair.a, a_id, {1});
    CHECK(pair.a->tx_burst(&frame, 1) == 1);
    CHECK(pair.a->stats().tx_refused == 1);
    CHECK(pair.a->close(a_id) == -ENOENT);
    CHECK(pair.a->tx_pending(a_id) == 0);
    CHECK(pair.a->pool().available() == pair.a->pool().count());
    pair.ea->check_clean();
    pair.eb->check_clean();
}

// The same with a raw peer that writes its frames and closes its socket at once.
void raw_peer_closes(DriverKind kind) {
    std::unique_ptr<StreamDriver> driver;
    if (!open_or_skip(kind, loopback_config(), driver)) return;
    REQUIRE(driver->listen(loopback_any_port()) == 0);
    Endpoint endpoint(*driver, 2);
    const int raw = raw_connect(driver->local_address());
    std::mt19937_64 random(0xC105F);
    std::vector<Bytes> payloads;
    for (int i = 0; i < 200; ++i) payloads.push_back(random_bytes(random, random_length(random, 60)));
    const Bytes stream = wire_of(payloads);
    raw_write_all(raw, stream.data(), stream.size());
    ::close(raw);   // before the driver even accepted it
    pump_until({&endpoint}, [&] { return endpoint.count_events(StreamEventKind::closed) == 1; }, "closed");
    REQUIRE(endpoint.events().size() == 2);
    CHECK(endpoint.events()[0].kind == StreamEventKind::accepted);
    const ConnectionId id = endpoint.events()[0].connection;
    CHECK(endpoint.events()[1].connection == id);
    CHECK(endpoint.events()[1].error == 0);
    CHECK(endpoint.frames_at_event(1) == payloads.size());
    const auto& frames = endpoint.frames(id);
    REQUIRE(frames.size() == payloads.size());
    bool exact = true;
    for (std::size_t i = 0; i < payloads.size(); ++i) exact = exact && frames[i].bytes == payloads[i];
    CHECK(exact);
    endpoint.check_clean();
}

// A peer that closes inside a frame: the whole frames before arrive; the close is not an orderly one.
void peer_closes_inside_frame(DriverKind kind) {
    std::unique_ptr<StreamDriver> driver;
    if (!open_or_skip(kind, loopback_config(), driver)) return;
    REQUIRE(driver->listen(loopback_any_port()) == 0);
    Endpoint endpoint(*driver);
    const int raw = raw_connect(driver->local_address());
    Bytes stream = wire_of({{1}, {2, 2}});
    append_wire(stream, 50, Bytes(20, 3));   // 30 bytes short
    raw_write_all(raw, stream.data(), stream.size());
    ::close(raw);
    pump_until({&endpoint}, [&] { return endpoint.count_events(StreamEventKind::closed) == 1; }, "closed");
    REQUIRE(endpoint.events().size() == 2);
    const ConnectionId id = endpoint.events()[0].connection;
    CHECK(endpoint.events()[1].error < 0);
    REQUIRE(endpoint.frames(id).size() == 2);
    CHECK(endpoint.frames(id)[1].bytes == Bytes{2, 2});
    endpoint.check_clean();
}

// A raw peer sends frames and resets the connection (SO_LINGER 0): the frames the kernel already had arrive, then
// `closed` with -ECONNRESET.
void peer_resets(DriverKind kind) {
    std::unique_ptr<StreamDriver> driver;
    if (!open_or_skip(kind, loopback_config(), driver)) return;
    REQUIRE(driver->listen(loopback_any_port()) == 0);
    Endpoint endpoint(*driver);
    const int raw = raw_connect(driver->local_address());
    pump_until({&endpoint}, [&] { return endpoint.count_events(StreamEventKind::accepted) == 1; }, "accepted");
    const ConnectionId id = endpoint.events()[0].connection;
    const std::vector<Bytes> payloads = {{1}, {}, Bytes(kBufferBytes, 2), {3, 3}};
    const Bytes stream = wire_of(payloads);
    raw_write_all(raw, stream.data(), stream.size());
    const linger reset{1, 0};
    REQUIRE(setsockopt(raw, SOL_SOCKET, SO_LINGER, &reset, sizeof reset) == 0);
    ::close(raw);
    pump_until({&endpoint}, [&] { return endpoint.closed(id); }, "closed by a reset");
    const StreamEvent* closed = endpoint.find_event(StreamEventKind::closed, id);
    REQUIRE(closed != nullptr);
    CHECK(closed->error == -ECONNRESET);
    CHECK(endpoint.frames_at_event(1) == payloads.size());
    REQUIRE(endpoint.frames(id).size() == payloads.size());
    for (std::size_t i = 0; i < payloads.size(); ++i) CHECK(endpoint.frames(id)[i].bytes == payloads[i]);
    CHECK(driver->stats().closed == 1);
    endpoint.check_clean();
}

// An owner not ready for events yet (poll_events with max 0, which still accepts) that closes connections by the
// ids their frames carry leaves their stale `accepted` events queued. With free slots, the next connection must
// still be accepted, and its `accepted` event must come out: stale events must not fill the queue.
void late_event_poll(DriverKind kind) {
    TcpConfig two = loopback_config();
    two.max_connections = 2;
    std::unique_ptr<StreamDriver> driver;
    if (!open_or_skip(kind, two, driver)) return;
    REQUIRE(driver->listen(loopback_any_port()) == 0);
    StreamEvent events[16];
    std::vector<int> raws;
    ConnectionId last = 0;
    constexpr int kConnections = 12;
    for (int i = 0; i < kConnections; ++i) {
        CAPTURE(i);
        const int raw = raw_connect(driver->local_address());
        raws.push_back(raw);
        const Bytes frame = wire_of({{static_cast<std::uint8_t>(i)}});
        raw_write_all(raw, frame.data(), frame.size());
        PacketBuffer* out[4];
        int got = 0;
        for (int round = 0; round < kPollRounds && got == 0; ++round) {
            REQUIRE(driver->poll_events(events, 0) == 0);
            got = driver->rx_burst(out, 4);
            REQUIRE(got >= 0);
            REQUIRE(driver->poll_completions() == 0);
            if (got == 0) sched_yield();
        }
        REQUIRE_MESSAGE(got == 1, "connection ", i, " never delivered its frame (refused_full: ",
                        driver->stats().refused_full, ")");
        CHECK(bytes_of(*out[0]) == Bytes{static_cast<std::uint8_t>(i)});
        last = out[0]->connection;
        driver->release(out[0]);
        if (i + 1 < kConnections) CHECK(driver->close(last) == 0);
    }
    std::vector<StreamEvent> all;
    for (int n = 16; n == 16;) {
        n = driver->poll_events(events, 16);
        REQUIRE(n >= 0);
        all.insert(all.end(), events, events + n);
    }
    REQUIRE_MESSAGE(all.size() == 1, "the open connection's `accepted` event is lost (or stale ones came out)");
    CHECK(all[0].kind == StreamEventKind::accepted);
    CHECK(all[0].connection == last);
    CHECK(driver->stats().accepted == kConnections);
    CHECK(driver->stats().refused_full == 0);
    for (const int fd : raws) ::close(fd);
}

// With one slot, close() frees it for the next connect() at once.
void only_slot_reused(DriverKind kind) {
    TcpConfig one = loopback_config();
    one.max_connections = 1;
    Pair pair;
    if (!pair.open(kind, loopback_config(), one)) return;
    for (int round = 0; round < 20; ++round) {
        CAPTURE(round);
        const ConnectionId id = pair.connect_one();
        pump_until({pair.ea.get(), pair.eb.get()}, [&] {
            return pair.eb->find_event(StreamEventKind::connected, id) != nullptr;
        }, "connected");
        send_frames(*pair.eb, {pair.ea.get(), pair.eb.get()}, id, {{static_cast<std::uint8_t>(round)}});
        pump_until({pair.ea.get(), pair.eb.get()}, [&] { return pair.b->tx_pending(id) == 0; }, "sent");
        cf::platform::clear_last_error();
        CHECK(pair.b->close(id) == 0);
        INFO("connect right after close: ", std::string(cf::platform::last_error_message()));
        const int next = pair.b->connect(pair.a->local_address());
        CHECK(next > 0);
        if (next > 0) CHECK(pair.b->close(static_cast<ConnectionId>(next)) == 0);
    }
    pump_until({pair.ea.get(), pair.eb.get()}, [&] { return pair.ea->frame_count() == 20; }, "every frame");
    pair.ea->check_clean();
    pair.eb->check_clean();
}

// Nobody listens: `closed` with -ECONNREFUSED and no `connected`; a frame queued meanwhile is dropped and counted.
void connect_refused(DriverKind kind) {
    std::unique_ptr<StreamDriver> driver;
    if (!open_or_skip(kind, loopback_config(), driver)) return;
    PeerAddress nobody;
    const int holder = bound_not_listening(nobody);
    Endpoint endpoint(*driver);
    const int id = driver->connect(nobody);
    INFO("connect: ", std::string(cf::platform::last_error_message()));
    REQUIRE(id > 0);
    endpoint.expect(static_cast<ConnectionId>(id));
    PacketBuffer* frame = make_frame(*driver, static_cast<ConnectionId>(id), Bytes(10, 1));
    CHECK(driver->tx_burst(&frame, 1) == 1);
    pump_until({&endpoint}, [&] { return endpoint.closed(static_cast<ConnectionId>(id)); }, "closed");
    REQUIRE(endpoint.events().size() == 1);
    CHECK(endpoint.events()[0].kind == StreamEventKind::closed);
    CHECK(endpoint.events()[0].error == -ECONNREFUSED);
    CHECK(endpoint.events()[0].peer == nobody);
    CHECK(driver->stats().connected == 0);
    // Loopback may refuse inside connect() already: then the frame found the connection closed and was refused.
    CHECK(driver->stats().tx_frames + driver->stats().tx_refused == 1);
    CHECK(driver->stats().tx_dropped_bytes == driver->stats().tx_frames * (10 + kFramePrefixBytes));
    CHECK(driver->close(static_cast<ConnectionId>(id)) == -ENOENT);
    CHECK(driver->tx_pending(static_cast<ConnectionId>(id)) == 0);
    CHECK(driver->pool().available() == driver->pool().count());
    // Its slot is free again: all max_connections can be used.
    std::set<int> ids;
    for (std::uint32_t i = 0; i < loopback_config().max_connections; ++i) {
        const int next = driver->connect(nobody);
        CHECK(next > 0);
        CHECK(next != id);
        ids.insert(next);
    }
    CHECK(ids.size() == loopback_config().max_connections);
    cf::platform::clear_last_error();
    CHECK(driver->connect(nobody) == -ENOSPC);
    CHECK(std::string(cf::platform::last_error_message()) != "");
    pump_until({&endpoint}, [&] {
        return endpoint.count_events(StreamEventKind::closed) == 1 + loopback_config().max_connections;
    }, "every refusal");
    for (const StreamEvent& event : endpoint.events()) CHECK(event.error == -ECONNREFUSED);
    endpoint.check_clean();
    ::close(holder);
}

// A takes 2 connections; 2 more are refused (stats.refused_full) and closed at once; the first 2 carry on.
void more_connections_than_slots(DriverKind kind) {
    TcpConfig two = loopback_config();
    two.max_connections = 2;
    Pair pair;
    if (!pair.open(kind, two, loopback_config())) return;
    pair.connect_one();
    pair.connect_one();
    pair.wait_connected(2);
    const ConnectionId extra_1 = pair.connect_one();
    const ConnectionId extra_2 = pair.connect_one();
    pump_until({pair.ea.get(), pair.eb.get()}, [&] {
        return pair.a->stats().refused_full == 2 && pair.eb->closed(extra_1) && pair.eb->closed(extra_2);
    }, "two rejections");
    pump_rounds({pair.ea.get(), pair.eb.get()}, 500);
    CHECK(pair.a->stats().accepted == 2);
    CHECK(pair.a->stats().refused_full == 2);
    CHECK(pair.ea->events().size() == 2);   // no event for a refused connection
    CHECK_FALSE(pair.eb->closed(pair.b_ids[0]));
    CHECK_FALSE(pair.eb->closed(pair.b_ids[1]));
    // The two that were there first still work both ways.
    for (std::uint8_t i = 0; i < 2; ++i) {
        send_frames(*pair.eb, {pair.ea.get(), pair.eb.get()}, pair.b_ids[i], {{i}});
        send_frames(*pair.ea, {pair.ea.get(), pair.eb.get()}, pair.a_ids[i], {{static_cast<std::uint8_t>(10 + i)}});
    }
    pump_until({pair.ea.get(), pair.eb.get()}, [&] {
        return pair.ea->frame_count() == 2 && pair.eb->frame_count() == 2;
    }, "frames on the first two connections");
    std::set<std::uint8_t> at_a, at_b;
    for (const ConnectionId id : pair.a_ids) {
        REQUIRE(pair.ea->frames(id).size() == 1);
        at_a.insert(pair.ea->frames(id)[0].bytes.at(0));
    }
    for (const ConnectionId id : pair.b_ids) {
        if (id == extra_1 || id == extra_2) continue;
        REQUIRE(pair.eb->frames(id).size() == 1);
        at_b.insert(pair.eb->frames(id)[0].bytes.at(0));
    }
    CHECK(at_a == std::set<std::uint8_t>{0, 1});
    CHECK(at_b == std::set<std::uint8_t>{10, 11});
    pair.ea->check_clean();
    pair.eb->check_clean();
}

// close() by the owner: no event for it ever, the id is stale at once; the peer sees an orderly close.
void owner_closes(DriverKind kind) {
    Pair pair;
    if (!pair.open_connected(kind, loopback_config(), loopback_config())) return;
    const ConnectionId a_id = pair.a_ids[0], b_id = pair.b_ids[0];
    send_frames(*pair.eb, {pair.ea.get(), pair.eb.get()}, b_id, {{1}});
    pump_until({pair.ea.get(), pair.eb.get()}, [&] { return pair.ea->frame_count() == 1; }, "a frame");

    CHECK(pair.a->close(a_id) == 0);
    CHECK(pair.a->close(a_id) == -ENOENT);
    CHECK(pair.a->tx_pending(a_id) == 0);
    PacketBuffer* frame = make_frame(*pair.a, a_id, {2});
    CHECK(pair.a->tx_burst(&frame, 1) == 1);
    CHECK(pair.a->stats().tx_refused == 1);
    CHECK(pair.a->stats().tx_frames == 0);
    pump_until({pair.ea.get(), pair.eb.get()}, [&] { return pair.eb->closed(b_id); }, "B's closed event");
    CHECK(pair.eb->find_event(StreamEventKind::closed, b_id)->error == 0);
    pump_rounds({pair.ea.get(), pair.eb.get()}, 1000);
    CHECK(pair.ea->events().size() == 1);   // only `accepted`
    CHECK(pair.eb->events().size() == 2);
    CHECK(pair.b->close(b_id) == -ENOENT);
    CHECK(pair.a->stats().tx_dropped_bytes == 0);
    CHECK(pair.a->pool().available() == pair.a->pool().count());
    // A's slot is free again: a new connection is accepted with a new id.
    const ConnectionId b_again = pair.connect_one();
    pump_until({pair.ea.get(), pair.eb.get()}, [&] {
        return pair.ea->count_events(StreamEventKind::accepted) == 2 && pair.eb->find_event(
            StreamEventKind::connected, b_again) != nullptr;
    }, "a second connection");
    CHECK(pair.ea->events().back().connection != a_id);
    pair.ea->check_clean();
    pair.eb->check_clean();
}

// The receiver's pool is tiny and the test holds every buffer it gets: rx_burst hands out nothing while the pool
// is empty (rx_no_buffer counts it), frames resume in order once buffers are back, and the peer's close, which
// happened long before, comes out only after the last frame.
void pool_runs_dry(DriverKind kind) {
    TcpConfig tiny = loopback_config();
    tiny.pool.count = 8;
    Pair pair;
    if (!pair.open_connected(kind, tiny, loopback_config())) return;
    const ConnectionId a_id = pair.a_ids[0], b_id = pair.b_ids[0];
    std::mt19937_64 random(0xD4E);
    std::vector<Bytes> payloads;
    for (int i = 0; i < 100; ++i) payloads.push_back(random_bytes(random, random_length(random, kBufferBytes)));
    send_frames(*pair.eb, {pair.eb.get()}, b_id, payloads);
    pump_until({pair.eb.get()}, [&] { return pair.b->tx_pending(b_id) == 0; }, "B's send ring empty");
    CHECK(pair.b->close(b_id) == 0);

    StreamDriver& a = *pair.a;
    std::vector<Bytes> received;
    std::vector<PacketBuffer*> held;
    int dry_spells = 0;
    std::size_t frames_at_close = 0;
    bool closed = false;
    int close_error = 1;
    for (int round = 0; round < kPollRounds && !closed; ++round) {
        StreamEvent events[8];
        const int count = a.poll_events(events, 8);
        REQUIRE(count >= 0);
        for (int i = 0; i < count; ++i) {
            REQUIRE(events[i].kind == StreamEventKind::closed);
            CHECK(events[i].connection == a_id);
            closed = true;
            close_error = events[i].error;
            frames_at_close = received.size();
        }
        PacketBuffer* out[64];
        const int got = a.rx_burst(out, 64);
        REQUIRE(got >= 0);
        for (int i = 0; i < got; ++i) {
            CHECK(out[i]->connection == a_id);
            received.push_back(bytes_of(*out[i]));
            held.push_back(out[i]);
        }
        REQUIRE(a.poll_completions() == 0);
        if (a.pool().available() == 0) {
            ++dry_spells;
            for (int i = 0; i < 3; ++i) CHECK(a.rx_burst(out, 64) == 0);   // nothing without a buffer
            CHECK(a.poll_events(events, 8) == 0);                          // and no close before the frames
            for (PacketBuffer* buffer : held) a.release(buffer);
            held.clear();
        }
        if (got == 0 && count == 0) sched_yield();
    }
    REQUIRE_MESSAGE(closed, "no closed event");
    CHECK(close_error == 0);
    CHECK(frames_at_close == payloads.size());
    CHECK(received.size() == payloads.size());
    CHECK(received == payloads);
    CHECK(dry_spells >= 10);
    CHECK(a.stats().rx_no_buffer > 0);
    CHECK(a.stats().rx_frames == payloads.size());
    for (PacketBuffer* buffer : held) a.release(buffer);
    CHECK(a.pool().available() == a.pool().count());
    CHECK(a.pool().misuse_count() == 0);
}

// The same framing over ::1 when the host has IPv6 loopback.
void ipv6_loopback(DriverKind kind) {
    PeerAddress any6;
    REQUIRE(PeerAddress::parse("[::1]:0", any6) == 0);
    const int probe = socket(AF_INET6, SOCK_STREAM, 0);
    const bool have_v6 = probe >= 0 && bind(probe, &any6.addr.any, any6.length) == 0;
    if (probe >= 0) ::close(probe);
    if (!have_v6) {
        MESSAGE("no IPv6 loopback on this host, test skipped");
        return;
    }
    std::unique_ptr<StreamDriver> a, b;
    if (!open_or_skip(kind, loopback_config(), a) || !open_or_skip(kind, loopback_config(), b)) return;
    REQUIRE(a->listen(any6) == 0);
    CHECK(text_of(a->local_address()).rfind("[::1]:", 0) == 0);
    Endpoint ea(*a), eb(*b);
    const int id = b->connect(a->local_address());
    REQUIRE(id > 0);
    eb.expect(static_cast<ConnectionId>(id));
    pump_until({&ea, &eb}, [&] {
        return ea.count_events(StreamEventKind::accepted) == 1 && eb.count_events(StreamEventKind::connected) == 1;
    }, "an IPv6 connection");
    const StreamEvent accepted = ea.events()[0];
    CHECK(text_of(accepted.peer).rfind("[::1]:", 0) == 0);
    CHECK(eb.events()[0].peer == a->local_address());
    const Bytes big(kBufferBytes, 0x66);
    send_frames(eb, {&ea, &eb}, static_cast<ConnectionId>(id), {{1}, big, {}});
    send_frames(ea, {&ea, &eb}, accepted.connection, {{2, 2}});
    pump_until({&ea, &eb}, [&] { return ea.frame_count() == 3 && eb.frame_count() == 1; }, "IPv6 frames");
    CHECK(ea.frames(accepted.connection)[1].bytes == big);
    CHECK(ea.frames(accepted.connection)[2].bytes.empty());
    CHECK(eb.frames(static_cast<ConnectionId>(id))[0].bytes == Bytes{2, 2});
    ea.check_clean();
    eb.check_clean();
}

// Listening twice, or on a port another driver holds, fails with a message.
void listen_failures(DriverKind kind) {
    std::unique_ptr<StreamDriver> first, second;
    if (!open_or_skip(kind, loopback_config(), first) || !open_or_skip(kind, loopback_config(), second)) return;
    REQUIRE(first->listen(loopback_any_port()) == 0);
    cf::platform::clear_last_error();
    CHECK(first->listen(loopback_any_port()) < 0);
    CHECK(std::string(cf::platform::last_error_message()) != "");
    cf::platform::clear_last_error();
    CHECK(second->listen(first->local_address()) == -EADDRINUSE);
    CHECK(std::string(cf::platform::last_error_message()) != "");
    PeerAddress unset;
    CHECK(second->listen(unset) == -EINVAL);
    CHECK(second->connect(unset) == -EINVAL);
}

// ---- the timers of accepted connections, and refusing when full ----

constexpr Duration kShort = Duration::from_millis(50);    // a timer under test
constexpr Duration kLong = Duration::from_seconds(600);   // a timer that must not fire during a test

// The connection accepted from the raw peer `fd` (by its `accepted` event's peer port), or 0.
ConnectionId accepted_from(const Endpoint& endpoint, int fd) {
    const std::uint16_t port = local_address_of(fd).port();
    for (const StreamEvent& event : endpoint.events()) {
        if (event.kind == StreamEventKind::accepted && event.peer.port() == port) return event.connection;
    }
    return 0;
}

// Raw peers and whether each has seen its connection closed by the driver.
struct RawPeers {
    std::vector<int> fds;
    std::vector<bool> seen_closed;

    void connect(const PeerAddress& to, int count) {
        for (int i = 0; i < count; ++i) {
            fds.push_back(raw_connect(to));
            seen_closed.push_back(false);
        }
    }
    bool all_closed() {
        for (std::size_t i = 0; i < fds.size(); ++i) seen_closed[i] = seen_closed[i] || raw_peer_closed(fds[i]);
        return std::all_of(seen_closed.begin(), seen_closed.end(), [](bool closed) { return closed; });
    }
    ~RawPeers() {
        for (const int fd : fds) ::close(fd);
    }
};

// The defect: 40 silent peers connect to a listener of 16 slots; 16 take every slot and the rest are refused.
// The first-frame deadline closes the 16 (kFirstFrameTimeout), and a real client, reconnecting when refused as
// clients do, gets in: its frame is delivered. Without the timer the 16 hold their slots for good.
void silent_peers_cannot_starve(DriverKind kind) {
    TcpConfig config = timed_config(kShort, kLong);
    config.max_connections = 16;
    std::unique_ptr<StreamDriver> driver;
    if (!open_or_skip(kind, config, driver)) return;
    REQUIRE(driver->listen(loopback_any_port()) == 0);
    Endpoint endpoint(*driver);
    constexpr int kSilent = 40;
    RawPeers silent;
    silent.connect(driver->local_address(), kSilent);

    const Bytes payload = {0xC1, 0x1E, 0x47};
    const Bytes frame = wire_of({payload});
    int client = -1;
    int attempts = 0;
    ConnectionId client_id = 0;
    const auto delivered = [&] { return client_id != 0 && endpoint.frames(client_id).size() == 1; };
    const auto give_up = std::chrono::steady_clock::now() + kTimerWait;
    while (!delivered() && std::chrono::steady_clock::now() < give_up) {
        if (client < 0) {
            client = raw_connect(driver->local_address());
            raw_write_all(client, frame.data(), frame.size());
            ++attempts;
        }
        endpoint.poll();
        client_id = accepted_from(endpoint, client);
        if (client_id == 0 && raw_peer_closed(client)) {   // refused: every slot was taken; again a little later
            ::close(client);
            client = -1;
            std::this_thread::sleep_for(std::chrono::milliseconds(2));
        } else {
            std::this_thread::sleep_for(std::chrono::microseconds(200));
        }
    }
    REQUIRE_MESSAGE(delivered(), "the client's frame never arrived in ", kTimerWait.count(), " ms (", attempts,
                    " attempts; refused_full ", driver->stats().refused_full, ", first_frame_timeouts ",
                    driver->stats().first_frame_timeouts, ")");
    CHECK(endpoint.frames(client_id)[0].bytes == payload);

    pump_for({&endpoint}, [&] { return silent.all_closed(); }, "every silent peer sees its connection closed");
    const StreamStats& stats = driver->stats();
    CHECK(stats.first_frame_timeouts >= config.max_connections);   // more if a freed slot took a silent one
    CHECK(stats.idle_timeouts == 0);
    CHECK(stats.first_frame_timeouts + stats.refused_full == kSilent + static_cast<std::uint64_t>(attempts - 1));
    CHECK(stats.accepted == stats.first_frame_timeouts + 1);
    CHECK(stats.closed == stats.first_frame_timeouts);
    std::uint64_t timed_out = 0;
    for (const StreamEvent& event : endpoint.events()) {
        if (event.kind != StreamEventKind::closed) continue;
        CHECK(event.error == kFirstFrameTimeout);
        CHECK(event.connection != client_id);
        ++timed_out;
    }
    CHECK(timed_out == stats.first_frame_timeouts);
    CHECK_FALSE(endpoint.closed(client_id));
    CHECK_FALSE(raw_peer_closed(client));
    endpoint.check_clean();
    ::close(client);
}

// Half a frame, then nothing: closed at the first-frame deadline (the idle timer is long), no frame handed out.
void half_frame_stalls(DriverKind kind) {
    std::unique_ptr<StreamDriver> driver;
    if (!open_or_skip(kind, timed_config(kShort, kLong), driver)) return;
    REQUIRE(driver->listen(loopback_any_port()) == 0);
    Endpoint endpoint(*driver);
    RawPeers peer;
    peer.connect(driver->local_address(), 1);
    Bytes half;
    append_wire(half, 100, Bytes(50, 7));   // 50 of its 100 bytes
    raw_write_all(peer.fds[0], half.data(), half.size());
    pump_for({&endpoint}, [&] { return endpoint.count_events(StreamEventKind::closed) == 1; },
             "the first-frame deadline");
    REQUIRE(endpoint.events().size() == 2);
    CHECK(endpoint.events()[0].kind == StreamEventKind::accepted);
    CHECK(endpoint.events()[1].connection == endpoint.events()[0].connection);
    CHECK(endpoint.events()[1].error == kFirstFrameTimeout);
    CHECK(endpoint.frame_count() == 0);
    CHECK(driver->stats().first_frame_timeouts == 1);
    CHECK(driver->stats().idle_timeouts == 0);
    CHECK(driver->stats().closed == 1);
    pump_for({&endpoint}, [&] { return peer.all_closed(); }, "the peer sees the close");
    endpoint.check_clean();
}

// Frames, then nothing: the frames arrive, then `closed` with kIdleTimeout. Without a first-frame timer, a peer
// that never sends is closed by the idle timer, counted from the accept.
void goes_idle(DriverKind kind) {
    SUBCASE("after frames") {
        std::unique_ptr<StreamDriver> driver;
        if (!open_or_skip(kind, timed_config(kShort, kShort), driver)) return;
        REQUIRE(driver->listen(loopback_any_port()) == 0);
        Endpoint endpoint(*driver);
        RawPeers peer;
        peer.connect(driver->local_address(), 1);
        const std::vector<Bytes> payloads = {{1}, {}, {3, 3, 3}};
        const Bytes stream = wire_of(payloads);
        raw_write_all(peer.fds[0], stream.data(), stream.size());
        pump_for({&endpoint}, [&] { return endpoint.count_events(StreamEventKind::closed) == 1; }, "the idle timeout");
        REQUIRE(endpoint.events().size() == 2);
        const ConnectionId id = endpoint.events()[0].connection;
        CHECK(endpoint.events()[1].error == kIdleTimeout);
        CHECK(endpoint.frames_at_event(1) == payloads.size());
        REQUIRE(endpoint.frames(id).size() == payloads.size());
        for (std::size_t i = 0; i < payloads.size(); ++i) CHECK(endpoint.frames(id)[i].bytes == payloads[i]);
        CHECK(driver->stats().idle_timeouts == 1);
        CHECK(driver->stats().first_frame_timeouts == 0);
        pump_for({&endpoint}, [&] { return peer.all_closed(); }, "the peer sees the close");
        endpoint.check_clean();
    }
    SUBCASE("silent without a first-frame timer") {
        std::unique_ptr<StreamDriver> driver;
        if (!open_or_skip(kind, timed_config(Duration::zero(), kShort), driver)) return;
        REQUIRE(driver->listen(loopback_any_port()) == 0);
        Endpoint endpoint(*driver);
        RawPeers peer;
        peer.connect(driver->local_address(), 1);
        pump_for({&endpoint}, [&] { return endpoint.count_events(StreamEventKind::closed) == 1; }, "the idle timeout");
        REQUIRE(endpoint.events().size() == 2);
        CHECK(endpoint.events()[1].error == kIdleTimeout);
        CHECK(driver->stats().idle_timeouts == 1);
        CHECK(driver->stats().first_frame_timeouts == 0);
        pump_for({&endpoint}, [&] { return peer.all_closed(); }, "the peer sees the close");
    }
}

// Timers off (zero): 2 silent peers take both slots; 3 more connections are accepted and closed at once
// (refused_full, no event), which their peers see as the end of the stream or a reset. The 2 silent ones stay.
void refused_when_full(DriverKind kind) {
    TcpConfig config = timed_config(Duration::zero(), Duration::zero());
    config.max_connections = 2;
    std::unique_ptr<StreamDriver> driver;
    if (!open_or_skip(kind, config, driver)) return;
    REQUIRE(driver->listen(loopback_any_port()) == 0);
    Endpoint endpoint(*driver);
    RawPeers holders, refused;
    holders.connect(driver->local_address(), 2);
    pump_until({&endpoint}, [&] { return endpoint.count_events(StreamEventKind::accepted) == 2; }, "two accepted");
    refused.connect(driver->local_address(), 3);
    pump_until({&endpoint}, [&] { return refused.all_closed(); }, "every refused peer sees the close");
    CHECK(driver->stats().refused_full == 3);
    pump_during({&endpoint}, std::chrono::milliseconds(200));   // four times kShort: no timer may fire
    CHECK(driver->stats().accepted == 2);
    CHECK(driver->stats().refused_full == 3);
    CHECK(driver->stats().closed == 0);
    CHECK(driver->stats().first_frame_timeouts + driver->stats().idle_timeouts == 0);
    CHECK(endpoint.events().size() == 2);   // no event for a refused connection
    for (const int fd : holders.fds) CHECK_FALSE(raw_peer_closed(fd));
    endpoint.check_clean();
}

// A peer that sends a frame every 5 ms for seven idle timeouts is never closed, while a silent one beside it is
// (so the timers do run). Each write comes before the poll that follows it, so a stall of this thread is not idleness.
void keeps_sending(DriverKind kind) {
    constexpr Duration kTimer = Duration::from_millis(100);
    std::unique_ptr<StreamDriver> driver;
    if (!open_or_skip(kind, timed_config(kTimer, kTimer), driver)) return;
    REQUIRE(driver->listen(loopback_any_port()) == 0);
    Endpoint endpoint(*driver);
    RawPeers talker, silent;
    talker.connect(driver->local_address(), 1);
    silent.connect(driver->local_address(), 1);
    pump_until({&endpoint}, [&] { return endpoint.count_events(StreamEventKind::accepted) == 2; }, "two accepted");
    const ConnectionId talker_id = accepted_from(endpoint, talker.fds[0]);
    const ConnectionId silent_id = accepted_from(endpoint, silent.fds[0]);
    REQUIRE(talker_id != 0);
    REQUIRE(silent_id != 0);

    using Clock = std::chrono::steady_clock;
    const auto end = Clock::now() + std::chrono::milliseconds(700);
    auto next_write = Clock::now();
    std::uint8_t sent = 0;
    while (Clock::now() < end) {
        if (Clock::now() >= next_write) {
            const Bytes frame = wire_of({{sent}});
            raw_write_all(talker.fds[0], frame.data(), frame.size());
            ++sent;
            next_write += std::chrono::milliseconds(5);
        }
        if (!endpoint.poll()) std::this_thread::sleep_for(std::chrono::microseconds(200));
    }
    pump_until({&endpoint}, [&] { return endpoint.frames(talker_id).size() == sent; }, "every frame");
    CHECK_FALSE(endpoint.closed(talker_id));
    CHECK_FALSE(raw_peer_closed(talker.fds[0]));
    bool in_order = true;
    for (std::uint8_t i = 0; i < sent; ++i) in_order = in_order && endpoint.frames(talker_id)[i].bytes == Bytes{i};
    CHECK(in_order);
    REQUIRE(endpoint.closed(silent_id));
    CHECK(endpoint.find_event(StreamEventKind::closed, silent_id)->error == kFirstFrameTimeout);
    CHECK(driver->stats().first_frame_timeouts == 1);
    CHECK(driver->stats().idle_timeouts == 0);
    endpoint.check_clean();
}

// Every scenario runs on both drivers, as two subcases of one test case.
template <class Scenario>
void on_both_drivers(Scenario scenario) {
    SUBCASE("socket") { scenario(DriverKind::socket); }
    SUBCASE("uring") { scenario(DriverKind::uring); }
}

}  // namespace

TEST_CASE("loopback exchange, several thousand frames both ways over three connections") {
    on_both_drivers([](DriverKind kind) { exchange(kind, 3, 4000); });
}
TEST_CASE("bursts spread over 40 connections") { on_both_drivers([](DriverKind kind) { exchange(kind, 40, 3000); }); }
TEST_CASE("an empty pool holds frames back; the close still comes after the last") { on_both_drivers(pool_runs_dry); }
TEST_CASE("IPv6 loopback") { on_both_drivers(ipv6_loopback); }
TEST_CASE("back-pressure: a prefix is taken, then nothing, then everything arrives") { on_both_drivers(back_pressure); }
TEST_CASE("a frame over buffer_bytes is refused, the stream goes on") { on_both_drivers(too_long_refused); }
TEST_CASE("unknown and garbage ids are refused") { on_both_drivers(unknown_ids); }
TEST_CASE("a raw peer's frames byte by byte and in one write; the wire format") { on_both_drivers(raw_peer_cuts); }
TEST_CASE("a length word over buffer_bytes closes with -EPROTO") { on_both_drivers(bad_length_closes); }
TEST_CASE("the peer closes: `closed` with 0 after every frame") { on_both_drivers(peer_closes); }
TEST_CASE("a raw peer writes and closes at once") { on_both_drivers(raw_peer_closes); }
TEST_CASE("a peer closing inside a frame") { on_both_drivers(peer_closes_inside_frame); }
TEST_CASE("connecting where nobody listens: -ECONNREFUSED") { on_both_drivers(connect_refused); }
TEST_CASE("more connections than slots are refused at once") { on_both_drivers(more_connections_than_slots); }
TEST_CASE("close() by the owner") { on_both_drivers(owner_closes); }
TEST_CASE("a peer that resets: -ECONNRESET after its frames") { on_both_drivers(peer_resets); }
TEST_CASE("the only slot, reused right after close()") { on_both_drivers(only_slot_reused); }
TEST_CASE("events polled late are not lost") { on_both_drivers(late_event_poll); }
TEST_CASE("listen failures") { on_both_drivers(listen_failures); }
TEST_CASE("40 silent peers against 16 slots: the first-frame deadline frees them, a real client gets in") {
    on_both_drivers(silent_peers_cannot_starve);
}
TEST_CASE("half a frame, then nothing: closed at the first-frame deadline") { on_both_drivers(half_frame_stalls); }
TEST_CASE("nothing more for idle_timeout: closed as idle") { on_both_drivers(goes_idle); }
TEST_CASE("every slot taken: new connections are refused at once; zero disables the timers") {
    on_both_drivers(refused_when_full);
}
TEST_CASE("a peer that keeps sending is never closed") { on_both_drivers(keeps_sending); }

TEST_CASE("open_tcp: automatic gives a working driver; bad configurations fail with -EINVAL and a message") {
    std::unique_ptr<StreamDriver> uring;
    const bool have_uring = cf::drivers::open_tcp(DriverKind::uring, loopback_config(), uring) == 0;
    std::unique_ptr<StreamDriver> a, b;
    REQUIRE(open_or_skip(DriverKind::automatic, loopback_config(), a));
    REQUIRE(open_or_skip(DriverKind::automatic, loopback_config(), b));
    CHECK(a->kind() == (have_uring ? DriverKind::uring : DriverKind::socket));
    MESSAGE("open_tcp(automatic) opened the ", std::string(kind_name(a->kind())), " driver");
    REQUIRE(a->listen(loopback_any_port()) == 0);
    Endpoint ea(*a), eb(*b);
    const int id = b->connect(a->local_address());
    REQUIRE(id > 0);
    eb.expect(static_cast<ConnectionId>(id));
    send_frames(eb, {&ea, &eb}, static_cast<ConnectionId>(id), {{5, 6, 7}});
    pump_until({&ea, &eb}, [&] { return ea.frame_count() == 1; }, "a frame through automatic drivers");
    CHECK(ea.frames(ea.events().at(0).connection)[0].bytes == Bytes{5, 6, 7});

    for (const DriverKind kind : {DriverKind::automatic, DriverKind::socket, DriverKind::uring}) {
        const std::string name = kind_name(kind);
        CAPTURE(name);
        struct Bad {
            const char* what;
            TcpConfig config;
            const char* message_names;
        };
        std::vector<Bad> bad;
        bad.push_back({"no connections", loopback_config(), "max_connections"});
        bad.back().config.max_connections = 0;
        bad.push_back({"too many connections", loopback_config(), "max_connections"});
        bad.back().config.max_connections = 4097;
        bad.push_back({"receive buffer under a frame", loopback_config(), "rx_stream_bytes"});
        bad.back().config.rx_stream_bytes = kBufferBytes + kFramePrefixBytes - 1;
        bad.push_back({"send ring under a frame", loopback_config(), "tx_stream_bytes"});
        bad.back().config.tx_stream_bytes = kBufferBytes + kFramePrefixBytes - 1;
        bad.push_back({"empty pool", loopback_config(), "count"});
        bad.back().config.pool.count = 0;
        bad.push_back({"negative first-frame timer", loopback_config(), "first_frame_timeout"});
        bad.back().config.first_frame_timeout = -Duration::from_millis(1);
        bad.push_back({"negative idle timer", loopback_config(), "idle_timeout"});
        bad.back().config.idle_timeout = -Duration::from_millis(1);
        for (const Bad& each : bad) {
            const std::string what = each.what;
            CAPTURE(what);
            std::unique_ptr<StreamDriver> driver;
            cf::platform::clear_last_error();
            const int status = cf::drivers::open_tcp(kind, each.config, driver);
            const std::string why = cf::platform::last_error_message();
            if (kind == DriverKind::uring && cf::drivers::uring_unusable(status)) {
                MESSAGE("io_uring tcp driver unavailable, bad configuration not checked: ", why);
                continue;
            }
            CHECK(status == -EINVAL);
            CHECK(driver == nullptr);
            CHECK(why.find(each.message_names) != std::string::npos);
        }
    }
    std::unique_ptr<StreamDriver> driver;
    CHECK(cf::drivers::open_tcp(static_cast<DriverKind>(9), loopback_config(), driver) == -EINVAL);
    CHECK(driver == nullptr);
}
