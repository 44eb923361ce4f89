#!/usr/bin/env bash
# Cross-compiles the kernel sources and tests/cpp/test_kernels.cpp for
# aarch64 with the flags CMakeLists.txt gives each file (neon.cpp: plain
# ARMv8-A, no -march; neon_dotprod.cpp: +dotprod), then runs the test under
# qemu-aarch64 user emulation on CPU models with and without the dot
# product extension, so both cosine dispatch paths run:
#   cortex-a53 (ARMv8.0: NEON, no dotprod) -> cosine = neon
#   max        (every extension qemu has)  -> cosine = neon_dotprod, and the
#                                             plain NEON cosine tested beside it
# Needs Debian's g++-aarch64-linux-gnu and qemu-user:
#   apt-get install -y g++-aarch64-linux-gnu qemu-user
#
#   scripts/test_neon_qemu.sh [test_kernels args, e.g. --tanh-sweep]
#   PPLX_QEMU_CPUS="cortex-a53 cortex-a72 neoverse-n1 max" scripts/test_neon_qemu.sh
#   SANITIZE=1 scripts/test_neon_qemu.sh      # ASan + UBSan (ASan does not
#       see NEON loads: GCC's vld1q_* are builtins it leaves uninstrumented;
#       it does check memcpy and scalar accesses)
set -euo pipefail
cd "$(dirname "$0")/.."
CXX=${CXX:-aarch64-linux-gnu-g++}
QEMU=${QEMU:-qemu-aarch64}
SYSROOT=${SYSROOT:-/usr/aarch64-linux-gnu}
out=${PPLX_CPP_TEST_DIR:-build/cpp-test-aarch64}
cpus=${PPLX_QEMU_CPUS:-cortex-a53 max}
for tool in "$CXX" "$QEMU"; do
  command -v "$tool" >/dev/null || { echo "missing $tool: apt-get install -y g++-aarch64-linux-gnu qemu-user" >&2; exit 2; }
done
common=(-std=c++17 -O2 -g -fno-math-errno -ffp-contract=off -Wall -Wextra
        -Icsrc/include -Icsrc -DPPLX_HAVE_NEON=1)
link=()
if [[ "${SANITIZE:-0}" == 1 ]]; then
  out=${out}-asan
  common+=(-fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer)
  link+=(-fsanitize=address,undefined)
  export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=0:abort_on_error=1}
  export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
fi
mkdir -p "$out"
flags_for() {
  case "$1" in
    */neon_dotprod.cpp) echo "-march=armv8.2-a+dotprod" ;;
    *) echo "" ;;
  esac
}
shopt -s nullglob
srcs=(csrc/kernels/*/scalar.cpp csrc/kernels/*/neon.cpp csrc/kernels/*/neon_dotprod.cpp
      csrc/dispatch/*.cpp tests/cpp/test_kernels.cpp)
# shellcheck source=scripts/build_cpp_test.sh
source scripts/build_cpp_test.sh
build_test_kernels "${srcs[@]}"

# The baseline files must not contain dot product instructions.
if command -v aarch64-linux-gnu-objdump >/dev/null; then
  for obj in "${objs[@]}"; do
    case "$obj" in *neon_dotprod*) continue ;; esac
    if aarch64-linux-gnu-objdump -d "$obj" | grep -qE '\s(sdot|udot)\s'; then
      echo "FAIL: $obj (built for the baseline) contains sdot/udot" >&2
      exit 1
    fi
  done
fi

status=0
for cpu in $cpus; do
  expect=neon_dotprod
  case "$cpu" in cortex-a35|cortex-a53|cortex-a57|cortex-a72|a64fx) expect=neon ;; esac
  echo "== qemu-aarch64 -cpu $cpu (expect cosine=$expect): $out/test_kernels $*"
  PPLX_TEST_EXPECT_COSINE=$expect PPLX_TEST_EXPECT_HAMMING=neon \
    "$QEMU" -cpu "$cpu" -L "$SYSROOT" "$out/test_kernels" "$@" || status=1
done
exit $status
