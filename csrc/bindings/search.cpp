// Bindings of the search kernels (filled in by the search-kernel work).
#include <pybind11/pybind11.h>

namespace pplx {
void bind_search(pybind11::module_&) {}
}  // namespace pplx
