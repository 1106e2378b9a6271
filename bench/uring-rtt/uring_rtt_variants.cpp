// uring-rtt-variants: where io_uring's UDP round trip goes, against plain sockets, on this host.
//
// Two threads (pinned to CPUs 0 and 1) ping-pong one 64-byte datagram over loopback, busy-polling, in several
// ways of receiving and sending: plain system calls, and io_uring requests as the uring driver makes them and as it
// could make them instead. Each variant runs once per round, the variants alternating within a round so a noisy
// neighbour hits them alike; the report is each variant's median over rounds of its per-round RTT p50, and its
// ratio to plain sockets (the contender the udp scenario of cf-latency compares against).
//
// Rings are set up as the driver sets them up: SINGLE_ISSUER + DEFER_TASKRUN + TASKRUN_FLAG, created by the thread
// that polls them, a registered ring fd, an idle poll entering the kernel only when the kernel flags pending work.
//
// Usage: uring-rtt-variants [round trips per run, default 20000] [rounds, default 5]
#include <arpa/inet.h>
#include <liburing.h>
#include <netinet/in.h>
#include <pthread.h>
#include <sched.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <thread>
#include <vector>

namespace {

enum class Receive { plain, multishot_recvmsg, single_recvmsg_rearmed_with_send, multishot_recv };
enum class Send { plain, ring_sendmsg, ring_send_with_address, ring_send };

struct Variant {
    const char* name;
    Receive receive;
    Send send;
    bool connected;   // connect()ed sockets: no address per datagram either way
};

constexpr Variant kVariants[] = {
    {"plain recv + sendto (cf-latency's plain contender)", Receive::plain, Send::plain, false},
    {"ring multishot recvmsg + ring sendmsg (the driver)", Receive::multishot_recvmsg, Send::ring_sendmsg, false},
    {"ring multishot recvmsg + ring send with address", Receive::multishot_recvmsg, Send::ring_send_with_address,
     false},
    {"ring recvmsg re-armed with the send + ring send w/ addr", Receive::single_recvmsg_rearmed_with_send,
     Send::ring_send_with_address, false},
    {"plain recv + ring sendmsg (the send's share)", Receive::plain, Send::ring_sendmsg, false},
    {"ring multishot recvmsg + plain sendto (the receive's share)", Receive::multishot_recvmsg, Send::plain, false},
    {"connected: plain recv + send", Receive::plain, Send::plain, true},
    {"connected: ring multishot recv + ring send", Receive::multishot_recv, Send::ring_send, true},
};

constexpr unsigned kRingFlags = IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN | IORING_SETUP_TASKRUN_FLAG;
constexpr int kBuffers = 64;
constexpr int kBufferBytes = 2048;
constexpr std::uint64_t kReceiveTag = 1, kSendTag = 2;
constexpr std::size_t kMessageBytes = 64;

std::uint64_t now_ns() {
    timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return std::uint64_t(t.tv_sec) * 1000000000u + std::uint64_t(t.tv_nsec);
}

void pin_to(int cpu) {
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(cpu, &set);
    pthread_setaffinity_np(pthread_self(), sizeof set, &set);
}

[[noreturn]] void die(const char* what, int err) {
    std::fprintf(stderr, "uring-rtt-variants: %s: %s\n", what, std::strerror(err));
    std::exit(1);
}

// One side: a bound UDP socket and, for ring variants, a ring created on the thread that polls it.
class Side {
public:
    Side() {
        fd_ = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        self_.sin_family = AF_INET;
        self_.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        socklen_t length = sizeof self_;
        if (fd_ < 0 || bind(fd_, reinterpret_cast<sockaddr*>(&self_), sizeof self_) != 0 ||
            getsockname(fd_, reinterpret_cast<sockaddr*>(&self_), &length) != 0) {
            die("socket", errno);
        }
        std::memset(outgoing_, 0x5a, sizeof outgoing_);
    }
    ~Side() {
        if (ring_open_) io_uring_queue_exit(&ring_);
        std::free(buffer_ring_);
        std::free(buffers_);
        close(fd_);
    }
    Side(const Side&) = delete;
    Side& operator=(const Side&) = delete;

    const sockaddr_in& address() const { return self_; }

    // On the polling thread.
    void start(const Variant& variant, const sockaddr_in& peer) {
        variant_ = variant;
        peer_ = peer;
        if (variant.connected && connect(fd_, reinterpret_cast<const sockaddr*>(&peer_), sizeof peer_) != 0) {
            die("connect", errno);
        }
        if (variant.receive == Receive::plain && variant.send == Send::plain) return;
        io_uring_params params{};
        params.flags = kRingFlags;
        if (const int rc = io_uring_queue_init_params(64, &ring_, &params); rc < 0) die("io_uring_queue_init", -rc);
        ring_open_ = true;
        io_uring_register_ring_fd(&ring_);
        send_iov_ = {outgoing_, kMessageBytes};
        send_message_.msg_iov = &send_iov_;
        send_message_.msg_iovlen = 1;
        send_message_.msg_name = &peer_;
        send_message_.msg_namelen = sizeof peer_;
        if (variant.receive != Receive::plain) set_up_buffer_ring();
    }

