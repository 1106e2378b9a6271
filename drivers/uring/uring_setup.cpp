// Ring setup shared by the io_uring drivers: the probe, the setup-flag ladder, enabling, and EPERM explained.
#include "drivers/uring/uring_setup.hpp"

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <iterator>

#include "platform/os/last_error.hpp"

namespace cf::drivers {
namespace {

using platform::fail;

UringProbe probe_uring() {
    UringProbe probe;
    io_uring ring{};
    const int rc = io_uring_queue_init(4, &ring, 0);
    if (rc < 0) {
        probe.status = rc;
        if (rc == -ENOSYS) {
            std::snprintf(probe.why, sizeof probe.why,
                          "this kernel (or an emulator such as qemu-user) has no io_uring (ENOSYS)");
        } else if (rc == -EPERM) {
            describe_eperm(probe.why, sizeof probe.why);
        } else {
            std::snprintf(probe.why, sizeof probe.why, "io_uring_queue_init failed: %s", std::strerror(-rc));
        }
        return probe;
    }
    if (io_uring_probe* ops = io_uring_get_probe_ring(&ring)) {
        probe.socket_op = io_uring_opcode_supported(ops, IORING_OP_SOCKET) != 0;
        probe.send_zc = io_uring_opcode_supported(ops, IORING_OP_SEND_ZC) != 0;
        probe.sendmsg_zc = io_uring_opcode_supported(ops, IORING_OP_SENDMSG_ZC) != 0;
        io_uring_free_probe(ops);
    }
    io_uring_queue_exit(&ring);
    return probe;
}

}  // namespace

const UringProbe& uring_probe() noexcept {
    static const UringProbe probe = probe_uring();   // thread-safe one-time initialisation
    return probe;
}

void describe_eperm(char* why, std::size_t size) noexcept {
    int disabled = -1;
    if (std::FILE* file = std::fopen("/proc/sys/kernel/io_uring_disabled", "r")) {
        if (std::fscanf(file, "%d", &disabled) != 1) disabled = -1;
        std::fclose(file);
    }
    if (disabled == 2) {
        std::snprintf(why, size, "io_uring is disabled on this host (kernel.io_uring_disabled = 2)");
    } else if (disabled == 1) {
        std::snprintf(why, size,
                      "io_uring is restricted to CAP_SYS_ADMIN and members of kernel.io_uring_group "
                      "(kernel.io_uring_disabled = 1)");
    } else {
        std::snprintf(why, size,
                      "io_uring_setup was refused (EPERM) although kernel.io_uring_disabled allows it: a seccomp "
                      "filter or container policy forbids io_uring");
    }
}

int create_uring(io_uring& ring, unsigned sq_entries, unsigned cq_entries, bool want_sqpoll, bool want_taskrun_flag,
                 const char* who, UringFlags& granted) noexcept {
    // Created disabled: the first thread that polls becomes the single issuer.
    constexpr unsigned kCommon = IORING_SETUP_R_DISABLED | IORING_SETUP_CQSIZE | IORING_SETUP_CLAMP;
    // TASKRUN_FLAG: the kernel raises IORING_SQ_TASKRUN when deferred completion work is pending, and a polling
    // thread enters only then instead of once per empty poll.
    constexpr unsigned kDeferred = IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN | IORING_SETUP_SUBMIT_ALL;
    const unsigned kPlain[] = {kDeferred | (want_taskrun_flag ? IORING_SETUP_TASKRUN_FLAG : 0u), kDeferred,
                               IORING_SETUP_SUBMIT_ALL, 0};
    const unsigned kPolled[] = {IORING_SETUP_SQPOLL | IORING_SETUP_SUBMIT_ALL, IORING_SETUP_SQPOLL};
    const unsigned* ladder = want_sqpoll ? kPolled : kPlain;
    const std::size_t steps = want_sqpoll ? std::size(kPolled) : std::size(kPlain);

    // An older kernel refuses flags it does not know with EINVAL: that, and only that, moves down the ladder.
    int rc = -EINVAL;
    for (std::size_t step = 0; step < steps && rc == -EINVAL; ++step) {
        io_uring_params params{};
        params.flags = ladder[step] | kCommon;
        params.cq_entries = cq_entries;
        rc = io_uring_queue_init_params(sq_entries, &ring, &params);
        if (rc == 0) {
            granted.sqpoll = (params.flags & IORING_SETUP_SQPOLL) != 0;
            granted.defer_taskrun = (params.flags & IORING_SETUP_DEFER_TASKRUN) != 0;
            granted.taskrun_flag = (params.flags & IORING_SETUP_TASKRUN_FLAG) != 0;
        }
    }
    if (rc == 0) return 0;
    if (rc == -EPERM) {
        char why[256];
        describe_eperm(why, sizeof why);
        return fail(EPERM, "%s: %s", who, why);
    }
    if (rc == -ENOSYS) return fail(ENOSYS, "%s: this kernel has no io_uring (ENOSYS)", who);
    return fail(-rc, "%s: io_uring_queue_init_params(%u, cq %u%s) failed: %s", who, sq_entries, cq_entries,
                want_sqpoll ? ", SQPOLL" : "", std::strerror(-rc));
}

int enable_ring(io_uring& ring, const char* who) noexcept {
    const int rc = io_uring_register(static_cast<unsigned>(ring.ring_fd), IORING_REGISTER_ENABLE_RINGS, nullptr, 0);
    if (rc < 0) return fail(-rc, "%s: io_uring_enable_rings failed: %s", who, std::strerror(-rc));
    return 0;
}

}  // namespace cf::drivers
