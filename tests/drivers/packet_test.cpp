// Packet pools and peer addresses: every buffer handed out once, distinct, aligned and inside the payload region;
// release and reuse; misuse (double release, foreign buffers) refused and counted; bad configurations refused.
// Addresses: IPv4/IPv6 text round trips (fixed examples and random ones against the raw bytes), port edges,
// equality, formatting into small buffers, and every malformed text refused with a message naming it.
#include <doctest/doctest.h>

#include <arpa/inet.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <memory>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "drivers/packet.hpp"
#include "platform/os/last_error.hpp"

using cf::drivers::kInPool;
using cf::drivers::PacketBuffer;
using cf::drivers::PacketPool;
using cf::drivers::PeerAddress;

namespace {

std::unique_ptr<PacketPool> make_pool(std::uint32_t count, std::uint32_t buffer_bytes, bool hugepages = false) {
    std::unique_ptr<PacketPool> pool;
    PacketPool::Config config;
    config.count = count;
    config.buffer_bytes = buffer_bytes;
    config.prefer_hugepages = hugepages;
    const int status = PacketPool::create(config, pool);
    INFO("create: ", std::string(cf::platform::last_error_message()));
    REQUIRE(status == 0);
    REQUIRE(pool != nullptr);
    return pool;
}

std::vector<PacketBuffer*> allocate_all(PacketPool& pool) {
    std::vector<PacketBuffer*> buffers;
    while (PacketBuffer* buffer = pool.allocate()) {
        buffers.push_back(buffer);
        REQUIRE(buffers.size() <= pool.count());
    }
    return buffers;
}

std::string formatted(const PeerAddress& address) {
    char text[64];
    return address.format(text, sizeof text);
}

PeerAddress parsed(const char* text) {
    PeerAddress address;
    const int status = PeerAddress::parse(text, address);
    INFO("parse '", text, "': ", std::string(cf::platform::last_error_message()));
    REQUIRE(status == 0);
    return address;
}

}  // namespace

TEST_CASE("packet pool: every buffer once, distinct, aligned, inside the region") {
    for (const bool hugepages : {false, true}) {
        for (const std::uint32_t asked : {1u, 63u, 64u, 65u, 1500u, 2048u}) {
            const std::uint32_t count = 300;
            auto pool = make_pool(count, asked, hugepages);
            const std::uint32_t rounded = (asked + 63) / 64 * 64;
            CAPTURE(asked);
            CAPTURE(hugepages);
            CHECK(pool->buffer_bytes() == rounded);
            CHECK(pool->count() == count);
            CHECK(pool->available() == count);
            CHECK(pool->region_bytes() == std::size_t{count} * rounded);
            CHECK(reinterpret_cast<std::uintptr_t>(pool->base()) % 64 == 0);

            std::vector<PacketBuffer*> buffers = allocate_all(*pool);
            REQUIRE(buffers.size() == count);
            CHECK(pool->available() == 0);
            CHECK(pool->allocate() == nullptr);

            std::set<const std::byte*> data;
            std::set<std::uint32_t> indices;
            for (PacketBuffer* buffer : buffers) {
                CHECK(buffer->data >= pool->base());
                CHECK(buffer->data + buffer->capacity <= pool->base() + pool->region_bytes());
                CHECK(reinterpret_cast<std::uintptr_t>(buffer->data) % 64 == 0);
                CHECK(buffer->data == pool->base() + std::size_t{buffer->index} * rounded);
                CHECK(buffer->capacity == rounded);
                CHECK(buffer->length == 0);
                CHECK(buffer->segment_size == 0);
                CHECK(buffer->flags == 0);
                CHECK(buffer->peer.length == 0);
                CHECK(pool->owns(buffer));
                CHECK(&pool->at(buffer->index) == buffer);
                data.insert(buffer->data);
                indices.insert(buffer->index);
            }
            CHECK(data.size() == count);
            CHECK(indices.size() == count);
            CHECK(*indices.rbegin() == count - 1);

            // Fill each buffer's whole capacity with its own byte: any overlap shows up as a wrong byte.
            for (PacketBuffer* buffer : buffers) {
                std::memset(buffer->data, static_cast<int>(buffer->index * 7 + 1) & 0xff, buffer->capacity);
            }
            bool intact = true;
            for (PacketBuffer* buffer : buffers) {
                const auto expected = static_cast<std::byte>((buffer->index * 7 + 1) & 0xff);
                for (std::uint32_t i = 0; i < buffer->capacity; ++i) intact = intact && buffer->data[i] == expected;
            }
            CHECK(intact);

            for (PacketBuffer* buffer : buffers) pool->release(buffer);
            CHECK(pool->available() == count);
            CHECK(pool->misuse_count() == 0);
            for (PacketBuffer* buffer : buffers) CHECK(buffer->flags == kInPool);

            // Released buffers are all handed out again, the same set.
            std::vector<PacketBuffer*> again = allocate_all(*pool);
            CHECK(again.size() == count);
            std::sort(buffers.begin(), buffers.end());
            std::sort(again.begin(), again.end());
            CHECK(again == buffers);
            for (PacketBuffer* buffer : again) pool->release(buffer);
        }
    }
}

