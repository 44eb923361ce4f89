"""Kernel-core benchmarks against the numpy formulation a user would write,
same data, one run, printing the ratio (pytest-benchmark also collects them).

    python benchmarks/bench_core.py              # ratio table
    python -m pytest benchmarks/bench_core.py    # pytest-benchmark suite

numpy may use several threads through its BLAS for the matmul form; ours use
the process-wide setting (the number of usable cores).
"""

from __future__ import annotations

import argparse
import time

import numpy as np

import pplx_kernels as pk


def best_time(fn, repeat=7, warmup=1):
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def tanh_data(rng, n=20_000, d=1024):
    return (rng.standard_normal((n, d)) * 0.5).astype(np.float32)


def pooling_data(rng, b=64, s=256, h=1024, padding=0.2):
    hidden = rng.standard_normal((b, s, h)).astype(np.float32)
    lengths = np.clip(rng.normal(s * (1 - padding), s * 0.1, size=b).astype(int), 1, s)
    mask = (np.arange(s)[None, :] < lengths[:, None]).astype(np.int64)
    return hidden, mask


def numpy_tanh_int8(x):
    return np.clip(np.rint(np.tanh(x) * 127), -127, 127).astype(np.int8)


def with_buffers(make, width, dtype):
    """Data plus preallocated buffers: the result array, and a float32 scratch
    for numpy's in-place form (a service reusing buffers in a hot loop)."""
    def build(rng):
        x = make(rng)
        return x, np.empty((x.shape[0], width(x.shape[1])), dtype), np.empty_like(x)
    return build


def numpy_tanh_int8_buffers(x, out, scratch):
    np.tanh(x, out=scratch)
    np.multiply(scratch, 127, out=scratch)
    np.rint(scratch, out=scratch)
    np.clip(scratch, -127, 127, out=scratch)
    np.copyto(out, scratch, casting="unsafe")
    return out


def numpy_pack(x):
    return np.packbits(x >= 0, axis=1)


def numpy_pool_matmul(hidden, mask):
    m = mask.astype(np.float32)
    return (m[:, None, :] @ hidden)[:, 0, :] / np.maximum(m.sum(1, keepdims=True), 1)


def numpy_pool_sum(hidden, mask):
    m = mask[:, :, None].astype(np.float32)
    return (hidden * m).sum(1) / np.maximum(m.sum(1), 1)


