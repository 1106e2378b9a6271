// The hot path makes no heap allocation, takes no lock and makes no system call: counted, not assumed.
//
// This executable replaces the allocator entry points (malloc & co., every operator new/delete) and the pthread
// lock calls with counting versions that forward to the real ones, and traps the system calls of a measuring
// thread with a seccomp filter whose SIGSYS handler counts the call and makes it fail with -ENOSYS. The counters
// move only inside a measured window on the thread that opened it. The window opens after each thread's set-up
// (its first publish and poll, which bind a clock lane and a pool cache) and covers 10^6 messages through every
// topic kind, both sides on one thread (in process, and through two mappings of a shared-memory topic), two threads
// on SPSC, the C API, and 10^6 pool allocate/free pairs. A first
// test case proves each counter moves for a deliberate malloc, lock and getpid, so the zeros mean something.
//
// A seccomp filter stays with its thread until the thread ends, so every window runs on a thread of its own; outside
// the window the handler makes the trapped calls itself, so the thread's exit works as usual. Measuring threads use
// no doctest macro (they may lock and allocate): the main thread checks their results after joining them.
//
// Sanitizer runtimes own malloc themselves: under ASan/TSan (also MSan) the hooks are not compiled and the suite
// says it skipped. Where seccomp cannot be installed (qemu-user refuses it), system calls are not counted and the
// suite says so; allocations and locks are still counted.
#include <doctest/doctest.h>

#include <dlfcn.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <pthread.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <ucontext.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <mutex>
#include <new>
#include <string>
#include <thread>

#include "chronofabric/chronofabric.h"
#include "tests/libc_allocation_hooks.hpp"
#include "engine/bus/publisher.hpp"
#include "engine/bus/shared_topic.hpp"
#include "engine/bus/subscriber.hpp"
#include "engine/mem/pool.hpp"
#include "engine/time/hlc.hpp"
#include "platform/os/cycle_counter.hpp"
#include "tests/bus/topic_test_support.hpp"

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define CF_HOT_PATH_SANITIZED 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer) || __has_feature(memory_sanitizer)
#define CF_HOT_PATH_SANITIZED 1
#endif
#endif
#ifndef CF_HOT_PATH_SANITIZED
#define CF_HOT_PATH_SANITIZED 0
#endif

#if CF_HOT_PATH_SANITIZED

TEST_CASE("hot path: skipped under a sanitizer") {
    MESSAGE("skipped: this build has a sanitizer runtime, which replaces malloc itself; the counting hooks of "
            "this suite would conflict with it. The normal build runs the suite.");
}

#else

namespace {

// ---- the counters: per thread, moving only while the thread's window is open ----

struct HookCounts {
    std::uint64_t allocations = 0;   // malloc & co. and operator new/delete calls, frees included
    std::uint64_t locks = 0;         // pthread mutex/rwlock/spinlock acquisitions (tries included)
    std::uint64_t syscalls = 0;      // system calls trapped by the seccomp filter
    long first_syscall = -1;         // the number of the first one, to name it in a failure
};

thread_local constinit bool tl_counting = false;
thread_local constinit HookCounts tl_counts{};

void count_allocation() noexcept {
    if (tl_counting) ++tl_counts.allocations;
}
void count_lock() noexcept {
    if (tl_counting) ++tl_counts.locks;
}

// Keeps the compiler from removing an allocation the test makes on purpose.
void escape(const void* p) noexcept { asm volatile("" : : "g"(p) : "memory"); }

}  // namespace

// ---- allocation hooks (tests/libc_allocation_hooks.cpp) ----

extern "C" void cf_test_on_allocation() noexcept { count_allocation(); }

namespace {

void* counted_new(std::size_t bytes, std::size_t alignment = 0) noexcept {
    count_allocation();
    if (bytes == 0) bytes = 1;
    return alignment > alignof(std::max_align_t) ? __libc_memalign(alignment, bytes) : __libc_malloc(bytes);
}
void* counted_new_or_throw(std::size_t bytes, std::size_t alignment = 0) {
    void* block = counted_new(bytes, alignment);
    if (block == nullptr) throw std::bad_alloc();
    return block;
}
void counted_delete(void* block) noexcept {
    count_allocation();
    __libc_free(block);
}

}  // namespace

void* operator new(std::size_t bytes) { return counted_new_or_throw(bytes); }
void* operator new[](std::size_t bytes) { return counted_new_or_throw(bytes); }
void* operator new(std::size_t bytes, const std::nothrow_t&) noexcept { return counted_new(bytes); }
void* operator new[](std::size_t bytes, const std::nothrow_t&) noexcept { return counted_new(bytes); }
void* operator new(std::size_t bytes, std::align_val_t a) {
    return counted_new_or_throw(bytes, static_cast<std::size_t>(a));
}
void* operator new[](std::size_t bytes, std::align_val_t a) {
    return counted_new_or_throw(bytes, static_cast<std::size_t>(a));
}
void* operator new(std::size_t bytes, std::align_val_t a, const std::nothrow_t&) noexcept {
    return counted_new(bytes, static_cast<std::size_t>(a));
}
void* operator new[](std::size_t bytes, std::align_val_t a, const std::nothrow_t&) noexcept {
    return counted_new(bytes, static_cast<std::size_t>(a));
}
void operator delete(void* block) noexcept { counted_delete(block); }
void operator delete[](void* block) noexcept { counted_delete(block); }
void operator delete(void* block, std::size_t) noexcept { counted_delete(block); }
void operator delete[](void* block, std::size_t) noexcept { counted_delete(block); }
void operator delete(void* block, const std::nothrow_t&) noexcept { counted_delete(block); }
void operator delete[](void* block, const std::nothrow_t&) noexcept { counted_delete(block); }
void operator delete(void* block, std::align_val_t) noexcept { counted_delete(block); }
void operator delete[](void* block, std::align_val_t) noexcept { counted_delete(block); }
void operator delete(void* block, std::size_t, std::align_val_t) noexcept { counted_delete(block); }
void operator delete[](void* block, std::size_t, std::align_val_t) noexcept { counted_delete(block); }
void operator delete(void* block, std::align_val_t, const std::nothrow_t&) noexcept { counted_delete(block); }
void operator delete[](void* block, std::align_val_t, const std::nothrow_t&) noexcept { counted_delete(block); }

