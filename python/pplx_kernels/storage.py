"""The on-disk index format: a directory of plain files.

    DIR/
      header.json   format name and version, dim, count, metric, scheme,
                    bit order, model name and model file sha256, and for
                    every other file its size and sha256
      codes.i8      int8 vectors, [count, dim], row-major
      norms.f32     float32 little-endian L2 norms of the codes, [count]
      bits.u8       packed sign bits, [count, ceil(dim / 8)], MSB first
      ids.i64       int64 little-endian user ids, [count]
      ...           attachments (e.g. docs.jsonl written by the CLI), listed
                    in the header with size and sha256 like the arrays

Every array is raw little-endian data with no header of its own, so any tool
can read it (np.fromfile, np.memmap, `sha256sum` checks a file against the
header). The header carries its own checksum (`header_sha256`, the sha256
of the canonical JSON of the other fields), so a flipped byte in it is
caught too.

Saving writes everything into a fresh temporary directory beside the
target (`.NAME.saving-PID-RANDOM`), fsyncs each file and the directory, and
only then moves it into place: with renameat2(RENAME_EXCHANGE) where Linux
offers it (one atomic swap), else by renaming the old index aside, the new
one in, and deleting the old. A process killed at any point before the
swap leaves the previous index untouched (and a stale temporary directory,
removed by the next save in that parent). On the fallback path only, a kill
between the two renames leaves the previous index at `.NAME.previous-PID`;
load() then names that directory in its error.

Loading checks the header (format, version, checksum, field types, shapes
that agree with dim and count), that every file exists with exactly the
expected size, and, when `verify` is true, every file's sha256. Without
mmap the files are read once and hashed while being read (verify defaults
to True). With mmap=True nothing is read but the header, so verification
is opt-in (verify defaults to False; verify=True hashes the mapped files,
which reads them all).
"""

from __future__ import annotations

import ctypes
import errno
import hashlib
import json
import os
import secrets
import shutil
import time
from dataclasses import dataclass

import numpy as np

FORMAT_NAME = "pplx-kernels-index"
FORMAT_VERSION = 1
HEADER_FILE = "header.json"