    void send() {
        if (variant_.send == Send::plain) {
            if (variant_.connected) {
                (void)::send(fd_, outgoing_, kMessageBytes, MSG_DONTWAIT);
            } else {
                (void)sendto(fd_, outgoing_, kMessageBytes, MSG_DONTWAIT, reinterpret_cast<sockaddr*>(&peer_),
                             sizeof peer_);
            }
            return;
        }
        io_uring_sqe* sqe = io_uring_get_sqe(&ring_);
        if (variant_.send == Send::ring_sendmsg) {
            io_uring_prep_sendmsg(sqe, fd_, &send_message_, 0);
        } else {
            io_uring_prep_send(sqe, fd_, outgoing_, kMessageBytes, 0);
            if (variant_.send == Send::ring_send_with_address) {
                io_uring_prep_send_set_addr(sqe, reinterpret_cast<sockaddr*>(&peer_), sizeof peer_);
            }
        }
        io_uring_sqe_set_data64(sqe, kSendTag);
        io_uring_submit(&ring_);   // also carries a receive re-armed since the last entry
    }

    // True when a datagram arrived.
    bool poll() {
        if (variant_.receive == Receive::plain) {
            return recv(fd_, incoming_, sizeof incoming_, MSG_DONTWAIT) > 0;
        }
        if (!armed_) {
            arm_receive();
            io_uring_submit(&ring_);
        }
        if (reap()) return true;
        if ((IO_URING_READ_ONCE(*ring_.sq.kflags) & IORING_SQ_TASKRUN) == 0) return false;
        io_uring_get_events(&ring_);
        return reap();
    }

private:
    void set_up_buffer_ring() {
        // liburing 2.3 has no io_uring_setup_buf_ring(): page-aligned memory, registered by hand.
        buffer_ring_ = static_cast<io_uring_buf_ring*>(std::aligned_alloc(4096, 4096));
        buffers_ = static_cast<char*>(std::aligned_alloc(4096, kBuffers * kBufferBytes));
        if (buffer_ring_ == nullptr || buffers_ == nullptr) die("aligned_alloc", ENOMEM);
        std::memset(buffer_ring_, 0, 4096);
        io_uring_buf_ring_init(buffer_ring_);
        io_uring_buf_reg registration{};
        registration.ring_addr = reinterpret_cast<std::uintptr_t>(buffer_ring_);
        registration.ring_entries = kBuffers;
        if (const int rc = io_uring_register_buf_ring(&ring_, &registration, 0); rc < 0) die("buffer ring", -rc);
        for (int id = 0; id < kBuffers; ++id) give_back(id);
    }
    void give_back(int id) {
        io_uring_buf_ring_add(buffer_ring_, buffers_ + id * kBufferBytes, kBufferBytes, static_cast<unsigned short>(id),
                              io_uring_buf_ring_mask(kBuffers), 0);
        io_uring_buf_ring_advance(buffer_ring_, 1);
    }
    void arm_receive() {
        io_uring_sqe* sqe = io_uring_get_sqe(&ring_);
        switch (variant_.receive) {
            case Receive::multishot_recvmsg:
                multishot_message_.msg_namelen = sizeof(sockaddr_in6);   // room for the sender in each buffer
                io_uring_prep_recvmsg_multishot(sqe, fd_, &multishot_message_, 0);
                break;
            case Receive::multishot_recv: io_uring_prep_recv_multishot(sqe, fd_, nullptr, 0, 0); break;
            case Receive::single_recvmsg_rearmed_with_send:
                single_iov_ = {nullptr, kBufferBytes};
                single_message_.msg_iov = &single_iov_;
                single_message_.msg_iovlen = 1;
                single_message_.msg_name = &sender_;
                single_message_.msg_namelen = sizeof sender_;
                io_uring_prep_recvmsg(sqe, fd_, &single_message_, 0);
                sqe->ioprio |= IORING_RECVSEND_POLL_FIRST;   // nothing is there yet: wait without trying
                break;
            case Receive::plain: break;
        }
        sqe->flags |= IOSQE_BUFFER_SELECT;
        sqe->buf_group = 0;
        io_uring_sqe_set_data64(sqe, kReceiveTag);
        armed_ = true;
    }
    bool reap() {
        bool received = false;
        io_uring_cqe* cqe;
        unsigned head, seen = 0;
        io_uring_for_each_cqe(&ring_, head, cqe) {
            ++seen;
            if (cqe->user_data != kReceiveTag) continue;
            if (cqe->res > 0) received = true;
            if ((cqe->flags & IORING_CQE_F_BUFFER) != 0) {
                give_back(static_cast<int>(cqe->flags >> IORING_CQE_BUFFER_SHIFT));
            }
            if ((cqe->flags & IORING_CQE_F_MORE) == 0) armed_ = false;
        }
        io_uring_cq_advance(&ring_, seen);
        // The single-shot receive is queued again now and goes in with the next send's io_uring_enter.
        if (received && !armed_ && variant_.receive == Receive::single_recvmsg_rearmed_with_send) arm_receive();
        return received;
    }

