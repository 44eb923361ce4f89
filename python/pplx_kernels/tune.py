"""Self-tuning of the search kernels' speed-only knobs.

Every knob (prefetch distance, one-query row order, the query count from
which the packed microkernels run, POPCNT vs pshufb on AVX2, rows per task
of the dense scans) selects
between variants that give bit-identical results; only their speed depends
on the CPU. A short calibration (about a second, on synthetic data sized to
this CPU's caches and to a memory-bound scan) times the candidates at the
active ISA level and keeps the fastest. The choice is cached per CPU
signature (vendor, family, model, stepping, features, cache sizes, package
version, the build's knobs, candidates and defaults) in
$XDG_CACHE_HOME/pplx-kernels/ (or ~/.cache/pplx-kernels/),
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
from typing import Any
from pathlib import Path

import numpy as np

from . import _core

_MODES = ("auto", "force", "off")
_lock = threading.RLock()
# Per process: the level whose knobs are applied, and where they came from.
_state: dict[str, Any] = {"level": None, "source": "defaults", "busy": False, "path": None, "seconds": None}


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
        # A build that adds a knob or changes its candidates or its defaults
        # (a calibration keeps the default on a tie) calibrates anew.
        "knobs": {name: list(values) for name, values in sorted(_core.knob_candidates().items())},
        "knob_defaults": dict(sorted(_core.knob_defaults().items())),
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

# A candidate replaces the default only when it is faster by more than this:
# on a busy machine, noise must not move a knob away from a sound default.
MARGIN = 1.04


def _cpu_seconds(fn) -> float:
    """Process CPU time of one call (all threads): other processes taking
    the cores lengthen the wall time of a call, not its CPU time."""
    t0 = time.process_time()
    fn()
    return time.process_time() - t0


def _wall_seconds(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def _times(configs: dict, run, rounds: int, timer=_cpu_seconds) -> dict:
    """Best CPU time (or `timer`) of run() under each named knob setting,
    measured round-robin so that every candidate sees the same moments."""
    base = _core.get_knobs()
    times = {name: float("inf") for name in configs}
    for _ in range(rounds):
        for name, knobs in configs.items():
            _apply({**base, **knobs})
            run()  # warm-up under these knobs
            times[name] = min(times[name], timer(run))
    _apply(base)
    return times


def _pick(configs: dict, run, default: str, rounds: int = 3, timer=_cpu_seconds) -> tuple[str, dict]:
    """The fastest setting, or `default` unless beaten by MARGIN."""
    times = _times(configs, run, rounds, timer)
    best = min(times, key=lambda name: times[name])
    if times[default] <= times[best] * MARGIN:
        best = default
    return best, times


def _tiled(rows: int, width: int, dtype, rng) -> np.ndarray:
    """Rows of a small random block repeated (fast to make); int8 values
    avoid -128."""
    block = rng.integers(-127, 128, (min(rows, 4096), width)).astype(dtype)
    return np.tile(block, (-(-rows // block.shape[0]), 1))[:rows]


def _ms(times: dict) -> dict:
    return {name: round(t * 1e3, 3) for name, t in times.items()}


def calibrate() -> dict:
    """Times the knob candidates at the active level, starting from the
    defaults table; returns the chosen knobs and the timings (CPU ms).
    Leaves the chosen knobs applied."""
    from .search import topk  # noqa: PLC0415  (search imports this module)

    rng = np.random.default_rng(0)
    caches = _cache_sizes()
    l2 = _bytes(caches.get("L2 Unified"), 1 << 20)
    l3 = _bytes(caches.get("L3 Unified"), 32 << 20)
    scan_bytes = int(min(max(2 * l3, 48 << 20), 128 << 20))  # memory bound: past the L3
    kernels = _core.kernel_variants()
    candidates = _core.knob_candidates()
    timings = {}

    def set_best(label, configs, run, default_knobs):
        default = next(n for n, k in configs.items() if k == default_knobs)
        best, times = _pick(configs, run, default)
        timings[label] = _ms(times)
        _apply({**_core.get_knobs(), **configs[best]})

    # One query over a memory-bound scan: the row order, then the prefetch
    # distance for that order.
    dim = 1024
    x = _tiled(scan_bytes // dim, dim, np.int8, rng)
    norms = np.full(x.shape[0], 1.0 + float(np.linalg.norm(x[0].astype(np.float32))), np.float32)
    codes = _tiled(scan_bytes // 128, 128, np.uint8, rng)
    scans = {"cosine": lambda: topk(x[:1] // 2, x, 10, database_norms=norms),
             "hamming": lambda: topk(codes[:1] ^ 1, codes, 10, metric="hamming")}
    for family, run in scans.items():
        order, prefetch = f"{family}_row_order", f"{family}_prefetch"
        now = _core.get_knobs()
        set_best(f"{family} M=1 row order", {f"order {o}": {order: o} for o in candidates[order]},
                 run, {order: now[order]})
        set_best(f"{family} M=1 prefetch", {f"{p} B": {prefetch: p} for p in candidates[prefetch]},
                 run, {prefetch: now[prefetch]})
    timings["scan chunk"] = _calibrate_scan_chunk(scans["cosine"])
    if kernels.get("hamming") == "avx2":
        _calibrate_next_prefetch(codes, candidates, timings)
    del x, codes, scans

    # Row-wise vs packed by query count, data in the L3 (compute bound).
    rows_in_l3 = max(2048, min(l3 // 2, 16 << 20) // dim)
    data = {"cosine": _tiled(rows_in_l3, dim, np.int8, rng),
            "hamming": _tiled(rows_in_l3, 128, np.uint8, rng)}
    def set_crossing(knob, label, run_m):
        """Sets a query-count knob (the path it gates runs from that many
        queries on) to the smallest candidate from which that path wins at
        every larger candidate, the largest at least (beyond it the gated,
        compute-bound path is ahead)."""
        default = _core.get_knobs()[knob]
        wins = {}
        for m in candidates[knob]:
            times = _times({"below": {knob: 1 << 30}, "from": {knob: 1}},
                           lambda m=m: run_m(m), rounds=2)
            timings[f"{label} M={m}"] = _ms(times)
            ratio = times["below"] / times["from"]
            wins[m] = ratio > MARGIN or (ratio >= 1 / MARGIN and m >= default)
        threshold = max(candidates[knob])
        for m in sorted(candidates[knob], reverse=True):
            if not wins[m]:
                break
            threshold = m
        _apply({**_core.get_knobs(), knob: threshold})

    xs, cs = data["cosine"], data["hamming"]
    # Row-wise ("below") vs packed ("from").
    if kernels.get("cosine") in ("avx2", "avx512_vnni"):
        set_crossing("cosine_packed_min_queries", "cosine rows|packed", lambda m: topk(xs[:m] // 2, xs, 10))
    if kernels.get("hamming") in ("avx2", "avx512_vpopcntdq"):
        set_crossing("hamming_packed_min_queries", "hamming rows|packed",
                     lambda m: topk(cs[:m] ^ 1, cs, 10, metric="hamming"))
    # AVX-512 Hamming, packed regime: queries packed, codes read in place
    # ("below") vs codes packed ("from").
    if kernels.get("hamming") == "avx512_vpopcntdq":
        set_crossing("hamming_code_packing_min_queries", "hamming queries|codes packed",
                     lambda m: topk(cs[:m] ^ 1, cs, 10, metric="hamming"))
        _calibrate_qpacked_prefetch(_tiled(max(2048, l3 // 2 // 128), 128, np.uint8, rng), candidates, timings)

    # AVX2 Hamming row-wise: scalar POPCNT vs pshufb by code length.
    if kernels.get("hamming") == "avx2":
        default = _core.get_knobs()["hamming_popcnt_max_bytes"]
        limit = 0
        for nbytes in (32, 64, 128, 256):
            c = _tiled(max(2048, l2 // nbytes), nbytes, np.uint8, rng)
            best, times = _pick({"popcnt": {"hamming_popcnt_max_bytes": 1 << 30},
                                 "pshufb": {"hamming_popcnt_max_bytes": 0}},
                                lambda c=c: topk(c[:2] ^ 1, c, 10, metric="hamming"),
                                "popcnt" if nbytes <= default else "pshufb", rounds=3)
            timings[f"hamming {nbytes} B"] = _ms(times)
            if best != "popcnt":
                break
            limit = nbytes
        _apply({**_core.get_knobs(), "hamming_popcnt_max_bytes": limit})
    return {"knobs": dict(_core.get_knobs()), "timings_cpu_ms": timings}


def _calibrate_scan_chunk(run) -> dict:
    """Rows per task of the dense scans (scan_chunk_bytes), on a one-query
    memory-bound scan with the default threads. Wall time, not CPU time: a
    split that leaves one thread idle at the end shows only there. Returns
    the timings (ms) and leaves the choice applied."""
    knob = "scan_chunk_bytes"
    configs = {f"{c >> 10} KB": {knob: c} for c in _core.knob_candidates()[knob]}
    now = _core.get_knobs()[knob]
    default = next(name for name, k in configs.items() if k[knob] == now)
    best, times = _pick(configs, run, default, rounds=5, timer=_wall_seconds)
    _apply({**_core.get_knobs(), **configs[best]})
    return _ms(times)


def _calibrate_hamming_16(knob: str, values: dict, forced: dict, codes: np.ndarray, label: str,
                          timings: dict) -> None:
    """Times each of `values` (name: value) of one Hamming knob at 16
    queries over `codes`, with the `forced` knobs holding a path in place,
    and keeps the fastest (the current value unless beaten by MARGIN); only
    `knob` itself is left changed."""
    from .search import topk  # noqa: PLC0415

    current = _core.get_knobs()[knob]
    configs = {name: {knob: v, **forced} for name, v in values.items()}
    default = next(name for name, v in values.items() if v == current)
    best, times = _pick(configs, lambda: topk(codes[:16] ^ 1, codes, 10, metric="hamming"), default)
    timings[label] = _ms(times)
    _apply({**_core.get_knobs(), knob: values[best]})


def _calibrate_qpacked_prefetch(codes: np.ndarray, candidates: dict, timings: dict) -> None:
    """AVX-512 Hamming with queries packed: the software prefetch distance
    ahead of the codes it reads in place, with that path forced, over codes
    filling half the L3 (in the L2 it makes no difference)."""
    knob = "hamming_qpacked_prefetch"
    distances = sorted({*candidates[knob], _core.get_knobs()[knob]})
    _calibrate_hamming_16(knob, {f"{p} B": p for p in distances},
                          {"hamming_packed_min_queries": 1, "hamming_code_packing_min_queries": 1 << 30},
                          codes, "hamming queries packed prefetch", timings)


def _calibrate_next_prefetch(codes: np.ndarray, candidates: dict, timings: dict) -> None:
    """AVX2 Hamming, packed: whether to prefetch the next block of codes into
    L2 while one is scored, with the packed path forced, over codes past the
    L3 (where the packing would wait on memory)."""
    knob = "hamming_packed_next_prefetch"
    names = {0: "off", 1: "on"}
    _calibrate_hamming_16(knob, {names[v]: v for v in candidates[knob]}, {"hamming_packed_min_queries": 1},
                          codes, "hamming packed next-block prefetch", timings)


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
        try:
            _load(force=mode == "force" and _state.get("forced") != level)
        except MemoryError:
            # No room for the calibration data: the defaults are exact too.
            _core.reset_knobs()
            _state.update(level=level, source="defaults", path=None, seconds=None)
        if mode == "force":
            _state["forced"] = level


def invalidate() -> None:
    """The active level changed (set_isa): its knobs are applied again at the
    next search call."""
    with _lock:
        _state["level"] = None


def _variants(knobs: dict) -> dict:
    """The knobs as words, per family."""
    def one_query(family):
        order = "rows in memory order" if knobs[f"{family}_row_order"] else "row tiles"
        pf = knobs[f"{family}_prefetch"]
        return f"one query: {order}, " + (f"prefetch {pf} B ahead" if pf else "no software prefetch")

    popcnt = knobs["hamming_popcnt_max_bytes"]
    return {
        "cosine": f"{one_query('cosine')}; packed from {knobs['cosine_packed_min_queries']} queries",
        "hamming": f"{one_query('hamming')}; packed from {knobs['hamming_packed_min_queries']} queries "
                   f"(AVX-512: codes packed from {knobs['hamming_code_packing_min_queries']}, queries below, "
                   f"prefetch {knobs['hamming_qpacked_prefetch']} B ahead); "
                   f"AVX2 rows: POPCNT up to {popcnt} B, pshufb above; AVX2 packed: next block "
                   f"{'prefetched' if knobs['hamming_packed_next_prefetch'] else 'not prefetched'} into L2",
        "thread split": f"dense scans: tasks of {knobs['scan_chunk_bytes'] >> 10} KB of database rows",
    }


def tuning_info() -> dict:
    """Which knob values run, and whether they came from the cache, a fresh
    calibration or the defaults table ('pending': the defaults run until the
    first search call applies the cache or calibrates)."""
    knobs = dict(_core.get_knobs())
    return {
        "source": (_state["source"] if _state["level"] == _core.get_isa()
                   else "defaults" if _mode() == "off" else "pending"),
        "mode": os.environ.get("PPLX_KERNELS_TUNE", "auto"),
        "cpu_family": _core.cpu_family(),
        "knobs": knobs,
        "variants": _variants(knobs),
        "cache": _state["path"],
        "calibration_seconds": _state["seconds"],
    }
