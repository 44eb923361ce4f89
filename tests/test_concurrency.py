"""Many Python threads in the kernels at once: the same results as serial
calls, a thread-count change mid-run is safe, the pool stays within the core
count, Ctrl-C stops a long scan quickly, and a forked child can use the
kernels (the worker pool is rebuilt in the child)."""

import os
import signal
import subprocess
import sys
import threading
import time

import numpy as np
import pytest

import pplx_kernels as pk
from pplx_kernels.index import Index


def workloads(rng):
    x = rng.standard_normal((600, 384)).astype(np.float32)
    codes, bits = pk.quantize_fused(x)
    hidden = rng.standard_normal((8, 40, 384)).astype(np.float32)
    mask = (rng.random((8, 40)) < 0.8).astype(np.int64)
    q = codes[:37]
    index = Index(384)
    index.add(codes, ids=np.arange(600) * 7)
    return [
        lambda: pk.quantize_fused(x, scheme="absmax"),
        lambda: pk.mean_pool(hidden, mask),
        lambda: pk.pack_bits(x, bitorder="little"),
        lambda: pk.topk(q, codes, 10),
        lambda: pk.topk(bits[:37], bits, 10, metric="hamming"),
        lambda: index.search(q, 10),
        lambda: index.search(q, 10, mode="two_stage"),
        lambda: pk.cosine(q, codes),
    ]


def as_arrays(result):
    return [np.asarray(r) for r in (result if isinstance(result, tuple) else (result,))]


def test_eight_threads_match_serial(rng):
    jobs = workloads(rng)
    serial = [as_arrays(job()) for job in jobs]
    errors, mismatches = [], []
    start = threading.Barrier(8)

    def worker(t):
        try:
            start.wait()
            for rep in range(6):
                i = (t + rep) % len(jobs)
                got = as_arrays(jobs[i]())
                if not all(np.array_equal(a, b) for a, b in zip(got, serial[i])):
                    mismatches.append((t, i))
        except Exception as exc:  # reported below, not swallowed
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(t,)) for t in range(8)]
    for th in threads:
        th.start()
    for th in threads:
        th.join(timeout=120)
    assert not any(th.is_alive() for th in threads), "a thread hung"
    assert not errors, errors
    assert not mismatches, mismatches


def test_changing_thread_count_mid_run(rng):
    jobs = workloads(rng)
    serial = [as_arrays(job()) for job in jobs]
    before = pk.get_num_threads()
    stop = threading.Event()

    def flip():
        n = 1
        while not stop.is_set():
            pk.set_num_threads(n)
            n = n % 4 + 1

    flipper = threading.Thread(target=flip)
    flipper.start()
    try:
        for rep in range(3):
            for i, job in enumerate(jobs):
                got = as_arrays(job())
                assert all(np.array_equal(a, b) for a, b in zip(got, serial[i])), i
    finally:
        stop.set()
        flipper.join()
        pk.set_num_threads(before)


def asan_runtime_loaded():
    try:
        with open("/proc/self/maps") as maps:
            return "libasan" in maps.read()
    except OSError:
        return False


@pytest.mark.skipif(
    asan_runtime_loaded(),
    reason="GCC 12's ASan allocator is not fork-safe: a child forked while another "
    "thread allocates inherits the allocator's lock held and deadlocks in its first malloc",
)
def test_search_in_forked_child():
    code = """
import os, signal, numpy as np, pplx_kernels as p
rng = np.random.default_rng(0)
db = rng.integers(-127, 128, size=(20000, 256)).astype(np.int8)
q = db[:16]
want = p.topk(q, db, 10, threads=2)
# another thread is inside the worker pool while the process forks
import threading
stop = threading.Event()
def busy():
    while not stop.is_set():
        p.topk(q, db, 10, threads=2)
t = threading.Thread(target=busy); t.start()
pid = os.fork()
if pid == 0:
    signal.alarm(60)  # a hung child dies (SIGALRM) instead of outliving the test
    got = p.topk(q, db, 10, threads=2)
    os._exit(0 if all((a == b).all() for a, b in zip(got, want)) else 3)
_, status = os.waitpid(pid, 0)
stop.set(); t.join()
print(os.waitstatus_to_exitcode(status))
"""
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, env=dict(os.environ))
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "0", f"child exit status {r.stdout.strip()} (-14: hung, killed by its alarm)"


def test_mixed_thread_counts_at_once_match_numpy(rng):
    # Callers asking for 1, 2, 3 and 64 threads share the pool at the same time;
    # every answer equals a plain numpy top-k.
    db = rng.integers(-127, 128, size=(3000, 96), dtype=np.int8)
    q = rng.integers(-127, 128, size=(5, 96), dtype=np.int8)
    dots = q.astype(np.int64) @ db.astype(np.int64).T
    norms = np.sqrt((db.astype(np.int64) ** 2).sum(1)) * np.sqrt((q.astype(np.int64) ** 2).sum(1))[:, None]
    cos = dots / norms
    want_ids = np.argsort(-cos, axis=1, kind="stable")[:, :7]
    errors = []
    start = threading.Barrier(4)

    def worker(threads):
        try:
            start.wait()
            for _ in range(20):
                scores, ids = pk.topk(q, db, 7, threads=threads)
                if not np.array_equal(ids, want_ids):
                    errors.append((threads, ids))
                np.testing.assert_allclose(scores, np.take_along_axis(cos, want_ids, 1), rtol=1e-6)
        except Exception as exc:  # reported below
            errors.append(exc)

    workers = [threading.Thread(target=worker, args=(t,)) for t in (1, 2, 3, 64)]
    for th in workers:
        th.start()
    for th in workers:
        th.join(timeout=120)
    assert not any(th.is_alive() for th in workers), "a thread hung"
    assert not errors, errors[:3]


