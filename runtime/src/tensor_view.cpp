// Convenience constructors of TensorView for the two common layouts.
#include "flashjit/runtime.h"

namespace flashjit {

TensorView TensorView::bhsd(void* data, ElemType t, int64_t b, int64_t h, int64_t s, int64_t d) {
  TensorView v;
  v.data = data;
  v.dtype = t;
  v.rank = 4;
  const int64_t sizes[4] = {b, h, s, d};
  const int64_t strides[4] = {h * s * d, s * d, d, 1};
  for (int i = 0; i < 4; ++i) v.sizes[i] = sizes[i], v.strides[i] = strides[i];
  return v;
}

// Memory (batch, seq, heads, dim), described with the logical (batch, heads, seq, dim) order.
TensorView TensorView::bshd(void* data, ElemType t, int64_t b, int64_t s, int64_t h, int64_t d) {
  TensorView v;
  v.data = data;
  v.dtype = t;
  v.rank = 4;
  const int64_t sizes[4] = {b, h, s, d};
  const int64_t strides[4] = {s * h * d, d, h * d, 1};
  for (int i = 0; i < 4; ++i) v.sizes[i] = sizes[i], v.strides[i] = strides[i];
  return v;
}

TensorView TensorView::lse(float* data, int64_t b, int64_t h, int64_t s) {
  TensorView v;
  v.data = data;
  v.dtype = ElemType::f32;
  v.rank = 3;
  v.sizes[0] = b, v.sizes[1] = h, v.sizes[2] = s;
  v.strides[0] = h * s, v.strides[1] = s, v.strides[2] = 1;
  return v;
}

}  // namespace flashjit
