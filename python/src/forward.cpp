// forward() and backward(): tensors come in through DLPack (nb::ndarray<>), so torch, CuPy, JAX or any
// producer of __dlpack__ works without this module depending on any of them.
#include <nanobind/ndarray.h>
#include <nanobind/stl/array.h>
#include <nanobind/stl/optional.h>
#include <nanobind/stl/string.h>
#include <nanobind/stl/tuple.h>
#include <nanobind/stl/vector.h>

#include <array>
#include <cstdint>
#include <mutex>
#include <optional>
#include <string>
#include <tuple>
#include <unordered_map>

#include "bindings.h"
#include "flashjit/backward.h"
#include "flashjit/block_mask.h"
#include "flashjit/codegen.h"
#include "flashjit/cuda_driver.h"
#include "flashjit/error.h"
#include "flashjit/runtime.h"

namespace flashjit::python {
namespace {

using Array = nb::ndarray<>;

constexpr int32_t kDLCUDA = 2;  // DLDeviceType::kDLCUDA

const char* device_name(int32_t type) {
  switch (type) {
    case 1: return "cpu";
    case 2: return "cuda";
    case 3: return "cuda_host (pinned)";
    case 10: return "rocm";
    case 13: return "cuda_managed";
    default: return "non-CUDA";
  }
}

std::string dtype_name(nb::dlpack::dtype t) {
  const char* kind = "?";
  switch (static_cast<nb::dlpack::dtype_code>(t.code)) {
    case nb::dlpack::dtype_code::Int: kind = "int"; break;
    case nb::dlpack::dtype_code::UInt: kind = "uint"; break;
    case nb::dlpack::dtype_code::Float: kind = "float"; break;
    case nb::dlpack::dtype_code::Bfloat: kind = "bfloat"; break;
    case nb::dlpack::dtype_code::Complex: kind = "complex"; break;
    case nb::dlpack::dtype_code::Bool: kind = "bool"; break;
    default: break;
  }
  std::string s = std::string(kind) + std::to_string(t.bits);
  if (t.lanes != 1) s += "x" + std::to_string(t.lanes);
  return s;
}

ElemType elem_type(nb::dlpack::dtype t, const char* param) {
  if (t.lanes == 1) {
    if (t.code == static_cast<uint8_t>(nb::dlpack::dtype_code::Float) && t.bits == 16)
      return ElemType::f16;
    if (t.code == static_cast<uint8_t>(nb::dlpack::dtype_code::Bfloat) && t.bits == 16)
      return ElemType::bf16;
    if (t.code == static_cast<uint8_t>(nb::dlpack::dtype_code::Float) && t.bits == 32)
      return ElemType::f32;
  }
  throw ArgumentError(param, "dtype " + dtype_name(t) + " is not supported; allowed: float16, "
                             "bfloat16 (q, k, v, o) and float32 (lse)");
}

// Device / rank / dtype checks with the parameter's name; shapes and strides against the
// spec are checked by flashjit::forward itself.
TensorView view_of(const Array& a, const char* param, int rank, int32_t* device_id) {
  if (a.device_type() != kDLCUDA)
    throw ArgumentError(param, std::string("must be a CUDA device tensor; got a ") +
                                   device_name(a.device_type()) + " tensor");
  if (*device_id < 0) {
    *device_id = a.device_id();
  } else if (a.device_id() != *device_id) {
    throw ArgumentError(param, "is on cuda:" + std::to_string(a.device_id()) +
                                   " but q is on cuda:" + std::to_string(*device_id) +
                                   "; all tensors must be on one device");
  }
  if (static_cast<int>(a.ndim()) != rank)
    throw ArgumentError(param, "must have " + std::to_string(rank) + " dimensions; got " +
                                   std::to_string(a.ndim()));
  TensorView v;
  v.data = a.data();
  v.dtype = elem_type(a.dtype(), param);
  v.rank = rank;
  for (int i = 0; i < rank; ++i) {
    v.sizes[i] = static_cast<int64_t>(a.shape(i));
    v.strides[i] = a.stride(i);  // DLPack strides are in elements
  }
  return v;
}

// A tensor an expression reads: rank 1 to 4, dtype int32 / int64 / float32 / float16 /
// bfloat16 / bool; ranks, dtypes and index ranges against the spec: flashjit::forward.
TensorView capture_view_of(const Array& a, const std::string& param, int32_t* device_id) {
  if (a.device_type() != kDLCUDA)
    throw ArgumentError(param, std::string("must be a CUDA device tensor; got a ") + device_name(a.device_type()) +
                                   " tensor");
  if (a.device_id() != *device_id)
    throw ArgumentError(param, "is on cuda:" + std::to_string(a.device_id()) + " but q is on cuda:" +
                                   std::to_string(*device_id) + "; all tensors must be on one device");
  if (a.ndim() < 1 || a.ndim() > 4)
    throw ArgumentError(param, "must have 1 to 4 dimensions; got " + std::to_string(a.ndim()));
  const nb::dlpack::dtype t = a.dtype();
  TensorView v;
  const auto code = [&](nb::dlpack::dtype_code c) { return t.code == static_cast<uint8_t>(c); };
  if (t.lanes == 1 && code(nb::dlpack::dtype_code::Int) && t.bits == 32) v.dtype = ElemType::i32;
  else if (t.lanes == 1 && code(nb::dlpack::dtype_code::Int) && t.bits == 64) v.dtype = ElemType::i64;
  else if (t.lanes == 1 && code(nb::dlpack::dtype_code::Float) && t.bits == 32) v.dtype = ElemType::f32;
  else if (t.lanes == 1 && code(nb::dlpack::dtype_code::Float) && t.bits == 16) v.dtype = ElemType::f16;
  else if (t.lanes == 1 && code(nb::dlpack::dtype_code::Bfloat) && t.bits == 16) v.dtype = ElemType::bf16;
  else if (t.lanes == 1 && code(nb::dlpack::dtype_code::Bool) && t.bits == 8) v.dtype = ElemType::boolean;
  else
    throw ArgumentError(param, "dtype " + dtype_name(t) + " is not supported; allowed: int32, int64, float32, "
                               "float16, bfloat16, bool");
  v.data = a.data();
  v.rank = static_cast<int>(a.ndim());
  for (int i = 0; i < v.rank; ++i) {
    v.sizes[i] = static_cast<int64_t>(a.shape(i));
    v.strides[i] = a.stride(i);
  }
  return v;
}

// The tensors a spec's expressions read, named after its declarations in errors.
std::vector<TensorView> capture_views(const AttentionSpec& spec, const std::vector<Array>& captures, int32_t* device) {
  std::vector<TensorView> views;
  for (size_t i = 0; i < captures.size(); ++i) {
    const std::string name = i < spec.captures.size() ? "captures." + spec.captures[i].name
                                                      : "captures[" + std::to_string(i) + "]";
    views.push_back(capture_view_of(captures[i], name, device));
  }
  return views;
}

// Device `ordinal`'s primary context (the one the CUDA runtime, torch and CuPy use),
// retained once per process and never released: forward() caches loaded modules per
// context, and releasing the last reference would destroy the context under them.
CUcontext primary_context(CudaDriver& drv, int32_t ordinal) {
  static std::mutex mu;
  static std::unordered_map<int32_t, CUcontext> retained;
  std::lock_guard<std::mutex> lock(mu);
  auto it = retained.find(ordinal);
  if (it != retained.end()) return it->second;
  CUdevice dev = 0;
  drv.check(drv.cuDeviceGet(&dev, ordinal), "cuDeviceGet");
  CUcontext ctx = nullptr;
  drv.check(drv.cuDevicePrimaryCtxRetain(&ctx, dev), "cuDevicePrimaryCtxRetain");
  return retained.emplace(ordinal, ctx).first->second;
}

// flashjit::forward launches in the calling thread's current CUDA context. DLPack tensors
// name their device instead, so for one call this makes the tensors' device current: when
// the current context is on another device (or there is none), the device's primary
// context is pushed, and popped again when the call ends. The common case, tensors on the
// current device, costs one cuCtxGetCurrent and one cuCtxGetDevice.
class DeviceContextGuard {
 public:
  DeviceContextGuard(int32_t ordinal, const char* param) : drv_(CudaDriver::get()) {
    if (!drv_.available()) return;  // forward() reports why there is no GPU
    CUcontext current = nullptr;
    drv_.check(drv_.cuCtxGetCurrent(&current), "cuCtxGetCurrent");
    if (current != nullptr) {
      CUdevice dev = 0;
      drv_.check(drv_.cuCtxGetDevice(&dev), "cuCtxGetDevice");
      if (dev == ordinal) return;
    }
    int count = 0;
    drv_.check(drv_.cuDeviceGetCount(&count), "cuDeviceGetCount");
    if (ordinal < 0 || ordinal >= count)
      throw ArgumentError(param, "is on cuda:" + std::to_string(ordinal) + ", a device that does not exist (" +
                                     std::to_string(count) + " CUDA device" + (count == 1 ? "" : "s") +
                                     " visible: cuda:0 to cuda:" + std::to_string(count - 1) + ")");
    drv_.check(drv_.cuCtxPushCurrent(primary_context(drv_, ordinal)), "cuCtxPushCurrent");
    pushed_ = true;
  }
  // Pops the pushed context, checking the result (call on success).
  void pop() {
    if (!pushed_) return;
    pushed_ = false;
    CUcontext popped = nullptr;
    drv_.check(drv_.cuCtxPopCurrent(&popped), "cuCtxPopCurrent");
  }
  // While an exception propagates: restore the caller's context, keep the first error.
  ~DeviceContextGuard() {
    try {
      pop();
    } catch (...) {
    }
  }
  DeviceContextGuard(const DeviceContextGuard&) = delete;
  DeviceContextGuard& operator=(const DeviceContextGuard&) = delete;