// ---- lock hooks: forward to the next definition (libc's) ----

namespace {

// The real function, looked up once. A plain atomic rather than a function-local static: a static's guard could
// itself take a lock and come back here.
template <class Function>
Function next_definition(std::atomic<void*>& cache, const char* name) noexcept {
    void* function = cache.load(std::memory_order_relaxed);
    if (function == nullptr) {
        function = dlsym(RTLD_NEXT, name);
        if (function == nullptr) std::abort();   // no pthread in this process: nothing sensible to forward to
        cache.store(function, std::memory_order_relaxed);
    }
    return reinterpret_cast<Function>(function);
}

}  // namespace

#define CF_COUNTED_LOCK(name, ...)                                                    \
    count_lock();                                                                     \
    static constinit std::atomic<void*> next_##name{nullptr};                         \
    return next_definition<decltype(&name)>(next_##name, #name)(__VA_ARGS__)

extern "C" {
int pthread_mutex_lock(pthread_mutex_t* m) noexcept { CF_COUNTED_LOCK(pthread_mutex_lock, m); }
int pthread_mutex_trylock(pthread_mutex_t* m) noexcept { CF_COUNTED_LOCK(pthread_mutex_trylock, m); }
int pthread_mutex_timedlock(pthread_mutex_t* m, const timespec* t) noexcept {
    CF_COUNTED_LOCK(pthread_mutex_timedlock, m, t);
}
int pthread_mutex_clocklock(pthread_mutex_t* m, clockid_t c, const timespec* t) noexcept {
    CF_COUNTED_LOCK(pthread_mutex_clocklock, m, c, t);
}
int pthread_rwlock_rdlock(pthread_rwlock_t* l) noexcept { CF_COUNTED_LOCK(pthread_rwlock_rdlock, l); }
int pthread_rwlock_wrlock(pthread_rwlock_t* l) noexcept { CF_COUNTED_LOCK(pthread_rwlock_wrlock, l); }
int pthread_rwlock_tryrdlock(pthread_rwlock_t* l) noexcept { CF_COUNTED_LOCK(pthread_rwlock_tryrdlock, l); }
int pthread_rwlock_trywrlock(pthread_rwlock_t* l) noexcept { CF_COUNTED_LOCK(pthread_rwlock_trywrlock, l); }
int pthread_rwlock_timedrdlock(pthread_rwlock_t* l, const timespec* t) noexcept {
    CF_COUNTED_LOCK(pthread_rwlock_timedrdlock, l, t);
}
int pthread_rwlock_timedwrlock(pthread_rwlock_t* l, const timespec* t) noexcept {
    CF_COUNTED_LOCK(pthread_rwlock_timedwrlock, l, t);
}
int pthread_rwlock_clockrdlock(pthread_rwlock_t* l, clockid_t c, const timespec* t) noexcept {
    CF_COUNTED_LOCK(pthread_rwlock_clockrdlock, l, c, t);
}
int pthread_rwlock_clockwrlock(pthread_rwlock_t* l, clockid_t c, const timespec* t) noexcept {
    CF_COUNTED_LOCK(pthread_rwlock_clockwrlock, l, c, t);
}
int pthread_spin_lock(pthread_spinlock_t* l) noexcept { CF_COUNTED_LOCK(pthread_spin_lock, l); }
int pthread_spin_trylock(pthread_spinlock_t* l) noexcept { CF_COUNTED_LOCK(pthread_spin_trylock, l); }
}  // extern "C"

#undef CF_COUNTED_LOCK

// ---- system call trap: a seccomp filter on the measuring thread, a SIGSYS handler that counts ----
//
// The filter cannot see the window (it reads registers, not memory), and it stays with the thread for good. So it
// traps every system call except those made from one instruction: the system call in cf_hot_path_reissue below.
// In the window the handler counts the call and makes it fail with -ENOSYS; outside it, it makes the call through
// that instruction and hands back the result, so the thread lives on normally (its exit takes locks that may
// wait in the kernel, say).

// long cf_hot_path_reissue(long number, long a0, long a1, long a2, long a3, long a4, long a5): the raw system call.
// cf_hot_path_reissue_return is the address right after its system call instruction: what seccomp reports as
// the instruction pointer of a call made there.
#if defined(__x86_64__)
asm(R"(
    .text
    .globl cf_hot_path_reissue
    .hidden cf_hot_path_reissue
    .type cf_hot_path_reissue, @function
cf_hot_path_reissue:
    movq %rdi, %rax
    movq %rsi, %rdi
    movq %rdx, %rsi
    movq %rcx, %rdx
    movq %r8, %r10
    movq %r9, %r8
    movq 8(%rsp), %r9
    syscall
    .globl cf_hot_path_reissue_return
    .hidden cf_hot_path_reissue_return
cf_hot_path_reissue_return:
    ret
    .size cf_hot_path_reissue, . - cf_hot_path_reissue
)");
#elif defined(__aarch64__)
asm(R"(
    .text
    .globl cf_hot_path_reissue
    .hidden cf_hot_path_reissue
    .type cf_hot_path_reissue, %function
cf_hot_path_reissue:
    mov x8, x0
    mov x0, x1
    mov x1, x2
    mov x2, x3
    mov x3, x4
    mov x4, x5
    mov x5, x6
    svc #0
    .globl cf_hot_path_reissue_return
    .hidden cf_hot_path_reissue_return
cf_hot_path_reissue_return:
    ret
    .size cf_hot_path_reissue, . - cf_hot_path_reissue
)");
#endif

extern "C" long cf_hot_path_reissue(long number, long a0, long a1, long a2, long a3, long a4, long a5);
extern "C" const char cf_hot_path_reissue_return[];

namespace {

#if defined(__x86_64__)
constexpr std::uint32_t kAuditArch = AUDIT_ARCH_X86_64;
#elif defined(__aarch64__)
constexpr std::uint32_t kAuditArch = AUDIT_ARCH_AARCH64;
#endif

// rt_sigprocmask outside the window, done on the mask the handler's return restores (the thread's own mask): a
// real call from the handler would be undone by that return. SIGSYS stays unblocked: a trap while it is blocked
// would reset its handler and kill the process.
long change_saved_mask(ucontext_t& context, long how, const std::uint64_t* set, std::uint64_t* old,
                       unsigned long set_bytes) noexcept {
    if (set_bytes != sizeof(std::uint64_t)) return -EINVAL;
    std::uint64_t mask = 0;
    std::memcpy(&mask, &context.uc_sigmask, sizeof mask);   // the kernel's part of glibc's sigset_t
    const std::uint64_t previous = mask;
    if (set != nullptr) {
        switch (how) {
            case SIG_BLOCK: mask |= *set; break;
            case SIG_UNBLOCK: mask &= ~*set; break;
            case SIG_SETMASK: mask = *set; break;
            default: return -EINVAL;
        }
        mask &= ~((std::uint64_t{1} << (SIGSYS - 1)) | (std::uint64_t{1} << (SIGKILL - 1)) |
                  (std::uint64_t{1} << (SIGSTOP - 1)));
        std::memcpy(&context.uc_sigmask, &mask, sizeof mask);
    }
    if (old != nullptr) *old = previous;
    return 0;
}

// Runs on the thread whose call was trapped. In the window: counts it and makes it return -ENOSYS, so a system
// call on the hot path shows up as a count instead of running. Outside: makes the call and returns its result.
void on_trapped_syscall(int, siginfo_t* info, void* raw_context) {
    auto& context = *static_cast<ucontext_t*>(raw_context);
    long result = -ENOSYS;
    const long number = info->si_syscall;
    if (tl_counting) {
        if (tl_counts.syscalls++ == 0) tl_counts.first_syscall = number;
    } else if (info->si_arch == kAuditArch) {
#if defined(__x86_64__)
        const greg_t* r = context.uc_mcontext.gregs;
        const long a[6] = {r[REG_RDI], r[REG_RSI], r[REG_RDX], r[REG_R10], r[REG_R8], r[REG_R9]};
#elif defined(__aarch64__)
        const auto* r = context.uc_mcontext.regs;
        const long a[6] = {static_cast<long>(r[0]), static_cast<long>(r[1]), static_cast<long>(r[2]),
                           static_cast<long>(r[3]), static_cast<long>(r[4]), static_cast<long>(r[5])};
#endif
        if (number == __NR_rt_sigprocmask) {
            result = change_saved_mask(context, a[0], reinterpret_cast<const std::uint64_t*>(a[1]),
                                       reinterpret_cast<std::uint64_t*>(a[2]), static_cast<unsigned long>(a[3]));
        } else if (number == __NR_clone || number == __NR_clone3
#ifdef __NR_fork
                   || number == __NR_fork || number == __NR_vfork
#endif
        ) {
            result = -ENOSYS;   // a child would start inside this handler: measuring threads start no threads
        } else {
            result = cf_hot_path_reissue(number, a[0], a[1], a[2], a[3], a[4], a[5]);
        }
    }
#if defined(__x86_64__)
    context.uc_mcontext.gregs[REG_RAX] = result;
#elif defined(__aarch64__)
    context.uc_mcontext.regs[0] = static_cast<unsigned long long>(result);
#endif
}

// Every system call of the calling thread traps from now on, except returning from the handler, ending the
// thread, and the handler's own calls. Threads that exist already are unaffected (no TSYNC). 0 or -errno.
int trap_syscalls_of_this_thread() noexcept {
    const auto reissue = reinterpret_cast<std::uint64_t>(cf_hot_path_reissue_return);
    const auto ip_low = static_cast<std::uint32_t>(reissue);
    const auto ip_high = static_cast<std::uint32_t>(reissue >> 32);
    constexpr std::uint32_t kIpOffset = offsetof(seccomp_data, instruction_pointer);   // little-endian: low first
    sock_filter filter[] = {
        /* 0 */ BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(seccomp_data, arch)),
        /* 1 */ BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, kAuditArch, 0, 8),   // another ABI (x32, ia32): trap
        /* 2 */ BPF_STMT(BPF_LD | BPF_W | BPF_ABS, kIpOffset),
        /* 3 */ BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, ip_low, 0, 2),
        /* 4 */ BPF_STMT(BPF_LD | BPF_W | BPF_ABS, kIpOffset + 4),
        /* 5 */ BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, ip_high, 5, 0),      // the handler's own call: allow
        /* 6 */ BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(seccomp_data, nr)),
        /* 7 */ BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_rt_sigreturn, 3, 0),
        /* 8 */ BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_exit, 2, 0),
        /* 9 */ BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_exit_group, 1, 0),
        /* 10 */ BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_TRAP),
        /* 11 */ BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
    };
    sock_fprog program{static_cast<unsigned short>(sizeof(filter) / sizeof(filter[0])), filter};
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) return -errno;
    if (syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, &program) != 0) return -errno;
    return 0;
}

