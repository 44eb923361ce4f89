#!/usr/bin/env bash
# Builds the extension in build/dev and places it beside the Python sources,
# for working from a checkout with PYTHONPATH=python (pip install . is the
# real install). Extra arguments go to CMake's configure step, e.g.
# scripts/dev_build.sh -DPPLX_SANITIZE=ON. PPLX_MODULE_DIR puts the module
# elsewhere.
set -euo pipefail
cd "$(dirname "$0")/.."
build=${PPLX_BUILD_DIR:-build/dev}
cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release \
  -DSKBUILD_PROJECT_NAME=pplx_kernels -DSKBUILD_PROJECT_VERSION=0.1.0 \
  -Dpybind11_DIR="$(python3 -m pybind11 --cmakedir)" \
  -DPython_EXECUTABLE="$(command -v python3)" "$@" >/dev/null
cmake --build "$build"
# Replace atomically: another process may have the old module mapped.
dest=${PPLX_MODULE_DIR:-python/pplx_kernels}
for so in "$build"/_core*.so; do
  tmp=$dest/.$(basename "$so").$$
  cp "$so" "$tmp" && mv -f "$tmp" "$dest/$(basename "$so")"
done
