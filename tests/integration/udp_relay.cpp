// udp_relay: a lossy, reordering, duplicating UDP relay between two bridges, for netns_bridge.sh. It sits in the
// middle namespace: A sends to --listen-a, the relay sends that on from --listen-b to --to-b (B); B's traffic goes
// the other way. Each bridge's peer is the relay socket facing it, so the source addresses the bridges check match.
//
// What it does, per data frame (never per datagram: a datagram carries several frames, and the bridges count
// frames). Every datagram is walked with wire::DatagramReader and rebuilt with wire::DatagramWriter, frame by
// frame, in the order decided below; the rebuilt frames are byte-identical to the originals.
//   - Control frames (the bridges' clock probes and answers) pass at once, untouched: losing or delaying them
//     would not break the offset estimate (its bound holds for any delay >= 0, and a lost probe is only one sample
//     fewer), but it would mix a clock question into a test about message accounting.
//   - A data frame is dropped with probability --loss. A frame that is not dropped is duplicated with probability
//     --duplicate (the copy goes right behind the original, wherever the original goes) and, independently, held
//     back with probability --reorder: it goes out after 1..--reorder-depth later data frames of its direction
//     have come in, or when that direction has been quiet for --idle-ms. A dropped frame is dropped with its
//     copy: "duplicated" only ever counts copies that are sent.
// The fates come from a splitmix64 stream per direction seeded from --seed, four draws per data frame whatever
// its fate, so frame k of a direction gets the same fate in every run with that seed. Only the idle release
// depends on timing (a sender pausing longer than --idle-ms while frames are held), and it moves no fate.
//
// What it reports (JSON on stdout when it stops: SIGTERM, SIGINT or --duration). Per direction and topic id:
// frames in, which sequences it dropped / duplicated / delayed, and "expect": what the receiving bridge must
// count, from running the bridge's receive rules (runtime/bridge.hpp) over exactly the frames it sent, in the
// order it sent them. Those match the bridge's counters exactly as long as the last hop (relay -> bridge, one
// veth) neither loses nor reorders datagrams. How the relay's actions map onto the bridge's counters, and where
// they cannot be equal one for one (the reason the expectation is computed rather than summed):
//   - a dropped frame is a gap only between the first and the last frame the receiver gets: a drop before the
//     first arrival is not counted by the bridge (tracking starts at the first frame it sees), nor is one after
//     the last (nothing later reveals it). The script accounts for them as head and tail;
//   - a delayed frame is late only if a later sequence overtook it: one released before any later frame went out
//     (the idle release at the end of a run) arrives in order and is neither late nor a gap;
//   - a delayed frame that is the first of its session to arrive after its successors counts as late but never
//     as a gap (the receiver started tracking at a later sequence);
//   - a copy counts as a duplicate only while its sequence is within 64 of the highest one received; further
//     back the bridge cannot tell it from a late frame. With --reorder-depth <= 32 that cannot happen;
//   - frames of a new session (a restarted sender) reset the receiver's tracking: session_resets.
// --miscount N adds N to every count the relay reports: for showing that the script's checks can fail.
//
// Usage errors exit 2, setup errors (bind, sockets) exit 1, both with a message; a run prints its JSON and exits 0.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cmath>
#include <csignal>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <map>
#include <memory>
#include <string>
#include <unordered_set>
#include <vector>

#include "drivers/packet.hpp"
#include "engine/wire/frame.hpp"
#include "platform/os/last_error.hpp"

