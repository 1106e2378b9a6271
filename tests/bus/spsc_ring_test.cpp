// SPSC ring: layout and sizes exactly, bad geometry and bad blocks refused, random claim/commit/poll sequences
// against a std::deque model (capacity 2 to 4096, every batch size, wrap-around many times), the largest slot and
// capacity, two threads streaming whole-slot patterns, and a second view of the block at another address.
#include <doctest/doctest.h>

#include <sys/mman.h>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <deque>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "engine/bus/mpsc_ring.hpp"
#include "engine/bus/spsc_ring.hpp"
#include "platform/os/last_error.hpp"
#include "tests/bus/ring_test_support.hpp"

using cf::bus::RingGeometry;
using cf::bus::SpscRing;
using namespace cf::test;

namespace {

#if defined(__SANITIZE_THREAD__) || defined(__SANITIZE_ADDRESS__)
constexpr std::uint64_t kStressMessages = 60'000;
#else
constexpr std::uint64_t kStressMessages = 1'000'000;
#endif

bool aligned8(const void* p) { return reinterpret_cast<std::uintptr_t>(p) % 8 == 0; }

}  // namespace

TEST_CASE("sizes: header and two 128-byte index regions, then slots rounded up to 8 bytes") {
    CHECK(SpscRing::bytes_needed({2, 1}) == 384 + 2 * 8);
    CHECK(SpscRing::bytes_needed({8, 64}) == 384 + 8 * 64);
    CHECK(SpscRing::bytes_needed({4, 65}) == 384 + 4 * 72);
    CHECK(SpscRing::bytes_needed({4, 88}) == 384 + 4 * 88);   // a topic's 64-byte message with its header
    CHECK(SpscRing::bytes_needed({1u << 24, 1}) == 384 + (std::size_t{1} << 24) * 8);
    CHECK(SpscRing::bytes_needed({2, 1u << 20}) == 384 + 2 * (std::size_t{1} << 20));
}

TEST_CASE("bad geometry is refused with -EINVAL and a message") {
    Block block(1 << 16);
    const RingGeometry bad[] = {{0, 8}, {1, 8}, {3, 8}, {6, 8}, {1u << 25, 8}, {0x80000000u, 8},
                                {4, 0}, {4, (1u << 20) + 1}};
    for (const RingGeometry& geometry : bad) {
        CAPTURE(geometry.capacity);
        CAPTURE(geometry.slot_bytes);
        CHECK(SpscRing::bytes_needed(geometry) == 0);
        cf::platform::clear_last_error();
        CHECK(SpscRing::format(block.data, block.bytes, geometry) == -EINVAL);
        CHECK(!last_error().empty());
    }
    CHECK(SpscRing::format(block.data, block.bytes, {4, 0}) == -EINVAL);
    CHECK(last_error().find("slot size 0") != std::string::npos);
}

TEST_CASE("format refuses a null, misaligned or short block") {
    const RingGeometry geometry{8, 32};
    const std::size_t needed = SpscRing::bytes_needed(geometry);
    Block block(needed + 64);
    CHECK(SpscRing::format(nullptr, needed, geometry) == -EINVAL);
    CHECK(SpscRing::format(block.data + 16, needed, geometry) == -EINVAL);
    CHECK(last_error().find("aligned") != std::string::npos);
    CHECK(SpscRing::format(block.data, needed - 1, geometry) == -EINVAL);
    CHECK(last_error().find("too small") != std::string::npos);
    CHECK(SpscRing::format(block.data, needed, geometry) == 0);
}

