import pytest

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
