// platform/: CPU facts, pinning, CPU lists, cycle counter, memory regions, error messages.
#include <doctest/doctest.h>

#include <sys/mman.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <string>
#include <thread>

#include "platform/cpu/affinity.hpp"
#include "platform/cpu/cpu_info.hpp"
#include "platform/os/cycle_counter.hpp"
#include "platform/os/kernel_info.hpp"
#include "platform/os/last_error.hpp"
#include "platform/os/memory.hpp"

namespace p = cf::platform;

namespace {
bool message_contains(const char* text) { return std::strstr(p::last_error_message(), text) != nullptr; }

#if defined(__x86_64__)
std::string cpuinfo_flags() {
    std::ifstream file("/proc/cpuinfo");
    std::string line;
    while (std::getline(file, line)) {
        if (line.rfind("flags", 0) == 0) return line + " ";
    }
    return "";
}
#endif
}  // namespace

TEST_CASE("cpu facts are consistent") {
    const p::CpuInfo& info = p::cpu_info();
    CHECK_FALSE(info.vendor.empty());
    CHECK_FALSE(info.model_name.empty());
    CHECK(&info == &p::cpu_info());  // detected once
    switch (info.isa_level) {
        case p::IsaLevel::avx512:
            CHECK((info.avx512f && info.avx512bw && info.avx512dq && info.avx512vl));
            [[fallthrough]];
        case p::IsaLevel::avx2_fma: CHECK((info.avx2 && info.fma)); break;
        case p::IsaLevel::neon: CHECK(info.neon); break;
        case p::IsaLevel::scalar: CHECK_FALSE((info.avx2 && info.fma)); break;
    }
#if defined(__x86_64__)
    // The kernel derives constant_tsc + nonstop_tsc from the same CPUID bit we read (0x80000007 EDX[8]).
    const std::string flags = cpuinfo_flags();
    if (!flags.empty()) {
        const bool kernel_says = flags.find(" constant_tsc ") != std::string::npos &&
                                 flags.find(" nonstop_tsc ") != std::string::npos;
        CHECK(info.invariant_counter == kernel_says);
        CHECK(info.avx2 == (flags.find(" avx2 ") != std::string::npos));
    }
    CHECK(info.isa_level != p::IsaLevel::neon);
#else
    CHECK(info.invariant_counter);
#endif
}

TEST_CASE("isa level names") {
    CHECK(std::string(p::isa_level_name(p::IsaLevel::scalar)) == "scalar");
    CHECK(std::string(p::isa_level_name(p::IsaLevel::avx2_fma)) == "avx2+fma");
    CHECK(std::string(p::isa_level_name(p::IsaLevel::avx512)) == "avx512");
    CHECK(std::string(p::isa_level_name(p::IsaLevel::neon)) == "neon");
}

TEST_CASE("cpu lists parse and format") {
    std::vector<int> cpus;
    REQUIRE(p::parse_cpu_list("0-3,8,10-11", cpus));
    CHECK(cpus == std::vector<int>{0, 1, 2, 3, 8, 10, 11});
    CHECK(p::format_cpu_list(cpus) == "0-3,8,10-11");
    CHECK(p::format_cpu_list({}) == "");
    CHECK(p::format_cpu_list({5}) == "5");
    REQUIRE(p::parse_cpu_list("", cpus));
    CHECK(cpus.empty());
    CHECK_FALSE(p::parse_cpu_list("3-1", cpus));
    CHECK_FALSE(p::parse_cpu_list("a", cpus));
    CHECK_FALSE(p::parse_cpu_list("1,,2", cpus));
    CHECK_FALSE(p::parse_cpu_list("1-2x", cpus));
    CHECK_FALSE(p::parse_cpu_list("-1", cpus));
    CHECK_FALSE(p::parse_cpu_list("0-999999", cpus));
}

TEST_CASE("pinning: a valid cpu works, a bad one is a clear error") {
    const std::vector<int> allowed = p::allowed_cpus();
    REQUIRE_FALSE(allowed.empty());
    std::thread([&] {
        CHECK(p::pin_current_thread(allowed.back()) == 0);
        CHECK(p::current_cpu() == allowed.back());
        CHECK(p::allowed_cpus() == std::vector<int>{allowed.back()});
    }).join();
    CHECK(p::pin_current_thread(-1) == -EINVAL);
    CHECK(message_contains("cpu -1"));
    CHECK(p::pin_current_thread(1 << 20) == -EINVAL);
    // A CPU number inside the set size that this machine does not have.
    const int missing = allowed.back() + 1000;
    CHECK(p::pin_current_thread(missing) == -EINVAL);
    CHECK(message_contains("allowed CPUs"));
}

TEST_CASE("host facts read without failing") {
    CHECK(p::kernel_release().rfind("Linux ", 0) == 0);
    CHECK_FALSE(p::current_clocksource().empty());
    CHECK_FALSE(p::isolated_cpus().empty());
    CHECK_FALSE(p::smt_state().empty());
    CHECK_FALSE(p::scaling_governor(0).empty());
}

TEST_CASE("the cycle counter advances") {
    const std::uint64_t a = p::read_cycles_ordered();
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
    const std::uint64_t b = p::read_cycles_end();
    const std::uint64_t c = p::read_cycles();
    CHECK(b > a);
    CHECK(c >= a);
}

TEST_CASE("memory regions are zeroed, writable and rounded to pages") {
    p::MappedRegion region;
    REQUIRE(p::map_region(3 * 1024 * 1024 + 5, true, region) == 0);
    CHECK(region.base != nullptr);
    CHECK(region.bytes >= 3 * 1024 * 1024 + 5);
    CHECK(region.bytes % static_cast<std::size_t>(sysconf(_SC_PAGESIZE)) == 0);
    const auto* bytes = static_cast<const unsigned char*>(region.base);
    bool all_zero = true;
    for (std::size_t i = 0; i < region.bytes; i += 4093) all_zero = all_zero && bytes[i] == 0;
    CHECK(all_zero);
    std::memset(region.base, 0xAB, region.bytes);
    CHECK(static_cast<unsigned char*>(region.base)[region.bytes - 1] == 0xAB);
    // Without free hugepages the region must say it fell back (callers warn on it).
    if (p::hugepage_facts().free_pages == 0) CHECK_FALSE(region.hugepages);
    p::unmap_region(region);
    CHECK(region.base == nullptr);
    CHECK(region.bytes == 0);
    p::unmap_region(region);  // twice is harmless

    CHECK(p::map_region(0, false, region) == -EINVAL);
    CHECK(message_contains("size is zero"));
    CHECK(p::map_region(std::size_t{1} << 62, false, region) == -ENOMEM);
    CHECK(message_contains("mmap"));
    CHECK(region.base == nullptr);
}

TEST_CASE("locking memory succeeds or names the limit to raise") {
    const int status = p::lock_process_memory();
    if (status == 0) {
        munlockall();
    } else {
        CHECK((status == -ENOMEM || status == -EPERM));
        CHECK(message_contains("RLIMIT_MEMLOCK"));
    }
}

TEST_CASE("failures leave a formatted message and return a negative errno") {
    p::clear_last_error();
    CHECK(std::string(p::last_error_message()).empty());
    CHECK(p::fail(EINVAL, "bad value %d", 5) == -EINVAL);
    CHECK(std::string(p::last_error_message()) == "bad value 5");
    CHECK(p::fail(-EIO, "already negative") == -EIO);
    // Thread-local: another thread does not see this thread's message.
    std::thread([] { CHECK(std::string(p::last_error_message()).empty()); }).join();
}