TEST_CASE("attach checks the block: magic, kind, version, checksum, size, positions") {
    const RingGeometry geometry{8, 32};
    const std::size_t needed = SpscRing::bytes_needed(geometry);
    Block block(needed);
    SpscRing ring;

    SUBCASE("a block never formatted") {
        std::memset(block.data, 0, needed);
        CHECK(SpscRing::attach(block.data, needed, ring) == -EPROTO);
        CHECK(last_error().find("not formatted") != std::string::npos);
    }
    SUBCASE("garbage") {
        std::memset(block.data, 0xA5, needed);
        CHECK(SpscRing::attach(block.data, needed, ring) == -EPROTO);
        CHECK(last_error().find("magic") != std::string::npos);
    }
    SUBCASE("another kind of ring") {
        Block other(cf::bus::MpscRing::bytes_needed(geometry));
        REQUIRE(cf::bus::MpscRing::format(other.data, other.bytes, geometry) == 0);
        CHECK(SpscRing::attach(other.data, other.bytes, ring) == -EPROTO);
        CHECK(last_error().find("MPSC") != std::string::npos);
    }
    SUBCASE("corrupt header fields") {
        REQUIRE(SpscRing::format(block.data, needed, geometry) == 0);
        auto* header = reinterpret_cast<cf::bus::RingHeader*>(block.data);
        SUBCASE("layout version") {
            header->layout_version = 1;   // the 64-byte-stride layout of 0.4
            CHECK(SpscRing::attach(block.data, needed, ring) == -EPROTO);
            CHECK(last_error().find("version 1") != std::string::npos);
        }
        SUBCASE("capacity") {
            header->capacity = 16;
            CHECK(SpscRing::attach(block.data, needed, ring) == -EPROTO);
            CHECK(last_error().find("checksum") != std::string::npos);
        }
        SUBCASE("slot size") {
            header->slot_bytes = 31;
            CHECK(SpscRing::attach(block.data, needed, ring) == -EPROTO);
        }
        SUBCASE("checksum") {
            header->checksum ^= 1;
            CHECK(SpscRing::attach(block.data, needed, ring) == -EPROTO);
        }
        CHECK(!ring.attached());
    }
    SUBCASE("block smaller than the ring, misaligned, null") {
        REQUIRE(SpscRing::format(block.data, needed, geometry) == 0);
        CHECK(SpscRing::attach(block.data, needed - 1, ring) == -EINVAL);
        CHECK(last_error().find("smaller") != std::string::npos);
        CHECK(SpscRing::attach(block.data, 64, ring) == -EINVAL);
        CHECK(SpscRing::attach(block.data + 64, needed - 64, ring) == -EPROTO);   // aligned, but no header there
        CHECK(SpscRing::attach(block.data + 8, needed - 8, ring) == -EINVAL);
        CHECK(SpscRing::attach(nullptr, needed, ring) == -EINVAL);
        CHECK(!ring.attached());
    }
    SUBCASE("positions out of order") {
        REQUIRE(SpscRing::format(block.data, needed, geometry) == 0);
        auto* control = reinterpret_cast<SpscRing::Control*>(block.data + cf::bus::kControlOffset);
        control->consumer.head.store(5);   // head past tail
        CHECK(SpscRing::attach(block.data, needed, ring) == -EPROTO);
        CHECK(last_error().find("positions") != std::string::npos);
        control->consumer.head.store(0);
        control->producer.tail.store(9);   // more than capacity ahead
        CHECK(SpscRing::attach(block.data, needed, ring) == -EPROTO);
        control->producer.tail.store(8);   // exactly full is fine
        CHECK(SpscRing::attach(block.data, needed, ring) == 0);
        CHECK(ring.available(100) == 8);
        CHECK(ring.try_claim() == nullptr);
    }
}

TEST_CASE("empty, full, claims invisible until commit, payloads 8-byte aligned, packed and distinct") {
    const RingGeometry geometry{4, 100};
    FormattedRing<SpscRing> formatted(geometry);
    SpscRing& ring = formatted.ring;
    CHECK(ring.capacity() == 4);
    CHECK(ring.slot_bytes() == 100);
    CHECK(ring.available(8) == 0);
    CHECK(ring.poll(8, [](const std::byte*) { FAIL("empty ring delivered"); }) == 0);

    std::vector<std::byte*> slots;
    for (int i = 0; i < 4; ++i) {
        std::byte* slot = ring.try_claim();
        REQUIRE(slot != nullptr);
        CHECK(aligned8(slot));
        CHECK(slot >= formatted.block.data + 384);
        CHECK(slot + 100 <= formatted.block.data + formatted.block.bytes);
        fill_pattern(slot, 100, static_cast<std::uint64_t>(i));
        slots.push_back(slot);
    }
    for (std::size_t i = 1; i < slots.size(); ++i) CHECK(slots[i] == slots[i - 1] + 104);   // 100 rounded up to 8
    CHECK(ring.try_claim() == nullptr);                 // full: 4 claims outstanding
    CHECK(ring.try_claim_batch(3) == 0);
    CHECK(ring.available(8) == 0);                      // nothing committed yet
    CHECK(ring.producer_position() == 0);
    ring.commit();
    CHECK(ring.producer_position() == 4);
    CHECK(ring.available(2) == 2);
    CHECK(ring.available(8) == 4);
    for (std::uint32_t i = 0; i < 4; ++i) CHECK(check_pattern(ring.slot(i), 100, i));
    ring.release(1);
    CHECK(ring.consumer_position() == 1);
    CHECK(ring.available(8) == 3);
    std::byte* again = ring.try_claim();                 // the slot of position 0, next lap
    CHECK(again == slots[0]);
    CHECK(ring.try_claim() == nullptr);
}

