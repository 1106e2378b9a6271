// MPSC ring: layout and sizes, bad geometry and bad blocks refused, out-of-order commits and reclaims against a
// model in one thread (capacity 2 to 1024, batches, wrap-around many times), producer threads (no loss, no
// duplicate, per-producer order, whole slots intact; a tiny ring that is full all the time), and producers
// writing through a second mapping of the block.
#include <doctest/doctest.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstring>
#include <map>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "engine/bus/mpsc_ring.hpp"
#include "engine/bus/spsc_ring.hpp"
#include "tests/bus/ring_test_support.hpp"

using cf::bus::MpscRing;
using cf::bus::RingGeometry;
using namespace cf::test;

namespace {

#if defined(__SANITIZE_THREAD__) || defined(__SANITIZE_ADDRESS__)
constexpr std::uint64_t kStressPerProducer = 15'000;
#else
constexpr std::uint64_t kStressPerProducer = 200'000;
#endif

// Stress payload: producer id and sequence in the value, the pattern over the whole slot.
constexpr std::uint64_t message_value(std::uint64_t producer, std::uint64_t sequence) {
    return producer << 48 | sequence;
}

// Runs `producers` threads of kStressPerProducer messages each through `views[p % views.size()]` into the ring
// `consumer` reads, and checks what arrives.
// `base`: positions consumed before.
void run_producers(std::vector<MpscRing*> views, MpscRing& consumer, int producers, std::uint32_t slot_bytes,
                   std::uint64_t base = 0) {
    std::vector<std::thread> threads;
    for (int p = 0; p < producers; ++p) {
        threads.emplace_back([&views, p, slot_bytes] {
            MpscRing& ring = *views[static_cast<std::size_t>(p) % views.size()];
            std::mt19937 random(static_cast<unsigned>(100 + p));
            std::uint64_t next = 0;
            while (next < kStressPerProducer) {
                if (random() % 4 == 0) {   // a batch now and then
                    std::uint64_t first = 0;
                    const auto wanted = static_cast<std::uint32_t>(
                        std::min<std::uint64_t>(1 + random() % 8, kStressPerProducer - next));
                    const std::uint32_t got = ring.try_claim_batch(wanted, first);
                    for (std::uint32_t i = 0; i < got; ++i) {
                        fill_pattern(ring.claimed_slot(first + i), slot_bytes,
                                     message_value(static_cast<std::uint64_t>(p), next++));
                    }
                    for (std::uint32_t i = got; i-- > 0;) ring.commit(first + i);   // out of order on purpose
                    if (got == 0) std::this_thread::yield();
                    continue;
                }
                std::uint64_t position = 0;
                std::byte* slot = ring.try_claim(position);
                if (slot == nullptr) {
                    std::this_thread::yield();
                    continue;
                }
                fill_pattern(slot, slot_bytes, message_value(static_cast<std::uint64_t>(p), next++));
                ring.commit(position);
            }
        });
    }
    const std::uint64_t total = kStressPerProducer * static_cast<std::uint64_t>(producers);
    std::vector<std::uint64_t> next_expected(static_cast<std::size_t>(producers), 0);
    std::uint64_t received = 0, bad_payload = 0, out_of_order = 0;
    while (received < total) {
        const std::uint32_t count = consumer.poll(32, [&](const std::byte* payload) {
            const std::uint64_t value = value_of(payload);
            const std::uint64_t producer = value >> 48;
            const std::uint64_t sequence = value & ((std::uint64_t{1} << 48) - 1);
            if (producer >= next_expected.size() || !check_pattern(payload, slot_bytes, value)) {
                ++bad_payload;
            } else if (sequence != next_expected[producer]++) {
                ++out_of_order;   // a loss, a duplicate or a reordering within one producer
            }
            ++received;
        });
        if (count == 0) std::this_thread::yield();
    }
    for (auto& thread : threads) thread.join();
    CHECK(bad_payload == 0);
    CHECK(out_of_order == 0);
    CHECK(received == total);
    for (int p = 0; p < producers; ++p) CHECK(next_expected[static_cast<std::size_t>(p)] == kStressPerProducer);
    CHECK(consumer.available(1) == 0);
    CHECK(consumer.claimed_position() == base + total);
    CHECK(consumer.consumer_position() == base + total);
}

}  // namespace

