// alloc: what one allocation costs, our static pool (cf::mem::Pool) against glibc malloc, mimalloc and jemalloc.
// The pool runs twice: as a C++ program uses it by default (inline allocate() and free(), no block states), and
// as the C API does (a pool that keeps block states, freed with free_checked(), which is cf_pool_free), so the
// price of the double-free check shows as one ratio. Two last rows time the same loops with no allocator: with
// nothing in them (the harness's floor), and with a chain of dependent adds about as long as a pool pair, whose
// tail (p99.99) is what this host gives any code of that length: a batch timed while an interrupt or the
// scheduler takes the CPU shows up there, whatever the code.
//  - same thread: alloc+free pairs at 64 B and 1 KiB, timed per pair;
//  - cross-thread: 64 B blocks allocated on one pinned thread, handed over an SPSC ring and freed on another pinned
//    thread; each side times only its own calls, per operation.
// Each sample is one bracket of ordered counter reads around a batch of 32 pairs (or 32 allocations, or 32 frees),
// minus the bracket's own cost, divided by 32, like the clock scenario. The contenders take turns in short rounds.
//
// Every allocator is called directly, the way a program that uses it calls it: each contender is a type the
// measuring loops are instantiated for (no function pointer chosen per contender at run time), so our pool's
// allocate()/free() are inlined into the loop as in an application, glibc's malloc/free are called by name, and
// mimalloc's mi_malloc/mi_free and jemalloc's malloc/free through the address the dynamic linker resolved for the
// symbol, kept in a global: the same one indirect call through a resolved slot that every call into a shared
// library makes (PLT/GOT; exactly the code gcc emits with -fno-plt). Our free_checked() is out of line by design,
// so the checked row has one real call per free. mimalloc and jemalloc (Debian's libmimalloc-dev,
// libjemalloc-dev) export malloc/free themselves and would replace glibc's allocator for the whole process if
// linked, so they are dlopen()ed with RTLD_LOCAL at run time and their entry points resolved from the handle; a
// peer that does not load is reported as skipped, with the loader's reason.
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

// The contenders. Each kind is a type with allocate() and release() that the loops below are instantiated for.
enum class Kind { pool_inline, pool_checked, glibc, mimalloc, jemalloc, none, spin };

// Our two pools: the default one, and one that keeps block states (detect_double_free), as the C API's.
struct Pools {
    mem::Pool* plain;
    mem::Pool* checked;
};

struct Contender {
    std::string name;
    Kind kind;
};

// A peer's entry points as the dynamic linker resolved them (a dlopen()ed library's equivalent of its GOT slots).
struct ResolvedSymbols {
    AllocateFn allocate = nullptr;
    FreeFn release = nullptr;
};
ResolvedSymbols mimalloc_symbols;
ResolvedSymbols jemalloc_symbols;

struct PoolInline {
    mem::Pool* pool;
    void* allocate(std::size_t bytes) const noexcept { return pool->allocate(bytes); }
    void release(void* block) const noexcept { pool->free(block); }
};

struct PoolChecked {
    mem::Pool* pool;
    void* allocate(std::size_t bytes) const noexcept { return pool->allocate(bytes); }
    void release(void* block) const noexcept { (void)pool->free_checked(block); }
};

struct GlibcMalloc {
    void* allocate(std::size_t bytes) const noexcept { return std::malloc(bytes); }
    void release(void* block) const noexcept { std::free(block); }
};

// No allocation: the loops' own cost. The block is a fixed address the loops pass around like a real one.
// kChain > 0: allocate() also runs that many dependent adds, which the compiler cannot fold.
template <int kChain>
struct NoAllocation {
    void* allocate(std::size_t bytes) const noexcept {
        static char placeholder;
        for (int i = 0; i < kChain; ++i) {
            asm volatile("" : "+r"(bytes));   // opaque: every add stays, each waiting for the one before
            ++bytes;
        }
        keep(bytes);
        return &placeholder;
    }
    void release(void*) const noexcept {}
};
constexpr int kSpinAdds = 24;   // about a 64 B pool pair at this machine's clock (see the rows' p50)

// Reads the slot at every call, as a call through the GOT does.
template <const ResolvedSymbols& symbols>
struct SharedLibraryAllocator {
    void* allocate(std::size_t bytes) const noexcept {
        const volatile AllocateFn& slot = symbols.allocate;
        return slot(bytes);
    }
    void release(void* block) const noexcept {
        const volatile FreeFn& slot = symbols.release;
        slot(block);
    }
};

