// LossyRelay: the event loop, the per-direction pipeline (loss, duplication, bottleneck, path, reordering) and the
// socket plumbing. The model is described in lossy_relay.hpp.
#include "tests/quic/lossy_relay.hpp"

#include <fcntl.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <limits>
#include <new>
#include <system_error>

#include "platform/os/last_error.hpp"

namespace cf::quic::testing {
namespace {

__extension__ using U128 = unsigned __int128;

constexpr std::uint32_t kBatch = 64;            // datagrams per recvmmsg / sendmmsg
constexpr std::uint32_t kReadRounds = 4;        // batches read per socket per wake-up, before releasing again
constexpr std::uint32_t kMaxSlots = 1u << 20;
constexpr std::uint64_t kMaxDelayNs = 3600ull * 1'000'000'000ull;   // keeps every sum far from overflow
constexpr std::uint64_t kRetryNs = 1'000'000;   // after ENOBUFS: the kernel gave no POLLOUT to wait for
constexpr std::uint64_t kNever = std::numeric_limits<std::uint64_t>::max();
constexpr std::uint64_t kPicosPerByteBit = 8'000'000'000'000ull;   // 8 bits * 10^12 ps per second
constexpr int kSocketBufferBytes = 4 << 20;

std::uint64_t clock_ns(clockid_t clock) noexcept {
    timespec now{};
    clock_gettime(clock, &now);
    return static_cast<std::uint64_t>(now.tv_sec) * 1'000'000'000u + static_cast<std::uint64_t>(now.tv_nsec);
}

// splitmix64: the same numbers on every platform and standard library (std distributions are not).
struct Random {
    std::uint64_t state = 0;
    std::uint64_t next() noexcept {
        std::uint64_t z = (state += 0x9E3779B97F4A7C15ull);
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
        return z ^ (z >> 31);
    }
};

// A probability as a threshold on a 64-bit draw: draw < threshold with that probability (1 is "always").
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

// A fixed-capacity FIFO (power-of-two ring). Each slot index is in at most one ring of its direction, so a ring
// as large as the slot count never overflows.
template <typename T>
class Fifo {
public:
    bool init(std::uint32_t min_capacity) noexcept {
        std::uint32_t capacity = 1;
        while (capacity < min_capacity) capacity <<= 1;
        items_.reset(new (std::nothrow) T[capacity]);
        mask_ = capacity - 1;
        return items_ != nullptr;
    }
    bool empty() const noexcept { return head_ == tail_; }
    std::uint32_t size() const noexcept { return tail_ - head_; }
    const T& front() const noexcept { return items_[head_ & mask_]; }
    const T& at(std::uint32_t i) const noexcept { return items_[(head_ + i) & mask_]; }
    void push(const T& item) noexcept { items_[tail_++ & mask_] = item; }
    T pop() noexcept { return items_[head_++ & mask_]; }

private:
    std::unique_ptr<T[]> items_;
    std::uint32_t mask_ = 0, head_ = 0, tail_ = 0;
};

// One writer (the relay thread), any readers: a plain load and store, no read-modify-write.
void bump(std::atomic<std::uint64_t>& counter, std::uint64_t by = 1) noexcept {
    counter.store(counter.load(std::memory_order_relaxed) + by, std::memory_order_relaxed);
}

bool is_percent(double value) noexcept { return value >= 0.0 && value <= 100.0; }   // false for NaN

}  // namespace

struct LossyRelay::Direction {
    struct PathEntry {
        std::uint64_t release_ns;
        std::uint32_t slot;
        bool hold;
    };
    struct HeldEntry {
        std::uint64_t due_count;   // goes once in_order_sent reaches this
        std::uint64_t deadline_ns;
        std::uint32_t slot;
    };
    struct Counters {
        std::atomic<std::uint64_t> received{0}, forwarded{0}, dropped_loss{0}, dropped_queue{0}, duplicated{0},
            reordered{0}, max_queue_bytes{0}, dropped_no_slot{0}, dropped_oversized{0}, send_errors{0}, pending{0};
    };

