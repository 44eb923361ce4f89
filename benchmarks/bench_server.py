"""The HTTP server under load: `pplx-kernels serve` with cross-request
batching on and off, against the plain servers a user would write.

  search     one query vector per request (JSON floats), N x D int8 index,
             1 / 8 / 32 / 64 concurrent clients: ours with batching (up to 64
             queries per top-k call), ours without (--max-search-batch 1: one
             top-k call per request, concurrent calls share the kernel
             threads), and FastAPI + FAISS IndexFlatIP over normalized
             float32 (one search per request, FastAPI's thread pool).
  embed      /v1/embeddings with one text per request from 32 clients, the
             default model: ours against FastAPI + onnxruntime running each
             request as its own batch (the model card's recipe).
  model      the default model alone, no server: CPU per text of one-thread
             calls (as the server runs them) over the same texts, one text
             per call (the plain server's shape) against sorted calls over
             all texts and against server-shaped batches, with padded/real
             tokens. Batch shape is all a server can change about model
             cost, so this bounds what batching can gain with this model.
  soak       (--soak SECONDS) search at 80% of the 32-client peak, open
             loop: server RSS growth after warm-up, error responses.

The load generator is one asyncio process writing raw HTTP/1.1 on
keep-alive connections (about the cheapest client Python has); its CPU
share and the server's are reported with every row.

    python benchmarks/bench_server.py [--quick] [--only search embed model] [--soak 600]
"""

import argparse
import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Optional, Union

import numpy as np

HERE = Path(__file__).resolve()
ROOT = HERE.parents[1]
HOST = "127.0.0.1"


# --- the plain servers (run in a subprocess: bench_server.py --plain KIND ...) --------------------


def plain_faiss_app(data: str):
    import faiss
    from fastapi import FastAPI
    from pydantic import BaseModel

    vectors = np.load(data, mmap_mode="r")
    index = faiss.IndexFlatIP(vectors.shape[1])
    index.add(np.ascontiguousarray(vectors, dtype=np.float32))
    app = FastAPI()

    class Query(BaseModel):
        vector: list[float]
        k: int = 10

    @app.get("/health")
    def health():
        return {}

    @app.post("/search")
    def search(q: Query):  # sync: FastAPI runs it in its thread pool
        x = np.asarray([q.vector], dtype=np.float32)
        x /= np.linalg.norm(x)
        scores, ids = index.search(x, q.k)
        return {"results": [{"id": int(i), "score": float(s)} for s, i in zip(scores[0], ids[0])]}

    return app


def plain_onnx_app():
    import onnxruntime as ort
    from fastapi import FastAPI
    from pydantic import BaseModel
    from tokenizers import Tokenizer

    from pplx_kernels import _default_model

    onnx_file, tokenizer_file = _default_model.default_model_files()
    session = ort.InferenceSession(str(onnx_file), providers=["CPUExecutionProvider"])
    tokenizer = Tokenizer.from_file(str(tokenizer_file))
    tokenizer.enable_truncation(_default_model.MAX_LENGTH)
    tokenizer.enable_padding()
    app = FastAPI()

    class Request(BaseModel):
        input: Union[str, list[str]]
        model: Optional[str] = None

    @app.get("/health")
    def health():
        return {}

    @app.post("/v1/embeddings")
    def embeddings(req: Request):
        texts = [req.input] if isinstance(req.input, str) else req.input
        enc = tokenizer.encode_batch(texts)
        ids = np.array([e.ids for e in enc], dtype=np.int64)
        mask = np.array([e.attention_mask for e in enc], dtype=np.int64)
        hidden = session.run(None, {"input_ids": ids, "attention_mask": mask,
                                    "token_type_ids": np.zeros_like(ids)})[0]
        pooled = (hidden * mask[..., None]).sum(1) / mask.sum(1, keepdims=True)
        pooled /= np.linalg.norm(pooled, axis=1, keepdims=True)
        return {"object": "list", "model": req.model,
                "data": [{"object": "embedding", "index": i, "embedding": v.tolist()} for i, v in enumerate(pooled)],
                "usage": {"prompt_tokens": int(mask.sum()), "total_tokens": int(mask.sum())}}

    return app


def run_plain(kind: str, port: int, data: Optional[str]) -> None:
    import uvicorn
    app = plain_faiss_app(data) if kind == "faiss" else plain_onnx_app()
    uvicorn.run(app, host=HOST, port=port, log_level="warning", access_log=False)


# --- processes ---------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


