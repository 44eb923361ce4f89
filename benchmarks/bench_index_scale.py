"""Index bookkeeping at scale: ids, removes, lookups, commits, opening.

    python benchmarks/bench_index_scale.py [--rows 10000000] [--dim 16] [--dir DIR] [--json FILE]

What is timed (wall clock, one run; small vectors, since the subject is
the id map, the log and the segment files, not the kernels):

  memory   Index(dim): add --rows random int64 ids in batches of 100,000
           (every batch checked against every id already there), remove
           1% of them in batches of 10,000, look up 100,000 ids with get(),
           1,000 with `in` and documents().
  durable  Index.open(DIR, create=True): the same adds, commit() after each
           batch (segments flushed every 65,536 rows and merged by tier),
           the same removes and a commit, then compact().
  open     Index.load (mmap) of saved indexes of 100,000, 1,000,000 and
           --rows rows: seconds and resident memory added by the open, then
           by a first search, each in a fresh process (O(1) in the rows:
           only the manifest and the log are read).
  filters  1,000,000 rows of 384 dims, 8 queries, k=10, best of 5: a plain
           search against 1% removed rows, deny_ids of 1%, allow_ids of 50%
           and of 0.1%, in both modes (each filter result is exact).

    python benchmarks/bench_index_scale.py --only filters
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "python"))

from pplx_kernels import Index  # noqa: E402

ADD_BATCH, REMOVE_BATCH = 100_000, 10_000


def rss_mb() -> float:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 1e6


def timed(label, fn, out):
    t0 = time.perf_counter()
    result = fn()
    out[label] = round(time.perf_counter() - t0, 3)
    print(f"  {label:<38} {out[label]:9.3f} s", flush=True)
    return result


def workload(index, ids, dim, rng, out, commit=None):
    codes = rng.integers(-127, 128, (ADD_BATCH, dim), dtype=np.int8)

    def add_all():
        for lo in range(0, len(ids), ADD_BATCH):
            batch = ids[lo:lo + ADD_BATCH]
            index.add(codes[:len(batch)], batch)
            if commit:
                commit()
    timed(f"add {len(ids):,} ids in batches of {ADD_BATCH:,}", add_all, out)
    gone = rng.choice(ids, len(ids) // 100, replace=False)

    def remove_all():
        for lo in range(0, len(gone), REMOVE_BATCH):
            index.remove(gone[lo:lo + REMOVE_BATCH])
        if commit:
            commit()
    timed(f"remove {len(gone):,} (1%) in batches of {REMOVE_BATCH:,}", remove_all, out)
    assert len(index) == len(ids) - len(gone)
    kept = np.setdiff1d(rng.choice(ids, 120_000, replace=False), gone)[:100_000]
    timed("get() 100,000 ids", lambda: index.get(kept), out)
    probe = np.concatenate([kept[:500], gone[:500]])
    found = timed("`in` for 1,000 ids (one at a time)", lambda: [int(i) in index for i in probe], out)
    assert sum(found) == 500
    timed("documents() of 1,000 ids", lambda: index.documents(kept[:1000]), out)
    q = rng.integers(-127, 128, (1, dim), dtype=np.int8)
    timed("search k=10, one query", lambda: index.search(q, 10), out)
    timed("search k=10, allow_ids of 100", lambda: index.search(q, 10, allow_ids=kept[:100]), out)


def filters(out: dict, n: int = 1_000_000, dim: int = 384) -> None:
    rng = np.random.default_rng(1)
    index = Index(dim)
    for lo in range(0, n, ADD_BATCH):
        index.add(rng.integers(-127, 128, (ADD_BATCH, dim), dtype=np.int8))
    removed = Index(dim)
    removed.add(index.get(index.ids))
    removed.remove(rng.choice(n, n // 100, replace=False))
    q = rng.integers(-127, 128, (8, dim), dtype=np.int8)

    def best(fn, repeats=5):
        times = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            fn()
            times.append(time.perf_counter() - t0)
        return round(min(times) * 1e3, 2)

    cases = {
        "plain": (index, {}),
        "1% removed": (removed, {}),
        "deny_ids 1%": (index, {"deny_ids": np.arange(0, n, 100)}),
        "allow_ids 50%": (index, {"allow_ids": np.arange(0, n, 2)}),
        "allow_ids 0.1%": (index, {"allow_ids": np.arange(0, n, 1000)}),
    }
    for mode in ("exact", "two_stage"):
        for name, (idx, kw) in cases.items():
            out[f"{mode} {name} ms"] = ms = best(lambda: idx.search(q, 10, mode=mode, **kw))
            print(f"  {mode:<9} {name:<16} {ms:9.2f} ms", flush=True)


def open_probe(path: str) -> dict:
    """In a fresh process: seconds and RSS added by Index.load, then by a search."""
    code = f"""