// Calls `body` with the allocator object of `kind`: one switch per round or batch, never per operation.
template <class Body>
void with_allocator(Kind kind, const Pools& pools, Body body) {
    switch (kind) {
        case Kind::pool_inline: body(PoolInline{pools.plain}); break;
        case Kind::pool_checked: body(PoolChecked{pools.checked}); break;
        case Kind::none: body(NoAllocation<0>{}); break;
        case Kind::spin: body(NoAllocation<kSpinAdds>{}); break;
        case Kind::glibc: body(GlibcMalloc{}); break;
        case Kind::mimalloc: body(SharedLibraryAllocator<mimalloc_symbols>{}); break;
        case Kind::jemalloc: body(SharedLibraryAllocator<jemalloc_symbols>{}); break;
    }
}

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

void load_peer(Peers& peers, const char* name, Kind kind, ResolvedSymbols& symbols, const char* soname,
               const char* allocate_symbol, const char* free_symbol) {
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
    symbols.allocate = reinterpret_cast<AllocateFn>(allocate);
    symbols.release = reinterpret_cast<FreeFn>(release);
    peers.contenders.push_back({name, kind});
}

const Peers& peers() {
    static const Peers loaded = [] {
        Peers result;
        // glibc's malloc is the process's own: called by name, after checking that the name is glibc's.
        void* allocate = dlsym(RTLD_DEFAULT, "malloc");
        const std::string library = allocate != nullptr ? library_of(allocate) : "?";
        const bool glibc = library.rfind("libc.so", 0) == 0;
        result.contenders.push_back({glibc ? "glibc malloc" : "malloc (" + library + ")", Kind::glibc});
        if (!glibc) result.notes.push_back("the process's malloc is not glibc's but " + library + "'s");
        load_peer(result, "mimalloc", Kind::mimalloc, mimalloc_symbols, "libmimalloc.so.2", "mi_malloc", "mi_free");
        load_peer(result, "jemalloc", Kind::jemalloc, jemalloc_symbols, "libjemalloc.so.2", "malloc", "free");
        return result;
    }();
    return loaded;
}

std::uint64_t net_ticks(std::uint64_t ticks, const TickRuler& ruler) {
    return ticks > ruler.overhead_ticks() ? ticks - ruler.overhead_ticks() : 0;
}

