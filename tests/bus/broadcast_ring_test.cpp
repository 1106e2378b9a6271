// Broadcast ring: layout and sizes, bad options and bad blocks refused, a typed view refused by a block of another
// mode (and, at compile time, each mode's calls only on its view), reader slots (join at the writer position,
// -EBUSY when full, leave and rejoin), back-pressure and lossy policies with one or several writers against a model
// in one thread (exact loss accounting), then threads: readers that each see everything in order, a reader that
// joins and leaves during traffic, lossy readers (one deliberately slow) whose delivered + lost is exactly what was
// published, and a writer and readers on two mappings of the block at different addresses.
#include <doctest/doctest.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <deque>
#include <map>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "engine/bus/broadcast_ring.hpp"
#include "engine/bus/spsc_ring.hpp"
#include "tests/bus/ring_test_support.hpp"

using cf::bus::BroadcastOptions;
using cf::bus::BroadcastRing;
using cf::bus::BroadcastRingManyWriters;
using cf::bus::BroadcastRingOneWriter;
using cf::bus::LossyBroadcastRingManyWriters;
using cf::bus::LossyBroadcastRingOneWriter;
using cf::bus::OverflowPolicy;
using cf::bus::RingGeometry;
using namespace cf::test;

namespace {

#if defined(__SANITIZE_THREAD__) || defined(__SANITIZE_ADDRESS__)
constexpr std::uint64_t kStressMessages = 40'000;
#else
constexpr std::uint64_t kStressMessages = 400'000;
#endif

// Whether a payload carries the pattern of the value in its first 8 bytes.
bool intact(const std::byte* payload, std::size_t bytes) { return check_pattern(payload, bytes, value_of(payload)); }

BroadcastOptions options(std::uint32_t readers, OverflowPolicy policy, bool multi_writer) {
    BroadcastOptions result;
    result.max_readers = readers;
    result.policy = policy;
    result.multi_writer = multi_writer;
    return result;
}

// A ring formatted for Ring's mode in its own heap block, with one view attached.
template <class Ring>
struct TestRing {
    TestRing(const RingGeometry& geometry, std::uint32_t readers)
        : block(BroadcastRing::bytes_needed(geometry, Ring::options(readers))) {
        REQUIRE(block.bytes != 0);
        REQUIRE(BroadcastRing::format(block.data, block.bytes, geometry, Ring::options(readers)) == 0);
        REQUIRE(Ring::attach(block.data, block.bytes, ring) == 0);
    }
    Block block;
    Ring ring;
};

// Each mode's calls compile on its own view only.
template <class Ring>
concept OneWriterCalls = requires(Ring& ring, std::uint64_t position) {
    ring.try_claim();
    ring.try_claim_batch(1u);
    ring.claimed_slot(0u);
    ring.claim_position();
    ring.commit();
};
template <class Ring>
concept ManyWriterCalls = requires(Ring& ring, std::uint64_t position) {
    ring.try_claim(position);
    ring.commit(position);
    ring.try_commit(position);
    ring.reclaim(position);
    ring.waits_at_claim(0, position);
    ring.slot_of_claim(position);
};
template <class Ring>
concept InPlaceReaderCalls = requires(Ring& ring) {
    ring.available(0, 1u);
    ring.slot(0, 0u);
    ring.reclaimed(0, 0u);
    ring.release(0, 1u);
    ring.poll(0, 1u, [](const std::byte*) {});
};
template <class Ring>
concept CopyReaderCalls = requires(Ring& ring, std::byte* scratch) {
    ring.poll_copy(0, 1u, scratch, [](const std::byte*) {});
};
template <class Ring, bool kMulti, bool kLossy>
constexpr bool kHasItsModesCalls = OneWriterCalls<Ring> == !kMulti && ManyWriterCalls<Ring> == kMulti &&
                                   InPlaceReaderCalls<Ring> == !kLossy && CopyReaderCalls<Ring>;
static_assert(kHasItsModesCalls<BroadcastRingOneWriter, false, false>);
static_assert(kHasItsModesCalls<BroadcastRingManyWriters, true, false>);
static_assert(kHasItsModesCalls<LossyBroadcastRingOneWriter, false, true>);
static_assert(kHasItsModesCalls<LossyBroadcastRingManyWriters, true, true>);
// The mode-agnostic view has none of them.
static_assert(!OneWriterCalls<BroadcastRing> && !ManyWriterCalls<BroadcastRing> && !InPlaceReaderCalls<BroadcastRing> &&
              !CopyReaderCalls<BroadcastRing>);

// A typed view cannot be attached as the mode-agnostic one (which would skip the mode check).
template <class Ring>
concept AttachesWithoutMode = requires(void* memory, Ring& ring) { BroadcastRing::attach(memory, 0, ring); };
static_assert(AttachesWithoutMode<BroadcastRing>);
static_assert(!AttachesWithoutMode<BroadcastRingOneWriter> && !AttachesWithoutMode<BroadcastRingManyWriters> &&
              !AttachesWithoutMode<LossyBroadcastRingOneWriter> && !AttachesWithoutMode<LossyBroadcastRingManyWriters>);

const char* writers_name(bool multi) { return multi ? "multi-writer" : "single-writer"; }
const char* policy_name(OverflowPolicy policy) {
    return policy == OverflowPolicy::lossy ? "lossy" : "back-pressure";
}

// Formats a block in each of the four modes and attaches a Ring view to it: 0 for its own mode, -EPROTO and a
// message naming both modes for the three others (the view stays detached). Returns how many it refused.
template <class Ring>
int attach_every_mode(const RingGeometry& geometry) {
    int refused = 0;
    for (const bool multi : {false, true}) {
        for (const OverflowPolicy policy : {OverflowPolicy::back_pressure, OverflowPolicy::lossy}) {
            CAPTURE(multi);
            CAPTURE(static_cast<int>(policy));
            const BroadcastOptions opts = options(3, policy, multi);
            Block block(BroadcastRing::bytes_needed(geometry, opts));
            REQUIRE(BroadcastRing::format(block.data, block.bytes, geometry, opts) == 0);
            Ring ring;
            const int status = Ring::attach(block.data, block.bytes, ring);
            if (multi == Ring::kMultiWriter && policy == Ring::kPolicy) {
                CHECK(status == 0);
                CHECK(ring.attached());
                CHECK(ring.max_readers() == 3);
                continue;
            }
            ++refused;
            CHECK(status == -EPROTO);
            CHECK_FALSE(ring.attached());
            const std::string expected = std::string("broadcast ring is ") + writers_name(multi) + ", " +
                                         policy_name(policy) + "; this view is for a " +
                                         writers_name(Ring::kMultiWriter) + ", " + policy_name(Ring::kPolicy) +
                                         " ring";
            CHECK(last_error() == expected);
            // The block is untouched: a view of its own mode still attaches.
            BroadcastRing any;
            CHECK(BroadcastRing::attach(block.data, block.bytes, any) == 0);
            CHECK(any.multi_writer() == multi);
            CHECK(any.policy() == policy);
        }
    }
    return refused;
}

}  // namespace