// Whether this process can trap system calls: 0, or the -errno installing a filter failed with. Probed once, on a
// thread of its own, after installing the SIGSYS handler.
int syscall_trap_status() {
    static const int status = [] {
        struct sigaction action {};
        action.sa_sigaction = on_trapped_syscall;
        action.sa_flags = SA_SIGINFO;
        sigemptyset(&action.sa_mask);
        if (sigaction(SIGSYS, &action, nullptr) != 0) return -errno;
        int probe = 0;
        std::thread([&] { probe = trap_syscalls_of_this_thread(); }).join();
        return probe;
    }();
    return status;
}

// Installing a filter fails like this where seccomp does not exist for us (qemu-user: EINVAL; a kernel without
// it: EINVAL or ENOSYS; a container's own policy: EACCES/EPERM). Those runs count no system calls and say so.
bool trap_unavailable(int status) {
    return status == -EINVAL || status == -ENOSYS || status == -EACCES || status == -EPERM;
}

// ---- the measured window ----

struct WindowCounts {
    HookCounts counts;
    bool syscalls_trapped = false;   // the filter was on: counts.syscalls means something
    int trap_status = 0;             // what installing it returned
};

// On a measuring thread, after its set-up: traps its system calls (for the rest of its life), then counts.
void open_window(WindowCounts& window) noexcept {
    window = WindowCounts{};
    if (syscall_trap_status() == 0) {
        window.trap_status = trap_syscalls_of_this_thread();
        window.syscalls_trapped = window.trap_status == 0;
    }
    tl_counts = HookCounts{};
    tl_counting = true;
}
void close_window(WindowCounts& window) noexcept {
    tl_counting = false;
    window.counts = tl_counts;
}