TEST_CASE("sizes: a 16-byte trailer right after the payload rounded up to 8 bytes") {
    CHECK(MpscRing::bytes_needed({2, 1}) == 384 + 2 * 24);
    CHECK(MpscRing::bytes_needed({8, 48}) == 384 + 8 * 64);     // 48 + 16
    CHECK(MpscRing::bytes_needed({8, 49}) == 384 + 8 * 72);     // 56 (payload rounded to 8) + 16
    CHECK(MpscRing::bytes_needed({4, 64}) == 384 + 4 * 80);
    CHECK(MpscRing::bytes_needed({2, 1u << 20}) == 384 + 2 * ((std::size_t{1} << 20) + 16));
    CHECK(MpscRing::bytes_needed({1, 8}) == 0);
    CHECK(MpscRing::bytes_needed({8, 0}) == 0);
    CHECK(MpscRing::bytes_needed({(1u << 24) * 2, 8}) == 0);
}

TEST_CASE("format and attach refuse bad geometry and bad blocks") {
    const RingGeometry geometry{8, 40};
    const std::size_t needed = MpscRing::bytes_needed(geometry);
    Block block(needed);
    MpscRing ring;
    CHECK(MpscRing::format(block.data, needed, {12, 40}) == -EINVAL);
    CHECK(last_error().find("power of two") != std::string::npos);
    CHECK(MpscRing::format(block.data, needed - 1, geometry) == -EINVAL);
    CHECK(MpscRing::format(block.data + 32, needed - 32, geometry) == -EINVAL);
    CHECK(MpscRing::format(nullptr, needed, geometry) == -EINVAL);

    std::memset(block.data, 0, needed);
    CHECK(MpscRing::attach(block.data, needed, ring) == -EPROTO);

    Block spsc(cf::bus::SpscRing::bytes_needed(geometry));
    REQUIRE(cf::bus::SpscRing::format(spsc.data, spsc.bytes, geometry) == 0);
    CHECK(MpscRing::attach(spsc.data, spsc.bytes, ring) == -EPROTO);
    CHECK(last_error().find("SPSC") != std::string::npos);

    REQUIRE(MpscRing::format(block.data, needed, geometry) == 0);
    auto* header = reinterpret_cast<cf::bus::RingHeader*>(block.data);
    header->slot_stride = 128;   // consistent-looking but not what the geometry gives
    CHECK(MpscRing::attach(block.data, needed, ring) == -EPROTO);
    REQUIRE(MpscRing::format(block.data, needed, geometry) == 0);
    header->magic.store(0x1234);
    CHECK(MpscRing::attach(block.data, needed, ring) == -EPROTO);
    CHECK(last_error().find("magic") != std::string::npos);
    REQUIRE(MpscRing::format(block.data, needed, geometry) == 0);
    CHECK(MpscRing::attach(block.data, needed - 64, ring) == -EINVAL);
    auto* control = reinterpret_cast<MpscRing::Control*>(block.data + cf::bus::kControlOffset);
    control->producers.tail.store(20);   // 20 claimed, none consumed, capacity 8
    CHECK(MpscRing::attach(block.data, needed, ring) == -EPROTO);
    CHECK(!ring.attached());
    control->producers.tail.store(0);
    REQUIRE(MpscRing::attach(block.data, needed, ring) == 0);
    CHECK(ring.capacity() == 8);
    CHECK(ring.slot_bytes() == 40);
}

TEST_CASE("the consumer stops at the first uncommitted position; commits may come in any order") {
    const RingGeometry geometry{4, 16};
    FormattedRing<MpscRing> formatted(geometry);
    MpscRing& ring = formatted.ring;

    std::uint64_t positions[5] = {};
    std::byte* slots[5] = {};
    for (int i = 0; i < 4; ++i) {
        slots[i] = ring.try_claim(positions[i]);
        REQUIRE(slots[i] != nullptr);
        CHECK(positions[i] == static_cast<std::uint64_t>(i));
        CHECK(reinterpret_cast<std::uintptr_t>(slots[i]) % 8 == 0);
        fill_pattern(slots[i], 16, 100 + positions[i]);
    }
    CHECK(ring.try_claim(positions[4]) == nullptr);   // full at once
    std::uint64_t first = 99;
    CHECK(ring.try_claim_batch(2, first) == 0);
    CHECK(first == 99);
    CHECK(ring.claimed_position() == 4);

    ring.commit(2);
    ring.commit(1);
    CHECK(ring.available(4) == 0);   // position 0 is not committed
    ring.commit(0);
    CHECK(ring.available(4) == 3);   // 0, 1, 2; 3 is not
    CHECK(ring.available(2) == 2);
    for (std::uint32_t i = 0; i < 3; ++i) CHECK(check_pattern(ring.slot(i), 16, 100 + i));
    std::vector<std::uint64_t> seen;
    CHECK(ring.poll(2, [&](const std::byte* p) { seen.push_back(value_of(p)); }) == 2);
    CHECK(seen == std::vector<std::uint64_t>{100, 101});
    CHECK(ring.consumer_position() == 2);

    // Two slots free again: a batch takes both, in the next lap.
    CHECK(ring.try_claim_batch(3, first) == 2);
    CHECK(first == 4);
    CHECK(ring.claimed_slot(4) == slots[0]);
    CHECK(ring.claimed_slot(5) == slots[1]);
    fill_pattern(ring.claimed_slot(4), 16, 104);
    fill_pattern(ring.claimed_slot(5), 16, 105);
    ring.commit(5);
    ring.commit(4);
    ring.commit(3);
    seen.clear();
    CHECK(ring.poll(10, [&](const std::byte* p) { seen.push_back(value_of(p)); }) == 4);
    CHECK(seen == std::vector<std::uint64_t>{102, 103, 104, 105});
    CHECK(ring.available(1) == 0);
}

