// The extension module pplx_kernels._core.
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include "pplx/dispatch.h"
#include "pplx/parallel.h"

namespace py = pybind11;

namespace pplx {
void bind_core(py::module_& m);
void bind_search(py::module_& m);
void install_interrupt_hook();
void bind_tuning(py::module_& m);
}  // namespace pplx

namespace {

py::dict features_dict() {
  const pplx::CpuFeatures& f = pplx::cpu_features();
  py::dict d;
#define PPLX_FEATURE(name) d[#name] = f.name
  PPLX_FEATURE(sse42); PPLX_FEATURE(popcnt); PPLX_FEATURE(avx); PPLX_FEATURE(avx2);
  PPLX_FEATURE(fma); PPLX_FEATURE(f16c); PPLX_FEATURE(bmi2); PPLX_FEATURE(avx512f);
  PPLX_FEATURE(avx512bw); PPLX_FEATURE(avx512vl); PPLX_FEATURE(avx512dq);
  PPLX_FEATURE(avx512vnni); PPLX_FEATURE(avx512vpopcntdq); PPLX_FEATURE(os_avx);
  PPLX_FEATURE(os_avx512); PPLX_FEATURE(neon); PPLX_FEATURE(neon_dotprod); PPLX_FEATURE(neon_fp16);
#undef PPLX_FEATURE
  return d;
}

py::dict kernel_variants() {
  const pplx::KernelTable& t = pplx::kernels();
  py::dict d;
  d["pooling"] = pplx::isa_name(t.pooling_isa);
  d["quantize"] = pplx::isa_name(t.quantize_isa);
  d["bitpack"] = pplx::isa_name(t.bitpack_isa);
  for (const auto& kv : pplx::extra_kernel_variants(t)) d[kv.first.c_str()] = kv.second;
  return d;
}

std::vector<std::string> supported() {
  std::vector<std::string> out;
  for (pplx::Isa isa : pplx::supported_isas()) out.push_back(pplx::isa_name(isa));
  return out;
}

}  // namespace

PYBIND11_MODULE(_core, m) {
  m.doc() = "pplx-kernels compiled core";
  // Build the table now: a bad PPLX_KERNELS_ISA fails the import, loudly.
  try {
    pplx::kernels();
  } catch (const std::invalid_argument& e) {
    throw py::import_error(e.what());
  }
  m.def("cpu_features", &features_dict);
  m.def("supported_isas", &supported);
  m.def("get_isa", [] { return std::string(pplx::isa_name(pplx::kernels().level)); });
  m.def("set_isa", [](const std::string& name) { pplx::set_isa(pplx::parse_isa(name)); });
  m.def("kernel_variants", &kernel_variants);
  m.def("get_num_threads", [] { return pplx::get_num_threads(); });
  m.def("set_num_threads", [](size_t n) { pplx::set_num_threads(n); });
  m.def("max_threads", [] { return pplx::max_threads(); });
  m.attr("__compiled_isas__") = py::make_tuple(
      "scalar"
#if defined(PPLX_HAVE_X86)
      , "avx2", "avx512"
#endif
#if defined(PPLX_HAVE_NEON)
      , "neon"
#endif
  );
  pplx::bind_core(m);
  pplx::bind_search(m);
  pplx::install_interrupt_hook();
  pplx::bind_tuning(m);
}
