"""Concurrent callers: 4 Python threads each run single-query int8 cosine
top-10 over one 200 MB database (200,000 x 1024) for a few seconds, with the
default thread count. Prints total throughput (queries/s and database GB/s)
and per-call latency (p50, p99), plus one caller alone for reference.

    python benchmarks/bench_threads.py [--callers 4] [--seconds 5] [--rounds 3]
    python benchmarks/bench_threads.py --compare /path/to/old/python   # before/after

With --compare, each round runs the benchmark once with the given directories
first on PYTHONPATH (each holding a pplx_kernels package), interleaved, and the
median over rounds is reported per build.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import threading
import time

import numpy as np


def measure(callers, seconds, n, d):
    import pplx_kernels as pk

    rng = np.random.default_rng(0)
    db = rng.integers(-127, 128, size=(n, d), dtype=np.int8)
    queries = rng.integers(-127, 128, size=(64, d), dtype=np.int8)
    norms = pk.norms(db)
    pk.topk(queries[:1], db, 10, database_norms=norms)  # warm the pool and the page cache

    def run(n_callers):
        latencies = [[] for _ in range(n_callers)]
        start = threading.Barrier(n_callers)

        def caller(i):
            start.wait()
            end = time.perf_counter() + seconds
            j = i
            while time.perf_counter() < end:
                t = time.perf_counter()
                pk.topk(queries[j % 64 : j % 64 + 1], db, 10, database_norms=norms)
                latencies[i].append(time.perf_counter() - t)
                j += n_callers

        t0 = time.perf_counter()
        threads = [threading.Thread(target=caller, args=(i,)) for i in range(n_callers)]
        for th in threads:
            th.start()
        for th in threads:
            th.join()
        wall = time.perf_counter() - t0
        lat = np.concatenate([np.asarray(x) for x in latencies])
        return {
            "queries_per_s": len(lat) / wall,
            "gb_per_s": len(lat) * db.nbytes / wall / 1e9,
            "p50_ms": float(np.percentile(lat, 50) * 1e3),
            "p99_ms": float(np.percentile(lat, 99) * 1e3),
            "calls": int(len(lat)),
        }

    return {"alone": run(1), "concurrent": run(callers), "threads": pk.get_num_threads()}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--callers", type=int, default=4)
    ap.add_argument("--seconds", type=float, default=5.0)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("-n", type=int, default=200_000)
    ap.add_argument("-d", type=int, default=1024)
    ap.add_argument("--compare", nargs="*", default=[], help="directories holding another pplx_kernels build")
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        print(json.dumps(measure(args.callers, args.seconds, args.n, args.d)))
        return

    here = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "python")
    builds = {"this": os.environ.get("PYTHONPATH", here)} | {p: p for p in args.compare}
    results = {name: [] for name in builds}
    for _ in range(args.rounds):
        for name, path in builds.items():
            cmd = [sys.executable, __file__, "--child", "--callers", str(args.callers),
                   "--seconds", str(args.seconds), "-n", str(args.n), "-d", str(args.d)]
            out = subprocess.run(cmd, env=dict(os.environ, PYTHONPATH=path), capture_output=True, text=True, check=True)
            results[name].append(json.loads(out.stdout))

    print(f"{args.callers} callers, M=1 cosine top-10 over {args.n} x {args.d} int8 "
          f"({args.n * args.d / 1e6:.0f} MB), median of {args.rounds} rounds of {args.seconds:g} s")
    print(f"{'build':<28} {'mode':<11} {'queries/s':>10} {'GB/s':>6} {'p50 ms':>8} {'p99 ms':>8}")
    for name, runs in results.items():
        for mode in ("alone", "concurrent"):
            med = {k: float(np.median([r[mode][k] for r in runs])) for k in ("queries_per_s", "gb_per_s", "p50_ms", "p99_ms")}
            print(f"{name[-28:]:<28} {mode:<11} {med['queries_per_s']:>10.1f} {med['gb_per_s']:>6.1f} "
                  f"{med['p50_ms']:>8.2f} {med['p99_ms']:>8.2f}")


if __name__ == "__main__":
    main()
