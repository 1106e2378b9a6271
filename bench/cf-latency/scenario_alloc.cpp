// alloc: what one allocation costs, our static pool (cf::mem::Pool) against glibc malloc, mimalloc and jemalloc.
// The pool runs twice: with the inline free() and with free_checked() (what the C API's cf_pool_free calls), so
// the price of the double-free check shows as one ratio.
//  - same thread: alloc+free pairs at 64 B and 1 KiB, timed per pair;
//  - cross-thread: 64 B blocks allocated on one pinned thread, handed over an SPSC ring and freed on another pinned
//    thread; each side times only its own calls, per operation.
// Each sample is one bracket of ordered counter reads around a batch of 32 pairs (or 32 allocations, or 32 frees),
// minus the bracket's own cost, divided by 32, like the clock scenario. The contenders take turns in short rounds.
//
// Fairness: every contender, ours included, is called through a plain function pointer the compiler cannot see
// through (one indirect call per operation). mimalloc and jemalloc (Debian's libmimalloc-dev, libjemalloc-dev)
// export malloc/free themselves and would replace glibc's allocator for the whole process if linked, so they are
// dlopen()ed with RTLD_LOCAL at run time and their entry points resolved from the handle; a peer that does not load
// is reported as skipped, with the loader's reason.
#include <dlfcn.h>

#include <atomic>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "bench/cf-latency/scenario.hpp"
#include "bench/cf-latency/series.hpp"
#include "engine/mem/pool.hpp"
#include "platform/cpu/affinity.hpp"
#include "platform/os/cycle_counter.hpp"
#include "platform/os/last_error.hpp"

namespace cf::latency {
namespace {

constexpr int kBatch = 32;
constexpr int kBatchesPerRound = 500;
constexpr std::size_t kPairSizes[] = {64, 1024};
constexpr std::size_t kCrossBytes = 64;

using AllocateFn = void* (*)(std::size_t);
using FreeFn = void (*)(void*);

struct Contender {
    std::string name;
    AllocateFn allocate = nullptr;
    FreeFn release = nullptr;
};

// Hides a function pointer's value from the optimiser, so every call stays an indirect call.
template <class Function>
Function opaque(Function function) noexcept {
    asm volatile("" : "+r"(function));
    return function;
}

// Ours behind the same kind of pointer as the others.
mem::Pool* bench_pool = nullptr;
void* pool_allocate(std::size_t bytes) { return bench_pool->allocate(bytes); }
void pool_free(void* block) { bench_pool->free(block); }
void pool_free_checked(void* block) { (void)bench_pool->free_checked(block); }

std::string library_of(void* symbol) {
    Dl_info info{};
    if (dladdr(symbol, &info) == 0 || info.dli_fname == nullptr) return "?";
    const char* slash = std::strrchr(info.dli_fname, '/');
    return slash != nullptr ? slash + 1 : info.dli_fname;
}

// The peers, loaded once per process and never unloaded: their thread-exit hooks point into them.
struct Peers {
    std::vector<Contender> contenders;
    std::vector<std::string> notes;
};

void load_peer(Peers& peers, const char* name, const char* soname, const char* allocate_symbol,
               const char* free_symbol) {
    void* handle = dlopen(soname, RTLD_LOCAL | RTLD_NOW);
    if (handle == nullptr) {
        const std::string error = dlerror();
        std::string note = std::string(name) + " skipped: dlopen(" + soname + ") failed: " + error;
        if (error.find("static TLS") != std::string::npos) {
            note += " (its initial-exec TLS needs static TLS space that a dlopen cannot get; run cf-latency with "
                    "GLIBC_TUNABLES=glibc.rtld.optional_static_tls=16384)";
        }
        if (error.find("No such file") != std::string::npos || error.find("cannot open") != std::string::npos) {
            note += " (Debian: apt-get install libmimalloc-dev libjemalloc-dev)";
        }
        peers.notes.push_back(note);
        return;
    }
    void* allocate = dlsym(handle, allocate_symbol);
    void* release = dlsym(handle, free_symbol);
    // With RTLD_LOCAL the handle's own definitions come first; make sure they are not glibc's by accident.
    if (allocate == nullptr || release == nullptr || library_of(allocate) != soname ||
        library_of(release) != soname) {
        peers.notes.push_back(std::string(name) + " skipped: " + allocate_symbol + "/" + free_symbol +
                              " of " + soname + " not found (resolved in " +
                              (allocate != nullptr ? library_of(allocate) : std::string("nothing")) + ")");
        return;
    }
    peers.contenders.push_back({name, reinterpret_cast<AllocateFn>(allocate), reinterpret_cast<FreeFn>(release)});
}

const Peers& peers() {
    static const Peers loaded = [] {
        Peers result;
        // glibc's malloc is the process's own; resolved the same way so it is called the same way.
        void* allocate = dlsym(RTLD_DEFAULT, "malloc");
        void* release = dlsym(RTLD_DEFAULT, "free");
        const std::string library = allocate != nullptr ? library_of(allocate) : "?";
        const bool glibc = library.rfind("libc.so", 0) == 0;
        result.contenders.push_back({glibc ? "glibc malloc" : "malloc (" + library + ")",
                                     reinterpret_cast<AllocateFn>(allocate), reinterpret_cast<FreeFn>(release)});
        if (!glibc) result.notes.push_back("the process's malloc is not glibc's but " + library + "'s");
        load_peer(result, "mimalloc", "libmimalloc.so.2", "mi_malloc", "mi_free");
        load_peer(result, "jemalloc", "libjemalloc.so.2", "malloc", "free");
        return result;
    }();
    return loaded;
}

std::uint64_t net_ticks(std::uint64_t ticks, const TickRuler& ruler) {
    return ticks > ruler.overhead_ticks() ? ticks - ruler.overhead_ticks() : 0;
}

// One round of same-thread pairs: allocate, free, allocate, free...
void measure_pairs(const Contender& contender, std::size_t bytes, const TickRuler& ruler,
                   LatencyHistogram& histogram) {
    const AllocateFn allocate = opaque(contender.allocate);
    const FreeFn release = opaque(contender.release);
    for (int b = 0; b < kBatchesPerRound; ++b) {
        const std::uint64_t start = platform::read_cycles_ordered();
        for (int i = 0; i < kBatch; ++i) {
            void* block = allocate(bytes);
            keep(block);
            release(block);
        }
        const std::uint64_t ticks = platform::read_cycles_end() - start;
        histogram.record(ruler.to_picos(net_ticks(ticks, ruler)) / kBatch);
    }
}

// The cross-thread hand-over: a single-producer single-consumer ring moved in whole batches of kBatch entries.
struct Handoff {
    static constexpr std::uint64_t kSlots = 4096;   // a multiple of kBatch
    static constexpr std::uint32_t kStop = UINT32_MAX;