    Impairment impairment;
    Chance loss, loss_after_loss, duplicate, reorder;
    bool burst = false;
    bool last_lost = false;
    Random random;

    int in_fd = -1, out_fd = -1;
    const PeerAddress* to = nullptr;   // nullptr: out_fd is connected
    bool blocked = false;              // out_fd said EAGAIN: wait for POLLOUT
    std::uint64_t retry_ns = kNever;   // out_fd said ENOBUFS: try again then

    std::uint32_t slots = 0, slot_bytes = 0;
    std::unique_ptr<std::byte[]> data;        // (slots + 1) * slot_bytes: the last slot is the scratch slot
    std::unique_ptr<std::uint32_t[]> lengths;
    std::unique_ptr<std::uint32_t[]> free;    // a stack of free slot indices
    std::uint32_t free_count = 0;
    Fifo<PathEntry> path;      // through the bottleneck and the delay, in release order
    Fifo<HeldEntry> held;      // held back for reordering, in release order
    Fifo<std::uint32_t> outbox;

    std::uint64_t last_arrival_ns = 0;
    U128 link_free_ps = 0;     // when the bottleneck finishes what it has (CLOCK_MONOTONIC, picoseconds)
    std::uint64_t in_order_sent = 0;
    Counters counters;

    mmsghdr rx[kBatch];
    iovec rx_iov[kBatch];
    std::uint32_t rx_slot[kBatch];
    sockaddr_in6 rx_from[kBatch];   // large enough for either family
    alignas(cmsghdr) char rx_control[kBatch][CMSG_SPACE(sizeof(timespec))];
    mmsghdr tx[kBatch];
    iovec tx_iov[kBatch];

    std::byte* slot_data(std::uint32_t slot) noexcept { return data.get() + std::size_t{slot} * slot_bytes; }
    std::uint32_t scratch() const noexcept { return slots; }
    std::uint32_t take() noexcept {
        const std::uint32_t slot = free[--free_count];
        counters.pending.store(slots - free_count, std::memory_order_relaxed);
        return slot;
    }
    void give_back(std::uint32_t slot) noexcept {
        if (slot == scratch()) return;
        free[free_count++] = slot;
        counters.pending.store(slots - free_count, std::memory_order_relaxed);
    }