TEST_CASE("sizes: header, writer regions, one 128-byte region per reader, slots with trailers") {
    CHECK(BroadcastRing::bytes_needed({8, 48}, options(4, OverflowPolicy::back_pressure, false)) ==
          128 + 2 * 128 + 4 * 128 + 8 * 64);
    CHECK(BroadcastRing::bytes_needed({8, 48}) == 128 + 2 * 128 + 8 * 128 + 8 * 64);   // 8 readers by default
    CHECK(BroadcastRing::bytes_needed({2, 100}, options(64, OverflowPolicy::lossy, true)) ==
          128 + 2 * 128 + 64 * 128 + 2 * (104 + 16));   // payload rounded to 8, then the trailer
    CHECK(BroadcastRing::bytes_needed({8, 48}, options(0, OverflowPolicy::lossy, false)) == 0);
    CHECK(BroadcastRing::bytes_needed({8, 48}, options(65, OverflowPolicy::lossy, false)) == 0);
    CHECK(BroadcastRing::bytes_needed({8, 48}, options(4, static_cast<OverflowPolicy>(7), false)) == 0);
    CHECK(BroadcastRing::bytes_needed({7, 48}) == 0);
}

TEST_CASE("format and attach refuse bad options and bad blocks") {
    const RingGeometry geometry{8, 32};
    const BroadcastOptions opts = options(3, OverflowPolicy::lossy, false);
    const std::size_t needed = BroadcastRing::bytes_needed(geometry, opts);
    Block block(needed);
    BroadcastRing ring;
    CHECK(BroadcastRing::format(block.data, needed, geometry, options(0, OverflowPolicy::lossy, false)) == -EINVAL);
    CHECK(last_error().find("max_readers") != std::string::npos);
    CHECK(BroadcastRing::format(block.data, needed - 1, geometry, opts) == -EINVAL);
    CHECK(BroadcastRing::format(block.data + 8, needed - 8, geometry, opts) == -EINVAL);

    Block spsc(cf::bus::SpscRing::bytes_needed(geometry));
    REQUIRE(cf::bus::SpscRing::format(spsc.data, spsc.bytes, geometry) == 0);
    CHECK(BroadcastRing::attach(spsc.data, spsc.bytes, ring) == -EPROTO);
    CHECK(last_error().find("SPSC") != std::string::npos);

    REQUIRE(BroadcastRing::format(block.data, needed, geometry, opts) == 0);
    auto* header = reinterpret_cast<cf::bus::RingHeader*>(block.data);
    SUBCASE("flags flipped") {
        header->flags = 0;
        CHECK(BroadcastRing::attach(block.data, needed, ring) == -EPROTO);
    }
    SUBCASE("more readers than the block holds") {
        header->max_readers = 4;
        CHECK(BroadcastRing::attach(block.data, needed, ring) == -EPROTO);
    }
    SUBCASE("a reader in an unknown state") {
        auto* reader = reinterpret_cast<BroadcastRing::ReaderWords*>(block.data + 128 + 2 * 128 + 2 * 128);
        reader->state.store(7);
        CHECK(BroadcastRing::attach(block.data, needed, ring) == -EPROTO);
        CHECK(last_error().find("reader 2") != std::string::npos);
    }
    SUBCASE("a reader ahead of the writer") {
        auto* reader = reinterpret_cast<BroadcastRing::ReaderWords*>(block.data + 128 + 2 * 128 + 1 * 128);
        reader->state.store(BroadcastRing::kReaderActive);
        reader->cursor.store(5);
        CHECK(BroadcastRing::attach(block.data, needed, ring) == -EPROTO);
        CHECK(last_error().find("reader 1") != std::string::npos);
    }
    SUBCASE("a short block") {
        CHECK(BroadcastRing::attach(block.data, needed - 64, ring) == -EINVAL);
    }
    CHECK(!ring.attached());
    SUBCASE("the options come from the block") {
        REQUIRE(BroadcastRing::attach(block.data, needed, ring) == 0);
        CHECK(ring.max_readers() == 3);
        CHECK(ring.policy() == OverflowPolicy::lossy);
        CHECK_FALSE(ring.multi_writer());
        CHECK(ring.capacity() == 8);
        CHECK(ring.slot_bytes() == 32);
    }
}

