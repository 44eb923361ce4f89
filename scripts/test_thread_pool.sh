#!/usr/bin/env bash
# Builds tests/cpp/test_thread_pool.cpp with the pool under ThreadSanitizer
# and runs it: concurrent callers, nested calls, exceptions and interrupts,
# with any data race failing the run.
#
#   scripts/test_thread_pool.sh
set -euo pipefail
cd "$(dirname "$0")/.."
CXX=${CXX:-g++}
out=${PPLX_CPP_TEST_DIR:-build/cpp-test-pool}
mkdir -p "$out"
"$CXX" -std=c++17 -O1 -g -fsanitize=thread -Wall -Wextra -Icsrc/include \
  tests/cpp/test_thread_pool.cpp csrc/search/thread_pool.cpp -pthread -o "$out/test_thread_pool"
TSAN_OPTIONS=${TSAN_OPTIONS:-halt_on_error=1} "$out/test_thread_pool"