    int fd_ = -1;
    sockaddr_in self_{}, peer_{}, sender_{};
    Variant variant_{};
    io_uring ring_{};
    bool ring_open_ = false;
    bool armed_ = false;
    io_uring_buf_ring* buffer_ring_ = nullptr;
    char* buffers_ = nullptr;
    msghdr multishot_message_{}, single_message_{}, send_message_{};
    iovec single_iov_{}, send_iov_{};
    char outgoing_[kMessageBytes];
    char incoming_[kBufferBytes];
};

// One run: the RTT p50 in microseconds, or a negative value when a datagram was lost.
double run(const Variant& variant, int round_trips) {
    Side ping, pong;
    std::atomic<bool> ready{false}, stop{false};
    std::thread echo([&] {
        pin_to(1);
        pong.start(variant, ping.address());
        ready = true;
        while (!stop.load(std::memory_order_relaxed)) {
            if (pong.poll()) pong.send();
        }
    });
    pin_to(0);
    ping.start(variant, pong.address());
    while (!ready) std::this_thread::yield();
    constexpr int kWarmUp = 1000;
    std::vector<std::uint32_t> rtt;
    rtt.reserve(static_cast<std::size_t>(round_trips));
    bool lost = false;
    for (int i = 0; i < round_trips + kWarmUp && !lost; ++i) {
        const std::uint64_t start = now_ns();
        ping.send();
        while (!ping.poll()) {
            if (now_ns() - start > 1000000000u) {   // a second: the datagram is gone (loopback drops only on overflow)
                lost = true;
                break;
            }
        }
        if (i >= kWarmUp) rtt.push_back(static_cast<std::uint32_t>(now_ns() - start));
    }
    stop = true;
    echo.join();
    if (lost || rtt.empty()) return -1;
    std::nth_element(rtt.begin(), rtt.begin() + static_cast<std::ptrdiff_t>(rtt.size() / 2), rtt.end());
    return rtt[rtt.size() / 2] / 1000.0;
}

double median(std::vector<double> values) {
    std::sort(values.begin(), values.end());
    const std::size_t n = values.size();
    return n % 2 == 1 ? values[n / 2] : (values[n / 2 - 1] + values[n / 2]) / 2;
}

}  // namespace

int main(int argc, char** argv) {
    const int round_trips = argc > 1 ? std::atoi(argv[1]) : 20000;
    const int rounds = argc > 2 ? std::atoi(argv[2]) : 5;
    if (round_trips < 1 || rounds < 1) {
        std::fprintf(stderr, "usage: uring-rtt-variants [round trips per run >= 1] [rounds >= 1]\n");
        return 2;
    }
    constexpr std::size_t kCount = std::size(kVariants);
    std::vector<double> p50[kCount];
    for (int round = 1; round <= rounds; ++round) {
        std::fprintf(stderr, "round %d/%d:", round, rounds);
        for (std::size_t v = 0; v < kCount; ++v) {
            const double value = run(kVariants[v], round_trips);
            std::fprintf(stderr, " %.2f", value);
            if (value > 0) p50[v].push_back(value);
        }
        std::fprintf(stderr, "\n");
    }
    const double plain = p50[0].empty() ? 0 : median(p50[0]);
    const double connected_plain = p50[6].empty() ? 0 : median(p50[6]);
    std::printf("64 B UDP loopback RTT, busy-polled, %d round trips x %d rounds; median of per-round p50s\n",
                round_trips, rounds);
    for (std::size_t v = 0; v < kCount; ++v) {
        if (p50[v].empty()) {
            std::printf("%-62s  lost datagrams in every round\n", kVariants[v].name);
            continue;
        }
        const double reference = kVariants[v].connected ? connected_plain : plain;
        std::printf("%-62s %7.2f us  %5.2fx plain%s\n", kVariants[v].name, median(p50[v]),
                    reference > 0 ? median(p50[v]) / reference : 0.0, kVariants[v].connected ? " (connected)" : "");
    }
    return 0;
}