TEST_CASE("random claims, batches, commits and polls match a deque model") {
    const RingGeometry geometries[] = {{2, 1}, {2, 64}, {8, 24}, {64, 200}, {4096, 16}};
    std::mt19937_64 random(0xC0FFEE);
    for (const RingGeometry& geometry : geometries) {
        CAPTURE(geometry.capacity);
        CAPTURE(geometry.slot_bytes);
        FormattedRing<SpscRing> formatted(geometry);
        SpscRing& ring = formatted.ring;

        const std::uint32_t capacity = geometry.capacity;
        std::deque<std::uint64_t> committed;   // committed, not released
        std::vector<std::uint64_t> pending;    // claimed, not committed
        std::uint64_t next_value = 0, released = 0;
        std::uint64_t mismatches = 0;   // payloads that differ from the model (counted: one assertion per step)
        const int steps = capacity > 1000 ? 6000 : 12000;
        for (int step = 0; step < steps; ++step) {
            const auto in_ring = committed.size() + pending.size();
            switch (random() % 6) {
                case 0: {   // one claim
                    std::byte* slot = ring.try_claim();
                    REQUIRE((slot != nullptr) == (in_ring < capacity));
                    if (slot != nullptr) {
                        mismatches += !aligned8(slot);
                        fill_pattern(slot, geometry.slot_bytes, next_value);
                        pending.push_back(next_value++);
                    }
                    break;
                }
                case 1: {   // a batch of 1..capacity
                    const auto wanted = static_cast<std::uint32_t>(1 + random() % capacity);
                    const std::uint32_t got = ring.try_claim_batch(wanted);
                    const auto expected = std::min<std::uint64_t>(wanted, capacity - in_ring);
                    REQUIRE(got == expected);
                    for (std::uint32_t i = 0; i < got; ++i) {
                        fill_pattern(ring.claimed_slot(i), geometry.slot_bytes, next_value);
                        pending.push_back(next_value++);
                    }
                    break;
                }
                case 2:   // commit everything claimed
                    ring.commit();
                    committed.insert(committed.end(), pending.begin(), pending.end());
                    pending.clear();
                    break;
                case 3: {   // look, then release part
                    const auto max = static_cast<std::uint32_t>(random() % (capacity + 2));
                    const std::uint32_t count = ring.available(max);
                    REQUIRE(count == std::min<std::uint64_t>(max, committed.size()));
                    for (std::uint32_t i = 0; i < count; ++i) {
                        mismatches += !check_pattern(ring.slot(i), geometry.slot_bytes, committed[i]);
                    }
                    const auto n = static_cast<std::uint32_t>(random() % (count + 1));
                    ring.release(n);
                    committed.erase(committed.begin(), committed.begin() + n);
                    released += n;
                    break;
                }
                default: {   // poll
                    const auto max = static_cast<std::uint32_t>(1 + random() % (capacity + 1));
                    const auto expected = std::min<std::uint64_t>(max, committed.size());
                    std::uint32_t calls = 0;
                    const std::uint32_t count = ring.poll(max, [&](const std::byte* payload) {
                        if (committed.empty()) {
                            ++mismatches;
                            return;
                        }
                        mismatches += !check_pattern(payload, geometry.slot_bytes, committed.front());
                        committed.pop_front();
                        ++calls;
                    });
                    CHECK(count == expected);
                    CHECK(calls == count);
                    released += count;
                    break;
                }
            }
            REQUIRE(ring.producer_position() == released + committed.size());
            REQUIRE(ring.consumer_position() == released);
            REQUIRE(mismatches == 0);
        }
        CHECK(released / capacity >= 100);   // wrapped around many times
    }
}

TEST_CASE("the largest slot (1 MiB) carries a whole-slot pattern") {
    const RingGeometry geometry{2, cf::bus::kMaxSlotBytes};
    FormattedRing<SpscRing> formatted(geometry);
    SpscRing& ring = formatted.ring;
    for (std::uint64_t value = 0; value < 5; ++value) {
        std::byte* slot = ring.try_claim();
        REQUIRE(slot != nullptr);
        fill_pattern(slot, geometry.slot_bytes, value);
        ring.commit();
        CHECK(ring.poll(4, [&](const std::byte* payload) {
            CHECK(check_pattern(payload, geometry.slot_bytes, value));
        }) == 1);
    }
}

TEST_CASE("the largest capacity (2^24 slots) in a lazily mapped block") {
    const RingGeometry geometry{cf::bus::kMaxRingCapacity, 1};
    const std::size_t bytes = SpscRing::bytes_needed(geometry);
    void* memory = mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    REQUIRE(memory != MAP_FAILED);
    REQUIRE(SpscRing::format(memory, bytes, geometry) == 0);   // touches the header pages only
    SpscRing ring;
    REQUIRE(SpscRing::attach(memory, bytes, ring) == 0);
    CHECK(ring.capacity() == cf::bus::kMaxRingCapacity);
    CHECK(ring.try_claim_batch(1000) == 1000);
    CHECK(ring.claimed_slot(999) == static_cast<std::byte*>(memory) + 384 + 999 * 8);
    for (std::uint32_t i = 0; i < 1000; ++i) *ring.claimed_slot(i) = static_cast<std::byte>(i);
    ring.commit();
    CHECK(ring.available(5000) == 1000);
    CHECK(*ring.slot(999) == static_cast<std::byte>(999 & 0xff));
    munmap(memory, bytes);
}