TEST_CASE("a typed view refuses a block formatted for another mode: all 4 x 3 wrong pairs") {
    const RingGeometry geometry{8, 32};
    int refused = 0;
    refused += attach_every_mode<BroadcastRingOneWriter>(geometry);
    refused += attach_every_mode<BroadcastRingManyWriters>(geometry);
    refused += attach_every_mode<LossyBroadcastRingOneWriter>(geometry);
    refused += attach_every_mode<LossyBroadcastRingManyWriters>(geometry);
    CHECK(refused == 12);
}

TEST_CASE("readers: join at the writer position, -EBUSY when all are taken, leave and rejoin") {
    TestRing<BroadcastRingOneWriter> t({4, 16}, 3);
    BroadcastRingOneWriter& ring = t.ring;
    // No readers: the writer never waits, messages go nowhere.
    for (std::uint64_t i = 0; i < 10; ++i) {
        std::byte* slot = ring.try_claim();
        REQUIRE(slot != nullptr);
        fill_pattern(slot, 16, i);
        ring.commit();
    }
    CHECK(ring.writer_position() == 10);
    const int a = ring.add_reader();
    CHECK(a == 0);
    CHECK(ring.reader_position(a) == 10);
    CHECK(ring.available(a, 8) == 0);
    CHECK(ring.add_reader() == 1);
    CHECK(ring.add_reader() == 2);
    CHECK(ring.add_reader() == -EBUSY);
    CHECK(last_error().find("3 readers") != std::string::npos);
    CHECK(ring.reader_active(1));
    CHECK(ring.remove_reader(1) == 0);
    CHECK_FALSE(ring.reader_active(1));
    CHECK(ring.remove_reader(1) == -EINVAL);
    CHECK(ring.remove_reader(3) == -EINVAL);
    CHECK(ring.remove_reader(-1) == -EINVAL);

    // Readers 0 and 2 gate the writer: 4 slots, then full.
    for (std::uint64_t i = 10; i < 14; ++i) {
        std::byte* slot = ring.try_claim();
        REQUIRE(slot != nullptr);
        fill_pattern(slot, 16, i);
    }
    CHECK(ring.try_claim() == nullptr);
    ring.commit();
    CHECK(ring.add_reader() == 1);   // joins at 14: sees none of the four
    CHECK(ring.available(1, 8) == 0);
    CHECK(ring.available(0, 8) == 4);
    CHECK(ring.poll(0, 8, [](const std::byte*) {}) == 4);
    CHECK(ring.try_claim() == nullptr);   // reader 2 still holds all four slots
    std::vector<std::uint64_t> seen;
    CHECK(ring.poll(2, 3, [&](const std::byte* p) { seen.push_back(value_of(p)); }) == 3);
    CHECK(seen == std::vector<std::uint64_t>{10, 11, 12});
    CHECK(ring.try_claim_batch(4) == 3);
    CHECK(ring.remove_reader(2) == 0);    // its last unread message no longer holds the writer
    CHECK(ring.try_claim_batch(4) == 1);
    CHECK(ring.lost(0) == 0);
}

