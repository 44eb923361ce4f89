"""Self-tuning knobs: every knob value gives the numpy reference's answers
at every ISA level; PPLX_KERNELS_TUNE off/auto/force and the cache."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import pplx_kernels as pk
from pplx_kernels import _core
from pplx_kernels.tune import ensure_tuned

# Settings that force each path: packed kernels for every query count
# (queries rather than codes packed) or never; POPCNT or pshufb for every code length; one-query rows in tiles or
# in memory order; prefetch off or far ahead.
KNOB_SETS = [
    {"cosine_packed_min_queries": 1, "hamming_packed_min_queries": 1,
     "hamming_popcnt_max_bytes": 1 << 30, "cosine_row_order": 0, "hamming_row_order": 0,
     "hamming_code_packing_min_queries": 1 << 30,
     "cosine_prefetch": 0, "hamming_prefetch": 0},
    {"cosine_packed_min_queries": 1 << 30, "hamming_packed_min_queries": 1 << 30,
     "hamming_popcnt_max_bytes": 0, "cosine_row_order": 1, "hamming_row_order": 1,
     "cosine_prefetch": 16384, "hamming_prefetch": 16384},
]


@pytest.fixture(params=range(len(KNOB_SETS)))
def knobs(request):
    # Apply the level's knobs first: the first search after set_isa would
    # otherwise reset them over the set below.
    ensure_tuned()
    for name, value in KNOB_SETS[request.param].items():
        _core.set_knob(name, value)
    try:
        yield request.param
        assert {n: _core.get_knobs()[n] for n in KNOB_SETS[request.param]} == KNOB_SETS[request.param]
    finally:
        _core.reset_knobs()


def cosine_ref(q, x):
    qf, xf = q.astype(np.float64), x.astype(np.float64)
    nq, nx = np.linalg.norm(qf, axis=1), np.linalg.norm(xf, axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        s = (qf @ xf.T) / np.outer(nq, nx)
    return np.nan_to_num(s, nan=0.0)


def hamming_ref(q, x):
    bits = np.unpackbits(q[:, None, :] ^ x[None, :, :], axis=2)
    return bits.sum(axis=2)


@pytest.mark.parametrize("m", [1, 3, 9, 17])
@pytest.mark.parametrize("width", [24, 200, 1024])
def test_every_knob_setting_matches_reference(isa, knobs, rng, m, width):
    x = rng.integers(-127, 128, (100, width), dtype=np.int8)
    q = rng.integers(-127, 128, (m, width), dtype=np.int8)
    assert np.allclose(pk.cosine(q, x), cosine_ref(q, x), atol=1e-5)
    scores, ids = pk.topk(q, x, 5)
    ref = cosine_ref(q, x)
    assert np.allclose(scores, np.take_along_axis(ref, ids, 1), atol=1e-5)
    assert np.all(scores[:, -1:] >= np.sort(ref, axis=1)[:, -5:-4] - 1e-5)

    codes = rng.integers(0, 256, (100, width // 8), dtype=np.uint8)
    qc = rng.integers(0, 256, (m, width // 8), dtype=np.uint8)
    ref_h = hamming_ref(qc, codes)
    assert np.array_equal(pk.hamming(qc, codes), ref_h)
    d, hid = pk.topk(qc, codes, 5, metric="hamming")
    order = np.lexsort((np.arange(100)[None, :].repeat(m, 0), ref_h), axis=1)[:, :5]
    assert np.array_equal(hid, order)
    assert np.array_equal(d, np.take_along_axis(ref_h, order, 1))


def test_knobs_do_not_change_results(rng):
    x = rng.integers(-127, 128, (300, 384), dtype=np.int8)
    q = rng.integers(-127, 128, (12, 384), dtype=np.int8)
    codes = pk.pack_bits(x)
    qc = pk.pack_bits(q)
    base = (pk.topk(q, x, 7), pk.topk(qc, codes, 7, metric="hamming"))
    for knob_set in KNOB_SETS:
        for name, value in knob_set.items():
            _core.set_knob(name, value)
        try:
            got = (pk.topk(q, x, 7), pk.topk(qc, codes, 7, metric="hamming"))
        finally:
            _core.reset_knobs()
        for (s0, i0), (s1, i1) in zip(base, got):
            assert np.array_equal(s0, s1) and np.array_equal(i0, i1)


def run_py(code, env):
    full = {**os.environ, **env}
    out = subprocess.run([sys.executable, "-c", code], env=full, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    return out.stdout


PROBE = """
import json, numpy as np, pplx_kernels as pk
x = np.ones((64, 32), np.int8)
pk.topk(x[:1], x, 3)
print(json.dumps(pk.cpu_info()["tuning"]))
"""


def test_tune_off_uses_defaults_and_writes_nothing(tmp_path):
    info = json.loads(run_py(PROBE, {"PPLX_KERNELS_TUNE": "off", "XDG_CACHE_HOME": str(tmp_path)}))
    assert info["source"] == "defaults"
    assert info["knobs"] == _core.knob_defaults()
    assert info["knobs"] == json.loads(run_py(
        "import json; from pplx_kernels import _core; print(json.dumps(_core.get_knobs()))",
        {"PPLX_KERNELS_TUNE": "off"}))
    assert not any(tmp_path.iterdir())


def test_tune_auto_calibrates_once_then_uses_the_cache(tmp_path):
    env = {"PPLX_KERNELS_TUNE": "auto", "XDG_CACHE_HOME": str(tmp_path)}
    first = json.loads(run_py(PROBE, env))
    assert first["source"] == "calibration"
    cache = Path(first["cache"])
    assert cache.parent == tmp_path / "pplx-kernels" and cache.exists()
    data = json.loads(cache.read_text())
    assert data["signature"]["version"] == pk.__version__
    # a build with other knobs (names, candidates or defaults) must not reuse the entry
    assert data["signature"]["knobs"] == {n: list(v) for n, v in _core.knob_candidates().items()}
    assert data["signature"]["knob_defaults"] == _core.knob_defaults()
    assert set(data["levels"]) == {pk.get_isa()}
    candidates = _core.knob_candidates()
    for name, value in data["levels"][pk.get_isa()]["knobs"].items():
        assert name in candidates
    second = json.loads(run_py(PROBE, env))
    assert second["source"] == "cache" and second["knobs"] == first["knobs"]
    assert [p.name for p in cache.parent.iterdir()] == [cache.name]  # no temporary left


def test_bad_tune_mode_is_named(tmp_path):
    out = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, timeout=60,
                         env={**os.environ, "PPLX_KERNELS_TUNE": "sometimes", "XDG_CACHE_HOME": str(tmp_path)})
    assert out.returncode != 0 and "PPLX_KERNELS_TUNE" in out.stderr


@pytest.mark.parametrize("chunk_bytes", _core.knob_candidates()["scan_chunk_bytes"])
def test_every_scan_chunk_size_matches_reference(isa, rng, chunk_bytes):
    # 6,000 rows of 256 B (1.5 MB): from 23 chunks of 64 KB down to one.
    # Blocks of repeated rows make ties, broken toward the lower id.
    block = rng.integers(-127, 128, (1500, 256), dtype=np.int8)
    x = np.concatenate([block, block[::-1], block, block[:750], block[750:]])
    q = rng.integers(-127, 128, (9, 256), dtype=np.int8)
    mask = rng.random(len(x)) < 0.7
    codes, qc = pk.pack_bits(x), pk.pack_bits(q)
    ref_c = cosine_ref(q, x)
    ref_h = hamming_ref(qc, codes)
    ids_all = np.arange(len(x))[None, :].repeat(len(q), 0)
    ensure_tuned()  # this level's knobs now, not over the one set below
    _core.set_knob("scan_chunk_bytes", chunk_bytes)
    try:
        for m in (1, 9):
            for threads in (1, 2, 4):
                d, hid = pk.topk(qc[:m], codes, 7, metric="hamming", threads=threads)
                order = np.lexsort((ids_all[:m], ref_h[:m]), axis=1)[:, :7]
                assert np.array_equal(hid, order) and np.array_equal(d, np.take_along_axis(ref_h[:m], order, 1))
                # masked rows are never returned; the rest rank as without a mask
                d, hid = pk.topk(qc[:m], codes, 7, metric="hamming", threads=threads, row_mask=mask)
                masked = np.where(mask[None, :], ref_h[:m], 1 << 30)
                order = np.lexsort((ids_all[:m], masked), axis=1)[:, :7]
                assert np.array_equal(hid, order)
                s, cid = pk.topk(q[:m], x, 7, threads=threads)
                best = np.sort(ref_c[:m], axis=1)[:, ::-1][:, :7]
                assert np.allclose(s, best, atol=1e-5)
                assert np.allclose(np.take_along_axis(ref_c[:m], cid, 1), s, atol=1e-5)
                assert (np.diff(cid, axis=1)[np.diff(s, axis=1) == 0] > 0).all(), "ties: lower id first"
        assert _core.get_knobs()["scan_chunk_bytes"] == chunk_bytes
        got = [pk.topk(q, x, 7, threads=t) for t in (1, 2, 3)]
        for s, i in got[1:]:
            assert np.array_equal(s, got[0][0]) and np.array_equal(i, got[0][1])
    finally:
        _core.reset_knobs()