TEST_CASE("two threads: every message once, in order, whole slot intact") {
    for (const RingGeometry geometry : {RingGeometry{2, 24}, RingGeometry{256, 120}}) {
        CAPTURE(geometry.capacity);
        FormattedRing<SpscRing> formatted(geometry);
        SpscRing& ring = formatted.ring;   // one view shared by both threads
        const std::uint64_t total = geometry.capacity == 2 ? kStressMessages / 4 : kStressMessages;

        std::thread producer([&] {
            std::mt19937 random(7);
            std::uint64_t next = 0;
            while (next < total) {
                const auto wanted =
                    static_cast<std::uint32_t>(std::min<std::uint64_t>(1 + random() % 40, total - next));
                const std::uint32_t got = ring.try_claim_batch(wanted);
                if (got == 0) {
                    std::this_thread::yield();
                    continue;
                }
                for (std::uint32_t i = 0; i < got; ++i) fill_pattern(ring.claimed_slot(i), geometry.slot_bytes, next++);
                ring.commit();
            }
        });

        std::uint64_t expected = 0;
        std::uint64_t bad = 0;
        std::mt19937 random(11);
        while (expected < total) {
            const auto max = static_cast<std::uint32_t>(1 + random() % 64);
            const std::uint32_t count = ring.poll(max, [&](const std::byte* payload) {
                if (!check_pattern(payload, geometry.slot_bytes, expected)) ++bad;
                ++expected;
            });
            if (count == 0) std::this_thread::yield();
        }
        producer.join();
        CHECK(bad == 0);
        CHECK(expected == total);
        CHECK(ring.producer_position() == ring.consumer_position());
    }
}

TEST_CASE("a second view at another address (as another process) exchanges messages both ways") {
    const RingGeometry geometry{16, 48};
    const std::size_t bytes = SpscRing::bytes_needed(geometry);
    DoubleMapping mapping(bytes);
    REQUIRE(mapping.first != mapping.second);
    REQUIRE(SpscRing::format(mapping.first, bytes, geometry) == 0);

    SpscRing writer, reader;
    REQUIRE(SpscRing::attach(mapping.first, bytes, writer) == 0);
    for (std::uint64_t value = 0; value < 5; ++value) {
        fill_pattern(writer.try_claim(), geometry.slot_bytes, value);
    }
    writer.commit();
    {
        // Claims never committed die with their view: a view attached later claims the same position again.
        SpscRing doomed;
        REQUIRE(SpscRing::attach(mapping.first, bytes, doomed) == 0);
        fill_pattern(doomed.try_claim(), geometry.slot_bytes, 999);
    }

    // The second view starts from the positions in the block.
    REQUIRE(SpscRing::attach(mapping.second, bytes, reader) == 0);
    CHECK(reader.producer_position() == 5);
    CHECK(reader.available(16) == 5);
    CHECK(reinterpret_cast<std::uintptr_t>(reader.slot(0)) - reinterpret_cast<std::uintptr_t>(mapping.second) ==
          384);
    for (std::uint32_t i = 0; i < 5; ++i) CHECK(check_pattern(reader.slot(i), geometry.slot_bytes, i));
    reader.release(5);
    CHECK(writer.consumer_position() == 5);

    // Then a stream across threads, each through its own mapping.
    const std::uint64_t total = kStressMessages / 10;
    std::thread producer([&] {
        std::uint64_t next = 5;
        while (next < total) {
            std::byte* slot = writer.try_claim();
            if (slot == nullptr) {
                std::this_thread::yield();
                continue;
            }
            fill_pattern(slot, geometry.slot_bytes, next++);
            writer.commit();
        }
    });
    std::uint64_t expected = 5, bad = 0;
    while (expected < total) {
        if (reader.poll(8, [&](const std::byte* payload) {
                if (!check_pattern(payload, geometry.slot_bytes, expected)) ++bad;
                ++expected;
            }) == 0) {
            std::this_thread::yield();
        }
    }
    producer.join();
    CHECK(bad == 0);
    CHECK(expected == total);

    // A view attached after the fact agrees on where both sides are.
    SpscRing late;
    REQUIRE(SpscRing::attach(mapping.second, bytes, late) == 0);
    CHECK(late.producer_position() == total);
    CHECK(late.consumer_position() == total);
    CHECK(late.available(4) == 0);
}
