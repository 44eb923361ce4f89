"""Index.search against FAISS and USearch doing the same search, in one run.

    python benchmarks/bench_index.py [--quick] [--sizes 100000 1000000] [--json FILE]

N vectors of 1024 dims (int8) and top-10 for batches of 1 and 64 queries:

  pplx exact        Index.search(mode="exact"): int8 cosine over every row
  pplx two_stage    Index.search(mode="two_stage"): Hamming top-(10 x oversample)
                    over the sign bits, int8 cosine on those candidates
  faiss flat-ip     faiss.IndexFlatIP on float32 copies of the int8 rows,
                    L2-normalized (4x the memory): exact cosine
  faiss binary+rescore  faiss.IndexBinaryFlat for the same candidates, then
                    numpy int8 -> float32 cosine on them (what a user would write)
  numpy sgemm       the same float32 rows, one matrix product per batch and
                    argpartition (the strongest plain baseline here)
  usearch exact     usearch.index.search(exact=True) on the int8 rows, Cos

The data has structure, so that neighbours and recall mean something: rows
are int8 (absmax) quantizations of low-rank Gaussian vectors plus noise,
queries come from the same distribution. Recall@10 is measured against
pplx exact search (exact int32 dot products); FAISS float32 and USearch
may differ from it only on float rounding ties. QPS is the best of a few
repeats; other processes on a shared machine make absolute numbers noisy,
ratios within one run less so.
"""

from __future__ import annotations

import argparse
import json
import platform
import time

import numpy as np

import pplx_kernels as pk
from pplx_kernels.index import DEFAULT_OVERSAMPLE

K = 10


def make_data(n, dim, rank=96, seed=0, chunk=1 << 16):
    """int8 [n, dim]: absmax quantization of z @ W + noise, z ~ N(0, diag(s))
    with a decaying spectrum s and W fixed; generated in chunks to bound
    memory."""
    # One W for every call: database and queries share the subspace.
    w = np.random.default_rng(12345).standard_normal((rank, dim), dtype=np.float32)
    rng = np.random.default_rng(seed)
    scale = (1.0 / np.sqrt(1 + np.arange(rank))).astype(np.float32)
    out = np.empty((n, dim), np.int8)
    for start in range(0, n, chunk):
        m = min(chunk, n - start)
        z = rng.standard_normal((m, rank), dtype=np.float32) * scale
        f = z @ w + 0.5 * rng.standard_normal((m, dim), dtype=np.float32)
        out[start:start + m] = pk.quantize(f, scheme="absmax")
    return out


def best_qps(search, queries, batch, budget_s):
    """Queries per second of search(q) over consecutive batches of `batch`
    queries: the best pass over all queries, at least two passes."""
    batches = [queries[i:i + batch] for i in range(0, len(queries), batch)]
    search(batches[0])  # warm up: page-in, thread pools
    best, start, reps = float("inf"), time.perf_counter(), 0
    while reps < 2 or (time.perf_counter() - start < budget_s and reps < 5):
        t0 = time.perf_counter()
        for b in batches:
            search(b)
        best = min(best, time.perf_counter() - t0)
        reps += 1
    return len(queries) / best


def recall(found, truth):
    return float(np.mean([len(set(a) & set(b)) / len(b) for a, b in zip(found.tolist(), truth.tolist())]))


def peer_searches(codes, index, threads, oversample):
    """name -> search(q int8 [m, dim]) -> row ids [m, K]. Peers that are not
    installed are skipped with a message."""
    searches = {}
    try:
        import faiss
        faiss.omp_set_num_threads(threads)
        flat = faiss.IndexFlatIP(codes.shape[1])
        for start in range(0, len(codes), 1 << 16):  # chunks: FAISS keeps its own copy
            xf = codes[start:start + (1 << 16)].astype(np.float32)
            xf /= np.maximum(np.linalg.norm(xf, axis=1, keepdims=True), 1e-30)
            flat.add(xf)

        def faiss_flat(q):
            qf = q.astype(np.float32)
            qf /= np.maximum(np.linalg.norm(qf, axis=1, keepdims=True), 1e-30)
            return flat.search(qf, K)[1]

        binary = faiss.IndexBinaryFlat(codes.shape[1])
        binary.add(np.packbits(codes >= 0, axis=1))
        norms = np.linalg.norm(codes.astype(np.float32), axis=1)

        def faiss_two_stage(q):
            _, cand = binary.search(np.packbits(q >= 0, axis=1), K * oversample)
            qf = q.astype(np.float32)
            out = np.empty((len(q), K), np.int64)
            for i in range(len(q)):
                c = cand[i]
                s = codes[c].astype(np.float32) @ qf[i] / np.maximum(norms[c], 1e-30)
                out[i] = c[np.argsort(-s, kind="stable")[:K]]
            return out

        # numpy on the same float32 rows (FAISS's own copy, no second 4x
        # copy): one sgemm per batch, then argpartition.
        xb = faiss.rev_swig_ptr(flat.get_xb(), flat.ntotal * flat.d).reshape(flat.ntotal, flat.d)

        def numpy_sgemm(q):
            qf = q.astype(np.float32)
            qf /= np.maximum(np.linalg.norm(qf, axis=1, keepdims=True), 1e-30)
            s = qf @ xb.T
            part = np.argpartition(-s, K - 1, axis=1)[:, :K]
            order = np.argsort(-np.take_along_axis(s, part, 1), axis=1, kind="stable")
            return np.take_along_axis(part, order, 1)

        searches["faiss flat-ip (float32)"] = ("exact", faiss_flat)
        searches["numpy sgemm (float32)"] = ("exact", numpy_sgemm)
        searches["faiss binary+rescore"] = ("two_stage", faiss_two_stage)
    except ImportError:
        print("skipping FAISS: pip install faiss-cpu")
    try:
        from usearch.index import MetricKind
        from usearch.index import search as usearch_search

        def usearch_exact(q):
            return usearch_search(codes, q, K, MetricKind.Cos, exact=True, threads=threads).keys

        searches["usearch exact (i8)"] = ("exact", usearch_exact)
    except ImportError:
        print("skipping USearch: pip install usearch")
    return searches


