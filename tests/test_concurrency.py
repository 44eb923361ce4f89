"""Many Python threads in the kernels at once: the same results as serial
calls, a thread-count change mid-run is safe, and a forked child can use the
kernels (the worker pool is rebuilt in the child)."""

import os
import subprocess
import sys
import threading

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
