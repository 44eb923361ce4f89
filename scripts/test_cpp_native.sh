#!/usr/bin/env bash
# Builds tests/cpp/test_kernels.cpp with the kernel sources for this x86-64
# machine (each ISA file with its own flags, as CMakeLists.txt does; never
# -march=native) and runs it: every level the CPU supports (scalar, avx2,
# avx512) against the scalar reference, bit for bit.
#
#   scripts/test_cpp_native.sh [test_kernels args, e.g. --tanh-sweep]
#   SANITIZE=1 scripts/test_cpp_native.sh     # with ASan + UBSan
#   CXX=clang++ scripts/test_cpp_native.sh
set -euo pipefail
cd "$(dirname "$0")/.."
CXX=${CXX:-g++}
out=${PPLX_CPP_TEST_DIR:-build/cpp-test-native}
mkdir -p "$out"
common=(-std=c++17 -O2 -g -fno-math-errno -ffp-contract=off -Wall -Wextra
        -Icsrc/include -Icsrc -DPPLX_HAVE_X86=1)
link=()
if [[ "${SANITIZE:-0}" == 1 ]]; then
  common+=(-fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer)
  link+=(-fsanitize=address,undefined)
  # set_isa() keeps replaced tables alive on purpose (a running call may
  # hold one): not a leak worth reporting.
  export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=0:abort_on_error=1}
  export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
fi
avx2=(-mavx2 -mfma -mf16c -mpopcnt -mbmi2)
avx512=(-mavx512f -mavx512bw -mavx512vl -mavx512dq "${avx2[@]}")
# GCC's AVX-512 headers trip -Wmaybe-uninitialized on their own "undefined"
# pass-through vectors (as in CMakeLists.txt).
if "$CXX" --version | grep -qi "gcc\|g++\|free software"; then avx512+=(-Wno-maybe-uninitialized); fi

flags_for() {
  case "$1" in
    */avx2.cpp) echo "${avx2[*]}" ;;
    */avx512.cpp) echo "${avx512[*]}" ;;
    */avx512_vnni.cpp) echo "${avx512[*]} -mavx512vnni" ;;
    */avx512_vpopcntdq.cpp) echo "${avx512[*]} -mavx512vpopcntdq" ;;
    *) echo "" ;;
  esac
}
srcs=(csrc/kernels/*/scalar.cpp csrc/kernels/*/avx2.cpp csrc/kernels/*/avx512*.cpp
      csrc/dispatch/*.cpp tests/cpp/test_kernels.cpp)
# shellcheck source=scripts/build_cpp_test.sh
source scripts/build_cpp_test.sh
build_test_kernels "${srcs[@]}"
echo "== native $(uname -m): $out/test_kernels $*"
"$out/test_kernels" "$@"
