"""Coverage-guided fuzzing (atheris) of the public kernels: arbitrary dtypes,
shapes, strides, values and arguments. A clean TypeError or ValueError is the
only acceptable failure; a crash, a hang, any other exception or a result
that disagrees with numpy is a finding.

    python fuzz/fuzz_kernels.py TARGET -max_total_time=120
    (TARGET: pooling, quantize, bitpack, out, search, index; see scripts/run_fuzzers.sh)
"""

from __future__ import annotations

import sys

import atheris

with atheris.instrument_imports():
    import numpy as np

    import pplx_kernels as pk
    from arrays import ArrayMaker, call

def fuzz_pooling(m: ArrayMaker):
    if m.int(0, 1):
        hidden = m.array(m.shape(3, 40), m.dtype(np.float32))
        mask_shape = hidden.shape[:2] if m.int(0, 3) else m.shape(2, 40)
        mask = m.array(mask_shape, m.dtype(np.int64))
        out = call(pk.mean_pool, hidden, mask, threads=m.threads())
        if out is not None and hidden.dtype in (np.float32, np.float16):
            keep = (mask != 0)[:, :, None]
            counts = keep.sum(1)
            # masked-out tokens are never read: NaN or Inf there must not matter
            ref = np.where(keep, hidden.astype(np.float64), 0.0).sum(1) / np.maximum(counts, 1)
            # float32 sums: error relative to the largest term pooled (NaN or Inf
            # elsewhere, in masked-out tokens, is never read)
            pooled = np.where(keep, np.abs(hidden.astype(np.float64)), 0.0)
            scale = pooled.max() if pooled.size else 1.0
            assert np.allclose(out, ref, rtol=1e-4, atol=1e-5 * max(scale, 1.0)), "mean_pool differs from numpy"
    else:
        hidden = m.array(m.shape(2, 60), m.dtype(np.float32))
        spans = m.array(m.shape(2, 6), m.dtype(np.int64))
        call(pk.mean_pool_spans, hidden, spans, threads=m.threads())


def fuzz_quantize(m: ArrayMaker):
    x = m.array(m.shape(m.int(0, 3), 80), m.dtype(np.float32))
    quantization = m.pick(["int8", "binary", "ubinary", "int4", None])
    scheme = m.pick(["tanh", "absmax", "other"])
    bitorder = m.pick(["big", "little", "x"])
    dimensions = m.pick([None, None, 1, 7, 0, 100, -1, 2.5])
    out = call(pk.quantize, x, quantization, scheme=scheme, dimensions=dimensions, bitorder=bitorder, threads=m.threads())
    if out is not None and x.dtype == np.float32 and x.ndim == 2 and dimensions is None:
        if quantization == "int8" and scheme == "tanh":
            ref = np.clip(np.rint(127.0 * np.tanh(x.astype(np.float64))), -127, 127).astype(np.int8)
            assert np.array_equal(out, ref), "tanh int8 differs from float64 formula"
        if quantization == "ubinary":
            assert np.array_equal(out, np.packbits(x >= 0, axis=1, bitorder=bitorder)), "ubinary differs"
    call(pk.quantize_fused, x, scheme=scheme, dimensions=dimensions, bitorder=bitorder, threads=m.threads())


def fuzz_bitpack(m: ArrayMaker):
    x = m.array(m.shape(m.int(0, 3), 130), m.dtype(np.int8))
    bitorder = m.pick(["big", "little", "BIG"])
    packed = call(pk.pack_bits, x, bitorder=bitorder, threads=m.threads())
    if packed is not None and x.ndim == 2 and x.dtype == np.int8:
        assert np.array_equal(packed, np.packbits(x >= 0, axis=1, bitorder=bitorder)), "pack_bits differs"
    bits = m.array(m.shape(m.int(0, 3), 20), m.dtype(np.uint8))
    dim = m.pick([m.int(0, 170), 8 * (bits.shape[-1] if bits.ndim else 1), -3, "8"])
    out = call(pk.unpack_bits, bits, dim, bitorder=bitorder, signed=bool(m.int(0, 1)), threads=m.threads())
    if out is not None and bits.ndim == 2:
        ref = np.unpackbits(bits, axis=1, bitorder=bitorder)[:, :dim]
        assert np.array_equal(out != 0, ref != 0) or np.array_equal(out == 1, ref == 1), "unpack_bits differs"


def out_buffer(m: ArrayMaker, like, inputs):
    """A buffer for out=: mostly right, else any dtype, shape or layout, or a
    view of an input's memory (which must be refused)."""
    choice = m.int(0, 4)
    source = m.pick(inputs)
    if choice == 0 and source.size and source.flags.c_contiguous:
        raw = source.reshape(-1).view(np.uint8)
        n = like.size * like.dtype.itemsize
        if raw.size >= n:
            return raw[:n].view(like.dtype).reshape(like.shape)
    if choice == 1:
        return m.layout(np.zeros(like.shape, like.dtype))
    if choice == 2:
        return np.zeros(m.shape(like.ndim, 70), m.dtype(like.dtype))
    return np.full(like.shape, 99, like.dtype)


def fuzz_out(m: ArrayMaker):
    x = m.array(m.shape(m.int(1, 2), 80), m.dtype(np.float32))
    q = m.array(m.shape(2, 40), m.dtype(np.int8))
    hidden = m.array(m.shape(3, 20), m.dtype(np.float32))
    quantization = m.pick(["int8", "binary", "ubinary"])
    threads = m.threads()
    fn = m.pick([
        lambda **o: pk.quantize(x, quantization, threads=threads, **o),
        lambda **o: pk.pack_bits(x, threads=threads, **o),
        lambda **o: pk.cosine(q, q, threads=threads, **o),
        lambda **o: pk.norms(q, threads=threads, **o),
        lambda **o: pk.mean_pool(hidden, None, threads=threads, **o),
    ])
    fresh = call(fn)
    if fresh is None:
        return
    buf = out_buffer(m, fresh, [x, q, hidden])
    got = call(fn, out=buf)
    if got is None:
        return
    assert got is buf, "out= did not return the buffer"
    assert buf.dtype == fresh.dtype and buf.shape == fresh.shape, "out= of the wrong kind was accepted"
    assert np.array_equal(buf, fresh, equal_nan=buf.dtype.kind == "f"), "out= differs from a fresh result"


TARGETS = {"pooling": fuzz_pooling, "quantize": fuzz_quantize, "bitpack": fuzz_bitpack, "out": fuzz_out}


def load_extra_targets():
    # search and index targets live in their own modules, added when those exist
    try:
        from fuzz_search import TARGETS as more

        TARGETS.update(more)
    except ImportError:
        pass


def main():
    load_extra_targets()
    name = sys.argv[1] if len(sys.argv) > 1 and not sys.argv[1].startswith("-") else None
    if name not in TARGETS:
        sys.exit(f"usage: fuzz_kernels.py TARGET [libFuzzer options]; TARGET is one of {sorted(TARGETS)}")
    target = TARGETS[name]
    isas = pk.available_isas()

    def one_input(data: bytes):
        fdp = atheris.FuzzedDataProvider(data)
        pk.set_isa(isas[fdp.ConsumeIntInRange(0, len(isas) - 1)])
        target(ArrayMaker(fdp))

    atheris.Setup([sys.argv[0]] + sys.argv[2:], one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