// A new thread's first malloc gives it an arena (glibc maps one): done before its filter, where a mapping would
// fail. Allocations in the window (the deliberate ones) then come from that arena.
void prepare_measuring_thread() noexcept {
    void* block = std::malloc(64);
    if (block != nullptr) *static_cast<char*>(block) = 0;   // written, so escape() reads nothing uninitialised
    escape(block);
    std::free(block);
}

// Runs `body` on a thread of its own and waits for it: a thread that traps system calls keeps trapping them.
template <class Body>
void on_measuring_thread(Body&& body) {
    (void)syscall_trap_status();   // probed from here, not from a thread about to be measured
    std::thread thread([&body] {
        prepare_measuring_thread();
        body();
    });
    thread.join();
}

// A window whose system calls were not trapped: says why (once per run), or fails unless seccomp is unavailable.
void explain_untrapped(const WindowCounts& window) {
    static bool said = false;
    const int status = syscall_trap_status() != 0 ? syscall_trap_status() : window.trap_status;
    const std::string reason = std::strerror(-status);
    if (trap_unavailable(status)) {
        if (said) return;
        said = true;
        const char* wrapper = std::getenv("CF_TEST_WRAPPER");
        const std::string text = "system calls are not counted in this run: seccomp is unavailable here (" + reason +
                                 "; CF_TEST_WRAPPER='" + std::string(wrapper != nullptr ? wrapper : "") +
                                 "'); allocations and locks are counted";
        MESSAGE(text);
    } else {
        const std::string text = "installing the seccomp filter failed: " + reason;
        FAIL(text);
    }
}

void check_no_counts(const WindowCounts& window) {
    CHECK(window.counts.allocations == 0);
    CHECK(window.counts.locks == 0);
    if (window.syscalls_trapped) {
        CHECK_MESSAGE(window.counts.syscalls == 0, "first system call trapped: number ", window.counts.first_syscall);
    } else {
        explain_untrapped(window);
    }
}

// ---- messages: number n has sequence n and a payload made from n ----

using namespace cf;
using namespace cf::bus;

constexpr std::uint64_t kMessages = 1'000'000;   // measured, after message 0 (the set-up)
constexpr std::uint32_t kMaxBytes = 64;
constexpr std::uint32_t kDepth = 256;
constexpr std::uint32_t kBatch = 32;

// 8 .. kMaxBytes bytes: n itself, then bytes that depend on n and their offset.
std::uint32_t length_of(std::uint64_t n) noexcept { return 8 + static_cast<std::uint32_t>(n % (kMaxBytes - 7)); }
void write_payload(std::byte* out, std::uint64_t n) noexcept {
    std::memcpy(out, &n, sizeof n);
    const std::uint32_t length = length_of(n);
    for (std::uint32_t i = 8; i < length; ++i) out[i] = static_cast<std::byte>(n * 131 + i);
}
bool intact(const std::byte* data, std::uint32_t length, std::uint64_t n) noexcept {
    if (length != length_of(n)) return false;
    std::uint64_t head = 0;
    std::memcpy(&head, data, sizeof head);
    if (head != n) return false;
    for (std::uint32_t i = 8; i < length; ++i) {
        if (data[i] != static_cast<std::byte>(n * 131 + i)) return false;
    }
    return true;
}

