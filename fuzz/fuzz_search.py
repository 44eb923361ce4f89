"""Fuzz targets for the search kernels and for Index.load on damaged
directories (imported by fuzz_kernels.py)."""

from __future__ import annotations

import json
import os
import shutil
import tempfile

import numpy as np

import pplx_kernels as pk
from pplx_kernels.index import Index
from arrays import call

def reference_topk_cosine(q, x, k):
    dots = q.astype(np.int64) @ x.astype(np.int64).T
    nq = np.sqrt((q.astype(np.int64) ** 2).sum(1))[:, None]
    nx = np.sqrt((x.astype(np.int64) ** 2).sum(1))[None, :]
    with np.errstate(invalid="ignore", divide="ignore"):
        cos = np.where((nq > 0) & (nx > 0), dots / (nq * nx), 0.0).astype(np.float32)
    ids = np.argsort(-cos.astype(np.float64), axis=1, kind="stable")[:, :k]
    return np.take_along_axis(cos, ids, 1), ids


def fuzz_search(m):
    width = m.int(0, 70)
    q = m.array((m.int(0, 5), width if m.int(0, 7) else m.int(0, 70)), m.dtype(np.int8))
    x = m.array((m.int(0, 60), width), m.dtype(np.int8))
    k = m.pick([1, 3, 10, 100, 0, -2, 2.0])
    metric = m.pick(["cosine", "cosine", "hamming", "l2"])
    clamp = bool(m.int(0, 1))
    if metric == "hamming":
        q, x = q.view(np.uint8) if q.dtype.itemsize == 1 else q, x.view(np.uint8) if x.dtype.itemsize == 1 else x
    candidates = None
    if m.int(0, 2) == 0 and q.ndim == 2:
        raw = m.array((q.shape[0], m.int(0, 8)), np.dtype(np.int64))
        candidates = raw % max(1, x.shape[0] + 1) - 1 if m.int(0, 3) else raw  # mostly valid ids
    res = call(pk.topk, q, x, k, metric=metric, clamp=clamp, candidates=candidates, threads=m.threads())
    if (res is not None and metric == "cosine" and candidates is None and not clamp
            and q.dtype == np.int8 and x.dtype == np.int8 and q.ndim == 2):
        scores, ids = res
        ref_scores, ref_ids = reference_topk_cosine(q, x, k)
        assert np.allclose(scores, ref_scores, atol=1e-6), "topk cosine scores differ from numpy"
        assert np.array_equal(scores, np.take_along_axis(pk.cosine(q, x), ids, 1)), "topk ids and scores disagree"
    call(pk.cosine, q, x, clamp=clamp, threads=m.threads())
    call(pk.hamming, q.view(np.uint8) if q.dtype == np.int8 else q, x.view(np.uint8) if x.dtype == np.int8 else x)
    call(pk.norms, x, clamp=clamp)


_TEMPLATE = None


def _template_index() -> str:
    global _TEMPLATE
    if _TEMPLATE is None:
        root = tempfile.mkdtemp(prefix="pplx-fuzz-")
        rng = np.random.default_rng(0)
        index = Index(37)
        index.add(rng.standard_normal((50, 37)).astype(np.float32), ids=np.arange(50) * 3)
        _TEMPLATE = os.path.join(root, "index")
        index.save(_TEMPLATE)
    return _TEMPLATE


def fuzz_index_load(m):
    template = _template_index()
    work = tempfile.mkdtemp(prefix="pplx-fuzz-case-")
    try:
        path = os.path.join(work, "index")
        shutil.copytree(template, path)
        names = sorted(os.listdir(path))
        for _ in range(m.int(1, 4)):
            target = os.path.join(path, m.pick(names))
            action = m.int(0, 5)
            if not os.path.exists(target):
                continue
            size = os.path.getsize(target)
            if action == 0:  # truncate
                os.truncate(target, m.int(0, max(0, size)))
            elif action == 1 and size:  # flip a byte
                with open(target, "r+b") as f:
                    pos = m.int(0, size - 1)
                    f.seek(pos)
                    b = f.read(1)
                    f.seek(pos)
                    f.write(bytes([b[0] ^ (1 << m.int(0, 7))]))
            elif action == 2:  # append garbage
                with open(target, "ab") as f:
                    f.write(m.fdp.ConsumeBytes(m.int(1, 64)))
            elif action == 3:
                os.remove(target)
            elif action == 4 and target.endswith(".json"):  # rewrite a header field
                try:
                    with open(target) as f:
                        header = json.load(f)
                except ValueError:
                    continue  # already damaged by an earlier step
                if isinstance(header, dict) and header:
                    key = m.pick(sorted(header))
                    header[key] = m.pick([None, -1, 0, 10**12, "x", [], {}, 2.5, True])
                with open(target, "w") as f:
                    json.dump(header, f)
            elif action == 5:  # replace with arbitrary bytes
                with open(target, "wb") as f:
                    f.write(m.fdp.ConsumeBytes(m.int(0, 256)))
        try:
            index = Index.load(path, mmap=bool(m.int(0, 1)), verify=m.pick([None, True, False]))
        except (ValueError, TypeError, OSError):
            return
        queries = np.random.default_rng(1).standard_normal((3, 37)).astype(np.float32)
        try:
            index.search(queries, k=5, mode=m.pick(["exact", "two_stage"]))
        except (ValueError, TypeError):
            pass  # e.g. -128 in an unverified, damaged codes file is reported, not read past
    finally:
        shutil.rmtree(work, ignore_errors=True)


TARGETS = {"search": fuzz_search, "index_load": fuzz_index_load}
