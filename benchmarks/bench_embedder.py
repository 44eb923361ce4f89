"""Embedder.encode against the model card's plain onnxruntime recipe.

Same model (the offline default, all-MiniLM-L6-v2 ONNX), same texts (the
Python standard library's docstrings, with their real length spread), same
thread count for both, int8 output from both; one timed run each after a
warm-up. Prints texts/s, tokens/s, the ratio, where our time goes, and
whether the outputs agree.

The plain recipe: tokenize with padding=True and truncation, run the
session, mean-pool and quantize in numpy. Tokenizing a whole corpus in one
call and running it in one session call would need memory for N x 256 x 256
attention scores, so it runs over fixed-size batches of texts in input order
(--recipe-batch), the way the recipe is applied to a corpus.

    python benchmarks/bench_embedder.py            # ~2,100 texts
    python benchmarks/bench_embedder.py --quick    # ~260 texts, smoke run
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np


def plain_recipe(texts, model_file, tokenizer_file, threads, batch, max_length):
    import onnxruntime as ort
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(tokenizer_file))
    tok.enable_padding(pad_id=0, pad_token="[PAD]")  # padding=True: to the longest in the call
    tok.enable_truncation(max_length)
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads  # the only change from the card: same threads as ours
    session = ort.InferenceSession(str(model_file), sess_options=opts, providers=["CPUExecutionProvider"])

    def run(chunk, timings):
        t0 = time.perf_counter()
        enc = tok.encode_batch(chunk)
        feeds = {"input_ids": np.array([e.ids for e in enc], dtype=np.int64),
                 "attention_mask": np.array([e.attention_mask for e in enc], dtype=np.int64),
                 "token_type_ids": np.array([e.type_ids for e in enc], dtype=np.int64)}
        t1 = time.perf_counter()
        hidden = session.run(None, feeds)[0]
        t2 = time.perf_counter()
        m = feeds["attention_mask"][:, :, None].astype(np.float32)
        pooled = (hidden * m).sum(axis=1) / np.maximum(m.sum(axis=1), 1)
        scale = 127 / np.maximum(np.abs(pooled).max(axis=1, keepdims=True), 1e-30)
        codes = np.rint(pooled * scale).astype(np.int8)
        t3 = time.perf_counter()
        timings["tokenize"] += t1 - t0
        timings["model"] += t2 - t1
        timings["pool+quantize"] += t3 - t2
        timings["padded_tokens"] += feeds["input_ids"].size
        return pooled, codes

    def encode(all_texts):
        timings = dict.fromkeys(("tokenize", "model", "pool+quantize", "padded_tokens"), 0)
        parts = [run(all_texts[i:i + batch], timings) for i in range(0, len(all_texts), batch)]
        return np.concatenate([p for p, _ in parts]), np.concatenate([c for _, c in parts]), timings

    return encode


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="smoke run on ~260 texts")
    ap.add_argument("--stride", type=int, default=3, help="take every n-th docstring (default 3)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--batch-tokens", type=int, default=None, help="Embedder batch_tokens (default: its own)")
    ap.add_argument("--recipe-batch", type=int, default=32, help="texts per call of the plain recipe")
    ap.add_argument("--pin", action="store_true", help="pin the process to the first --threads CPUs")
    args = ap.parse_args()
    if args.pin:
        os.sched_setaffinity(0, sorted(os.sched_getaffinity(0))[: args.threads])

    from pplx_kernels import _default_model, set_num_threads
    from pplx_kernels.corpus import stdlib_docstrings
    from pplx_kernels.embedder import Embedder

    set_num_threads(args.threads)
    stride = 25 if args.quick else args.stride
    texts = [d["text"] for d in stdlib_docstrings()[::stride]]
    kwargs = {} if args.batch_tokens is None else {"batch_tokens": args.batch_tokens}
    emb = Embedder(threads=args.threads, **kwargs)
    model_file, tokenizer_file = _default_model.default_model_files()
    recipe = plain_recipe(texts, model_file, tokenizer_file, args.threads, args.recipe_batch, emb.max_length)

    # Warm-up: first-call allocations and graph setup in both sessions.
    emb.encode(texts[:8])
    recipe(texts[:8])

    t0, c0 = time.perf_counter(), time.process_time()
    codes, bits = emb.encode_fused(texts)
    t_ours, c_ours = time.perf_counter() - t0, time.process_time() - c0
    ours = dict(emb.last_timings)
    pooled = emb.encode(texts, "float")  # untimed, for the output comparison

    t0, c0 = time.perf_counter(), time.process_time()
    ref_pooled, ref_codes, theirs = recipe(texts)
    t_recipe, c_recipe = time.perf_counter() - t0, time.process_time() - c0

    tokens = ours["tokens"]
    cos = (pooled * ref_pooled).sum(1) / np.linalg.norm(pooled, axis=1) / np.linalg.norm(ref_pooled, axis=1)
    same_int8 = float(np.mean(codes == ref_codes))
    same_bits = float(np.mean(bits == np.packbits(ref_pooled >= 0, axis=1)))

    print(f"model: {emb.name}, dim {emb.dim}, max_length {emb.max_length}, threads {args.threads}, "
          f"batch_tokens {emb.batch_tokens}, recipe batch {args.recipe_batch}")
    print(f"corpus: {len(texts)} stdlib docstrings, {tokens} tokens "
          f"(per text: median {np.median([len(t) for t in texts]):.0f} chars, max {max(len(t) for t in texts)})")
    print(f"{'':14}{'seconds':>9}{'texts/s':>10}{'tokens/s':>10}")
    for name, t in (("Embedder", t_ours), ("plain recipe", t_recipe)):
        print(f"{name:14}{t:9.2f}{len(texts) / t:10.1f}{tokens / t:10.0f}")
    print(f"ratio (Embedder / plain recipe throughput): {t_recipe / t_ours:.2f}x "
          f"(CPU seconds {c_ours:.1f} vs {c_recipe:.1f}: {c_recipe / c_ours:.2f}x, less sensitive to a busy machine)")
    other = t_ours - ours["tokenize"] - ours["model"] - ours["pool"] - ours["quantize"]
    print("Embedder time: " + ", ".join(
        f"{k} {ours[k]:.3f}s ({100 * ours[k] / t_ours:.1f}%)" for k in ("tokenize", "model", "pool", "quantize"))
        + f", batching/other {other:.3f}s; padded tokens {ours['padded_tokens']} = "
        f"{ours['padded_tokens'] / tokens:.2f}x the real ones")
    print("recipe time:   " + ", ".join(
        f"{k} {theirs[k]:.3f}s ({100 * theirs[k] / t_recipe:.1f}%)" for k in ("tokenize", "model", "pool+quantize"))
        + f"; padded tokens {theirs['padded_tokens']} = {theirs['padded_tokens'] / tokens:.2f}x the real ones")
    print(f"outputs: float cosine min {cos.min():.7f}, int8 identical {100 * same_int8:.4f}%, "
          f"sign bits identical {100 * same_bits:.4f}%")


if __name__ == "__main__":
    main()