// What one subscriber saw: every message in order, intact, with increasing stamps. No allocation: plain fields.
struct Arrivals {
    std::uint64_t next = 0;              // the message expected next
    std::uint64_t bad = 0;               // wrong sequence or payload
    std::uint64_t first_bad = UINT64_MAX;
    std::uint64_t stamps_not_increasing = 0;
    HlcStamp last_stamp{};

    void take(const std::byte* data, std::uint32_t length, std::uint64_t sequence, HlcStamp stamp) noexcept {
        if (sequence != next || !intact(data, length, next)) {
            if (bad++ == 0) first_bad = next;
        }
        if (!(last_stamp < stamp)) ++stamps_not_increasing;
        last_stamp = stamp;
        ++next;
    }
    void take(const Message& m) noexcept { take(m.data, m.length, m.sequence, m.stamp); }
};

void check_arrivals(const Arrivals& arrivals) {
    CHECK(arrivals.next == kMessages + 1);   // message 0 and the measured ones
    CHECK_MESSAGE(arrivals.bad == 0, "first bad message: ", arrivals.first_bad);
    CHECK(arrivals.stamps_not_increasing == 0);
}

enum class Mode { publish_poll, claim_receive, batch_poll };
const char* name_of(Mode mode) {
    switch (mode) {
        case Mode::publish_poll: return "publish + poll";
        case Mode::claim_receive: return "claim/commit + receive/release";
        case Mode::batch_poll: return "publish_batch + poll";
    }
    return "?";
}

// Everything one run leaves for the main thread to check.
struct TopicRun {
    WindowCounts window;
    Arrivals arrivals[2];
    std::uint64_t send_failures = 0;     // a publish, claim or commit that did not succeed, or a short batch
    int first_failure = 0;
};

// Publishers and subscribers of one topic, all on the calling thread.
struct Endpoints {
    Publisher* publishers;
    int publisher_count;
    Subscriber* subscribers;
    int subscriber_count;
};

// Messages first .. first + count - 1 (count <= kBatch), laid out as publish_batch takes them.
struct BatchPayloads {
    std::byte payloads[kBatch][kMaxBytes];
    const void* data[kBatch];
    std::uint32_t lengths[kBatch];

    void fill(std::uint64_t first, std::uint32_t count) noexcept {
        for (std::uint32_t i = 0; i < count; ++i) {
            write_payload(payloads[i], first + i);
            data[i] = payloads[i];
            lengths[i] = length_of(first + i);
        }
    }
};

// Publishes messages first .. first + count - 1 (count <= kMaxPollBatch) the way `mode` says, spreading them over
// the publishers. False (and counted) on any failure.
bool send_burst(Endpoints& e, Mode mode, std::uint64_t first, std::uint32_t count, TopicRun& run) noexcept {
    auto failed = [&](int status) {
        if (run.send_failures++ == 0) run.first_failure = status;
        return false;
    };
    if (mode == Mode::batch_poll) {
        BatchPayloads batch;
        batch.fill(first, count);
        Publisher& publisher = e.publishers[(first / kBatch) % static_cast<std::uint64_t>(e.publisher_count)];
        const int published = publisher.publish_batch(batch.data, batch.lengths, count);
        return published == static_cast<int>(count) || failed(published);
    }
    for (std::uint64_t n = first; n < first + count; ++n) {
        Publisher& publisher = e.publishers[n % static_cast<std::uint64_t>(e.publisher_count)];
        if (mode == Mode::publish_poll) {
            std::byte payload[kMaxBytes];
            write_payload(payload, n);
            if (const int status = publisher.publish(payload, length_of(n)); status != 0) return failed(status);
        } else {
            std::byte* slot = nullptr;
            if (const int status = publisher.try_claim(length_of(n), slot); status != 0) return failed(status);
            write_payload(slot, n);
            if (const int status = publisher.commit(length_of(n)); status != 0) return failed(status);
        }
    }
    return true;
}

// Reads every subscriber until it has nothing more.
void drain(Endpoints& e, Mode mode, TopicRun& run) noexcept {
    for (int s = 0; s < e.subscriber_count; ++s) {
        Arrivals& arrivals = run.arrivals[s];
        if (mode == Mode::claim_receive) {
            Message batch[kMaxPollBatch];
            for (;;) {
                const std::uint32_t n = e.subscribers[s].receive(batch, kMaxPollBatch);
                for (std::uint32_t i = 0; i < n; ++i) arrivals.take(batch[i]);
                e.subscribers[s].release();
                if (n == 0) break;
            }
        } else {
            while (e.subscribers[s].poll(kMaxPollBatch, [&](const Message& m) { arrivals.take(m); }) != 0) {
            }
        }
    }
}

// Message 0 (set-up: binds the thread's clock lane), then the window, then kMessages messages in bursts, each
// read by every subscriber before the next.
void run_alternating(Endpoints& e, Mode mode, TopicRun& run) noexcept {
    if (send_burst(e, mode == Mode::batch_poll ? Mode::publish_poll : mode, 0, 1, run)) drain(e, mode, run);
    open_window(run.window);
    std::uint64_t n = 1;
    for (std::uint32_t round = 0; n <= kMessages; ++round) {
        std::uint32_t burst = mode == Mode::batch_poll ? kBatch : 1 + round % kMaxPollBatch;
        if (burst > kMessages + 1 - n) burst = static_cast<std::uint32_t>(kMessages + 1 - n);
        if (!send_burst(e, mode, n, burst, run)) break;
        drain(e, mode, run);
        n += burst;
    }
    close_window(run.window);
}

