// Topics in shared memory, across fork(): messages between processes, a peer with another configuration refused,
// a peer killed with SIGKILL (its reader and its publisher place reclaimed, a claim it left uncommitted recovered),
// and a stale segment from an earlier run reset. Children report through their exit status only.
#include <doctest/doctest.h>

#include <csignal>
#include <cstdio>
#include <cstring>
#include <string>

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
    CHECK(SharedTopic::open(config_of(name, 64, 1, 1), 0644, second) == 0);   // mode applies to creation only
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
    CHECK(shared.topic().header().subscribers.load() == 1);

    MaintainReport report;
    REQUIRE(shared.maintain(1'000'000'000, report) == 0);
    CHECK(report.dead_processes == 0);               // alive: nothing reclaimed
    REQUIRE(kill(child, SIGKILL) == 0);
    CHECK(wait_status(child) == 128 + SIGKILL);
    REQUIRE(shared.maintain(1'000'000'000, report) == 0);
    CHECK(report.dead_processes == 1);
    CHECK(report.readers_removed == 1);
    CHECK(shared.topic().header().subscribers.load() == 0);
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
        CHECK(shared.topic().header().publishers.load() == 1);   // the survivor only
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
    CHECK(shared.topic().header().publishers.load() == 0);
    shared.close_subscriber(subscriber);
    CHECK(shared.unlink() == 0);
}