class Proc:
    def __init__(self, name: str, args: list, port: int):
        env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT / "python"),
                                                                      os.environ.get("PYTHONPATH")])))
        self.name, self.port = name, port
        self.proc = subprocess.Popen(args, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        import httpx
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{name} exited: {self.proc.stderr.read().decode()[-2000:]}")
            try:
                if httpx.get(f"http://{HOST}:{port}/health", timeout=5).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise RuntimeError(f"{name} did not start")

    def cpu_seconds(self) -> float:
        import psutil
        t = psutil.Process(self.proc.pid).cpu_times()
        return t.user + t.system

    def rss(self) -> int:
        import psutil
        return psutil.Process(self.proc.pid).memory_info().rss

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                os.kill(self.proc.pid, signal.SIGKILL)
                self.proc.wait()


def ours(name: str, args: list) -> Proc:
    port = free_port()
    return Proc(name, [sys.executable, "-m", "pplx_kernels", "serve", *map(str, args), "--port", str(port)], port)


def plain(name: str, kind: str, data: Optional[str] = None) -> Proc:
    port = free_port()
    args = [sys.executable, str(HERE), "--plain", kind, "--port", str(port)] + (["--data", data] if data else [])
    return Proc(name, args, port)


# --- load generation ---------------------------------------------------------------------------


async def _client(port: int, path: bytes, bodies: list, offset: int, t_start: float, t_end: float,
                  latencies: list, stats: dict, rate_gap: Optional[float]):
    reader, writer = await asyncio.open_connection(HOST, port)
    i, next_send = offset, time.perf_counter()
    try:
        while True:
            now = time.perf_counter()
            if now >= t_end:
                return
            if rate_gap is not None:  # open loop: a fixed schedule per connection
                if next_send > now:
                    await asyncio.sleep(next_send - now)
                next_send += rate_gap
            body = bodies[i % len(bodies)]
            i += 1
            t0 = time.perf_counter()
            writer.write(b"POST %s HTTP/1.1\r\nHost: bench\r\nContent-Type: application/json\r\n"
                         b"Content-Length: %d\r\n\r\n%s" % (path, len(body), body))
            head = await reader.readuntil(b"\r\n\r\n")
            length = 0
            for line in head.split(b"\r\n"):
                if line[:15].lower() == b"content-length:":
                    length = int(line[15:])
            await reader.readexactly(length)
            t1 = time.perf_counter()
            if t0 >= t_start:
                latencies.append(t1 - t0)
                stats["errors"] += head[9:12] != b"200"
    finally:
        writer.close()


def load(proc: Proc, path: str, bodies: list, clients: int, seconds: float, warmup: float = 1.5,
         rate: Optional[float] = None) -> dict:
    """Closed loop (rate None: each client sends its next request when the
    last is answered) or open loop at `rate` requests/s in total."""
    import uvloop
    latencies, stats = [], {"errors": 0}

    async def main():
        t_start = time.perf_counter() + warmup
        t_end = t_start + seconds
        gap = None if rate is None else clients / rate
        await asyncio.gather(*(_client(proc.port, path.encode(), bodies, 7 * c, t_start, t_end, latencies, stats, gap)
                               for c in range(clients)))

    cpu0, wall0, self0 = proc.cpu_seconds(), time.perf_counter(), time.process_time()
    uvloop.run(main())
    wall = time.perf_counter() - wall0
    lat = np.array(latencies) * 1000
    return {"qps": len(lat) / seconds, "p50_ms": float(np.percentile(lat, 50)) if len(lat) else None,
            "p99_ms": float(np.percentile(lat, 99)) if len(lat) else None, "errors": stats["errors"],
            "server_cores": (proc.cpu_seconds() - cpu0) / wall, "client_cores": (time.process_time() - self0) / wall}


# --- the runs ----------------------------------------------------------------------------------


def make_index(tmp: Path, n: int, d: int):
    from pplx_kernels import Index
    rng = np.random.default_rng(0)
    floats = np.lib.format.open_memmap(tmp / "faiss.npy", mode="w+", dtype=np.float32, shape=(n, d))
    index = Index(d, scheme="tanh")
    for start in range(0, n, 20000):
        x = rng.normal(0, 0.05, (min(20000, n - start), d)).astype(np.float32)
        index.add(x)
        floats[start:start + len(x)] = x / np.linalg.norm(x, axis=1, keepdims=True)
    floats.flush()
    index.save(tmp / "index")
    queries = rng.normal(0, 0.05, (256, d)).astype(np.float32)
    return tmp / "index", tmp / "faiss.npy", queries


def bench_search(args, tmp: Path, table: list) -> dict:
    index_dir, faiss_file, queries = make_index(tmp, args.n, args.d)
    bodies = {"ours": [json.dumps({"vector": [round(float(v), 6) for v in q], "k": 10,
                                   "include_documents": False}).encode() for q in queries],
              "plain": [json.dumps({"vector": [round(float(v), 6) for v in q], "k": 10}).encode() for q in queries]}
    servers = [("pplx-kernels serve, batching on", lambda: ours("on", [index_dir])),
               ("pplx-kernels serve, batching off", lambda: ours("off", [index_dir, "--max-search-batch", 1])),
               ("FastAPI + FAISS IndexFlatIP", lambda: plain("faiss", "faiss", str(faiss_file)))]
    # All three up at once and measured in turn at each client count, so
    # that drift in the machine's load hits them alike.
    procs = []
    try:
        for label, start in servers:
            procs.append((label, start()))
        peak = {}
        for clients in args.clients:
            for label, proc in procs:
                runs = [load(proc, "/search", bodies["plain" if "FAISS" in label else "ours"], clients, args.seconds)
                        for _ in range(args.repeat)]
                r = sorted(runs, key=lambda x: x["qps"])[len(runs) // 2]  # the median run
                table.append({"test": "search", "server": label, "clients": clients, **r})
                print(_row(table[-1]), flush=True)
                if label.endswith("batching on") and clients == 32:
                    peak = r
    finally:
        for _, proc in procs:
            proc.stop()
    return {"index_dir": index_dir, "bodies": bodies["ours"], "peak_qps": peak.get("qps")}


def bench_embed(args, table: list) -> None:
    texts = embed_texts()
    bodies = {"ours": [json.dumps({"input": t, "model": "m", "encoding_format": "float"}).encode() for t in texts],
              "plain": [json.dumps({"input": t, "model": "m"}).encode() for t in texts]}
    procs = []
    try:
        for label, start in (("pplx-kernels serve", lambda: ours("embed", args.embed_args)),
                             ("FastAPI + onnxruntime, one batch per request", lambda: plain("onnx", "onnx"))):
            procs.append((label, start()))
        for _ in range(args.repeat):
            for label, proc in procs:
                r = load(proc, "/v1/embeddings", bodies["plain" if "FastAPI" in label else "ours"], 32,
                         args.seconds * 2)
                table.append({"test": "embed (1 text/request)", "server": label, "clients": 32, **r})
                print(_row(table[-1]), flush=True)
    finally:
        for _, proc in procs:
            proc.stop()


def embed_texts() -> list:
    from pplx_kernels.corpus import stdlib_docstrings
    return [d["text"][:400] for d in stdlib_docstrings(512)]


def bench_model(args, table: list) -> None:
    from pplx_kernels import embedder as embedder_module
    from pplx_kernels.embedder import Embedder
    from pplx_kernels.serve.state import MODEL_CALL_TOKENS

    texts = embed_texts()
    alone, batched = Embedder(threads=1, batch_tokens=1), Embedder(threads=1, batch_tokens=MODEL_CALL_TOKENS)
    encodings = alone.tokenize(texts)
    every = [encodings]
    server_batches = [encodings[i:i + 16] for i in range(0, len(encodings), 16)]  # 32 clients, 2 workers
    cap = embedder_module.MAX_ROW_PADDING
    shapes = [("one text per call", alone, every, cap),
              (f"sorted {MODEL_CALL_TOKENS}-token calls over all {len(texts)} texts", batched, every, cap),
              ("server batches of 16 texts, 512-token calls, padding cap", batched, server_batches, cap),
              ("server batches of 16 texts, 512-token calls, no padding cap", batched, server_batches, 1.0)]
    alone.pool_encodings(encodings[:8])  # warm-up
    best = {}
    for _ in range(max(2, args.repeat)):  # rounds interleaved, the least CPU kept
        for label, emb, batches, max_padding in shapes:
            embedder_module.MAX_ROW_PADDING = max_padding
            padded, cpu0 = 0, time.process_time()
            for batch in batches:
                emb.pool_encodings(batch)
                padded += emb.last_timings["padded_tokens"]
            cpu = time.process_time() - cpu0
            if label not in best or cpu < best[label][0]:
                best[label] = cpu, padded
    embedder_module.MAX_ROW_PADDING = cap
    real = sum(len(e.ids) for e in encodings)
    base = best["one text per call"][0]
    for label, (cpu, padded) in best.items():
        table.append({"test": "model alone", "shape": label, "cpu_ms_per_text": 1000 * cpu / len(texts),
                      "padded_per_real": padded / real, "vs_one_per_call": base / cpu})
        r = table[-1]
        print(f"| model alone | {label} | {r['cpu_ms_per_text']:.2f} ms | {r['padded_per_real']:.3f} | "
              f"{r['vs_one_per_call']:.2f}x |", flush=True)


def soak(args, index_dir, bodies, peak_qps: float) -> dict:
    rate = 0.8 * peak_qps
    proc = ours("soak", [index_dir])
    try:
        warm = max(30.0, args.soak * 0.1)
        load(proc, "/search", bodies, 64, warm, warmup=0, rate=rate)
        rss0 = proc.rss()
        samples, results = [rss0], []
        step = 30.0
        elapsed = warm
        while elapsed < args.soak:
            r = load(proc, "/search", bodies, 64, min(step, args.soak - elapsed), warmup=0, rate=rate)
            results.append(r)
            samples.append(proc.rss())
            elapsed += step
            print(f"soak {elapsed:.0f}s: {r['qps']:.0f} qps p99 {r['p99_ms']:.1f} ms errors {r['errors']} "
                  f"rss {samples[-1] / 1e6:.1f} MB", flush=True)
        return {"target_qps": rate, "seconds": args.soak, "warmup_s": warm,
                "achieved_qps": float(np.mean([r["qps"] for r in results])),
                "errors": int(sum(r["errors"] for r in results)), "rss_after_warmup_mb": rss0 / 1e6,
                "rss_end_mb": samples[-1] / 1e6, "rss_max_mb": max(samples) / 1e6,
                "rss_growth_pct": 100 * (samples[-1] - rss0) / rss0,
                "p99_ms_worst": max(r["p99_ms"] for r in results)}
    finally:
        proc.stop()


def _row(r: dict) -> str:
    return (f"| {r['test']} | {r['server']} | {r['clients']} | {r['qps']:.0f} | {r['p50_ms']:.1f} | "
            f"{r['p99_ms']:.1f} | {r['errors']} | {r['server_cores']:.2f} | {r['client_cores']:.2f} |")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--plain", choices=("faiss", "onnx"), help=argparse.SUPPRESS)
    p.add_argument("--port", type=int, help=argparse.SUPPRESS)
    p.add_argument("--data", help=argparse.SUPPRESS)
    p.add_argument("--quick", action="store_true", help="small index, short runs (a smoke run)")
    p.add_argument("--only", nargs="+", choices=("search", "embed", "model"),
                   default=("search", "embed"))
    p.add_argument("--n", type=int, default=100_000, help="index rows (default 100,000)")
    p.add_argument("--d", type=int, default=1024, help="dimensions (default 1024)")
    p.add_argument("--clients", type=int, nargs="+", default=(1, 8, 32, 64))
    p.add_argument("--seconds", type=float, default=6.0, help="measured seconds per row")
    p.add_argument("--embed-args", nargs="*", default=[], help="extra `serve` options for the embedding run")
    p.add_argument("--repeat", type=int, default=1, help="runs per row (the median is kept)")
    p.add_argument("--soak", type=float, default=0, help="soak seconds at 80%% of the peak (0: none)")
    p.add_argument("--json", help="write the results here")
    args = p.parse_args()
    if args.plain:
        return run_plain(args.plain, args.port, args.data)
    if args.quick:
        args.n, args.seconds, args.clients = 10_000, 2.0, (1, 32)
    import platform
    cpu = next((ln.split(":", 1)[1].strip() for ln in open("/proc/cpuinfo") if ln.startswith("model name")),
               platform.processor())
    print(f"CPU: {cpu}, {os.cpu_count()} logical cores; N={args.n} D={args.d}; {args.seconds:.0f} s per row")
    print("| test | server | clients | QPS | p50 ms | p99 ms | errors | server cores | load-generator cores |")
    print("|---|---|---|---|---|---|---|---|---|")
    table, out = [], {"cpu": cpu, "n": args.n, "d": args.d}
    with tempfile.TemporaryDirectory(prefix="bench-server-") as tmp:
        search = bench_search(args, Path(tmp), table) if "search" in args.only else None
        if "embed" in args.only:
            bench_embed(args, table)
        if "model" in args.only:
            print("\n| test | shape | CPU per text | padded / real tokens | vs one text per call |\n|---|---|---|---|---|")
            bench_model(args, table)
        if args.soak and search and search["peak_qps"]:
            out["soak"] = soak(args, search["index_dir"], search["bodies"], search["peak_qps"])
            print("soak:", json.dumps(out["soak"]))
    out["rows"] = table
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
