#!/usr/bin/env bash
# Runs every fuzz target for SECONDS each (default 120) against an
# ASan+UBSan build of the extension. Findings are written as crash-* files in
# fuzz/findings/; turn each into a regression test in tests/.
#   scripts/run_fuzzers.sh [SECONDS] [TARGET ...]
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-120}
shift || true
pkg=$(mktemp -d)
trap 'rm -rf "$pkg"' EXIT
mkdir -p "$pkg/pplx_kernels" fuzz/findings
cp python/pplx_kernels/*.py "$pkg/pplx_kernels/"
PPLX_BUILD_DIR=build/asan PPLX_MODULE_DIR="$pkg/pplx_kernels" scripts/dev_build.sh -DPPLX_SANITIZE=ON
# The instrumented module needs the sanitizer runtimes loaded first.
export LD_PRELOAD="$(g++ -print-file-name=libasan.so) $(g++ -print-file-name=libubsan.so)"
export ASAN_OPTIONS=detect_leaks=0:halt_on_error=1 UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1
export PYTHONPATH="$pkg:fuzz"
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
  mapfile -t targets < <(python3 -c "
import fuzz_kernels as f; f.load_extra_targets(); print('\n'.join(f.TARGETS))")
fi
[ ${#targets[@]} -gt 0 ] || { echo "no fuzz targets found" >&2; exit 2; }
status=0
for t in "${targets[@]}"; do
  echo "== $t ($seconds s)"
  python3 fuzz/fuzz_kernels.py "$t" -max_total_time="$seconds" \
    -artifact_prefix=fuzz/findings/"$t"- -print_final_stats=1 2>&1 | grep -E "^(Done|stat::number_of_executed_units|==|.*Error|.*Traceback)" || true
  if ls fuzz/findings/"$t"-* >/dev/null 2>&1; then status=1; fi
done
exit $status
