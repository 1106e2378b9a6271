// lossy-relay-rate: the rate the lossy relay (tests/quic/lossy_relay.hpp) carries with no impairment, side by side
// with its peer, the same sender and receiver talking directly over loopback, in the same run. Datagrams of
// --size bytes (default 1200), --runs rounds (default 5) of four measurements of --seconds each (default 1),
// every one with fresh sockets (and a fresh relay):
//   - saturated, direct and through the relay: the sender sends as fast as sendmmsg takes datagrams; what counts
//     is what the receiver got per second (drops in socket buffers along the way are part of the result);
//   - paced, direct and through the relay: the sender offers --offer-mbit (default 1000 Mbit/s); what counts is
//     the fraction the receiver got.
// Reported: medians over the rounds, the relay's median over the direct one, and the relay's own drops. On a
// 2-core machine the sender, the relay and the receiver share the cores: the relay competes with its own load.
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <memory>
#include <thread>
#include <vector>

#include "platform/os/last_error.hpp"
#include "tests/quic/lossy_relay.hpp"

namespace {

using cf::quic::testing::LossyRelay;
using cf::quic::testing::LossyRelayConfig;
using cf::quic::testing::PeerAddress;

constexpr unsigned kBatch = 32;

std::uint64_t now_ns() {
    timespec now{};
    clock_gettime(CLOCK_MONOTONIC, &now);
    return static_cast<std::uint64_t>(now.tv_sec) * 1'000'000'000u + static_cast<std::uint64_t>(now.tv_nsec);
}

std::uint64_t cpu_ns() {
    timespec now{};
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &now);
    return static_cast<std::uint64_t>(now.tv_sec) * 1'000'000'000u + static_cast<std::uint64_t>(now.tv_nsec);
}

int bound_socket(PeerAddress& address) {
    const int fd = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    const int bytes = 4 << 20;
    if (::setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &bytes, sizeof bytes) != 0) {
        (void)::setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &bytes, sizeof bytes);
    }
    PeerAddress::parse("127.0.0.1:0", address);
    if (fd < 0 || ::bind(fd, &address.addr.any, address.length) != 0) {
        std::fprintf(stderr, "lossy-relay-rate: socket: %s\n", std::strerror(errno));
        std::exit(1);
    }
    address.length = sizeof address.addr;
    ::getsockname(fd, &address.addr.any, &address.length);
    return fd;
}

// Counts datagrams on `fd` until `stop`.
void receive_all(int fd, const std::atomic<bool>& stop, std::atomic<std::uint64_t>& count, std::size_t size) {
    std::vector<std::byte> buffers(kBatch * size);
    mmsghdr headers[kBatch];
    iovec iovs[kBatch];
    while (!stop.load(std::memory_order_relaxed)) {
        for (unsigned i = 0; i < kBatch; ++i) {
            iovs[i] = {buffers.data() + i * size, size};
            headers[i].msg_hdr = {};
            headers[i].msg_hdr.msg_iov = &iovs[i];
            headers[i].msg_hdr.msg_iovlen = 1;
        }
        const int got = ::recvmmsg(fd, headers, kBatch, MSG_DONTWAIT, nullptr);
        if (got > 0) {
            count.fetch_add(static_cast<std::uint64_t>(got), std::memory_order_relaxed);
            continue;
        }
        pollfd wait{fd, POLLIN, 0};
        (void)::poll(&wait, 1, 10);
    }
}

std::unique_ptr<LossyRelay> make_relay(const PeerAddress& server) {
    LossyRelayConfig config;
    PeerAddress::parse("127.0.0.1:0", config.listen);
    config.server = server;
    std::unique_ptr<LossyRelay> relay;
    if (LossyRelay::create(config, relay) != 0 || relay->start() != 0) {
        std::fprintf(stderr, "lossy-relay-rate: %s\n", cf::platform::last_error_message());
        std::exit(1);
    }
    return relay;
}

struct Result {
    double delivered_per_second = 0;
    double delivered_fraction = 0;
    double offered_per_second = 0;
    double cpu_ns_per_datagram = 0;   // the whole process's CPU time (sender, receiver, relay) per delivered one
    std::uint64_t relay_drops = 0;
};