TEST_CASE("reclaim: a claim that will never be committed stops blocking the consumer, exactly once") {
    const RingGeometry geometry{4, 24};
    FormattedRing<MpscRing> formatted(geometry);
    MpscRing& ring = formatted.ring;

    std::uint64_t dead = 0, alive = 0, late = 0;
    REQUIRE(ring.try_claim(dead) != nullptr);   // its producer "dies" here
    fill_pattern(ring.try_claim(alive), 24, 7);
    ring.commit(alive);
    CHECK(ring.available(4) == 0);

    CHECK(ring.reclaim(alive) == -EALREADY);     // committed: the message stays
    CHECK(last_error().find("committed") != std::string::npos);
    CHECK(ring.reclaim(2) == -EINVAL);           // never claimed
    CHECK(last_error().find("not been claimed") != std::string::npos);
    CHECK(ring.reclaim(dead) == 0);
    CHECK(ring.reclaimed_count() == 1);
    CHECK(ring.reclaim(dead) == -EALREADY);      // a second reclaim loses like a late commit would

    REQUIRE(ring.try_claim(late) != nullptr);   // position 2, claimed but not committed yet
    CHECK(ring.available(4) == 2);
    CHECK(ring.reclaimed(0));
    CHECK_FALSE(ring.reclaimed(1));
    CHECK(check_pattern(ring.slot(1), 24, 7));
    std::vector<std::uint64_t> seen;
    CHECK(ring.poll(4, [&](const std::byte* p) { seen.push_back(value_of(p)); }) == 2);   // 2 positions consumed
    CHECK(seen == std::vector<std::uint64_t>{7});                                         // 1 message delivered
    CHECK(ring.reclaim(dead) == -EINVAL);        // already consumed
    CHECK(last_error().find("consumed") != std::string::npos);

    // The reclaimed slot is an ordinary slot on the next lap: flag cleared.
    fill_pattern(ring.claimed_slot(late), 24, 8);
    ring.commit(late);
    std::uint64_t next_lap[3] = {};
    for (std::uint64_t& position : next_lap) {
        std::byte* payload = ring.try_claim(position);
        REQUIRE(payload != nullptr);
        fill_pattern(payload, 24, 10 + position);
        ring.commit(position);
    }
    CHECK(next_lap[1] == 4);                     // the dead claim's slot again
    CHECK(ring.available(8) == 4);
    for (std::uint32_t i = 0; i < 4; ++i) CHECK_FALSE(ring.reclaimed(i));
    seen.clear();
    CHECK(ring.poll(8, [&](const std::byte* p) { seen.push_back(value_of(p)); }) == 4);
    CHECK(seen == std::vector<std::uint64_t>{8, 13, 14, 15});
}

