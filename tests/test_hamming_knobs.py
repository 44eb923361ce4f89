"""Every value of every Hamming knob, at every ISA level, against a plain
numpy reference on random and adversarial codes: widths of 8 to 72 bytes
in odd steps and 1024 / 2560 bits, row counts that leave partial pack
tiles and cross the search's row blocks, all-zero and all-ones codes,
equal and complementary rows, 1 to 40 queries."""

import numpy as np
import pytest

import pplx_kernels as pk
from pplx_kernels import _core
from pplx_kernels.tune import ensure_tuned

WIDTHS = [8, *range(9, 73, 6), 72, 128, 320]  # bytes
QUERY_COUNTS = [1, 2, 3, 4, 5, 7, 8, 9, 15, 16, 17, 24, 31, 32, 33, 40]
HAMMING_KNOBS = ["hamming_prefetch", "hamming_packed_min_queries", "hamming_popcnt_max_bytes",
                 "hamming_code_packing_min_queries", "hamming_row_order", "hamming_qpacked_prefetch",
                 "hamming_packed_next_prefetch"]
# Each candidate the tuner may pick, and the values that force one path for
# every query count (1: always, 1 << 30: never).
FORCING = {"hamming_packed_min_queries": [1, 1 << 30], "hamming_code_packing_min_queries": [1, 1 << 30]}


def knob_values():
    candidates = _core.knob_candidates()
    return [(name, v) for name in HAMMING_KNOBS
            for v in sorted(set(candidates[name]) | set(FORCING.get(name, [])))]


def reference(q, x):
    """Distances by unpacking every bit: independent of the kernels."""
    return np.unpackbits(q[:, None, :] ^ x[None, :, :], axis=2).sum(axis=2, dtype=np.int64)


def adversarial_codes(rng, n, width):
    """Random rows with all-zero, all-ones and repeated rows among them."""
    x = rng.integers(0, 256, (n, width), dtype=np.uint8)
    x[0] = 0
    x[n // 2] = 255
    x[-1] = 255
    x[n // 3] = x[1]
    return x


def queries_for(rng, x, m):
    """All-zero, all-ones, a database row, its complement, then random."""
    q = rng.integers(0, 256, (m, x.shape[1]), dtype=np.uint8)
    special = [np.zeros(x.shape[1], np.uint8), np.full(x.shape[1], 255, np.uint8), x[1], ~x[1]]
    for i, row in enumerate(special[:m]):
        q[i] = row
    return q


@pytest.fixture
def set_knob(isa):
    """Sets one knob after the level's defaults are applied (the first
    search call of a level resets them), restores the defaults after."""
    ensure_tuned()

    def apply(name, value):
        _core.reset_knobs()
        _core.set_knob(name, value)

    yield apply
    _core.reset_knobs()


@pytest.mark.parametrize("name,value", knob_values())
def test_hamming_knob_value_matches_reference(set_knob, rng, name, value):
    set_knob(name, value)
    for width in WIDTHS:
        x = adversarial_codes(rng, 71, width)  # 71: partial tiles of 8, 16 and 32 codes
        q_all = queries_for(rng, x, max(QUERY_COUNTS))
        ref = reference(q_all, x)
        for m in QUERY_COUNTS:
            np.testing.assert_array_equal(pk.hamming(q_all[:m], x), ref[:m],
                                          err_msg=f"{name}={value} width={width} m={m}")
    assert _core.get_knobs()[name] == value  # the searches ran under this value


@pytest.mark.parametrize("name,value", knob_values())
def test_hamming_knob_value_topk_across_row_blocks(set_knob, rng, name, value):
    """Top-k over 1001 rows (row blocks of 480 and a partial one) with
    ties, equal to the reference's order (distance, then id)."""
    set_knob(name, value)
    n = 1001
    for width in (71, 128, 320):
        x = adversarial_codes(rng, n, width)
        x[500:520] = x[2]  # ties across a block boundary
        q_all = queries_for(rng, x, 40)
        ref = reference(q_all, x)
        for m in (1, 8, 16, 17, 40):
            d, ids = pk.topk(q_all[:m], x, 10, metric="hamming")
            order = np.lexsort((np.broadcast_to(np.arange(n), (m, n)), ref[:m]), axis=1)[:, :10]
            np.testing.assert_array_equal(ids, order, err_msg=f"{name}={value} width={width} m={m}")
            np.testing.assert_array_equal(d, np.take_along_axis(ref[:m], order, 1))
    assert _core.get_knobs()[name] == value


def test_long_codes_fold_16_bit_sums(isa, rng):
    """Codes past 8190 bytes, where the AVX2 packed kernel's 16-bit sums are
    folded into 32-bit ones, with every bit different (the largest sums)."""
    x = np.zeros((40, 9000), np.uint8)
    x[1::2] = rng.integers(0, 256, (20, 9000), dtype=np.uint8)
    q = np.full((9, 9000), 255, np.uint8)
    q[1] = rng.integers(0, 256, 9000, dtype=np.uint8)
    np.testing.assert_array_equal(pk.hamming(q, x), reference(q, x))


def test_packed_query_tables_follow_the_queries(set_knob, rng):
    """The AVX2 packed kernel keeps each thread's query tables from one call
    to the next: queries changed in place (same buffer, same shape) must be
    scored afresh, and a query set whose tables are not kept (72 x 2048-byte
    codes: 4.7 MB of tables) is scored group by group."""
    set_knob("hamming_packed_min_queries", 1)
    for width, m in ((128, 16), (2048, 72)):
        x = adversarial_codes(rng, 97, width)
        q = queries_for(rng, x, m)
        for _ in range(3):
            np.testing.assert_array_equal(pk.hamming(q, x), reference(q, x), err_msg=f"width={width}")
            d, ids = pk.topk(q, x, 5, metric="hamming", threads=1)
            np.testing.assert_array_equal(d, np.sort(reference(q, x), axis=1)[:, :5])
            q[m // 2, width // 3] ^= 0x10  # one nibble of one query: only its table changes
            q[-1] = ~q[-1]
