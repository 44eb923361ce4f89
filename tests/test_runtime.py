"""CPU dispatch, the PPLX_KERNELS_ISA cap and the thread setting."""

import os
import subprocess
import sys

import pytest

import pplx_kernels as pk


def run_python(code, **env):
    full_env = dict(os.environ, **env)
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=full_env, timeout=120)


def test_cpu_info_reports_levels_and_kernels():
    info = pk.cpu_info()
    assert info["isa"] in info["available"]
    assert info["available"][0] == "scalar"
    assert set(info["available"]) <= set(info["compiled"])
    for family in ("pooling", "quantize", "bitpack"):
        assert info["kernels"][family] in info["available"]
    assert info["threads"] == pk.get_num_threads() >= 1


def test_levels_follow_detected_features():
    f = pk.cpu_info()["features"]
    avail = pk.available_isas()
    assert ("avx2" in avail) == (f["avx2"] and f["fma"] and f["f16c"] and f["os_avx"])
    assert ("avx512" in avail) == (
        "avx2" in avail and f["avx512f"] and f["avx512bw"] and f["avx512vl"] and f["avx512dq"] and f["os_avx512"]
    )


def test_set_isa_changes_the_variants_in_use():
    before = pk.get_isa()
    try:
        for level in pk.available_isas():
            pk.set_isa(level)
            assert pk.get_isa() == level
            kernels = pk.cpu_info()["kernels"]
            # a family uses its best variant at or below the level
            order = ["scalar", "avx2", "avx512"]
            for family, variant in kernels.items():
                base = variant.split("_")[0]  # e.g. avx512_vnni: an AVX-512 variant using VNNI
                assert order.index(base) <= order.index(level), (family, variant, level)
            if level == "scalar":
                assert set(kernels.values()) == {"scalar"}
            if level == "avx2":
                assert kernels["quantize"] == "avx2"
    finally:
        pk.set_isa(before)


def test_set_isa_rejects_unknown_and_unsupported():
    with pytest.raises(ValueError, match="^name: "):
        pk.set_isa("sse9")
    unsupported = [lvl for lvl in ("avx2", "avx512", "neon") if lvl not in pk.available_isas()]
    for level in unsupported:
        with pytest.raises(ValueError, match=f"^name: level '{level}' is not supported"):
            pk.set_isa(level)


@pytest.mark.parametrize("level", pk.available_isas())
def test_env_var_caps_the_level(level):
    r = run_python("import pplx_kernels as p; print(p.get_isa(), p.cpu_info()['kernels']['quantize'])", PPLX_KERNELS_ISA=level)
    assert r.returncode == 0, r.stderr
    got_level, quantize_variant = r.stdout.split()
    assert got_level == level
    assert quantize_variant in pk.available_isas()


def test_env_var_unknown_value_fails_import():
    r = run_python("import pplx_kernels", PPLX_KERNELS_ISA="avx9000")
    assert r.returncode != 0
    assert "PPLX_KERNELS_ISA" in r.stderr and "avx9000" in r.stderr


def test_env_var_unsupported_value_fails_import():
    missing = [lvl for lvl in ("avx2", "avx512", "neon") if lvl not in pk.available_isas()]
    r = run_python("import pplx_kernels", PPLX_KERNELS_ISA=missing[0])
    assert r.returncode != 0
    assert "PPLX_KERNELS_ISA" in r.stderr and "not support" in r.stderr


def test_num_threads_setting_and_env():
    before = pk.get_num_threads()
    try:
        pk.set_num_threads(3)
        assert pk.get_num_threads() == 3
        pk.set_num_threads(None)
        assert pk.get_num_threads() == before
        with pytest.raises(ValueError, match="^n: "):
            pk.set_num_threads(0)
    finally:
        pk.set_num_threads(before)
    r = run_python("import pplx_kernels as p; print(p.get_num_threads())", PPLX_KERNELS_NUM_THREADS="5")
    assert r.stdout.strip() == "5", r.stderr


def test_kernels_work_in_forked_child():
    code = """
import os, numpy as np, pplx_kernels as p
x = np.random.default_rng(0).standard_normal((4000, 256)).astype(np.float32)
a = p.quantize(x, threads=2)
pid = os.fork()
if pid == 0:
    b = p.quantize(x, threads=2)
    os._exit(0 if (a == b).all() else 3)
_, status = os.waitpid(pid, 0)
print(os.waitstatus_to_exitcode(status))
"""
    r = run_python(code)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "0"