namespace {

using cf::drivers::PeerAddress;

// Rebuilt datagrams stay within what the bridges send by default (one Ethernet MTU's UDP payload): larger ones
// would not fit the receiving bridge's packet buffers.
constexpr std::size_t kMaxDatagramBytes = 1472;
constexpr std::uint32_t kMaxFramePayload = kMaxDatagramBytes - cf::wire::kFrameHeaderBytes;
constexpr std::size_t kReceiveBytes = 65536;      // anything a bridge could send, so nothing arrives truncated
constexpr std::uint32_t kMaxHeld = 256;           // frames held back at once (a direction); more: oldest released
constexpr std::uint32_t kMaxReorderDepth = 32;    // keeps a copy of a held frame inside the receiver's window
constexpr std::uint64_t kReceiverWindow = 64;     // the bridge remembers this many sequences below `expected`

volatile std::sig_atomic_t stop_requested = 0;
void request_stop(int) { stop_requested = 1; }

std::uint64_t monotonic_ns() noexcept {
    timespec now{};
    clock_gettime(CLOCK_MONOTONIC, &now);
    return static_cast<std::uint64_t>(now.tv_sec) * 1'000'000'000u + static_cast<std::uint64_t>(now.tv_nsec);
}

// splitmix64: tiny, and the same numbers on every platform and standard library (std distributions are not).
struct Random {
    std::uint64_t state;
    std::uint64_t next() noexcept {
        std::uint64_t z = (state += 0x9E3779B97F4A7C15ull);
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
        return z ^ (z >> 31);
    }
};

// P in [0, 1] as a threshold on a 64-bit draw: draw < threshold has probability P (1 is "always").
struct Chance {
    std::uint64_t threshold = 0;
    bool always = false;
    static Chance of(double p) noexcept {
        Chance chance;
        chance.always = p >= 1.0;
        chance.threshold = p <= 0.0 || chance.always ? 0 : static_cast<std::uint64_t>(std::ldexp(p, 64));
        return chance;
    }
    bool hit(std::uint64_t draw) const noexcept { return always || draw < threshold; }
};

// The bridge's receive rules (runtime/bridge.hpp, "Receiving"), for one topic id, written as a set rather than
// the bridge's bit window so the two are not the same code: per session, the next expected sequence; newer
// sequences are published (skipped ones are gaps), older ones are duplicates if they arrived before and are
// within the window, else late (and remembered when within the window).
struct ReceiverModel {
    bool tracking = false;
    std::uint32_t session = 0;
    std::uint64_t expected = 0;
    std::unordered_set<std::uint64_t> arrived;
    std::uint64_t received = 0, republished = 0, gaps = 0, duplicates = 0, late = 0, session_resets = 0;
    bool published_any = false;
    std::uint64_t first = 0, last = 0;   // first and last sequence published (of the last session)