TEST_CASE("try_commit: a commit that comes after a reclaim fails instead of wedging the ring") {
    const RingGeometry geometry{2, 16};
    FormattedRing<MpscRing> formatted(geometry);
    MpscRing& ring = formatted.ring;

    std::uint64_t slow = 0, other = 0;
    REQUIRE(ring.try_claim(slow) != nullptr);
    CHECK(ring.try_commit(slow));                  // the normal case: committed
    CHECK_FALSE(ring.try_commit(slow));            // twice: refused
    CHECK(ring.poll(4, [](const std::byte*) {}) == 1);

    REQUIRE(ring.try_claim(slow) != nullptr);      // position 1: its producer stalls
    CHECK(ring.reclaim(slow) == 0);                // the consumer gives up on it
    CHECK(ring.poll(4, [](const std::byte*) { FAIL("a reclaimed position was delivered"); }) == 1);
    std::byte* payload = ring.try_claim(other);    // position 2 takes slot 0, position 3 slot 1 (the stalled one's)
    REQUIRE(payload != nullptr);
    fill_pattern(payload, 16, 2);
    ring.commit(other);
    REQUIRE(ring.try_claim(other) != nullptr);
    CHECK(other == 3);
    CHECK_FALSE(ring.try_commit(slow));            // the stalled producer wakes up: refused, slot 1 untouched
    fill_pattern(ring.claimed_slot(other), 16, 3);
    CHECK(ring.try_commit(other));
    std::vector<std::uint64_t> seen;
    CHECK(ring.poll(4, [&](const std::byte* p) { seen.push_back(value_of(p)); }) == 2);
    CHECK(seen == std::vector<std::uint64_t>{2, 3});
    for (int lap = 0; lap < 3; ++lap) {            // and the ring keeps going
        std::uint64_t position = 0;
        REQUIRE(ring.try_claim(position) != nullptr);
        ring.commit(position);
        CHECK(ring.poll(4, [](const std::byte*) {}) == 1);
    }
}

TEST_CASE("random claims, batches, out-of-order commits, reclaims and polls match a model") {
    enum class State { claimed, committed, reclaimed };
    struct Entry {
        State state;
        std::uint64_t value;
    };
    const RingGeometry geometries[] = {{2, 8}, {4, 1}, {8, 48}, {64, 100}, {1024, 16}};
    std::mt19937_64 random(0xBADC0DE);
    for (const RingGeometry& geometry : geometries) {
        CAPTURE(geometry.capacity);
        CAPTURE(geometry.slot_bytes);
        FormattedRing<MpscRing> formatted(geometry);
        MpscRing& ring = formatted.ring;

        const std::uint32_t capacity = geometry.capacity;
        std::map<std::uint64_t, Entry> model;   // positions in [head, tail)
        std::uint64_t head = 0, tail = 0, next_value = 1;
        std::uint64_t mismatches = 0;   // payloads that differ from the model (counted: one assertion per step)
        auto outstanding = [&]() {
            std::vector<std::uint64_t> claimed;
            for (const auto& [position, entry] : model) {
                if (entry.state == State::claimed) claimed.push_back(position);
            }
            return claimed;
        };
        auto ready = [&](std::uint32_t max) {
            std::uint32_t n = 0;
            while (n < max && model.count(head + n) != 0 && model[head + n].state != State::claimed) ++n;
            return n;
        };
        const int steps = 15000;
        for (int step = 0; step < steps; ++step) {
            switch (random() % 8) {
                case 0:
                case 1: {   // one claim
                    std::uint64_t position = 0;
                    std::byte* slot = ring.try_claim(position);
                    REQUIRE((slot != nullptr) == (tail - head < capacity));
                    if (slot != nullptr) {
                        CHECK(position == tail);
                        fill_pattern(slot, geometry.slot_bytes, next_value);
                        model[tail++] = {State::claimed, next_value++};
                    }
                    break;
                }
                case 2: {   // a batch
                    std::uint64_t first = 0;
                    const auto wanted = static_cast<std::uint32_t>(1 + random() % (capacity + 1));
                    const std::uint32_t got = ring.try_claim_batch(wanted, first);
                    REQUIRE(got == std::min<std::uint64_t>(std::min(wanted, capacity), capacity - (tail - head)));
                    if (got != 0) CHECK(first == tail);
                    for (std::uint32_t i = 0; i < got; ++i) {
                        fill_pattern(ring.claimed_slot(first + i), geometry.slot_bytes, next_value);
                        model[tail++] = {State::claimed, next_value++};
                    }
                    break;
                }
                case 3:
                case 4: {   // commit a random outstanding claim
                    const auto claimed = outstanding();
                    if (claimed.empty()) break;
                    const std::uint64_t position = claimed[random() % claimed.size()];
                    ring.commit(position);
                    model[position].state = State::committed;
                    break;
                }
                case 5: {   // rarely a reclaim, and the refusals around it
                    if (random() % 4 != 0) break;
                    const auto claimed = outstanding();
                    if (!claimed.empty()) {
                        const std::uint64_t position = claimed[random() % claimed.size()];
                        REQUIRE(ring.reclaim(position) == 0);
                        model[position].state = State::reclaimed;
                        CHECK(ring.reclaim(position) == -EALREADY);
                    }
                    CHECK(ring.reclaim(tail) == -EINVAL);
                    if (head > 0) CHECK(ring.reclaim(head - 1) == -EINVAL);
                    break;
                }
                case 6: {   // look, then release part
                    const auto max = static_cast<std::uint32_t>(random() % (capacity + 2));
                    const std::uint32_t count = ring.available(max);
                    REQUIRE(count == ready(max));
                    for (std::uint32_t i = 0; i < count; ++i) {
                        const Entry& entry = model[head + i];
                        REQUIRE(ring.reclaimed(i) == (entry.state == State::reclaimed));
                        if (entry.state == State::committed) {
                            mismatches += !check_pattern(ring.slot(i), geometry.slot_bytes, entry.value);
                        }
                    }
                    const auto n = static_cast<std::uint32_t>(random() % (count + 1));
                    ring.release(n);
                    for (std::uint32_t i = 0; i < n; ++i) model.erase(head++);
                    break;
                }
                default: {   // poll
                    const auto max = static_cast<std::uint32_t>(1 + random() % (capacity + 1));
                    const std::uint32_t expected = ready(max);
                    std::vector<std::uint64_t> want, got;
                    for (std::uint32_t i = 0; i < expected; ++i) {
                        if (model[head + i].state == State::committed) want.push_back(model[head + i].value);
                    }
                    const std::uint32_t count = ring.poll(max, [&](const std::byte* payload) {
                        const std::uint64_t value = want.size() > got.size() ? want[got.size()] : 0;
                        mismatches += !check_pattern(payload, geometry.slot_bytes, value);
                        got.push_back(value);
                    });
                    REQUIRE(count == expected);
                    CHECK(got.size() == want.size());
                    for (std::uint32_t i = 0; i < count; ++i) model.erase(head++);
                    break;
                }
            }
            REQUIRE(ring.claimed_position() == tail);
            REQUIRE(ring.consumer_position() == head);
            REQUIRE(mismatches == 0);
        }
        CHECK(head / capacity >= (capacity >= 1024 ? 3 : 20));   // wrapped around many times
    }
}