namespace {

// One-thread model of a back-pressure or lossy ring with one or several writers. Values are positions.
struct Model {
    std::uint32_t capacity = 0;
    bool lossy = false;
    bool multi = false;
    std::uint64_t claimed = 0;     // tail: positions below it were claimed
    std::uint64_t published = 0;   // single writer: positions below it are published
    std::map<std::uint64_t, bool> done;   // multi writer: position -> published
    std::map<int, std::uint64_t> cursors;
    std::map<int, std::uint64_t> lost;

    bool is_published(std::uint64_t p) const {
        if (!multi) return p < published;
        const auto it = done.find(p);
        return it != done.end() && it->second;
    }
    std::uint64_t writer_position() const { return multi ? claimed : published; }
    // back-pressure: how far the writers may claim
    std::uint64_t gate() const {
        std::uint64_t gate = multi ? claimed : published;
        for (const auto& [reader, cursor] : cursors) gate = std::min(gate, cursor);
        return gate;
    }
    bool may_claim() const {
        if (!multi) return claimed < (lossy ? published : gate()) + capacity;
        if (!lossy && claimed >= gate() + capacity) return false;
        return claimed < capacity || is_published(claimed - capacity);
    }
    // Positions a reader at `cursor` can get in order now (back-pressure), up to max.
    std::uint32_t ready(std::uint64_t cursor, std::uint32_t max) const {
        std::uint32_t n = 0;
        while (n < max && is_published(cursor + n)) ++n;
        return n;
    }
};

template <class Ring>
void run_model(const RingGeometry& geometry, std::uint64_t seed) {
    constexpr OverflowPolicy policy = Ring::kPolicy;
    constexpr bool multi = Ring::kMultiWriter;
    CAPTURE(geometry.capacity);
    CAPTURE(static_cast<int>(policy));
    CAPTURE(multi);
    constexpr std::uint32_t kReaders = 3;
    TestRing<Ring> t(geometry, kReaders);
    Ring& ring = t.ring;
    const std::uint32_t capacity = geometry.capacity;
    Model model;
    model.capacity = capacity;
    model.lossy = policy == OverflowPolicy::lossy;
    model.multi = multi;
    std::mt19937_64 random(seed);
    std::vector<std::byte> scratch(geometry.slot_bytes);
    std::vector<std::uint64_t> pending;   // single writer: claimed, not committed
    std::uint64_t delivered_total = 0, lost_total = 0;
    std::uint64_t mismatches = 0;   // payloads that differ from the model (counted: one assertion per step)

    for (int step = 0; step < 12000; ++step) {
        const auto op = random() % 10;
        if (op < (multi ? 2u : 3u)) {   // claim (several writers commit more often: they commit one by one)
            if constexpr (!multi) {
                if (random() % 2 == 0) {
                    const bool expected = model.may_claim();
                    std::byte* slot = ring.try_claim();
                    REQUIRE((slot != nullptr) == expected);
                    if (slot != nullptr) {
                        fill_pattern(slot, geometry.slot_bytes, model.claimed);
                        pending.push_back(model.claimed++);
                    }
                } else {
                    const auto wanted = static_cast<std::uint32_t>(1 + random() % capacity);
                    std::uint32_t expected = 0;
                    while (expected < wanted && model.may_claim()) {
                        ++expected;
                        ++model.claimed;
                    }
                    model.claimed -= expected;
                    const std::uint32_t got = ring.try_claim_batch(wanted);
                    REQUIRE(got == expected);
                    for (std::uint32_t i = 0; i < got; ++i) {
                        fill_pattern(ring.claimed_slot(i), geometry.slot_bytes, model.claimed);
                        pending.push_back(model.claimed++);
                    }
                }
            } else {
                const bool expected = model.may_claim();
                std::uint64_t position = 12345;
                std::byte* slot = ring.try_claim(position);
                REQUIRE((slot != nullptr) == expected);
                if (slot != nullptr) {
                    CHECK(position == model.claimed);
                    fill_pattern(slot, geometry.slot_bytes, position);
                    model.done[model.claimed++] = false;
                }
            }
        } else if (op < 5) {   // commit
            if constexpr (!multi) {
                ring.commit();
                model.published = model.claimed;
                pending.clear();
            } else {
                // A random open position, and now and then the oldest so that readers get going.
                for (int round = 0; round < 2; ++round) {
                    std::vector<std::uint64_t> open;
                    for (const auto& [position, published] : model.done) {
                        if (!published) open.push_back(position);
                    }
                    if (open.empty()) break;
                    const std::uint64_t position = round == 0 ? open[random() % open.size()] : open.front();
                    ring.commit(position);
                    model.done[position] = true;
                    if (random() % 2 == 0) break;
                }
            }
        } else if (op == 5) {   // join or leave
            if (random() % 2 == 0) {
                int expected = -EBUSY;
                for (int r = 0; r < static_cast<int>(kReaders); ++r) {
                    if (model.cursors.count(r) == 0) {
                        expected = r;
                        break;
                    }
                }
                const int reader = ring.add_reader();
                REQUIRE(reader == expected);
                if (reader >= 0) {
                    model.cursors[reader] = model.writer_position();
                    model.lost[reader] = 0;
                    CHECK(ring.reader_position(reader) == model.writer_position());
                }
            } else if (!model.cursors.empty()) {
                auto it = model.cursors.begin();
                std::advance(it, static_cast<long>(random() % model.cursors.size()));
                REQUIRE(ring.remove_reader(it->first) == 0);
                model.cursors.erase(it);
            }
        } else if (!model.cursors.empty()) {   // a reader reads
            auto it = model.cursors.begin();
            std::advance(it, static_cast<long>(random() % model.cursors.size()));
            const int reader = it->first;
            std::uint64_t& cursor = it->second;
            if (reader == 0 && random() % 4 != 0) continue;   // reader 0 is slow: it falls behind, lossy rings drop
            const auto max = static_cast<std::uint32_t>(random() % (capacity + 2));
            if constexpr (policy == OverflowPolicy::back_pressure) {
                const std::uint32_t expected = model.ready(cursor, max);
                if (op == 6) {   // available, slot, partial release
                    REQUIRE(ring.available(reader, max) == expected);
                    for (std::uint32_t i = 0; i < expected; ++i) {
                        mismatches += !check_pattern(ring.slot(reader, i), geometry.slot_bytes, cursor + i);
                    }
                    const auto n = static_cast<std::uint32_t>(random() % (expected + 1));
                    ring.release(reader, n);
                    cursor += n;
                    delivered_total += n;
                } else {   // poll, or poll_copy (in place under back-pressure)
                    std::uint64_t next = cursor;
                    auto check = [&](const std::byte* payload) {
                        mismatches += !check_pattern(payload, geometry.slot_bytes, next);
                        ++next;
                    };
                    const std::uint32_t count = op == 7 ? ring.poll_copy(reader, max, scratch.data(), check)
                                                        : ring.poll(reader, max, check);
                    REQUIRE(count == expected);
                    cursor += count;
                    delivered_total += count;
                }
            } else {
                // Lossy: positions whose slot a later claim took are gone; skip them, then deliver what is
                // published in order.
                std::uint64_t skipped = 0;
                std::uint32_t expected = 0;
                if (max != 0) {
                    const std::uint64_t oldest = model.claimed > capacity ? model.claimed - capacity : 0;
                    if (cursor < oldest) {
                        skipped = oldest - cursor;
                        cursor = oldest;
                    }
                    expected = model.ready(cursor, max);
                }
                std::uint64_t next = cursor;
                const std::uint32_t count = ring.poll_copy(reader, max, scratch.data(), [&](const std::byte* payload) {
                    mismatches += payload != scratch.data();
                    mismatches += !check_pattern(payload, geometry.slot_bytes, next);
                    ++next;
                });
                REQUIRE(count == expected);
                cursor += count;
                model.lost[reader] += skipped;
                delivered_total += count;
                lost_total += skipped;
                REQUIRE(ring.lost(reader) == model.lost[reader]);
            }
            REQUIRE(ring.reader_position(reader) == cursor);
        }
        REQUIRE(ring.writer_position() == model.writer_position());
        REQUIRE(mismatches == 0);
    }
    CHECK(delivered_total > 3 * capacity);
    if (model.lossy) CHECK(lost_total > 0);
}

}  // namespace

