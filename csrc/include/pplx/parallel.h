// The process-wide worker pool. Work is cut into tasks whose boundaries
// depend only on the problem size, never on the thread count, so results are
// the same whatever the number of threads.
#pragma once
#include <cstddef>
#include <functional>
#include <stdexcept>

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

// Splits [0, n) into `parts` contiguous ranges; range i is [begin, end).
inline void split_range(size_t n, size_t parts, size_t i, size_t* begin, size_t* end) {
  size_t base = n / parts, extra = n % parts;
  *begin = i * base + (i < extra ? i : extra);
  *end = *begin + base + (i < extra ? 1 : 0);
}

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
