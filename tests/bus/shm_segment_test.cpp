// Shared-memory segments: create/attach/unlink round trip, names and modes, refusing what does not match
// (missing, other version, other layout id, corrupt, too small), stale segments of dead processes reset and
// live ones refused, the creator/attacher hand-off across fork, and racing creators.
// Children of fork() never use doctest: they report by exit status (0 = passed, anything else = which step failed).
#include <doctest/doctest.h>

#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <grp.h>
#include <numaif.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "engine/bus/shm_segment.hpp"
#include "platform/os/last_error.hpp"
#include "platform/os/numa.hpp"
#include "tests/bus/fork_support.hpp"

using cf::Duration;
using cf::ShmHeader;
using cf::ShmIfExists;
using cf::ShmSegment;
using cf::ShmSegmentConfig;
using cf::ShmState;
using namespace cf::test;

namespace {

bool message_contains(const std::string& text) {
    return std::strstr(cf::platform::last_error_message(), text.c_str()) != nullptr;
}

// A name no other run or test uses; removed again when the test ends, whatever happened.
struct TestName {
    std::string name;
    explicit TestName(const char* tag) {
        static int counter = 0;
        name = "cftest-" + std::to_string(::getpid()) + "-" + tag + "-" + std::to_string(++counter);
    }
    ~TestName() { ShmSegment::remove(name.c_str()); }
    const char* c_str() const { return name.c_str(); }
    std::string path() const {
        char buffer[ShmSegment::kMaxPathLength + 1];
        return ShmSegment::path_of(name.c_str(), cf::kShmOwnerSelf, buffer, sizeof buffer) == 0 ? buffer : "";
    }
};

ShmSegmentConfig config_for(const TestName& name, std::size_t payload = 4096, std::uint64_t layout_id = 0x1234) {
    ShmSegmentConfig config;
    config.name = name.c_str();
    config.payload_bytes = payload;
    config.layout_id = layout_id;
    return config;
}

int open_fd_count() {
    int count = 0;
    if (DIR* dir = ::opendir("/proc/self/fd")) {
        while (::readdir(dir) != nullptr) ++count;
        ::closedir(dir);
    }
    return count;
}

// A second, independent mapping of the object's header, to change it behind the segment's back.
struct RawHeader {
    int fd = -1;
    void* base = MAP_FAILED;
    explicit RawHeader(const TestName& name) {
        fd = ::open(name.path().c_str(), O_RDWR | O_CLOEXEC);
        if (fd >= 0) base = ::mmap(nullptr, ShmSegment::kPayloadOffset, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    }
    ~RawHeader() {
        if (base != MAP_FAILED) ::munmap(base, ShmSegment::kPayloadOffset);
        if (fd >= 0) ::close(fd);
    }
    bool ok() const { return base != MAP_FAILED; }
    ShmHeader* header() const { return static_cast<ShmHeader*>(base); }
    unsigned char* bytes() const { return static_cast<unsigned char*>(base); }
};

// The directory this process's segments live in, made if need be (as create() would).
std::string own_directory(const TestName& name) {
    const std::string path = name.path();
    const std::string directory = path.substr(0, path.rfind('/'));
    (void)::mkdir(directory.c_str(), 0700);
    return directory;
}

// An object of that name made without the library: `size` bytes of `fill`.
bool make_raw_object(const TestName& name, std::size_t size, unsigned char fill) {
    (void)own_directory(name);
    const int fd = ::open(name.path().c_str(), O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0) return false;
    bool ok = ::ftruncate(fd, static_cast<off_t>(size)) == 0;
    if (ok && size > 0 && fill != 0) {
        std::vector<unsigned char> bytes(size, fill);
        ok = ::write(fd, bytes.data(), size) == static_cast<ssize_t>(size);
    }
    ::close(fd);
    return ok;
}

const Duration kShort = Duration::from_millis(50);

}  // namespace

TEST_CASE("names: 1..200 of [A-Za-z0-9._-], no slash") {
    CHECK(ShmSegment::check_name("a") == 0);
    CHECK(ShmSegment::check_name("Topic_1.prices-EU") == 0);
    CHECK(ShmSegment::check_name(std::string(200, 'x').c_str()) == 0);
    CHECK(ShmSegment::check_name(nullptr) == -EINVAL);
    CHECK(ShmSegment::check_name("") == -EINVAL);
    CHECK(message_contains("empty"));
    CHECK(ShmSegment::check_name(std::string(201, 'x').c_str()) == -EINVAL);
    CHECK(message_contains("longer than 200"));
    CHECK(ShmSegment::check_name("a/b") == -EINVAL);
    CHECK(message_contains("'/'"));
    CHECK(ShmSegment::check_name("/abs") == -EINVAL);
    CHECK(ShmSegment::check_name("with space") == -EINVAL);
    CHECK(ShmSegment::check_name("tab\there") == -EINVAL);
    CHECK(ShmSegment::check_name("caf\xc3\xa9") == -EINVAL);

    ShmSegment segment;
    ShmSegmentConfig config;
    config.payload_bytes = 4096;
    config.name = "bad/name";
    CHECK(ShmSegment::create(config, segment) == -EINVAL);
    CHECK_FALSE(segment.valid());
    CHECK(ShmSegment::attach("bad name", 0, segment) == -EINVAL);
    CHECK(ShmSegment::remove("") == -EINVAL);

    // The longest name works end to end (a file name of 200 characters is within NAME_MAX).
    TestName base("long");
    const std::string longest = base.name + std::string(200 - base.name.size(), 'L');
    config.name = longest.c_str();
    REQUIRE(ShmSegment::create(config, segment) == 0);
    CHECK(std::string(segment.name()) == longest);
    CHECK(segment.unlink() == 0);
}

TEST_CASE("bad sizes and modes are refused") {
    TestName name("args");
    ShmSegment segment;
    ShmSegmentConfig config = config_for(name, 0);
    CHECK(ShmSegment::create(config, segment) == -EINVAL);
    CHECK(message_contains("payload size is zero"));
    config.payload_bytes = ShmSegment::kMaxPayloadBytes + 1;
    CHECK(ShmSegment::create(config, segment) == -EINVAL);
    config.payload_bytes = 4096;
    config.mode = 0400;   // the owner could not write it
    CHECK(ShmSegment::create(config, segment) == -EINVAL);
    CHECK(message_contains("0600"));
    config.mode = 01600;
    CHECK(ShmSegment::create(config, segment) == -EINVAL);
    CHECK_FALSE(segment.valid());
    CHECK(ShmSegment::remove(name.c_str()) == -ENOENT);   // nothing was left behind
}

TEST_CASE("create, attach, detach, unlink: a round trip") {
    TestName name("roundtrip");
    const int fds_before = open_fd_count();
    {
        ShmSegment creator;
        REQUIRE(ShmSegment::create(config_for(name, 10000, 0xabcdef), creator) == 0);
        CHECK(creator.valid());
        CHECK(creator.is_creator());
        CHECK_FALSE(creator.was_reset());
        CHECK(creator.generation() == 1);
        CHECK(creator.layout_id() == 0xabcdef);
        CHECK(creator.creator_pid() == static_cast<std::uint32_t>(::getpid()));
        CHECK(creator.payload_bytes() == 12288);   // rounded up to 4096
        CHECK(reinterpret_cast<std::uintptr_t>(creator.payload()) % ShmSegment::kPayloadAlignment == 0);
        CHECK(static_cast<char*>(creator.payload()) - reinterpret_cast<const char*>(creator.header()) == 8192);
        CHECK(creator.state() == ShmState::formatting);

        const ShmHeader& header = *creator.header();
        CHECK(header.magic == cf::kShmMagic);
        CHECK(header.layout_version == ShmSegment::kLayoutVersion);
        CHECK(header.total_bytes == 8192 + 12288);
        CHECK(header.payload_offset == 8192);
        CHECK(header.payload_bytes == 12288);
        cf::ProcessIdentity self;
        REQUIRE(cf::self_identity(self) == 0);
        CHECK(header.creator_start_time == self.start_time);
        CHECK(creator.processes().occupied() == 0);

        // The object has the recorded size and the page contents are zero.
        struct stat st{};
        REQUIRE(::fstat(creator.fd(), &st) == 0);
        CHECK(st.st_size == 8192 + 12288);
        const auto* payload = static_cast<const unsigned char*>(creator.payload());
        CHECK(payload[0] == 0);
        CHECK(payload[12287] == 0);

        // Not ready yet: an attacher waits, then gives up with a message naming the creator.
        ShmSegment early;
        CHECK(ShmSegment::attach(name.c_str(), 0xabcdef, early, kShort) == -ETIMEDOUT);
        CHECK(message_contains("not ready"));
        CHECK(message_contains(std::to_string(::getpid())));
        CHECK_FALSE(early.valid());

        std::memcpy(creator.payload(), "formatted", 10);
        CHECK(creator.mark_ready() == 0);
        CHECK(creator.mark_ready() == 0);   // idempotent
        CHECK(creator.ready());

        ShmSegment attacher;
        REQUIRE(ShmSegment::attach(name.c_str(), 0xabcdef, attacher) == 0);
        CHECK_FALSE(attacher.is_creator());
        CHECK(attacher.payload_bytes() == 12288);
        CHECK(attacher.generation() == 1);
        CHECK(attacher.creator_pid() == static_cast<std::uint32_t>(::getpid()));
        CHECK(attacher.payload() != creator.payload());   // two mappings of one object
        CHECK(std::strcmp(static_cast<const char*>(attacher.payload()), "formatted") == 0);
        static_cast<char*>(attacher.payload())[12287] = 'z';
        CHECK(static_cast<const char*>(creator.payload())[12287] == 'z');
        CHECK(attacher.mark_ready() == -EPERM);

        // Move-only: the handle moves, the mapping stays.
        ShmSegment moved(std::move(attacher));
        CHECK_FALSE(attacher.valid());
        CHECK(attacher.payload() == nullptr);
        CHECK(moved.valid());
        CHECK(static_cast<const char*>(moved.payload())[12287] == 'z');
        ShmSegment assigned;
        assigned = std::move(moved);
        CHECK_FALSE(moved.valid());
        CHECK(std::string(assigned.name()) == name.name);
        assigned.detach();
        CHECK_FALSE(assigned.valid());
        assigned.detach();   // twice is fine

        // The creator unlinks: the name is gone, its own mapping stays valid and reads retired.
        CHECK(creator.unlink() == 0);
        CHECK(creator.retired());
        CHECK(static_cast<const char*>(creator.payload())[12287] == 'z');
        ShmSegment late;
        CHECK(ShmSegment::attach(name.c_str(), 0xabcdef, late) == -ENOENT);
        CHECK(creator.unlink() == -ESTALE);
        CHECK(message_contains("no longer refers"));
        CHECK(ShmSegment::remove(name.c_str()) == -ENOENT);
        CHECK(ShmSegment().unlink() == -EINVAL);
        CHECK(ShmSegment().mark_ready() == -EINVAL);
    }
    CHECK(open_fd_count() == fds_before);   // every descriptor closed, failed paths included
}

TEST_CASE("attaching to a missing name: -ENOENT with a message") {
    TestName name("missing");
    ShmSegment segment;
    CHECK(ShmSegment::attach(name.c_str(), 0, segment) == -ENOENT);
    CHECK(message_contains("no segment '" + name.name + "'"));
    CHECK_FALSE(segment.valid());
}

TEST_CASE("mode: 0600 by default and what was asked for regardless of umask") {
    TestName name("mode");
    const mode_t old_umask = ::umask(0);
    ShmSegment segment;
    REQUIRE(ShmSegment::create(config_for(name), segment) == 0);
    struct stat st{};
    REQUIRE(::fstat(segment.fd(), &st) == 0);
    CHECK((st.st_mode & 07777) == 0600);
    CHECK(st.st_uid == ::getuid());
    CHECK(segment.unlink() == 0);

    ::umask(0077);   // would strip the group bits
    ShmSegmentConfig config = config_for(name);
    config.mode = 0660;
    REQUIRE(ShmSegment::create(config, segment) == 0);
    REQUIRE(::fstat(segment.fd(), &st) == 0);
    CHECK((st.st_mode & 07777) == 0660);
    CHECK(segment.unlink() == 0);
    ::umask(old_umask);
}

TEST_CASE("mismatches are refused with -EPROTO and a message that says which") {
    TestName name("mismatch");
    ShmSegment creator;
    REQUIRE(ShmSegment::create(config_for(name, 4096, 0x1111), creator) == 0);
    REQUIRE(creator.mark_ready() == 0);
    ShmSegment attacher;

    SUBCASE("layout id") {
        CHECK(ShmSegment::attach(name.c_str(), 0x2222, attacher) == -EPROTO);
        CHECK(message_contains("layout id differs"));
        CHECK(message_contains("another configuration"));
        CHECK(message_contains("0x0000000000001111"));
    }
    SUBCASE("layout version") {
        RawHeader raw(name);
        REQUIRE(raw.ok());
        raw.header()->layout_version = ShmSegment::kLayoutVersion + 1;
        CHECK(ShmSegment::attach(name.c_str(), 0x1111, attacher) == -EPROTO);
        CHECK(message_contains("has layout version 2, this library speaks 1"));
        // create() will not reset what it cannot read, even though nobody else uses it.
        ShmSegment again;
        CHECK(ShmSegment::create(config_for(name), again) == -EPROTO);
        CHECK(message_contains("layout version 2"));
    }
    SUBCASE("a field changed behind the checksum") {
        RawHeader raw(name);
        REQUIRE(raw.ok());
        raw.header()->payload_bytes += 4096;
        CHECK(ShmSegment::attach(name.c_str(), 0x1111, attacher) == -EPROTO);
        CHECK(message_contains("corrupt header (checksum"));
    }
    SUBCASE("garbage over the whole header") {
        RawHeader raw(name);
        REQUIRE(raw.ok());
        std::mt19937 random(20240611);
        for (std::size_t i = 0; i < sizeof(ShmHeader); ++i) raw.bytes()[i] = static_cast<unsigned char>(random());
        CHECK(ShmSegment::attach(name.c_str(), 0x1111, attacher) == -EPROTO);
        CHECK(message_contains("not a ChronoFabric segment (bad magic"));
        ShmSegment again;
        CHECK(ShmSegment::create(config_for(name), again) == -EPROTO);
        CHECK(message_contains("bad magic"));
    }
    SUBCASE("an impossible state") {
        RawHeader raw(name);
        REQUIRE(raw.ok());
        raw.header()->state.store(7);
        CHECK(ShmSegment::attach(name.c_str(), 0x1111, attacher) == -EPROTO);
        CHECK(message_contains("state 7"));
    }
    CHECK_FALSE(attacher.valid());
    CHECK(creator.unlink() == 0);
}

TEST_CASE("objects that are not segments") {
    TestName name("raw");
    ShmSegment segment;
    SUBCASE("too small for a header") {
        REQUIRE(make_raw_object(name, 100, 0));
        CHECK(ShmSegment::attach(name.c_str(), 0, segment) == -EPROTO);
        CHECK(message_contains("too small"));
        CHECK(ShmSegment::create(config_for(name), segment) == -EPROTO);
        ShmSegmentConfig config = config_for(name);
        config.if_exists = ShmIfExists::replace;
        REQUIRE(ShmSegment::create(config, segment) == 0);
        CHECK(segment.was_reset());
        CHECK(segment.generation() == 1);
    }
    SUBCASE("garbage of the right size") {
        REQUIRE(make_raw_object(name, 8192 + 4096, 0xa5));
        CHECK(ShmSegment::attach(name.c_str(), 0, segment) == -EPROTO);
        CHECK(ShmSegment::create(config_for(name), segment) == -EPROTO);
    }
    SUBCASE("created and sized but never formatted: its creator died") {
        REQUIRE(make_raw_object(name, 8192 + 4096, 0));
        CHECK(ShmSegment::attach(name.c_str(), 0, segment) == -ESTALE);
        CHECK(message_contains("never formatted"));
        REQUIRE(ShmSegment::create(config_for(name), segment) == 0);
        CHECK(segment.was_reset());
    }
    SUBCASE("created but never sized: waited for, then taken as abandoned") {
        REQUIRE(make_raw_object(name, 0, 0));
        CHECK(ShmSegment::attach(name.c_str(), 0, segment, kShort) == -ETIMEDOUT);
        CHECK(message_contains("not sized"));
        ShmSegmentConfig config = config_for(name);
        config.wait_timeout = kShort;
        REQUIRE(ShmSegment::create(config, segment) == 0);
        CHECK(segment.was_reset());
    }
    SUBCASE("if_exists = fail refuses even an empty object") {
        REQUIRE(make_raw_object(name, 0, 0));
        ShmSegmentConfig config = config_for(name);
        config.if_exists = ShmIfExists::fail;
        CHECK(ShmSegment::create(config, segment) == -EEXIST);
        CHECK(message_contains("already exists"));
    }
    if (segment.valid()) {
        CHECK(segment.state() == ShmState::formatting);
        CHECK(segment.unlink() == 0);
    }
}

TEST_CASE("a segment this process created is in use: -EEXIST naming the pid") {
    TestName name("self");
    ShmSegment first;
    REQUIRE(ShmSegment::create(config_for(name), first) == 0);
    ShmSegment second;
    CHECK(ShmSegment::create(config_for(name), second) == -EEXIST);
    CHECK(message_contains("in use by pid " + std::to_string(::getpid()) + " (its creator)"));
    CHECK_FALSE(second.valid());
    CHECK(first.unlink() == 0);
}

TEST_CASE("stale segments of dead processes are recognised and reset") {
    TestName name("stale");
    SUBCASE("creator _exit()ed without cleanup after making it ready") {
        const pid_t child = fork_child([&] {
            ShmSegment segment;
            if (ShmSegment::create(config_for(name, 4096, 0x77), segment) != 0) return 1;
            static_cast<char*>(segment.payload())[0] = 'x';
            if (segment.mark_ready() != 0) return 2;
            ::_exit(0);   // no detach, no unlink
        });
        REQUIRE(wait_child(child) == 0);

        ShmSegment attacher;   // nobody alive uses it: not trusted
        CHECK(ShmSegment::attach(name.c_str(), 0x77, attacher) == -ESTALE);
        CHECK(message_contains("creator pid " + std::to_string(child)));

        ShmSegment segment;
        REQUIRE(ShmSegment::create(config_for(name, 4096, 0x77), segment) == 0);
        CHECK(segment.was_reset());
        CHECK(segment.generation() == 2);
        CHECK(segment.creator_pid() == static_cast<std::uint32_t>(::getpid()));
        CHECK(static_cast<const char*>(segment.payload())[0] == 0);   // fresh memory, not the old contents
        CHECK(segment.unlink() == 0);
    }
    SUBCASE("creator SIGKILLed while formatting") {
        Pipe created;
        const pid_t child = fork_child([&] {
            created.close_read();
            ShmSegment segment;
            if (ShmSegment::create(config_for(name), segment) != 0) return 1;
            created.send('c');
            for (;;) ::pause();
        });
        created.close_write();
        REQUIRE(created.receive() == 'c');
        ShmSegment attacher;
        // Alive and formatting: wait, time out.
        CHECK(ShmSegment::attach(name.c_str(), 0x1234, attacher, kShort) == -ETIMEDOUT);
        ::kill(child, SIGKILL);
        REQUIRE(wait_child(child) == 128 + SIGKILL);
        CHECK(ShmSegment::attach(name.c_str(), 0x1234, attacher) == -ESTALE);
        CHECK(message_contains("died before making it ready"));

        ShmSegment segment;
        REQUIRE(ShmSegment::create(config_for(name), segment) == 0);
        CHECK(segment.was_reset());
        CHECK(segment.generation() == 2);
        // Its creator (this process) lives even after detaching: creating again is refused ...
        segment.detach();
        ShmSegment refused;
        CHECK(ShmSegment::create(config_for(name), refused) == -EEXIST);
        ShmSegmentConfig replace = config_for(name);
        replace.if_exists = ShmIfExists::replace;   // ... unless told to replace it
        REQUIRE(ShmSegment::create(replace, segment) == 0);
        CHECK(segment.was_reset());
        CHECK(segment.generation() == 3);
        CHECK(segment.unlink() == 0);
    }
    SUBCASE("a dead creator but a live registered process: in use") {
        const pid_t child = fork_child([&] {
            ShmSegment segment;
            if (ShmSegment::create(config_for(name), segment) != 0) return 1;
            return segment.mark_ready() == 0 ? 0 : 2;
        });
        REQUIRE(wait_child(child) == 0);
        // Attach is refused (stale) ... so register through a raw mapping as a subscriber that was already there.
        RawHeader raw(name);
        REQUIRE(raw.ok());
        cf::ProcessTable& table = cf::ProcessTable::at(raw.bytes() + ShmSegment::kProcessTableOffset);
        cf::ProcessTicket ticket;
        REQUIRE(table.register_self(cf::ProcessTable::monotonic_ns(), 1, 2, ticket) == 0);

        ShmSegment attacher;
        REQUIRE(ShmSegment::attach(name.c_str(), 0x1234, attacher) == 0);   // someone alive uses it
        ShmSegment segment;
        CHECK(ShmSegment::create(config_for(name), segment) == -EEXIST);
        CHECK(message_contains("in use by pid " + std::to_string(::getpid()) + " (registered in its process table)"));

        REQUIRE(table.deregister(ticket) == 0);
        REQUIRE(ShmSegment::create(config_for(name), segment) == 0);
        CHECK(segment.was_reset());
        CHECK(attacher.retired());   // the old holder can tell it must re-attach
        CHECK(segment.unlink() == 0);
    }
}

TEST_CASE("a segment held by a live child: -EEXIST naming its pid, reset once it has gone") {
    TestName name("livechild");
    Pipe ready, release;
    const pid_t child = fork_child([&] {
        ready.close_read();
        release.close_write();
        ShmSegment segment;
        if (ShmSegment::create(config_for(name), segment) != 0) return 1;
        if (segment.mark_ready() != 0) return 2;
        ready.send('r');
        release.receive();   // until the parent closes its end
        return 0;            // exits without detach or unlink
    });
    ready.close_write();
    release.close_read();
    REQUIRE(ready.receive() == 'r');

    ShmSegment segment;
    CHECK(ShmSegment::create(config_for(name), segment) == -EEXIST);
    CHECK(message_contains("in use by pid " + std::to_string(child)));
    ShmSegmentConfig fail_config = config_for(name);
    fail_config.if_exists = ShmIfExists::fail;
    CHECK(ShmSegment::create(fail_config, segment) == -EEXIST);

    ShmSegment attacher;   // attached but not registered: does not keep the segment alive
    REQUIRE(ShmSegment::attach(name.c_str(), 0x1234, attacher) == 0);
    CHECK(attacher.creator_pid() == static_cast<std::uint32_t>(child));
    release.close_write();
    REQUIRE(wait_child(child) == 0);

    REQUIRE(ShmSegment::create(config_for(name), segment) == 0);
    CHECK(segment.was_reset());
    CHECK(segment.generation() == 2);
    CHECK(attacher.retired());
    CHECK(attacher.unlink() == -ESTALE);   // the name is the new segment's now: left alone
    CHECK(segment.unlink() == 0);
}

TEST_CASE("across fork: the parent creates and formats, the child attaches and writes, the parent sees it") {
    TestName name("fork");
    constexpr std::size_t kBytes = 64 * 1024;
    ShmSegment creator;
    REQUIRE(ShmSegment::create(config_for(name, kBytes, 0xfeed), creator) == 0);
    Pipe started;
    // The child attaches while the payload is still being formatted and must wait for mark_ready().
    const pid_t child = fork_child([&] {
        started.close_read();
        started.send('s');
        ShmSegment segment;
        const int status = ShmSegment::attach(name.c_str(), 0xfeed, segment, Duration::from_seconds(30));
        if (status != 0) return 10 + (-status % 100);
        // Everything written before mark_ready() is visible once attach returned.
        const auto* words = static_cast<const std::uint64_t*>(segment.payload());
        for (std::size_t i = 0; i < kBytes / 8; ++i) {
            if (words[i] != i * 0x9e3779b97f4a7c15ull) return 3;
        }
        cf::ProcessTicket ticket;
        if (segment.processes().register_self(cf::ProcessTable::monotonic_ns(), 42, 0, ticket) != 0) return 4;
        auto* out = static_cast<std::uint64_t*>(segment.payload());
        for (std::size_t i = 0; i < kBytes / 8; ++i) out[i] = ~out[i];
        if (segment.processes().deregister(ticket) != 0) return 5;
        return 0;
    });
    started.close_write();
    REQUIRE(started.receive() == 's');
    auto* words = static_cast<std::uint64_t*>(creator.payload());
    for (std::size_t i = 0; i < kBytes / 8; ++i) words[i] = i * 0x9e3779b97f4a7c15ull;
    REQUIRE(creator.mark_ready() == 0);
    REQUIRE(wait_child(child) == 0);
    bool all_inverted = true;
    for (std::size_t i = 0; i < kBytes / 8; ++i) all_inverted &= words[i] == ~(i * 0x9e3779b97f4a7c15ull);
    CHECK(all_inverted);
    CHECK(creator.processes().occupied() == 0);
    CHECK(creator.unlink() == 0);
}

TEST_CASE("racing creators: exactly one wins, the others are told who holds it") {
    constexpr int kChildren = 4;
    for (const bool stale_first : {false, true}) {
        CAPTURE(stale_first);
        TestName name("race");
        if (stale_first) {   // a dead creator's segment: every racer wants to reset it, only one may
            const pid_t dead = fork_child([&] {
                ShmSegment segment;
                return ShmSegment::create(config_for(name), segment) == 0 ? 0 : 1;
            });
            REQUIRE(wait_child(dead) == 0);
        }
        Pipe results, release;
        std::vector<pid_t> children;
        for (int i = 0; i < kChildren; ++i) {
            children.push_back(fork_child([&] {
                results.close_read();
                release.close_write();
                ShmSegment segment;
                const int status = ShmSegment::create(config_for(name), segment);
                char code = 'x';
                if (status == 0) code = (segment.was_reset() == stale_first && segment.generation() ==
                                         (stale_first ? 2u : 1u)) ? 'W' : 'w';
                else if (status == -EEXIST) code = 'E';
                results.send(code);
                release.receive();   // the winner stays alive until everyone has tried
                return 0;
            }));
        }
        results.close_write();
        release.close_read();
        int winners = 0, refused = 0, other = 0;
        for (int i = 0; i < kChildren; ++i) {
            const int code = results.receive();
            if (code == 'W') ++winners;
            else if (code == 'E') ++refused;
            else ++other;
        }
        release.close_write();
        for (const pid_t child : children) CHECK(wait_child(child) == 0);
        CHECK(winners == 1);
        CHECK(refused == kChildren - 1);
        CHECK(other == 0);
    }
}

namespace {

constexpr uid_t kOtherUid = 65534;   // nobody: the test's other user

// Runs `body` in a child as the other user (uid and gid 65534, no supplementary groups): its exit status, or -1
// when this process cannot switch users (not root), which callers report as a skip.
template <class F>
int as_other_user(F&& body) {
    if (::geteuid() != 0) return -1;
    return wait_child(fork_child([&] {
        if (::setgroups(0, nullptr) != 0 || ::setresgid(kOtherUid, kOtherUid, kOtherUid) != 0 ||
            ::setresuid(kOtherUid, kOtherUid, kOtherUid) != 0) {
            return 99;
        }
        return body();
    }));
}

// Removes the other user's segment `name` and, if empty, its directory.
void remove_other_users(const char* name) {
    char path[ShmSegment::kMaxPathLength + 1];
    if (ShmSegment::path_of(name, kOtherUid, path, sizeof path) != 0) return;
    ::unlink(path);
    std::string directory(path);
    directory.resize(directory.rfind('/'));
    ::rmdir(directory.c_str());
}

}  // namespace

TEST_CASE("a segment whose mode became wider than asked, or whose owner changed, is refused naming both") {
    TestName name("owner");
    ShmSegment creator;
    REQUIRE(ShmSegment::create(config_for(name), creator) == 0);
    REQUIRE(creator.mark_ready() == 0);
    ShmSegment other;
    REQUIRE(ShmSegment::attach(name.c_str(), 0x1234, other) == 0);
    other.detach();

    REQUIRE(::chmod(name.path().c_str(), 0666) == 0);   // as if another user had been let in
    CHECK(ShmSegment::attach(name.c_str(), 0x1234, other) == -EACCES);
    CHECK(message_contains("mode 0666"));
    CHECK(message_contains("0600 or narrower"));
    CHECK_FALSE(other.valid());
    // create-or-attach refuses it too, and never resets it (a live creator holds it, but the check comes first).
    CHECK(ShmSegment::create(config_for(name), other) == -EACCES);
    // A process that asked for that much accepts it.
    CHECK(ShmSegment::attach(name.c_str(), 0x1234, other, kShort, 0666) == 0);
    other.detach();
    REQUIRE(::chmod(name.path().c_str(), 0600) == 0);

    if (::geteuid() != 0) {
        MESSAGE("skipped the chown half: changing a file's owner needs root");
    } else {
        REQUIRE(::chown(name.path().c_str(), kOtherUid, kOtherUid) == 0);
        CHECK(ShmSegment::attach(name.c_str(), 0x1234, other) == -EACCES);
        CHECK(message_contains("belongs to uid 65534"));
        CHECK(ShmSegment::create(config_for(name), other) == -EACCES);
        // Only an operator's replace removes another owner's file.
        ShmSegmentConfig replace = config_for(name);
        replace.if_exists = ShmIfExists::replace;
        REQUIRE(ShmSegment::create(replace, other) == 0);
        CHECK(other.was_reset());
        CHECK(other.unlink() == 0);
    }
    creator.detach();
}

TEST_CASE("segments live in a directory of their owner's: symbolic links and foreign directories are refused") {
    TestName name("dir");
    ShmSegment segment;
    REQUIRE(ShmSegment::create(config_for(name), segment) == 0);
    struct stat st{};
    const std::string directory = own_directory(name);
    REQUIRE(::stat(directory.c_str(), &st) == 0);
    CHECK(S_ISDIR(st.st_mode));
    CHECK(st.st_uid == ::geteuid());
    CHECK((st.st_mode & 0022) == 0);   // nobody else may create, replace or remove a name in it
    CHECK(segment.unlink() == 0);

    // A symbolic link at a segment's name is never followed.
    REQUIRE(::symlink("/etc/passwd", name.path().c_str()) == 0);
    CHECK(ShmSegment::attach(name.c_str(), 0, segment) == -EACCES);
    CHECK(message_contains("symbolic link"));
    CHECK(ShmSegment::create(config_for(name), segment) == -EACCES);
    ::unlink(name.path().c_str());

    // The directory of a uid that is not ours and not made by it: refused, with whose it is.
    const std::uint32_t stranger = 65533;
    char path[ShmSegment::kMaxPathLength + 1];
    REQUIRE(ShmSegment::path_of(name.c_str(), stranger, path, sizeof path) == 0);
    std::string foreign(path);
    foreign.resize(foreign.rfind('/'));
    ::rmdir(foreign.c_str());
    REQUIRE(::mkdir(foreign.c_str(), 0700) == 0);
    REQUIRE(::chmod(foreign.c_str(), 0777) == 0);
    CHECK(ShmSegment::attach(name.c_str(), 0, segment, kShort, 0600, stranger) == -EACCES);
    CHECK(message_contains("is in the way"));
    CHECK(message_contains("mode 0777"));
    REQUIRE(::rmdir(foreign.c_str()) == 0);
    REQUIRE(::symlink("/tmp", foreign.c_str()) == 0);
    CHECK(ShmSegment::attach(name.c_str(), 0, segment, kShort, 0600, stranger) == -EACCES);
    CHECK(message_contains("not a directory"));
    REQUIRE(::unlink(foreign.c_str()) == 0);
    CHECK(ShmSegment::attach(name.c_str(), 0, segment, kShort, 0600, stranger) == -ENOENT);
    // Only the owner creates.
    ShmSegmentConfig config = config_for(name);
    config.owner_uid = stranger;
    CHECK(ShmSegment::create(config, segment) == -EINVAL);
    CHECK(message_contains("only its owner"));
}

TEST_CASE("another user can neither squat our names nor feed us a segment of theirs") {
    TestName name("squat");
    // Our directory exists (as it does once this user made any segment).
    ShmSegment ours;
    REQUIRE(ShmSegment::create(config_for(name), ours) == 0);
    CHECK(ours.unlink() == 0);
    ours.detach();
    const std::string our_path = name.path();
    const std::string legacy = std::string("/dev/shm/cf.") + name.name;   // where 0.3 put it: world-writable
    const int status = as_other_user([&] {
        // Junk and a symbolic link where 0.3 kept the name, and a try at our directory.
        const int junk = ::open(legacy.c_str(), O_RDWR | O_CREAT | O_EXCL, 0666);
        if (junk < 0) return 20;
        ::close(junk);
        if (::open(our_path.c_str(), O_RDWR | O_CREAT | O_EXCL, 0666) >= 0) return 21;   // must be refused
        if (errno != EACCES) return 22;
        // Their own segment of the same name, wide open, with a message we must never read.
        ShmSegmentConfig config = config_for(name);
        config.mode = 0666;
        ShmSegment theirs;
        if (ShmSegment::create(config, theirs) != 0 || theirs.mark_ready() != 0) return 23;
        std::memset(theirs.payload(), 0x5a, 64);
        theirs.detach();   // left behind, its creator gone
        return 0;
    });
    if (status == -1) {
        MESSAGE("skipped: switching to another user (uid 65534) needs root");
        return;
    }
    REQUIRE(status == 0);
    // Our create is not blocked by the junk, and gives us our own, fresh segment.
    ShmSegment segment;
    REQUIRE(ShmSegment::create(config_for(name), segment) == 0);
    CHECK_FALSE(segment.was_reset());
    CHECK(static_cast<unsigned char*>(segment.payload())[0] == 0);
    CHECK(segment.unlink() == 0);
    // Asking for theirs by owner: refused because it is wider than we asked, and the message says whose it is.
    CHECK(ShmSegment::attach(name.c_str(), 0x1234, segment, kShort, 0600, kOtherUid) == -EACCES);
    CHECK(message_contains("uid 65534"));
    CHECK(message_contains("mode 0666"));
    ::unlink(legacy.c_str());
    remove_other_users(name.c_str());
}

TEST_CASE("NUMA: a segment's pages are born on its node, for the creator and for an attacher; a missing node is "
          "refused") {
    const int node = cf::platform::current_numa_node();
    TestName name("numa");
    ShmSegment creator;
    REQUIRE(ShmSegment::create(config_for(name, 64 * 1024), creator) == 0);
    CHECK(creator.numa_node() == node);
    if (creator.numa_placement() == -EOPNOTSUPP) {
        MESSAGE("no NUMA policy calls here: placement not checked");
        return;
    }
    REQUIRE(creator.numa_placement() == 0);
    int mode = -1, first = -2;
    REQUIRE(cf::platform::numa_policy_of(creator.payload(), mode, first) == 0);
    CHECK(mode == MPOL_PREFERRED);
    CHECK(first == node);
    // Every page exists already (reserved and mapped at create) and sits on the node; an attacher maps the same
    // pages, and its mapping has the file's policy too.
    REQUIRE(creator.mark_ready() == 0);
    ShmSegment attacher;
    REQUIRE(ShmSegment::attach(name.c_str(), 0x1234, attacher) == 0);
    CHECK(attacher.numa_placement() == -ENOENT);
    CHECK(attacher.numa_node() == -1);
    for (const ShmSegment* segment : {&creator, &attacher}) {
        std::vector<const void*> pages;
        const auto* base = reinterpret_cast<const char*>(segment->header());
        for (std::size_t offset = 0; offset < ShmSegment::kPayloadOffset + 64 * 1024; offset += 4096) {
            pages.push_back(base + offset);
        }
        std::vector<int> nodes(pages.size(), -100);
        REQUIRE(cf::platform::numa_nodes_of_pages(pages.data(), pages.size(), nodes.data()) == 0);
        for (const int page_node : nodes) CHECK(page_node == node);
    }
    REQUIRE(cf::platform::numa_policy_of(attacher.payload(), mode, first) == 0);
    CHECK(mode == MPOL_PREFERRED);
    CHECK(first == node);

    // A node this machine does not have: refused before anything is created.
    TestName missing("numa-missing");
    ShmSegmentConfig config = config_for(missing);
    config.numa_node = cf::platform::numa_node_count();
    ShmSegment refused;
    CHECK(ShmSegment::create(config, refused) == -EINVAL);
    CHECK(message_contains("NUMA node"));
    CHECK(::access(missing.path().c_str(), F_OK) != 0);
    config.numa_node = -2;
    CHECK(ShmSegment::create(config, refused) == -EINVAL);
}
