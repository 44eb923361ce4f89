"""Durable files of an index directory: the manifest, write-once files,
locks and the clean-up of what an interrupted writer left behind.

    DIR/
      manifest.json           the only file ever replaced: format, version,
                              generation, dim, metric, scheme, model,
                              next_id, the segments (each file with its
                              size and sha256, the tombstone file if any)
                              and the write-ahead log with its committed
                              length; it carries its own sha256
      seg-G.codes.i8 ...      immutable segment files (segments.py), named
                              by the generation G that wrote them
      seg-G.del-H.u1          tombstones of segment G as of generation H
      wal-G.log               write-ahead log since generation G (wal.py)
      LOCK                    held (flock) by the one writer

A new manifest is written to a temporary file, fsynced, renamed over
manifest.json and the directory fsynced: rename(2) is atomic on every POSIX
file system, so no directory is ever swapped and there is no fallback path.
A reader reads manifest.json once and opens files by the names it lists;
files are never rewritten, only deleted once no manifest lists them, so a
reader either gets the files of its manifest or a FileNotFoundError (and
then reads the newer manifest: see Index.load).

A save to a path where no directory exists builds it as
`.NAME.saving-RANDOM` beside it and renames it into place; a save over an
existing index writes new segment files and a new manifest into it, so
following a symlinked path writes into the link's target.

Locks are flock(2) locks, held by an open file description: the kernel
drops them when the process dies, whatever its PID namespace, so stale
state is recognised by a free lock, never by a PID. The writer holds
DIR/LOCK; each save beside a path holds `.NAME.lock` (a small file kept
there) shared, so whoever gets it exclusively knows every
`.NAME.saving-*` is left over from a killed save and removes it.
"""

from __future__ import annotations

import errno
import fcntl
import hashlib
import json
import os
import re
import secrets
import shutil

import numpy as np

FORMAT_NAME = "pplx-kernels-index"
FORMAT_VERSION = 2
MANIFEST = "manifest.json"
LOCK_FILE = "LOCK"
_MANIFEST_TMP = ".manifest.json.tmp-"
_CHUNK = 16 << 20  # bytes hashed and written per step: bounded extra memory
# Names this package writes inside an index directory; clean-up touches
# nothing else (a typo in a path must never delete someone's files).
OWNED = re.compile(r"^(seg-\d+\.[a-z0-9.\-]+|wal-\d+\.log|\.manifest\.json\.tmp-[0-9a-f]+)$")


class IndexFormatError(ValueError):
    """The directory is not a readable index: foreign, damaged or too new."""


class IndexLockedError(RuntimeError):
    """Another process (or Index object) holds the index open for writing."""


# --- write-once files ------------------------------------------------------------


def write_file(path: str, data) -> dict:
    """Creates `path` (it must not exist) with `data` (bytes-like, or an
    iterable of bytes-like chunks), fsyncs it; returns {"bytes", "sha256"}."""
    digest, size = hashlib.sha256(), 0
    chunks = [data] if isinstance(data, (bytes, bytearray, memoryview)) else data
    with open(path, "xb") as fh:
        for chunk in chunks:
            view = memoryview(chunk).cast("B")
            for start in range(0, len(view), _CHUNK):
                part = view[start:start + _CHUNK]
                digest.update(part)
                fh.write(part)
                size += len(part)
        fh.flush()
        os.fsync(fh.fileno())
    return {"bytes": size, "sha256": digest.hexdigest()}


def array_bytes(arr: np.ndarray) -> memoryview:
    """The bytes of an array (C-contiguous copy if needed), also when empty."""
    return memoryview(np.ascontiguousarray(arr).reshape(-1).view(np.uint8))


