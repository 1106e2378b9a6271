// The io_uring UDP driver. One ring per driver, polled by one thread:
//   - Receive: one multishot recvmsg picks buffers from a provided-buffer ring that is kept topped up with up to
//     config.rx_posted PacketPool buffers. The kernel writes each receive as [io_uring_recvmsg_out (16) | peer
//     address (kRecvNameBytes, 48) | payload], so a received PacketBuffer's `data` points 64 bytes past the
//     buffer's start (cache-line aligned) and its capacity is that much smaller. With UDP_GRO (config.gro, and the
//     kernel accepts it) a control area (kRecvControlBytes, 64) for the UDP_GRO cmsg sits between the address and
//     the payload, which then starts 128 bytes in. PacketPool::allocate() resets `data`, so a released buffer
//     starts from its first byte again.
//   - GRO: one receive may carry several datagrams of one sender, coalesced by the kernel: segment_size says how
//     long each is (the last may be shorter), 0 for a single datagram; rx_packets counts the datagrams. A
//     coalesced receive must fit its buffer whole, so with GRO config.pool.buffer_bytes should be 64 KiB: the
//     kernel coalesces up to about 64 KiB with headers (gso_max_size/gro_max_size, 65536 by default), and a 64 KiB
//     buffer holds 65408 payload bytes; 64 KiB + 128 holds any UDP payload. A longer receive is cut by the kernel
//     (MSG_TRUNC), dropped, and each of its datagrams counted in rx_truncated.
//   - Transmit: one sendmsg (or sendmsg_zc for payloads >= zerocopy_min_bytes) per packet, the msghdr in a slot
//     preallocated per pool buffer, one io_uring_enter per burst (none with SQPOLL unless the thread sleeps).
//   - Completions: every CQE is handled as soon as it is seen, by whichever call sees it. Receive CQEs are parsed
//     into a FIFO of received buffers that rx_burst hands out, so poll_completions() and tx_burst() can reap send
//     completions queued behind receives without losing them.
// Ownership of a pool buffer (packet.hpp): free in the pool, posted in the buffer ring, received and waiting in the
// FIFO, with the caller, or in flight in a send. The ring plus the FIFO never hold more than rx_posted buffers, so
// the FIFO cannot overflow.
//
// The ring is created disabled and enabled by the first rx_burst/tx_burst/poll_completions, so the thread that
// polls the driver (not the one that opened it) becomes the ring's single issuer (IORING_SETUP_SINGLE_ISSUER).
// That first call costs one extra system call. With IORING_SETUP_DEFER_TASKRUN, completions only appear when that
// thread enters the kernel, so rx_burst enters once when it has nothing to hand out.
//
// liburing 2.3 (Debian 12) has no io_uring_setup_buf_ring()/io_uring_free_buf_ring() (added in 2.4): the buffer
// ring's memory is mapped here (page aligned, as the kernel requires) and registered with
// io_uring_register_buf_ring(). It declares io_uring_enable_rings() without exporting it: see enable_ring().
#include "drivers/uring/udp_uring.hpp"

#include <fcntl.h>
#include <liburing.h>
#include <netinet/udp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cassert>
#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <new>
#include <utility>

#include "drivers/udp_options.hpp"
#include "drivers/uring/uring_setup.hpp"
#include "platform/os/last_error.hpp"
#include "platform/os/memory.hpp"

