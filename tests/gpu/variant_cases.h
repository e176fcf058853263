// Test cases of user-written variants for the GPU tests (test_variants_gpu.cpp, the forward;
// test_backward_gpu.cpp, the backward): the variants, their specs, and captured tensors with
// random contents on the host and the device.
#pragma once

#include <cstring>
#include <memory>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include "flashjit/block_mask.h"
#include "flashjit/expr.h"
#include "flashjit/runtime.h"
#include "gpu_harness.h"

namespace fjtest {

using flashjit::DType;
namespace expr = flashjit::expr;

struct Variant {
  std::string name;
  std::string mask;       // "" = no mask; else a custom mask expression
  std::string score_mod;  // "" = none
  std::vector<expr::CaptureDecl> caps;
  flashjit::MaskKind builtin = flashjit::MaskKind::none;  // used when mask is ""
};

struct Case {
  Variant var;
  DType dtype;
  int d;
  int hq, hkv;
  int64_t sq, sk;
  int batch;
  std::optional<flashjit::TileConfig> tile;
  // With a block mask (flashjit::with_block_mask): its block sizes and broadcast dims. The
  // capture named block_mask then gets random cells (0/1/2, some rows all empty).
  int block_q = 0, block_kv = 0;
  bool bm_per_batch = false, bm_per_head = false;
  int dv = 0;  // head_dim_v; 0: the same as d
  double dropout_p = 0;
};

inline flashjit::AttentionSpec spec_of(const Case& c) {
  flashjit::AttentionSpec s;
  s.dtype = c.dtype;
  s.head_dim = c.d;
  s.head_dim_v = c.dv;
  s.num_heads_q = c.hq;
  s.num_heads_kv = c.hkv;
  if (!c.var.mask.empty()) {
    s.mask.kind = flashjit::MaskKind::custom;
    s.mask.expr = c.var.mask;
  } else {
    s.mask.kind = c.var.builtin;
    if (s.mask.kind == flashjit::MaskKind::sliding_window) s.mask.left = 100, s.mask.right = 0;  // a causal window
  }
  s.score_mod = c.var.score_mod;
  s.captures = c.var.caps;
  s.dropout_p = c.dropout_p;
  s.return_lse = true;
  s.tile = c.tile;
  if (c.block_q > 0) s = flashjit::with_block_mask(s, c.block_q, c.block_kv, c.bm_per_batch, c.bm_per_head);
  return s;
}

// Host bytes of one captured tensor: every dim of size `size`, contiguous, random values
// (documents: sorted ids; floats: small values).
struct HostCap {
  std::vector<unsigned char> bytes;
  expr::HostCapture view;
};

inline HostCap make_capture(const expr::CaptureDecl& d, int64_t size, std::mt19937& rng) {
  HostCap h;
  int64_t n = 1;
  for (int r = 0; r < d.rank; ++r) n *= size;
  const int es = expr::capture_dtype_size(d.dtype);
  h.bytes.resize(static_cast<size_t>(n * es));
  std::uniform_real_distribution<float> uf(-1.f, 1.f);
  int32_t doc = 0;
  for (int64_t i = 0; i < n; ++i) {
    unsigned char* p = h.bytes.data() + i * es;
    switch (d.dtype) {
      case expr::CaptureDType::i32: {
        if (rng() % 97 == 0) ++doc;  // sorted document ids: a few documents
        std::memcpy(p, &doc, 4);
        break;
      }
      case expr::CaptureDType::i64: {
        const int64_t v = static_cast<int64_t>(rng() % 5);
        std::memcpy(p, &v, 8);
        break;
      }
      case expr::CaptureDType::f32: {
        const float f = uf(rng);
        std::memcpy(p, &f, 4);
        break;
      }
      case expr::CaptureDType::f16:
      case expr::CaptureDType::bf16: {
        const uint16_t b = fjtest::to_bits(uf(rng), d.dtype == expr::CaptureDType::bf16 ? DType::bf16 : DType::f16);
        std::memcpy(p, &b, 2);
        break;
      }
      case expr::CaptureDType::boolean: *p = rng() % 3 != 0; break;
    }
  }
  h.view.dtype = d.dtype;
  h.view.rank = d.rank;
  int64_t stride = 1;
  for (int r = d.rank - 1; r >= 0; --r) {
    h.view.sizes[r] = size;
    h.view.strides[r] = stride;
    stride *= size;
  }
  return h;
}

// Random cells of a block mask: [b, h, q blocks, kv blocks], classes 0 / 1 / 2 with every
// fifth query-block row empty, so some rows see no key at all.
inline HostCap make_cells(const int64_t (&dims)[4], std::mt19937& rng) {
  HostCap h;
  const int64_t n = dims[0] * dims[1] * dims[2] * dims[3];
  h.bytes.resize(static_cast<size_t>(n * 4));
  for (int64_t i = 0; i < n; ++i) {
    const int64_t row = i / dims[3];
    const int32_t v = row % 5 == 3 ? 0 : static_cast<int32_t>(rng() % 3);
    std::memcpy(h.bytes.data() + i * 4, &v, 4);
  }
  h.view.dtype = expr::CaptureDType::i32;
  h.view.rank = 4;
  int64_t stride = 1;
  for (int r = 3; r >= 0; --r) {
    h.view.sizes[r] = dims[r];
    h.view.strides[r] = stride;
    stride *= dims[r];
  }
  return h;
}

inline flashjit::ElemType elem_of(expr::CaptureDType d) {
  switch (d) {
    case expr::CaptureDType::i32: return flashjit::ElemType::i32;
    case expr::CaptureDType::i64: return flashjit::ElemType::i64;
    case expr::CaptureDType::f32: return flashjit::ElemType::f32;
    case expr::CaptureDType::f16: return flashjit::ElemType::f16;
    case expr::CaptureDType::bf16: return flashjit::ElemType::bf16;
    case expr::CaptureDType::boolean: return flashjit::ElemType::boolean;
  }
  return flashjit::ElemType::i32;
}

// A captured tensor on the device: its buffer, and the view forward() and build_block_mask()
// take (dtype, rank, sizes and strides of the host copy).
struct DeviceCapture {
  std::unique_ptr<fjtest::DeviceBuffer> buffer;
  flashjit::TensorView view;
};
inline DeviceCapture upload_capture(const HostCap& h) {
  DeviceCapture d{std::make_unique<fjtest::DeviceBuffer>(h.bytes.size()), {}};
  d.buffer->upload(h.bytes.data());
  d.view.data = d.buffer->data();
  d.view.dtype = elem_of(h.view.dtype);
  d.view.rank = h.view.rank;
  for (int r = 0; r < h.view.rank; ++r) d.view.sizes[r] = h.view.sizes[r], d.view.strides[r] = h.view.strides[r];
  return d;
}
inline std::vector<flashjit::TensorView> views_of(const std::vector<DeviceCapture>& caps) {
  std::vector<flashjit::TensorView> v;
  for (const DeviceCapture& c : caps) v.push_back(c.view);
  return v;
}
// A contiguous int32 view of block-mask cells over `data`.
inline flashjit::TensorView cells_view(void* data, const int64_t (&dims)[4]) {
  flashjit::TensorView cv;
  cv.data = data;
  cv.dtype = flashjit::ElemType::i32;
  cv.rank = 4;
  int64_t stride = 1;
  for (int r = 3; r >= 0; --r) cv.sizes[r] = dims[r], cv.strides[r] = stride, stride *= dims[r];
  return cv;
}


inline std::vector<Variant> named_variants() {
  const expr::CaptureDecl doc{"doc", expr::CaptureDType::i32, 1};
  const expr::CaptureDecl slopes{"slopes", expr::CaptureDType::f32, 1};
  const expr::CaptureDecl table{"table", expr::CaptureDType::bf16, 2};
  const expr::CaptureDecl keep{"keep", expr::CaptureDType::boolean, 1};
  using MK = flashjit::MaskKind;
  return {
      // Built-ins written as expressions: recognised as bands.
      {"causal top-left", "q_idx >= kv_idx", "", {}},
      {"causal bottom-right", "kv_idx <= q_idx + seqlen_k - seqlen_q", "", {}},
      {"sliding window", "(q_idx >= kv_idx) & (q_idx - kv_idx <= 100)", "", {}},
      // Not bands: interval classification per tile.
      {"prefix-LM", "(kv_idx <= q_idx) | (kv_idx < 37)", "", {}},
      {"document + causal", "(doc[q_idx] == doc[kv_idx]) & (q_idx >= kv_idx)", "", {doc}},
      {"blocks of 64", "q_idx // 64 == kv_idx // 64", "", {}},
      {"dilated", "(q_idx - kv_idx) % 3 == 0", "", {}},
      {"rows from 500 only", "(q_idx >= 500) & (kv_idx <= q_idx)", "", {}},
      {"kept keys", "keep[kv_idx] & (kv_idx <= q_idx + seqlen_k - seqlen_q)", "", {keep}},
      // Score modifications.
      {"ALiBi + causal", "", "score + slopes[h] * float(kv_idx - q_idx)", {slopes}, MK::causal},
      {"softcap + causal", "", "30.0 * tanh(score / 30.0)", {}, MK::causal},
      {"relative bias table", "", "score + table[h, min(max(q_idx - kv_idx + 64, 0), 127)]", {table}},
      {"score + document mask", "doc[q_idx] == doc[kv_idx]", "where(kv_idx == q_idx, score * 2.0, score)", {doc}},
  };
}


}  // namespace fjtest