TEST_CASE("back-pressure, one writer: random claims, batches, joins and reads match the model") {
    run_model<BroadcastRingOneWriter>({2, 8}, 1);
    run_model<BroadcastRingOneWriter>({8, 40}, 2);
    run_model<BroadcastRingOneWriter>({256, 16}, 3);
}

TEST_CASE("back-pressure, several writers: out-of-order commits are read in position order") {
    run_model<BroadcastRingManyWriters>({2, 8}, 4);
    run_model<BroadcastRingManyWriters>({8, 40}, 5);
    run_model<BroadcastRingManyWriters>({256, 16}, 6);
}

namespace {

template <class Ring>
void reclaim_dead_claim() {
    CAPTURE(static_cast<int>(Ring::kPolicy));
    TestRing<Ring> t({4, 16}, 2);
    const int first = t.ring.add_reader(), second = t.ring.add_reader();
    REQUIRE((first >= 0 && second >= 0));
    std::uint64_t dead = 0, live = 0, waiting = 99;
    REQUIRE(t.ring.try_claim(dead) != nullptr);
    std::byte* slot = t.ring.try_claim(live);
    REQUIRE(slot != nullptr);
    fill_pattern(slot, 16, 7);
    t.ring.commit(live);
    std::byte scratch[16];
    auto read_all = [&](int reader, std::vector<std::uint64_t>& values) {
        return t.ring.poll_copy(reader, 8, scratch, [&](const std::byte* p) { values.push_back(value_of(p)); });
    };
    std::vector<std::uint64_t> values;
    CHECK(read_all(first, values) == 0);                     // held up by the dead claim
    CHECK(t.ring.waits_at_claim(first, waiting));
    CHECK(waiting == dead);
    CHECK(t.ring.reclaim(live) == -EALREADY);                // published: nothing to reclaim
    CHECK(t.ring.reclaim(dead) == 0);
    CHECK(t.ring.reclaim(dead) == -EALREADY);                // the second reader was not first
    CHECK_FALSE(t.ring.try_commit(dead));                    // the dead writer's late commit is refused
    CHECK_FALSE(t.ring.waits_at_claim(first, waiting));
    for (const int reader : {first, second}) {
        values.clear();
        read_all(reader, values);
        CHECK(values == std::vector<std::uint64_t>{7});      // the reclaimed position is skipped
    }
    // The next laps reuse the slot normally: every value arrives.
    for (std::uint64_t v = 100; v < 110; ++v) {
        std::uint64_t position = 0;
        std::byte* next = t.ring.try_claim(position);
        REQUIRE(next != nullptr);
        fill_pattern(next, 16, v);
        CHECK(t.ring.try_commit(position));
        for (const int reader : {first, second}) {
            values.clear();
            read_all(reader, values);
            CHECK(values == std::vector<std::uint64_t>{v});
        }
    }
    std::uint64_t not_claimed = 0;
    CHECK_FALSE(t.ring.waits_at_claim(first, not_claimed));
    CHECK(t.ring.reclaim(1000) == -EINVAL);                  // never claimed
}

}  // namespace

