"""The sharded index directory: S ordinary index directories and a manifest.

    DIR/
      sharded.json      format, version, dim, metric, scheme, model, row
                        count, the sharding rule and, per shard, its
                        directory, row count and checksum
      shard-00000/      an ordinary index directory (Index.load opens it)
      ...

A row with user id i lives in shard `shard_of(i, S)`: splitmix64(i) mod S,
so the assignment depends on the id alone (reproducible builds, and a
lookup by id asks one shard). The manifest is written last and atomically
(temporary file, fsync, rename, fsync the directory): a directory without
it is not a sharded index.

A shard's checksum is the sha256 of the sorted list of (file name, sha256
of the file) of every file in its directory, so it covers any index format
and any attachment.
"""

from __future__ import annotations

import hashlib
import json
import os

import numpy as np

from ..index.storage import digest_file, fsync_dir

FORMAT_NAME = "pplx-kernels-sharded-index"
FORMAT_VERSION = 1
MANIFEST_FILE = "sharded.json"
HASH_NAME = "splitmix64"


class ShardedFormatError(ValueError):
    """The directory is not a readable sharded index."""


def shard_of(ids, shards: int) -> np.ndarray:
    """Shard number (int64) of each int64 user id: splitmix64(id) mod shards."""
    with np.errstate(over="ignore"):  # uint64 arithmetic wraps, as intended
        z = np.asarray(ids, dtype=np.int64).astype(np.uint64) + np.uint64(0x9E3779B97F4A7C15)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        z = z ^ (z >> np.uint64(31))
    return (z % np.uint64(shards)).astype(np.int64)


def shard_dir_name(shard: int) -> str:
    return f"shard-{shard:05d}"


def is_sharded(path) -> bool:
    return os.path.isfile(os.path.join(os.fspath(path), MANIFEST_FILE))


def directory_checksum(path) -> str:
    """sha256 over (name, sha256) of every file under `path`, names sorted."""
    path = os.fspath(path)
    entries = []
    for root, _, files in os.walk(path):
        for name in files:
            full = os.path.join(root, name)
            entries.append(f"{os.path.relpath(full, path)}\0{digest_file(full)}\n")
    return hashlib.sha256("".join(sorted(entries)).encode()).hexdigest()


def write(path, manifest: dict) -> None:
    """Writes DIR/sharded.json atomically."""
    path = os.fspath(path)
    body = dict(manifest, format=FORMAT_NAME, version=FORMAT_VERSION)
    tmp = os.path.join(path, f".{MANIFEST_FILE}.tmp-{os.getpid()}")
    with open(tmp, "w", encoding="utf-8") as fh:
        json.dump(body, fh, indent=1, sort_keys=True)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, os.path.join(path, MANIFEST_FILE))
    fsync_dir(path)


def read(path, *, verify: bool = False) -> dict:
    """Reads and checks DIR/sharded.json; verify=True also recomputes every
    shard's checksum. Raises ShardedFormatError saying what is wrong."""
    path = os.fspath(path)
    mpath = os.path.join(path, MANIFEST_FILE)
    if not os.path.isdir(path):
        raise FileNotFoundError(f"path: no such directory: {path}")
    if not os.path.isfile(mpath):
        raise ShardedFormatError(f"{path}: not a sharded index (no {MANIFEST_FILE})")
    try:
        with open(mpath, encoding="utf-8") as fh:
            m = json.load(fh)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ShardedFormatError(f"{path}: {MANIFEST_FILE} is damaged ({exc})") from None
    if not isinstance(m, dict) or m.get("format") != FORMAT_NAME:
        raise ShardedFormatError(f"{path}: {MANIFEST_FILE} has no format {FORMAT_NAME!r}")
    if m.get("version") != FORMAT_VERSION:
        raise ShardedFormatError(f"{path}: sharded format version {m.get('version')!r} is not supported "
                                 f"(this pplx-kernels reads version {FORMAT_VERSION})")
    sharding, shards = m.get("sharding"), m.get("shards")
    if (not isinstance(sharding, dict) or sharding.get("hash") != HASH_NAME or not isinstance(shards, list)
            or sharding.get("shards") != len(shards) or not shards):
        raise ShardedFormatError(f"{path}: {MANIFEST_FILE} has an unknown sharding rule or shard list")
    for n, s in enumerate(shards):
        if (not isinstance(s, dict) or s.get("path") != shard_dir_name(n) or not isinstance(s.get("rows"), int)
                or not isinstance(s.get("checksum"), str)):
            raise ShardedFormatError(f"{path}: {MANIFEST_FILE} shard entry {n} is invalid: {s!r}")
        if not os.path.isdir(os.path.join(path, s["path"])):
            raise ShardedFormatError(f"{path}: shard directory {s['path']} is missing")
        if verify and directory_checksum(os.path.join(path, s["path"])) != s["checksum"]:
            raise ShardedFormatError(f"{path}: shard {s['path']} is damaged (checksum mismatch)")
    if m.get("rows") != sum(s["rows"] for s in shards):
        raise ShardedFormatError(f"{path}: {MANIFEST_FILE} row count disagrees with its shards")
    return m