TEST_CASE("threads: 4 producers, no loss, no duplicate, per-producer order, whole slots intact") {
    for (const RingGeometry geometry : {RingGeometry{1024, 120}, RingGeometry{2, 40}}) {
        CAPTURE(geometry.capacity);   // capacity 2: full nearly all the time
        FormattedRing<MpscRing> formatted(geometry);
        MpscRing& ring = formatted.ring;
        run_producers({&ring}, ring, 4, geometry.slot_bytes);
    }
}

TEST_CASE("producers through a second mapping (another address, as another process would see it)") {
    const RingGeometry geometry{16, 64};
    const std::size_t bytes = MpscRing::bytes_needed(geometry);
    DoubleMapping mapping(bytes);
    REQUIRE(MpscRing::format(mapping.first, bytes, geometry) == 0);
    MpscRing consumer, producer_a, producer_b;
    REQUIRE(MpscRing::attach(mapping.first, bytes, consumer) == 0);
    REQUIRE(MpscRing::attach(mapping.second, bytes, producer_a) == 0);
    REQUIRE(MpscRing::attach(mapping.second, bytes, producer_b) == 0);

    std::uint64_t position = 0;
    std::byte* slot = producer_a.try_claim(position);
    REQUIRE(slot != nullptr);
    CHECK(reinterpret_cast<std::uintptr_t>(slot) - reinterpret_cast<std::uintptr_t>(mapping.second) == 384);
    fill_pattern(slot, 64, 42);
    producer_a.commit(position);
    CHECK(consumer.available(4) == 1);
    CHECK(reinterpret_cast<std::uintptr_t>(consumer.slot(0)) - reinterpret_cast<std::uintptr_t>(mapping.first) ==
          384);
    CHECK(check_pattern(consumer.slot(0), 64, 42));
    consumer.release(1);
    CHECK(producer_b.consumer_position() == 1);

    // A consumer view attached later resumes where the first one stopped.
    MpscRing resumed;
    REQUIRE(MpscRing::attach(mapping.second, bytes, resumed) == 0);
    CHECK(resumed.available(4) == 0);
    run_producers({&producer_a, &producer_b}, resumed, 3, geometry.slot_bytes, 1);
}
