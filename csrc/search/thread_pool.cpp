// A pool of worker threads that lives across calls, so a search does not pay
// for thread start-up. One job runs at a time; a second caller that finds the
// pool busy runs its job on its own thread instead of waiting.
#include <pthread.h>
#include <sched.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstdlib>
#include <exception>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "pplx/parallel.h"

namespace pplx {
namespace {

size_t usable_cores() {
#if defined(__linux__)
  cpu_set_t set;
  if (sched_getaffinity(0, sizeof(set), &set) == 0) {
    int n = CPU_COUNT(&set);
    if (n > 0) return size_t(n);
  }
#endif
  unsigned n = std::thread::hardware_concurrency();
  return n ? n : 1;
}

size_t initial_threads() {
  if (const char* env = std::getenv("PPLX_KERNELS_NUM_THREADS")) {
    char* end = nullptr;
    long n = std::strtol(env, &end, 10);
    if (end != env && *end == '\0' && n > 0 && n <= 4096) return size_t(n);
  }
  return usable_cores();
}

std::atomic<size_t> g_num_threads{0};

// One call's work. Helpers hold it by shared_ptr, so a helper that wakes
// after every task was taken only looks at this object, never at the
// caller's function, and the caller returns as soon as its tasks are done
// instead of waiting for helpers that never got a task.
struct Job {
  const std::function<void(size_t)>* fn;
  size_t n_tasks;
  std::atomic<size_t> next{0}, done{0};
  std::mutex mutex;
  std::condition_variable finished;
  std::exception_ptr error;

  // Runs tasks until none is left.
  void work() {
    for (;;) {
      size_t task = next.fetch_add(1);
      if (task >= n_tasks) return;
      size_t completed = 1;
      try {
        (*fn)(task);
      } catch (...) {
        std::lock_guard<std::mutex> lock(mutex);
        if (!error) error = std::current_exception();
        size_t claimed = next.exchange(n_tasks);  // skip what is left
        if (claimed < n_tasks) completed += n_tasks - claimed;
      }
      if (done.fetch_add(completed) + completed == n_tasks) {
        std::lock_guard<std::mutex> lock(mutex);
        finished.notify_all();
      }
    }
  }

  void wait() {
    std::unique_lock<std::mutex> lock(mutex);
    finished.wait(lock, [&] { return done.load() == n_tasks; });
  }
};

class Pool {
 public:
  ~Pool() {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      stop_ = true;
    }
    wake_.notify_all();
    for (auto& t : workers_) t.join();
  }

  // Returns false without running anything when another job holds the pool.
  bool try_run(size_t n_tasks, size_t threads, const std::function<void(size_t)>& fn) {
    std::unique_lock<std::mutex> busy(busy_, std::try_to_lock);
    if (!busy.owns_lock()) return false;
    size_t helpers = std::min(threads, n_tasks) - 1;
    auto job = std::make_shared<Job>();
    job->fn = &fn;
    job->n_tasks = n_tasks;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      grow(helpers);
      job_ = job;
      active_helpers_ = helpers;
      ++generation_;
    }
    wake_.notify_all();
    job->work();
    job->wait();
    {
      std::lock_guard<std::mutex> lock(mutex_);
      job_.reset();
    }
    if (job->error) std::rethrow_exception(job->error);
    return true;
  }

 private:
  void grow(size_t n) {
    while (workers_.size() < n) {
      size_t index = workers_.size();
      workers_.emplace_back([this, index] { loop(index); });
    }
  }

  void loop(size_t index) {
    size_t seen = 0;
    for (;;) {
      std::shared_ptr<Job> job;
      {
        std::unique_lock<std::mutex> lock(mutex_);
        wake_.wait(lock, [&] { return stop_ || (generation_ != seen && index < active_helpers_); });
        if (stop_) return;
        seen = generation_;
        job = job_;
      }
      if (job) job->work();
    }
  }

  std::mutex busy_;
  std::mutex mutex_;
  std::condition_variable wake_;
  std::vector<std::thread> workers_;
  std::shared_ptr<Job> job_;
  size_t active_helpers_ = 0, generation_ = 0;
  bool stop_ = false;
};

Pool* g_pool = nullptr;
std::mutex g_pool_mutex;

// A forked child has none of the parent's threads: drop the pool (without
// joining threads that do not exist there) and start a new one on demand.
void forget_pool_in_child() {
  g_pool = nullptr;
  new (&g_pool_mutex) std::mutex();
}

Pool& pool() {
  std::lock_guard<std::mutex> lock(g_pool_mutex);
  if (!g_pool) {
    static bool registered = [] { return pthread_atfork(nullptr, nullptr, forget_pool_in_child) == 0; }();
    (void)registered;
    g_pool = new Pool();  // lives until exit; never destroyed during interpreter teardown
  }
  return *g_pool;
}

}  // namespace

size_t get_num_threads() {
  size_t n = g_num_threads.load();
  if (n == 0) {
    n = initial_threads();
    size_t expected = 0;
    if (!g_num_threads.compare_exchange_strong(expected, n)) n = expected;
  }
  return n;
}

void set_num_threads(size_t n) { g_num_threads.store(n == 0 ? initial_threads() : n); }

size_t resolve_threads(long requested) {
  return requested > 0 ? size_t(requested) : get_num_threads();
}

void parallel_for(size_t n_tasks, size_t threads, const std::function<void(size_t)>& fn) {
  if (n_tasks == 0) return;
  if (threads <= 1 || n_tasks == 1 || !pool().try_run(n_tasks, threads, fn)) {
    for (size_t task = 0; task < n_tasks; ++task) fn(task);
  }
}

}  // namespace pplx
