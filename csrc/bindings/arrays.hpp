// Checked views of numpy arrays for the bindings. The Python layer gives the
// friendly messages; these checks make sure the C++ side never trusts a
// shape, dtype or stride it did not verify.
#pragma once
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <array>
#include <stdexcept>
#include <string>
#include <vector>

#include "pplx/types.h"

namespace pplx {
namespace py = pybind11;

template <typename T, size_t N>
struct View {
  T* data;
  std::array<size_t, N> shape;
  std::array<size_t, N> stride;  // in elements
};

inline py::value_error arg_error(const char* name, const std::string& what) {
  return py::value_error(std::string(name) + ": " + what);
}

// Requires dtype T, N dimensions, the last one contiguous, and the other
// strides non-negative multiples of the item size.
template <typename T, size_t N>
View<T, N> view_of(const py::array& a, const char* name, bool writable = false) {
  if (!py::isinstance<py::array_t<T>>(a) || a.dtype().itemsize() != sizeof(T))
    throw arg_error(name, "expected dtype " + std::string(py::str(py::dtype::of<T>())) + ", got " +
                              std::string(py::str(a.dtype())));
  if (size_t(a.ndim()) != N)
    throw arg_error(name, "expected " + std::to_string(N) + " dimensions, got " +
                              std::to_string(a.ndim()));
  if (writable && !a.writeable()) throw arg_error(name, "array is read-only");
  View<T, N> v;
  v.data = static_cast<T*>(const_cast<void*>(a.data()));
  if (a.size() == 0) {  // numpy may give empty arrays any strides; nothing is read
    size_t s = 1;
    for (size_t i = N; i-- > 0;) {
      v.shape[i] = size_t(a.shape(i));
      v.stride[i] = s;
      s *= v.shape[i] ? v.shape[i] : 1;
    }
    return v;
  }
  for (size_t i = 0; i < N; ++i) {
    v.shape[i] = size_t(a.shape(i));
    ssize_t s = a.strides(i);
    bool trivial = a.shape(i) <= 1;
    if (!trivial && (s < 0 || s % ssize_t(sizeof(T)) != 0))
      throw arg_error(name, "unsupported strides; pass numpy.ascontiguousarray(...)");
    v.stride[i] = trivial ? 0 : size_t(s) / sizeof(T);
  }
  if (N > 0 && v.shape[N - 1] > 1 && v.stride[N - 1] != 1)
    throw arg_error(name, "the last axis must be contiguous; pass numpy.ascontiguousarray(...)");
  if (N > 0) v.stride[N - 1] = 1;
  return v;
}

// The array a binding writes its result into: the caller's `out` when one
// was given (checked: an ndarray of dtype T and exactly `shape`, C-contiguous,
// writable), else a fresh array.
template <typename T, size_t N>
py::array_t<T> result_array(const py::object& out, const char* name,
                            const std::array<size_t, N>& shape) {
  if (out.is_none()) return py::array_t<T>(std::vector<size_t>(shape.begin(), shape.end()));
  // A non-array would be converted into a temporary copy that the caller never sees.
  if (!py::isinstance<py::array>(out)) throw py::type_error(std::string(name) + ": expected a numpy array");
  py::array a = py::reinterpret_borrow<py::array>(out);
  auto v = view_of<T, N>(a, name, /*writable=*/true);
  if (v.shape != shape) throw arg_error(name, "does not have the shape of the result");
  if (!(a.flags() & py::array::c_style)) throw arg_error(name, "must be C-contiguous");
  return py::reinterpret_borrow<py::array_t<T>>(a);
}

inline BitOrder parse_bitorder(const std::string& s) {
  if (s == "big") return BitOrder::big;
  if (s == "little") return BitOrder::little;
  throw arg_error("bitorder", "expected 'big' or 'little', got '" + s + "'");
}

}  // namespace pplx
