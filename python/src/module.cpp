#include "bindings.h"

#ifndef FLASHJIT_VERSION
#define FLASHJIT_VERSION "unknown"
#endif

NB_MODULE(_C, m) {
  m.doc() = "flashjit C++ core: spec -> tile IR -> CUDA -> NVRTC, launch through the driver API";
  m.attr("version") = FLASHJIT_VERSION;
  flashjit::python::bind_errors(m);
  flashjit::python::bind_compile(m);
  flashjit::python::bind_forward(m);
}
