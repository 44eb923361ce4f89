"""Index directories: opening one for writing (replaying its log,
migrating format 1), reading one as a snapshot, writing a fresh one (save).
The Index class holds the rows; this module only moves them in and out."""

from __future__ import annotations

import json
import os
import shutil
from typing import TYPE_CHECKING

from . import documents, legacy, segments, storage, wal
from .segments import Part
from .storage import IndexFormatError

if TYPE_CHECKING:
    from . import Index
    from .state import State


def read_log(path: str, manifest: dict, limit=None):
    """The log's records (up to `limit` bytes) and where its valid part
    ends. Only what follows the committed length may be torn: a record
    before it that fails its checksum is damage, not a crash."""
    name, committed = manifest["wal"]["file"], manifest["wal"]["bytes"]
    records, end = wal.read(os.path.join(path, name), manifest["dim"], limit)
    if end < committed:
        raise IndexFormatError(f"{path}: {name} is damaged: committed records end at byte {committed}, "
                               f"the readable ones at {end}")
    return records, end


def from_manifest(cls, path: str, manifest: dict, *, mmap: bool, verify: bool) -> "Index":
    try:
        index = cls(manifest["dim"], metric=manifest.get("metric"), scheme=manifest.get("scheme"),
                    model=manifest.get("model"))
    except ValueError as exc:
        raise IndexFormatError(f"{path}: {storage.MANIFEST} describes no index this version reads: {exc}") from None
    start, segs = 0, []
    for entry in manifest["segments"]:
        seg = segments.open_segment(path, entry, index.dim, start, mmap=mmap, verify=verify)
        segs.append(seg)
        start += seg.count
    index._segments = tuple(segs)
    index._next_id = int(manifest.get("next_id", 0))
    index._generation = int(manifest["generation"])
    index._manifest = manifest
    index._dir = path
    index._mmap = mmap
    index._publish(None)
    return index


def load_legacy(cls, path: str, *, mmap: bool, verify: bool) -> "Index":
    loaded = legacy.load(path, mmap=mmap, verify=verify)
    h = loaded.header
    model = dict(h.get("model") or {})
    try:  # format 1 kept the model directory in the CLI's cli.json
        with open(os.path.join(path, "cli.json"), encoding="utf-8") as fh:
            model.setdefault("path", json.load(fh).get("model_dir"))
    except (OSError, ValueError, AttributeError):
        pass
    try:
        index = cls(h["dim"], metric=h.get("metric"), scheme=h.get("scheme"), model=model)
    except ValueError as exc:
        raise IndexFormatError(f"{path}: header.json describes no index this version reads: {exc}") from None
    a = loaded.arrays
    docs_path = os.path.join(path, "docs.jsonl") if "docs.jsonl" in h["files"] else None
    part = Part(segments.readonly(a["codes"]), segments.readonly(a["norms"]), segments.readonly(a["bits"]),
                segments.readonly(a["ids"]), documents.Lines(docs_path, h["count"]), None, 0, "legacy")
    index._segments = (part,)
    index._next_id = int(a["ids"].max()) + 1 if h["count"] else 0
    index._readonly = True
    index._dir = path
    index._publish(None)
    return index


