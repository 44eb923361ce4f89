"""Ray scale-out on this machine: build throughput and sharded search QPS.

    PYTHONPATH=python python benchmarks/bench_distributed.py build  [--docs 3000] [--repeat 2]
    PYTHONPATH=python python benchmarks/bench_distributed.py search [-n 200000] [--dim 1024] [--seconds 3]

build: the stdlib docstring corpus (as JSON Lines) embedded with the default
model by the single-process streaming build and by the Ray build (local
cluster of all CPUs, started before the clock; 2 shards), alternately, and
docs/s of each with their ratio.

search: N random tanh-quantized rows of D dims, as one Index and as 2
shards (distributed.split); queries per second of one Index, of the shards
in-process, and of the shards in 2 Ray actors (1 CPU and 1 thread each),
for M = 1 and M = 16 queries per call, exact and two-stage (top-10).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "python"))

from pplx_kernels import Index  # noqa: E402
from pplx_kernels.distributed import ShardedIndex, build, split  # noqa: E402


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "unknown"


def bench_build(docs: int, repeat: int, tmp: str) -> None:
    import ray

    from pplx_kernels.corpus import read_corpus
    from pplx_kernels.index.build import build_index

    corpus = os.path.join(tmp, "stdlib.jsonl")
    with open(corpus, "w", encoding="utf-8") as fh:
        for d in read_corpus("stdlib", limit=docs):
            fh.write(json.dumps(d) + "\n")
    t = time.perf_counter()
    ray.init(num_cpus=os.cpu_count(), include_dashboard=False, log_to_driver=False)
    print(f"ray.init: {time.perf_counter() - t:.1f} s (not counted below)")
    rates = {"single": [], "ray": []}
    for r in range(repeat):
        out = os.path.join(tmp, f"single-{r}")
        stats = build_index(read_corpus(corpus), out, progress=False)
        rates["single"].append(stats["count"] / stats["seconds"])
        out = os.path.join(tmp, f"ray-{r}")
        stats = build(corpus, out, shards=2)
        rates["ray"].append(stats["docs_per_s"])
        print(f"run {r}: single {rates['single'][-1]:.1f} docs/s, ray {rates['ray'][-1]:.1f} docs/s "
              f"(ratio {rates['ray'][-1] / rates['single'][-1]:.2f})", flush=True)
    ray.shutdown()
    s, y = max(rates["single"]), max(rates["ray"])
    print(f"best of {repeat}: single {s:.1f} docs/s, ray {y:.1f} docs/s, ratio {y / s:.2f} ({docs} docs)")


def qps(fn, m: int, seconds: float) -> float:
    fn()  # warm-up
    calls, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        fn()
        calls += 1
    return calls * m / (time.perf_counter() - t0)


def bench_search(n: int, dim: int, seconds: float, tmp: str) -> None:
    import ray

    rng = np.random.default_rng(0)
    index = Index(dim, scheme="tanh")
    for lo in range(0, n, 50_000):
        index.add(rng.standard_normal((min(50_000, n - lo), dim), dtype=np.float32),
                  np.arange(lo, min(n, lo + 50_000)))
    single_dir, sharded_dir = os.path.join(tmp, "single"), os.path.join(tmp, "sharded")
    index.save(single_dir)
    split(index, sharded_dir, shards=2)
    del index
    one = Index.load(single_dir)
    queries = rng.standard_normal((16, dim), dtype=np.float32)
    ray.init(num_cpus=os.cpu_count(), include_dashboard=False, log_to_driver=False)
    local = ShardedIndex.open(sharded_dir)
    actors = ShardedIndex.open(sharded_dir, engine="ray", cpus_per_shard=1, threads=1)
    print(f"N = {n}, D = {dim}, 2 shards, top-10, queries/s (best run of {seconds:.0f} s):")
    print(f"{'mode':10} {'M':>3} {'one Index':>10} {'2 shards':>10} {'2 actors':>10} {'actors/one':>10}")
    for mode in ("exact", "two_stage"):
        for m in (1, 16):
            q = queries[:m]
            want = one.search(q, 10, mode=mode)
            for other in (local, actors):  # the same answers before timing
                got = other.search(q, 10, mode=mode)
                assert (got.ids == want[1]).all() and (got.scores == want[0]).all()
            r1 = qps(lambda: one.search(q, 10, mode=mode), m, seconds)
            r2 = qps(lambda: local.search(q, 10, mode=mode), m, seconds)
            r3 = qps(lambda: actors.search(q, 10, mode=mode), m, seconds)
            print(f"{mode:10} {m:3d} {r1:10.1f} {r2:10.1f} {r3:10.1f} {r3 / r1:10.2f}", flush=True)
    actors.close()
    local.close()
    ray.shutdown()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("what", choices=("build", "search"))
    ap.add_argument("--docs", type=int, default=3000)
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("-n", type=int, default=200_000)
    ap.add_argument("--dim", type=int, default=1024)
    ap.add_argument("--seconds", type=float, default=3.0)
    args = ap.parse_args()
    print(f"CPU: {cpu_model()}, {os.cpu_count()} CPUs")
    tmp = tempfile.mkdtemp(prefix="pplx-bench-dist-")
    try:
        if args.what == "build":
            bench_build(args.docs, args.repeat, tmp)
        else:
            bench_search(args.n, args.dim, args.seconds, tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
