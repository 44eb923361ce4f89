"""Distributed build on Ray: corpus -> Ray Data -> embedder actors -> S shards.

    read        Ray Data reads the corpus: JSON Lines (read_json), Parquet
                (read_parquet) or a text file with one document per line
                (read as whole files, split here so each line keeps its
                number as its id, the way `pplx-kernels index` numbers them)
    normalize   rows -> (index id, document JSON, text to embed)
    embed       map_batches over an actor pool of Embedders: each actor
                loads the model once and runs it with as many threads as the
                CPUs it was given
    write       groupby(shard).map_groups: one task per shard sorts its rows
                by id and writes an ordinary index directory
    manifest    the driver writes DIR/sharded.json last (see manifest.py)

Exactly once: Ray Data restarts a killed embedder actor and re-runs the
batches it held (actor pools get max_restarts=-1, max_task_retries=-1), and
a block enters the shuffle only once it is complete, so every row reaches
its shard task once. A shard task writes a whole shard to a temporary
directory and renames it into place, so a retried task replaces its own
earlier output instead of adding to it; an id that still came twice would
make the shard's Index.add fail, never a duplicate row.

Index ids: the document's integer id, as the single-process build keeps
it; a string id is hashed (the first 8 bytes of its sha256, as a
non-negative int64; the single-process build numbers such rows from 0
instead, which a distributed read cannot do), and the document keeps the
original. Two ids hashing alike land in the same shard, where Index.add
rejects the second: a collision fails the build, it never merges documents.

The build runs in a temporary directory beside `out` and is moved into
place at the end, so `out` never holds a half-built index (replacing an
earlier sharded index takes two renames: a crash between them leaves it
at OUT.previous-XXXXXXXX). On a multi-node cluster `out` must be a path every node
can write (a shared file system).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
import secrets
import shutil
import time

import numpy as np

from ..index.build import document_text
from . import manifest as mf
from .manifest import shard_of

FORMATS = ("auto", "jsonl", "text", "parquet")
# Test hook: seconds each embedder batch waits, so a test can kill an actor
# while the build runs (read here, in the driver).
_DELAY_ENV = "PPLX_KERNELS_TEST_EMBED_DELAY"


def build(corpus, out, *, shards=None, model=None, address=None, fmt="auto", text_field="text",
          id_field="id", title_field="title", actors=None, cpus_per_actor=1, batch_size=256,
          progress=False) -> dict:
    """Embeds `corpus` on Ray and writes a sharded index directory `out`.

    corpus: a path (file or directory, any file system pyarrow reads) of
        JSON Lines, Parquet, or text with one document per line, or "stdlib".
    shards: number of shards (default: one per CPU of the cluster).
    model: model directory (default: the offline default model).
    address: Ray cluster to join (default: the running one, else a local one).
    actors: embedder actors (default: cluster CPUs // cpus_per_actor).
    Returns {"count", "shards", "dim", "seconds", "docs_per_s"}.
    """
    import ray

    if shards is not None and (isinstance(shards, bool) or not isinstance(shards, int) or shards < 1):
        raise ValueError(f"shards: expected a positive int, got {shards!r}")
    if fmt not in FORMATS:
        raise ValueError(f"fmt: expected one of {FORMATS}, got {fmt!r}")
    if not (isinstance(cpus_per_actor, (int, float)) and cpus_per_actor > 0):
        raise ValueError(f"cpus_per_actor: expected a positive number, got {cpus_per_actor!r}")
    out = os.path.abspath(os.fspath(out))
    _check_out(out)
    t0 = time.perf_counter()
    meta = _model_info(model)  # loads the model once here: a bad model fails before any Ray work
    started = not ray.is_initialized()
    if started:
        ray.init(address=address, log_to_driver=False)
    try:
        cpus = max(1, int(ray.cluster_resources().get("CPU", 1)))
        shards = shards or cpus
        actors = actors or max(1, int(cpus // cpus_per_actor))
        with _work_dir(out) as work:
            rows = _read(corpus, fmt, text_field, id_field, title_field)
            embedded = rows.map_batches(
                _Embed, fn_constructor_kwargs={"model": meta["model"]["path"], "threads": max(1, int(cpus_per_actor)),
                                               "shards": shards,
                                               "delay": float(os.environ.get(_DELAY_ENV, "0") or 0)},
                compute=ray.data.ActorPoolStrategy(size=actors), num_cpus=cpus_per_actor,
                batch_size=batch_size, batch_format="numpy")
            written = embedded.groupby("shard", num_partitions=shards).map_groups(
                _write_shard, fn_kwargs={"work": work, "dim": meta["dim"], "scheme": meta["scheme"],
                                         "model": meta["model"]},
                batch_format="numpy", num_cpus=0).take_all()
            done = {int(r["shard"]): (int(r["rows"]), str(r["checksum"])) for r in written}
            count = _finish(work, out, shards, done, meta)
    finally:
        if started:
            ray.shutdown()
    seconds = time.perf_counter() - t0
    return {"count": count, "shards": shards, "dim": meta["dim"], "seconds": seconds,
            "docs_per_s": count / seconds if seconds else math.inf}


def split(index, out, *, shards: int) -> dict:
    """Writes the rows of an Index (or an index directory) as a sharded
    index directory `out`, the same layout `build` writes (no Ray needed).
    Returns {"count", "shards", "dim"}."""
    from ..index import Index
    if isinstance(shards, bool) or not isinstance(shards, int) or shards < 1:
        raise ValueError(f"shards: expected a positive int, got {shards!r}")
    source = Index.load(index) if isinstance(index, (str, os.PathLike)) else index
    out = os.path.abspath(os.fspath(out))
    _check_out(out)
    meta = {"dim": source.dim, "scheme": source.scheme, "model": source.model}
    ids = source.ids
    owner = shard_of(ids, shards)
    with _work_dir(out) as work:
        done = {}
        for s in range(shards):
            mine = ids[owner == s]
            if len(mine):
                codes, docs = source.get(mine), source.documents(mine)
                bits = source.get_bits(mine)  # the stored sign bits
                done[s] = _write_shard_dir(work, s, codes, bits, mine, [json.dumps(d) for d in docs],
                                           **meta)
        count = _finish(work, out, shards, done, meta)
    return {"count": count, "shards": shards, "dim": meta["dim"]}


@contextlib.contextmanager
def _work_dir(out: str):
    """A fresh directory beside `out`, removed if the block fails."""
    parent, name = os.path.split(out)
    os.makedirs(parent, exist_ok=True)
    work = os.path.join(parent, f".{name}.building-{secrets.token_hex(4)}")
    os.mkdir(work)
    try:
        yield work
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise


def _finish(work: str, out: str, shards: int, done: dict, meta: dict) -> int:
    """Writes the shards no row went to (empty indexes), the manifest, and
    moves the work directory into place. Returns the row count."""
    for s in range(shards):
        if s not in done:
            done[s] = _write_shard_dir(work, s, None, None, np.empty(0, np.int64), [], **meta)
    count = sum(n for n, _ in done.values())
    mf.write(work, {
        "dim": meta["dim"], "metric": "cosine", "scheme": meta["scheme"], "model": meta["model"],
        "rows": count, "sharding": {"hash": mf.HASH_NAME, "key": "id", "shards": shards},
        "shards": [{"path": mf.shard_dir_name(s), "rows": done[s][0], "checksum": done[s][1]}
                   for s in range(shards)],
    })
    _move_into_place(work, out)
    return count


# --- reading -------------------------------------------------------------------


def _read(corpus, fmt, text_field, id_field, title_field):
    """A Ray Dataset of {"id": int64, "doc": JSON str, "text": str to embed}."""
    import ray

    if corpus == "stdlib":
        from ..corpus import stdlib_docstrings
        ds = ray.data.from_items(stdlib_docstrings())
        fmt, text_field, id_field, title_field = "jsonl", "text", "id", "title"
    else:
        path = os.fspath(corpus)
        if fmt == "auto":
            fmt = _sniff(path)
        # No CPU reserved for reading, normalizing, writing: the embedder actors
        # hold the CPUs, and a task waiting for one would stall the pipeline.
        if fmt == "jsonl":
            ds = ray.data.read_json(path, lines=True, num_cpus=0, file_extensions=None)
        elif fmt == "parquet":
            # Ray Data's newer Parquet path lists files in a task that needs
            # a whole CPU, which the embedder actors hold: read the classic way.
            context = ray.data.DataContext.get_current()
            before = getattr(context, "use_datasource_v2", None)
            if before:
                context.use_datasource_v2 = False
            try:
                ds = ray.data.read_parquet(path, num_cpus=0)
            finally:
                if before:
                    context.use_datasource_v2 = before
        else:
            ds = ray.data.read_binary_files(path, num_cpus=0).flat_map(_text_lines, num_cpus=0)
            text_field, id_field, title_field = "text", "id", "title"
    return ds.map_batches(_normalize, fn_kwargs={"text_field": text_field, "id_field": id_field,
                                                 "title_field": title_field},
                          batch_format="pyarrow", num_cpus=0)


def _sniff(path: str) -> str:
    if path.endswith(".parquet") or (os.path.isdir(path) and any(
            f.endswith(".parquet") for f in os.listdir(path))):
        return "parquet"
    if path.endswith((".jsonl", ".ndjson", ".json")):
        return "jsonl"
    if os.path.isfile(path):
        with open(path, "rb") as fh:
            head = fh.read(4096).lstrip()
        return "jsonl" if head.startswith(b"{") else "text"
    raise ValueError(f"fmt: cannot tell the format of {path}; pass fmt= (jsonl, text or parquet)")


def _text_lines(row: dict):
    """One document per non-blank line; the id is the line number from 1."""
    text = row["bytes"].decode("utf-8")
    for number, line in enumerate(text.splitlines(), 1):
        if line.strip():
            yield {"id": number, "title": None, "text": line}


def _normalize(table, text_field, id_field, title_field):
    names = table.column_names
    if text_field not in names:
        raise ValueError(f"corpus: no field {text_field!r} (see text_field); fields: {names}")
    if id_field not in names:
        raise ValueError(f"corpus: no field {id_field!r} (see id_field): the Ray build needs an id per document")
    texts = table.column(text_field).to_pylist()
    ids = table.column(id_field).to_pylist()
    titles = table.column(title_field).to_pylist() if title_field in names else [None] * len(texts)
    index_ids, docs, inputs = [], [], []
    for doc_id, title, text in zip(ids, titles, texts):
        if not isinstance(text, str):
            raise ValueError(f"corpus: document {doc_id!r} has no string field {text_field!r}")
        title = title if isinstance(title, str) else None
        index_ids.append(index_id(doc_id))
        docs.append(json.dumps({"id": doc_id, "title": title, "text": text}, ensure_ascii=False))
        inputs.append(document_text({"title": title, "text": text}))
    import pyarrow as pa
    return pa.table({"id": pa.array(index_ids, pa.int64()), "doc": pa.array(docs, pa.string()),
                     "text": pa.array(inputs, pa.string())})


def index_id(doc_id) -> int:
    """The int64 index id of a document id: the id itself if an integer,
    else the first 8 bytes of the sha256 of its JSON form, as an int >= 0."""
    if isinstance(doc_id, int) and not isinstance(doc_id, bool):
        if not -(1 << 63) <= doc_id < (1 << 63):
            raise ValueError(f"corpus: document id {doc_id} does not fit in int64")
        return doc_id
    if doc_id is None:
        raise ValueError("corpus: a document has no id (see id_field)")
    digest = hashlib.sha256(json.dumps(doc_id, sort_keys=True).encode()).digest()
    return int.from_bytes(digest[:8], "big") >> 1


# --- embedding -----------------------------------------------------------------


class _Embed:
    """One Ray actor: the model loaded once, then batch after batch."""

    def __init__(self, model, threads, shards, delay=0.0):
        from ..embedder import Embedder
        self.embedder = Embedder(model, threads=threads)
        self.shards = shards
        self.delay = delay

    def __call__(self, batch: dict) -> dict:
        # int8 codes and the sign bits of the same floats, quantized once
        # here: what a single-process build stores, and a quarter of the
        # bytes of float vectors through the shuffle.
        codes, bits = self.embedder.encode_fused(list(batch["text"]), show_progress=False)
        if self.delay:
            time.sleep(self.delay)
        ids = batch["id"].astype(np.int64)
        return {"id": ids, "shard": shard_of(ids, self.shards), "doc": batch["doc"], "codes": codes,
                "bits": bits}


def _model_info(model) -> dict:
    """dim, scheme and {"name", "sha256", "path"} of the model, loaded here
    once so that a bad model fails before any Ray work."""
    from ..embedder import Embedder
    emb = Embedder(model, threads=1)
    return {"dim": emb.dim, "scheme": emb.scheme, "model": emb.model_info()}


# --- writing -------------------------------------------------------------------


def _write_shard(batch: dict, work, dim, scheme, model) -> dict:
    shard = int(batch["shard"][0])
    rows, checksum = _write_shard_dir(work, shard, _stack(batch["codes"], np.int8), _stack(batch["bits"], np.uint8),
                                      batch["id"], batch["doc"], dim, scheme, model)
    return {"shard": np.array([shard]), "rows": np.array([rows]), "checksum": np.array([checksum])}


def _stack(column, dtype) -> np.ndarray:
    return np.ascontiguousarray(np.stack(column) if column.dtype == object else column, dtype=dtype)


def _write_shard_dir(work, shard, codes, bits, ids, docs, dim, scheme, model):
    """Writes one shard (rows sorted by id, one segment) into place; returns
    (rows, checksum). Idempotent: a retry replaces what a failed attempt
    wrote (Index.save swaps the directory in whole)."""
    from ..index import Index
    from ..quantize import Quantized
    ids = np.asarray(ids, np.int64)
    order = np.argsort(ids, kind="stable")
    index = Index(dim, scheme=scheme, model=model)
    if len(ids):
        documents = [json.loads(docs[j]) for j in order.tolist()]
        index.add(Quantized(codes[order], bits[order], scheme), ids[order],
                  documents=None if all(d is None for d in documents) else documents)
    path = os.path.join(work, mf.shard_dir_name(shard))
    index.save(path)
    return len(ids), mf.directory_checksum(path)


def _check_out(out: str) -> None:
    if os.path.exists(out) and not (os.path.isdir(out) and (not os.listdir(out) or mf.is_sharded(out))):
        raise FileExistsError(f"out: {out} exists and is not a sharded index or an empty directory; "
                              f"refusing to replace it")


def _move_into_place(work: str, out: str) -> None:
    mf.fsync_dir(work)
    if os.path.exists(out):
        aside = f"{out}.previous-{secrets.token_hex(4)}"
        os.rename(out, aside)
        os.rename(work, out)
        shutil.rmtree(aside, ignore_errors=True)
    else:
        os.rename(work, out)
    mf.fsync_dir(os.path.dirname(out))