    int init(const Impairment& impairment_in, std::uint64_t seed, std::uint32_t slot_count,
             std::uint32_t datagram_bytes) noexcept {
        impairment = impairment_in;
        const double p_loss = impairment.loss_percent / 100.0;
        burst = impairment.loss_burst > 0 && p_loss > 0 && p_loss < 1;
        if (burst) {
            const double after_loss = 1.0 - 1.0 / impairment.loss_burst;
            loss = Chance::of(p_loss / (impairment.loss_burst * (1.0 - p_loss)));
            loss_after_loss = Chance::of(after_loss);
        } else {
            loss = Chance::of(p_loss);
        }
        duplicate = Chance::of(impairment.duplicate_percent / 100.0);
        reorder = Chance::of(impairment.reorder_percent / 100.0);
        random.state = seed;
        slots = slot_count;
        slot_bytes = datagram_bytes;
        // Not value-initialised: pages are touched only when a slot is first used.
        data.reset(new (std::nothrow) std::byte[(std::size_t{slots} + 1) * slot_bytes]);
        lengths.reset(new (std::nothrow) std::uint32_t[slots + 1]);
        free.reset(new (std::nothrow) std::uint32_t[slots]);
        if (!data || !lengths || !free || !path.init(slots) || !held.init(slots) || !outbox.init(slots)) {
            return platform::fail(ENOMEM, "lossy relay: no memory for %u slots of %u bytes", slots, slot_bytes);
        }
        for (std::uint32_t i = 0; i < slots; ++i) free[i] = slots - 1 - i;   // slot 0 first: easier to debug
        free_count = slots;
        return 0;
    }
};

int validate_impairment(const Impairment& impairment, const char* direction) noexcept {
    const Impairment& m = impairment;
    if (!is_percent(m.loss_percent)) return platform::fail(EINVAL, "%s: loss %g%% is not in 0..100", direction, m.loss_percent);
    if (!is_percent(m.duplicate_percent)) {
        return platform::fail(EINVAL, "%s: duplication %g%% is not in 0..100", direction, m.duplicate_percent);
    }
    if (!is_percent(m.reorder_percent)) {
        return platform::fail(EINVAL, "%s: reordering %g%% is not in 0..100", direction, m.reorder_percent);
    }
    if (!(m.loss_burst == 0 || (m.loss_burst >= 1 && m.loss_burst <= 1e6))) {
        return platform::fail(EINVAL, "%s: loss burst %g is neither 0 (independent losses) nor a mean run length "
                              "in 1..1000000", direction, m.loss_burst);
    }
    if (m.loss_burst > 0 && m.loss_percent > 0 && m.loss_percent < 100) {
        // P(lost | previous kept) = P / (B (1 - P)) must be a probability.
        const double p = m.loss_percent / 100.0;
        if (p / (m.loss_burst * (1.0 - p)) > 1.0) {
            return platform::fail(EINVAL, "%s: losses in runs of mean length %g cannot reach %g%% (at most %g%%)",
                                  direction, m.loss_burst, m.loss_percent,
                                  100.0 * m.loss_burst / (m.loss_burst + 1.0));
        }
    }
    if (m.reorder_percent > 0 && (m.reorder_hold_ns == 0 || m.reorder_hold_ns > kMaxDelayNs)) {
        return platform::fail(EINVAL, "%s: the reorder hold time must be in (0, 1 h]", direction);
    }
    if (m.delay_ns > kMaxDelayNs) return platform::fail(EINVAL, "%s: a delay above 1 h", direction);
    if (m.rate_bits_per_second > 0 && m.rate_bits_per_second < 1000) {
        return platform::fail(EINVAL, "%s: a rate below 1000 bit/s", direction);   // a datagram would take minutes
    }
    if (m.queue_bytes > (1ull << 40)) return platform::fail(EINVAL, "%s: a queue above 1 TiB", direction);
    return 0;
}

const char* format_stats(const LossyRelayStats& stats, char* out, std::size_t size) noexcept {
    if (out == nullptr || size == 0) return out;
    const auto n = [](std::uint64_t value) { return static_cast<unsigned long long>(value); };
    std::size_t used = 0;
    for (int i = 0; i < 2; ++i) {
        const DirectionStats& s = i == 0 ? stats.to_server : stats.to_client;
        const int wrote = std::snprintf(
            out + used, size - used,
            "%s%s: received=%llu forwarded=%llu lost=%llu queue-drops=%llu duplicated=%llu reordered=%llu "
            "max-queue=%lluB no-slot=%llu oversized=%llu send-errors=%llu pending=%llu",
            i == 0 ? "" : " | ", i == 0 ? "to-server" : "to-client", n(s.received), n(s.forwarded),
            n(s.dropped_loss), n(s.dropped_queue), n(s.duplicated), n(s.reordered), n(s.max_queue_bytes),
            n(s.dropped_no_slot), n(s.dropped_oversized), n(s.send_errors), n(s.pending));
        if (wrote < 0 || static_cast<std::size_t>(wrote) >= size - used) return out;   // cut: still terminated
        used += static_cast<std::size_t>(wrote);
    }
    std::snprintf(out + used, size - used, " | foreign=%llu", n(stats.foreign));
    return out;
}

int LossyRelay::create(const LossyRelayConfig& config, std::unique_ptr<LossyRelay>& out) noexcept {
    if (config.listen.length == 0) return platform::fail(EINVAL, "lossy relay: no listen address");
    if (config.server.length == 0) return platform::fail(EINVAL, "lossy relay: no server address");
    if (config.server.port() == 0) return platform::fail(EINVAL, "lossy relay: the server address needs a port");
    if (config.slots == 0 || config.slots > kMaxSlots) {
        return platform::fail(EINVAL, "lossy relay: slots %u not in 1..%u", config.slots, kMaxSlots);
    }
    if (config.max_datagram_bytes == 0 || config.max_datagram_bytes > 65535) {
        return platform::fail(EINVAL, "lossy relay: max datagram %u bytes not in 1..65535", config.max_datagram_bytes);
    }
    if (config.send_window_ns > 1'000'000'000) return platform::fail(EINVAL, "lossy relay: send window above 1 s");
    if (int status = validate_impairment(config.to_server, "to-server"); status != 0) return status;
    if (int status = validate_impairment(config.to_client, "to-client"); status != 0) return status;

    std::unique_ptr<LossyRelay> relay(new (std::nothrow) LossyRelay());
    if (!relay) return platform::fail(ENOMEM, "lossy relay: no memory");
    relay->config_ = config;
    relay->to_server_.reset(new (std::nothrow) Direction());
    relay->to_client_.reset(new (std::nothrow) Direction());
    if (!relay->to_server_ || !relay->to_client_) return platform::fail(ENOMEM, "lossy relay: no memory");
    // Distinct streams per direction, so one direction's traffic never moves the other's fates.
    if (int status = relay->to_server_->init(config.to_server, config.seed ^ 0x5e47e4000000c2a5ull, config.slots,
                                             config.max_datagram_bytes);
        status != 0) {
        return status;
    }
    if (int status = relay->to_client_->init(config.to_client, config.seed ^ 0xc11e47000000a2c5ull, config.slots,
                                             config.max_datagram_bytes);
        status != 0) {
        return status;
    }
    if (int status = relay->open_sockets(); status != 0) return status;
    Direction& up = *relay->to_server_;
    Direction& down = *relay->to_client_;
    up.in_fd = relay->listen_fd_;
    up.out_fd = relay->server_fd_;
    up.to = nullptr;
    down.in_fd = relay->server_fd_;
    down.out_fd = relay->listen_fd_;
    down.to = &relay->client_;
    out = std::move(relay);
    return 0;
}

int LossyRelay::open_sockets() noexcept {
    const auto open_one = [](const PeerAddress& address, const char* role) noexcept -> int {
        const int fd = ::socket(address.addr.any.sa_family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (fd < 0) return platform::fail(errno, "lossy relay: %s socket: %s", role, std::strerror(errno));
        // Large buffers so bursts wait in the kernel rather than being dropped there (forced where we may).
        for (int option : {SO_RCVBUF, SO_SNDBUF}) {
            const int forced = option == SO_RCVBUF ? SO_RCVBUFFORCE : SO_SNDBUFFORCE;
            if (::setsockopt(fd, SOL_SOCKET, forced, &kSocketBufferBytes, sizeof kSocketBufferBytes) != 0) {
                (void)::setsockopt(fd, SOL_SOCKET, option, &kSocketBufferBytes, sizeof kSocketBufferBytes);
            }
        }
        const int on = 1;
        (void)::setsockopt(fd, SOL_SOCKET, SO_TIMESTAMPNS, &on, sizeof on);   // without it: the read time
        return fd;
    };
    char text[64];
    listen_fd_ = open_one(config_.listen, "listen");
    if (listen_fd_ < 0) return listen_fd_;
    if (::bind(listen_fd_, &config_.listen.addr.any, config_.listen.length) != 0) {
        return platform::fail(errno, "lossy relay: bind %s: %s", config_.listen.format(text, sizeof text),
                              std::strerror(errno));
    }
    listen_address_.length = sizeof listen_address_.addr;
    if (::getsockname(listen_fd_, &listen_address_.addr.any, &listen_address_.length) != 0) {
        return platform::fail(errno, "lossy relay: getsockname: %s", std::strerror(errno));
    }
    server_fd_ = open_one(config_.server, "server-side");
    if (server_fd_ < 0) return server_fd_;
    // Connected: only the server's datagrams come in, and its port being closed shows as ECONNREFUSED.
    if (::connect(server_fd_, &config_.server.addr.any, config_.server.length) != 0) {
        return platform::fail(errno, "lossy relay: connect %s: %s", config_.server.format(text, sizeof text),
                              std::strerror(errno));
    }
    server_side_address_.length = sizeof server_side_address_.addr;
    if (::getsockname(server_fd_, &server_side_address_.addr.any, &server_side_address_.length) != 0) {
        return platform::fail(errno, "lossy relay: getsockname: %s", std::strerror(errno));
    }
    wake_fd_ = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (wake_fd_ < 0) return platform::fail(errno, "lossy relay: eventfd: %s", std::strerror(errno));
    return 0;
}

LossyRelay::~LossyRelay() {
    (void)stop();
    for (int fd : {listen_fd_, server_fd_, wake_fd_}) {
        if (fd >= 0) ::close(fd);
    }
}

void LossyRelay::request_stop() noexcept {
    stop_requested_.store(true, std::memory_order_release);
    const std::uint64_t one = 1;
    if (wake_fd_ >= 0) (void)!::write(wake_fd_, &one, sizeof one);
}

int LossyRelay::start() noexcept {
    if (thread_.joinable()) return platform::fail(EAGAIN, "lossy relay: already started");
    try {
        thread_ = std::thread([this] { thread_status_ = run(0); });
    } catch (const std::system_error& error) {
        return platform::fail(EAGAIN, "lossy relay: no thread: %s", error.what());
    }
    return 0;
}

int LossyRelay::stop() noexcept {
    request_stop();
    if (thread_.joinable()) thread_.join();
    return thread_status_;
}

LossyRelayStats LossyRelay::stats() const noexcept {
    LossyRelayStats stats;
    for (int i = 0; i < 2; ++i) {
        const Direction::Counters& c = (i == 0 ? to_server_ : to_client_)->counters;
        DirectionStats& s = i == 0 ? stats.to_server : stats.to_client;
        const auto get = [](const std::atomic<std::uint64_t>& value) {
            return value.load(std::memory_order_relaxed);
        };
        s.received = get(c.received);
        s.forwarded = get(c.forwarded);
        s.dropped_loss = get(c.dropped_loss);
        s.dropped_queue = get(c.dropped_queue);
        s.duplicated = get(c.duplicated);
        s.reordered = get(c.reordered);
        s.max_queue_bytes = get(c.max_queue_bytes);
        s.dropped_no_slot = get(c.dropped_no_slot);
        s.dropped_oversized = get(c.dropped_oversized);
        s.send_errors = get(c.send_errors);
        s.pending = get(c.pending);
    }
    stats.foreign = foreign_.load(std::memory_order_relaxed);
    stats.client_known = client_known_.load(std::memory_order_acquire);
    return stats;
}

// Reads what is waiting on the direction's incoming socket (a few batches, then the caller releases and sends).
void LossyRelay::receive(Direction& d, std::uint64_t now_ns) noexcept {
    const bool from_client = &d == to_server_.get();
    for (std::uint32_t round = 0; round < kReadRounds; ++round) {
        // With no free slot, one datagram at a time into the scratch slot, to count and drop it.
        const std::uint32_t batch = d.free_count == 0 ? 1 : (d.free_count < kBatch ? d.free_count : kBatch);
        for (std::uint32_t i = 0; i < batch; ++i) {
            d.rx_slot[i] = d.free_count == 0 ? d.scratch() : d.free[d.free_count - 1 - i];
            d.rx_iov[i] = {d.slot_data(d.rx_slot[i]), d.slot_bytes};
            msghdr& h = d.rx[i].msg_hdr;
            h = {};
            h.msg_name = from_client ? &d.rx_from[i] : nullptr;
            h.msg_namelen = from_client ? sizeof d.rx_from[i] : 0;
            h.msg_iov = &d.rx_iov[i];
            h.msg_iovlen = 1;
            h.msg_control = d.rx_control[i];
            h.msg_controllen = sizeof d.rx_control[i];
        }
        const int got = ::recvmmsg(d.in_fd, d.rx, batch, MSG_DONTWAIT, nullptr);
        if (got < 0) {
            // A pending ICMP error (the server's port closed) is reported once; the datagrams behind it wait.
            if (errno == EINTR || errno == ECONNREFUSED) continue;
            return;   // EAGAIN
        }
        // The kernel stamps arrivals with CLOCK_REALTIME: one offset per batch maps them onto CLOCK_MONOTONIC.
        const std::uint64_t mono = clock_ns(CLOCK_MONOTONIC);
        const std::uint64_t real = clock_ns(CLOCK_REALTIME);
        const std::uint64_t read_ns = mono > now_ns ? mono : now_ns;
        // Claim the slots read into (the top of the free stack, in order) before a copy could take one of them.
        if (d.rx_slot[0] != d.scratch()) {
            for (int i = 0; i < got; ++i) (void)d.take();
        }
        for (int i = 0; i < got; ++i) {
            const std::uint32_t slot = d.rx_slot[i];
            const msghdr& h = d.rx[i].msg_hdr;
            if (from_client) {
                PeerAddress from;
                static_assert(sizeof from.addr == sizeof d.rx_from[i]);
                std::memcpy(&from.addr, &d.rx_from[i], sizeof from.addr);
                from.length = h.msg_namelen;
                if (!client_known_.load(std::memory_order_relaxed)) {
                    client_ = from;
                    client_known_.store(true, std::memory_order_release);
                } else if (!(from == client_)) {
                    bump(foreign_);
                    d.give_back(slot);
                    continue;
                }
            } else if (!client_known_.load(std::memory_order_relaxed)) {
                bump(foreign_);   // nobody to send it to yet
                d.give_back(slot);
                continue;
            }
            bump(d.counters.received);
            if (slot == d.scratch()) {
                bump(d.counters.dropped_no_slot);
                continue;
            }
            if ((h.msg_flags & MSG_TRUNC) != 0) {
                bump(d.counters.dropped_oversized);
                d.give_back(slot);
                continue;
            }
            std::uint64_t arrival_ns = read_ns;
            for (const cmsghdr* c = CMSG_FIRSTHDR(&h); c != nullptr; c = CMSG_NXTHDR(const_cast<msghdr*>(&h),
                                                                                   const_cast<cmsghdr*>(c))) {
                if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_TIMESTAMPNS) continue;
                timespec stamp{};
                std::memcpy(&stamp, CMSG_DATA(c), sizeof stamp);
                const std::uint64_t stamp_real = static_cast<std::uint64_t>(stamp.tv_sec) * 1'000'000'000u +
                                                 static_cast<std::uint64_t>(stamp.tv_nsec);
                const std::uint64_t age = real > stamp_real ? real - stamp_real : 0;
                arrival_ns = age < mono ? mono - age : 0;
            }
            // Monotonic and never in the future, whatever the wall clock did.
            if (arrival_ns > read_ns) arrival_ns = read_ns;
            if (arrival_ns < d.last_arrival_ns) arrival_ns = d.last_arrival_ns;
            d.last_arrival_ns = arrival_ns;
            admit(d, slot, static_cast<std::uint32_t>(d.rx[i].msg_len), arrival_ns);
        }
        if (static_cast<std::uint32_t>(got) < batch) return;
    }
}

// Loss, duplication, and the reorder decisions, all drawn now: four draws per datagram whatever its fate.
void LossyRelay::admit(Direction& d, std::uint32_t slot, std::uint32_t length, std::uint64_t arrival_ns) noexcept {
    d.lengths[slot] = length;
    const std::uint64_t loss_draw = d.random.next();
    const std::uint64_t duplicate_draw = d.random.next();
    const std::uint64_t reorder_draw = d.random.next();
    const std::uint64_t copy_reorder_draw = d.random.next();

    const bool lost = d.burst && d.last_lost ? d.loss_after_loss.hit(loss_draw) : d.loss.hit(loss_draw);
    d.last_lost = lost;
    if (lost) {
        bump(d.counters.dropped_loss);
        d.give_back(slot);
        return;
    }
    std::uint32_t copy = d.scratch();
    if (d.duplicate.hit(duplicate_draw) && d.free_count != 0) {   // no slot for a copy: no copy, nothing counted
        copy = d.take();
        d.lengths[copy] = length;
        std::memcpy(d.slot_data(copy), d.slot_data(slot), length);
        bump(d.counters.duplicated);
    }
    enqueue(d, slot, arrival_ns, d.reorder.hit(reorder_draw));
    if (copy != d.scratch()) enqueue(d, copy, arrival_ns, d.reorder.hit(copy_reorder_draw));
}

// The bottleneck (tail drop, serialisation) and the path delay.
void LossyRelay::enqueue(Direction& d, std::uint32_t slot, std::uint64_t arrival_ns, bool hold) noexcept {
    const Impairment& m = d.impairment;
    const std::uint32_t length = d.lengths[slot];
    std::uint64_t leaves_ns = arrival_ns;
    if (m.rate_bits_per_second != 0) {
        const U128 arrival_ps = U128{arrival_ns} * 1000u;
        const U128 backlog_ps = d.link_free_ps > arrival_ps ? d.link_free_ps - arrival_ps : 0;
        const auto backlog_bytes = static_cast<std::uint64_t>(backlog_ps * m.rate_bits_per_second / kPicosPerByteBit);
        if (m.queue_bytes != 0 && backlog_bytes + length > m.queue_bytes) {
            bump(d.counters.dropped_queue);
            d.give_back(slot);
            return;
        }
        if (backlog_bytes + length > d.counters.max_queue_bytes.load(std::memory_order_relaxed)) {
            d.counters.max_queue_bytes.store(backlog_bytes + length, std::memory_order_relaxed);
        }
        const U128 start_ps = d.link_free_ps > arrival_ps ? d.link_free_ps : arrival_ps;
        d.link_free_ps = start_ps + U128{length} * kPicosPerByteBit / m.rate_bits_per_second;
        leaves_ns = static_cast<std::uint64_t>((d.link_free_ps + 999u) / 1000u);
    }
    d.path.push({leaves_ns + m.delay_ns, slot, hold});
}

// Moves what is due by now (plus the send window) to the outbox, in model-time order, and sends it.
void LossyRelay::release_due(Direction& d, std::uint64_t now_ns) noexcept {
    const std::uint64_t limit = now_ns + config_.send_window_ns;
    const Impairment& m = d.impairment;
    for (;;) {
        const bool path_due = !d.path.empty() && d.path.front().release_ns <= limit;
        const bool held_due = !d.held.empty() && d.held.front().deadline_ns <= limit;
        if (!path_due && !held_due) break;
        if (held_due && (!path_due || d.held.front().deadline_ns < d.path.front().release_ns)) {
            d.outbox.push(d.held.pop().slot);
            continue;
        }
        const Direction::PathEntry entry = d.path.pop();
        if (entry.hold) {
            const std::uint64_t due = m.reorder_gap == 0 ? kNever : d.in_order_sent + m.reorder_gap;
            d.held.push({due, entry.release_ns + m.reorder_hold_ns, entry.slot});
            bump(d.counters.reordered);
            continue;
        }
        d.outbox.push(entry.slot);
        ++d.in_order_sent;
        while (!d.held.empty() && d.held.front().due_count <= d.in_order_sent) d.outbox.push(d.held.pop().slot);
    }
    if (d.retry_ns != kNever && now_ns >= d.retry_ns) d.retry_ns = kNever;
    flush(d);
}

// Sends the outbox in order until it is empty or the socket pushes back.
void LossyRelay::flush(Direction& d) noexcept {
    while (!d.outbox.empty() && !d.blocked && d.retry_ns == kNever) {
        const std::uint32_t batch = d.outbox.size() < kBatch ? d.outbox.size() : kBatch;
        for (std::uint32_t i = 0; i < batch; ++i) {
            const std::uint32_t slot = d.outbox.at(i);
            d.tx_iov[i] = {d.slot_data(slot), d.lengths[slot]};
            msghdr& h = d.tx[i].msg_hdr;
            h = {};
            if (d.to != nullptr) {
                h.msg_name = const_cast<sockaddr*>(&d.to->addr.any);
                h.msg_namelen = d.to->length;
            }
            h.msg_iov = &d.tx_iov[i];
            h.msg_iovlen = 1;
        }
        const int sent = ::sendmmsg(d.out_fd, d.tx, batch, MSG_DONTWAIT);
        if (sent > 0) {
            for (int i = 0; i < sent; ++i) d.give_back(d.outbox.pop());
            bump(d.counters.forwarded, static_cast<std::uint64_t>(sent));
            continue;
        }
        if (sent < 0 && errno == EINTR) continue;
        if (sent < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            d.blocked = true;
            return;
        }
        if (sent < 0 && (errno == ENOBUFS || errno == ENOMEM)) {
            d.retry_ns = clock_ns(CLOCK_MONOTONIC) + kRetryNs;
            return;
        }
        // Refused for good (ECONNREFUSED from a closed server port, EMSGSIZE, ...): this one is lost.
        d.give_back(d.outbox.pop());
        bump(d.counters.send_errors);
    }
}

std::uint64_t LossyRelay::next_due_ns(const Direction& d) const noexcept {
    std::uint64_t next = kNever;
    if (!d.path.empty()) next = d.path.front().release_ns;
    if (!d.held.empty() && d.held.front().deadline_ns < next) next = d.held.front().deadline_ns;
    if (d.retry_ns < next) next = d.retry_ns;
    const std::uint64_t window = config_.send_window_ns;
    return next == kNever ? kNever : (next > window ? next - window : 0);
}

int LossyRelay::run(std::uint64_t duration_ns) noexcept {
    // Wake-ups as close to the release times as the kernel allows (the default slack is 50 us); restored after.
    const int old_slack = ::prctl(PR_GET_TIMERSLACK, 0, 0, 0, 0);
    (void)::prctl(PR_SET_TIMERSLACK, 1000ul, 0, 0, 0);
    const std::uint64_t end_ns = duration_ns == 0 ? kNever : clock_ns(CLOCK_MONOTONIC) + duration_ns;
    int status = 0;
    Direction* const directions[2] = {to_server_.get(), to_client_.get()};
    while (!stop_requested_.load(std::memory_order_acquire)) {
        std::uint64_t now_ns = clock_ns(CLOCK_MONOTONIC);
        if (now_ns >= end_ns) break;
        std::uint64_t wake_ns = end_ns;
        for (Direction* d : directions) {
            release_due(*d, now_ns);
            const std::uint64_t next = next_due_ns(*d);
            if (next < wake_ns) wake_ns = next;
        }
        pollfd fds[3] = {
            {listen_fd_, static_cast<short>(POLLIN | (to_client_->blocked ? POLLOUT : 0)), 0},
            {server_fd_, static_cast<short>(POLLIN | (to_server_->blocked ? POLLOUT : 0)), 0},
            {wake_fd_, POLLIN, 0},
        };
        timespec timeout{};
        const timespec* timeout_ptr = nullptr;
        if (wake_ns != kNever) {
            const std::uint64_t wait_ns = wake_ns > now_ns ? wake_ns - now_ns : 0;
            timeout.tv_sec = static_cast<time_t>(wait_ns / 1'000'000'000u);
            timeout.tv_nsec = static_cast<long>(wait_ns % 1'000'000'000u);
            timeout_ptr = &timeout;
        }
        const int ready = ::ppoll(fds, 3, timeout_ptr, nullptr);
        if (ready < 0) {
            if (errno == EINTR) continue;
            status = platform::fail(errno, "lossy relay: ppoll: %s", std::strerror(errno));
            break;
        }
        if (ready == 0) continue;
        if ((fds[2].revents & POLLIN) != 0) {
            std::uint64_t count = 0;
            (void)!::read(wake_fd_, &count, sizeof count);
        }
        if ((fds[0].revents & POLLOUT) != 0) to_client_->blocked = false;
        if ((fds[1].revents & POLLOUT) != 0) to_server_->blocked = false;
        now_ns = clock_ns(CLOCK_MONOTONIC);
        // POLLERR on the server side is a pending ICMP error: receive() reads and clears it.
        if ((fds[0].revents & (POLLIN | POLLERR)) != 0) receive(*to_server_, now_ns);
        if ((fds[1].revents & (POLLIN | POLLERR)) != 0) receive(*to_client_, now_ns);
    }
    if (old_slack > 0) (void)::prctl(PR_SET_TIMERSLACK, static_cast<unsigned long>(old_slack), 0, 0, 0);
    return status;
}

}  // namespace cf::quic::testing
