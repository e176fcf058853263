// forward(): tensors come in through DLPack (nb::ndarray<>), so torch, CuPy, JAX or any
// producer of __dlpack__ works without this module depending on any of them.
#include <nanobind/ndarray.h>
#include <nanobind/stl/optional.h>
#include <nanobind/stl/string.h>

#include <cstdint>
#include <optional>
#include <string>

#include "bindings.h"
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

}  // namespace

void bind_forward(nb::module_& m) {
  m.def(
      "forward",
      [](const std::string& spec_json, const Array& q, const Array& k, const Array& v,
         const Array& o, std::optional<Array> lse, uintptr_t stream) {
        const AttentionSpec spec = parsed_spec(spec_json);
        int32_t device = -1;
        const TensorView qv = view_of(q, "q", 4, &device);
        const TensorView kv = view_of(k, "k", 4, &device);
        const TensorView vv = view_of(v, "v", 4, &device);
        const TensorView ov = view_of(o, "o", 4, &device);
        std::optional<TensorView> lv;
        if (lse) lv = view_of(*lse, "lse", 3, &device);
        nb::gil_scoped_release release;  // the first call of a spec may compile (seconds)
        forward(spec, qv, kv, vv, ov, lv ? &*lv : nullptr, reinterpret_cast<CUstream_st*>(stream));
      },
      nb::arg("spec_json"), nb::arg("q"), nb::arg("k"), nb::arg("v"), nb::arg("o"),
      nb::arg("lse").none() = nb::none(), nb::arg("stream") = 0,
      "Attention forward on DLPack CUDA tensors of logical shape (batch, heads, seqlen, dim) "
      "(last dim contiguous); lse is float32 (batch, heads_q, seqlen_q). Launches on `stream` "
      "(a CUstream as an int; 0 = the legacy default stream) and returns without synchronising.");
}

}  // namespace flashjit::python