TEST_CASE("packet pool: a fresh pool hands out in address order; release is last-in first-out") {
    auto pool = make_pool(8, 128);
    PacketBuffer* first = pool->allocate();
    PacketBuffer* second = pool->allocate();
    REQUIRE(first != nullptr);
    REQUIRE(second != nullptr);
    CHECK(first->index == 0);
    CHECK(second->index == 1);

    // A buffer comes back reset, whatever the last user left in it.
    second->length = 99;
    second->segment_size = 500;
    second->flags = 3;
    pool->release(second);
    PacketBuffer* reused = pool->allocate();
    CHECK(reused == second);
    CHECK(reused->length == 0);
    CHECK(reused->segment_size == 0);
    CHECK(reused->flags == 0);
    pool->release(reused);
    pool->release(first);
    CHECK(pool->available() == 8);
}

TEST_CASE("packet pool: misuse is refused and counted, the free list stays intact") {
    auto pool = make_pool(16, 256);
    auto other = make_pool(4, 256);

    SUBCASE("double release") {
        PacketBuffer* buffer = pool->allocate();
        REQUIRE(buffer != nullptr);
        pool->release(buffer);
        CHECK(pool->available() == 16);
        pool->release(buffer);
        CHECK(pool->misuse_count() == 1);
        CHECK(pool->available() == 16);
    }
    SUBCASE("release of a never-allocated buffer") {
        pool->release(&pool->at(5));
        CHECK(pool->misuse_count() == 1);
        CHECK(pool->available() == 16);
    }
    SUBCASE("a buffer from another pool") {
        PacketBuffer* foreign = other->allocate();
        REQUIRE(foreign != nullptr);
        const std::uint32_t before = pool->available();
        PacketBuffer* own = pool->allocate();   // one out, so a wrongly accepted release would show up as a rise
        pool->release(foreign);
        CHECK(pool->misuse_count() == 1);
        CHECK(pool->available() == before - 1);
        pool->release(own);
        CHECK(other->misuse_count() == 0);
        other->release(foreign);
        CHECK(other->available() == 4);
    }
    SUBCASE("a copy of a descriptor, a stack buffer, nullptr") {
        PacketBuffer* buffer = pool->allocate();
        REQUIRE(buffer != nullptr);
        PacketBuffer copy = *buffer;   // same index and data, but not the pool's descriptor
        pool->release(&copy);
        PacketBuffer stack;
        pool->release(&stack);
        pool->release(nullptr);
        CHECK(pool->misuse_count() == 3);
        CHECK(pool->available() == 15);
        pool->release(buffer);
        CHECK(pool->available() == 16);
        CHECK(pool->misuse_count() == 3);
    }
    // Whatever the misuse, every buffer is still handed out exactly once.
    std::vector<PacketBuffer*> all = allocate_all(*pool);
    CHECK(all.size() == 16);
    std::set<PacketBuffer*> distinct(all.begin(), all.end());
    CHECK(distinct.size() == 16);
    for (PacketBuffer* buffer : all) pool->release(buffer);
}

