#!/usr/bin/env bash
# Runs the Python package under qemu-x86_64 user emulation on older CPU
# models, so the dispatch fallbacks run for real:
#   EPYC-Milan-v1 (AVX2, no AVX-512) -> level avx2
#   Nehalem       (SSE4.2, no AVX)   -> level scalar
# For each: cpu_info() must report that level for every kernel family, and a
# subset of the test suite that touches every family (pooling, quantize,
# bitpack, cosine, Hamming), the dispatch and the search paths, with small
# shapes, must pass. (qemu64 cannot run here: numpy 2 itself needs SSE4.2.)
# Uses the `python` on PATH and the pplx_kernels it imports (the installed
# package, or PYTHONPATH=python for a dev build). Needs Debian's qemu-user.
#
#   scripts/test_qemu_x86.sh
#   PPLX_QEMU_X86_CPUS="EPYC-Milan-v1:avx2" scripts/test_qemu_x86.sh
set -euo pipefail
cd "$(dirname "$0")/.."
QEMU=${QEMU:-qemu-x86_64}
command -v "$QEMU" >/dev/null || { echo "missing $QEMU: apt-get install -y qemu-user" >&2; exit 2; }
python=$(command -v python)
cpus=${PPLX_QEMU_X86_CPUS:-EPYC-Milan-v1:avx2 Nehalem:scalar}

subset="test_mean_pool_matches_reference or test_float16_input or test_mean_pool_spans
  or test_tanh_matches_float64_reference or test_absmax_matches_reference or test_binary
  or test_ubinary_and_fused or test_pack_float_int8_bool or test_unpack_inverts_pack
  or test_cosine_matrix or test_hamming_matrix or test_norms or test_topk_cosine
  or test_topk_hamming or test_topk_candidates or test_minus_128_raises_or_clamps
  or levels_agree or test_variants_match_across_isas or test_cpu_info
  or test_levels_follow_detected_features or test_set_isa or test_mixed_thread_counts"
subset=$(echo "$subset" | tr -s ' \n' ' ')

emulate() {  # cpu, command...: qemu's notes on host features it lacks are noise
  local cpu=$1
  shift
  "$QEMU" -cpu "$cpu" "$@" 2> >(grep -v "TCG doesn't support requested feature" >&2)
}

for entry in $cpus; do
  cpu=${entry%%:*} level=${entry##*:}
  echo "== qemu-x86_64 -cpu $cpu: expect level $level"
  emulate "$cpu" "$python" - "$level" <<'EOF'
import sys
import pplx_kernels as pk
want = sys.argv[1]
info = pk.cpu_info()
print("isa", info["isa"], "available", info["available"], "kernels", info["kernels"])
assert info["isa"] == want, f"dispatch picked {info['isa']}, expected {want}"
assert info["available"][-1] == want and "avx512" not in info["available"], info["available"]
assert set(info["kernels"].values()) == {want}, info["kernels"]
EOF
  emulate "$cpu" "$python" -m pytest -q -p no:cacheprovider \
    tests/test_pooling.py tests/test_quantize.py tests/test_bitpack.py tests/test_search.py \
    tests/test_runtime.py tests/test_concurrency.py -k "$subset"
done
