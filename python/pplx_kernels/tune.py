"""Self-tuning of the search kernels' speed-only knobs.

Every knob (prefetch distance, one-query row order, the query count from
which the packed microkernels run, POPCNT vs pshufb on AVX2) selects
between variants that give bit-identical results; only their speed depends
on the CPU. A short calibration (about a second, on synthetic data sized to
this CPU's caches and to a memory-bound scan) times the candidates at the
active ISA level and keeps the fastest. The choice is cached per CPU
signature (vendor, family, model, stepping, features, cache sizes, package
version) in $XDG_CACHE_HOME/pplx-kernels/ (or ~/.cache/pplx-kernels/),
written atomically.

PPLX_KERNELS_TUNE selects what happens at the first search call:
  auto (default)  use the cached choice, or calibrate once and cache it;
  force           calibrate again (once per process) and rewrite the cache;
  off             the defaults table by vendor and microarchitecture.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

from . import _core

_MODES = ("auto", "force", "off")
_lock = threading.RLock()
# Per process: the level whose knobs are applied, and where they came from.
_state = {"level": None, "source": "defaults", "busy": False, "path": None, "seconds": None}


def _mode() -> str:
    mode = os.environ.get("PPLX_KERNELS_TUNE", "auto").strip().lower() or "auto"
    if mode not in _MODES:
        raise ValueError(f"PPLX_KERNELS_TUNE: expected one of {', '.join(_MODES)}, got {mode!r}")
    return mode


def _cpuinfo_fields() -> dict:
    fields = {}
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if not line.strip():
                    break  # first processor only
                key, _, value = line.partition(":")
                fields[key.strip()] = value.strip()
    except OSError:
        pass
    return fields


def _cache_sizes() -> dict:
    sizes = {}
    base = Path("/sys/devices/system/cpu/cpu0/cache")
    for index in sorted(base.glob("index*")):
        try:
            level = (index / "level").read_text().strip()
            kind = (index / "type").read_text().strip()
            sizes[f"L{level} {kind}"] = (index / "size").read_text().strip()
        except OSError:
            continue
    return sizes


def _bytes(size: str | None, default: int) -> int:
    if not size:
        return default
    units = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}
    s = size.strip().upper()
    return int(s[:-1]) * units[s[-1]] if s[-1] in units else int(s)


def signature() -> dict:
    """What the cached choice depends on."""
    from . import __version__

    info = _cpuinfo_fields()
    return {
        "vendor": info.get("vendor_id", platform.processor() or platform.machine()),
        "family": info.get("cpu family", ""),
        "model": info.get("model", ""),
        "stepping": info.get("stepping", ""),
        "model_name": info.get("model name", ""),
        "features": {k: bool(v) for k, v in sorted(_core.cpu_features().items())},
        "caches": _cache_sizes(),
        "version": __version__,
    }


def cache_path() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    digest = hashlib.sha256(json.dumps(signature(), sort_keys=True).encode()).hexdigest()[:16]
    return Path(base) / "pplx-kernels" / f"tune-{digest}.json"


def _read_cache(path: Path) -> dict:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) and data.get("signature") == signature() else {}


def _write_cache(path: Path, data: dict) -> None:
    """Atomic: a temporary file in the same directory, then rename. A cache
    that cannot be written (read-only home) is not an error."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".tune-", dir=path.parent)
        with os.fdopen(fd, "w") as f:
            json.dump(data, f, indent=1, sort_keys=True)
        os.replace(tmp, path)
    except OSError:
        pass


def _apply(knobs: dict) -> None:
    _core.reset_knobs()
    known = _core.get_knobs()
    for name, value in knobs.items():
        if name in known:
            _core.set_knob(name, int(value))


# ------------------------------------------------------------ calibration

def _best(fn, reps=3) -> float:
    fn()  # warm-up
    best = float("inf")
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def _pick(configs: dict, run, rounds=3) -> tuple[str, dict]:
    """Times run() under each named knob setting, round-robin (so every
    candidate sees the same moments of a shared machine), keeps the best."""
    base = _core.get_knobs()
    times = {name: float("inf") for name in configs}
    for _ in range(rounds):
        for name, knobs in configs.items():
            _apply({**base, **knobs})
            times[name] = min(times[name], _best(run, reps=1))
    _apply(base)
    best = min(times, key=times.get)
    return best, times


