// platform/os/log: the library's messages reach the sink the application set, never stderr behind its back. Its
// own executable, because the ISA and Morton overrides are read once per process, on first use, which this file
// triggers after setting the environment.
#include <doctest/doctest.h>

#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "drivers/driver_choice.hpp"
#include "engine/compute/dispatch.hpp"
#include "engine/compute/morton.hpp"
#include "platform/os/last_error.hpp"
#include "platform/os/log.hpp"

namespace p = cf::platform;

namespace {

struct Captured {
    p::LogLevel level;
    std::string message;
};

void capture(p::LogLevel level, const char* message, void* context) {
    static_cast<std::vector<Captured>*>(context)->push_back({level, message});
}

// Runs f with stderr redirected to a temporary file and returns what was written there.
template <class F>
std::string stderr_of(F&& f) {
    std::fflush(stderr);
    FILE* file = std::tmpfile();
    REQUIRE(file != nullptr);
    const int saved = ::dup(STDERR_FILENO);
    REQUIRE(::dup2(::fileno(file), STDERR_FILENO) == STDERR_FILENO);
    f();
    std::fflush(stderr);
    REQUIRE(::dup2(saved, STDERR_FILENO) == STDERR_FILENO);
    ::close(saved);
    std::string text;
    std::rewind(file);
    for (int c; (c = std::fgetc(file)) != EOF;) text += static_cast<char>(c);
    std::fclose(file);
    return text;
}

}  // namespace

TEST_CASE("a sink receives each message with its level, formatted; nullptr restores stderr") {
    std::vector<Captured> seen;
    const std::string quiet = stderr_of([&] {
        p::set_log_sink(capture, &seen);
        p::log(p::LogLevel::warning, "disk %d of %s", 3, "four");
        p::log(p::LogLevel::error, "%s", "plain");
        p::log(p::LogLevel::info, "%s", std::string(600, 'x').c_str());   // cut, not overflowing
    });
    CHECK(quiet.empty());
    REQUIRE(seen.size() == 3);
    CHECK(seen[0].level == p::LogLevel::warning);
    CHECK(seen[0].message == "disk 3 of four");
    CHECK(seen[1].level == p::LogLevel::error);
    CHECK(seen[1].message == "plain");
    CHECK(seen[2].message == std::string(511, 'x'));

    const std::string printed = stderr_of([] {
        p::set_log_sink(nullptr, nullptr);
        p::log(p::LogLevel::warning, "back on %s", "stderr");
    });
    CHECK(printed == "chronofabric: back on stderr\n");
    CHECK(seen.size() == 3);
}

TEST_CASE("a sink may log and replace the sink from inside (the lock is recursive)") {
    struct Context {
        std::vector<Captured> seen;
        int depth = 0;
    } context;
    auto reentrant = [](p::LogLevel level, const char* message, void* raw) {
        auto* c = static_cast<Context*>(raw);
        c->seen.push_back({level, message});
        if (c->depth++ == 0) p::log(p::LogLevel::info, "nested");
    };
    p::set_log_sink(reentrant, &context);
    p::log(p::LogLevel::warning, "outer");
    REQUIRE(context.seen.size() == 2);
    CHECK(context.seen[0].message == "outer");
    CHECK(context.seen[1].message == "nested");
    p::set_log_sink(nullptr, nullptr);
}

TEST_CASE("the ISA and Morton overrides and the io_uring fallback log through the sink, not stderr") {
    std::vector<Captured> seen;
    const std::string printed = stderr_of([&] {
        p::set_log_sink(capture, &seen);
        // First use in this process: the choice reads the environment now.
        REQUIRE(::setenv("CF_ISA", "pentium", 1) == 0);
        REQUIRE(::setenv("CF_MORTON", "hilbert", 1) == 0);
        (void)cf::compute::active_isa();
        (void)cf::compute::active_morton_impl();
        int socket_opened = 0;
        const int status = cf::drivers::open_preferring_uring(
            cf::drivers::DriverKind::automatic, "test",
            [] { return p::fail(ENOSYS, "io_uring_setup: not implemented"); },
            [&] { ++socket_opened; return 0; });
        CHECK(status == 0);
        CHECK(socket_opened == 1);
        p::set_log_sink(nullptr, nullptr);
    });
    CHECK(printed.empty());
    REQUIRE(seen.size() == 3);
    for (const Captured& c : seen) CHECK(c.level == p::LogLevel::warning);
    CHECK(seen[0].message.find("CF_ISA=pentium") != std::string::npos);
    CHECK(seen[1].message == "CF_MORTON=hilbert is not portable, bmi2 or neon; ignored");
    CHECK(seen[2].message == "io_uring unavailable (io_uring_setup: not implemented); using the socket driver");
}
