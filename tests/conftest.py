import os

import pytest

# The kernels' speed-only knobs stay at their defaults in tests: no
# calibration (timing) and no cache written into the user's home. Tests of
# the tuner set their own environment in subprocesses.
os.environ["PPLX_KERNELS_TUNE"] = "off"

import pplx_kernels


@pytest.fixture(params=pplx_kernels.available_isas())
def isa(request):
    """Runs a test once per ISA level this machine supports, then restores
    the level that was active before."""
    before = pplx_kernels.get_isa()
    pplx_kernels.set_isa(request.param)
    try:
        yield request.param
    finally:
        pplx_kernels.set_isa(before)


@pytest.fixture
def rng(request):
    # A seed per test, so failures reproduce.
    import numpy as np
    import zlib

    return np.random.default_rng(zlib.crc32(request.node.nodeid.encode()))