CASES = {
    # name: (data builder, ours, [(peer name, peer fn, target ratio)])
    "tanh int8 20000x1024": (
        tanh_data,
        lambda x: pk.quantize(x, "int8", scheme="tanh"),
        [("numpy clip(rint(tanh(x)*127))", numpy_tanh_int8, 20.0)],
    ),
    "tanh int8 20000x1024, out=": (
        with_buffers(tanh_data, lambda d: d, np.int8),
        lambda d: pk.quantize(d[0], "int8", scheme="tanh", out=d[1]),
        [("numpy clip(rint(tanh(x)*127))", lambda d: numpy_tanh_int8(d[0]), 20.0),
         ("numpy in place, out= buffers", lambda d: numpy_tanh_int8_buffers(*d), None)],
    ),
    "sign+pack 20000x1024": (
        tanh_data,
        lambda x: pk.pack_bits(x),
        [("np.packbits(x >= 0, axis=1)", numpy_pack, 2.0)],
    ),
    "sign+pack 20000x1024, out=": (
        with_buffers(tanh_data, lambda d: (d + 7) // 8, np.uint8),
        lambda d: pk.pack_bits(d[0], out=d[1]),
        [("np.packbits(x >= 0, axis=1)", lambda d: numpy_pack(d[0]), 2.0)],
    ),
    "mean pool [64,256,1024] 20% pad": (
        pooling_data,
        lambda d: pk.mean_pool(*d),
        [("numpy batched matmul with mask", lambda d: numpy_pool_matmul(*d), 1.0),
         ("numpy (h*m).sum(1)/m.sum(1)", lambda d: numpy_pool_sum(*d), 5.0)],
    ),
}


def run(repeat: int) -> list[dict]:
    rng = np.random.default_rng(0)
    rows = []
    for name, (make, ours, peers) in CASES.items():
        data = make(rng)
        t_ours = best_time(lambda: ours(data), repeat)
        for peer_name, peer, target in peers:
            t_peer = best_time(lambda: peer(data), repeat)
            rows.append(dict(case=name, peer=peer_name, ours_ms=1e3 * t_ours, peer_ms=1e3 * t_peer,
                             ratio=t_peer / t_ours, target=target))
    return rows


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeat", type=int, default=7, help="timed runs per function (best is kept)")
    ap.add_argument("--no-roofline", action="store_true", help="skip the mean pooling bandwidth table")
    ap.add_argument("--only-roofline", action="store_true", help="only the mean pooling bandwidth table")
    args = ap.parse_args(argv)
    if args.only_roofline:
        pooling_roofline(args.repeat)
        return
    info = pk.cpu_info()
    print(f"pplx_kernels {pk.__version__}  isa={info['isa']}  kernels={info['kernels']}  threads={info['threads']}")
    print(f"{'case':34s} {'peer':34s} {'ours ms':>9s} {'peer ms':>9s} {'ratio':>7s} {'target':>7s}")
    for r in run(args.repeat):
        if r["target"] is None:  # a reference point, not a target of the issue
            target, ok = "      -", ""
        else:
            target, ok = f"{r['target']:6.1f}x", "ok" if r["ratio"] >= r["target"] else "BELOW"
        print(f"{r['case']:34s} {r['peer']:34s} {r['ours_ms']:9.2f} {r['peer_ms']:9.2f} "
              f"{r['ratio']:6.1f}x {target} {ok}")
    if not args.no_roofline:
        pooling_roofline(args.repeat)


def unmasked_spans(hidden, mask):
    """The token rows pooling must read: per batch row, its unmasked tokens
    (a prefix here), each a contiguous view."""
    return [hidden[b, : int(mask[b].sum())] for b in range(hidden.shape[0]) if mask[b].any()]


def read_probe(spans, threads):
    """numpy's streaming read of exactly these bytes (uint8 max, its fastest
    reduction here at ~1.3x a uint32 max; it
    releases the GIL), the spans dealt to `threads` Python threads."""
    import threading

    words = [s.reshape(-1).view(np.uint8) for s in spans]
    groups = [words[i::threads] for i in range(threads)]

    def read_group(group):
        for w in group:
            w.max()

    def run():
        ts = [threading.Thread(target=read_group, args=(g,)) for g in groups]
        for t in ts:
            t.start()
        for t in ts:
            t.join()

    return run


def pooling_roofline(repeat):
    """Mean pooling streams memory: its roofline is the read bandwidth over
    the bytes it must read (the unmasked tokens). For each dtype, thread
    count and level, the read probe over the same bytes and the pooling call
    are timed interleaved, best of `repeat` each."""
    hidden32, mask = pooling_data(np.random.default_rng(0))
    before = (pk.get_isa(), pk.get_num_threads())
    levels = [lv for lv in ("avx2", "avx512", "neon") if lv in pk.available_isas()] or [pk.get_isa()]
    print(f"{'mean pool [64,256,1024] 20% pad':34s} {'dtype':8s} {'threads':>7s} {'level':>7s} "
          f"{'GB read':>8s} {'probe GB/s':>10s} {'pool GB/s':>10s} {'% of bw':>8s}")
    try:
        for dtype in (np.float32, np.float16):
            hidden = hidden32.astype(dtype)
            spans = unmasked_spans(hidden, mask)
            nbytes = sum(s.nbytes for s in spans)
            for threads in sorted({1, min(2, pk.cpu_info()["max_threads"])}):
                pk.set_num_threads(threads)
                probe = read_probe(spans, threads)
                for level in levels:
                    pk.set_isa(level)
                    t_probe, t_pool = [], []
                    probe(), pk.mean_pool(hidden, mask)  # warm up
                    for _ in range(repeat):
                        for fn, times in ((probe, t_probe), (lambda: pk.mean_pool(hidden, mask), t_pool)):
                            t = time.perf_counter()
                            fn()
                            times.append(time.perf_counter() - t)
                    bw, gbps = nbytes / min(t_probe) / 1e9, nbytes / min(t_pool) / 1e9
                    print(f"{'':34s} {np.dtype(dtype).name:8s} {threads:7d} {level:>7s} {nbytes / 1e9:8.3f} "
                          f"{bw:10.1f} {gbps:10.1f} {gbps / bw:8.0%}")
    finally:
        pk.set_isa(before[0])
        pk.set_num_threads(before[1])


# pytest-benchmark suite: python -m pytest benchmarks/bench_core.py
def _bench(benchmark, case, which):
    make, ours, peers = CASES[case]
    data = make(np.random.default_rng(0))
    fn = ours if which == "ours" else peers[which][1]
    benchmark(lambda: fn(data))


try:
    import pytest

    @pytest.mark.parametrize("which", ["ours", 0])
    @pytest.mark.parametrize("case", list(CASES))
    def test_core(benchmark, case, which):
        _bench(benchmark, case, which)
except ImportError:  # running the script without pytest installed
    pass


if __name__ == "__main__":
    main()
