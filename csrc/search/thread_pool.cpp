// A pool of worker threads that lives across calls, so a search does not pay
// for thread start-up, and that concurrent calls share fairly: each caller
// runs its own tasks, and the pool's workers (at most max_threads() - 1)
// help whichever running call has the fewest helpers.
#include <pthread.h>
#include <sched.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <exception>
#include <mutex>
#include <thread>
#include <vector>

#include "pplx/parallel.h"

namespace pplx {
namespace {

using Clock = std::chrono::steady_clock;
constexpr auto kPollEvery = std::chrono::milliseconds(20);

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
std::atomic<InterruptHook> g_hook{nullptr};

// One parallel_for call. It lives on the caller's stack: the caller removes
// it from the pool and waits until no helper is inside before returning.
struct Job {
  const std::function<void(size_t)>& fn;
  const size_t n_tasks, max_helpers;
  const std::thread::id caller = std::this_thread::get_id();
  std::atomic<size_t> next{0};
  std::atomic<bool> stop{false};  // interrupted, or a task threw
  bool interrupted = false;       // caller thread only
  Clock::time_point last_poll = Clock::now();
  size_t helpers = 0;             // guarded by the pool's mutex
  std::mutex error_mutex;
  std::exception_ptr error;

  Job(const std::function<void(size_t)>& f, size_t n, size_t h) : fn(f), n_tasks(n), max_helpers(h) {}

  bool has_work() const { return !stop.load(std::memory_order_relaxed) && next.load(std::memory_order_relaxed) < n_tasks; }

  // On the caller thread, at most every kPollEvery: asks the hook.
  void poll() {
    if (std::this_thread::get_id() != caller || interrupted) return;
    InterruptHook hook = g_hook.load(std::memory_order_relaxed);
    if (!hook) return;
    Clock::time_point now = Clock::now();
    if (now - last_poll < kPollEvery) return;
    last_poll = now;
    if (hook()) {
      interrupted = true;
      stop.store(true);
    }
  }

  void fail(std::exception_ptr e) {
    std::lock_guard<std::mutex> lock(error_mutex);
    if (!error) error = e;
    stop.store(true);
  }

  // After every task returned: the call's outcome.
  void finish() {
    if (interrupted) throw Interrupted();
    if (error) std::rethrow_exception(error);
  }
};

thread_local Job* t_job = nullptr;  // the job whose task this thread runs

// Runs tasks of `job` until none is left, or, for a helper, until `leave`
// says a new call arrived and the helpers should be shared out again.
template <class Leave>
void run_tasks(Job& job, Leave leave) {
  t_job = &job;
  for (;;) {
    job.poll();
    if (job.stop.load(std::memory_order_relaxed)) break;
    size_t task = job.next.fetch_add(1);
    if (task >= job.n_tasks) break;
    try {
      job.fn(task);
    } catch (...) {
      job.fail(std::current_exception());
    }
    if (leave()) break;
  }
  t_job = nullptr;
}

class Pool {
 public:
  explicit Pool(size_t max_workers) : max_workers_(max_workers) {}

  ~Pool() {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      stop_ = true;
    }
    wake_.notify_all();
    for (auto& t : workers_) t.join();
  }

  // Called by the caller thread: publishes the job, runs its tasks alongside
  // the helpers, and returns once none of them is inside.
  void run(Job& job) {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      while (workers_.size() < std::min(job.max_helpers, max_workers_))
        workers_.emplace_back([this] { loop(); });
      jobs_.push_back(&job);
      arrivals_.fetch_add(1);
    }
    wake_.notify_all();
    run_tasks(job, [] { return false; });
    std::unique_lock<std::mutex> lock(mutex_);
    jobs_.erase(std::find(jobs_.begin(), jobs_.end(), &job));
    while (job.helpers > 0) {
      finished_.wait_for(lock, kPollEvery);
      lock.unlock();  // the hook may wait for the GIL: never while holding the pool
      job.poll();
      lock.lock();
    }
  }

 private:
  // Under mutex_: the call with work left and the fewest helpers, below the
  // number it asked for; the oldest wins a tie.
  Job* pick() const {
    Job* best = nullptr;
    for (Job* j : jobs_)
      if (j->has_work() && j->helpers < j->max_helpers && (!best || j->helpers < best->helpers)) best = j;
    return best;
  }

  void loop() {
    std::unique_lock<std::mutex> lock(mutex_);
    for (;;) {
      Job* job = nullptr;
      wake_.wait(lock, [&] { return stop_ || (job = pick()) != nullptr; });
      if (stop_) return;
      ++job->helpers;
      size_t seen = arrivals_.load();
      lock.unlock();
      run_tasks(*job, [&] { return arrivals_.load(std::memory_order_relaxed) != seen; });
      lock.lock();
      if (--job->helpers == 0) finished_.notify_all();
    }
  }

  const size_t max_workers_;
  std::mutex mutex_;
  std::condition_variable wake_, finished_;
  std::vector<std::thread> workers_;
  std::vector<Job*> jobs_;  // calls that may still want helpers, oldest first
  std::atomic<size_t> arrivals_{0};
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
    g_pool = new Pool(max_threads() - 1);  // lives until exit; never destroyed during interpreter teardown
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

size_t max_threads() {
  static const size_t n = usable_cores();
  return n;
}

size_t resolve_threads(long requested) {
  size_t n = requested > 0 ? size_t(requested) : get_num_threads();
  return std::min(n, max_threads());
}

void set_interrupt_hook(InterruptHook hook) { g_hook.store(hook); }

bool cancelled() {
  Job* job = t_job;
  if (!job) return false;
  job->poll();
  return job->stop.load(std::memory_order_relaxed);
}

size_t max_concurrency(size_t n_tasks, size_t threads) {
  if (t_job) return 1;  // nested: runs on the calling thread
  return std::max<size_t>(1, std::min({threads, max_threads(), n_tasks}));
}

void parallel_for(size_t n_tasks, size_t threads, const std::function<void(size_t)>& fn) {
  if (n_tasks == 0) return;
  if (t_job) {  // inside a task: run here; the outer call throws if it was stopped
    for (size_t task = 0; task < n_tasks && !cancelled(); ++task) fn(task);
    return;
  }
  Job job(fn, n_tasks, max_concurrency(n_tasks, threads) - 1);
  if (job.max_helpers == 0)
    run_tasks(job, [] { return false; });
  else
    pool().run(job);
  job.finish();
}

}  // namespace pplx