// One round of same-thread pairs: allocate, free, allocate, free...
template <class Allocator>
void measure_pairs(const Allocator& allocator, std::size_t bytes, const TickRuler& ruler,
                   LatencyHistogram& histogram) {
    for (int b = 0; b < kBatchesPerRound; ++b) {
        const std::uint64_t start = platform::read_cycles_ordered();
        for (int i = 0; i < kBatch; ++i) {
            void* block = allocator.allocate(bytes);
            keep(block);
            allocator.release(block);
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

// Times freeing one batch.
template <class Allocator>
std::uint64_t free_batch(const Allocator& allocator, void* const* blocks) {
    const std::uint64_t start = platform::read_cycles_ordered();
    for (int i = 0; i < kBatch; ++i) allocator.release(blocks[i]);
    return platform::read_cycles_end() - start;
}

// The freeing side: takes batches off the ring and times freeing them, per contender.
void free_side(Handoff& handoff, const std::vector<Contender>& contenders, const Pools& pools, const TickRuler& ruler,
               int cpu, std::vector<LatencyHistogram>& histograms) {
    if (cpu >= 0) (void)platform::pin_current_thread(cpu);
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
        std::uint64_t ticks = 0;
        with_allocator(contenders[first.contender].kind, pools,
                       [&](const auto& allocator) { ticks = free_batch(allocator, blocks); });
        if (first.record != 0) histograms[first.contender].record(ruler.to_picos(net_ticks(ticks, ruler)) / kBatch);
    }
}

// The allocating side (this thread): times allocating a batch, then hands it over.
template <class Allocator>
void allocate_batches(const Allocator& allocator, Handoff& handoff, std::uint64_t& tail,
                      std::uint32_t contender_index, int batches, bool record, const TickRuler& ruler,
                      LatencyHistogram& histogram) {
    void* blocks[kBatch];
    for (int b = 0; b < batches; ++b) {
        const std::uint64_t start = platform::read_cycles_ordered();
        for (int i = 0; i < kBatch; ++i) blocks[i] = allocator.allocate(kCrossBytes);
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

    // Our pools: the default classes, 2 MiB each (32768 blocks of 64 B: far more than the ring can hold).
    std::unique_ptr<mem::Pool> pool, checked_pool;
    mem::PoolConfig config = mem::PoolConfig::powers_of_two(std::size_t{2} << 20);
    config.max_threads = 4;
    mem::PoolConfig checked_config = config;
    checked_config.detect_double_free = true;
    if (mem::Pool::create(config, pool) != 0 || mem::Pool::create(checked_config, checked_pool) != 0) {
        result.description = "allocation cost: not measured";
        result.notes.push_back(std::string("cf::mem::Pool::create failed: ") + platform::last_error_message());
        return result;
    }
    const Pools pools{pool.get(), checked_pool.get()};
    if (pool->warning()[0] != '\0') result.notes.push_back(std::string("cf::mem::Pool: ") + pool->warning());
    result.notes.push_back("cf::mem::Pool: default statistics (exact requested bytes off), " +
                           std::to_string(pool->node_arena_count()) + " NUMA node arena(s)");

    // Ours first (the plain pool at 0), then the peers from kFirstPeer on.
    constexpr std::size_t kFirstPeer = 2;
    const std::string checked_name = "cf::mem::Pool (block states + checked free, C API path)";
    std::vector<Contender> contenders = {{"cf::mem::Pool", Kind::pool_inline}, {checked_name, Kind::pool_checked}};
    for (const Contender& peer : peers().contenders) contenders.push_back(peer);
    contenders.push_back({"no allocation (harness floor)", Kind::none});
    contenders.push_back({"no allocation, " + std::to_string(kSpinAdds) + " dependent adds (a floor as long as a pair)",
                          Kind::spin});
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
            for (const std::size_t bytes : kPairSizes) {
                with_allocator(contender.kind, pools,
                               [&](const auto& allocator) { measure_pairs(allocator, bytes, ruler, warm_up); });
            }
        }
    }
    for (Duration elapsed; elapsed < half; elapsed = clock.now() - start) {
        for (std::size_t s = 0; s < std::size(kPairSizes); ++s) {
            for (std::size_t c = 0; c < count; ++c) {
                with_allocator(contenders[c].kind, pools, [&](const auto& allocator) {
                    measure_pairs(allocator, kPairSizes[s], ruler, pairs[s][c]);
                });
            }
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
    std::thread freeing([&] { free_side(*handoff, contenders, pools, ruler, free_cpu, free_side_histograms); });
    std::uint64_t tail = 0;
    for (std::size_t c = 0; c < count; ++c) {   // warm-up round, not recorded
        with_allocator(contenders[c].kind, pools, [&](const auto& allocator) {
            allocate_batches(allocator, *handoff, tail, static_cast<std::uint32_t>(c), kBatchesPerRound, false, ruler,
                             allocate_side[c]);
        });
    }
    const Instant cross_start = clock.now();
    for (Duration elapsed; elapsed < half; elapsed = clock.now() - cross_start) {
        for (std::size_t c = 0; c < count; ++c) {
            with_allocator(contenders[c].kind, pools, [&](const auto& allocator) {
                allocate_batches(allocator, *handoff, tail, static_cast<std::uint32_t>(c), kBatchesPerRound, true,
                                 ruler, allocate_side[c]);
            });
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
                         " (per op, each side). Batches of 32 timed by the cycle counter; every allocator called "
                         "directly as a program calls it (ours inlined, glibc by name, mimalloc/jemalloc through "
                         "their resolved symbol slot, as any call into a shared library); our pool twice: inline "
                         "allocate()/free() as C++ uses it by default, and with block states and free_checked() "
                         "(cf_pool_free's double-free check); last, the loops with no allocator (the floor)";
    for (std::size_t s = 0; s < std::size(kPairSizes); ++s) {
        const std::string label = size_label(kPairSizes[s]) + " alloc+free pair: ";
        const std::size_t ours = result.series.size();
        for (std::size_t c = 0; c < count; ++c) result.series.push_back(make_series(label + contenders[c].name,
                                                                                      pairs[s][c]));
        result.ratios.push_back(make_ratio(label + checked_name + " / cf::mem::Pool", result.series[ours + 1],
                                           result.series[ours]));
        for (std::size_t c = kFirstPeer; c < count; ++c) {
            if (contenders[c].kind == Kind::none || contenders[c].kind == Kind::spin) continue;
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
            if (contenders[c].kind == Kind::none || contenders[c].kind == Kind::spin) continue;
            result.ratios.push_back(make_ratio(std::string(side.label) + "cf::mem::Pool / " + contenders[c].name,
                                               result.series[ours], result.series[ours + c]));
        }
    }
    return result;
}

}  // namespace cf::latency