TEST_CASE("packet pool: bad configurations are refused with a message") {
    struct Bad {
        std::uint32_t count;
        std::uint32_t buffer_bytes;
        const char* named;
    };
    const Bad bad[] = {
        {0, 2048, "count"},
        {(1u << 24) + 1, 64, "count"},
        {0xffffffffu, 64, "count"},
        {16, 0, "buffer_bytes"},
        {16, (1u << 20) + 1, "buffer_bytes"},
        {16, 0xffffffffu, "buffer_bytes"},
    };
    for (const Bad& config : bad) {
        CAPTURE(config.count);
        CAPTURE(config.buffer_bytes);
        cf::platform::clear_last_error();
        std::unique_ptr<PacketPool> pool = make_pool(1, 64);   // must be reset on failure
        PacketPool::Config asked;
        asked.count = config.count;
        asked.buffer_bytes = config.buffer_bytes;
        asked.prefer_hugepages = false;
        CHECK(PacketPool::create(asked, pool) == -EINVAL);
        CHECK(pool == nullptr);
        CHECK(std::strstr(cf::platform::last_error_message(), config.named) != nullptr);
    }
    // The largest buffer is accepted (and rounding does not push it past the limit).
    auto largest = make_pool(2, 1u << 20);
    CHECK(largest->buffer_bytes() == (1u << 20));
    PacketBuffer* buffer = largest->allocate();
    REQUIRE(buffer != nullptr);
    buffer->data[(1u << 20) - 1] = std::byte{1};
    largest->release(buffer);
}

TEST_CASE("peer address: fixed IPv4 and IPv6 texts round-trip") {
    struct Example {
        const char* text;
        int family;
        std::uint16_t port;
    };
    const Example examples[] = {
        {"127.0.0.1:5000", AF_INET, 5000},
        {"0.0.0.0:0", AF_INET, 0},
        {"255.255.255.255:65535", AF_INET, 65535},
        {"10.1.2.3:80", AF_INET, 80},
        {"[::1]:5000", AF_INET6, 5000},
        {"[::]:0", AF_INET6, 0},
        {"[fe80::1:2]:65535", AF_INET6, 65535},
        {"[2001:db8::8:800:200c:417a]:443", AF_INET6, 443},
        {"[::ffff:1.2.3.4]:9", AF_INET6, 9},
        {"[1:2:3:4:5:6:7:8]:1", AF_INET6, 1},
    };
    for (const Example& example : examples) {
        CAPTURE(example.text);
        const PeerAddress address = parsed(example.text);
        CHECK(address.addr.any.sa_family == example.family);
        CHECK(address.length == (example.family == AF_INET ? sizeof(sockaddr_in) : sizeof(sockaddr_in6)));
        CHECK(address.port() == example.port);
        CHECK(formatted(address) == example.text);
        CHECK(parsed(formatted(address).c_str()) == address);
    }
    // The kernel's view of the bytes, not just our own formatter's.
    const PeerAddress v4 = parsed("192.168.1.20:4242");
    CHECK(ntohl(v4.addr.v4.sin_addr.s_addr) == 0xC0A80114u);
    CHECK(ntohs(v4.addr.v4.sin_port) == 4242);
    const PeerAddress v6 = parsed("[2001:db8::ff]:7");
    const unsigned char expected[16] = {0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff};
    CHECK(std::memcmp(&v6.addr.v6.sin6_addr, expected, 16) == 0);
    CHECK(ntohs(v6.addr.v6.sin6_port) == 7);
}

TEST_CASE("peer address: random addresses round-trip through text against their raw bytes") {
    std::mt19937_64 random(20240605);
    for (int round = 0; round < 2000; ++round) {
        const auto port = static_cast<std::uint16_t>(random());
        if (round % 2 == 0) {
            const auto host = static_cast<std::uint32_t>(random());
            char text[64];
            std::snprintf(text, sizeof text, "%u.%u.%u.%u:%u", host >> 24, (host >> 16) & 255, (host >> 8) & 255,
                          host & 255, unsigned{port});
            CAPTURE(text);
            const PeerAddress address = parsed(text);
            CHECK(address.addr.any.sa_family == AF_INET);
            CHECK(ntohl(address.addr.v4.sin_addr.s_addr) == host);
            CHECK(address.port() == port);
            CHECK(formatted(address) == text);
        } else {
            PeerAddress reference;
            reference.addr.v6.sin6_family = AF_INET6;
            reference.addr.v6.sin6_port = htons(port);
            for (auto& byte : reference.addr.v6.sin6_addr.s6_addr) {
                // Runs of zero bytes, so "::" compression is exercised too.
                byte = random() % 3 == 0 ? 0 : static_cast<std::uint8_t>(random());
            }
            reference.length = sizeof(sockaddr_in6);
            const std::string text = formatted(reference);
            CAPTURE(text);
            CHECK(text.front() == '[');
            const PeerAddress address = parsed(text.c_str());
            CHECK(std::memcmp(&address.addr.v6.sin6_addr, &reference.addr.v6.sin6_addr, 16) == 0);
            CHECK(address.port() == port);
            CHECK(address == reference);
        }
    }
}

