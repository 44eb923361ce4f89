// The process-wide worker pool. Work is cut into tasks whose boundaries
// depend only on the problem size, never on the thread count, so results are
// the same whatever the number of threads.
#pragma once
#include <cstddef>
#include <functional>

namespace pplx {

// Threads used when a call passes none; starts at the number of usable cores
// or PPLX_KERNELS_NUM_THREADS.
size_t get_num_threads();
void set_num_threads(size_t n);
// requested <= 0 means the process-wide setting.
size_t resolve_threads(long requested);

// Runs fn(task) for every task in [0, n_tasks) on at most `threads` threads,
// the calling thread included. Rethrows the first exception a task threw.
// When the pool is busy with another caller's work, runs on the calling thread.
void parallel_for(size_t n_tasks, size_t threads, const std::function<void(size_t)>& fn);

// Splits [0, n) into `parts` contiguous ranges; range i is [begin, end).
inline void split_range(size_t n, size_t parts, size_t i, size_t* begin, size_t* end) {
  size_t base = n / parts, extra = n % parts;
  *begin = i * base + (i < extra ? i : extra);
  *end = *begin + base + (i < extra ? 1 : 0);
}

}  // namespace pplx
