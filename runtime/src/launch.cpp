// Loading kernels into contexts and launching them.
#include "launch.h"

#include <functional>
#include <map>
#include <mutex>
#include <utility>

#include <fmt/format.h>

#include <algorithm>
#include <cstring>
#include <stdexcept>

#include "flashjit/cuda_driver.h"
#include "flashjit/error.h"

namespace flashjit {

// Modules are per context: key by (context, the kernel's identity + arch).
const LoadedKernel& loaded_module(CUcontext ctx, const std::string& key, const std::function<CompiledKernel()>& compile_fn) {
  static std::mutex mu;
  static std::map<std::pair<CUcontext, std::string>, LoadedKernel> loaded;
  std::lock_guard<std::mutex> lock(mu);
  auto it = loaded.find({ctx, key});
  if (it != loaded.end()) return it->second;

  CudaDriver& drv = CudaDriver::get();
  LoadedKernel lk;
  lk.info = compile_fn();
  drv.check(drv.cuModuleLoadData(&lk.module, lk.info.image.data()), "cuModuleLoadData");
  drv.check(drv.cuModuleGetFunction(&lk.function, lk.module, lk.info.kernel_name.c_str()), "cuModuleGetFunction");
  // More than 48 KB of dynamic shared memory must be opted into per function.
  if (lk.info.dynamic_smem_bytes > 0)
    drv.check(drv.cuFuncSetAttribute(lk.function, CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES,
                                     lk.info.dynamic_smem_bytes),
              "cuFuncSetAttribute(MAX_DYNAMIC_SHARED_SIZE_BYTES)");
  return loaded.emplace(std::make_pair(ctx, key), std::move(lk)).first->second;
}

const LoadedKernel& loaded_kernel(const AttentionSpec& spec, CUcontext ctx, const std::string& arch, bool quick) {
  return loaded_module(ctx, spec_to_json(spec) + "@" + arch + (quick ? "#quick" : ""), [&] {
    CompileOptions opts;
    opts.arch = arch;
    opts.quick = quick;
    return compile(spec, opts);
  });
}

FwdParams make_params(const TensorView& q, const TensorView& k, const TensorView& v, const TensorView& o,
                      const TensorView* lse, const ProblemShape& shape, const std::vector<TensorView>& captures) {
  FwdParams p{};
  p.q = q.data, p.k = k.data, p.v = v.data, p.o = o.data;
  p.lse = lse ? static_cast<float*>(lse->data) : nullptr;
  p.q_batch_stride = q.strides[0], p.q_head_stride = q.strides[1], p.q_row_stride = q.strides[2];
  p.k_batch_stride = k.strides[0], p.k_head_stride = k.strides[1], p.k_row_stride = k.strides[2];
  p.v_batch_stride = v.strides[0], p.v_head_stride = v.strides[1], p.v_row_stride = v.strides[2];
  p.o_batch_stride = o.strides[0], p.o_head_stride = o.strides[1], p.o_row_stride = o.strides[2];
  if (lse) p.lse_batch_stride = lse->strides[0], p.lse_head_stride = lse->strides[1];
  p.seqlen_q = static_cast<int>(shape.seqlen_q);
  p.seqlen_k = static_cast<int>(shape.seqlen_k);
  p.num_heads_q = static_cast<int>(shape.heads_q);
  p.gqa_group = static_cast<int>(shape.heads_q / shape.heads_kv);
  p.batch = static_cast<int>(shape.batch);
  set_captures(p, captures);
  return p;
}

void set_captures(FwdParams& p, const std::vector<TensorView>& captures) {
  for (size_t i = 0; i < captures.size() && i < static_cast<size_t>(kMaxCaptures); ++i) {
    const TensorView& c = captures[i];
    p.caps[i].data = c.data;
    for (int d = 0; d < c.rank; ++d) {
      p.caps[i].strides[d] = c.strides[d];
      p.caps[i].sizes[d] = static_cast<int>(c.sizes[d]);  // < 2^31: validate_capture_args
    }
  }
}

void set_dropout(FwdParams& p, const DropoutRng& rng) {
  p.dropout_seed = rng.seed;
  p.dropout_offset = rng.offset;
  p.dropout_state = reinterpret_cast<const unsigned long long*>(rng.device_state);
}

namespace {
// One tensor's map: {64 columns, rows, cols / 64 slabs, heads, batch}, innermost first, with
// byte strides {row, 128, head, batch}; the box is one tile of `box_rows` rows, all slabs.
TensorMap encode_map(const char* name, const TensorView& t, int box_rows) {
  CudaDriver& drv = CudaDriver::get();
  const int64_t cols = t.sizes[3];
  const cuuint64_t dims[5] = {64, static_cast<cuuint64_t>(t.sizes[2]), static_cast<cuuint64_t>(cols / 64),
                              static_cast<cuuint64_t>(t.sizes[1]), static_cast<cuuint64_t>(t.sizes[0])};
  const cuuint64_t strides[4] = {static_cast<cuuint64_t>(t.strides[2] * 2), 128, static_cast<cuuint64_t>(t.strides[1] * 2),
                                 static_cast<cuuint64_t>(t.strides[0] * 2)};
  const cuuint32_t box[5] = {64, static_cast<cuuint32_t>(box_rows), static_cast<cuuint32_t>(cols / 64), 1, 1};
  const cuuint32_t elem_strides[5] = {1, 1, 1, 1, 1};
  CUtensorMap map;
  const CUresult r = drv.cuTensorMapEncodeTiled(
      &map, t.dtype == ElemType::bf16 ? CU_TENSOR_MAP_DATA_TYPE_BFLOAT16 : CU_TENSOR_MAP_DATA_TYPE_FLOAT16, 5, t.data,
      dims, strides, box, elem_strides, CU_TENSOR_MAP_INTERLEAVE_NONE, CU_TENSOR_MAP_SWIZZLE_128B,
      CU_TENSOR_MAP_L2_PROMOTION_L2_256B, CU_TENSOR_MAP_FLOAT_OOB_FILL_NONE);
  if (r != CUDA_SUCCESS) {
    const char* err = nullptr;
    if (drv.cuGetErrorName(r, &err) != CUDA_SUCCESS) err = "unknown error";
    throw ArgumentError(name, fmt::format("the TMA descriptor cannot describe this tensor (cuTensorMapEncodeTiled: {}; "
                                          "sizes {}x{}x{}x{}, strides {} {} {} elements)",
                                          err, t.sizes[0], t.sizes[1], t.sizes[2], t.sizes[3], t.strides[0],
                                          t.strides[1], t.strides[2]));
  }
  static_assert(sizeof(CUtensorMap) == sizeof(TensorMap) && alignof(CUtensorMap) == alignof(TensorMap),
                "templates/flashjit/tensor_map.cuh must match cuda.h's CUtensorMap");
  TensorMap out;
  std::memcpy(&out, &map, sizeof out);
  return out;
}
}  // namespace

bool tma_compatible(const TensorView& q, const TensorView& k, const TensorView& v) {
  // The encoder takes byte strides that are multiples of 16 (the forward's checks already
  // ask for 16-byte aligned rows) and below 2^40 (the checks allow up to 2^48).
  for (const TensorView* t : {&q, &k, &v})
    for (int d = 0; d < 3; ++d)
      if (t->strides[d] <= 0 || t->strides[d] * 2 >= (int64_t(1) << 40)) return false;
  return true;
}

FwdTmaMaps make_tma_maps(const TensorView& q, const TensorView& k, const TensorView& v, const TileConfig& tile) {
  FwdTmaMaps m;
  m.q = encode_map("q", q, tile.block_m);
  m.k = encode_map("k", k, tile.block_n);
  m.v = encode_map("v", v, tile.block_n);
  return m;
}

namespace {
// The SM count of the current context's device, queried once per device.
int current_sm_count() {
  static std::mutex mu;
  static std::map<CUdevice, int> counts;
  CudaDriver& drv = CudaDriver::get();
  CUdevice dev = 0;
  drv.check(drv.cuCtxGetDevice(&dev), "cuCtxGetDevice");
  std::lock_guard<std::mutex> lock(mu);
  auto it = counts.find(dev);
  if (it == counts.end())
    it = counts.emplace(dev, drv.device_attribute(dev, CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT)).first;
  return it->second;
}
}  // namespace

void launch(const LoadedKernel& kernel, const TileConfig& tile, FwdParams p, const ProblemShape& shape,
            CUstream stream, const FwdTmaMaps* maps) {
  CudaDriver& drv = CudaDriver::get();
  const int64_t q_tiles = (shape.seqlen_q + tile.block_m - 1) / tile.block_m;
  unsigned grid_x = static_cast<unsigned>(q_tiles), grid_y = static_cast<unsigned>(shape.heads_q),
           grid_z = static_cast<unsigned>(shape.batch);
  if (tile.persistent) {  // one block per SM walks the (q tile, head, batch) items (block_context.cuh)
    const int64_t work = q_tiles * shape.heads_q * shape.batch;
    grid_x = static_cast<unsigned>(std::min<int64_t>(work, current_sm_count()));
    grid_y = grid_z = 1;
  }
  if ((tile.pipeline == PipelineKind::tma_ws) != (maps != nullptr))
    throw std::logic_error("flashjit: launch() of a tma_ws kernel needs its TMA maps (and only such a kernel takes them)");
  FwdTmaMaps m = maps ? *maps : FwdTmaMaps{};
  void* args_ws[] = {&p, &m};
  void* args_plain[] = {&p};
  void** args = maps ? args_ws : args_plain;
  drv.check(drv.cuLaunchKernel(kernel.function, grid_x, grid_y, grid_z, kernel.info.threads, 1, 1,
                               kernel.info.dynamic_smem_bytes, stream, args, nullptr),
            "cuLaunchKernel");
}

}  // namespace flashjit