// One run from a fresh sender to a fresh receiver, directly or through a fresh relay. offer_per_second 0: as fast
// as possible.
Result run_once(bool through_relay, std::size_t size, double seconds, double offer_per_second) {
    PeerAddress receiver_address;
    const int receiver_fd = bound_socket(receiver_address);
    std::unique_ptr<LossyRelay> relay;
    if (through_relay) relay = make_relay(receiver_address);
    const PeerAddress to = through_relay ? relay->listen_address() : receiver_address;
    PeerAddress sender_address;
    const int sender = bound_socket(sender_address);
    std::atomic<bool> stop{false};
    std::atomic<std::uint64_t> received{0};
    std::thread receiver(receive_all, receiver_fd, std::cref(stop), std::ref(received), size);
    std::vector<std::byte> payload(size, std::byte{0x5a});
    mmsghdr headers[kBatch];
    iovec iov{payload.data(), size};
    for (auto& header : headers) {
        header.msg_hdr = {};
        header.msg_hdr.msg_name = const_cast<sockaddr*>(&to.addr.any);
        header.msg_hdr.msg_namelen = to.length;
        header.msg_hdr.msg_iov = &iov;
        header.msg_hdr.msg_iovlen = 1;
    }
    const std::uint64_t cpu_start = cpu_ns();
    const std::uint64_t start = now_ns();
    const auto duration = static_cast<std::uint64_t>(seconds * 1e9);
    std::uint64_t sent = 0;
    for (std::uint64_t now = start; now - start < duration; now = now_ns()) {
        unsigned batch = kBatch;
        if (offer_per_second > 0) {
            const auto due = static_cast<std::uint64_t>(static_cast<double>(now - start) * offer_per_second / 1e9);
            if (due <= sent) {
                const timespec pause{0, 20'000};
                nanosleep(&pause, nullptr);
                continue;
            }
            batch = static_cast<unsigned>(std::min<std::uint64_t>(due - sent, kBatch));
        }
        const int accepted = ::sendmmsg(sender, headers, batch, 0);
        if (accepted > 0) sent += static_cast<std::uint64_t>(accepted);
    }
    const std::uint64_t elapsed = now_ns() - start;
    // Let what is in flight arrive; it was sent within the run.
    const timespec settle{0, 50'000'000};
    nanosleep(&settle, nullptr);
    stop.store(true);
    receiver.join();
    ::close(sender);
    ::close(receiver_fd);
    const std::uint64_t cpu = cpu_ns() - cpu_start;
    Result result;
    result.offered_per_second = static_cast<double>(sent) * 1e9 / static_cast<double>(elapsed);
    result.cpu_ns_per_datagram = received.load() == 0 ? 0 : static_cast<double>(cpu) / static_cast<double>(received.load());
    if (relay) {
        relay->stop();
        const auto stats = relay->stats().to_server;
        result.relay_drops = stats.dropped_no_slot + stats.send_errors;
    }
    result.delivered_per_second = static_cast<double>(received.load()) * 1e9 / static_cast<double>(elapsed);
    result.delivered_fraction = sent == 0 ? 0 : static_cast<double>(received.load()) / static_cast<double>(sent);
    return result;
}

double median(std::vector<double> values) {
    std::sort(values.begin(), values.end());
    const std::size_t n = values.size();
    return n % 2 == 1 ? values[n / 2] : (values[n / 2 - 1] + values[n / 2]) / 2;
}

}  // namespace

int main(int argc, char** argv) {
    std::size_t size = 1200;
    double seconds = 1.0, offer_mbit = 1000;
    int runs = 5;
    for (int i = 1; i + 1 < argc; i += 2) {
        const double value = std::strtod(argv[i + 1], nullptr);
        if (std::strcmp(argv[i], "--size") == 0 && value >= 16 && value <= 65000) size = static_cast<std::size_t>(value);
        else if (std::strcmp(argv[i], "--seconds") == 0 && value > 0 && value <= 60) seconds = value;
        else if (std::strcmp(argv[i], "--runs") == 0 && value >= 1 && value <= 101) runs = static_cast<int>(value);
        else if (std::strcmp(argv[i], "--offer-mbit") == 0 && value > 0) offer_mbit = value;
        else {
            std::fprintf(stderr, "usage: lossy-relay-rate [--size B] [--seconds S] [--runs N] [--offer-mbit M]\n");
            return 2;
        }
    }
    const double bits = static_cast<double>(size) * 8;
    const double offer_per_second = offer_mbit * 1e6 / bits;
    std::vector<double> direct, relayed, direct_paced, relay_paced, direct_offered, relay_offered, direct_cpu,
        relay_cpu;
    std::uint64_t relay_drops = 0;
    for (int run = 0; run < runs; ++run) {
        const Result a = run_once(false, size, seconds, 0);
        const Result b = run_once(true, size, seconds, 0);
        const Result c = run_once(false, size, seconds, offer_per_second);
        const Result d = run_once(true, size, seconds, offer_per_second);
        direct.push_back(a.delivered_per_second);
        relayed.push_back(b.delivered_per_second);
        direct_cpu.push_back(a.cpu_ns_per_datagram);
        relay_cpu.push_back(b.cpu_ns_per_datagram);
        direct_paced.push_back(c.delivered_fraction);
        relay_paced.push_back(d.delivered_fraction);
        direct_offered.push_back(c.offered_per_second);
        relay_offered.push_back(d.offered_per_second);
        relay_drops += b.relay_drops + d.relay_drops;
        std::printf("run %d: saturated: direct %.0f/s (%.2f us CPU each), relay %.0f/s (%.2f us CPU each); paced: "
                    "direct got %.4f of %.0f/s, relay got %.4f of %.0f/s\n",
                    run + 1, a.delivered_per_second, a.cpu_ns_per_datagram / 1e3, b.delivered_per_second,
                    b.cpu_ns_per_datagram / 1e3, c.delivered_fraction, c.offered_per_second, d.delivered_fraction,
                    d.offered_per_second);
    }
    const double direct_median = median(direct), relay_median = median(relayed);
    std::printf("lossy-relay-rate: %zu-byte datagrams, %d runs of %.1f s, medians\n", size, runs, seconds);
    std::printf("  saturated, direct (peer) : %9.0f datagrams/s = %6.3f Gbit/s of payload, %.2f us CPU per datagram\n",
                direct_median, direct_median * bits / 1e9, median(direct_cpu) / 1e3);
    std::printf("  saturated, through relay : %9.0f datagrams/s = %6.3f Gbit/s of payload, %.2f us CPU per datagram\n",
                relay_median, relay_median * bits / 1e9, median(relay_cpu) / 1e3);
    std::printf("  ratio relay / direct     : %.3f (rate), %.3f (CPU per datagram)\n", relay_median / direct_median,
                median(relay_cpu) / median(direct_cpu));
    std::printf("  offered %.0f Mbit/s (%.0f/s): direct sent %.0f/s and %.4f arrived; relay sent %.0f/s and %.4f "
                "arrived (ratio %.3f)\n",
                offer_mbit, offer_per_second, median(direct_offered), median(direct_paced), median(relay_offered),
                median(relay_paced), median(relay_paced) / median(direct_paced));
    std::printf("  relay's own drops (no slot, send errors): %llu\n", static_cast<unsigned long long>(relay_drops));
    return 0;
}
