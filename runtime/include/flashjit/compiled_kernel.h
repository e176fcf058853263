// What a compile produces: the cubin plus what a launcher and a human need to know.
#pragma once

#include <string>

#include "flashjit/spec.h"

namespace flashjit {

// Read back from ptxas' verbose report in the NVRTC log (-1 where not reported).
struct ResourceUsage {
  int registers = -1;
  int shared_static_bytes = -1;
  int stack_frame_bytes = -1;
  int spill_store_bytes = -1;
  int spill_load_bytes = -1;
};

struct CompiledKernel {
  std::string kernel_name;     // entry point (extern "C")
  std::string arch;            // "sm_90a"
  std::string cache_key;       // hex digest of everything that determines the cubin
  std::string cache_path;      // disk entry ("" when caching is off)
  bool cache_hit = false;      // served from the disk or memory cache
  double compile_ms = 0.0;     // NVRTC time (0 on a cache hit)
  double load_ms = 0.0;        // time to obtain it (cache lookup or compile)
  std::string image;           // cubin bytes
  std::string log;             // NVRTC log (ptxas report included)
  ResourceUsage resources;
  int threads = 0;             // threads per block
  int dynamic_smem_bytes = 0;  // dynamic shared memory per block
  TileConfig tile;             // the config it was generated for
};

}  // namespace flashjit