// Runs the endpoints' traffic in a measured window on a thread of its own, then checks that nothing was counted
// and that every subscriber got every message, in order, none lost or corrupt.
void run_and_check(Endpoints& endpoints, Mode mode) {
    TopicRun run;
    on_measuring_thread([&] { run_alternating(endpoints, mode, run); });
    check_no_counts(run.window);
    CHECK_MESSAGE(run.send_failures == 0, "first failure: ", run.first_failure);
    for (int s = 0; s < endpoints.subscriber_count; ++s) {
        CAPTURE(s);
        check_arrivals(run.arrivals[s]);
        CHECK(endpoints.subscribers[s].lost() == 0);
        CHECK(endpoints.subscribers[s].corrupt() == 0);
    }
}

}  // namespace

TEST_CASE("hot path: the hooks count a malloc, a lock and a system call made on purpose") {
    WindowCounts window;
    long getpid_result = 0;
    int getpid_errno = 0;
    on_measuring_thread([&] {
        pthread_mutex_t mutex = PTHREAD_MUTEX_INITIALIZER;
        pthread_rwlock_t rwlock = PTHREAD_RWLOCK_INITIALIZER;
        pthread_spinlock_t spin;
        pthread_spin_init(&spin, PTHREAD_PROCESS_PRIVATE);
        std::mutex std_mutex;
        open_window(window);
        // Allocations: 6 that allocate, 5 frees.
        void* a = std::malloc(24);
        escape(a);
        a = std::realloc(a, 4000);
        escape(a);
        void* b = std::calloc(3, 8);
        escape(b);
        void* c = std::aligned_alloc(64, 128);
        escape(c);
        void* d = nullptr;
        const int memalign_status = posix_memalign(&d, 64, 64);
        escape(d);
        auto* e = new std::uint64_t(7);
        escape(e);
        std::free(a);
        std::free(b);
        std::free(c);
        std::free(d);
        delete e;
        // Locks: 5 acquisitions, unlocks not counted.
        pthread_mutex_lock(&mutex);
        pthread_mutex_unlock(&mutex);
        if (pthread_mutex_trylock(&mutex) == 0) pthread_mutex_unlock(&mutex);
        pthread_rwlock_rdlock(&rwlock);
        pthread_rwlock_unlock(&rwlock);
        pthread_spin_lock(&spin);
        pthread_spin_unlock(&spin);
        std_mutex.lock();   // through libstdc++'s gthread layer
        std_mutex.unlock();
        // A system call: through syscall() so that no cached pid answers it.
        errno = 0;
        getpid_result = syscall(SYS_getpid);
        getpid_errno = errno;
        close_window(window);
        if (memalign_status != 0) window.counts.allocations = 0;   // makes the check below fail
    });
    CHECK(window.counts.allocations == 11);
    CHECK(window.counts.locks == 5);
    if (window.syscalls_trapped) {
        CHECK(window.counts.syscalls == 1);
        CHECK(window.counts.first_syscall == SYS_getpid);
        CHECK(getpid_result == -1);   // trapped, so it failed instead of running
        CHECK(getpid_errno == ENOSYS);
    } else {
        CHECK(getpid_result == getpid());
        explain_untrapped(window);
    }

    // Outside the window nothing is counted, and a trapped system call runs as usual.
    on_measuring_thread([&] {
        open_window(window);
        close_window(window);
        void* a = std::malloc(24);
        escape(a);
        std::free(a);
        std::mutex m;
        m.lock();
        m.unlock();
        getpid_result = syscall(SYS_getpid);
    });
    CHECK(window.counts.allocations == 0);
    CHECK(window.counts.locks == 0);
    CHECK(window.counts.syscalls == 0);
    CHECK(getpid_result == getpid());
}

TEST_CASE("hot path: 10^6 messages through every topic kind and way of publishing, on one thread") {
    for (const test::KindCase& kind : test::every_kind(kMaxBytes, kDepth)) {
        for (const Mode mode : {Mode::publish_poll, Mode::claim_receive, Mode::batch_poll}) {
            const std::string what = std::string(kind.name) + ", " + name_of(mode);
            INFO(what);
            test::TopicBlock block(kind.config);
            HybridLogicalClock clock(test::clock_config(3));
            Publisher publishers[2];
            Subscriber subscribers[2];
            Endpoints endpoints{publishers, static_cast<int>(kind.config.max_publishers), subscribers,
                                static_cast<int>(kind.config.max_subscribers)};
            for (int p = 0; p < endpoints.publisher_count; ++p) {
                REQUIRE(Publisher::open(block.topic, clock, publishers[p]) == 0);
            }
            for (int s = 0; s < endpoints.subscriber_count; ++s) {
                REQUIRE(Subscriber::open(block.topic, subscribers[s]) == 0);
                subscribers[s].set_clock(&clock);   // the receive rule: each delivery is observed by the lane
            }
            run_and_check(endpoints, mode);
        }
    }
}

