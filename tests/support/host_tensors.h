// Captured tensors filled with random data, in host memory, for the expression tests
// (tests/unit/test_expr.cpp, test_expr_factor.cpp): what the CPU evaluator reads.
#pragma once

#include <cmath>
#include <cstdint>
#include <cstring>
#include <random>
#include <vector>

#include "flashjit/expr.h"

namespace flashjit::testing {

struct HostTensors {
  std::vector<std::vector<unsigned char>> buffers;
  std::vector<expr::HostCapture> caps;
};

// Contiguous tensors of `size` elements per dimension with random elements of each dtype
// (small ints, so that doc[q] == doc[kv] is often true; f16 / bf16 any bit pattern, NaN
// and inf included; bool bytes 0, 1, 2, 255).
inline HostTensors random_tensors(std::mt19937_64& rng, const std::vector<expr::CaptureDecl>& decls, int size) {
  HostTensors t;
  t.buffers.resize(decls.size());
  for (size_t i = 0; i < decls.size(); ++i) {
    const expr::CaptureDecl& d = decls[i];
    int64_t count = 1;
    for (int k = 0; k < d.rank; ++k) count *= size;
    std::vector<unsigned char>& buf = t.buffers[i];
    buf.resize(static_cast<size_t>(count * expr::capture_dtype_size(d.dtype)));
    for (int64_t j = 0; j < count; ++j) {
      unsigned char* p = buf.data() + j * expr::capture_dtype_size(d.dtype);
      switch (d.dtype) {
        case expr::CaptureDType::i32: {
          const int32_t v = static_cast<int32_t>(rng() % 8) - 2;
          std::memcpy(p, &v, 4);
          break;
        }
        case expr::CaptureDType::i64: {
          const int64_t v = rng() % 3 == 0 ? static_cast<int64_t>(rng()) : static_cast<int64_t>(rng() % 20) - 5;
          std::memcpy(p, &v, 8);
          break;
        }
        case expr::CaptureDType::f32: {
          static const float specials[] = {0.f, -0.f, 1.f, -1.f, 0.5f, 1e30f, -1e30f, INFINITY, -INFINITY, NAN};
          const float v = rng() % 4 == 0 ? specials[rng() % 10]
                                         : static_cast<float>(static_cast<double>(rng() % 2001) / 250.0 - 4.0);
          std::memcpy(p, &v, 4);
          break;
        }
        case expr::CaptureDType::f16:
        case expr::CaptureDType::bf16: {
          const uint16_t v = static_cast<uint16_t>(rng());
          std::memcpy(p, &v, 2);
          break;
        }
        case expr::CaptureDType::boolean: {
          static const unsigned char bytes[] = {0, 1, 2, 255, 0};
          *p = bytes[rng() % 5];
          break;
        }
      }
    }
    expr::HostCapture c;
    c.data = buf.data();
    c.dtype = d.dtype;
    c.rank = d.rank;
    int64_t stride = 1;
    for (int k = d.rank - 1; k >= 0; --k) {
      c.sizes[k] = size;
      c.strides[k] = stride;
      stride *= size;
    }
    t.caps.push_back(c);
  }
  return t;
}

}  // namespace flashjit::testing
