// Ctrl-C during a long kernel call: the runtime asks this hook about every
// 20 ms from the thread that made the call (see pplx/parallel.h), and an
// interrupted call surfaces as the exception the signal handler raised.
#include <pybind11/pybind11.h>

#include "pplx/parallel.h"

namespace py = pybind11;

namespace pplx {
namespace {

unsigned long g_main_thread = 0;  // Python runs signal handlers on this thread only

bool python_signal_pending() {
  if (PyThread_get_thread_ident() != g_main_thread) return false;
  PyGILState_STATE state = PyGILState_Ensure();
  bool raised = PyErr_CheckSignals() != 0;  // leaves the handler's exception set
  PyGILState_Release(state);
  return raised;
}

}  // namespace

void install_interrupt_hook() {
  g_main_thread = py::module_::import("threading").attr("main_thread")().attr("ident").cast<unsigned long>();
  set_interrupt_hook(&python_signal_pending);
  py::register_exception_translator([](std::exception_ptr p) {
    try {
      if (p) std::rethrow_exception(p);
    } catch (const Interrupted&) {
      if (!PyErr_Occurred()) PyErr_SetNone(PyExc_KeyboardInterrupt);
    }
  });
}

}  // namespace pplx