TEST_CASE("hot path: 10^6 messages through every kind of shared-memory topic (SharedTopic), two mappings") {
    // The publishers write through one mapping of the segment and the subscribers read through another, as two
    // processes would: the shared path is the in-process one on other memory, plus the ledger and process table,
    // which only open and close touch.
    for (const test::KindCase& kind : test::every_kind(kMaxBytes, kDepth)) {
        for (const Mode mode : {Mode::publish_poll, Mode::claim_receive, Mode::batch_poll}) {
            const std::string what = std::string(kind.name) + ", " + name_of(mode);
            INFO(what);
            const std::string name = "hot" + std::to_string(::getpid()) + "." + std::string(1, kind.name[0]) +
                                     std::to_string(kind.config.max_publishers * 10 + kind.config.max_subscribers) +
                                     std::to_string(static_cast<int>(mode));
            TopicConfig config = kind.config;
            config.name = name.c_str();
            SharedTopic writers, readers;
            REQUIRE(SharedTopic::open(config, 0600, writers) == 0);
            REQUIRE(SharedTopic::open(config, 0600, readers) == 0);
            HybridLogicalClock clock(test::clock_config(5));
            Publisher publishers[2];
            Subscriber subscribers[2];
            Endpoints endpoints{publishers, static_cast<int>(config.max_publishers), subscribers,
                                static_cast<int>(config.max_subscribers)};
            for (int p = 0; p < endpoints.publisher_count; ++p) {
                REQUIRE(writers.open_publisher(clock, publishers[p]) == 0);
            }
            for (int s = 0; s < endpoints.subscriber_count; ++s) {
                REQUIRE(readers.open_subscriber(subscribers[s]) == 0);
                subscribers[s].set_clock(&clock);
            }
            run_and_check(endpoints, mode);
            for (Publisher& publisher : publishers) writers.close_publisher(publisher);
            for (Subscriber& subscriber : subscribers) readers.close_subscriber(subscriber);
            CHECK(writers.unlink() == 0);
        }
    }
}

TEST_CASE("hot path: 10^6 messages on SPSC between a publisher thread and a subscriber thread") {
    // A deeper ring than above: fewer turns of waiting for the other thread on a busy machine.
    test::TopicBlock block(test::config_of(kMaxBytes, 16 * kDepth));
    HybridLogicalClock clock(test::clock_config(4));
    Publisher publisher;
    Subscriber subscriber;
    REQUIRE(Publisher::open(block.topic, clock, publisher) == 0);
    REQUIRE(Subscriber::open(block.topic, subscriber) == 0);
    subscriber.set_clock(&clock);

    WindowCounts publisher_window;
    WindowCounts subscriber_window;
    Arrivals arrivals;
    std::uint64_t full = 0;                   // publishes refused while the subscriber lagged (not failures)
    int publish_failure = 0;
    std::atomic<bool> publisher_stopped{false};
    (void)syscall_trap_status();

    std::thread subscriber_thread([&] {
        prepare_measuring_thread();
        auto take = [&](const Message& m) { arrivals.take(m); };
        while (subscriber.poll(1, take) == 0) platform::cpu_relax();   // message 0: set-up
        open_window(subscriber_window);
        while (arrivals.next <= kMessages) {
            if (subscriber.poll(kMaxPollBatch, take) == 0) {
                if (publisher_stopped.load(std::memory_order_acquire) && subscriber.poll(kMaxPollBatch, take) == 0) {
                    break;   // it failed: nothing more is coming
                }
                platform::cpu_relax();
            }
        }
        close_window(subscriber_window);
    });
    std::thread publisher_thread([&] {
        prepare_measuring_thread();
        std::byte payload[kMaxBytes];
        write_payload(payload, 0);
        publish_failure = publisher.publish(payload, length_of(0));   // set-up
        if (publish_failure == 0) {
            open_window(publisher_window);
            for (std::uint64_t n = 1; n <= kMessages; ++n) {
                write_payload(payload, n);
                int status = 0;
                while ((status = publisher.publish(payload, length_of(n))) == -EAGAIN) {
                    ++full;
                    platform::cpu_relax();
                }
                if (status != 0) {
                    publish_failure = status;
                    break;
                }
            }
            close_window(publisher_window);
        }
        publisher_stopped.store(true, std::memory_order_release);
    });
    publisher_thread.join();
    subscriber_thread.join();

    CHECK(publish_failure == 0);
    {
        INFO("publisher thread");
        check_no_counts(publisher_window);
    }
    {
        INFO("subscriber thread");
        check_no_counts(subscriber_window);
    }
    check_arrivals(arrivals);
    MESSAGE("publishes refused while the subscriber lagged (retried): ", full);
}

