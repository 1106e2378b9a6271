// libFuzzer target for the read side of a topic in shared memory (engine/bus: rings, topic, publisher, subscriber).
// Built and run by run_fuzz.sh with clang++.
//
// The input formats a topic in a block (the same bytes a segment would hold; in-process): its first bytes pick
// the kind (SPSC, MPSC, broadcast back-pressure, broadcast multi-writer, broadcast lossy), the message size and
// the depth. A publisher (two on many-publisher kinds) and a subscriber attach, then the rest of the input is a
// program: publish n, claim without committing, commit, write arbitrary bytes or words anywhere in the block (the
// topic header, the ring header, the control words, the slots: the attacker), poll n, receive n, release,
// recover a stalled claim. Oracles, any failure abort()s:
//   - every delivered message lies inside the ring (or, on lossy topics, in the subscriber's copy: its bytes are
//     all read, so AddressSanitizer sees any overrun) and its length is at most max_message_bytes;
//   - sequences of delivered messages only go forward; one call never delivers more than min(max, depth);
//   - the subscriber's corrupt() and recovered_claims() counters never go back;
// and no crash, hang, AddressSanitizer or UndefinedBehaviorSanitizer report.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "engine/bus/publisher.hpp"
#include "engine/bus/subscriber.hpp"
#include "engine/bus/topic.hpp"
#include "engine/time/hlc.hpp"

using namespace cf;
using namespace cf::bus;

namespace {

[[noreturn]] void fail(const char* what, unsigned long long a = 0, unsigned long long b = 0) {
    std::fprintf(stderr, "shm_topic_fuzz: %s (%llu, %llu)\n", what, a, b);
    std::abort();
}

// The input, read front to back; zeros once it runs out.
struct Input {
    const std::uint8_t* data;
    std::size_t size;
    std::size_t at = 0;
    bool done() const { return at >= size; }
    std::uint8_t byte() { return at < size ? data[at++] : 0; }
    std::uint64_t word(int bytes) {
        std::uint64_t value = 0;
        for (int i = 0; i < bytes; ++i) value |= std::uint64_t{byte()} << (8 * i);
        return value;
    }
};

// Values an attacker likes in a 64-bit word, relative to where the ring is.
std::uint64_t interesting(Input& in, std::uint64_t near) {
    switch (in.byte() % 8) {
        case 0: return 0;
        case 1: return UINT64_MAX;
        case 2: return near + (in.byte() % 32);
        case 3: return near - (in.byte() % 32);
        case 4: return near + 1'000'000;
        case 5: return std::uint64_t{1} << (in.byte() % 64);
        case 6: return ~near;
        default: return in.word(8);
    }
}

struct FreeBlock {
    void* memory = nullptr;
    ~FreeBlock() { std::free(memory); }
};

struct Checker {
    const std::byte* ring_begin;
    const std::byte* ring_end;
    std::uint32_t max_message_bytes;
    std::uint32_t depth;
    bool copies;   // lossy: messages are in the subscriber's copy
    bool any = false;
    std::uint64_t last_sequence = 0;
    unsigned sink = 0;