TEST_CASE("several writers: a reader reclaims a dead claim once; a late commit fails; the slot is reused") {
    reclaim_dead_claim<BroadcastRingManyWriters>();
    reclaim_dead_claim<LossyBroadcastRingManyWriters>();
}

TEST_CASE("lossy, one writer: readers that fall behind skip to the oldest intact slot and count the loss") {
    run_model<LossyBroadcastRingOneWriter>({2, 8}, 7);
    run_model<LossyBroadcastRingOneWriter>({8, 40}, 8);
    run_model<LossyBroadcastRingOneWriter>({64, 200}, 9);
}

TEST_CASE("lossy, several writers: the loss accounting stays exact with out-of-order commits") {
    run_model<LossyBroadcastRingManyWriters>({2, 8}, 10);
    run_model<LossyBroadcastRingManyWriters>({8, 40}, 11);
    run_model<LossyBroadcastRingManyWriters>({16, 200}, 12);
}

TEST_CASE("lossy: exact numbers for a reader that never read") {
    TestRing<LossyBroadcastRingOneWriter> t({4, 16}, 2);
    LossyBroadcastRingOneWriter& ring = t.ring;
    const int reader = ring.add_reader();
    REQUIRE(reader == 0);
    for (std::uint64_t i = 0; i < 10; ++i) {
        std::byte* slot = ring.try_claim();
        REQUIRE(slot != nullptr);   // never waits for the reader
        fill_pattern(slot, 16, i);
        ring.commit();
    }
    std::vector<std::byte> scratch(16);
    std::vector<std::uint64_t> seen;
    auto collect = [&](const std::byte* p) { seen.push_back(value_of(p)); };
    CHECK(ring.poll_copy(reader, 0, scratch.data(), collect) == 0);   // max 0: nothing, not even the skip
    CHECK(ring.lost(reader) == 0);
    CHECK(ring.poll_copy(reader, 2, scratch.data(), collect) == 2);
    CHECK(seen == std::vector<std::uint64_t>{6, 7});
    CHECK(ring.lost(reader) == 6);
    CHECK(ring.poll_copy(reader, 9, scratch.data(), collect) == 2);
    CHECK(seen == std::vector<std::uint64_t>{6, 7, 8, 9});
    CHECK(ring.lost(reader) == 6);
    CHECK(ring.reader_position(reader) == 10);

    // A claim in progress hides its slot; the claim after it takes the oldest one.
    std::byte* open = ring.try_claim();
    fill_pattern(open, 16, 10);
    CHECK(ring.poll_copy(reader, 9, scratch.data(), collect) == 0);
    for (std::uint64_t i = 11; i < 14; ++i) fill_pattern(ring.try_claim(), 16, i);
    CHECK(ring.try_claim() == nullptr);   // four claims outstanding: one lap
    ring.commit();
    CHECK(ring.poll_copy(reader, 9, scratch.data(), collect) == 4);
    CHECK(seen.back() == 13);
    CHECK(ring.lost(reader) == 6);
    // A reader that joins now starts at the writer and has lost nothing.
    CHECK(ring.add_reader() == 1);
    CHECK(ring.lost(1) == 0);
    CHECK(ring.reader_position(1) == 14);
}