    void on_frame(std::uint32_t frame_session, std::uint64_t sequence) {
        ++received;
        if (!tracking || session != frame_session) {
            if (tracking) ++session_resets;
            tracking = true;
            session = frame_session;
            expected = sequence;
            arrived.clear();
            published_any = false;
        }
        if (sequence >= expected) {
            gaps += sequence - expected;
            expected = sequence + 1;
            arrived.insert(sequence);
            ++republished;
            if (!published_any) first = sequence;
            published_any = true;
            last = sequence;
            return;
        }
        const bool in_window = expected - 1 - sequence < kReceiverWindow;
        if (in_window && arrived.count(sequence) != 0) {
            ++duplicates;
            return;
        }
        ++late;
        if (in_window) arrived.insert(sequence);
    }
};

// What happened to one topic id's frames in one direction.
struct TopicLedger {
    std::uint64_t frames_in = 0;
    bool any = false;
    std::uint64_t sender_first = 0, sender_last = 0;
    std::uint64_t sender_out_of_order = 0;   // not previous + 1: the first hop lost or reordered something
    std::uint64_t emitted = 0;               // frames sent on, copies included
    std::vector<std::uint64_t> dropped, duplicated, delayed;   // sequences
    ReceiverModel model;
};

struct HeldFrame {
    cf::wire::FrameFields fields;
    std::uint32_t length = 0;
    std::uint32_t countdown = 0;   // later data frames still to come in before it goes
    bool duplicate = false;
    std::byte payload[kMaxFramePayload];
};

struct Direction {
    const char* name = "";
    int in_fd = -1;                 // where its datagrams arrive
    int out_fd = -1;                // where they leave from
    PeerAddress from;               // the only sender accepted on in_fd
    PeerAddress to;
    Random random{0};
    std::uint64_t datagrams_in = 0, datagrams_out = 0, bad_datagrams = 0, foreign_datagrams = 0, send_errors = 0;
    std::uint64_t control_frames = 0, data_frames_in = 0, data_frames_out = 0, forced_releases = 0;
    std::uint64_t oversized_frames = 0;   // too long to rebuild within kMaxDatagramBytes: not relayed
    cf::wire::WireCounters wire;
    std::map<std::uint32_t, TopicLedger> topics;
    std::unique_ptr<HeldFrame[]> held;   // a FIFO of held frames (oldest first), kMaxHeld
    std::uint32_t held_count = 0;
    std::uint64_t last_data_ns = 0;
    std::byte out[kMaxDatagramBytes];
    cf::wire::DatagramWriter writer{out, sizeof out};
};

struct Options {
    PeerAddress listen_a, listen_b, to_a, to_b;
    double loss = 0, duplicate = 0, reorder = 0;
    std::uint32_t reorder_depth = 8;
    std::uint32_t idle_ms = 20;
    std::uint64_t seed = 1;
    double duration_s = 60;
    std::uint64_t miscount = 0;
};

struct Relay {
    Options options;
    Chance loss, duplicate, reorder;
    Direction a_to_b, b_to_a;
};

void usage(const char* why) {
    std::fprintf(stderr,
                 "udp_relay: %s\n"
                 "usage: udp_relay --listen-a IP:PORT --listen-b IP:PORT --to-a IP:PORT --to-b IP:PORT\n"
                 "                 [--loss P] [--duplicate P] [--reorder P] [--reorder-depth 1..%u] [--idle-ms MS]\n"
                 "                 [--seed S] [--duration S] [--miscount N]\n",
                 why, kMaxReorderDepth);
}

bool parse_probability(const char* text, double& out) {
    char* end = nullptr;
    out = std::strtod(text, &end);
    return end != text && *end == '\0' && out >= 0.0 && out <= 1.0;
}

bool parse_unsigned(const char* text, std::uint64_t max, std::uint64_t& out) {
    if (text[0] < '0' || text[0] > '9') return false;
    char* end = nullptr;
    errno = 0;
    out = std::strtoull(text, &end, 10);
    return errno == 0 && *end == '\0' && out <= max;
}

// 0, or 2 after printing why.
int parse_options(int argc, char** argv, Options& options) {
    for (int i = 1; i < argc; ++i) {
        const std::string key = argv[i];
        if (i + 1 >= argc) {
            usage((key + " needs a value").c_str());
            return 2;
        }
        const std::string value = argv[++i];
        std::uint64_t number = 0;
        PeerAddress* address = key == "--listen-a" ? &options.listen_a
                               : key == "--listen-b" ? &options.listen_b
                               : key == "--to-a"     ? &options.to_a
                               : key == "--to-b"     ? &options.to_b
                                                     : nullptr;
        if (address != nullptr) {
            if (PeerAddress::parse(value.c_str(), *address) != 0) {
                usage((key + ": " + cf::platform::last_error_message()).c_str());
                return 2;
            }
        } else if (key == "--loss" || key == "--duplicate" || key == "--reorder") {
            double& target = key == "--loss"        ? options.loss
                             : key == "--duplicate" ? options.duplicate
                                                    : options.reorder;
            if (!parse_probability(value.c_str(), target)) {
                usage((key + " wants a probability in [0, 1], not '" + value + "'").c_str());
                return 2;
            }
        } else if (key == "--reorder-depth") {
            if (!parse_unsigned(value.c_str(), kMaxReorderDepth, number) || number == 0) {
                usage(("--reorder-depth wants 1.." + std::to_string(kMaxReorderDepth) + ", not '" + value + "'")
                          .c_str());
                return 2;
            }
            options.reorder_depth = static_cast<std::uint32_t>(number);
        } else if (key == "--idle-ms") {
            if (!parse_unsigned(value.c_str(), 10'000, number) || number == 0) {
                usage(("--idle-ms wants 1..10000, not '" + value + "'").c_str());
                return 2;
            }
            options.idle_ms = static_cast<std::uint32_t>(number);
        } else if (key == "--seed") {
            if (!parse_unsigned(value.c_str(), UINT64_MAX, options.seed)) {
                usage(("--seed wants an unsigned integer, not '" + value + "'").c_str());
                return 2;
            }
        } else if (key == "--duration") {
            char* end = nullptr;
            options.duration_s = std::strtod(value.c_str(), &end);
            if (end == value.c_str() || *end != '\0' || !(options.duration_s > 0) || options.duration_s > 3600) {
                usage(("--duration wants seconds in (0, 3600], not '" + value + "'").c_str());
                return 2;
            }
        } else if (key == "--miscount") {
            if (!parse_unsigned(value.c_str(), 1'000'000, options.miscount)) {
                usage(("--miscount wants a small unsigned integer, not '" + value + "'").c_str());
                return 2;
            }
        } else {
            usage(("unknown option '" + key + "'").c_str());
            return 2;
        }
    }
    for (const PeerAddress* address : {&options.listen_a, &options.listen_b, &options.to_a, &options.to_b}) {
        if (address->length == 0) {
            usage("--listen-a, --listen-b, --to-a and --to-b are required");
            return 2;
        }
    }
    return 0;
}

// A bound UDP socket with a large receive buffer (forced when we may: the peers send in bursts). -1 on failure,
// with a message printed.
int open_socket(const PeerAddress& address) {
    const int fd = ::socket(address.addr.any.sa_family, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        std::fprintf(stderr, "udp_relay: socket: %s\n", std::strerror(errno));
        return -1;
    }
    const int bytes = 8 << 20;
    for (int option : {SO_RCVBUF, SO_SNDBUF}) {
        const int forced = option == SO_RCVBUF ? SO_RCVBUFFORCE : SO_SNDBUFFORCE;
        if (::setsockopt(fd, SOL_SOCKET, forced, &bytes, sizeof bytes) != 0) {
            (void)::setsockopt(fd, SOL_SOCKET, option, &bytes, sizeof bytes);   // capped by rmem_max: still fine
        }
    }
    if (::bind(fd, &address.addr.any, address.length) != 0) {
        char text[64];
        std::fprintf(stderr, "udp_relay: bind %s: %s\n", address.format(text, sizeof text), std::strerror(errno));
        ::close(fd);
        return -1;
    }
    return fd;
}

void send_datagram(Direction& direction) {
    if (direction.writer.frames() == 0) return;
    const ssize_t sent = ::sendto(direction.out_fd, direction.out, direction.writer.size(), 0,
                                  &direction.to.addr.any, direction.to.length);
    if (sent == static_cast<ssize_t>(direction.writer.size())) ++direction.datagrams_out;
    else ++direction.send_errors;   // its frames are in the model but never arrive: the script fails the run
    direction.writer.reset();
}

// Appends one frame to the datagram being rebuilt, sending it first when the frame does not fit.
void emit(Direction& direction, const cf::wire::FrameFields& fields, const std::byte* payload, std::uint32_t length) {
    int status = direction.writer.append(fields, payload, length);
    if (status == -ENOSPC) {
        send_datagram(direction);
        status = direction.writer.append(fields, payload, length);
    }
    if (status < 0) {   // cannot happen: the frame fitted a datagram of the same size limit on the way in
        ++direction.send_errors;
        return;
    }
    if ((fields.flags & cf::wire::kFrameControl) != 0) return;
    ++direction.data_frames_out;
    TopicLedger& ledger = direction.topics[fields.topic_id];
    ++ledger.emitted;
    ledger.model.on_frame(fields.session, fields.sequence);
}

void emit_with_copy(Direction& direction, const cf::wire::FrameFields& fields, const std::byte* payload,
                    std::uint32_t length, bool duplicate) {
    emit(direction, fields, payload, length);
    if (duplicate) emit(direction, fields, payload, length);
}

// Sends the oldest held frame on.
void release_oldest(Direction& direction) {
    const HeldFrame& frame = direction.held[0];
    emit_with_copy(direction, frame.fields, frame.payload, frame.length, frame.duplicate);
    // A FIFO of a few entries: shifting is cheaper to get right than a ring, and the relay is not the subject.
    for (std::uint32_t i = 1; i < direction.held_count; ++i) direction.held[i - 1] = direction.held[i];
    --direction.held_count;
}

// One more data frame came in (and went out, unless dropped or held): the frames held before it count down, and
// the ones due go out behind it, oldest first.
void count_down_held(Direction& direction) {
    std::uint32_t kept = 0;
    for (std::uint32_t i = 0; i < direction.held_count; ++i) {
        HeldFrame& frame = direction.held[i];
        if (--frame.countdown == 0) {
            emit_with_copy(direction, frame.fields, frame.payload, frame.length, frame.duplicate);
            continue;
        }
        if (kept != i) direction.held[kept] = frame;
        ++kept;
    }
    direction.held_count = kept;
}

void relay_data_frame(Relay& relay, Direction& direction, const cf::wire::DecodedFrame& frame) {
    ++direction.data_frames_in;
    direction.last_data_ns = monotonic_ns();   // control frames keep flowing: only data delays the idle release
    if (frame.length > kMaxFramePayload) {
        ++direction.oversized_frames;
        return;
    }
    const std::uint64_t sequence = frame.fields.sequence;
    TopicLedger& ledger = direction.topics[frame.fields.topic_id];
    if (ledger.any && sequence != ledger.sender_last + 1) ++ledger.sender_out_of_order;
    if (!ledger.any) ledger.sender_first = sequence;
    ledger.any = true;
    ledger.sender_last = sequence;
    ++ledger.frames_in;

    // Four draws whatever the fate, so a frame's fate depends only on its index in the direction.
    const std::uint64_t loss_draw = direction.random.next();
    const std::uint64_t duplicate_draw = direction.random.next();
    const std::uint64_t reorder_draw = direction.random.next();
    const std::uint64_t depth_draw = direction.random.next();

    if (relay.loss.hit(loss_draw)) {
        ledger.dropped.push_back(sequence);
        count_down_held(direction);
        return;
    }
    const bool duplicate = relay.duplicate.hit(duplicate_draw);
    if (duplicate) ledger.duplicated.push_back(sequence);
    if (!relay.reorder.hit(reorder_draw)) {
        emit_with_copy(direction, frame.fields, frame.payload, frame.length, duplicate);
        count_down_held(direction);
        return;
    }
    count_down_held(direction);   // before it joins them: it is not later than itself
    ledger.delayed.push_back(sequence);
    if (direction.held_count == kMaxHeld) {
        ++direction.forced_releases;
        release_oldest(direction);
    }
    HeldFrame& held = direction.held[direction.held_count++];
    held.fields = frame.fields;
    held.length = frame.length;
    held.countdown = 1 + static_cast<std::uint32_t>(depth_draw % relay.options.reorder_depth);
    held.duplicate = duplicate;
    std::memcpy(held.payload, frame.payload, frame.length);
}

void relay_datagram(Relay& relay, Direction& direction, const std::byte* data, std::size_t size) {
    ++direction.datagrams_in;
    cf::wire::DatagramReader reader(data, size, cf::wire::kMaxPayloadBytes, direction.wire);
    cf::wire::DecodedFrame frame;
    int status = 0;
    while ((status = reader.next(frame)) == 1) {
        if ((frame.fields.flags & cf::wire::kFrameControl) != 0) {
            ++direction.control_frames;
            emit(direction, frame.fields, frame.payload, frame.length);
        } else {
            relay_data_frame(relay, direction, frame);
        }
    }
    if (status < 0) ++direction.bad_datagrams;   // the bridges never send one: the script checks it stays 0
    send_datagram(direction);
}

// Reads everything waiting on one socket. Datagrams from anyone but the expected sender are counted and dropped.
void drain_socket(Relay& relay, Direction& direction, std::byte* buffer) {
    for (;;) {
        PeerAddress from;
        from.length = sizeof from.addr;
        const ssize_t size = ::recvfrom(direction.in_fd, buffer, kReceiveBytes, MSG_DONTWAIT, &from.addr.any,
                                        &from.length);
        if (size < 0) {
            if (errno == EINTR) continue;
            return;   // EAGAIN; an ICMP error would only concern a connected socket
        }
        if (!(from == direction.from)) {
            ++direction.foreign_datagrams;
            continue;
        }
        relay_datagram(relay, direction, buffer, static_cast<std::size_t>(size));
    }
}

void release_if_idle(Relay& relay, Direction& direction, std::uint64_t now_ns) {
    if (direction.held_count == 0) return;
    if (now_ns - direction.last_data_ns < std::uint64_t{relay.options.idle_ms} * 1'000'000u) return;
    while (direction.held_count != 0) release_oldest(direction);
    send_datagram(direction);
}

void print_sequences(const std::vector<std::uint64_t>& sequences) {
    std::printf("[");
    for (std::size_t i = 0; i < sequences.size(); ++i) {
        std::printf("%s%llu", i == 0 ? "" : ",", static_cast<unsigned long long>(sequences[i]));
    }
    std::printf("]");
}

void print_direction(const Relay& relay, const Direction& direction) {
    const auto n = [](std::uint64_t value) { return static_cast<unsigned long long>(value); };
    const std::uint64_t skew = relay.options.miscount;
    std::printf("\"%s\":{\"datagrams_in\":%llu,\"datagrams_out\":%llu,\"bad_datagrams\":%llu,"
                "\"foreign_datagrams\":%llu,\"send_errors\":%llu,\"control_frames\":%llu,\"data_frames_in\":%llu,"
                "\"data_frames_out\":%llu,\"forced_releases\":%llu,\"oversized_frames\":%llu,\"held_at_exit\":%u,"
                "\"topics\":{",
                direction.name, n(direction.datagrams_in), n(direction.datagrams_out), n(direction.bad_datagrams),
                n(direction.foreign_datagrams), n(direction.send_errors), n(direction.control_frames),
                n(direction.data_frames_in), n(direction.data_frames_out), n(direction.forced_releases),
                n(direction.oversized_frames), direction.held_count);
    bool first = true;
    for (const auto& [id, ledger] : direction.topics) {
        const ReceiverModel& model = ledger.model;
        std::printf("%s\"%u\":{\"frames_in\":%llu,\"sender_first\":%llu,\"sender_last\":%llu,"
                    "\"sender_out_of_order\":%llu,\"emitted\":%llu,\"dropped\":%llu,\"duplicated\":%llu,"
                    "\"delayed\":%llu,",
                    first ? "" : ",", id, n(ledger.frames_in), n(ledger.sender_first), n(ledger.sender_last),
                    n(ledger.sender_out_of_order), n(ledger.emitted), n(ledger.dropped.size() + skew),
                    n(ledger.duplicated.size() + skew), n(ledger.delayed.size() + skew));
        std::printf("\"dropped_sequences\":");
        print_sequences(ledger.dropped);
        std::printf(",\"duplicated_sequences\":");
        print_sequences(ledger.duplicated);
        std::printf(",\"delayed_sequences\":");
        print_sequences(ledger.delayed);
        std::printf(",\"expect\":{\"received\":%llu,\"republished\":%llu,\"gaps\":%llu,\"duplicates\":%llu,"
                    "\"late\":%llu,\"session_resets\":%llu,\"published_any\":%s,\"first\":%llu,\"last\":%llu}}",
                    n(model.received + skew), n(model.republished + skew), n(model.gaps + skew),
                    n(model.duplicates + skew), n(model.late + skew), n(model.session_resets + skew),
                    model.published_any ? "true" : "false", n(model.first), n(model.last));
        first = false;
    }
    std::printf("}}");
}

}  // namespace

int main(int argc, char** argv) {
    auto relay = std::make_unique<Relay>();
    if (const int status = parse_options(argc, argv, relay->options); status != 0) return status;
    const Options& options = relay->options;
    relay->loss = Chance::of(options.loss);
    relay->duplicate = Chance::of(options.duplicate);
    relay->reorder = Chance::of(options.reorder);

    const int fd_a = open_socket(options.listen_a);
    const int fd_b = fd_a < 0 ? -1 : open_socket(options.listen_b);
    if (fd_a < 0 || fd_b < 0) return 1;

    Direction& a_to_b = relay->a_to_b;
    Direction& b_to_a = relay->b_to_a;
    a_to_b.name = "a_to_b";
    a_to_b.in_fd = fd_a;
    a_to_b.out_fd = fd_b;
    a_to_b.from = options.to_a;
    a_to_b.to = options.to_b;
    a_to_b.random.state = options.seed ^ 0xA2B0000000000000ull;
    b_to_a.name = "b_to_a";
    b_to_a.in_fd = fd_b;
    b_to_a.out_fd = fd_a;
    b_to_a.from = options.to_b;
    b_to_a.to = options.to_a;
    b_to_a.random.state = options.seed ^ 0xB2A0000000000000ull;
    for (Direction* direction : {&a_to_b, &b_to_a}) direction->held.reset(new HeldFrame[kMaxHeld]);
    auto buffer = std::make_unique<std::byte[]>(kReceiveBytes);

    struct sigaction action{};
    action.sa_handler = request_stop;
    sigemptyset(&action.sa_mask);
    sigaction(SIGTERM, &action, nullptr);
    sigaction(SIGINT, &action, nullptr);

    char text_a[64], text_b[64];
    std::fprintf(stderr, "udp_relay: ready on %s and %s\n", options.listen_a.format(text_a, sizeof text_a),
                 options.listen_b.format(text_b, sizeof text_b));
    const std::uint64_t start_ns = monotonic_ns();
    const auto duration_ns = static_cast<std::uint64_t>(options.duration_s * 1e9);
    while (stop_requested == 0) {
        pollfd fds[2] = {{fd_a, POLLIN, 0}, {fd_b, POLLIN, 0}};
        const int ready = ::poll(fds, 2, 2);   // short: held frames are released on idle time
        if (ready < 0 && errno != EINTR) {
            std::fprintf(stderr, "udp_relay: poll: %s\n", std::strerror(errno));
            return 1;
        }
        if (ready > 0) {
            if ((fds[0].revents & POLLIN) != 0) drain_socket(*relay, a_to_b, buffer.get());
            if ((fds[1].revents & POLLIN) != 0) drain_socket(*relay, b_to_a, buffer.get());
        }
        const std::uint64_t now_ns = monotonic_ns();
        release_if_idle(*relay, a_to_b, now_ns);
        release_if_idle(*relay, b_to_a, now_ns);
        if (now_ns - start_ns >= duration_ns) break;
    }
    ::close(fd_a);
    ::close(fd_b);

    std::printf("{\"relay\":{\"seed\":%llu,\"loss\":%g,\"duplicate\":%g,\"reorder\":%g,\"reorder_depth\":%u,"
                "\"idle_ms\":%u,\"miscount\":%llu,\"stopped_by\":\"%s\"},",
                static_cast<unsigned long long>(options.seed), options.loss, options.duplicate, options.reorder,
                options.reorder_depth, options.idle_ms, static_cast<unsigned long long>(options.miscount),
                stop_requested != 0 ? "signal" : "duration");
    print_direction(*relay, a_to_b);
    std::printf(",");
    print_direction(*relay, b_to_a);
    std::printf("}\n");
    return 0;
}