def fsync_dir(path: str) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:  # platforms that cannot open directories
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def digest_file(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def check_file(directory: str, fname: str, entry: dict, verify: bool) -> str:
    """Path of a listed file after checking its size (and sha256 if verify)."""
    fpath = os.path.join(directory, fname)
    size = os.stat(fpath).st_size  # FileNotFoundError: the caller retries
    if size != entry["bytes"]:
        what = "truncated" if size < entry["bytes"] else "too long"
        raise IndexFormatError(f"{directory}: {fname} is {what}: {size} bytes, expected {entry['bytes']}")
    if verify and digest_file(fpath) != entry["sha256"]:
        raise IndexFormatError(f"{directory}: {fname} is damaged (sha256 mismatch)")
    return fpath


# --- the manifest ------------------------------------------------------------------


def _digest(manifest: dict) -> str:
    rest = {k: v for k, v in manifest.items() if k != "manifest_sha256"}
    return hashlib.sha256(json.dumps(rest, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def write_manifest(directory: str, manifest: dict) -> None:
    """Atomically replaces DIR/manifest.json (write, fsync, rename, fsync dir)."""
    full = dict(manifest, format=FORMAT_NAME, version=FORMAT_VERSION)
    full["manifest_sha256"] = _digest(full)
    tmp = os.path.join(directory, _MANIFEST_TMP + secrets.token_hex(6))
    try:
        write_file(tmp, json.dumps(full, indent=1, sort_keys=True).encode())
        os.rename(tmp, os.path.join(directory, MANIFEST))
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    fsync_dir(directory)


def read_manifest(directory: str) -> dict:
    path = os.path.join(directory, MANIFEST)
    try:
        with open(path, "rb") as fh:
            manifest = json.loads(fh.read(64 << 20))
    except (ValueError, UnicodeDecodeError) as exc:
        raise IndexFormatError(f"{directory}: {MANIFEST} is damaged (not valid JSON: {exc})") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT_NAME:
        raise IndexFormatError(f"{directory}: not a pplx-kernels index ({MANIFEST} has no format {FORMAT_NAME!r})")
    version = manifest.get("version")
    if version != FORMAT_VERSION:
        newer = " (written by a newer pplx-kernels; upgrade to read it)" \
            if isinstance(version, int) and version > FORMAT_VERSION else ""
        raise IndexFormatError(f"{directory}: index format version {version!r} is not supported; "
                               f"this pplx-kernels reads version {FORMAT_VERSION}{newer}")
    if manifest.get("manifest_sha256") != _digest(manifest):
        raise IndexFormatError(f"{directory}: {MANIFEST} is damaged (its checksum does not match its contents)")
    dim = manifest.get("dim")
    if not isinstance(dim, int) or isinstance(dim, bool) or dim < 1:
        raise IndexFormatError(f"{directory}: {MANIFEST} field 'dim' is invalid: {dim!r}")
    try:
        names = listed_files(manifest)
        sizes_ok = all(isinstance(e.get("bytes"), int) and isinstance(e.get("sha256"), str)
                       for seg in manifest["segments"] for e in list(seg["files"].values()) + [seg.get("deleted") or
                                                                                           {"bytes": 0, "sha256": ""}])
        wal_ok = isinstance(manifest["wal"].get("bytes"), int) and isinstance(manifest.get("generation"), int)
    except (KeyError, TypeError, AttributeError):
        sizes_ok = wal_ok = False
    if not (sizes_ok and wal_ok):
        raise IndexFormatError(f"{directory}: {MANIFEST} does not describe segments and a log as expected")
    for name in names:  # names come from the file: they must stay inside
        if not isinstance(name, str) or not OWNED.match(name) or name.startswith("."):
            raise IndexFormatError(f"{directory}: {MANIFEST} lists an invalid file name {name!r}")
    return manifest


def listed_files(manifest: dict) -> set:
    names = set()
    for seg in manifest.get("segments", []):
        names.update(entry["file"] for entry in seg["files"].values())
        if seg.get("deleted"):
            names.add(seg["deleted"]["file"])
    if manifest.get("wal"):
        names.add(manifest["wal"]["file"])
    return names


def created_by() -> str:
    from .. import __version__
    return f"pplx-kernels {__version__}"


def remove_files(directory: str, names) -> None:
    for name in names:
        try:
            os.unlink(os.path.join(directory, name))
        except FileNotFoundError:
            pass


# --- locks -------------------------------------------------------------------------


def try_lock(path: str, *, create: bool = True):
    """An fd holding an exclusive flock on `path`, or None if someone else
    holds it."""
    fd = os.open(path, (os.O_RDWR | os.O_CREAT) if create else os.O_RDONLY, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as exc:
        os.close(fd)
        if exc.errno in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK):
            return None
        raise
    return fd


def lock_writer(directory: str) -> int:
    fd = try_lock(os.path.join(directory, LOCK_FILE))
    if fd is None:
        raise IndexLockedError(f"path: {directory} is open for writing elsewhere (its {LOCK_FILE} is held)")
    return fd


def unlock(fd) -> None:
    if fd is not None:
        os.close(fd)  # closing the description drops the flock


# --- leftovers -----------------------------------------------------------------------


def remove_unlisted(directory: str, manifest: dict) -> list:
    """Deletes the files this package writes that `manifest` does not list
    (from a writer killed before or after its manifest rename). Only the
    lock holder calls this."""
    keep, removed = listed_files(manifest), []
    for entry in os.listdir(directory):
        if OWNED.match(entry) and entry not in keep:
            try:
                os.unlink(os.path.join(directory, entry))
                removed.append(entry)
            except FileNotFoundError:
                pass
    return removed


def _beside_lock(path: str) -> int:
    parent, name = os.path.split(path)
    return os.open(os.path.join(parent, f".{name}.lock"), os.O_RDWR | os.O_CREAT, 0o644)


def saving_beside(path: str) -> tuple[str, int]:
    """A new temporary directory `.NAME.saving-RANDOM` beside `path` and an
    fd holding a shared flock on `.NAME.lock` for as long as the save runs
    (close it with unlock). Cleans stale temporaries first."""
    fd = _beside_lock(path)
    try:
        _clean_beside(path, fd)
        fcntl.flock(fd, fcntl.LOCK_SH)
        parent, name = os.path.split(path)
        tmp = os.path.join(parent, f".{name}.saving-{secrets.token_hex(6)}")
        os.mkdir(tmp)
    except BaseException:
        os.close(fd)
        raise
    return tmp, fd


def remove_stale_beside(path: str) -> list:
    """Deletes what interrupted saves left beside `path`: `.NAME.saving-*`
    directories, when no save holds `.NAME.lock` (each save holds it
    shared, so an exclusive lock proves every temporary is stale: no PIDs,
    which mean nothing across containers), and `.NAME.previous-*`
    directories of format-1 saves once NAME is a directory again."""
    parent, name = os.path.split(path)
    if not os.path.isdir(parent) or not any(
            e.startswith((f".{name}.saving-", f".{name}.previous-")) for e in os.listdir(parent)):
        return []
    fd = _beside_lock(path)
    try:
        return _clean_beside(path, fd)
    finally:
        os.close(fd)


def _clean_beside(path: str, fd: int) -> list:
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as exc:
        if exc.errno in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK):
            return []  # a save is running
        raise
    parent, name = os.path.split(path)
    removed = []
    for entry in os.listdir(parent):
        stale = entry.startswith(f".{name}.saving-") or (
            entry.startswith(f".{name}.previous-") and os.path.isdir(path))
        if stale:
            shutil.rmtree(os.path.join(parent, entry), ignore_errors=True)
            removed.append(entry)
    return removed
