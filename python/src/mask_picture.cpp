// mask_picture: the picture behind flashjit.plot_block_mask (mask_picture.h), on host
// copies of the captured tensors; dropout_keep_mask: the elements a call with dropout keeps.
#include "flashjit/mask_picture.h"

#include <nanobind/ndarray.h>
#include <nanobind/stl/string.h>
#include <nanobind/stl/vector.h>

#include <cstdint>
#include <string>
#include <vector>

#include "bindings.h"
#include "flashjit/cpu_eval.h"
#include "flashjit/error.h"

namespace flashjit::python {

namespace {

using Array = nb::ndarray<nb::device::cpu>;

expr::HostCapture host_capture(const Array& a, const expr::CaptureDecl& d) {
  const std::string name = "captures." + d.name;
  if (static_cast<int>(a.ndim()) != d.rank)
    throw ArgumentError(name, "has " + std::to_string(a.ndim()) + " dims; the spec declares rank " + std::to_string(d.rank));
  if (a.itemsize() != static_cast<size_t>(expr::capture_dtype_size(d.dtype)))
    throw ArgumentError(name, std::string("element size does not match the declared dtype ") + expr::to_string(d.dtype));
  expr::HostCapture h;
  h.data = a.data();
  h.dtype = d.dtype;
  h.rank = d.rank;
  for (int i = 0; i < d.rank; ++i) {
    h.sizes[i] = static_cast<int64_t>(a.shape(i));
    h.strides[i] = a.stride(i);
    if (h.strides[i] < 0) throw ArgumentError(name, "negative strides are not supported");
  }
  return h;
}

}  // namespace

void bind_mask_picture(nb::module_& m) {
  m.def(
      "mask_picture",
      [](const std::string& spec_json, int64_t sq, int64_t sk, const std::vector<Array>& captures, int b, int h,
         int max_side) {
        const AttentionSpec spec = parsed_spec(spec_json);
        if (captures.size() != spec.captures.size())
          throw ArgumentError("captures", std::to_string(captures.size()) + " tensors passed; the spec declares " +
                                              std::to_string(spec.captures.size()));
        std::vector<expr::HostCapture> host;
        for (size_t i = 0; i < captures.size(); ++i) host.push_back(host_capture(captures[i], spec.captures[i]));
        eval::MaskPicture pic;
        {
          nb::gil_scoped_release release;
          pic = eval::mask_picture(spec, sq, sk, host, b, h, max_side);
        }
        nb::dict d;
        d["width"] = pic.width;
        d["height"] = pic.height;
        d["rgb"] = nb::bytes(reinterpret_cast<const char*>(pic.rgb.data()), pic.rgb.size());
        d["block_m"] = pic.block_m;
        d["block_n"] = pic.block_n;
        d["tiles_empty"] = pic.tiles_empty;
        d["tiles_partial"] = pic.tiles_partial;
        d["tiles_full"] = pic.tiles_full;
        return d;
      },
      nb::arg("spec_json"), nb::arg("seqlen_q"), nb::arg("seqlen_k"), nb::arg("captures") = std::vector<Array>{},
      nb::arg("b") = 0, nb::arg("h") = 0, nb::arg("max_side") = 1024,
      "The mask of (b, h) and the kernel's tile classes as an RGB picture (host captures).");

  m.def(
      "dropout_keep_mask",
      [](const std::string& spec_json, int64_t batch, int64_t seqlen_q, int64_t seqlen_k, uint64_t seed,
         uint64_t offset) {
        const AttentionSpec spec = parsed_spec(spec_json);
        // The mask is one byte per element, host memory: bound it before multiplying out.
        constexpr double kMaxElements = 1ull << 36;
        const double elements = static_cast<double>(batch) * spec.num_heads_q * static_cast<double>(seqlen_q) *
                                static_cast<double>(seqlen_k);
        if (elements > kMaxElements)
          throw ArgumentError("shape", "batch " + std::to_string(batch) + " x heads_q " + std::to_string(spec.num_heads_q) +
                                           " x seqlen_q " + std::to_string(seqlen_q) + " x seqlen_k " +
                                           std::to_string(seqlen_k) + " elements; allowed: at most 2^36");
        std::vector<uint8_t> keep;
        {
          nb::gil_scoped_release release;  // one Philox call per element: large masks take a while
          keep = eval::dropout_keep_mask(spec, batch, seqlen_q, seqlen_k, DropoutKey{seed, offset});
        }
        return nb::bytes(reinterpret_cast<const char*>(keep.data()), keep.size());
      },
      nb::arg("spec_json"), nb::arg("batch"), nb::arg("seqlen_q"), nb::arg("seqlen_k"), nb::arg("seed"),
      nb::arg("offset"),
      "The keep-mask of a call with dropout and RNG state (seed, offset), computed on the host from the "
      "kernels' definition (philox.cuh): (batch, heads_q, seqlen_q, seqlen_k) bytes in that order, 1 = "
      "kept, 0 = dropped, whatever the attention mask. SpecError when the spec's dropout_p is 0.");
}

}  // namespace flashjit::python