def _tiled(rows: int, width: int, dtype, rng) -> np.ndarray:
    """Rows of a small random block repeated (fast to make); int8 values
    avoid -128."""
    block = rng.integers(-127, 128, (min(rows, 4096), width)).astype(dtype)
    return np.tile(block, (-(-rows // block.shape[0]), 1))[:rows]


def calibrate() -> dict:
    """Times the knob candidates at the active level; returns the chosen knobs
    and the timings. Leaves the chosen knobs applied."""
    from .search import topk  # noqa: PLC0415  (search imports this module)

    rng = np.random.default_rng(0)
    caches = _cache_sizes()
    l2 = _bytes(caches.get("L2 Unified"), 1 << 20)
    l3 = _bytes(caches.get("L3 Unified"), 32 << 20)
    scan_bytes = int(min(max(3 * l3, 48 << 20), 192 << 20))  # memory bound: past the L3
    kernels = _core.kernel_variants()
    chosen, timings = {}, {}

    def choose(knob_sets: dict, run, label: str) -> None:
        best, times = _pick(knob_sets, run)
        chosen.update(knob_sets[best])
        timings[label] = {name: round(t * 1e3, 3) for name, t in times.items()}
        _apply({**_core.get_knobs(), **knob_sets[best]})

    prefetch = _core.knob_candidates()["cosine_prefetch"]
    # One query over a memory-bound scan: row order x prefetch distance.
    dim = 1024
    x = _tiled(scan_bytes // dim, dim, np.int8, rng)
    norms = np.full(x.shape[0], 1.0 + float(np.linalg.norm(x[0].astype(np.float32))), np.float32)
    q = x[:1] // 2
    choose({f"order{o} prefetch{p}": {"cosine_row_order": o, "cosine_prefetch": p}
            for o in (0, 1) for p in prefetch},
           lambda: topk(q, x, 10, database_norms=norms), "cosine M=1 scan")
    del x
    codes = _tiled(scan_bytes // 128, 128, np.uint8, rng)
    qc = codes[:1] ^ 1
    choose({f"order{o} prefetch{p}": {"hamming_row_order": o, "hamming_prefetch": p}
            for o in (0, 1) for p in _core.knob_candidates()["hamming_prefetch"]},
           lambda: topk(qc, codes, 10, metric="hamming"), "hamming M=1 scan")
    del codes

    # Row-wise vs packed by query count, data in the L3 (compute bound).
    rows_in_l3 = max(2048, min(l3 // 2, 16 << 20) // dim)
    xs = _tiled(rows_in_l3, dim, np.int8, rng)
    cs = _tiled(rows_in_l3, 128, np.uint8, rng)
    packed_variants = {"cosine": ("avx512_vnni",), "hamming": ("avx2", "avx512_vpopcntdq")}
    for family, data, kw in (("cosine", xs, {}), ("hamming", cs, {"metric": "hamming"})):
        if kernels.get(family) not in packed_variants[family]:
            continue  # no packed kernel at this level: the knob does nothing
        knob = f"{family}_packed_min_queries"
        cands = sorted(_core.knob_candidates()[knob])
        threshold = cands[-1] * 2  # packed never won: past the largest candidate
        for m in reversed(cands):
            qm = data[:m] ^ 1 if family == "hamming" else data[:m] // 2
            best, times = _pick({"rows": {knob: 1 << 30}, "packed": {knob: 1}},
                                lambda qm=qm: topk(qm, data, 10, **kw), rounds=2)
            timings[f"{family} M={m}"] = {k: round(v * 1e3, 3) for k, v in times.items()}
            if best != "packed":
                break
            threshold = m
        chosen[knob] = threshold
        _apply({**_core.get_knobs(), knob: threshold})

    # AVX2 Hamming row-wise: scalar POPCNT vs pshufb by code length.
    if kernels.get("hamming") == "avx2":
        limit = 0
        for nbytes in (32, 64, 128, 256):
            c = _tiled(max(2048, l2 // nbytes), nbytes, np.uint8, rng)
            q2 = c[:2] ^ 1
            best, times = _pick({"popcnt": {"hamming_popcnt_max_bytes": 1 << 30},
                                 "pshufb": {"hamming_popcnt_max_bytes": 0}},
                                lambda c=c, q2=q2: topk(q2, c, 10, metric="hamming"), rounds=2)
            timings[f"hamming {nbytes} B"] = {k: round(v * 1e3, 3) for k, v in times.items()}
            if best != "popcnt":
                break
            limit = nbytes
        chosen["hamming_popcnt_max_bytes"] = limit
        _apply({**_core.get_knobs(), "hamming_popcnt_max_bytes": limit})
    return {"knobs": {**_core.get_knobs(), **chosen}, "timings_ms": timings}


# ------------------------------------------------------------ entry points

def tune(force: bool = True) -> dict:
    """Calibrates the knobs at the active ISA level now (force=False: only
    when no cached choice exists), applies and caches them. Returns what
    tuning_info() returns."""
    with _lock:
        _load(force=force)
    return tuning_info()


def _load(force: bool) -> None:
    level = _core.get_isa()
    path = cache_path()
    data = _read_cache(path)
    entry = data.get("levels", {}).get(level)
    if entry and not force:
        _apply(entry["knobs"])
        _state.update(level=level, source="cache", path=str(path), seconds=entry.get("seconds"))
        return
    _state["busy"] = True
    try:
        _core.reset_knobs()
        t0 = time.perf_counter()
        result = calibrate()
        seconds = round(time.perf_counter() - t0, 3)
    finally:
        _state["busy"] = False
    _apply(result["knobs"])
    levels = dict(data.get("levels", {}))
    levels[level] = {**result, "seconds": seconds}
    _write_cache(path, {"signature": signature(), "levels": levels})
    _state.update(level=level, source="calibration", path=str(path), seconds=seconds)


def ensure_tuned() -> None:
    """Called by the search functions before they scan: applies the knobs of
    the active level once (cache, calibration or defaults, per
    PPLX_KERNELS_TUNE)."""
    level = _core.get_isa()
    if _state["level"] == level or _state["busy"]:
        return
    with _lock:
        if _state["level"] == level or _state["busy"]:
            return
        mode = _mode()
        if mode == "off":
            _core.reset_knobs()
            _state.update(level=level, source="defaults", path=None, seconds=None)
            return
        _load(force=mode == "force" and _state.get("forced") != level)
        if mode == "force":
            _state["forced"] = level


def invalidate() -> None:
    """The active level changed (set_isa): its knobs are applied again at the
    next search call."""
    with _lock:
        _state["level"] = None


def tuning_info() -> dict:
    """Which knob values run, and whether they came from the cache, a fresh
    calibration or the defaults table ('pending' before the first search)."""
    return {
        "source": _state["source"] if _state["level"] == _core.get_isa() else "pending",
        "mode": os.environ.get("PPLX_KERNELS_TUNE", "auto"),
        "cpu_family": _core.cpu_family(),
        "knobs": dict(_core.get_knobs()),
        "cache": _state["path"],
        "calibration_seconds": _state["seconds"],
    }