def test_pool_never_exceeds_the_core_count():
    # Asking for 64 threads starts at most max_threads - 1 workers.
    code = """
import os, threading, numpy as np, pplx_kernels as p
db = np.random.default_rng(0).integers(-127, 128, size=(20000, 64), dtype=np.int8)
before = len(os.listdir("/proc/self/task"))
p.topk(db[:3], db, 5, threads=64)
p.quantize(np.ones((50000, 64), np.float32), threads=64)
print(len(os.listdir("/proc/self/task")) - before, p.cpu_info()["max_threads"])
"""
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    started, limit = map(int, r.stdout.split())
    assert limit == len(os.sched_getaffinity(0))
    assert started <= limit - 1


INTERRUPT_CHILD = """
import sys, time, numpy as np, pplx_kernels as p
rng = np.random.default_rng(0)
db = rng.integers(-127, 128, size=(50_000, 1024), dtype=np.int8)
queries = rng.integers(-127, 128, size=(32_768, 1024), dtype=np.int8)
bits = p.pack_bits(db)
bit_queries = np.tile(bits, (2, 1))
wide = rng.integers(-127, 128, size=(2_500, 32_768), dtype=np.int8)
small = db[:200]
want = p.topk(small[:3], small, 4)
calls = {
    # each takes seconds to minutes when not interrupted
    "topk": lambda t: p.topk(queries, db, 10, threads=t),
    "topk_hamming": lambda t: p.topk(bit_queries, bits, 10, metric="hamming", threads=t),
    "cosine": lambda t: p.cosine(wide, wide, threads=t),
}
for name, threads in [(n, t) for n in calls for t in (1, 2)]:
    print("ready", name, threads, flush=True)
    start = time.monotonic()
    try:
        calls[name](threads)
        print("finished", time.monotonic() - start, flush=True)
    except KeyboardInterrupt:
        print("interrupted", time.monotonic() - start, flush=True)
    got = p.topk(small[:3], small, 4)  # the pool still works after an interrupt
    assert all((a == b).all() for a, b in zip(got, want))
"""


def test_ctrl_c_interrupts_a_long_scan_quickly():
    proc = subprocess.Popen([sys.executable, "-c", INTERRUPT_CHILD], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    latencies = {}
    try:
        for _ in range(6):
            line = proc.stdout.readline().split()
            assert line and line[0] == "ready", (line, proc.stderr.read() if proc.poll() is not None else "")
            time.sleep(0.3)  # well inside the scan
            sent = time.monotonic()
            proc.send_signal(signal.SIGINT)
            outcome = proc.stdout.readline().split()
            assert outcome and outcome[0] == "interrupted", (line, outcome)
            latencies[f"{line[1]} threads={line[2]}"] = time.monotonic() - sent
        assert proc.wait(timeout=60) == 0, proc.stderr.read()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    # About 20 ms is typical; the bound leaves room for a loaded CI machine.
    print("SIGINT -> KeyboardInterrupt, seconds:", latencies)
    slow = {k: v for k, v in latencies.items() if v > 0.5}
    assert not slow, latencies


def test_signal_handlers_during_a_scan(rng):
    # The wait for a long call runs Python's signal handlers: one that raises
    # ends the call with its own exception; one that does not leaves the
    # result intact.
    db = rng.integers(-127, 128, size=(20_000, 512), dtype=np.int8)
    q = rng.integers(-127, 128, size=(512, 512), dtype=np.int8)
    want = pk.topk(q, db, 10, threads=1)
    calls = []

    class FromHandler(Exception):
        pass

    def while_running(fn):
        done = threading.Event()

        def ping():
            while not done.wait(0.005):
                os.kill(os.getpid(), signal.SIGUSR1)

        pinger = threading.Thread(target=ping)
        pinger.start()
        try:
            return fn()
        finally:
            done.set()
            pinger.join()

    def raising(signum, frame):
        calls.append("raising")
        if calls.count("raising") == 1:  # later pings may land after the call ended
            raise FromHandler

    before = signal.signal(signal.SIGUSR1, raising)
    try:
        with pytest.raises(FromHandler):
            while_running(lambda: [pk.topk(q, db, 10) for _ in range(50)])
        signal.signal(signal.SIGUSR1, lambda signum, frame: calls.append("quiet"))
        got = while_running(lambda: pk.topk(q, db, 10))
    finally:
        signal.signal(signal.SIGUSR1, before)
    assert "quiet" in calls
    np.testing.assert_array_equal(got[1], want[1])
    np.testing.assert_array_equal(got[0], want[0])
