// The process-wide worker pool. Work is cut into tasks whose boundaries
// depend on the problem size (and at most on the machine's core count),
// never on a call's thread count, and every split gives the same result, so
// results are the same whatever the number of threads.
#pragma once
#include <cstddef>
#include <functional>
#include <mutex>
#include <stdexcept>
#include <vector>

namespace pplx {

// Threads used when a call passes none; starts at the number of usable cores
// or PPLX_KERNELS_NUM_THREADS.
size_t get_num_threads();
void set_num_threads(size_t n);
// The most threads one call runs on: the usable cores. The pool never holds
// more workers than this minus one, whatever the callers ask for.
size_t max_threads();
// requested <= 0 means the process-wide setting; the result is capped at
// max_threads().
size_t resolve_threads(long requested);

// Runs fn(task) for every task in [0, n_tasks) on at most `threads` threads,
// the calling thread included. Concurrent callers share the pool's workers:
// a free worker joins the call that has the fewest helpers, and rebalances
// after each task when a new call arrives. Rethrows the first exception a
// task threw. A parallel_for called from inside a task runs on that thread.
void parallel_for(size_t n_tasks, size_t threads, const std::function<void(size_t)>& fn);

// State that tasks keep across tasks (a heap of the best rows so far,
// scratch buffers), without one long task per thread: each task borrows
// one of n slots while it runs and gives it back, so a helper can leave the
// call between any two tasks. n = the most tasks that run at once (the
// `threads` given to parallel_for, capped at max_threads() and the task
// count). Which slot a task gets depends on scheduling: what the slots
// hold must be combined in an order-free way.
class Slots {
 public:
  explicit Slots(size_t n) {
    for (size_t i = n; i > 0; --i) free_.push_back(i - 1);
  }
  size_t acquire() {
    std::lock_guard<std::mutex> lock(mutex_);
    if (free_.empty()) throw std::logic_error("Slots: more tasks at once than slots");
    size_t i = free_.back();
    free_.pop_back();
    return i;
  }
  void release(size_t i) {
    std::lock_guard<std::mutex> lock(mutex_);
    free_.push_back(i);
  }

 private:
  std::mutex mutex_;
  std::vector<size_t> free_;
};

// The slot of one task: acquired on construction, released on return.
class SlotLease {
 public:
  explicit SlotLease(Slots& slots) : slots_(slots), index(slots.acquire()) {}
  ~SlotLease() { slots_.release(index); }
  SlotLease(const SlotLease&) = delete;
  SlotLease& operator=(const SlotLease&) = delete;

 private:
  Slots& slots_;

 public:
  const size_t index;
};

// The most tasks a parallel_for(n_tasks, threads, ...) runs at once.
size_t max_concurrency(size_t n_tasks, size_t threads);

// Interruption (Ctrl-C). The thread that called parallel_for asks the hook
// about every 20 ms (between tasks, while it waits for the workers, and when
// one of its tasks calls cancelled()). Once the hook returns true, tasks not
// yet started are skipped, cancelled() turns true in the running ones, and
// parallel_for throws Interrupted after every running task has returned.
struct Interrupted : std::runtime_error {
  Interrupted() : std::runtime_error("interrupted") {}
};
using InterruptHook = bool (*)();
void set_interrupt_hook(InterruptHook hook);

// True inside a task whose parallel_for was interrupted or had another task
// throw: a long task calls it between units of work and returns early (the
// call then throws, so partial results are never seen).
bool cancelled();

}  // namespace pplx