import json, os, sys, time
sys.path.insert(0, {os.path.join(HERE, '..', 'python')!r})
import numpy as np
from pplx_kernels import Index
def rss():
    return int(open('/proc/self/statm').read().split()[1]) * os.sysconf('SC_PAGE_SIZE') / 1e6
r0 = rss(); t0 = time.perf_counter()
index = Index.load({path!r})
t1 = time.perf_counter(); r1 = rss()
n = len(index)
t2 = time.perf_counter()
index.search(np.ones(index.dim, np.int8), 10)
t3 = time.perf_counter(); r3 = rss()
print(json.dumps({{"rows": n, "open_s": t1 - t0, "open_rss_mb": r1 - r0, "len_s": t2 - t1,
                  "first_search_s": t3 - t2, "search_rss_mb": r3 - r1}}))
"""
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return json.loads(proc.stdout)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=10_000_000)
    ap.add_argument("--dim", type=int, default=16)
    ap.add_argument("--dir", help="scratch directory (default: a temporary one, deleted after)")
    ap.add_argument("--json", help="write the numbers here")
    ap.add_argument("--only", choices=("memory", "durable", "open", "filters"), nargs="+",
                    help="run only these parts (default: all)")
    args = ap.parse_args()
    scratch = args.dir or tempfile.mkdtemp(prefix="pplx-scale-")
    rng = np.random.default_rng(0)
    ids = rng.choice(2**62, args.rows, replace=False).astype(np.int64)
    cpu = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")),
               platform.processor())
    result = {"rows": args.rows, "dim": args.dim, "cpu": cpu, "cores": os.cpu_count()}
    parts = set(args.only or ("memory", "durable", "open", "filters"))
    try:
        if "filters" in parts:
            print("filters: 1,000,000 x 384, 8 queries, k=10")
            result["filters"] = {}
            filters(result["filters"])
        if "memory" in parts:
            memory(result, ids, args.dim, rng)
        if "durable" in parts:
            durable(result, ids, args.dim, rng, scratch)
        if "open" in parts:
            open_times(result, ids, args.dim, rng, scratch, args.rows)
    finally:
        if not args.dir:
            shutil.rmtree(scratch, ignore_errors=True)
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(result, fh, indent=1)


def memory(result, ids, dim, rng) -> None:
    print(f"memory: Index({dim})")
    result["memory"] = out = {}
    index = Index(dim)
    workload(index, ids, dim, rng, out)
    out["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e3)


def durable(result, ids, dim, rng, scratch) -> None:
    print(f"durable: Index.open({scratch}/durable)")
    result["durable"] = out = {}
    index = Index.open(os.path.join(scratch, "durable"), create=True, dim=dim)
    workload(index, ids, dim, rng, out, commit=index.commit)
    out["segments_before_compact"] = len(index._segments)
    timed("compact()", index.compact, out)
    timed("close()", index.close, out)


def open_times(result, ids, dim, rng, scratch, rows) -> None:
    print("open: Index.load(mmap) in a fresh process")
    result["open"] = []
    for n in sorted({100_000, 1_000_000, rows}):
        path = os.path.join(scratch, f"open-{n}")
        index = Index(dim)
        index.add(rng.integers(-127, 128, (n, dim), dtype=np.int8), ids[:n])
        index.save(path)
        del index
        probe = open_probe(path)
        result["open"].append(probe)
        print(f"  {n:>11,} rows: open {probe['open_s'] * 1e3:7.2f} ms, +{probe['open_rss_mb']:6.1f} MB RSS; "
              f"first search {probe['first_search_s'] * 1e3:8.1f} ms, +{probe['search_rss_mb']:7.1f} MB RSS")


if __name__ == "__main__":
    main()