namespace cf::drivers {
namespace {

using platform::fail;

// The peer-address room in each received buffer: with the 16-byte io_uring_recvmsg_out in front it puts the
// payload 64 bytes into the buffer (cache-line aligned) and holds a sockaddr_in6 (28 bytes).
constexpr std::uint32_t kRecvNameBytes = 48;
constexpr std::uint32_t kRecvHeaderBytes = sizeof(io_uring_recvmsg_out) + kRecvNameBytes;
static_assert(kRecvHeaderBytes == 64);
static_assert(kRecvNameBytes >= sizeof(sockaddr_in6));

// With GRO, the control area after the address: the UDP_GRO cmsg needs CMSG_SPACE(sizeof(int)) (24 bytes); a
// whole cache line keeps the payload aligned (128 bytes in) and leaves room should the kernel add another cmsg.
constexpr std::uint32_t kRecvControlBytes = 64;
constexpr std::uint32_t kRecvGroHeaderBytes = kRecvHeaderBytes + kRecvControlBytes;
static_assert(kRecvControlBytes >= CMSG_SPACE(sizeof(int)));
static_assert(kRecvHeaderBytes % alignof(cmsghdr) == 0);   // where the control area starts
static_assert(kRecvGroHeaderBytes % 64 == 0);

constexpr unsigned kSqEntries = 256;
constexpr std::uint32_t kMaxBufRingEntries = 32768;   // kernel limit for a provided-buffer ring
constexpr std::uint32_t kMaxPoolBuffers = 65536;      // buffer ids are 16 bits
constexpr std::uint32_t kMaxCqEntries = 65536;
constexpr unsigned short kBufferGroup = 0;

// user_data: the top two bits say what a CQE completes; sends carry their buffer's pool index below them.
constexpr std::uint64_t kKindShift = 62;
constexpr std::uint64_t kRecvUserData = std::uint64_t{1} << kKindShift;
constexpr std::uint64_t kCancelUserData = std::uint64_t{2} << kKindShift;
constexpr std::uint64_t kSendKind = std::uint64_t{3} << kKindShift;
constexpr std::uint64_t kIndexMask = (std::uint64_t{1} << 32) - 1;

// Driver-private PacketBuffer::flags bits (kInPool is the pool's).
constexpr std::uint16_t kPosted = 0x0001;          // in the provided-buffer ring
constexpr std::uint16_t kReceived = 0x0002;        // received, waiting in the FIFO for rx_burst
constexpr std::uint16_t kSending = 0x0004;         // in flight in a send
constexpr std::uint16_t kDriverOwned = kPosted | kReceived | kSending;


// How many datagrams a receive of `length` bytes carries when cut into `segment_size` pieces (0: not cut).
std::uint32_t segments_in(std::uint32_t length, std::uint32_t segment_size) {
    if (segment_size == 0 || length <= segment_size) return 1;
    return (length + segment_size - 1) / segment_size;
}

// Whether this kernel's io_uring has what the driver needs: 0, or the negative errno open_udp_uring fails with and
// why. Multishot recvmsg and provided-buffer rings (needed) have no opcode of their own; IORING_OP_SEND_ZC arrived
// in the same release (6.0).
int udp_uring_status(char* why, std::size_t size) {
    const UringProbe& probe = uring_probe();
    if (probe.status < 0) {
        std::snprintf(why, size, "%s", probe.why);
        return probe.status;
    }
    if (!probe.send_zc) {
        std::snprintf(why, size,
                      "this kernel's io_uring lacks multishot receive and provided-buffer rings (needs Linux 6.0)");
        return -EOPNOTSUPP;
    }
    if (size > 0) why[0] = '\0';
    return 0;
}

// The per-buffer state of an in-flight send: the kernel reads the msghdr when the SQE is issued (possibly after
// io_uring_enter returned, from a retry), so it lives until the send completes.
struct SendSlot {
    msghdr message{};
    iovec payload{};
    alignas(cmsghdr) unsigned char control[CMSG_SPACE(sizeof(std::uint16_t))]{};
};

class UdpUringDriver final : public DatagramDriver {
public:
    UdpUringDriver() noexcept = default;
    ~UdpUringDriver() override;
    UdpUringDriver(const UdpUringDriver&) = delete;
    UdpUringDriver& operator=(const UdpUringDriver&) = delete;

    int open(const UdpConfig& config, bool sendmsg_zc) noexcept;

    DriverKind kind() const noexcept override { return DriverKind::uring; }
    const PeerAddress& local_address() const noexcept override { return local_; }
    int rx_burst(PacketBuffer** out, std::uint32_t max) noexcept override;
    int tx_burst(PacketBuffer* const* packets, std::uint32_t count) noexcept override;
    int poll_completions() noexcept override;

private:
    int open_socket() noexcept;
    int open_ring() noexcept;
    int open_buffer_ring() noexcept;

    int ensure_enabled() noexcept {
        if (enabled_) [[likely]] return 0;
        return enable();
    }
    int enable() noexcept;
    void replenish() noexcept;
    void arm_receive() noexcept;
    void reap() noexcept;
    void on_receive(const io_uring_cqe& cqe) noexcept;
    std::uint32_t received_segment_size(io_uring_recvmsg_out* header) noexcept;
    void on_send(const io_uring_cqe& cqe) noexcept;
    // The driver's flag bits never include kInPool, so the pool's own double-release check stays in force.
    void give_back(PacketBuffer& buffer) noexcept { pool_->release(&buffer); }
    bool sendable(const PacketBuffer* packet) const noexcept;
    void prepare_send(io_uring_sqe* sqe, PacketBuffer& packet) noexcept;
    bool should_enter() const noexcept;
    int submit() noexcept;
    std::uint32_t received_count() const noexcept { return received_tail_ - received_head_; }
    void close() noexcept;

