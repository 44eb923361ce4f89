"""Text queries against an index directory: embedded with the model the
index was built with, searched, answered with the stored documents."""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

from .index import Index


def search_index(directory: str | Path, queries: list[str], *, k: int = 10, mode: str = "exact",
                 oversample: float | None = None, model: str | Path | None = None,
                 threads: int | None = None) -> Iterator[dict]:
    """Yields one {"query", "results": [{"rank", "score", "id", "title",
    "text"}]} per query, against the last committed state of an index built
    by build.build_index; "id" is the corpus's id of the document.
    model: default, the model directory the index records."""
    from .embedder import Embedder
    with Index.load(directory, mmap=True) as index:
        built_with = index.model or {}
        if model is None:
            model = built_with.get("path")
        emb = Embedder(model, threads=threads)
        if built_with.get("sha256") and built_with["sha256"] != emb.model_info()["sha256"]:
            raise ValueError(f"model: the index was built with {built_with.get('name')!r}, a different model "
                             f"than {emb.name!r}; pass the same --model")
        scores, ids = index.search(emb.encode(queries, "float", show_progress=False), k, mode=mode,
                                   oversample=oversample, threads=threads)
        for query, score_row, id_row in zip(queries, scores.tolist(), ids.tolist()):
            docs = index.documents(id_row)
            results = []
            for rank, (score, index_id, doc) in enumerate(zip(score_row, id_row, docs), 1):
                doc = doc or {}
                results.append({"rank": rank, "score": round(score, 6), "id": doc.get("id", index_id),
                                "title": doc.get("title"), "text": doc.get("text")})
            yield {"query": query, "results": results}
