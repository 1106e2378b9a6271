// A kernel table chosen once, on first use (the CPU, an environment override), that a force call may replace at
// any time: what the gemm/dot dispatcher and the Morton batches share. The hot path is one acquire load.
#pragma once

#include <atomic>

namespace cf::compute {

// kChoose picks the table; it runs once (a function-local static, so also when threads race, and any complaint it
// prints is printed once). A force() that got in before the first get() wins over the choice.
template <class Table, const Table* (*kChoose)() noexcept>
class ChosenTable {
public:
    const Table& get() noexcept {
        const Table* table = active_.load(std::memory_order_acquire);
        if (table != nullptr) [[likely]] return *table;
        return first_use();
    }

    void force(const Table& table) noexcept { active_.store(&table, std::memory_order_release); }

private:
    [[gnu::cold, gnu::noinline]] const Table& first_use() noexcept {
        static const Table* const chosen = kChoose();
        const Table* expected = nullptr;
        if (!active_.compare_exchange_strong(expected, chosen, std::memory_order_acq_rel)) return *expected;
        return *chosen;
    }

    std::atomic<const Table*> active_{nullptr};
};

}  // namespace cf::compute