TEST_CASE("hot path: 10^6 messages through the C API on SPSC") {
    cf_engine_config_t engine_config;
    cf_engine_config_init(&engine_config);
    engine_config.pool_bytes_per_class = 64 * 1024;
    engine_config.prefer_hugepages = 0;
    cf_engine_t* engine = nullptr;
    REQUIRE(cf_engine_create(&engine_config, &engine) == 0);
    cf_topic_config_t topic_config;
    cf_topic_config_init(&topic_config);
    topic_config.name = "hot.path.capi";
    topic_config.max_message_bytes = kMaxBytes;
    topic_config.depth = kDepth;
    cf_topic_t* topic = nullptr;
    REQUIRE(cf_topic_create(engine, &topic_config, &topic) == 0);
    cf_publisher_t* publisher = nullptr;
    cf_subscriber_t* subscriber = nullptr;
    REQUIRE(cf_publisher_create(topic, &publisher) == 0);
    REQUIRE(cf_subscriber_create(topic, &subscriber) == 0);

    // Bursts rotate through publish, claim/commit and publish_batch; each burst is polled and released.
    WindowCounts window;
    Arrivals arrivals;
    int first_failure = 0;
    on_measuring_thread([&] {
        cf_message_t messages[CF_POLL_MAX];
        auto drain = [&] {
            for (;;) {
                const int n = cf_subscriber_poll(subscriber, messages, CF_POLL_MAX);
                if (n <= 0) {
                    if (n < 0 && first_failure == 0) first_failure = n;
                    break;
                }
                for (int i = 0; i < n; ++i) {
                    const cf_message_t& m = messages[i];
                    arrivals.take(static_cast<const std::byte*>(m.data), m.length, m.sequence,
                                  HlcStamp{m.stamp.word, m.stamp.node, m.stamp.lane});
                }
                if (const int status = cf_subscriber_release(subscriber); status != 0 && first_failure == 0) {
                    first_failure = status;
                }
            }
        };
        auto fail = [&](int status) {
            if (first_failure == 0) first_failure = status;
            return false;
        };
        auto send = [&](std::uint64_t first, std::uint32_t count, int way) {
            if (way == 2) {
                BatchPayloads batch;
                batch.fill(first, count);
                const int published = cf_publisher_publish_batch(publisher, batch.data, batch.lengths, count);
                return published == static_cast<int>(count) || fail(published);
            }
            for (std::uint64_t n = first; n < first + count; ++n) {
                if (way == 0) {
                    std::byte payload[kMaxBytes];
                    write_payload(payload, n);
                    if (const int status = cf_publisher_publish(publisher, payload, length_of(n)); status != 0) {
                        return fail(status);
                    }
                } else {
                    void* slot = nullptr;
                    if (const int status = cf_publisher_claim(publisher, length_of(n), &slot); status != 0) {
                        return fail(status);
                    }
                    write_payload(static_cast<std::byte*>(slot), n);
                    if (const int status = cf_publisher_commit(publisher, length_of(n)); status != 0) {
                        return fail(status);
                    }
                }
            }
            return true;
        };
        if (send(0, 1, 0)) drain();   // set-up
        open_window(window);
        std::uint64_t n = 1;
        for (std::uint32_t round = 0; n <= kMessages; ++round) {
            const int way = static_cast<int>(round % 3);
            std::uint32_t burst = way == 2 ? kBatch : 1 + round % CF_POLL_MAX;
            if (burst > kMessages + 1 - n) burst = static_cast<std::uint32_t>(kMessages + 1 - n);
            if (!send(n, burst, way)) break;
            drain();
            n += burst;
        }
        close_window(window);
    });
    check_no_counts(window);
    CHECK(first_failure == 0);
    check_arrivals(arrivals);

    REQUIRE(cf_subscriber_destroy(subscriber) == 0);
    REQUIRE(cf_publisher_destroy(publisher) == 0);
    REQUIRE(cf_topic_destroy(topic, 0) == 0);
    REQUIRE(cf_engine_destroy(engine) == 0);
}

TEST_CASE("hot path: 10^6 allocate/free pairs on the memory pool") {
    mem::PoolConfig config = mem::PoolConfig::powers_of_two(std::size_t{1} << 20);
    config.prefer_hugepages = false;
    std::unique_ptr<mem::Pool> pool;
    REQUIRE(mem::Pool::create(config, pool) == 0);

    // 48 blocks held at a time (more than a thread cache's 32, so caches refill and flush through the shared
    // lists), sizes 16 B .. 4 KiB from a fixed seed; each block carries its allocation number at both ends.
    constexpr int kHeld = 48;
    constexpr std::uint64_t kPairs = 1'000'000;
    struct Held {
        void* block;
        std::size_t bytes;
        std::uint64_t number;
    };
    WindowCounts window;
    std::uint64_t failed = 0, damaged = 0, misaligned = 0, allocated = 0, freed = 0;
    on_measuring_thread([&] {
        Held held[kHeld] = {};
        std::uint64_t random = 0x9e3779b97f4a7c15u;
        auto next = [&] {
            random ^= random << 13;
            random ^= random >> 7;
            random ^= random << 17;
            return random;
        };
        auto release = [&](Held& h) {
            std::uint64_t front = 0, back = 0;
            std::memcpy(&front, h.block, 8);
            std::memcpy(&back, static_cast<std::byte*>(h.block) + h.bytes - 8, 8);
            if (front != h.number || back != ~h.number) ++damaged;
            pool->free(h.block);
            ++freed;
            h.block = nullptr;
        };
        auto cycle = [&](std::uint64_t pairs) {
            for (std::uint64_t i = 0; i < pairs; ++i) {
                const std::uint64_t r = next();
                Held& h = held[r % kHeld];
                if (h.block != nullptr) release(h);
                h.bytes = 16 + (r >> 16) % (4096 - 15);
                h.number = allocated++;
                h.block = pool->allocate(h.bytes);
                if (h.block == nullptr) {
                    ++failed;
                    continue;
                }
                if (reinterpret_cast<std::uintptr_t>(h.block) % 64 != 0) ++misaligned;
                const std::uint64_t back = ~h.number;
                std::memcpy(h.block, &h.number, 8);
                std::memcpy(static_cast<std::byte*>(h.block) + h.bytes - 8, &back, 8);
            }
            for (Held& h : held) {
                if (h.block != nullptr) release(h);
            }
        };
        cycle(1000);   // set-up: binds the thread's cache
        allocated = freed = 0;
        open_window(window);
        cycle(kPairs);
        close_window(window);
    });
    check_no_counts(window);
    CHECK(allocated == kPairs);
    CHECK(freed == kPairs);
    CHECK(failed == 0);
    CHECK(damaged == 0);
    CHECK(misaligned == 0);
    mem::PoolStats stats;
    pool->stats(stats);
    CHECK(stats.total.in_use_blocks == 0);
    CHECK(stats.total.failed_allocations == 0);
    CHECK(stats.rejected_frees == 0);
}

#endif  // CF_HOT_PATH_SANITIZED
