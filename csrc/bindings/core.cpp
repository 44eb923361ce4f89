// Bindings of mean pooling, quantization and bit packing: check, release the
// GIL, call the batch operation, return the result (in `out` when given).
#include "bindings/arrays.hpp"
#include "pplx/ops.h"
#include "pplx/parallel.h"

namespace pplx {
namespace {

py::array_t<float> mean_pool(const py::array& hidden, const py::object& mask_obj,
                             const py::object& out_obj, long threads) {
  bool f16 = hidden.dtype().kind() == 'f' && hidden.dtype().itemsize() == 2;
  View<const uint16_t, 3> h16{};
  View<const float, 3> h32{};
  const void* data;
  std::array<size_t, 3> shape, stride;
  if (f16) {
    if (hidden.ndim() != 3) throw arg_error("hidden", "expected 3 dimensions");
    h16 = view_of<const uint16_t, 3>(py::array(hidden.attr("view")("uint16")), "hidden");
    data = h16.data, shape = h16.shape, stride = h16.stride;
  } else {
    h32 = view_of<const float, 3>(hidden, "hidden");
    data = h32.data, shape = h32.shape, stride = h32.stride;
  }
  const uint8_t* mask = nullptr;
  py::array mask_arr;
  if (!mask_obj.is_none()) {
    mask_arr = mask_obj.cast<py::array>();
    auto m = view_of<const uint8_t, 2>(mask_arr, "attention_mask");
    if (m.shape[0] != shape[0] || m.shape[1] != shape[1])
      throw arg_error("attention_mask", "shape must be hidden.shape[:2]");
    if (m.shape[0] * m.shape[1] > 0 && (m.stride[0] != m.shape[1] && m.shape[0] > 1))
      throw arg_error("attention_mask", "must be C-contiguous");
    mask = m.data;
  }
  auto out = result_array<float, 2>(out_obj, "out", {shape[0], shape[2]});
  float* o = out.mutable_data();
  size_t n = resolve_threads(threads);
  {
    py::gil_scoped_release release;
    mean_pool_batch(data, f16, shape[0], shape[1], shape[2], stride[0], stride[1], mask, o, n);
  }
  return out;
}

py::array_t<float> pool_spans(const py::array& hidden, const py::array& spans_arr,
                              const py::object& out_obj, long threads) {
  bool f16 = hidden.dtype().kind() == 'f' && hidden.dtype().itemsize() == 2;
  View<const uint16_t, 2> h16{};
  View<const float, 2> h32{};
  const void* data;
  std::array<size_t, 2> shape, stride;
  if (f16) {
    if (hidden.ndim() != 2) throw arg_error("hidden", "expected 2 dimensions");
    h16 = view_of<const uint16_t, 2>(py::array(hidden.attr("view")("uint16")), "hidden");
    data = h16.data, shape = h16.shape, stride = h16.stride;
  } else {
    h32 = view_of<const float, 2>(hidden, "hidden");
    data = h32.data, shape = h32.shape, stride = h32.stride;
  }
  auto sp = view_of<const int64_t, 2>(spans_arr, "spans");
  if (sp.shape[1] != 2) throw arg_error("spans", "expected shape [n, 2]");
  if (sp.shape[0] > 1 && sp.stride[0] != 2) throw arg_error("spans", "must be C-contiguous");
  for (size_t i = 0; i < sp.shape[0]; ++i) {
    int64_t s = sp.data[2 * i], e = sp.data[2 * i + 1];
    if (s < 0 || e < s || size_t(e) > shape[0])
      throw arg_error("spans", "span " + std::to_string(i) + " = [" + std::to_string(s) + ", " +
                                   std::to_string(e) + ") is not within [0, " +
                                   std::to_string(shape[0]) + "] with start <= end");
  }
  auto out = result_array<float, 2>(out_obj, "out", {sp.shape[0], shape[1]});
  float* o = out.mutable_data();
  size_t n = resolve_threads(threads);
  {
    py::gil_scoped_release release;
    mean_pool_spans(data, f16, shape[1], stride[0], sp.data, sp.shape[0], o, n);
  }
  return out;
}

py::tuple quantize_i8(const py::array& x_arr, const std::string& scheme, bool with_bits,
                      const std::string& bitorder, const py::object& out_codes,
                      const py::object& out_bits, long threads) {
  auto x = view_of<const float, 2>(x_arr, "x");
  Int8Scheme s;
  if (scheme == "tanh") s = Int8Scheme::tanh;
  else if (scheme == "absmax") s = Int8Scheme::absmax;
  else throw arg_error("scheme", "expected 'tanh' or 'absmax', got '" + scheme + "'");
  BitOrder order = parse_bitorder(bitorder);
  size_t rows = x.shape[0], dim = x.shape[1];
  auto codes = result_array<int8_t, 2>(out_codes, "out", {rows, dim});
  py::object bits_obj = py::none();
  uint8_t* bits = nullptr;
  if (with_bits) {
    auto b = result_array<uint8_t, 2>(out_bits, "out", {rows, packed_bytes(dim)});
    bits = b.mutable_data();
    bits_obj = b;
  }
  int8_t* c = codes.mutable_data();
  size_t n = resolve_threads(threads);
  int64_t bad;
  {
    py::gil_scoped_release release;
    bad = quantize_i8_batch(s, x.data, rows, dim, x.stride[0], c, bits, order, n);
  }
  return py::make_tuple(codes, bits_obj, bad);
}

py::tuple sign_i8(const py::array& x_arr, const py::object& out, long threads) {
  auto x = view_of<const float, 2>(x_arr, "x");
  auto codes = result_array<int8_t, 2>(out, "out", {x.shape[0], x.shape[1]});
  int8_t* c = codes.mutable_data();
  size_t n = resolve_threads(threads);
  int64_t bad;
  {
    py::gil_scoped_release release;
    bad = sign_i8_batch(x.data, x.shape[0], x.shape[1], x.stride[0], c, n);
  }
  return py::make_tuple(codes, bad);
}

py::tuple pack_bits(const py::array& x_arr, const std::string& bitorder, const py::object& out,
                    long threads) {
  BitOrder order = parse_bitorder(bitorder);
  size_t n = resolve_threads(threads);
  char kind = x_arr.dtype().kind();
  size_t item = size_t(x_arr.dtype().itemsize());
  if (x_arr.ndim() != 2) throw arg_error("x", "expected 2 dimensions");
  size_t rows = size_t(x_arr.shape(0)), dim = size_t(x_arr.shape(1));
  auto bits = result_array<uint8_t, 2>(out, "out", {rows, packed_bytes(dim)});
  uint8_t* b = bits.mutable_data();
  int64_t bad = -1;
  if (kind == 'f' && item == 4) {
    auto x = view_of<const float, 2>(x_arr, "x");
    py::gil_scoped_release release;
    bad = pack_f32_batch(x.data, rows, dim, x.stride[0], b, order, n);
  } else if (kind == 'i' && item == 1) {
    auto x = view_of<const int8_t, 2>(x_arr, "x");
    py::gil_scoped_release release;
    pack_i8_batch(x.data, rows, dim, x.stride[0], b, order, n);
  } else if (kind == 'b' || (kind == 'u' && item == 1)) {
    auto x = view_of<const uint8_t, 2>(py::array(x_arr.attr("view")("uint8")), "x");
    py::gil_scoped_release release;
    pack_bool_batch(x.data, rows, dim, x.stride[0], b, order, n);
  } else {
    throw arg_error("x", "expected float32, int8 or bool, got " + std::string(py::str(x_arr.dtype())));
  }
  return py::make_tuple(bits, bad);
}

py::array_t<int8_t> unpack_bits(const py::array& bits_arr, size_t dim, const std::string& bitorder,
                                bool signed_values, const py::object& out_obj, long threads) {
  auto b = view_of<const uint8_t, 2>(bits_arr, "packed");
  if (b.shape[1] != packed_bytes(dim))
    throw arg_error("dim", "packed rows hold " + std::to_string(b.shape[1]) + " bytes, dim " +
                               std::to_string(dim) + " needs " + std::to_string(packed_bytes(dim)));
  BitOrder order = parse_bitorder(bitorder);
  auto out = result_array<int8_t, 2>(out_obj, "out", {b.shape[0], dim});
  int8_t* o = out.mutable_data();
  size_t n = resolve_threads(threads);
  {
    py::gil_scoped_release release;
    unpack_batch(b.data, b.shape[0], dim, b.stride[0], o, order, signed_values, n);
  }
  return out;
}

}  // namespace

void bind_core(py::module_& m) {
  m.def("mean_pool", &mean_pool, py::arg("hidden"), py::arg("mask"), py::arg("out"),
        py::arg("threads"));
  m.def("mean_pool_spans", &pool_spans, py::arg("hidden"), py::arg("spans"), py::arg("out"),
        py::arg("threads"));
  m.def("quantize_i8", &quantize_i8, py::arg("x"), py::arg("scheme"), py::arg("with_bits"),
        py::arg("bitorder"), py::arg("out_codes"), py::arg("out_bits"), py::arg("threads"));
  m.def("sign_i8", &sign_i8, py::arg("x"), py::arg("out"), py::arg("threads"));
  m.def("pack_bits", &pack_bits, py::arg("x"), py::arg("bitorder"), py::arg("out"),
        py::arg("threads"));
  m.def("unpack_bits", &unpack_bits, py::arg("packed"), py::arg("dim"), py::arg("bitorder"),
        py::arg("signed"), py::arg("out"), py::arg("threads"));
}

}  // namespace pplx