# name -> (file, little-endian dtype, shape as a function of (count, dim))
ARRAYS = {
    "codes": ("codes.i8", "<i1", lambda n, d: (n, d)),
    "norms": ("norms.f32", "<f4", lambda n, d: (n,)),
    "bits": ("bits.u8", "|u1", lambda n, d: (n, (d + 7) // 8)),
    "ids": ("ids.i64", "<i8", lambda n, d: (n,)),
}

_CHUNK = 16 << 20  # bytes hashed and written per step: bounded extra memory
# Test hook: seconds to sleep after each file of a save, so a test can kill
# the process in the middle of one.
_DELAY_ENV = "PPLX_KERNELS_TEST_SAVE_DELAY"


class IndexFormatError(ValueError):
    """The directory is not a readable index: foreign, damaged or too new."""


@dataclass
class Loaded:
    header: dict
    arrays: dict  # name -> numpy array (memmap when loaded with mmap=True)


# --- writing -----------------------------------------------------------------


def save(path, header: dict, arrays: dict, attachments: dict | None = None) -> None:
    """Writes an index directory at `path`, replacing an existing index there.

    header: dim, count, metric, scheme, model, ...; the format fields,
    file list and checksums are added here. arrays: name -> ndarray for
    every name in ARRAYS. attachments: file name -> bytes, or a path whose
    contents are copied.
    """
    path = os.path.abspath(os.fspath(path))
    parent, name = os.path.split(path)
    if not name:
        raise ValueError(f"path: expected a directory path, got {path!r}")
    if os.path.exists(path):
        _check_replaceable(path)
    os.makedirs(parent, exist_ok=True)
    _remove_stale_temporaries(parent, name)

    tmp = os.path.join(parent, f".{name}.saving-{os.getpid()}-{secrets.token_hex(4)}")
    os.mkdir(tmp)
    try:
        files = {}
        delay = float(os.environ.get(_DELAY_ENV, "0") or 0)
        count, dim = int(header["count"]), int(header["dim"])
        for key, (fname, dtype, shape_of) in ARRAYS.items():
            arr = np.ascontiguousarray(arrays[key], dtype=np.dtype(dtype))
            if arr.shape != shape_of(count, dim):
                raise ValueError(f"{key}: expected shape {shape_of(count, dim)}, got {arr.shape}")
            files[fname] = _write_file(os.path.join(tmp, fname), _byte_view(arr))
            if delay:
                time.sleep(delay)
        for fname, content in (attachments or {}).items():
            _check_attachment_name(fname)
            if isinstance(content, (bytes, bytearray, memoryview)):
                files[fname] = _write_file(os.path.join(tmp, fname), memoryview(content).cast("B"))
            else:
                files[fname] = _copy_file(os.fspath(content), os.path.join(tmp, fname))
        full = dict(header)
        full.update(format=FORMAT_NAME, version=FORMAT_VERSION, bitorder="big",
                    arrays={k: {"file": f, "dtype": t} for k, (f, t, _) in ARRAYS.items()},
                    files=files)
        full["header_sha256"] = _header_digest(full)
        _write_file(os.path.join(tmp, HEADER_FILE), json.dumps(full, indent=1, sort_keys=True).encode())
        _fsync_dir(tmp)
        _move_into_place(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _byte_view(arr: np.ndarray) -> memoryview:
    """The bytes of a C-contiguous array (also of an empty one)."""
    return memoryview(arr.reshape(-1).view(np.uint8))


def _write_file(fpath: str, data: memoryview) -> dict:
    digest = hashlib.sha256()
    with open(fpath, "xb") as fh:
        for start in range(0, len(data), _CHUNK):
            chunk = data[start:start + _CHUNK]
            digest.update(chunk)
            fh.write(chunk)
        fh.flush()
        os.fsync(fh.fileno())
    return {"bytes": len(data), "sha256": digest.hexdigest()}


def _copy_file(src: str, dst: str) -> dict:
    digest, size = hashlib.sha256(), 0
    with open(src, "rb") as fin, open(dst, "xb") as fout:
        while chunk := fin.read(_CHUNK):
            digest.update(chunk)
            fout.write(chunk)
            size += len(chunk)
        fout.flush()
        os.fsync(fout.fileno())
    return {"bytes": size, "sha256": digest.hexdigest()}


def _check_attachment_name(fname: str) -> None:
    reserved = {HEADER_FILE} | {f for f, _, _ in ARRAYS.values()}
    if (not isinstance(fname, str) or not fname or fname in reserved or fname.startswith(".")
            or os.sep in fname or (os.altsep and os.altsep in fname)):
        raise ValueError(f"attachments: expected plain file names other than {sorted(reserved)}, got {fname!r}")


def _check_replaceable(path: str) -> None:
    """Only an index (or an empty directory) may be replaced: a typo in a
    path must never delete someone's files."""
    if not os.path.isdir(path):
        raise FileExistsError(f"path: {path} exists and is not a directory")
    if not os.listdir(path):
        return
    try:  # a damaged header still names the format: it may be replaced
        with open(os.path.join(path, HEADER_FILE), "rb") as fh:
            if FORMAT_NAME.encode() in fh.read(1 << 20):
                return
    except OSError:
        pass
    raise FileExistsError(f"path: {path} exists and is not a pplx-kernels index; refusing to replace it")


def _move_into_place(tmp: str, path: str) -> None:
    parent = os.path.dirname(path)
    if not os.path.exists(path):
        os.rename(tmp, path)
    elif _rename_exchange(tmp, path):
        shutil.rmtree(tmp)  # holds the previous index now
    else:
        aside = os.path.join(parent, f".{os.path.basename(path)}.previous-{os.getpid()}")
        os.rename(path, aside)
        os.rename(tmp, path)
        _fsync_dir(parent)
        shutil.rmtree(aside)
    _fsync_dir(parent)


def _rename_exchange(a: str, b: str) -> bool:
    """Atomically swaps two paths (Linux renameat2 RENAME_EXCHANGE); False
    where the platform or file system does not support it."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        renameat2 = libc.renameat2
    except (OSError, AttributeError):
        return False
    renameat2.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    at_fdcwd, rename_exchange = -100, 2
    if renameat2(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), rename_exchange) == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.ENOSYS, errno.EINVAL, errno.ENOTSUP, errno.EOPNOTSUPP):
        return False
    raise OSError(err, f"renameat2 exchange failed: {os.strerror(err)}", b)


def _fsync_dir(path: str) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:  # platforms that cannot open directories (Windows)
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _remove_stale_temporaries(parent: str, name: str) -> None:
    """Deletes temporary directories left by saves whose process is gone."""
    prefix = f".{name}.saving-"
    for entry in os.listdir(parent):
        if not entry.startswith(prefix):
            continue
        pid = entry[len(prefix):].split("-", 1)[0]
        if pid.isdigit() and not _pid_alive(int(pid)):
            shutil.rmtree(os.path.join(parent, entry), ignore_errors=True)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OSError):
        return True
    return True


def _header_digest(header: dict) -> str:
    rest = {k: v for k, v in header.items() if k != "header_sha256"}
    return hashlib.sha256(json.dumps(rest, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


# --- reading -----------------------------------------------------------------


def load(path, *, mmap: bool = True, verify: bool | None = None) -> Loaded:
    """Reads and validates an index directory; raises IndexFormatError
    saying what is wrong. verify=None means: hash every file unless mmap."""
    path = os.fspath(path)
    if verify is None:
        verify = not mmap
    header = read_header(path)
    count, dim = header["count"], header["dim"]
    arrays = {}
    for key, (fname, dtype, shape_of) in ARRAYS.items():
        if header.get("arrays", {}).get(key, {}).get("file") != fname or header["arrays"][key].get("dtype") != dtype:
            raise IndexFormatError(f"{path}: header.json describes array {key!r} differently than format version {FORMAT_VERSION} does")
        fpath = os.path.join(path, fname)
        shape = shape_of(count, dim)
        expected = _check_file(path, header, fname, int(np.prod(shape)) * np.dtype(dtype).itemsize)
        if mmap and expected:
            arr = np.memmap(fpath, dtype=np.dtype(dtype), mode="r", shape=shape)
            if verify:
                _check_digest(path, header, fname, _digest_buffer(_byte_view(arr)))
        else:
            arr = np.empty(shape, dtype=np.dtype(dtype))
            digest = _read_into(fpath, _byte_view(arr))
            if verify:
                _check_digest(path, header, fname, digest)
        arrays[key] = arr
    for fname in header["files"]:
        if fname not in {f for f, _, _ in ARRAYS.values()}:
            _check_file(path, header, fname, None)
            if verify:
                _check_digest(path, header, fname, _digest_path(os.path.join(path, fname)))
    return Loaded(header=header, arrays=arrays)


def verify(path) -> None:
    """Checks an index directory fully (header, sizes and every checksum)
    without keeping anything in memory; raises IndexFormatError."""
    path = os.fspath(path)
    header = read_header(path)
    for fname in header["files"]:
        _check_file(path, header, fname, None)
        _check_digest(path, header, fname, _digest_path(os.path.join(path, fname)))


def read_header(path) -> dict:
    path = os.fspath(path)
    if not os.path.isdir(path):
        if os.path.exists(path):
            raise IndexFormatError(f"{path}: not an index directory (it is a file)")
        parent, name = os.path.split(os.path.abspath(path))
        left = [e for e in (os.listdir(parent) if os.path.isdir(parent) else []) if e.startswith(f".{name}.previous-")]
        hint = f"; an interrupted save left the previous index at {os.path.join(parent, left[0])}" if left else ""
        raise FileNotFoundError(f"{path}: no such index directory{hint}")
    hpath = os.path.join(path, HEADER_FILE)
    if not os.path.isfile(hpath):
        raise IndexFormatError(f"{path}: not a pplx-kernels index (no {HEADER_FILE})")
    try:
        with open(hpath, "rb") as fh:
            header = json.loads(fh.read(16 << 20))
    except (ValueError, UnicodeDecodeError) as exc:
        raise IndexFormatError(f"{path}: {HEADER_FILE} is damaged (not valid JSON: {exc})") from None
    if not isinstance(header, dict) or header.get("format") != FORMAT_NAME:
        raise IndexFormatError(f"{path}: not a pplx-kernels index ({HEADER_FILE} has no format {FORMAT_NAME!r})")
    version = header.get("version")
    if not isinstance(version, int) or isinstance(version, bool):
        raise IndexFormatError(f"{path}: {HEADER_FILE} has no valid format version (got {version!r})")
    if version != FORMAT_VERSION:
        newer = " (written by a newer pplx-kernels; upgrade to read it)" if version > FORMAT_VERSION else ""
        raise IndexFormatError(f"{path}: index format version {version} is not supported; this pplx-kernels reads version {FORMAT_VERSION}{newer}")
    if header.get("header_sha256") != _header_digest(header):
        raise IndexFormatError(f"{path}: {HEADER_FILE} is damaged (its checksum does not match its contents)")
    for field in ("dim", "count"):
        value = header.get(field)
        if not isinstance(value, int) or isinstance(value, bool) or value < (1 if field == "dim" else 0):
            raise IndexFormatError(f"{path}: {HEADER_FILE} field {field!r} is invalid: {value!r}")
    files = header.get("files")
    if not isinstance(files, dict) or not all(
        isinstance(v, dict) and isinstance(v.get("bytes"), int) and isinstance(v.get("sha256"), str) for v in files.values()
    ):
        raise IndexFormatError(f"{path}: {HEADER_FILE} field 'files' is invalid")
    for fname in files:  # names come from the file: never let them leave the directory
        if not fname or fname.startswith(".") or "/" in fname or "\\" in fname or fname == HEADER_FILE:
            raise IndexFormatError(f"{path}: {HEADER_FILE} lists an invalid file name {fname!r}")
    return header


def _check_file(path: str, header: dict, fname: str, expected_bytes: int | None) -> int:
    entry = header["files"].get(fname)
    if entry is None:
        raise IndexFormatError(f"{path}: {HEADER_FILE} does not list {fname}")
    if expected_bytes is not None and entry["bytes"] != expected_bytes:
        raise IndexFormatError(
            f"{path}: {HEADER_FILE} says {fname} has {entry['bytes']} bytes, but count and dim imply {expected_bytes}")
    fpath = os.path.join(path, fname)
    try:
        size = os.stat(fpath).st_size
    except FileNotFoundError:
        raise IndexFormatError(f"{path}: {fname} is missing") from None
    if size != entry["bytes"]:
        what = "truncated" if size < entry["bytes"] else "too long"
        raise IndexFormatError(f"{path}: {fname} is {what}: {size} bytes, expected {entry['bytes']}")
    return size


def _check_digest(path: str, header: dict, fname: str, digest: str) -> None:
    if digest != header["files"][fname]["sha256"]:
        raise IndexFormatError(f"{path}: {fname} is damaged (sha256 mismatch)")


def _read_into(fpath: str, out: memoryview) -> str:
    digest = hashlib.sha256()
    with open(fpath, "rb", buffering=0) as fh:
        pos = 0
        while pos < len(out):
            got = fh.readinto(out[pos:pos + _CHUNK])
            if not got:
                raise IndexFormatError(f"{fpath}: file shrank while being read")
            digest.update(out[pos:pos + got])
            pos += got
    return digest.hexdigest()


def _digest_buffer(data: memoryview) -> str:
    digest = hashlib.sha256()
    for start in range(0, len(data), _CHUNK):
        digest.update(data[start:start + _CHUNK])
    return digest.hexdigest()


def _digest_path(fpath: str) -> str:
    digest = hashlib.sha256()
    with open(fpath, "rb") as fh:
        while chunk := fh.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()