 private:
  CudaDriver& drv_;
  bool pushed_ = false;
};

// Dropout's RNG state for one call: host values, or (dropout_state != 0) the address of two
// uint64 in device memory, {seed, offset}, that the kernels read when they run (a CUDA graph's
// replays see what was written there last). Ignored when the spec has no dropout.
DropoutRng dropout_rng(uint64_t seed, uint64_t offset, uintptr_t device_state) {
  DropoutRng rng;
  rng.seed = seed;
  rng.offset = offset;
  rng.device_state = reinterpret_cast<const uint64_t*>(device_state);
  return rng;
}

// The PreparedForward of a spec JSON: the bindings are called with the same few strings
// over and over; each is parsed, validated and prepared once (bounded, like parsed_spec).
PreparedForward prepared_forward(const std::string& spec_json) {
  static std::mutex mu;
  static std::unordered_map<std::string, PreparedForward> prepared;
  {
    std::lock_guard<std::mutex> lock(mu);
    auto it = prepared.find(spec_json);
    if (it != prepared.end()) return it->second;
  }
  PreparedForward p(parsed_spec(spec_json));
  std::lock_guard<std::mutex> lock(mu);
  if (prepared.size() > 4096) prepared.clear();
  return prepared.emplace(spec_json, p).first->second;
}

using Dims = std::array<int64_t, 4>;

// A torch tensor as forward_torch receives it: its address, sizes and strides (elements),
// read in Python without the DLPack export, which costs more than the launch. Rank 4.
TensorView raw_view(uintptr_t data, ElemType t, const Dims& sizes, const Dims& strides) {
  TensorView v;
  v.data = reinterpret_cast<void*>(data);
  v.dtype = t;
  v.rank = 4;
  for (int i = 0; i < 4; ++i) v.sizes[i] = sizes[i], v.strides[i] = strides[i];
  return v;
}

ElemType elem_type_named(const std::string& name, const std::string& param) {
  static const std::unordered_map<std::string, ElemType> types = {
      {"float16", ElemType::f16}, {"bfloat16", ElemType::bf16}, {"float32", ElemType::f32},
      {"int32", ElemType::i32},   {"int64", ElemType::i64},     {"bool", ElemType::boolean}};
  auto it = types.find(name);
  if (it == types.end())
    throw ArgumentError(param, "dtype " + name + " is not supported; allowed: int32, int64, float32, float16, "
                               "bfloat16, bool");
  return it->second;
}

// (address, dtype name, sizes, strides) of one captured tensor, rank 1 to 4.
using RawCapture = std::tuple<uintptr_t, std::string, std::vector<int64_t>, std::vector<int64_t>>;

std::vector<TensorView> raw_capture_views(const AttentionSpec& spec, const std::vector<RawCapture>& captures) {
  std::vector<TensorView> views;
  for (size_t i = 0; i < captures.size(); ++i) {
    const std::string name = i < spec.captures.size() ? "captures." + spec.captures[i].name
                                                      : "captures[" + std::to_string(i) + "]";
    const auto& [data, dtype, sizes, strides] = captures[i];
    if (sizes.size() < 1 || sizes.size() > 4 || strides.size() != sizes.size())
      throw ArgumentError(name, "must have 1 to 4 dimensions; got " + std::to_string(sizes.size()));
    TensorView v;
    v.data = reinterpret_cast<void*>(data);
    v.dtype = elem_type_named(dtype, name);
    v.rank = static_cast<int>(sizes.size());
    for (int d = 0; d < v.rank; ++d) v.sizes[d] = sizes[d], v.strides[d] = strides[d];
    views.push_back(v);
  }
  return views;
}

}  // namespace

void bind_forward(nb::module_& m) {
  m.def(
      "forward",
      [](const std::string& spec_json, const Array& q, const Array& k, const Array& v,
         const Array& o, std::optional<Array> lse, uintptr_t stream, const std::vector<Array>& captures,
         uint64_t dropout_seed, uint64_t dropout_offset, uintptr_t dropout_state) {
        const PreparedForward prepared = prepared_forward(spec_json);
        const AttentionSpec& spec = prepared.spec();
        int32_t device = -1;
        const TensorView qv = view_of(q, "q", 4, &device);
        const TensorView kv = view_of(k, "k", 4, &device);
        const TensorView vv = view_of(v, "v", 4, &device);
        const TensorView ov = view_of(o, "o", 4, &device);
        std::optional<TensorView> lv;
        if (lse) lv = view_of(*lse, "lse", 3, &device);
        const std::vector<TensorView> cv = capture_views(spec, captures, &device);
        const DropoutRng rng = dropout_rng(dropout_seed, dropout_offset, dropout_state);
        DeviceContextGuard on_device(device, "q");  // the tensors' GPU, not only the current one
        {
          nb::gil_scoped_release release;  // the first call of a spec may compile (seconds)
          prepared(qv, kv, vv, ov, lv ? &*lv : nullptr, reinterpret_cast<CUstream_st*>(stream), cv, rng);
        }
        on_device.pop();
      },
      nb::arg("spec_json"), nb::arg("q"), nb::arg("k"), nb::arg("v"), nb::arg("o"),
      nb::arg("lse").none() = nb::none(), nb::arg("stream") = 0, nb::arg("captures") = std::vector<Array>{},
      nb::arg("dropout_seed") = 0, nb::arg("dropout_offset") = 0, nb::arg("dropout_state") = 0,
      "Attention forward on DLPack CUDA tensors of logical shape (batch, heads, seqlen, dim) "
      "(last dim contiguous); lse is float32 (batch, heads_q, seqlen_q). Runs on the tensors' "
      "device (its primary context is made current for the call when another device's is). "
      "Launches on `stream` (a CUstream as an int, of that device; 0 = the legacy default "
      "stream) and returns without synchronising. Dropout (spec dropout_p > 0): the RNG state is "
      "`dropout_state`, the address (an int, 8-byte aligned) of two uint64 {seed, offset} in device "
      "memory that the kernel reads when it runs, or when that is 0 the host values `dropout_seed`, "
      "`dropout_offset`; ignored without dropout. Pass backward() the same.");

  m.def(
      "forward_torch",
      [](const std::string& spec_json, int32_t device, const std::string& dtype, uintptr_t q, const Dims& q_sizes,
         const Dims& q_strides, uintptr_t k, const Dims& k_sizes, const Dims& k_strides, uintptr_t v,
         const Dims& v_sizes, const Dims& v_strides, uintptr_t o, uintptr_t lse, uintptr_t stream,
         const std::vector<RawCapture>& captures, uint64_t dropout_seed, uint64_t dropout_offset,
         uintptr_t dropout_state) {
        const PreparedForward prepared = prepared_forward(spec_json);
        const ElemType t = elem_type_named(dtype, "q");
        const TensorView qv = raw_view(q, t, q_sizes, q_strides);
        const TensorView kv = raw_view(k, t, k_sizes, k_strides);
        const TensorView vv = raw_view(v, t, v_sizes, v_strides);
        const int64_t b = q_sizes[0], h = q_sizes[1], n = q_sizes[2], dv = v_sizes[3];
        const TensorView ov = raw_view(o, t, {b, h, n, dv}, {h * n * dv, n * dv, dv, 1});
        const TensorView lv = TensorView::lse(reinterpret_cast<float*>(lse), b, h, n);
        const std::vector<TensorView> cv = raw_capture_views(prepared.spec(), captures);
        const DropoutRng rng = dropout_rng(dropout_seed, dropout_offset, dropout_state);
        DeviceContextGuard on_device(device, "q");
        {
          nb::gil_scoped_release release;  // the first call of a spec may compile (seconds)
          prepared(qv, kv, vv, ov, lse ? &lv : nullptr, reinterpret_cast<CUstream_st*>(stream), cv, rng);
        }
        on_device.pop();
      },
      nb::arg("spec_json"), nb::arg("device"), nb::arg("dtype"), nb::arg("q"), nb::arg("q_sizes"),
      nb::arg("q_strides"), nb::arg("k"), nb::arg("k_sizes"), nb::arg("k_strides"), nb::arg("v"),
      nb::arg("v_sizes"), nb::arg("v_strides"), nb::arg("o"), nb::arg("lse"), nb::arg("stream"),
      nb::arg("captures"), nb::arg("dropout_seed") = 0, nb::arg("dropout_offset") = 0, nb::arg("dropout_state") = 0,
      "forward() for torch's eager calls, without DLPack (whose export costs more than the launch): "
      "q, k, v as (address, sizes, strides in elements) of rank 4 on CUDA device `device`, all of "
      "dtype `dtype` ('float16' or 'bfloat16'); o a fresh contiguous (b, heads_q, seqlen_q, head_dim_v) "
      "tensor's address, lse a contiguous float32 (b, heads_q, seqlen_q) one's or 0; captures as "
      "(address, dtype name, sizes, strides). The caller (flashjit.attention) has checked that "
      "every tensor is a CUDA tensor on `device`; shapes, strides, dtypes against the spec, "
      "alignment and capture index ranges are checked here as by forward().");

  m.def(
      "backward",
      [](const std::string& spec_json, const Array& q, const Array& k, const Array& v, const Array& o,
         const Array& lse, const Array& dout, const Array& dq, const Array& dk, const Array& dv, uintptr_t stream,
         const std::vector<Array>& captures, std::optional<Array> workspace, bool deterministic,
         const std::vector<int>& capture_grad_index, const std::vector<Array>& capture_grads, uint64_t dropout_seed,
         uint64_t dropout_offset, uintptr_t dropout_state) {
        const AttentionSpec spec = parsed_spec(spec_json);
        int32_t device = -1;
        const TensorView qv = view_of(q, "q", 4, &device), kv = view_of(k, "k", 4, &device),
                         vv = view_of(v, "v", 4, &device), ov = view_of(o, "o", 4, &device),
                         lv = view_of(lse, "lse", 3, &device), dov = view_of(dout, "dout", 4, &device),
                         dqv = view_of(dq, "dq", 4, &device), dkv = view_of(dk, "dk", 4, &device),
                         dvv = view_of(dv, "dv", 4, &device);
        const std::vector<TensorView> cv = capture_views(spec, captures, &device);
        BackwardOptions options;
        options.deterministic = deterministic;
        options.dropout = dropout_rng(dropout_seed, dropout_offset, dropout_state);
        if (capture_grad_index.size() != capture_grads.size())
          throw ArgumentError("capture_grads", "needs one index in capture_grad_index per tensor");
        if (!capture_grads.empty()) {
          options.capture_grads.resize(cv.size());
          for (size_t i = 0; i < capture_grads.size(); ++i) {
            const int c = capture_grad_index[i];
            if (c < 0 || static_cast<size_t>(c) >= cv.size())
              throw ArgumentError("capture_grad_index", "index " + std::to_string(c) + " is not a capture's");
            options.capture_grads[static_cast<size_t>(c)] =
                capture_view_of(capture_grads[i], "capture_grads[" + std::to_string(i) + "]", &device);
          }
        }
        if (workspace) {
          if (workspace->device_type() != kDLCUDA || workspace->device_id() != device)
            throw ArgumentError("workspace", "must be a CUDA tensor on q's device");
          options.workspace = workspace->data();
          options.workspace_bytes = workspace->nbytes();
        }
        DeviceContextGuard on_device(device, "q");
        {
          nb::gil_scoped_release release;  // the first call of a spec compiles its backward kernels
          backward(spec, qv, kv, vv, ov, lv, dov, dqv, dkv, dvv, reinterpret_cast<CUstream_st*>(stream), cv, options);
        }
        on_device.pop();
      },
      nb::arg("spec_json"), nb::arg("q"), nb::arg("k"), nb::arg("v"), nb::arg("o"), nb::arg("lse"), nb::arg("dout"),
      nb::arg("dq"), nb::arg("dk"), nb::arg("dv"), nb::arg("stream") = 0, nb::arg("captures") = std::vector<Array>{},
      nb::arg("workspace").none() = nb::none(), nb::arg("deterministic") = false,
      nb::arg("capture_grad_index") = std::vector<int>{}, nb::arg("capture_grads") = std::vector<Array>{},
      nb::arg("dropout_seed") = 0, nb::arg("dropout_offset") = 0, nb::arg("dropout_state") = 0,
      "Attention backward: fills dq, dk, dv for the upstream gradient dout, from q, k, v and the forward's o "
      "and lse (float32, natural log). `workspace`: a CUDA buffer of at least backward_workspace_bytes(); "
      "None allocates it stream-ordered. `deterministic`: bit-identical gradients (bwd_dq). "
      "`capture_grads[i]`: float32, contiguous, the shape of captures[capture_grad_index[i]]: gets "
      "that capture's gradient (zeroed first). `dropout_seed`, `dropout_offset`, `dropout_state`: the "
      "RNG state the forward ran with (see forward()); the kernels regenerate its mask. Launches on "
      "`stream` and returns without synchronising.");

  m.def(
      "backward_workspace_bytes",
      [](const std::string& spec_json, int64_t batch, int64_t seqlen_q) {
        return backward_workspace_bytes(parsed_spec(spec_json), batch, seqlen_q);
      },
      nb::arg("spec_json"), nb::arg("batch"), nb::arg("seqlen_q"),
      "Bytes of fp32 scratch one backward() call needs (D and the dQ accumulator).");

  m.def(
      "score_grad_captures",
      [](const std::string& spec_json) {
        const AttentionSpec spec = parsed_spec(spec_json).normalized();
        return codegen::score_grad_captures(spec.score_mod, spec.captures);
      },
      nb::arg("spec_json"),
      "Indices of the captures the score_mod reads on a differentiable path: the ones backward() can "
      "give a gradient (capture_grads).");

  m.def(
      "build_block_mask",
      [](const std::string& spec_json, int64_t batch, int64_t heads, int64_t seqlen_q, int64_t seqlen_k, int block_q,
         int block_kv, const Array& cells, uintptr_t stream, const std::vector<Array>& captures) {
        const AttentionSpec spec = parsed_spec(spec_json);
        int32_t device = cells.device_id();
        TensorView cv = capture_view_of(cells, "cells", &device);
        const std::vector<TensorView> caps = capture_views(spec, captures, &device);
        BlockMaskShape shape{batch, heads, seqlen_q, seqlen_k, block_q, block_kv};
        DeviceContextGuard on_device(device, "cells");
        {
          nb::gil_scoped_release release;  // the first call compiles the builder
          build_block_mask(mask_expression(spec.normalized().mask), spec.captures, shape, cv,
                           reinterpret_cast<CUstream_st*>(stream), caps);
        }
        on_device.pop();
      },
      nb::arg("spec_json"), nb::arg("batch"), nb::arg("heads"), nb::arg("seqlen_q"), nb::arg("seqlen_k"),
      nb::arg("block_q"), nb::arg("block_kv"), nb::arg("cells"), nb::arg("stream") = 0,
      nb::arg("captures") = std::vector<Array>{},
      "Fills `cells` (int32 CUDA tensor [batch, heads, q blocks, kv blocks], contiguous) with the class "
      "of each block of the spec's mask: 0 empty, 1 partial, 2 full. Launches on `stream`.");
}

}  // namespace flashjit::python
