#!/usr/bin/env bash
# Builds the extension with AddressSanitizer + UndefinedBehaviorSanitizer and
# runs the test suite against it (any report aborts the run). The package is
# assembled in a temporary directory, so the normal build is left alone.
# Arguments go to pytest, e.g. scripts/run_sanitized_tests.sh tests/test_quantize.py
set -euo pipefail
cd "$(dirname "$0")/.."
pkg=$(mktemp -d)
trap 'rm -rf "$pkg"' EXIT
# The whole package (subpackages and data files too); the build below
# replaces any compiled module copied with it.
cp -r python/pplx_kernels "$pkg/"
PPLX_BUILD_DIR=build/asan PPLX_MODULE_DIR="$pkg/pplx_kernels" scripts/dev_build.sh -DPPLX_SANITIZE=ON
# Python itself is not instrumented: preload the runtimes, ignore its leaks.
export LD_PRELOAD="$(g++ -print-file-name=libasan.so) $(g++ -print-file-name=libubsan.so)"
export ASAN_OPTIONS=detect_leaks=0:abort_on_error=1:halt_on_error=1
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
export PYTHONPATH="$pkg"
python3 -m pytest -q -p no:cacheprovider "${@:-tests}"