    UdpConfig config_;
    PeerAddress local_;
    int fd_ = -1;

    io_uring ring_{};
    bool ring_open_ = false;
    bool enabled_ = false;
    UringFlags ring_flags_;   // what create_uring() was granted
    bool zerocopy_ = false;   // SEND_ZC for payloads >= config_.zerocopy_min_bytes

    // The provided-buffer ring and the receive request.
    platform::MappedRegion buf_ring_memory_;
    io_uring_buf_ring* buf_ring_ = nullptr;
    bool buf_ring_registered_ = false;
    int buf_ring_mask_ = 0;
    std::uint32_t posted_ = 0;               // buffers in the ring (not yet picked by a completed receive)
    msghdr recv_message_{};                  // describes the layout of each receive buffer to the kernel
    std::uint32_t recv_header_bytes_ = kRecvHeaderBytes;   // where the payload starts in a receive buffer
    bool gro_ = false;                       // UDP_GRO accepted: receives carry a control area
    bool recv_armed_ = false;                // a multishot receive is queued or active
    int recv_error_ = 0;                     // a receive failure not yet reported by rx_burst

    // Received buffers not yet handed out: a FIFO of rx ring size (ring + FIFO <= rx_posted).
    std::unique_ptr<PacketBuffer*[]> received_;
    std::uint32_t received_mask_ = 0;
    std::uint32_t received_head_ = 0;
    std::uint32_t received_tail_ = 0;