namespace {

// Writers publish `total` messages (payload value = position); each reader thread checks what it gets.
struct StressResult {
    std::uint64_t delivered = 0;
    std::uint64_t lost = 0;
    std::uint64_t bad_payload = 0;
    std::uint64_t out_of_order = 0;
};

template <class Ring>
void stress(Ring& writer_view, std::vector<Ring*> reader_views, int writers, std::uint64_t total,
            std::uint32_t slot_bytes, std::uint32_t slow_reader = ~0u) {
    const bool lossy = Ring::kLossy;
    const std::uint64_t base = writer_view.writer_position();   // readers join here
    const std::uint64_t end = base + total;
    std::vector<int> readers;
    for (Ring* view : reader_views) {
        const int reader = view->add_reader();
        REQUIRE(reader >= 0);
        readers.push_back(reader);
    }
    std::vector<StressResult> results(reader_views.size());
    std::vector<std::thread> threads;
    for (std::size_t r = 0; r < reader_views.size(); ++r) {
        threads.emplace_back([&, r] {
            Ring& ring = *reader_views[r];
            const int reader = readers[r];
            StressResult& result = results[r];
            std::vector<std::byte> scratch(slot_bytes);
            std::uint64_t expected = base;   // next position, for in-order checks
            std::mt19937 random(static_cast<unsigned>(r));
            const bool slow = r == slow_reader;
            while (ring.reader_position(reader) < end) {
                const std::uint32_t max = slow ? 1 : 1 + random() % 32;
                const std::uint32_t count = ring.poll_copy(reader, max, scratch.data(), [&](const std::byte* p) {
                    const std::uint64_t value = value_of(p);
                    if (!intact(p, slot_bytes)) ++result.bad_payload;
                    if (value < expected || (!lossy && value != expected)) ++result.out_of_order;
                    expected = value + 1;
                    ++result.delivered;
                });
                if (count == 0 || slow) std::this_thread::yield();
            }
            result.lost = ring.lost(reader);
        });
    }
    std::vector<std::thread> writer_threads;
    std::atomic<std::uint64_t> next_position{0};   // multi writer: how many claims are left to make
    for (int w = 0; w < writers; ++w) {
        writer_threads.emplace_back([&, w] {
            Ring& ring = writer_view;
            std::mt19937 random(static_cast<unsigned>(50 + w));
            if constexpr (!Ring::kMultiWriter) {
                std::uint64_t position = base;
                while (position < end) {
                    const auto wanted =
                        static_cast<std::uint32_t>(std::min<std::uint64_t>(1 + random() % 16, end - position));
                    const std::uint32_t got = ring.try_claim_batch(wanted);
                    for (std::uint32_t i = 0; i < got; ++i) fill_pattern(ring.claimed_slot(i), slot_bytes, position++);
                    if (got != 0) ring.commit();
                    else std::this_thread::yield();
                }
            } else {
                // Several writers: each takes a ticket for one more message, then claims until it gets a slot.
                while (next_position.fetch_add(1) < total) {
                    for (;;) {
                        std::uint64_t position = 0;
                        std::byte* slot = ring.try_claim(position);
                        if (slot != nullptr) {
                            fill_pattern(slot, slot_bytes, position);
                            ring.commit(position);
                            break;
                        }
                        std::this_thread::yield();
                    }
                }
            }
        });
    }
    for (auto& thread : writer_threads) thread.join();
    for (auto& thread : threads) thread.join();
    CHECK(writer_view.writer_position() == end);
    for (std::size_t r = 0; r < results.size(); ++r) {
        CAPTURE(r);
        const StressResult& result = results[r];
        CHECK(result.bad_payload == 0);
        CHECK(result.out_of_order == 0);
        CHECK(result.delivered + result.lost == total);   // exact, lossy or not
        if (!lossy) CHECK(result.lost == 0);
        REQUIRE(reader_views[r]->remove_reader(readers[r]) == 0);
    }
}

}  // namespace

TEST_CASE("threads, back-pressure, one writer: three readers each see everything in order") {
    for (const RingGeometry geometry : {RingGeometry{2, 24}, RingGeometry{64, 136}}) {
        CAPTURE(geometry.capacity);
        TestRing<BroadcastRingOneWriter> t(geometry, 4);
        stress(t.ring, {&t.ring, &t.ring, &t.ring}, 1, geometry.capacity == 2 ? kStressMessages / 4 : kStressMessages,
               geometry.slot_bytes);
    }
}

TEST_CASE("threads, back-pressure, two writers: two readers see every position once, in order") {
    TestRing<BroadcastRingManyWriters> t({16, 64}, 2);
    stress(t.ring, {&t.ring, &t.ring}, 2, kStressMessages / 4, 64);
}

TEST_CASE("threads, lossy, one writer and a slow reader: delivered + lost == published, in order, intact") {
    for (const RingGeometry geometry : {RingGeometry{4, 200}, RingGeometry{64, 64}}) {
        CAPTURE(geometry.capacity);
        TestRing<LossyBroadcastRingOneWriter> t(geometry, 3);
        stress(t.ring, {&t.ring, &t.ring, &t.ring}, 1, kStressMessages, geometry.slot_bytes, 2);
    }
}

