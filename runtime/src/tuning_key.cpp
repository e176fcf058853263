// Tuning keys: shape buckets, the device's identity and the key digest.
#include <map>
#include <mutex>

#include "flashjit/cuda_driver.h"
#include "flashjit/disk_cache.h"
#include "flashjit/nvrtc_compiler.h"
#include "flashjit/runtime.h"
#include "flashjit/tuning.h"
#include "tuning_internal.h"

namespace flashjit {

namespace {
int64_t next_pow2(int64_t x, int64_t at_least) {
  int64_t v = at_least;
  while (v < x) v <<= 1;
  return v;
}

// Length-prefixed, so that no two different field values can produce the same material.
std::string field(const char* name, const std::string& value) {
  return std::string(name) + "=" + std::to_string(value.size()) + ":" + value + "\n";
}
}  // namespace

const std::string& code_version() {
  // Once per process: every embedded template, plus the generated source of one kernel per
  // back end (a change in lowering, passes or codegen shows up there).
  static const std::string version = [] {
    std::string m = "flashjit-code\n";
    for (const EmbeddedFile& f : embedded_templates()) m += f.name + std::string(" ") + digest_hex(f.content) + "\n";
    const AttentionSpec sync = spec_from_json(
        R"({"dtype":"bf16","head_dim":128,"mask":{"kind":"sliding_window","left":64,"right":0},)"
        R"("tile":{"block_m":128,"block_n":64,"warps":4,"stages":2}})");
    AttentionSpec wg = sync;
    wg.tile = TileConfig{128, 128, 8, 2, MmaKind::wgmma};
    AttentionSpec ws = sync;
    ws.tile = TileConfig{128, 128, 12, 2, MmaKind::wgmma, PipelineKind::tma_ws};
    m += emit_cuda(sync, "sm_80") + emit_cuda(wg, "sm_90a") + emit_cuda(ws, "sm_90a");
    return digest_hex(m).substr(0, 16);
  }();
  return version;
}

ShapeBucket shape_bucket(int64_t batch, int64_t heads_q, int64_t seqlen_q, int64_t seqlen_k) {
  // Powers of two: a tile's efficiency changes with the number of tiles and waves, which
  // moves slowly with size; finer buckets would only multiply tuning runs.
  ShapeBucket b;
  b.seqlen_q = next_pow2(seqlen_q, 64);
  b.seqlen_k = next_pow2(seqlen_k, 64);
  b.batch_heads = next_pow2(batch * heads_q, 1);
  return b;
}

std::string to_string(const ShapeBucket& b) {
  return "sq<=" + std::to_string(b.seqlen_q) + " sk<=" + std::to_string(b.seqlen_k) +
         " bh<=" + std::to_string(b.batch_heads);
}

std::string to_string(const TileConfig& t) {
  return std::to_string(t.block_m) + "x" + std::to_string(t.block_n) + " w" + std::to_string(t.warps) + " s" +
         std::to_string(t.stages) + (t.mma == MmaKind::wgmma ? " wgmma" : "") +
         (t.pipeline == PipelineKind::tma_ws ? " tma_ws" : "") + (t.pingpong ? " pingpong" : "") +
         (t.persistent ? " persistent" : "");
}

namespace detail {
DeviceInfo device_info(CUdevice dev) {
  // Asked on every forward() of an untiled spec: query each device once.
  static std::mutex mu;
  static std::map<CUdevice, DeviceInfo> known;
  std::lock_guard<std::mutex> lock(mu);
  auto it = known.find(dev);
  if (it != known.end()) return it->second;
  CudaDriver& drv = CudaDriver::get();
  DeviceInfo info;
  info.gpu_name = drv.device_name(dev);
  info.sm_count = drv.device_attribute(dev, CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT);
  info.driver_version = drv.driver_version();
  info.arch = drv.device_arch(dev);
  return known.emplace(dev, info).first->second;
}
}  // namespace detail

DeviceInfo current_device_info() {
  CudaDriver& drv = CudaDriver::get();
  drv.require("flashjit::current_device_info");
  return detail::device_info(drv.current_device());
}

std::string TuningKey::digest() const {
  std::string m = "flashjit-tuning-key\nschema=" + std::to_string(kTuningSchemaVersion) + "\n";
  if (kind != "fwd") m += field("kind", kind);  // fwd keys keep their digests
  m += field("spec", spec_json);
  m += "bucket=" + std::to_string(bucket.seqlen_q) + "," + std::to_string(bucket.seqlen_k) + "," +
       std::to_string(bucket.batch_heads) + "\n";
  m += field("gpu", gpu_name);
  m += "sms=" + std::to_string(sm_count) + "\n";
  m += "driver=" + std::to_string(driver_version) + "\n";
  m += field("nvrtc", nvrtc_version);
  m += field("arch", arch);
  m += field("code", code_version);
  return digest_hex(m);
}

bool TuningKey::operator==(const TuningKey& o) const {
  return kind == o.kind && spec_json == o.spec_json && bucket == o.bucket && gpu_name == o.gpu_name && sm_count == o.sm_count &&
         driver_version == o.driver_version && nvrtc_version == o.nvrtc_version && arch == o.arch &&
         code_version == o.code_version;
}

TuningKey make_tuning_key(const AttentionSpec& spec, const ShapeBucket& bucket, const DeviceInfo& device,
                          const std::string& kind) {
  TuningKey k;
  k.kind = kind;
  k.spec_json = spec_to_json(without_tile(spec));
  k.bucket = bucket;
  k.gpu_name = device.gpu_name;
  k.sm_count = device.sm_count;
  k.driver_version = device.driver_version;
  k.nvrtc_version = nvrtc_version_string();
  k.arch = device.arch;
  k.code_version = code_version();
  return k;
}

}  // namespace flashjit