    void message(const Message& m) {
        if (m.length > max_message_bytes) fail("length above max_message_bytes", m.length, max_message_bytes);
        if (m.data == nullptr) fail("null data");
        if (!copies && (m.data < ring_begin || m.data + m.length > ring_end)) {
            fail("message outside the ring", static_cast<unsigned long long>(m.data - ring_begin), m.length);
        }
        for (std::uint32_t i = 0; i < m.length; ++i) sink += static_cast<unsigned>(m.data[i]);   // ASan watches
        if (any && m.sequence <= last_sequence) fail("sequence went back", m.sequence, last_sequence);
        any = true;
        last_sequence = m.sequence;
    }
    void count(std::uint32_t delivered, std::uint32_t max) const {
        const std::uint32_t bound = max < depth ? max : depth;
        if (delivered > bound) fail("more messages than asked for or than the ring holds", delivered, bound);
    }
};

TopicConfig config_for(Input& in, bool& multi_writer) {
    TopicConfig config;
    config.name = "fuzz.topic";
    config.max_message_bytes = 1 + in.byte() % 96;
    config.depth = 2u << (in.byte() % 4);   // 2 .. 16
    switch (in.byte() % 5) {
        case 0: break;                                                        // SPSC
        case 1: config.max_publishers = 2; break;                             // MPSC
        case 2: config.max_subscribers = 2; break;                            // broadcast, back-pressure
        case 3: config.max_publishers = 2; config.max_subscribers = 2; break; // broadcast, many writers
        default: config.overflow = OverflowPolicy::lossy; break;              // broadcast, lossy
    }
    multi_writer = config.max_publishers > 1;
    return config;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    Input in{data, size};
    bool multi_writer = false;
    const TopicConfig config = config_for(in, multi_writer);
    const std::size_t bytes = Topic::bytes_needed(config);
    if (bytes == 0) fail("bytes_needed refused a valid configuration");
    FreeBlock block;
    block.memory = std::aligned_alloc(64, (bytes + 63) / 64 * 64);
    std::memset(block.memory, 0, bytes);
    Topic topic;
    if (Topic::format(block.memory, bytes, config) != 0 || Topic::attach(block.memory, bytes, topic) != 0) {
        fail("format or attach failed");
    }
    static HybridLogicalClock clock{HybridLogicalClock::Config{}};
    Publisher publishers[2];
    Subscriber subscriber;
    if (Publisher::open(topic, clock, publishers[0]) != 0 || Subscriber::open(topic, subscriber) != 0) {
        fail("open failed");
    }
    if (multi_writer && Publisher::open(topic, clock, publishers[1]) != 0) fail("second publisher");

    auto* base = static_cast<std::byte*>(block.memory);
    auto* ring = static_cast<std::byte*>(topic.ring_memory());
    Checker check{ring, ring + topic.ring_bytes(), config.max_message_bytes, config.depth,
                  config.overflow == OverflowPolicy::lossy};
    std::uint64_t corrupt = 0, recovered = 0, now_ns = 0, published = 0;
    std::byte payload[128];
    Message batch[kMaxPollBatch];

    for (int step = 0; step < 256 && !in.done(); ++step) {
        const std::uint8_t op = in.byte();
        Publisher& publisher = publishers[multi_writer ? (op >> 7) : 0];
        switch (op % 9) {
            case 0: {   // publish n
                const int n = 1 + in.byte() % 8;
                for (int i = 0; i < n; ++i) {
                    const std::uint32_t length = in.byte() % (config.max_message_bytes + 1);
                    std::memset(payload, static_cast<int>(published & 0xff), sizeof payload);
                    if (publisher.publish(payload, length) == 0) ++published;
                }
                break;
            }
            case 1: {   // claim, not committed yet
                std::byte* slot = nullptr;
                (void)publisher.try_claim(in.byte() % (config.max_message_bytes + 1), slot);
                break;
            }
            case 2: (void)publisher.commit(in.byte() % (config.max_message_bytes + 1)); break;
            case 3: {   // the attacker: bytes anywhere in the block
                const std::size_t offset = static_cast<std::size_t>(in.word(2)) % bytes;
                const std::size_t count = 1 + in.byte() % 8;
                for (std::size_t i = 0; i < count && offset + i < bytes; ++i) {
                    base[offset + i] = static_cast<std::byte>(in.byte());
                }
                break;
            }
            case 4: {   // the attacker: an 8-byte word in the ring's control area or a slot header
                const std::size_t words = (bytes - kTopicRingOffset) / 8;
                const std::size_t offset = kTopicRingOffset + static_cast<std::size_t>(in.word(2)) % words * 8;
                const std::uint64_t value = interesting(in, published);
                std::memcpy(base + offset, &value, 8);
                break;
            }
            case 5: {   // poll n
                const std::uint32_t max = 1 + in.byte() % 40;
                std::uint32_t delivered = 0;
                (void)subscriber.poll(max, [&](const Message& m) {
                    check.message(m);
                    ++delivered;
                });
                check.count(delivered, max);
                break;
            }
            case 6: {   // receive n, kept until the next call or release
                const std::uint32_t max = 1 + in.byte() % kMaxPollBatch;
                const std::uint32_t n = subscriber.receive(batch, max);
                check.count(n, max);
                for (std::uint32_t i = 0; i < n; ++i) check.message(batch[i]);
                break;
            }
            case 7: subscriber.release(); break;
            default:    // housekeeping, with time moving on
                now_ns += std::uint64_t{in.byte()} * 10'000'000;
                (void)subscriber.recover_stalled_claim(now_ns, 500'000'000);
                break;
        }
        if (subscriber.corrupt() < corrupt) fail("corrupt() went back", subscriber.corrupt(), corrupt);
        if (subscriber.recovered_claims() < recovered) fail("recovered_claims() went back");
        corrupt = subscriber.corrupt();
        recovered = subscriber.recovered_claims();
    }
    if (check.sink == 0xFFFFFFFFu) std::fprintf(stderr, "%u\n", check.sink);   // keep the reads
    return 0;
}