TEST_CASE("threads, lossy, two writers: the same invariants") {
    TestRing<LossyBroadcastRingManyWriters> t({8, 200}, 2);
    stress(t.ring, {&t.ring, &t.ring}, 2, kStressMessages / 4, 200, 1);
}

namespace {

template <class Ring>
void join_and_leave_during_traffic() {
    constexpr bool multi = Ring::kMultiWriter;
    CAPTURE(multi);
    const RingGeometry geometry{8, 96};
    TestRing<Ring> t(geometry, 2);
    Ring& ring = t.ring;
    const std::uint64_t total = kStressMessages / 4;
    std::atomic<bool> done{false};
    std::uint64_t sessions = 0, bad = 0, gaps = 0;
    std::thread joiner([&] {
        std::mt19937 random(3);
        while (!done.load()) {
            const int reader = ring.add_reader();
            if (reader < 0) {
                ++bad;
                break;
            }
            const std::uint64_t start = ring.reader_position(reader);
            std::uint64_t expected = start;
            const std::uint64_t want = 1 + random() % 50;
            while (expected - start < want && !done.load()) {
                if (ring.poll(reader, 8, [&](const std::byte* p) {
                        if (!intact(p, geometry.slot_bytes)) ++bad;
                        if (value_of(p) != expected) ++gaps;
                        expected = value_of(p) + 1;
                    }) == 0) {
                    std::this_thread::yield();
                }
            }
            if (ring.remove_reader(reader) != 0) ++bad;
            ++sessions;
        }
    });
    std::thread writer([&] {
        for (std::uint64_t written = 0; written < total;) {
            std::uint64_t position = written;
            std::byte* slot = nullptr;
            if constexpr (multi) slot = ring.try_claim(position);
            else slot = ring.try_claim();
            if (slot == nullptr) {
                std::this_thread::yield();
                continue;
            }
            fill_pattern(slot, geometry.slot_bytes, position);
            if constexpr (multi) ring.commit(position);
            else ring.commit();
            ++written;
        }
        done.store(true);
    });
    writer.join();
    joiner.join();
    CHECK(bad == 0);
    CHECK(gaps == 0);
    CHECK(sessions > 0);
}

}  // namespace

TEST_CASE("threads: a reader that joins and leaves during traffic gets a contiguous, intact run each time") {
    join_and_leave_during_traffic<BroadcastRingOneWriter>();
    join_and_leave_during_traffic<BroadcastRingManyWriters>();
}

namespace {

template <class Ring>
void two_mappings() {
    const RingGeometry geometry{32, 80};
    CAPTURE(static_cast<int>(Ring::kPolicy));
    const BroadcastOptions opts = Ring::options(4);
    const std::size_t bytes = BroadcastRing::bytes_needed(geometry, opts);
    DoubleMapping mapping(bytes);
    REQUIRE(BroadcastRing::format(mapping.first, bytes, geometry, opts) == 0);
    Ring writer, reader_a, reader_b;
    REQUIRE(Ring::attach(mapping.second, bytes, writer) == 0);
    REQUIRE(Ring::attach(mapping.first, bytes, reader_a) == 0);
    REQUIRE(Ring::attach(mapping.first, bytes, reader_b) == 0);

    const int reader = reader_a.add_reader();
    REQUIRE(reader == 0);
    CHECK(writer.reader_active(0));   // the writer's view sees the reader region the other view took
    std::byte* slot = writer.try_claim();
    REQUIRE(slot != nullptr);
    CHECK(reinterpret_cast<std::uintptr_t>(slot) - reinterpret_cast<std::uintptr_t>(mapping.second) ==
          128 + 2 * 128 + 4 * 128);
    fill_pattern(slot, geometry.slot_bytes, 0);
    writer.commit();
    std::vector<std::byte> scratch(geometry.slot_bytes);
    std::vector<std::uint64_t> seen;
    CHECK(reader_a.poll_copy(reader, 4, scratch.data(), [&](const std::byte* p) {
        CHECK(check_pattern(p, geometry.slot_bytes, 0));
        seen.push_back(value_of(p));
    }) == 1);
    CHECK(seen == std::vector<std::uint64_t>{0});
    REQUIRE(reader_a.remove_reader(reader) == 0);

    // The writer view was attached first; its position continues in the block.
    Ring late_writer;
    REQUIRE(Ring::attach(mapping.second, bytes, late_writer) == 0);
    CHECK(late_writer.writer_position() == 1);
    stress(writer, {&reader_a, &reader_b}, 1, kStressMessages / 8 + 1, geometry.slot_bytes);
}

}  // namespace

TEST_CASE("a writer and readers on two mappings of one block (different addresses, as two processes)") {
    two_mappings<BroadcastRingOneWriter>();
    two_mappings<LossyBroadcastRingOneWriter>();
}