    struct Entry {
        void* block;
        std::uint32_t contender;   // index into the contender list, or kStop
        std::uint32_t record;      // 0: warm-up, not recorded
    };

    alignas(64) std::atomic<std::uint64_t> tail{0};   // producer's; release pairs with the consumer's acquire
    alignas(64) std::atomic<std::uint64_t> head{0};   // consumer's; release pairs with the producer's acquire
    alignas(64) Entry entries[kSlots];
};

// Spins (with a pause) while `blocked`, and yields once it has spun long: with one CPU for both sides the other
// side needs the CPU to make progress.
template <class Blocked>
void wait_while(Blocked blocked) {
    for (std::uint32_t spins = 0; blocked(); ++spins) {
        if (spins < 4096) platform::cpu_relax();
        else std::this_thread::yield();
    }
}

// The freeing side: takes batches off the ring and times freeing them, per contender.
void free_side(Handoff& handoff, const std::vector<Contender>& contenders, const TickRuler& ruler, int cpu,
               std::vector<LatencyHistogram>& histograms) {
    if (cpu >= 0) (void)platform::pin_current_thread(cpu);
    std::vector<FreeFn> releases;
    for (const Contender& contender : contenders) releases.push_back(opaque(contender.release));
    void* blocks[kBatch];
    std::uint64_t head = handoff.head.load(std::memory_order_relaxed);
    for (;;) {
        wait_while([&] { return handoff.tail.load(std::memory_order_acquire) - head < kBatch; });
        const Handoff::Entry first = handoff.entries[head % Handoff::kSlots];
        for (int i = 0; i < kBatch; ++i) {
            blocks[i] = handoff.entries[(head + static_cast<std::uint64_t>(i)) % Handoff::kSlots].block;
        }
        head += kBatch;
        handoff.head.store(head, std::memory_order_release);
        if (first.contender == Handoff::kStop) return;
        const FreeFn release = releases[first.contender];
        const std::uint64_t start = platform::read_cycles_ordered();
        for (int i = 0; i < kBatch; ++i) release(blocks[i]);
        const std::uint64_t ticks = platform::read_cycles_end() - start;
        if (first.record != 0) histograms[first.contender].record(ruler.to_picos(net_ticks(ticks, ruler)) / kBatch);
    }
}

// The allocating side (this thread): times allocating a batch, then hands it over.
void allocate_batches(Handoff& handoff, std::uint64_t& tail, std::uint32_t contender_index, AllocateFn allocate,
                      int batches, bool record, const TickRuler& ruler, LatencyHistogram& histogram) {
    void* blocks[kBatch];
    for (int b = 0; b < batches; ++b) {
        const std::uint64_t start = platform::read_cycles_ordered();
        for (int i = 0; i < kBatch; ++i) blocks[i] = allocate(kCrossBytes);
        const std::uint64_t ticks = platform::read_cycles_end() - start;
        if (record) histogram.record(ruler.to_picos(net_ticks(ticks, ruler)) / kBatch);
        wait_while([&] {
            return tail + kBatch - handoff.head.load(std::memory_order_acquire) > Handoff::kSlots;
        });
        for (int i = 0; i < kBatch; ++i) {
            handoff.entries[(tail + static_cast<std::uint64_t>(i)) % Handoff::kSlots] = {
                blocks[i], contender_index, record ? 1u : 0u};
        }
        tail += kBatch;
        handoff.tail.store(tail, std::memory_order_release);
    }
}

}  // namespace

ScenarioResult run_alloc_scenario(ScenarioContext& context) {
    ScenarioResult result;
    result.scenario = "alloc";
    const TickRuler ruler;
    CounterClock& clock = context.clock;

    // Our pool: the default classes, 2 MiB each (32768 blocks of 64 B: far more than the ring can hold).
    std::unique_ptr<mem::Pool> pool;
    mem::PoolConfig config = mem::PoolConfig::powers_of_two(std::size_t{2} << 20);
    config.max_threads = 4;
    if (mem::Pool::create(config, pool) != 0) {
        result.description = "allocation cost: not measured";
        result.notes.push_back(std::string("cf::mem::Pool::create failed: ") + platform::last_error_message());
        return result;
    }
    if (pool->warning()[0] != '\0') result.notes.push_back(std::string("cf::mem::Pool: ") + pool->warning());
    bench_pool = pool.get();

    // Ours first (the plain pool at 0), then the peers from kFirstPeer on.
    constexpr std::size_t kFirstPeer = 2;
    const std::string checked_name = "cf::mem::Pool (checked free, C API path)";
    std::vector<Contender> contenders = {{"cf::mem::Pool", &pool_allocate, &pool_free},
                                         {checked_name, &pool_allocate, &pool_free_checked}};
    for (const Contender& peer : peers().contenders) contenders.push_back(peer);
    result.notes.insert(result.notes.end(), peers().notes.begin(), peers().notes.end());
    const std::size_t count = contenders.size();

    // Half the time for same-thread pairs, half for the cross-thread hand-over; contenders take turns in rounds.
    context.progress.begin("alloc", context.duration_s);
    const Instant start = clock.now();
    const Duration half = Duration::from_femtos(static_cast<Femtos>(context.duration_s / 2 * 1e15));
    std::vector<std::vector<LatencyHistogram>> pairs(std::size(kPairSizes));
    for (auto& per_size : pairs) {
        for (std::size_t c = 0; c < count; ++c) per_size.push_back(make_picosecond_histogram());
    }
    {
        LatencyHistogram warm_up = make_picosecond_histogram();   // first touches (thread caches, arenas)
        for (const Contender& contender : contenders) {
            for (const std::size_t bytes : kPairSizes) measure_pairs(contender, bytes, ruler, warm_up);
        }
    }
    for (Duration elapsed; elapsed < half; elapsed = clock.now() - start) {
        for (std::size_t s = 0; s < std::size(kPairSizes); ++s) {
            for (std::size_t c = 0; c < count; ++c) measure_pairs(contenders[c], kPairSizes[s], ruler, pairs[s][c]);
        }
        context.progress.update(elapsed.to_seconds_f64());
    }

    // Cross-thread: this thread allocates, a helper on the next CPU frees.
    const int free_cpu = context.cpus.size() > 1 ? context.cpus[1] : -1;
    auto handoff = std::make_unique<Handoff>();
    std::vector<LatencyHistogram> allocate_side, free_side_histograms;
    for (std::size_t c = 0; c < count; ++c) {
        allocate_side.push_back(make_picosecond_histogram());
        free_side_histograms.push_back(make_picosecond_histogram());
    }
    std::thread freeing([&] { free_side(*handoff, contenders, ruler, free_cpu, free_side_histograms); });
    std::uint64_t tail = 0;
    std::vector<AllocateFn> allocates;
    for (const Contender& contender : contenders) allocates.push_back(opaque(contender.allocate));
    for (std::size_t c = 0; c < count; ++c) {   // warm-up round, not recorded
        allocate_batches(*handoff, tail, static_cast<std::uint32_t>(c), allocates[c], kBatchesPerRound, false, ruler,
                         allocate_side[c]);
    }
    const Instant cross_start = clock.now();
    for (Duration elapsed; elapsed < half; elapsed = clock.now() - cross_start) {
        for (std::size_t c = 0; c < count; ++c) {
            allocate_batches(*handoff, tail, static_cast<std::uint32_t>(c), allocates[c], kBatchesPerRound, true,
                             ruler, allocate_side[c]);
        }
        context.progress.update((clock.now() - start).to_seconds_f64());
    }
    wait_while([&] { return tail + kBatch - handoff->head.load(std::memory_order_acquire) > Handoff::kSlots; });
    for (int i = 0; i < kBatch; ++i) {
        handoff->entries[(tail + static_cast<std::uint64_t>(i)) % Handoff::kSlots] = {nullptr, Handoff::kStop, 0};
    }
    handoff->tail.store(tail + kBatch, std::memory_order_release);
    freeing.join();
    context.progress.end();

    mem::PoolStats stats;
    pool->stats(stats);
    if (stats.total.failed_allocations != 0) {
        result.notes.push_back("cf::mem::Pool: " + std::to_string(stats.total.failed_allocations) +
                               " allocations failed (pool exhausted): those samples time a failure");
    }
    if (free_cpu < 0) result.notes.push_back("only one CPU: both cross-thread sides ran on it, taking turns");

    result.description = "cost of allocation (ns): same-thread alloc+free pairs (per pair) at 64 B and 1 KiB; 64 B "
                         "allocated on one thread and freed on another" +
                         std::string(free_cpu >= 0 ? " (two pinned CPUs)" : " (one CPU)") +
                         " (per op, each side). Batches of 32 timed by the cycle counter; every allocator, ours "
                         "included, called through a function pointer (one indirect call per op); our pool twice: "
                         "inline free() and free_checked() (cf_pool_free's double-free check)";
    for (std::size_t s = 0; s < std::size(kPairSizes); ++s) {
        const std::string label = size_label(kPairSizes[s]) + " alloc+free pair: ";
        const std::size_t ours = result.series.size();
        for (std::size_t c = 0; c < count; ++c) result.series.push_back(make_series(label + contenders[c].name,
                                                                                      pairs[s][c]));
        result.ratios.push_back(make_ratio(label + checked_name + " / cf::mem::Pool", result.series[ours + 1],
                                           result.series[ours]));
        for (std::size_t c = kFirstPeer; c < count; ++c) {
            result.ratios.push_back(make_ratio(label + "cf::mem::Pool / " + contenders[c].name, result.series[ours],
                                               result.series[ours + c]));
        }
    }
    const struct {
        const char* label;
        const std::vector<LatencyHistogram>* histograms;
    } sides[] = {{"64 B cross-thread alloc (thread A): ", &allocate_side},
                 {"64 B cross-thread free (thread B): ", &free_side_histograms}};
    for (const auto& side : sides) {
        const std::size_t ours = result.series.size();
        for (std::size_t c = 0; c < count; ++c) {
            result.series.push_back(make_series(std::string(side.label) + contenders[c].name, (*side.histograms)[c]));
        }
        result.ratios.push_back(make_ratio(std::string(side.label) + checked_name + " / cf::mem::Pool",
                                           result.series[ours + 1], result.series[ours]));
        for (std::size_t c = kFirstPeer; c < count; ++c) {
            result.ratios.push_back(make_ratio(std::string(side.label) + "cf::mem::Pool / " + contenders[c].name,
                                               result.series[ours], result.series[ours + c]));
        }
    }
    bench_pool = nullptr;
    return result;
}

}  // namespace cf::latency