def run_size(n, dim, n_queries, batches, threads, oversample, budget_s, peers):
    t0 = time.perf_counter()
    codes = make_data(n, dim)
    queries = make_data(n_queries, dim, seed=1)
    index = pk.Index(dim)
    index.add(codes)
    print(f"\nN = {n:,} x {dim} int8 ({codes.nbytes / 1e9:.2f} GB), {n_queries} queries, "
          f"data + index in {time.perf_counter() - t0:.1f} s", flush=True)
    # Row ids = positions (add assigned 0..n-1), so every method is compared on rows.
    _, truth = index.search(queries, K)
    searches = {
        "pplx exact": ("exact", lambda q: index.search(q, K)[1]),
        f"pplx two_stage (x{oversample})": (
            "two_stage", lambda q: index.search(q, K, mode="two_stage", oversample=oversample)[1]),
    }
    if peers:
        searches.update(peer_searches(codes, index, threads, oversample))
    rows = []
    for name, (mode, search) in searches.items():
        found = np.concatenate([search(queries[i:i + 64]) for i in range(0, n_queries, 64)])
        r = recall(found, truth)
        for batch in batches:
            # Batch-1 runs use 16 queries: each one is a scan of all N rows.
            qs = queries[:16] if batch == 1 else queries
            qps = best_qps(search, qs, batch, budget_s)
            rows.append({"n": n, "dim": dim, "method": name, "mode": mode, "batch": batch,
                         "qps": qps, "recall@10": r})
            print(f"  {name:28s} batch {batch:3d}: {qps:10.1f} QPS   recall@10 {r:.3f}", flush=True)
    return rows


def print_table(rows):
    print("\n| N | method | batch | QPS | recall@10 | QPS vs pplx (same mode) |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        ours = next(o["qps"] for o in rows if o["n"] == r["n"] and o["batch"] == r["batch"]
                    and o["mode"] == r["mode"] and o["method"].startswith("pplx"))
        print(f"| {r['n']:,} | {r['method']} | {r['batch']} | {r['qps']:.1f} | {r['recall@10']:.3f} | "
              f"{r['qps'] / ours:.2g}x |")


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="20,000 vectors only, short timings")
    p.add_argument("--sizes", type=int, nargs="+", default=[100_000, 1_000_000])
    p.add_argument("--dim", type=int, default=1024)
    p.add_argument("--queries", type=int, default=128, help="queries for recall and batch-64 timing")
    p.add_argument("--batches", type=int, nargs="+", default=[1, 64])
    p.add_argument("--threads", type=int, default=pk.get_num_threads())
    p.add_argument("--oversample", type=int, default=DEFAULT_OVERSAMPLE)
    p.add_argument("--no-peers", action="store_true", help="only pplx-kernels")
    p.add_argument("--json", metavar="FILE", help="also write the rows as JSON")
    args = p.parse_args(argv)
    if args.quick:
        args.sizes, args.queries = [20_000], 64
    pk.set_num_threads(args.threads)
    budget = 0.5 if args.quick else 2.0
    print(f"bench_index: {platform.processor() or platform.machine()}, ISA {pk.get_isa()}, "
          f"{args.threads} threads, kernels {pk.cpu_info()['kernels']}")
    rows = []
    for n in args.sizes:
        rows += run_size(n, args.dim, args.queries, args.batches, args.threads, args.oversample,
                         budget, not args.no_peers)
    print_table(rows)
    if args.json:
        with open(args.json, "w") as fh:
            json.dump({"threads": args.threads, "isa": pk.get_isa(), "rows": rows}, fh, indent=1)


if __name__ == "__main__":
    main()
