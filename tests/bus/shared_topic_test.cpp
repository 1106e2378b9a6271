// Topics in shared memory, across fork(): messages between processes, a peer with another configuration refused,
// a peer killed with SIGKILL (its reader and its publisher place reclaimed, a claim it left uncommitted recovered),
// and a stale segment from an earlier run reset. Children report through their exit status only.
#include <doctest/doctest.h>

#include <csignal>
#include <ctime>
#include <cstdio>
#include <cstring>
#include <string>

#include <fcntl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "engine/bus/shared_topic.hpp"
#include "platform/os/last_error.hpp"

using namespace cf;
using namespace cf::bus;

namespace {

struct Name {
    std::string text;
    explicit Name(const char* what) {
        char buffer[64];
        std::snprintf(buffer, sizeof buffer, "t%d.%s", static_cast<int>(getpid()), what);
        text = buffer;
    }
    ~Name() {
        char segment[80];
        std::snprintf(segment, sizeof segment, "topic.%s", text.c_str());
        (void)ShmSegment::remove(segment);
    }
};

TopicConfig config_of(const Name& name, std::uint32_t depth, std::uint32_t publishers, std::uint32_t subscribers) {
    TopicConfig config;
    config.name = name.text.c_str();
    config.max_message_bytes = 64;
    config.depth = depth;
    config.max_publishers = publishers;
    config.max_subscribers = subscribers;
    return config;
}

HybridLogicalClock& clock_for_test() {
    static HybridLogicalClock clock{HybridLogicalClock::Config{}};
    return clock;
}

int wait_status(pid_t child) {
    int status = 0;
    if (waitpid(child, &status, 0) != child) return -1;
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

// In a child: open the topic and publish `count` numbered messages (spinning while full). Exit status 0 if all
// went out.
[[noreturn]] void publish_numbers(const TopicConfig& config, std::uint64_t count) {
    SharedTopic shared;
    if (SharedTopic::open(config, 0600, shared) != 0 || shared.created()) _exit(10);
    Publisher publisher;
    if (shared.open_publisher(clock_for_test(), publisher) != 0) _exit(11);
    for (std::uint64_t i = 0; i < count;) {
        const int status = publisher.publish(&i, sizeof i);
        if (status == 0) ++i;
        else if (status != -EAGAIN) _exit(12);
    }
    shared.close_publisher(publisher);
    _exit(0);
}

}  // namespace

TEST_CASE("two processes: every message arrives once, in order, through the shared segment") {
    const Name name("pipe");
    const TopicConfig config = config_of(name, 64, 1, 1);
    SharedTopic shared;
    REQUIRE(SharedTopic::open(config, 0600, shared) == 0);
    CHECK(shared.created());
    struct stat info{};
    REQUIRE(fstat(shared.segment().fd(), &info) == 0);
    CHECK((info.st_mode & 0777) == 0600);
    Subscriber subscriber;
    REQUIRE(shared.open_subscriber(subscriber) == 0);

    constexpr std::uint64_t kCount = 200000;
    const pid_t child = fork();
    REQUIRE(child >= 0);
    if (child == 0) publish_numbers(config, kCount);
    std::uint64_t expected = 0, disorder = 0, last_sequence = 0;
    HlcStamp last_stamp{};
    bool stamps_increase = true;
    int child_status = -1;
    auto take = [&](const Message& m) {
        std::uint64_t value = 0;
        std::memcpy(&value, m.data, sizeof value);
        if (value != expected || m.length != sizeof value || m.sequence != expected) ++disorder;
        if (expected != 0 && !(last_stamp < m.stamp)) stamps_increase = false;
        last_stamp = m.stamp;
        last_sequence = m.sequence;
        ++expected;
    };
    while (expected < kCount) {
        if (subscriber.poll(32, take) != 0) continue;
        // Nothing new: if the child has exited (early, on a failure), take what it left and stop waiting.
        if (waitpid(child, &child_status, WNOHANG) == child) {
            while (subscriber.poll(32, take) != 0) {
            }
            break;
        }
    }
    CHECK(expected == kCount);
    if (child_status == -1) CHECK(wait_status(child) == 0);
    else CHECK((WIFEXITED(child_status) && WEXITSTATUS(child_status) == 0));
    CHECK(disorder == 0);
    CHECK(stamps_increase);
    CHECK(last_sequence == kCount - 1);
    shared.close_subscriber(subscriber);
    CHECK(shared.unlink() == 0);
}

TEST_CASE("a peer with another configuration is refused with a clear error") {
    const Name name("mismatch");
    SharedTopic first;
    REQUIRE(SharedTopic::open(config_of(name, 64, 1, 1), 0600, first) == 0);
    SharedTopic second;
    CHECK(SharedTopic::open(config_of(name, 128, 1, 1), 0600, second) == -EPROTO);
    CHECK(std::string(platform::last_error_message()).find("another configuration") != std::string::npos);
    CHECK_FALSE(second.valid());
    // The same configuration attaches (as another process would; the registry entry is per SharedTopic).
    CHECK(SharedTopic::open(config_of(name, 64, 1, 1), 0600, second) == 0);
    CHECK_FALSE(second.created());
    // A segment narrower than the mode asked for is accepted (0600 within 0644); wider ones are not (see below).
    CHECK(SharedTopic::open(config_of(name, 64, 1, 1), 0644, second) == 0);
    CHECK(first.unlink() == 0);
}

TEST_CASE("a subscriber process killed with SIGKILL no longer holds the publisher back") {
    const Name name("deadreader");
    const TopicConfig config = config_of(name, 8, 1, 2);
    SharedTopic shared;
    REQUIRE(SharedTopic::open(config, 0600, shared) == 0);
    int ready[2];
    REQUIRE(pipe(ready) == 0);
    const pid_t child = fork();
    REQUIRE(child >= 0);
    if (child == 0) {
        SharedTopic mine;
        Subscriber subscriber;
        if (SharedTopic::open(config, 0600, mine) != 0 || mine.open_subscriber(subscriber) != 0) _exit(10);
        const char byte = 1;
        if (write(ready[1], &byte, 1) != 1) _exit(11);
        for (;;) pause();   // never reads: holds back-pressure until killed
    }
    char byte = 0;
    REQUIRE(read(ready[0], &byte, 1) == 1);
    Publisher publisher;
    REQUIRE(shared.open_publisher(clock_for_test(), publisher) == 0);
    for (int i = 0; i < 8; ++i) CHECK(publisher.publish(&i, sizeof i) == 0);
    CHECK(publisher.publish(&byte, 1) == -EAGAIN);   // the child's reader is a lap behind
    CHECK(shared.subscribers() == 1);

    MaintainReport report;
    REQUIRE(shared.maintain(1'000'000'000, report) == 0);
    CHECK(report.dead_processes == 0);               // alive: nothing reclaimed
    REQUIRE(kill(child, SIGKILL) == 0);
    CHECK(wait_status(child) == 128 + SIGKILL);
    REQUIRE(shared.maintain(1'000'000'000, report) == 0);
    CHECK(report.dead_processes == 1);
    CHECK(report.readers_removed == 1);
    CHECK(shared.subscribers() == 0);
    CHECK(publisher.publish(&byte, 1) == 0);         // flows again
    REQUIRE(shared.maintain(1'000'000'000, report) == 0);
    CHECK(report.dead_processes == 0);               // reported once
    shared.close_publisher(publisher);
    close(ready[0]);
    close(ready[1]);
    CHECK(shared.unlink() == 0);
}

TEST_CASE("many publishers: a publisher killed between claim and commit is recovered by the subscriber") {
    for (const std::uint32_t subscribers : {1u, 2u}) {   // MPSC; multi-writer broadcast
        CAPTURE(subscribers);
        const Name name(subscribers == 1 ? "deadclaim" : "deadclaimbc");
        const TopicConfig config = config_of(name, 16, 2, subscribers);
        SharedTopic shared;
        REQUIRE(SharedTopic::open(config, 0600, shared) == 0);
        Subscriber subscriber;
        REQUIRE(shared.open_subscriber(subscriber) == 0);
        const pid_t child = fork();
        REQUIRE(child >= 0);
        if (child == 0) {
            SharedTopic mine;
            Publisher publisher;
            std::byte* data = nullptr;
            if (SharedTopic::open(config, 0600, mine) != 0 || mine.open_publisher(clock_for_test(), publisher) != 0 ||
                publisher.try_claim(8, data) != 0) {
                _exit(10);
            }
            raise(SIGKILL);   // dies holding position 0
        }
        CHECK(wait_status(child) == 128 + SIGKILL);
        Publisher survivor;
        REQUIRE(shared.open_publisher(clock_for_test(), survivor) == 0);
        const std::uint64_t value = 42;
        REQUIRE(survivor.publish(&value, sizeof value) == 0);   // position 1, behind the dead claim
        int seen = 0;
        CHECK(subscriber.poll(8, [&](const Message&) { ++seen; }) == 0);
        CHECK(subscriber.recover_stalled_claim(ProcessTable::monotonic_ns(), 1'000'000'000) == 1);   // dead pid
        CHECK(subscriber.recovered_claims() == 1);
        std::uint64_t got = 0;
        CHECK(subscriber.poll(8, [&](const Message& m) {
            ++seen;
            std::memcpy(&got, m.data, sizeof got);
        }) == 2);   // the reclaimed position (not delivered) and the message
        CHECK(seen == 1);
        CHECK(got == 42);
        CHECK(subscriber.recover_stalled_claim(ProcessTable::monotonic_ns(), 1'000'000'000) == 0);
        MaintainReport report;
        REQUIRE(shared.maintain(1'000'000'000, report) == 0);
        CHECK(report.dead_processes == 1);
        CHECK(shared.publishers() == 1);   // the survivor only
        shared.close_publisher(survivor);
        shared.close_subscriber(subscriber);
        CHECK(shared.unlink() == 0);
    }
}

TEST_CASE("a segment left by a process that died is recognised as stale and reset") {
    const Name name("stale");
    const TopicConfig config = config_of(name, 8, 1, 1);
    const pid_t child = fork();
    REQUIRE(child >= 0);
    if (child == 0) {
        SharedTopic shared;
        Publisher publisher;
        if (SharedTopic::open(config, 0600, shared) != 0 || !shared.created() ||
            shared.open_publisher(clock_for_test(), publisher) != 0) {
            _exit(10);
        }
        const int value = 7;
        if (publisher.publish(&value, sizeof value) != 0) _exit(11);
        _exit(0);   // no cleanup: the segment stays behind, naming a dead process
    }
    REQUIRE(wait_status(child) == 0);
    SharedTopic shared;
    REQUIRE(SharedTopic::open(config, 0600, shared) == 0);
    CHECK(shared.created());
    CHECK(shared.was_reset());
    Subscriber subscriber;
    REQUIRE(shared.open_subscriber(subscriber) == 0);
    CHECK(subscriber.poll(8, [](const Message&) {}) == 0);   // fresh: the old message is gone
    CHECK(shared.publishers() == 0);
    shared.close_subscriber(subscriber);
    CHECK(shared.unlink() == 0);
}

namespace {

// In a child: attach to the topic, say so on `ready`, then take and give back endpoint places as fast as it can
// until killed. A kill can land at any instruction of open/close, including inside SharedTopic::open itself.
[[noreturn]] void churn_endpoints(const TopicConfig& config, int ready) {
    SharedTopic mine;
    if (SharedTopic::open(config, 0600, mine) != 0) _exit(10);
    const char byte = 1;
    if (write(ready, &byte, 1) != 1) _exit(11);
    for (;;) {
        Publisher publisher;
        if (mine.open_publisher(clock_for_test(), publisher) == 0) mine.close_publisher(publisher);
        Subscriber subscriber;
        if (mine.open_subscriber(subscriber) == 0) mine.close_subscriber(subscriber);
    }
}

// In a child: hold one publisher until killed (a live endpoint the ledger must keep counting).
[[noreturn]] void hold_publisher(const TopicConfig& config, int ready) {
    SharedTopic mine;
    Publisher publisher;
    if (SharedTopic::open(config, 0600, mine) != 0 || mine.open_publisher(clock_for_test(), publisher) != 0) _exit(10);
    const char byte = 1;
    if (write(ready, &byte, 1) != 1) _exit(11);
    for (;;) pause();
}

}  // namespace

TEST_CASE("endpoint places stay right when a process is killed at any instruction of create/destroy") {
    // Bounded in rounds and in time; every round kills a churning child after a random delay (fixed seed).
    constexpr int kRounds = 150;
    std::uint64_t random = 0x9e3779b97f4a7c15ULL;
    auto next_random = [&random] {
        random ^= random << 13;
        random ^= random >> 7;
        random ^= random << 17;
        return random;
    };
    for (const std::uint32_t places : {1u, 2u}) {   // SPSC (one place each: a leak blocks everyone); broadcast
        CAPTURE(places);
        const std::uint64_t give_up_ns = ProcessTable::monotonic_ns() + 10'000'000'000ULL;   // per topic kind
        const Name name(places == 1 ? "churn1" : "churn2");
        const TopicConfig config = config_of(name, 8, places, places);
        SharedTopic shared;
        REQUIRE(SharedTopic::open(config, 0600, shared) == 0);
        int ready[2];
        REQUIRE(pipe(ready) == 0);
        char byte = 0;
        // With two places, a live process holds one publisher throughout: it must stay counted.
        const std::uint32_t live_publishers = places - 1;
        pid_t holder = -1;
        if (live_publishers != 0) {
            holder = fork();
            REQUIRE(holder >= 0);
            if (holder == 0) hold_publisher(config, ready[1]);
            REQUIRE(read(ready[0], &byte, 1) == 1);
        }
        int rounds = 0, wrong_counts = 0, refused = 0, undelivered = 0;
        for (; rounds < kRounds && ProcessTable::monotonic_ns() < give_up_ns; ++rounds) {
            const pid_t child = fork();
            REQUIRE(child >= 0);
            if (child == 0) churn_endpoints(config, ready[1]);
            REQUIRE(read(ready[0], &byte, 1) == 1);
            const timespec delay{0, static_cast<long>(next_random() % 400'000)};
            nanosleep(&delay, nullptr);
            REQUIRE(kill(child, SIGKILL) == 0);
            REQUIRE(wait_status(child) == 128 + SIGKILL);

            MaintainReport report;
            REQUIRE(shared.maintain(1'000'000'000, report) == 0);
            if (shared.publishers() != live_publishers || shared.subscribers() != 0) ++wrong_counts;
            // Every place the dead child held is free again: ours to take, and the ring works through them.
            Publisher publisher;
            Subscriber subscriber;
            if (shared.open_publisher(clock_for_test(), publisher) != 0 || shared.open_subscriber(subscriber) != 0) {
                ++refused;
            } else {
                const int value = rounds;
                int got = -1;
                if (publisher.publish(&value, sizeof value) == 0) {
                    (void)subscriber.poll(8, [&](const Message& m) { std::memcpy(&got, m.data, sizeof got); });
                }
                if (got != value) ++undelivered;
                if (shared.publishers() != live_publishers + 1 || shared.subscribers() != 1) ++wrong_counts;
            }
            shared.close_subscriber(subscriber);
            shared.close_publisher(publisher);
        }
        CHECK(rounds >= 20);
        CHECK(wrong_counts == 0);
        CHECK(refused == 0);
        CHECK(undelivered == 0);
        if (holder > 0) {
            REQUIRE(kill(holder, SIGKILL) == 0);
            CHECK(wait_status(holder) == 128 + SIGKILL);
            MaintainReport report;
            REQUIRE(shared.maintain(1'000'000'000, report) == 0);
            CHECK(report.publishers_freed == 1);
            CHECK(shared.publishers() == 0);
        }
        close(ready[0]);
        close(ready[1]);
        CHECK(shared.unlink() == 0);
    }
}

TEST_CASE("a create that fails after making its segment removes it, and says what really failed") {
    const Name name("fdlimit");
    const TopicConfig config = config_of(name, 8, 1, 1);
    char segment_name[80];
    std::snprintf(segment_name, sizeof segment_name, "topic.%s", name.text.c_str());
    char path[ShmSegment::kMaxPathLength + 1];
    REQUIRE(ShmSegment::path_of(segment_name, kShmOwnerSelf, path, sizeof path) == 0);
    // In a child: descriptors for the segment itself, but none left for registering the process (/proc).
    const pid_t child = fork();
    REQUIRE(child >= 0);
    if (child == 0) {
        // New descriptors take the lowest free numbers: fill the holes, so exactly two are left above (create
        // holds the segment directory and the segment; registering then needs /proc and its stat file).
        int highest = -1;
        for (int fd = 0; fd < 4096; ++fd) {
            if (fcntl(fd, F_GETFD) >= 0) highest = fd;
        }
        for (;;) {
            const int filler = open("/dev/null", O_RDONLY);
            if (filler < 0) _exit(13);
            if (filler > highest) {
                close(filler);
                break;
            }
        }
        const rlimit limit{static_cast<rlim_t>(highest + 3), static_cast<rlim_t>(highest + 3)};
        if (setrlimit(RLIMIT_NOFILE, &limit) != 0) _exit(10);
        SharedTopic shared;
        const int status = SharedTopic::open(config, 0600, shared);
        if (status != -EMFILE) {
            std::fprintf(stderr, "open: %d %s\n", status, platform::last_error_message());
            _exit(11);
        }
        const char* message = platform::last_error_message();
        if (std::strstr(message, "Too many open files") == nullptr || std::strstr(message, "64 processes")) _exit(12);
        _exit(0);
    }
    CHECK(wait_status(child) == 0);
    CHECK(access(path, F_OK) != 0);   // nothing left behind
}

TEST_CASE("a live segment with a corrupt state word is reported as corrupt, not as another configuration") {
    const Name name("badstate");
    const TopicConfig config = config_of(name, 8, 1, 1);
    SharedTopic first;
    REQUIRE(SharedTopic::open(config, 0600, first) == 0);
    auto* header = const_cast<ShmHeader*>(first.segment().header());
    header->state.store(77);
    SharedTopic second;
    CHECK(SharedTopic::open(config, 0600, second) == -EPROTO);
    const std::string message = platform::last_error_message();
    CHECK(message.find("corrupt header (state 77)") != std::string::npos);
    CHECK(message.find("another configuration") == std::string::npos);
    header->state.store(static_cast<std::uint32_t>(ShmState::ready));
    CHECK(first.unlink() == 0);
}