    std::unique_ptr<SendSlot[]> send_slots_;   // indexed by PacketBuffer::index
    std::uint32_t sends_in_flight_ = 0;        // buffers not yet back from a send (zero-copy: until notified)
    std::uint32_t buffer_bytes_ = 0;
};

// ---- open / close ----

int UdpUringDriver::open(const UdpConfig& config, bool sendmsg_zc) noexcept {
    config_ = config;
    if (config.rx_posted == 0 || config.rx_posted > kMaxBufRingEntries) {
        return fail(EINVAL, "uring driver: rx_posted %u must be 1..%u", config.rx_posted, kMaxBufRingEntries);
    }
    if (config.rx_posted > config.pool.count) {
        return fail(EINVAL, "uring driver: rx_posted %u exceeds the pool's %u buffers", config.rx_posted,
                    config.pool.count);
    }
    if (config.pool.count > kMaxPoolBuffers) {
        return fail(EINVAL, "uring driver: pool.count %u exceeds %u (io_uring buffer ids are 16 bits)",
                    config.pool.count, kMaxPoolBuffers);
    }
    if (int rc = PacketPool::create(config.pool, pool_); rc < 0) return rc;
    buffer_bytes_ = pool_->buffer_bytes();
    // Checked before the socket exists, so with config.gro against the larger header GRO may bring.
    const std::uint32_t header_bytes = config.gro ? kRecvGroHeaderBytes : kRecvHeaderBytes;
    if (buffer_bytes_ <= header_bytes) {
        return fail(EINVAL, "uring driver: pool.buffer_bytes %u leaves no payload room after the %u-byte receive "
                    "header", buffer_bytes_, header_bytes);
    }
    zerocopy_ = sendmsg_zc && config.zerocopy_min_bytes != 0;

    send_slots_.reset(new (std::nothrow) SendSlot[pool_->count()]);
    const std::uint32_t ring_entries = round_up_pow2(config.rx_posted);
    received_.reset(new (std::nothrow) PacketBuffer*[ring_entries]);
    if (!send_slots_ || !received_) return fail(ENOMEM, "uring driver: no memory for %u send slots", pool_->count());
    received_mask_ = ring_entries - 1;

    if (int rc = open_socket(); rc < 0) return rc;
    if (int rc = open_ring(); rc < 0) return rc;
    if (int rc = open_buffer_ring(); rc < 0) return rc;

    // Multishot: the kernel writes name and control into each buffer, in the room these lengths give them.
    recv_message_.msg_namelen = kRecvNameBytes;
    if (gro_) {
        recv_message_.msg_controllen = kRecvControlBytes;
        recv_header_bytes_ = kRecvGroHeaderBytes;
    }
    replenish();                                  // fills the ring and queues the receive (submitted on enable)
    return 0;
}

int UdpUringDriver::open_socket() noexcept {
    const PeerAddress& bind_to = config_.bind;
    if (bind_to.length == 0) return fail(EINVAL, "uring driver: config.bind is unset");
    const int family = bind_to.addr.any.sa_family;
    if (family != AF_INET && family != AF_INET6) {
        return fail(EAFNOSUPPORT, "uring driver: config.bind has address family %d (IPv4 or IPv6 only)", family);
    }
    fd_ = ::socket(family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, IPPROTO_UDP);
    if (fd_ < 0) {
        const int err = errno;
        return fail(err, "uring driver: socket() failed: %s", std::strerror(err));
    }
    const int bytes = static_cast<int>(config_.socket_buffer_bytes);
    if (bytes > 0) {
        for (int option : {SO_RCVBUF, SO_SNDBUF}) {
            if (::setsockopt(fd_, SOL_SOCKET, option, &bytes, sizeof bytes) < 0) {
                const int err = errno;
                return fail(err, "uring driver: setsockopt(%s, %d) failed: %s",
                            option == SO_RCVBUF ? "SO_RCVBUF" : "SO_SNDBUF", bytes, std::strerror(err));
            }
        }
    }
    if (config_.gro) {
        // Older kernels (< 5.0) refuse it: receive datagram by datagram instead, with the plain layout.
        const int on = 1;
        gro_ = ::setsockopt(fd_, SOL_UDP, UDP_GRO, &on, sizeof on) == 0;
    }
    if (::bind(fd_, &bind_to.addr.any, bind_to.length) < 0) {
        const int err = errno;
        char text[64];
        return fail(err, "uring driver: bind(%s) failed: %s", bind_to.format(text, sizeof text), std::strerror(err));
    }
    local_.length = sizeof local_.addr;
    if (::getsockname(fd_, &local_.addr.any, &local_.length) < 0) {
        const int err = errno;
        return fail(err, "uring driver: getsockname failed: %s", std::strerror(err));
    }
    return 0;
}

int UdpUringDriver::open_ring() noexcept {
    // Room for every completion that can be outstanding at once: a receive per posted buffer, and per send a
    // result plus a zero-copy notification. More would still not be lost (IORING_FEAT_NODROP), only slower.
    std::uint64_t cq_wanted = std::uint64_t{config_.rx_posted} + 2ull * pool_->count() + kSqEntries;
    if (cq_wanted > kMaxCqEntries) cq_wanted = kMaxCqEntries;
    const unsigned cq_entries = round_up_pow2(static_cast<std::uint32_t>(cq_wanted));
    // With config.rx_poll_flag, TASKRUN_FLAG: a polling thread enters only when the kernel flags pending work.
    if (int rc = create_uring(ring_, kSqEntries, cq_entries, config_.sqpoll, config_.rx_poll_flag, "uring driver",
                              ring_flags_);
        rc < 0) {
        return rc;
    }
    ring_open_ = true;
    return 0;
}

int UdpUringDriver::open_buffer_ring() noexcept {
    const std::uint32_t entries = round_up_pow2(config_.rx_posted);
    if (int rc = platform::map_region(std::size_t{entries} * sizeof(io_uring_buf), false, buf_ring_memory_);
        rc < 0) {
        return rc;
    }
    buf_ring_ = static_cast<io_uring_buf_ring*>(buf_ring_memory_.base);
    io_uring_buf_ring_init(buf_ring_);
    io_uring_buf_reg registration{};
    registration.ring_addr = reinterpret_cast<std::uintptr_t>(buf_ring_);
    registration.ring_entries = entries;
    registration.bgid = kBufferGroup;
    const int rc = io_uring_register_buf_ring(&ring_, &registration, 0);
    if (rc < 0) {   // the probe saw Linux >= 6.0, which has provided-buffer rings (5.19)
        return fail(-rc, "uring driver: io_uring_register_buf_ring(%u entries) failed: %s", entries,
                    std::strerror(-rc));
    }
    buf_ring_registered_ = true;
    buf_ring_mask_ = io_uring_buf_ring_mask(entries);
    return 0;
}

UdpUringDriver::~UdpUringDriver() { close(); }

void UdpUringDriver::close() noexcept {
    if (ring_open_ && enabled_ && (recv_armed_ || sends_in_flight_ > 0)) {
        // Stop the receive and let in-flight sends (and zero-copy notifications) finish before the pool's memory
        // goes away. Fails with -EEXIST on a thread other than the issuer; closing the ring then cancels
        // everything in the kernel, which keeps the pages of in-flight sends pinned.
        bool can_wait = true;
        if (recv_armed_) {
            if (io_uring_sqe* sqe = io_uring_get_sqe(&ring_)) {
                io_uring_prep_cancel64(sqe, kRecvUserData, 0);
                io_uring_sqe_set_data64(sqe, kCancelUserData);
            }
            can_wait = io_uring_submit_and_get_events(&ring_) >= 0;
        }
        reap();
        const auto busy = [this] { return recv_armed_ || sends_in_flight_ > 0; };
        if (can_wait) wait_while_busy(ring_, [this] { reap(); }, busy);
    }
    // Every buffer the driver holds goes back to the pool (the pool is destroyed after this, with the base class).
    if (pool_) {
        while (received_count() > 0) give_back(*received_[received_head_++ & received_mask_]);
        for (std::uint32_t i = 0; i < pool_->count(); ++i) {
            PacketBuffer& buffer = pool_->at(i);
            if ((buffer.flags & kInPool) == 0 && (buffer.flags & (kPosted | kSending)) != 0) give_back(buffer);
        }
    }
    if (buf_ring_registered_) io_uring_unregister_buf_ring(&ring_, kBufferGroup);
    buf_ring_registered_ = false;
    if (ring_open_) io_uring_queue_exit(&ring_);
    ring_open_ = false;
    platform::unmap_region(buf_ring_memory_);
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
}

int UdpUringDriver::enable() noexcept {
    ++stats_.syscalls;
    if (int rc = enable_ring(ring_, "uring driver"); rc < 0) return rc;
    enabled_ = true;
    return 0;
}

// ---- receive ----

// Tops the buffer ring up from the pool (ring + FIFO <= rx_posted) and re-arms the receive when it ended.
void UdpUringDriver::replenish() noexcept {
    const std::uint32_t held = posted_ + received_count();
    int added = 0;
    for (std::uint32_t want = held < config_.rx_posted ? config_.rx_posted - held : 0; want > 0; --want) {
        PacketBuffer* buffer = pool_->allocate();
        if (buffer == nullptr) break;
        buffer->flags = kPosted;
        buffer->capacity = buffer_bytes_;
        io_uring_buf_ring_add(buf_ring_, buffer->data, buffer_bytes_, static_cast<unsigned short>(buffer->index),
                              buf_ring_mask_, added);
        ++added;
    }
    if (added > 0) {
        io_uring_buf_ring_advance(buf_ring_, added);   // release store: the entries are visible before the tail
        posted_ += static_cast<std::uint32_t>(added);
    }
    // Without a posted buffer the receive would end at once with -ENOBUFS; datagrams wait in the socket meanwhile.
    if (!recv_armed_ && posted_ > 0) arm_receive();
}

void UdpUringDriver::arm_receive() noexcept {
    io_uring_sqe* sqe = io_uring_get_sqe(&ring_);
    if (sqe == nullptr) return;   // SQ full (SQPOLL behind): the next rx_burst tries again
    // With GRO, MSG_TRUNC makes the kernel report a cut receive's whole length (payloadlen; the CQE still counts
    // only what was copied), so every datagram it loses is counted.
    io_uring_prep_recvmsg_multishot(sqe, fd_, &recv_message_, gro_ ? MSG_TRUNC : 0);
    sqe->flags |= IOSQE_BUFFER_SELECT;
    sqe->buf_group = kBufferGroup;
    io_uring_sqe_set_data64(sqe, kRecvUserData);
    recv_armed_ = true;
}

void UdpUringDriver::on_receive(const io_uring_cqe& cqe) noexcept {
    if ((cqe.flags & IORING_CQE_F_MORE) == 0) recv_armed_ = false;   // replenish() re-arms
    PacketBuffer* buffer = nullptr;
    if ((cqe.flags & IORING_CQE_F_BUFFER) != 0) {
        const std::uint32_t id = cqe.flags >> IORING_CQE_BUFFER_SHIFT;
        assert(id < pool_->count() && (pool_->at(id).flags & kPosted) != 0);
        if (id < pool_->count() && (pool_->at(id).flags & kPosted) != 0) [[likely]] {
            buffer = &pool_->at(id);
            --posted_;
        }
    }
    if (cqe.res < 0) {
        if (cqe.res == -ENOBUFS) {
            ++stats_.rx_no_buffer;
        } else if (cqe.res != -ECANCELED) {
            recv_error_ = cqe.res;
        }
        if (buffer != nullptr) give_back(*buffer);
        return;
    }
    if (buffer == nullptr) return;

    std::byte* start = pool_->base() + std::size_t{buffer->index} * buffer_bytes_;
    io_uring_recvmsg_out* header = io_uring_recvmsg_validate(start, cqe.res, &recv_message_);
    if (header == nullptr) [[unlikely]] {
        give_back(*buffer);
        return;
    }
    const std::uint32_t segment_size = gro_ ? received_segment_size(header) : 0;
    // Cut short: half a datagram is worse than none to every protocol above us. A cut control area (no room for
    // the GRO cmsg) would hide how a coalesced receive divides, so it is dropped too. With GRO, payloadlen is the
    // length the kernel had (see arm_receive), so a coalesced receive counts every datagram it loses.
    if ((header->flags & (MSG_TRUNC | MSG_CTRUNC)) != 0) [[unlikely]] {
        stats_.rx_truncated += segments_in(header->payloadlen, segment_size);
        give_back(*buffer);
        return;
    }
    buffer->data = static_cast<std::byte*>(io_uring_recvmsg_payload(header, &recv_message_));
    buffer->length = io_uring_recvmsg_payload_length(header, cqe.res, &recv_message_);
    buffer->capacity = buffer_bytes_ - recv_header_bytes_;
    // One datagram (a segment as long as the whole) reads as "not coalesced", as packet.hpp defines 0.
    buffer->segment_size = segment_size < buffer->length ? static_cast<std::uint16_t>(segment_size) : 0;
    std::uint32_t name_bytes = header->namelen;
    if (name_bytes > kRecvNameBytes) name_bytes = kRecvNameBytes;
    if (name_bytes > sizeof buffer->peer.addr) name_bytes = sizeof buffer->peer.addr;
    std::memcpy(&buffer->peer.addr, io_uring_recvmsg_name(header), name_bytes);
    buffer->peer.length = name_bytes;
    buffer->flags = kReceived;
    received_[received_tail_++ & received_mask_] = buffer;
    stats_.rx_packets += segments_in(buffer->length, buffer->segment_size);   // datagrams on the wire
    stats_.rx_bytes += buffer->length;
}

// The UDP_GRO cmsg's segment size from the receive's control area, 0 when there is none (not coalesced) or it
// is out of range.
std::uint32_t UdpUringDriver::received_segment_size(io_uring_recvmsg_out* header) noexcept {
    cmsghdr* first = io_uring_recvmsg_cmsg_firsthdr(header, &recv_message_);
    if (first == nullptr) return 0;
    const auto* end = reinterpret_cast<const unsigned char*>(first) + header->controllen;
    for (cmsghdr* control = first; control != nullptr;
         control = io_uring_recvmsg_cmsg_nexthdr(header, &recv_message_, control)) {
        if (control->cmsg_level != SOL_UDP || control->cmsg_type != UDP_GRO) continue;
        // liburing checks that a header fits in the area, not that its data does.
        if (control->cmsg_len < CMSG_LEN(sizeof(int)) ||
            reinterpret_cast<const unsigned char*>(control) + CMSG_LEN(sizeof(int)) > end) {
            return 0;
        }
        int segment_size = 0;
        std::memcpy(&segment_size, CMSG_DATA(control), sizeof segment_size);
        return segment_size > 0 && segment_size <= UINT16_MAX ? static_cast<std::uint32_t>(segment_size) : 0;
    }
    return 0;
}

int UdpUringDriver::rx_burst(PacketBuffer** out, std::uint32_t max) noexcept {
    if (max == 0) return 0;
    if (int rc = ensure_enabled(); rc < 0) [[unlikely]] return rc;
    replenish();
    reap();
    if (received_count() == 0) {
        int rc = 0;
        if (!config_.busy_poll && config_.rx_wait_us > 0) {
            ++stats_.syscalls;
            __kernel_timespec wait{static_cast<long long>(config_.rx_wait_us / 1'000'000),
                                   static_cast<long long>(config_.rx_wait_us % 1'000'000) * 1000};
            io_uring_cqe* cqe = nullptr;
            rc = io_uring_submit_and_wait_timeout(&ring_, &cqe, 1, &wait, nullptr);
            if (rc == -ETIME) rc = 0;
        } else if (should_enter()) {
            rc = submit();
        }
        if (rc < 0 && rc != -EINTR && rc != -EAGAIN && rc != -EBUSY) [[unlikely]] {
            return fail(-rc, "uring driver: io_uring_enter for receive failed: %s", std::strerror(-rc));
        }
        reap();
    }

    std::uint32_t count = 0;
    while (count < max && received_count() > 0) {
        PacketBuffer* buffer = received_[received_head_++ & received_mask_];
        buffer->flags = 0;   // the caller's now
        out[count++] = buffer;
    }
    // Keeps the ring full between calls, from buffers released before this one (the top-up at the start takes
    // those released since, and re-arms a receive that ran out of buffers).
    replenish();
    if (count > 0) {
        if (config_.clock != nullptr) {
            const Instant now = config_.clock->now();
            for (std::uint32_t i = 0; i < count; ++i) out[i]->rx_time = now;
        }
        return static_cast<int>(count);
    }
    if (recv_error_ != 0) [[unlikely]] {
        const int err = -std::exchange(recv_error_, 0);
        return fail(err, "uring driver: receive failed: %s", std::strerror(err));
    }
    return 0;
}

// ---- transmit ----

// A buffer of this pool that the caller owns, whose payload lies inside its buffer.
bool UdpUringDriver::sendable(const PacketBuffer* packet) const noexcept {
    if (packet == nullptr || !pool_->owns(packet) || (packet->flags & (kInPool | kDriverOwned)) != 0) return false;
    const std::byte* start = pool_->base() + std::size_t{packet->index} * buffer_bytes_;
    if (packet->data < start || packet->data > start + buffer_bytes_) return false;
    return packet->length <= buffer_bytes_ - static_cast<std::uint32_t>(packet->data - start);
}

void UdpUringDriver::prepare_send(io_uring_sqe* sqe, PacketBuffer& packet) noexcept {
    SendSlot& slot = send_slots_[packet.index];
    slot.payload.iov_base = packet.data;
    slot.payload.iov_len = packet.length;
    slot.message.msg_name = packet.peer.length != 0 ? &packet.peer.addr : nullptr;
    slot.message.msg_namelen = packet.peer.length;
    slot.message.msg_iov = &slot.payload;
    slot.message.msg_iovlen = 1;
    slot.message.msg_control = nullptr;
    slot.message.msg_controllen = 0;
    if (packet.segment_size != 0 && packet.segment_size < packet.length) {
        // GSO: the kernel cuts the payload into datagrams of segment_size bytes.
        slot.message.msg_control = slot.control;
        slot.message.msg_controllen = sizeof slot.control;
        cmsghdr* control = CMSG_FIRSTHDR(&slot.message);
        control->cmsg_level = SOL_UDP;
        control->cmsg_type = UDP_SEGMENT;
        control->cmsg_len = CMSG_LEN(sizeof(std::uint16_t));
        const std::uint16_t segment = packet.segment_size;
        std::memcpy(CMSG_DATA(control), &segment, sizeof segment);
    }
    const bool zerocopy = zerocopy_ && packet.length >= config_.zerocopy_min_bytes;
    if (zerocopy) {
        io_uring_prep_sendmsg_zc(sqe, fd_, &slot.message, 0);
        ++stats_.tx_zerocopy;
    } else {
        io_uring_prep_sendmsg(sqe, fd_, &slot.message, 0);
    }
    io_uring_sqe_set_data64(sqe, kSendKind | packet.index);
    packet.flags = kSending;
    ++sends_in_flight_;
}

int UdpUringDriver::tx_burst(PacketBuffer* const* packets, std::uint32_t count) noexcept {
    if (count == 0) return 0;
    if (int rc = ensure_enabled(); rc < 0) [[unlikely]] return rc;
    reap();   // returns finished sends' buffers and frees CQ room
    std::uint32_t queued = 0;
    for (; queued < count; ++queued) {
        PacketBuffer* packet = packets[queued];
        if (!sendable(packet)) [[unlikely]] {
            if (queued > 0) break;   // send the valid prefix; the next call reports this one
            return fail(EINVAL, "uring driver: tx_burst got a buffer that is not the caller's buffer of this "
                        "driver's pool, or whose data/length leave the buffer");
        }
        if (packet->segment_size != 0 && packet->segment_size < packet->length && !config_.gso) [[unlikely]] {
            // As the socket driver: sent whole, it would arrive as one merged datagram nobody sent.
            ++stats_.tx_errors;
            pool_->release(packet);
            continue;
        }
        io_uring_sqe* sqe = io_uring_get_sqe(&ring_);
        if (sqe == nullptr) break;   // SQ full: the caller retries the rest
        prepare_send(sqe, *packet);
    }
    if (queued == 0) return 0;
    // The sends are accepted once their SQEs are in the ring: if this enter fails transiently, the next one
    // submits them, so the buffers stay the driver's either way.
    const int rc = submit();
    if (rc < 0 && rc != -EINTR && rc != -EAGAIN && rc != -EBUSY) [[unlikely]] {
        fail(-rc, "uring driver: io_uring_enter for %u sends failed: %s (they stay queued)", queued,
             std::strerror(-rc));
    }
    return static_cast<int>(queued);
}

void UdpUringDriver::on_send(const io_uring_cqe& cqe) noexcept {
    const std::uint64_t index = cqe.user_data & kIndexMask;
    if (index >= pool_->count()) [[unlikely]] return;
    PacketBuffer& buffer = pool_->at(static_cast<std::uint32_t>(index));
    // A completion for a buffer not in flight would be a driver bug (e.g. a zero-copy buffer released before its
    // notification): debug builds stop, release builds leave the buffer alone rather than release it twice.
    assert((buffer.flags & kSending) != 0);
    if ((buffer.flags & kSending) == 0) [[unlikely]] return;
    if ((cqe.flags & IORING_CQE_F_NOTIF) == 0) {
        if (cqe.res < 0) {
            ++stats_.tx_errors;
        } else {
            const std::uint32_t segment = buffer.segment_size;
            stats_.tx_packets += segment != 0 && segment < buffer.length ? (buffer.length + segment - 1) / segment
                                                                         : 1;
            stats_.tx_bytes += static_cast<std::uint32_t>(cqe.res);
        }
        // Zero-copy: the kernel still reads the bytes until the notification CQE.
        if ((cqe.flags & IORING_CQE_F_MORE) != 0) return;
    }
    --sends_in_flight_;
    give_back(buffer);
}

int UdpUringDriver::poll_completions() noexcept {
    if (int rc = ensure_enabled(); rc < 0) [[unlikely]] return rc;
    reap();
    if (sends_in_flight_ > 0 && should_enter()) {
        const int rc = submit();
        if (rc < 0 && rc != -EINTR && rc != -EAGAIN && rc != -EBUSY) [[unlikely]] {
            return fail(-rc, "uring driver: io_uring_enter for completions failed: %s", std::strerror(-rc));
        }
        reap();
    }
    return 0;
}

// ---- completions ----

// Handles every CQE present, without a system call.
void UdpUringDriver::reap() noexcept {
    reap_cq(ring_, [this](const io_uring_cqe& cqe) {
        switch (cqe.user_data >> kKindShift) {
            case kRecvUserData >> kKindShift: on_receive(cqe); break;
            case kSendKind >> kKindShift: on_send(cqe); break;
            default: break;   // the cancel request's own result
        }
    });
}

// Whether completions may be waiting in the kernel rather than in the CQ, or SQEs (a re-armed receive) wait to
// be submitted.
bool UdpUringDriver::should_enter() const noexcept { return uring_should_enter(ring_, ring_flags_); }

// Without SQPOLL: one io_uring_enter that submits the queued SQEs and runs deferred completion work. With
// SQPOLL: publishes the SQEs and enters only to wake a sleeping kernel thread or flush an overflowed CQ.
// Every enter is counted in stats_.syscalls.
int UdpUringDriver::submit() noexcept {
    if (!ring_flags_.sqpoll) {
        ++stats_.syscalls;
        return io_uring_submit_and_get_events(&ring_);
    }
    int rc = 0;
    if (io_uring_sq_ready(&ring_) > 0) {
        // io_uring_submit() enters only to wake a sleeping SQPOLL thread; it re-reads the flag after publishing
        // the tail, so in a rare race it may enter (or not) differently from what is counted here.
        io_uring_smp_mb();
        if ((IO_URING_READ_ONCE(*ring_.sq.kflags) & IORING_SQ_NEED_WAKEUP) != 0) ++stats_.syscalls;
        rc = io_uring_submit(&ring_);
    }
    if (rc >= 0 && io_uring_cq_has_overflow(&ring_)) {
        ++stats_.syscalls;
        rc = io_uring_get_events(&ring_);
    }
    return rc;
}

}  // namespace

int open_udp_uring(const UdpConfig& config, std::unique_ptr<DatagramDriver>& out) noexcept {
    char why[256];
    if (const int status = udp_uring_status(why, sizeof why); status < 0) return fail(-status, "%s", why);
    std::unique_ptr<UdpUringDriver> driver(new (std::nothrow) UdpUringDriver());
    if (!driver) return fail(ENOMEM, "uring driver: no memory for the driver");
    const bool sendmsg_zc = uring_probe().sendmsg_zc;
    if (int rc = driver->open(config, sendmsg_zc); rc < 0) return rc;   // ~UdpUringDriver undoes the rest
    out = std::move(driver);
    return 0;
}

int uring_available(char* why, std::size_t why_size) noexcept {
    char text[256];
    const int status = udp_uring_status(text, sizeof text);
    if (why != nullptr && why_size > 0) std::snprintf(why, why_size, "%s", text);
    return status;
}

}  // namespace cf::drivers
