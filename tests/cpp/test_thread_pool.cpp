// The worker pool under concurrent callers, built with ThreadSanitizer by
// scripts/test_thread_pool.sh: six threads call parallel_for with 1-5
// threads and nested calls, every result is checked, a task's exception
// reaches its caller, and an interrupt hook stops long tasks that poll
// cancelled(). Tasks that borrow per-thread slots never share one. Exit
// status 0 when all hold.
#include <atomic>
#include <chrono>
#include <cstdio>
#include <stdexcept>
#include <thread>
#include <vector>

#include "pplx/parallel.h"

namespace {

std::atomic<bool> g_interrupt{false};
std::thread::id g_main;

bool hook() { return std::this_thread::get_id() == g_main && g_interrupt.load(); }

int run_callers() {
  std::atomic<int> failures{0};
  auto caller = [&](int t) {
    for (int rep = 0; rep < 300; ++rep) {
      size_t n = 1 + size_t(rep * 37 + t * 11) % 200;
      std::vector<long> out(n, 0);
      pplx::parallel_for(n, 1 + size_t(rep + t) % 5, [&](size_t i) {
        std::vector<long> inner(4, 0);
        pplx::parallel_for(4, 3, [&](size_t j) { inner[j] = long(j); });  // runs on this thread
        out[i] = long(i * i) + inner[3];
      });
      for (size_t i = 0; i < n; ++i)
        if (out[i] != long(i * i) + 3) failures++;
      // Per-slot state without atomics: two tasks holding one slot at once
      // would race (TSan) or find it busy; every task is counted once.
      size_t threads = 1 + size_t(rep * 3 + t) % 5;
      struct Slot { bool busy = false; long tasks = 0; };
      std::vector<Slot> slots(pplx::max_concurrency(n, threads));
      pplx::Slots free_slots(slots.size());
      pplx::parallel_for(n, threads, [&](size_t) {
        pplx::SlotLease lease(free_slots);
        Slot& slot = slots[lease.index];
        if (slot.busy) failures++;
        slot.busy = true;
        slot.tasks++;
        slot.busy = false;
      });
      long counted = 0;
      for (const Slot& slot : slots) counted += slot.tasks;
      if (counted != long(n)) failures++;
      if (rep % 10 == 0) {
        bool threw = false;
        try {
          pplx::parallel_for(50, 4, [](size_t i) {
            if (i == 17) throw std::runtime_error("task 17");
          });
        } catch (const std::runtime_error&) {
          threw = true;
        }
        if (!threw) failures++;
      }
    }
  };
  std::vector<std::thread> callers;
  for (int t = 0; t < 6; ++t) callers.emplace_back(caller, t);
  for (auto& c : callers) c.join();
  return failures.load();
}

// Returns the milliseconds from the interrupt to parallel_for throwing, or
// -1 when it never threw (the tasks alone would take 10 s).
double interrupt_latency_ms() {
  using Clock = std::chrono::steady_clock;
  Clock::time_point fired;
  std::thread trigger([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
    fired = Clock::now();
    g_interrupt = true;
  });
  double latency = -1;
  try {
    pplx::parallel_for(8, 4, [](size_t) {
      for (int k = 0; k < 10000 && !pplx::cancelled(); ++k) std::this_thread::sleep_for(std::chrono::milliseconds(1));
    });
  } catch (const pplx::Interrupted&) {
    latency = std::chrono::duration<double, std::milli>(Clock::now() - fired).count();
  }
  trigger.join();
  g_interrupt = false;
  return latency;
}

}  // namespace

int main() {
  g_main = std::this_thread::get_id();
  pplx::set_interrupt_hook(&hook);
  int failures = run_callers();
  double latency = interrupt_latency_ms();
  std::printf("thread pool (%zu threads at most): %d wrong results or lost exceptions; interrupt after %.0f ms\n",
              pplx::max_threads(), failures, latency);
  return failures == 0 && latency >= 0 && latency < 1000 ? 0 : 1;
}
