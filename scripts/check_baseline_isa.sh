#!/usr/bin/env bash
# Dispatch hygiene on x86-64: a SIGILL on an older CPU must be impossible by
# construction. Builds the extension (or takes the objects of BUILD_DIR, e.g.
# build/dev) and fails when
#  1. a baseline object (every unit except csrc/kernels/*/avx2*.cpp and
#     csrc/kernels/*/avx512*.cpp) holds an AVX or AVX-512 instruction: a
#     VEX/EVEX encoding, a ymm/zmm/mask register, a BMI or POPCNT opcode;
#  2. an ISA object defines a weak or global symbol that another object also
#     defines, or a weak one that another object uses: the linker keeps one
#     copy (perhaps the AVX-512 one) for every caller, e.g. a
#     std::vector<unsigned char>::_M_default_append instantiated in an
#     AVX-512 unit and called from baseline code.
#
#   scripts/check_baseline_isa.sh [BUILD_DIR]
set -euo pipefail
cd "$(dirname "$0")/.."

case "$(uname -m)" in x86_64 | amd64) ;; *) echo "check_baseline_isa: x86-64 only, skipped on $(uname -m)"; exit 0 ;; esac
build=${1:-}
if [[ -z $build ]]; then
  tmp=$(mktemp -d)
  trap 'rm -rf "$tmp"' EXIT
  build=$tmp/build
  PPLX_BUILD_DIR=$build PPLX_MODULE_DIR=$build scripts/dev_build.sh >/dev/null
fi
objdir=$build/CMakeFiles/_core.dir
[[ -d $objdir/csrc ]] || { echo "check_baseline_isa: no objects under $objdir" >&2; exit 2; }

isa_objs=() base_objs=()
while IFS= read -r obj; do
  if [[ $obj =~ /csrc/kernels/[^/]+/avx(2|512)[^/]*\.cpp\.o$ ]]; then isa_objs+=("$obj"); else base_objs+=("$obj"); fi
done < <(find "$objdir/csrc" -name '*.o' | sort)
(( ${#isa_objs[@]} > 0 && ${#base_objs[@]} > 0 )) || { echo "check_baseline_isa: expected ISA and baseline objects in $objdir" >&2; exit 2; }
echo "check_baseline_isa: ${#base_objs[@]} baseline objects, ${#isa_objs[@]} ISA objects"
status=0

# 1. Wide instructions in baseline code. objdump -w prints one instruction a
# line: address, raw bytes, mnemonic and operands, tab-separated.
for obj in "${base_objs[@]}"; do
  bad=$(objdump -d -w --insn-width=15 "$obj" | awk -F'\t' '
    /^[0-9a-f]+ <.*>:$/ { fn = $0; sub(/^[0-9a-f]+ /, "", fn); sub(/:$/, "", fn); next }
    NF < 3 { next }
    {
      n = split($2, b, " "); i = 1
      while (i <= n && b[i] ~ /^(66|67|f0|f2|f3|2e|36|3e|26|64|65)$/) i++   # legacy prefixes
      insn = $3; sub(/^ +/, "", insn); split(insn, words, /[ ,]+/); op = words[1]
      vex = (b[i] == "c4" || b[i] == "c5" || b[i] == "62")   # VEX / EVEX in 64-bit mode
      wide = insn ~ /%[yz]mm[0-9]|%k[0-7]([^0-9]|$)/
      gpr = op ~ /^(popcnt|andn|bextr|blsi|blsmsk|blsr|bzhi|mulx|pdep|pext|rorx|sarx|shlx|shrx)[wlq]?$/
      if (vex || wide || gpr) print fn " " insn
    }' | c++filt | head -5)
  if [[ -n $bad ]]; then
    echo "FAIL: ${obj#"$objdir"/} (baseline) holds AVX/AVX-512 instructions:"
    echo "$bad" | sed 's/^/    /'
    status=1
  fi
done

# 2. Symbols an ISA object shares with another object. One table of every
# object's external symbols: object, name, nm type (U: used, not defined).
symbols=$(for o in "${base_objs[@]}" "${isa_objs[@]}"; do
  nm -P "$o" | awk -v o="$o" '$2 ~ /^[TDRBWVuiUw]$/ { print o, $1, $2 }'
done)
for obj in "${isa_objs[@]}"; do
  shared=$(echo "$symbols" | awk -v me="$obj" '
    $1 == me && $3 ~ /[TDRBWVui]/ { mine[$2] = ($3 ~ /[WVui]/) ? "weak" : "global"; next }
    $1 != me { other[$2] = other[$2] ($3 ~ /[Uw]/ ? "u" : "d") }
    END {
      for (s in mine) if ((s in other) && (other[s] ~ /d/ || mine[s] == "weak"))
        print s " (" mine[s] " here, " (other[s] ~ /d/ ? "defined" : "used") " elsewhere)"
    }' | c++filt | sort -u | head -5)
  if [[ -n $shared ]]; then
    echo "FAIL: ${obj#"$objdir"/} shares symbols the linker may resolve to its copy:"
    echo "$shared" | sed 's/^/    /'
    status=1
  fi
done

(( status == 0 )) && echo "check_baseline_isa: ok"
exit $status
