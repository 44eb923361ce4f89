# Sourced by test_cpp_native.sh and test_neon_qemu.sh: compiles the given
# sources in parallel, each with "${common[@]}" and $(flags_for SRC), into
# $out, and links $out/test_kernels with "${link[@]}". Leaves the object
# paths in objs.
build_test_kernels() {
  objs=()
  local pids=() src obj pid
  for src in "$@"; do
    obj="$out/$(echo "${src%.cpp}" | tr / _).o"
    objs+=("$obj")
    # shellcheck disable=SC2046
    "$CXX" "${common[@]}" $(flags_for "$src") -c "$src" -o "$obj" &
    pids+=($!)
  done
  for pid in "${pids[@]}"; do wait "$pid"; done
  "$CXX" "${common[@]}" "${objs[@]}" "${link[@]}" -o "$out/test_kernels"
}
