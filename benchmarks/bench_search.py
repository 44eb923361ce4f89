"""Search-kernel throughput at every ISA level this machine runs, with the
numbers the roofline needs: million query-vector pairs per second, int8
multiply-accumulates per second (cosine) and database bytes read per second.

    python benchmarks/bench_search.py [--quick] [--threads 2]
    python -m pytest benchmarks/bench_search.py     # pytest-benchmark suite

Peers are in compare_peers.py; this script compares our own variants (the
scalar reference, AVX2, AVX-512) and the M = 1 / 16 / 256 regimes.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

import pplx_kernels as pk


def best_time(fn, budget_s=1.0, max_reps=7):
    fn()
    times = []
    start = time.perf_counter()
    while len(times) < max_reps and (len(times) < 2 or time.perf_counter() - start < budget_s):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def data(n, d, m, seed=0):
    rng = np.random.default_rng(seed)
    x = pk.quantize(rng.standard_normal((n, d), dtype=np.float32) * 0.5)
    q = pk.quantize(rng.standard_normal((m, d), dtype=np.float32) * 0.5)
    return x, q


def run(n, dims, ms, threads, levels):
    before = pk.get_isa()
    print(f"{'isa':7} {'metric':8} {'width':>5} {'M':>4} {'M pairs/s':>10} {'GMAC/s':>8} {'GB/s':>6}  variant")
    try:
        for d in dims:
            x, q_all = data(n, d, max(ms))
            norms = pk.norms(x)
            codes, qcodes_all = pk.pack_bits(x), pk.pack_bits(q_all)
            for level in levels:
                pk.set_isa(level)
                variants = pk.cpu_info()["kernels"]
                for m in ms:
                    if level == "scalar" and m > 16:
                        continue  # the reference is slow; it is here for scale
                    q, qc = q_all[:m], qcodes_all[:m]
                    t = best_time(lambda: pk.topk(q, x, 10, database_norms=norms, threads=threads))
                    print(f"{level:7} {'cosine':8} {d:5} {m:4} {m * n / t / 1e6:10.1f} "
                          f"{m * n * d / t / 1e9:8.1f} {x.nbytes / t / 1e9:6.1f}  {variants['cosine']}")
                    t = best_time(lambda: pk.topk(qc, codes, 10, metric="hamming", threads=threads))
                    print(f"{level:7} {'hamming':8} {d:5} {m:4} {m * n / t / 1e6:10.1f} {'':8} "
                          f"{codes.nbytes / t / 1e9:6.1f}  {variants['hamming']}")
    finally:
        pk.set_isa(before)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="N=20,000, D=1024 only")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("-n", type=int, default=None)
    args = ap.parse_args()
    n = args.n or (20_000 if args.quick else 200_000)
    dims = [1024] if args.quick else [1024, 2560]
    print(f"N={n}, top-10, {args.threads} threads, cpu: {pk.cpu_info()['features']['avx512vnni'] and 'AVX-512 VNNI' or 'no VNNI'}")
    run(n, dims, [1, 16, 256], args.threads, pk.available_isas())


# ---- pytest-benchmark suite (small sizes, the active level)

def test_topk_cosine_m16(benchmark):
    x, q = data(50_000, 1024, 16)
    norms = pk.norms(x)
    benchmark(lambda: pk.topk(q, x, 10, database_norms=norms))


def test_topk_hamming_m16(benchmark):
    x, q = data(50_000, 1024, 16)
    codes, qc = pk.pack_bits(x), pk.pack_bits(q)
    benchmark(lambda: pk.topk(qc, codes, 10, metric="hamming"))


if __name__ == "__main__":
    main()
