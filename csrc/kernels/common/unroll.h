// unroll<N>(f) calls f(I) for I = 0 .. N-1 with I a compile-time constant.
// Register tiles index their accumulator arrays through it: GCC keeps an
// array of vectors in registers only when every index is a constant before
// its scalar-replacement pass runs, which a plain loop (unrolled later) is not.
#pragma once
#include <cstddef>
#include <type_traits>
#include <utility>

namespace pplx {
namespace {

template <typename F, size_t... I>
inline __attribute__((always_inline)) void unroll_impl(F&& f, std::index_sequence<I...>) {
  (f(std::integral_constant<int, int(I)>{}), ...);
}

template <int N, typename F>
inline __attribute__((always_inline)) void unroll(F&& f) {
  unroll_impl(f, std::make_index_sequence<size_t(N)>{});
}

}  // namespace
}  // namespace pplx