TEST_CASE("peer address: equality compares family, address and port only") {
    const PeerAddress a = parsed("10.0.0.1:80");
    CHECK(a == parsed("10.0.0.1:80"));
    CHECK_FALSE(a == parsed("10.0.0.1:81"));
    CHECK_FALSE(a == parsed("10.0.0.2:80"));
    CHECK_FALSE(a == parsed("[::ffff:10.0.0.1]:80"));
    PeerAddress padded = a;
    std::memset(padded.addr.v4.sin_zero, 0xAB, sizeof padded.addr.v4.sin_zero);
    CHECK(padded == a);

    const PeerAddress b = parsed("[::1]:80");
    PeerAddress flow = b;
    flow.addr.v6.sin6_flowinfo = htonl(12345);
    CHECK(flow == b);
    PeerAddress scoped = b;
    scoped.addr.v6.sin6_scope_id = 2;
    CHECK_FALSE(scoped == b);
    CHECK_FALSE(b == parsed("[::1]:81"));
    CHECK_FALSE(b == parsed("[::2]:80"));

    const PeerAddress unset;
    CHECK(unset == PeerAddress());
    CHECK_FALSE(unset == a);
    CHECK_FALSE(a == unset);
    CHECK(unset.port() == 0);
    CHECK(formatted(unset) == "(unset)");
}

TEST_CASE("peer address: formatting into short buffers truncates and terminates") {
    const PeerAddress address = parsed("[2001:db8::1]:65535");
    char text[8];
    std::memset(text, 'x', sizeof text);
    CHECK(address.format(text, sizeof text) == text);
    CHECK(std::string(text) == "[2001:d");
    char untouched[4] = {'a', 'b', 'c', '\0'};
    CHECK(address.format(untouched, 0) == untouched);
    CHECK(std::string(untouched) == "abc");
}

TEST_CASE("peer address: malformed text is refused with a message naming it") {
    const char* const bad[] = {
        "",                    // empty
        "1.2.3.4",             // no port
        "1.2.3.4:",            // empty port
        "1.2.3.4:65536",       // port too large
        "1.2.3.4:123456",      // far too large
        "1.2.3.4:000080",      // more than five digits
        "1.2.3.4:-1",          // sign
        "1.2.3.4:+80",
        "1.2.3.4: 80",
        "::1:5",               // IPv6 without brackets
        "[::1]5",              // no ':' after ']'
        "[::1]",
        "[::1",                // unclosed
        "[]:80",
        "[1.2.3.4]:80",        // IPv4 in brackets
        "[::1%1]:80",          // scopes are not numeric-only text we accept
        "host:80",             // names are never resolved
        "localhost:80",
        "1.2.3.4:80x",         // trailing garbage
        "1.2.3.4:80 ",
        "[::1]:80]",
        "[::1]:80:80",
        " 1.2.3.4:80",         // leading space
        "1.2.3:80",            // three parts
        "1.2.3.4.5:80",
        "1.2.3.256:80",
        "01.2.3.4:80",         // leading zero (octal in some parsers)
        ":80",
        "[:::]:80",
    };
    const PeerAddress sentinel = parsed("9.9.9.9:9");
    for (const char* text : bad) {
        CAPTURE(text);
        PeerAddress out = sentinel;
        cf::platform::clear_last_error();
        CHECK(PeerAddress::parse(text, out) == -EINVAL);
        CHECK(out == sentinel);
        const std::string message = cf::platform::last_error_message();
        CAPTURE(message);
        CHECK(message.find(std::string("'") + text + "'") != std::string::npos);
    }
    PeerAddress out;
    CHECK(PeerAddress::parse(nullptr, out) == -EINVAL);
    CHECK(out.length == 0);

    // A huge text is refused and quoted only in part: the reason still fits in the message.
    const std::string huge = "1" + std::string(5000, '.') + ":80";
    CHECK(PeerAddress::parse(huge.c_str(), out) == -EINVAL);
    const std::string message = cf::platform::last_error_message();
    CHECK(message.size() < 300);
    CHECK(message.find("address length") != std::string::npos);
}