def open_writer(cls, path: str, *, create, dim, metric, scheme, model, mmap) -> "Index":
    if not os.path.exists(path):
        if dim is None:
            raise ValueError("dim: needed to create an index")
        # Built beside and renamed into place: a reader never finds a
        # directory without a manifest.
        empty = cls(dim, metric=metric, scheme=scheme, model=model)
        try:
            save_state(empty, empty._state, path)
        except OSError:
            if not os.path.isdir(path):  # (else another process created it first)
                raise
    if not os.path.isdir(path):
        raise FileExistsError(f"path: {path} exists and is not a directory")
    lock_fd = storage.lock_writer(path)
    try:
        has_manifest = os.path.exists(os.path.join(path, storage.MANIFEST))
        if not has_manifest and os.path.exists(os.path.join(path, legacy.HEADER_FILE)):
            migrate_legacy(cls, path)
        elif not has_manifest:
            foreign = [e for e in os.listdir(path) if e != storage.LOCK_FILE and not storage.OWNED.match(e)]
            if foreign:
                raise FileExistsError(f"path: {path} exists and is not a pplx-kernels index; refusing to use it")
            if not create:
                raise FileNotFoundError(f"path: no index at {path} (pass create=True to make one)")
            if dim is None:
                raise ValueError("dim: needed to create an index")
            empty = cls(dim, metric=metric, scheme=scheme, model=model)
            storage.remove_unlisted(path, {})
            write_fresh(path, empty, empty._state, generation=1)
        manifest = storage.read_manifest(path)
        storage.remove_unlisted(path, manifest)
        storage.remove_files(path, [f for f in legacy.FILES if os.path.exists(os.path.join(path, f))])
        index = from_manifest(cls, path, manifest, mmap=mmap, verify=False)
        records, end = read_log(path, manifest)
        with index._lock:
            for r in records:
                index._apply(r.kind, r.ids, r.codes, r.bits, r.docs)
        index._wal = wal.Writer(os.path.join(path, manifest["wal"]["file"]), max(end, len(wal.MAGIC)))
        index._wal.fsync()  # whatever replay kept is on disk before it is built on
        index._durable = index._wal.end
        index._lock_fd = lock_fd
        if index._durable != manifest["wal"]["bytes"]:
            # Records logged after the last commit survived: commit them
            # now, so that readers see the state this writer builds on.
            with index._commit_lock, index._lock:
                index._write_manifest()
        return index
    except BaseException:
        storage.unlock(lock_fd)
        raise


def write_fresh(directory: str, index, state: State, generation: int) -> None:
    """Writes the live rows of `state` as segment seg-G, an empty log and
    manifest G into `directory` (lock held or directory private)."""
    name = f"seg-{generation:06d}"
    sources = [(p, p.live_rows()) for p in state.parts if p.count]
    entries = []
    if sum(len(r) for _, r in sources):
        entries.append(segments.write(directory, name, sources, index.dim))
    wal_name = f"wal-{generation:06d}.log"
    wal.create(os.path.join(directory, wal_name))
    storage.fsync_dir(directory)
    storage.write_manifest(directory, {
        "generation": generation, "dim": index.dim, "metric": index.metric, "scheme": index.scheme,
        "model": index._model, "next_id": index._next_id, "created_by": storage.created_by(),
        "segments": entries, "wal": {"file": wal_name, "bytes": len(wal.MAGIC)}})


def migrate_legacy(cls, path: str) -> None:
    """Rewrites a format-1 directory in place as format 2 (lock held)."""
    old = load_legacy(cls, path, mmap=True, verify=True)
    storage.remove_unlisted(path, {})
    write_fresh(path, old, old._state, generation=1)


def save_state(index, state: State, path: str) -> None:
    if not os.path.exists(path):
        os.makedirs(os.path.dirname(path), exist_ok=True)
        tmp, fd = storage.saving_beside(path)
        try:
            write_fresh(tmp, index, state, generation=1)
            os.rename(tmp, path)
            storage.fsync_dir(os.path.dirname(path))
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        finally:
            storage.unlock(fd)
        return
    if not os.path.isdir(path):
        raise FileExistsError(f"path: {path} exists and is not a directory")
    storage.remove_stale_beside(path)
    entries = set(os.listdir(path)) - {storage.LOCK_FILE}
    is_index = storage.MANIFEST in entries or legacy.HEADER_FILE in entries
    if not is_index and any(not storage.OWNED.match(e) for e in entries):
        raise FileExistsError(f"path: {path} exists and is not a pplx-kernels index; refusing to replace it")
    lock_fd = storage.lock_writer(path)
    try:
        generation, listed = 1, {}
        if storage.MANIFEST in entries:
            try:
                listed = storage.read_manifest(path)
                generation = listed["generation"] + 1
            except IndexFormatError:  # a damaged index may be replaced
                generation = 1 + max([int(e[4:10]) for e in entries if e[4:10].isdigit()] or [0])
        storage.remove_unlisted(path, listed)  # a killed save's files
        write_fresh(path, index, state, generation)
        storage.remove_unlisted(path, storage.read_manifest(path))
        storage.remove_files(path, [f for f in legacy.FILES if f in entries])
    finally:
        storage.unlock(lock_fd)
