"""One data path from text to index rows: the embedder quantizes once (int8
codes and sign bits of the same floats) and the index stores that; and the
streaming build's library API (index/build.py) on tiny models."""

from __future__ import annotations

import numpy as np
import pytest

import pplx_kernels as pk
from pplx_kernels.embedder import Embedder
from pplx_kernels.index.build import build_index

import tiny_models as tm

TEXTS = tm.random_texts(80, seed=7)


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    root, _ = tm.make_model_dir(tmp_path_factory.mktemp("plain"), layout="plain", style="bert")
    return root


def stored(index: pk.Index, ids) -> tuple:
    """(int8 codes, packed sign bits) the index holds for ids. The bits
    have no public accessor: read them from the published state."""
    state = index._state
    return index.get(ids), state.gather(index._positions(np.asarray(ids, np.int64), state), "bits")


def test_quantized_rows_equal_float_rows(model):
    emb = Embedder(model)
    floats = emb.encode(TEXTS, "float")
    from_floats = pk.Index(emb.dim, scheme=emb.scheme)
    from_floats.add(floats)
    from_embedder = pk.Index(emb.dim, scheme=emb.scheme)
    from_embedder.add(emb.encode_fused(TEXTS))
    ids = np.arange(len(TEXTS))
    codes, bits = stored(from_embedder, ids)
    np.testing.assert_array_equal(codes, pk.quantize(floats, "int8", scheme=emb.scheme))
    np.testing.assert_array_equal(bits, np.packbits(floats >= 0, axis=1))  # the floats' signs
    want_codes, want_bits = stored(from_floats, ids)
    np.testing.assert_array_equal(codes, want_codes)
    np.testing.assert_array_equal(bits, want_bits)


def test_int8_alone_loses_the_signs_quantized_keeps():
    # Why Index.add takes a Quantized: a value whose code rounds to 0 has
    # a sign the int8 codes no longer carry.
    floats = np.array([[1.0, -0.001, 0.5, -0.002, -1.0, 0.003, 0.2, -0.3, 0.001]], np.float32)
    codes, bits = pk.quantize_fused(floats, scheme="absmax")
    assert codes[0, 1] == 0 and codes[0, 3] == 0
    as_int8 = pk.Index(9, scheme="absmax")
    as_int8.add(codes)
    as_quantized = pk.Index(9, scheme="absmax")
    as_quantized.add(pk.Quantized(codes, bits, "absmax"))
    np.testing.assert_array_equal(stored(as_quantized, [0])[1], np.packbits(floats >= 0, axis=1))
    assert not np.array_equal(stored(as_int8, [0])[1], stored(as_quantized, [0])[1])


def test_quantized_with_another_scheme_or_bitorder_is_refused(model):
    emb = Embedder(model, scheme="tanh")
    index = pk.Index(emb.dim, scheme="absmax")
    with pytest.raises(ValueError, match="vectors: quantized with scheme 'tanh', but the index's scheme is 'absmax'"):
        index.add(emb.encode_fused(TEXTS[:3]))
    with pytest.raises(ValueError, match="vectors: the index stores bits MSB first"):
        pk.Index(emb.dim, scheme="tanh").add(emb.encode_fused(TEXTS[:3], bitorder="little"))
    with pytest.raises(ValueError, match="vectors: expected vectors of 24 dimensions"):
        pk.Index(emb.dim, scheme="tanh").add(emb.encode_fused(TEXTS[:3], dimensions=16))
    assert len(index) == 0


def test_build_stores_the_embedders_rows_and_documents(model, tmp_path):
    docs = [{"id": 100 + 3 * i, "title": None if i % 2 else f"T{i}", "text": t} for i, t in enumerate(TEXTS)]
    stats = build_index(iter(docs), tmp_path / "ix", model=model, commit_every=16, batch_docs=10,
                        progress=False)
    assert stats["count"] == stats["total"] == len(docs) and stats["skipped"] == 0
    emb = Embedder(model)
    want = emb.encode_fused([f"{d['title']}\n{d['text']}" if d["title"] else d["text"] for d in docs])
    with pk.Index.load(tmp_path / "ix") as index:
        ids = [d["id"] for d in docs]
        assert sorted(index.ids.tolist()) == ids  # the corpus's integer ids
        codes, bits = stored(index, ids)
        np.testing.assert_array_equal(codes, want.codes)
        np.testing.assert_array_equal(bits, want.bits)
        assert index.documents(ids) == docs
        assert index.scheme == emb.scheme and index.model == emb.model_info()

    # Resuming a complete build adds nothing.
    again = build_index(iter(docs), tmp_path / "ix", model=model, resume=True, progress=False)
    assert again["count"] == 0 and again["skipped"] == len(docs)


def test_build_refuses_what_would_mix_two_indexes(model, tmp_path):
    docs = [{"id": i, "title": None, "text": t} for i, t in enumerate(TEXTS[:20])]
    build_index(docs, tmp_path / "ix", model=model, progress=False)
    with pytest.raises(ValueError, match="out: .* already holds an index or other files; pass --resume"):
        build_index(docs, tmp_path / "ix", model=model, progress=False)
    other, _ = tm.make_model_dir(tmp_path / "other", layout="plain", style="bert", seed=1)
    with pytest.raises(ValueError, match="out: the index in .* was built with model"):
        build_index(docs, tmp_path / "ix", model=other, resume=True, progress=False)
    with pytest.raises(ValueError, match="lacks document 19 .*built from another corpus"):
        build_index([{**d, "id": d["id"] + 1000} if i == 19 else d for i, d in enumerate(docs)],
                    tmp_path / "ix", model=model, resume=True, progress=False)
    assert len(pk.Index.load(tmp_path / "ix")) == 20


def test_build_ids_must_all_be_integers_or_none(model, tmp_path):
    docs = [{"id": 1, "title": None, "text": "w1"}, {"id": "two", "title": None, "text": "w2"}]
    with pytest.raises(ValueError, match="corpus: document 1 has id 'two', but the first document's id is an integer"):
        build_index(docs, tmp_path / "a", model=model, progress=False)
    rows = build_index(list(reversed(docs)), tmp_path / "b", model=model, progress=False)
    assert rows["total"] == 2
    with pk.Index.load(tmp_path / "b") as index:  # string first: row numbers
        assert index.documents([0, 1]) == list(reversed(docs))
    with pytest.raises(ValueError, match="commit_every: expected a positive int"):
        build_index(docs, tmp_path / "c", model=model, commit_every=0)
