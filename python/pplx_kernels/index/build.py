"""Streaming build of a durable index directory from a corpus.

    documents -> Embedder.encode_iter (one chunk of texts at a time)
              -> int8 codes + sign bits of the same floats (a Quantized)
              -> Index.add(..., documents=) -> commit() every few thousand rows

Peak memory is the model, the index and one chunk: the corpus is read as it
is embedded and never held whole. Vectors are quantized once, by the
embedder, with its scheme, which the index is created with (and checked
against on resume).

Index ids: a corpus whose first document has an integer id keeps its ids
(every id must then be an integer); otherwise row i of the corpus (from 0)
gets id i. Each row stores its document {"id", "title", "text"} with the
corpus's own id, which search shows.

Resume: rows are added in corpus order, so what an interrupted build left
behind (committed rows, and any rows the index's log replays on open) is a
prefix of the corpus; `resume=True` checks that the index holds the ids of
the first len(index) documents and embeds only the rest.
"""

from __future__ import annotations

import collections
import time
from pathlib import Path
from typing import Any, Iterable, Iterator

import numpy as np

from .._validate import positive_int_arg
from . import Index

COMMIT_EVERY = 4096  # rows per commit: a kill loses at most this much work
# Texts embedded per chunk (Embedder.encode_iter), at most commit_every.
# Batches are sorted by length within a chunk: on the stdlib corpus, chunks
# of 4096 pad the model's input by 1.5%, of 1024 by 4.5%, of all by 0.75%.
BATCH_DOCS = 4096
_INT64 = np.iinfo(np.int64)


def document_text(doc: dict) -> str:
    """What gets embedded: the title (a qualified name for the stdlib corpus)
    says what the text is about."""
    return f"{doc['title']}\n{doc['text']}" if doc.get("title") else doc["text"]


def build_index(documents: Iterable[dict], out: str | Path, *, model: str | Path | None = None,
                threads: int | None = None, resume: bool = False, commit_every: int = COMMIT_EVERY,
                batch_docs: int = BATCH_DOCS, progress: bool = True) -> dict:
    """Embeds documents ({"id", "title", "text"}, e.g. from
    corpus.read_corpus) into the index directory `out`, created here;
    `resume=True` continues an index an interrupted build left there (or
    starts one). Returns {"count": rows added now, "skipped": rows already
    there, "total", "dim", "tokens", "seconds", "bytes"}."""
    from ..embedder import Embedder
    commit_every = positive_int_arg(commit_every, "commit_every")
    batch_docs = positive_int_arg(batch_docs, "batch_docs")
    t0 = time.perf_counter()
    emb = Embedder(model, threads=threads)
    index = _open_index(Path(out), emb, resume)
    try:
        skipped = len(index)
        docs = _with_ids(iter(documents))
        _check_prefix(index, docs, skipped, out)
        # Documents whose vectors are being computed, in order: the chunk
        # encode_iter is working on.
        pending: collections.deque = collections.deque()

        def texts() -> Iterator[str]:
            for index_id, doc in docs:
                pending.append((index_id, doc))
                yield document_text(doc)

        added = since_commit = 0
        chunks = emb.encode_iter(texts(), "fused", batch_docs=min(batch_docs, commit_every),
                                 show_progress=progress)
        for chunk in chunks:
            rows = [pending.popleft() for _ in range(len(chunk))]
            index.add(chunk, ids=np.array([i for i, _ in rows], dtype=np.int64),
                      documents=[doc for _, doc in rows])
            added += len(rows)
            since_commit += len(rows)
            if since_commit >= commit_every:
                index.commit()
                since_commit = 0
        index.commit()
        total = len(index)
    finally:
        index.close()
    size = sum(f.stat().st_size for f in Path(out).rglob("*") if f.is_file())
    return {"count": added, "skipped": skipped, "total": total, "dim": emb.dim,
            "tokens": emb.last_timings.get("tokens", 0) if added else 0,
            "seconds": time.perf_counter() - t0, "bytes": size}


def _open_index(out: Path, emb: Any, resume: bool) -> Index:
    model = emb.model_info()
    if not resume and out.is_dir() and any(out.iterdir()):
        raise ValueError(f"out: {out} already holds an index or other files; pass --resume (resume=True) "
                         f"to continue an interrupted build there, or choose a new directory")
    # Creates the index, or opens the one an interrupted build left (its
    # dim is checked here, its scheme and model below).
    index = Index.open(out, create=True, dim=emb.dim, scheme=emb.scheme, model=model)
    built_with = index.model or {}
    problem = None
    if built_with.get("sha256") != model["sha256"]:
        problem = f"model {built_with.get('name')!r}, not {model['name']!r} (pass the same --model)"
    elif index.scheme != emb.scheme:
        problem = f"scheme {index.scheme!r}, not the model's {emb.scheme!r}"
    if problem:
        index.close()
        raise ValueError(f"out: the index in {out} was built with {problem}")
    return index


def _with_ids(documents: Iterator[dict]) -> Iterator[tuple[int, dict]]:
    """(index id, document) per document; see the module docstring."""
    use_corpus_ids = None
    for row, doc in enumerate(documents):
        corpus_id = doc.get("id")
        as_int = None if isinstance(corpus_id, bool) or not isinstance(corpus_id, (int, np.integer)) \
            else int(corpus_id)
        if use_corpus_ids is None:
            use_corpus_ids = as_int is not None
        if not use_corpus_ids:
            yield row, doc
        elif as_int is None:
            raise ValueError(f"corpus: document {row} has id {corpus_id!r}, but the first document's id is "
                             f"an integer: the ids must all be integers (index ids) or none")
        elif not _INT64.min <= as_int <= _INT64.max:
            raise ValueError(f"corpus: document {row} has id {corpus_id}, outside the int64 range of index ids")
        else:
            yield as_int, doc


def _check_prefix(index: Index, docs: Iterator[tuple[int, dict]], n: int, out: Any) -> None:
    """Consumes the first n documents, checking that the index holds them."""
    for row in range(n):
        item = next(docs, None)
        if item is None:
            raise ValueError(f"out: the index in {out} holds {n} rows but the corpus only {row} documents: "
                             f"it was built from another corpus")
        if item[0] not in index:
            raise ValueError(f"out: the index in {out} lacks document {row} (id {item[1].get('id')!r}) of the "
                             f"corpus: it was built from another corpus or with other options")
