// Bindings of the speed-only kernel knobs (pplx/tuning.h), for the tuner
// (python/pplx_kernels/tune.py) and the tests. No logic here.
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <stdexcept>

#include "pplx/tuning.h"

namespace py = pybind11;

namespace pplx {

namespace {

Knob knob_by_name(const std::string& name) {
  const auto& infos = knob_infos();
  for (size_t i = 0; i < infos.size(); ++i)
    if (name == infos[i].name) return Knob(i);
  throw std::invalid_argument("knob: unknown name '" + name + "'");
}

}  // namespace

void bind_tuning(py::module_& m) {
  m.def("knob_candidates", [] {
    py::dict d;
    for (const KnobInfo& k : knob_infos()) d[k.name] = k.candidates;
    return d;
  });
  m.def("get_knobs", [] {
    py::dict d;
    const auto& infos = knob_infos();
    for (size_t i = 0; i < infos.size(); ++i) d[infos[i].name] = knob(Knob(i));
    return d;
  });
  m.def("knob_defaults", [] {
    py::dict d;
    const auto& infos = knob_infos();
    const std::vector<uint32_t> values = default_knobs();
    for (size_t i = 0; i < infos.size(); ++i) d[infos[i].name] = values[i];
    return d;
  });
  m.def("set_knob", [](const std::string& name, uint32_t value) { set_knob(knob_by_name(name), value); });
  m.def("reset_knobs", &reset_knobs);
  m.def("cpu_family", &cpu_family_name);
}

}  // namespace pplx
