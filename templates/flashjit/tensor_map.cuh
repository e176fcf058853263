// A TMA descriptor as kernels and the host both see it: the 128 opaque bytes that
// cuTensorMapEncodeTiled writes (cuda.h's CUtensorMap, which NVRTC cannot include), 64-byte
// aligned (128 as cuda.h 13 declares it; TMA needs 64). Host and device code include this one
// definition.
#pragma once

namespace flashjit {

struct alignas(128) TensorMap {
  unsigned long long opaque[16];
};

}  // namespace flashjit
