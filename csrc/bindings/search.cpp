// Bindings of the search kernels: check shapes and dtypes (the Python layer
// has already given the friendly messages), release the GIL, call the scans.
#include <string>

#include "bindings/arrays.hpp"
#include "pplx/parallel.h"
#include "pplx/search.h"

namespace pplx {
namespace {

constexpr size_t kMaxDim = 65536;  // int32 dots stay exact up to here

template <typename T>
Rows<T> rows_of(const py::array& a, const char* name) {
  auto v = view_of<const T, 2>(a, name);
  if (v.shape[1] == 0) throw arg_error(name, "rows must not be empty");
  return Rows<T>{v.data, v.shape[0], v.shape[1], v.shape[0] > 1 ? v.stride[0] : v.shape[1]};
}

template <typename T>
void check_pair(const Rows<T>& q, const Rows<T>& x, const char* qn, const char* xn) {
  if (q.dim != x.dim)
    throw arg_error(xn, "rows have " + std::to_string(x.dim) + " elements but " + qn + " rows have " +
                            std::to_string(q.dim));
  if (x.dim > kMaxDim) throw arg_error(xn, "at most 65536 elements per row are supported");
}

const float* norms_of(const py::object& obj, const char* name, size_t n, size_t dim, py::array& keep) {
  if (obj.is_none()) return nullptr;
  keep = obj.cast<py::array>();
  auto v = view_of<const float, 1>(keep, name);
  if (v.shape[0] != n) throw arg_error(name, "expected one norm per database row");
  if (n > 1 && v.stride[0] != 1) throw arg_error(name, "must be contiguous");
  check_norms(v.data, n, dim, name);
  return v.data;
}

// Candidate ids [M, C], each -1 or in [0, n_rows).
const int64_t* candidates_of(const py::object& obj, size_t m, size_t n_rows, size_t* n_cand,
                             py::array& keep) {
  if (obj.is_none()) return nullptr;
  keep = obj.cast<py::array>();
  auto v = view_of<const int64_t, 2>(keep, "candidates");
  if (v.shape[0] != m) throw arg_error("candidates", "expected one row per query");
  if (v.shape[1] == 0) throw arg_error("candidates", "expected at least one column");
  if (m > 1 && v.stride[0] != v.shape[1]) throw arg_error("candidates", "must be C-contiguous");
  for (size_t i = 0; i < m * v.shape[1]; ++i)
    if (v.data[i] < -1 || v.data[i] >= int64_t(n_rows))
      throw arg_error("candidates", "ids must be -1 (padding) or in [0, " + std::to_string(n_rows) + ")");
  *n_cand = v.shape[1];
  return v.data;
}

// row_mask: None, or uint8 [n_rows] (contiguous); not with candidates.
const uint8_t* row_mask_of(const py::object& obj, size_t n_rows, bool with_candidates,
                           py::array& keep) {
  if (obj.is_none()) return nullptr;
  if (with_candidates) throw arg_error("row_mask", "cannot be combined with candidates");
  keep = obj.cast<py::array>();
  auto v = view_of<const uint8_t, 1>(keep, "row_mask");
  if (v.shape[0] != n_rows)
    throw arg_error("row_mask", "expected one entry per database row (" + std::to_string(n_rows) + ")");
  if (n_rows > 1 && v.stride[0] != 1) throw arg_error("row_mask", "must be contiguous");
  return v.data;
}

py::array_t<float> cosine(const py::array& a, const py::array& b, const py::object& norms,
                          bool clamp, const py::object& out_obj, long threads) {
  auto q = rows_of<int8_t>(a, "a"), x = rows_of<int8_t>(b, "b");
  check_pair(q, x, "a", "b");
  py::array keep;
  const float* xn = norms_of(norms, "norms", x.rows, x.dim, keep);
  auto out = result_array<float, 2>(out_obj, "out", {q.rows, x.rows});
  float* o = out.mutable_data();
  size_t n = resolve_threads(threads);
  {
    py::gil_scoped_release release;
    cosine_matrix(q, x, xn, clamp, o, n, ArgNames{"a", "b"});
  }
  return out;
}

py::array_t<int32_t> hamming(const py::array& a, const py::array& b, const py::object& out_obj,
                             long threads) {
  auto q = rows_of<uint8_t>(a, "a"), x = rows_of<uint8_t>(b, "b");
  check_pair(q, x, "a", "b");
  auto out = result_array<int32_t, 2>(out_obj, "out", {q.rows, x.rows});
  int32_t* o = out.mutable_data();
  size_t n = resolve_threads(threads);
  {
    py::gil_scoped_release release;
    hamming_matrix(q, x, o, n);
  }
  return out;
}

py::array_t<float> norms(const py::array& xa, bool clamp, const py::object& out_obj, long threads) {
  auto x = rows_of<int8_t>(xa, "x");
  if (x.dim > kMaxDim) throw arg_error("x", "at most 65536 elements per row are supported");
  auto out = result_array<float, 1>(out_obj, "out", {x.rows});
  float* o = out.mutable_data();
  size_t n = resolve_threads(threads);
  {
    py::gil_scoped_release release;
    norms_i8(x, clamp, o, n, "x");
  }
  return out;
}

size_t check_k(long k, size_t n_rows) {
  if (k <= 0) throw arg_error("k", "expected a positive int");
  return std::min(size_t(k), n_rows);
}

py::tuple topk_cosine_py(const py::array& qa, const py::array& xa, long k,
                         const py::object& norms, const py::object& cand,
                         const py::object& mask, bool clamp,
                         const py::object& out_scores, const py::object& out_ids, long threads) {
  auto q = rows_of<int8_t>(qa, "queries"), x = rows_of<int8_t>(xa, "database");
  check_pair(q, x, "queries", "database");
  if (x.rows == 0) throw arg_error("database", "is empty");
  py::array keep_n, keep_c;
  const float* xn = norms_of(norms, "database_norms", x.rows, x.dim, keep_n);
  size_t n_cand = 0;
  const int64_t* c = candidates_of(cand, q.rows, x.rows, &n_cand, keep_c);
  py::array keep_m;
  const uint8_t* rm = row_mask_of(mask, x.rows, c != nullptr, keep_m);
  size_t kk = check_k(k, c ? n_cand : x.rows);
  auto scores = result_array<float, 2>(out_scores, "out", {q.rows, kk});
  auto ids = result_array<int64_t, 2>(out_ids, "out", {q.rows, kk});
  float* s = scores.mutable_data();
  int64_t* i = ids.mutable_data();
  size_t n = resolve_threads(threads);
  {
    py::gil_scoped_release release;
    topk_cosine(q, x, xn, kk, c, n_cand, rm, clamp, s, i, n, ArgNames{"queries", "database"});
  }
  return py::make_tuple(scores, ids);
}

py::tuple topk_hamming_py(const py::array& qa, const py::array& xa, long k, const py::object& cand,
                          const py::object& mask, const py::object& out_scores, const py::object& out_ids, long threads) {
  auto q = rows_of<uint8_t>(qa, "queries"), x = rows_of<uint8_t>(xa, "database");
  check_pair(q, x, "queries", "database");
  if (x.rows == 0) throw arg_error("database", "is empty");
  py::array keep_c;
  size_t n_cand = 0;
  const int64_t* c = candidates_of(cand, q.rows, x.rows, &n_cand, keep_c);
  py::array keep_m;
  const uint8_t* rm = row_mask_of(mask, x.rows, c != nullptr, keep_m);
  size_t kk = check_k(k, c ? n_cand : x.rows);
  auto scores = result_array<int32_t, 2>(out_scores, "out", {q.rows, kk});
  auto ids = result_array<int64_t, 2>(out_ids, "out", {q.rows, kk});
  int32_t* s = scores.mutable_data();
  int64_t* i = ids.mutable_data();
  size_t n = resolve_threads(threads);
  {
    py::gil_scoped_release release;
    topk_hamming(q, x, kk, c, n_cand, rm, s, i, n);
  }
  return py::make_tuple(scores, ids);
}

}  // namespace

void bind_search(py::module_& m) {
  // -128 in an int8 input is a ValueError that names the argument.
  static py::exception<Int8RangeError> range_error(m, "Int8RangeError", PyExc_ValueError);
  m.def("cosine", &cosine, py::arg("a"), py::arg("b"), py::arg("norms"), py::arg("clamp"),
        py::arg("out"), py::arg("threads"));
  m.def("hamming", &hamming, py::arg("a"), py::arg("b"), py::arg("out"), py::arg("threads"));
  m.def("norms", &norms, py::arg("x"), py::arg("clamp"), py::arg("out"), py::arg("threads"));
  m.def("topk_cosine", &topk_cosine_py, py::arg("queries"), py::arg("database"), py::arg("k"),
        py::arg("norms"), py::arg("candidates"), py::arg("row_mask"), py::arg("clamp"), py::arg("out_scores"),
        py::arg("out_ids"), py::arg("threads"));
  m.def("topk_hamming", &topk_hamming_py, py::arg("queries"), py::arg("database"), py::arg("k"),
        py::arg("candidates"), py::arg("row_mask"), py::arg("out_scores"), py::arg("out_ids"),
        py::arg("threads"));
}

}  // namespace pplx
