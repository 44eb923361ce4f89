"""Text queries against an index directory: embedded with the model the
index was built with, searched, answered with the stored documents."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import Iterator

import numpy as np

from . import Index


def search_index(directory, queries: list[str], *, k: int = 10, mode: str = "exact",
                 oversample: float | None = None, model: str | Path | None = None,
                 threads: int | None = None) -> Iterator[dict]:
    """Yields one {"query", "results": [{"rank", "score", "id", "title",
    "text"}]} per query, against the last committed state of an index built
    by build.build_index; "id" is the corpus's id of the document.
    directory: an index directory, or an index already open (anything
    with search, documents and model, such as a ShardedIndex).
    model: default, the model directory the index records."""
    from ..embedder import Embedder
    opened = isinstance(directory, (str, os.PathLike))
    with Index.load(directory, mmap=True) if opened else contextlib.nullcontext(directory) as index:
        built_with = index.model or {}
        if model is None:
            model = built_with.get("path")
        emb = Embedder(model, threads=threads)
        if built_with.get("sha256") and built_with["sha256"] != emb.model_info()["sha256"]:
            raise ValueError(f"model: the index was built with {built_with.get('name')!r}, a different model "
                             f"than {emb.name!r}; pass the same --model")
        scores, ids = index.search(emb.encode(queries, "float", show_progress=False), k, mode=mode,
                                   oversample=oversample, threads=threads)
        # One look-up for every hit of every query.
        found = np.unique(ids[ids >= 0])
        docs = dict(zip(found.tolist(), index.documents(found)))
        for query, score_row, id_row in zip(queries, scores.tolist(), ids.tolist()):
            results = []
            for rank, (score, index_id) in enumerate(zip(score_row, id_row), 1):
                doc = docs.get(index_id) or {}
                results.append({"rank": rank, "score": round(score, 6), "id": doc.get("id", index_id),
                                "title": doc.get("title"), "text": doc.get("text")})
            yield {"query": query, "results": results}
