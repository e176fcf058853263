#include "bindings.h"
#include "flashjit/runtime.h"

#ifndef FLASHJIT_VERSION
#define FLASHJIT_VERSION "unknown"
#endif

NB_MODULE(_C, m) {
  m.doc() = "flashjit C++ core: spec -> tile IR -> CUDA -> NVRTC, launch through the driver API";
  m.attr("version") = FLASHJIT_VERSION;
  flashjit::python::bind_errors(m);
  flashjit::python::bind_compile(m);
  flashjit::python::bind_forward(m);
  flashjit::python::bind_mask_picture(m);
  // Counters of compiles, cache hits and tunings: lets a program (or a test) see that a
  // warm cache spared it compiling and tuning.
  m.def("runtime_stats", [] {
    const flashjit::RuntimeStats s = flashjit::runtime_stats();
    nanobind::dict d;
    d["compiles"] = s.compiles;
    d["disk_hits"] = s.disk_hits;
    d["memory_hits"] = s.memory_hits;
    d["tunings"] = s.tunings;
    d["tuning_db_hits"] = s.tuning_db_hits;
    return d;
  });
  m.def(
      "wait_for_tuning",
      [] {
        nanobind::gil_scoped_release release;  // the compiles take seconds; other threads may run
        flashjit::wait_for_tuning();
      },
      "Blocks until background tuning's candidate compiles have finished.");
  m.def(
      "stop_tuning",
      [] {
        nanobind::gil_scoped_release release;
        flashjit::stop_tuning();
      },
      "Stops background tuning: running compiles finish, no new one starts (run at exit).");
}
