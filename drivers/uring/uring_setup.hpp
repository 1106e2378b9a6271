// What every io_uring driver does the same way: the one-time probe of what this kernel's io_uring offers, the ring
// created with the best setup flags the kernel grants (falling down a ladder of older flag sets), enabling a ring
// created disabled, and the test for "may completions be waiting in the kernel". The drivers (udp_uring.cpp,
// tcp_uring.cpp) decide from the probe whether they can run and say why in their own words.
//
// Errors from ring creation follow one rule, so open_udp()/open_tcp() can fall back to sockets: -ENOSYS when the
// kernel (or an emulator such as qemu-user) has no io_uring, -EPERM when it is forbidden (with the reason
// describe_eperm() finds), any other errno as the kernel said it.
#pragma once

#include <liburing.h>

#include <cerrno>
#include <cstddef>
#include <cstdint>

namespace cf::drivers {

// What the probe learned, once per process.
struct UringProbe {
    int status = 0;            // 0, or the negative errno of io_uring_queue_init (-ENOSYS, -EPERM, -ENOMEM...)
    bool socket_op = false;    // IORING_OP_SOCKET: Linux 5.19, which also brought multishot accept and
                               // IORING_ASYNC_CANCEL_{FD,ALL,ANY}
    bool send_zc = false;      // IORING_OP_SEND_ZC: Linux 6.0, which also brought multishot recvmsg and
                               // provided-buffer rings (neither has an opcode of its own)
    bool sendmsg_zc = false;   // IORING_OP_SENDMSG_ZC: Linux 6.1
    char why[256] = "";        // with status < 0: why, in a sentence
};

// Probes on the first call (thread-safe) and returns the cached answer afterwards.
const UringProbe& uring_probe() noexcept;

// Why io_uring_setup said EPERM: the kernel.io_uring_disabled sysctl, or else a seccomp filter or container policy.
void describe_eperm(char* why, std::size_t size) noexcept;

constexpr std::uint32_t round_up_pow2(std::uint32_t value) noexcept {
    std::uint32_t result = 1;
    while (result < value) result <<= 1;
    return result;
}

// The setup flags a ring got.
struct UringFlags {
    bool sqpoll = false;
    bool defer_taskrun = false;   // completion work runs only inside io_uring_enter (IORING_SETUP_DEFER_TASKRUN)
    bool taskrun_flag = false;    // the kernel raises IORING_SQ_TASKRUN when that work is pending
};

// Creates `ring` disabled (IORING_SETUP_R_DISABLED: the first thread to enable it becomes its single issuer) with
// sq_entries and cq_entries (clamped by the kernel), trying the best flags first: SINGLE_ISSUER + DEFER_TASKRUN
// (+ TASKRUN_FLAG when want_taskrun_flag) + SUBMIT_ALL, then without TASKRUN_FLAG, then SUBMIT_ALL alone, then
// nothing; with want_sqpoll, SQPOLL + SUBMIT_ALL, then SQPOLL alone. `who` starts every failure message. 0 with
// `granted` filled, or a negative errno with the message set (see the top of this file).
int create_uring(io_uring& ring, unsigned sq_entries, unsigned cq_entries, bool want_sqpoll, bool want_taskrun_flag,
                 const char* who, UringFlags& granted) noexcept;

// Enables a ring created disabled; the calling thread becomes its single issuer. One system call. 0 or a negative
// errno with the message set. liburing 2.3 declares io_uring_enable_rings() without exporting it, so this makes the
// register call itself.
int enable_ring(io_uring& ring, const char* who) noexcept;

// Whether completions may be waiting in the kernel rather than in the CQ, or SQEs wait to be submitted: what
// decides that an idle poll enters the kernel.
inline bool uring_should_enter(const io_uring& ring, const UringFlags& flags) noexcept {
    // DEFER_TASKRUN runs completion work only inside io_uring_enter; otherwise it runs on the way back to user
    // space (or in the SQPOLL thread) and the kernel needs us only to flush an overflowed CQ or take new SQEs.
    const bool work_pending = flags.defer_taskrun &&
                              (!flags.taskrun_flag || (IO_URING_READ_ONCE(*ring.sq.kflags) & IORING_SQ_TASKRUN) != 0);
    return work_pending || io_uring_cq_has_overflow(&ring) || io_uring_sq_ready(&ring) > 0;
}

// Hands every CQE present to handle(cqe), oldest first, then gives their slots back to the kernel. No system call:
// liburing's peek helpers may enter the kernel to flush an overflow, which the drivers' counts would miss.
template <class Handle>
void reap_cq(io_uring& ring, Handle handle) noexcept {
    unsigned head = *ring.cq.khead;
    const unsigned tail = io_uring_smp_load_acquire(ring.cq.ktail);   // pairs with the kernel's tail release
    if (head == tail) return;
    const unsigned seen = tail - head;
    for (; head != tail; ++head) handle(ring.cq.cqes[head & ring.cq.ring_mask]);
    io_uring_cq_advance(&ring, seen);   // release store: the kernel reuses the slots only after we read them
}

// At destruction: while busy() (requests still in flight after their cancels were submitted), waits for
// completions in rounds of a millisecond, a second at most, calling reap() after each. Stops early when waiting
// fails for good (on a thread other than the single issuer it cannot wait: closing the ring then cancels what is
// left, and the kernel keeps the pages of in-flight sends pinned until they finish).
template <class Reap, class Busy>
void wait_while_busy(io_uring& ring, Reap reap, Busy busy) noexcept {
    constexpr int kRounds = 1000;
    constexpr long kRoundNs = 1000000;
    for (int round = 0; round < kRounds && busy(); ++round) {
        __kernel_timespec wait{0, kRoundNs};
        io_uring_cqe* cqe = nullptr;
        const int rc = io_uring_wait_cqe_timeout(&ring, &cqe, &wait);
        if (rc < 0 && rc != -ETIME && rc != -EINTR && rc != -EAGAIN) return;
        reap();
    }
}

}  // namespace cf::drivers
