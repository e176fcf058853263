// Codegen: tile IR (after passes) -> one readable CUDA C++ translation unit.
//
// Every IR op becomes a comment holding the op, followed by the call of the device
// template that implements it (templates/flashjit/*.cuh). Users read this file when
// debugging, so the structure mirrors the IR line by line.
#include <fmt/format.h>

#include <cmath>
#include <sstream>
#include <stdexcept>
#include <vector>

#include "flashjit/codegen.h"
#include "flashjit/expr.h"
#include "flashjit/ir.h"
#include "flashjit/passes.h"
#include "flashjit/philox.cuh"

namespace flashjit::codegen {
namespace {

// The op's printed IR form, as the comment above its code.
std::string op_comment(const ir::Op& op, const std::string& indent) { return indent + "// " + ir::print(op) + "\n"; }

class Emitter {
 public:
  explicit Emitter(const ir::Kernel& k)
      : k_(k),
        spec_(k.spec),
        tile_(*k.spec.tile),
        wgmma_(k.spec.tile->mma == MmaKind::wgmma),
        ws_(k.spec.tile->pipeline == PipelineKind::tma_ws),
        pingpong_(k.spec.tile->pingpong),
        persistent_(k.spec.tile->persistent),
        continues_(persistent_ || (ws_ && k.loop.classes.by_interval)),
        score_splits_(score_hook_splits(k.spec.score_mod, k.spec.captures)) {}

  std::string run() {
    if (k_.loop.stages < 2) throw std::logic_error("codegen: run the pipeline_loads pass first (stages >= 2)");
    header();
    preamble();
    entry();
    return out_.str();
  }

 private:
  const ir::Kernel& k_;
  const AttentionSpec& spec_;
  const TileConfig& tile_;
  const bool wgmma_;  // sm_90a warpgroup path: swizzled tiles, wgmma GEMMs
  const bool ws_;     // ... warp-specialised: a TMA producer warpgroup (fwd_ws_sm90.cuh)
  const bool pingpong_;  // ... whose 2 consumer warpgroups take turns on the tensor cores
  const bool persistent_;  // ... one block per SM walking (q tile, head, batch) work items
  const bool continues_;   // the rings' uses continue across work items or tile-list chunks
  const bool score_splits_;  // score_mod has a narrow-index form (score_hook_splits)
  std::ostringstream out_;

  // The shared-memory tile loader of the path.
  std::string loader() const { return wgmma_ ? "load_tile_sw128_async" : "load_tile_async"; }

  void header() {
    out_ << "// flashjit generated kernel: " << k_.name << "\n";
    out_ << "// Regenerate with: flashjit emit --spec '" << spec_to_json(spec_) << "'\n";
    out_ << "//\n// Tile IR after passes:\n";
    std::istringstream ir_text(ir::print(k_));
    for (std::string line; std::getline(ir_text, line);) out_ << "//   " << line << "\n";
    out_ << "//\n// Launch: grid (ceil(seqlen_q / " << tile_.block_m << "), num_heads_q, batch), block "
         << 32 * tile_.warps << " threads, dynamic shared memory T::SMEM_BYTES"
         << (ws_ ? "; parameters FwdParams and the\n// TMA descriptors of Q, K and V (FwdTmaMaps, encoded per launch)" : "") << ".\n\n";
  }

  void preamble() {
    const std::vector<const char*> sm80 = {"fwd_traits", "smem_tile", "warp_gemm_sm80"};
    const std::vector<const char*> sm90 = {"fwd_traits_sm90", "smem_tile_sw128", "mbarrier", "warpgroup_gemm_sm90"};
    for (const char* h : {"fwd_params", "band_mask", "block_context", "fragments"})
      out_ << "#include \"flashjit/" << h << ".cuh\"\n";
    for (const char* h : wgmma_ ? sm90 : sm80) out_ << "#include \"flashjit/" << h << ".cuh\"\n";
    if (ws_) out_ << "#include \"flashjit/fwd_ws_sm90.cuh\"\n";
    for (const char* h : {"apply_mask", "kv_tiles", "online_softmax", "epilogue"})
      out_ << "#include \"flashjit/" << h << ".cuh\"\n";
    if (has_hooks()) out_ << "#include \"flashjit/score_hooks.cuh\"\n";
    if (dropout_op()) out_ << "#include \"flashjit/dropout.cuh\"\n";
    const ir::BandMask& b = k_.loop.mask;
    out_ << "\nnamespace {\n\n";
    if (ws_)
      out_ << fmt::format("using T = flashjit::FwdTraitsSm90Ws<flashjit::{}, /*D=*/{}, /*DV=*/{}, /*BM=*/{}, /*BN=*/{}, "
                          "/*STAGES=*/{}{}>;\n",
                          spec_.dtype == DType::bf16 ? "BF16" : "F16", spec_.head_dim, spec_.head_dim_v, tile_.block_m,
                          tile_.block_n, tile_.stages, listed() ? ", /*LISTS=*/true" : "");
    else
      out_ << fmt::format("using T = flashjit::{}<flashjit::{}, /*D=*/{}, /*DV=*/{}, /*BM=*/{}, /*BN=*/{}, "
                          "/*WARPS=*/{}, /*STAGES=*/{}>;\n",
                          wgmma_ ? "FwdTraitsSm90" : "FwdTraits", spec_.dtype == DType::bf16 ? "BF16" : "F16",
                          spec_.head_dim, spec_.head_dim_v, tile_.block_m, tile_.block_n, tile_.warps, tile_.stages);
    if (ws_) out_ << fmt::format("static_assert(T::THREADS == {}, \"host and device disagree on the block size\");\n",
                                 32 * tile_.warps);
    // The host launches with the size the legality pass computed; the two must agree.
    out_ << fmt::format("static_assert(T::SMEM_BYTES{} == {}, \"host and device disagree on shared memory\");\n\n",
                        !listed() ? "" : ws_ ? " + flashjit::WsLists::BYTES" : " + flashjit::kTileListBytes",
                        passes::smem_bytes(spec_, tile_));
    const ir::Op* softmax = find_op(ir::OpKind::online_softmax);
    const double scale_log2 = softmax ? softmax->float_attr("scale_log2") : spec_.effective_scale() * M_LOG2E;
    if (spec_.score_mod.empty()) {
      out_ << fmt::format("// softmax_scale = {:.9g}; scores are scaled into the log2 domain.\n", spec_.effective_scale());
      out_ << fmt::format("constexpr float kScaleLog2 = {:.9g}f;  // softmax_scale * log2(e)\n\n", scale_log2);
    } else {
      out_ << fmt::format("// softmax_scale = {:.9g}, applied before score_mod; the softmax converts to log2.\n",
                          spec_.effective_scale());
      out_ << fmt::format("constexpr float kScale = {:.9g}f;\n", spec_.effective_scale());
      out_ << fmt::format("constexpr float kScaleLog2 = {:.9g}f;  // log2(e)\n\n", scale_log2);
    }
    if (const ir::Op* d = dropout_op()) {
      const int64_t threshold = d->int_attr("threshold");
      out_ << fmt::format("// Dropout p = {:.9g}: an element is dropped when its 8-bit Philox number (philox.cuh) is\n"
                          "// below floor(p * 256); the kept ones are scaled by 256 / (256 - threshold).\n",
                          d->float_attr("p"));
      out_ << fmt::format("constexpr flashjit::u32 kDropThreshold = {};\n", threshold);
      out_ << fmt::format("constexpr float kDropScale = {};\n\n",
                          float_literal(dropout_keep_scale(static_cast<uint32_t>(threshold))));
    }
    hooks();
    if (!k_.loop.mask_expr.empty())
      out_ << "// Mask custom: key j visible to query i iff j < seqlen_k and mask_mod(b, h, i, j).\n";
    else
      out_ << fmt::format("// Mask {}: key j visible to query i iff j < seqlen_k and {}.\n", to_string(spec_.mask.kind),
                          band_condition(b));
    out_ << "__device__ __forceinline__ flashjit::Band make_band(const flashjit::FwdParams& params) {\n";
    out_ << fmt::format("  return flashjit::Band{{/*has_lo=*/{}, /*has_hi=*/{}, /*lo=*/{}, /*hi=*/{}, /*offset=*/{}}};\n",
                        b.lo ? "true" : "false", b.hi ? "true" : "false", b.lo.value_or(0), b.hi.value_or(0),
                        b.bottom_right ? "(long long)params.seqlen_k - params.seqlen_q" : "0");
    out_ << "}\n\n}  // namespace\n\n";
  }

  // Band tiles are a contiguous range: the t-th tile is range.begin + t, as FlashAttention
  // writes it. Classified tiles come from a list in shared memory, built per chunk.
  bool listed() const { return k_.loop.classes.by_interval; }
  // The tile of copy step `step`.
  std::string copy_tile(const std::string& step) const {
    return listed() ? "tiles.at(" + step + ")" : "tiles.r.begin + " + step;
  }
  // The loop header over the tiles, with `r` the iteration and `kv` its tile.
  std::string loop_header(const std::string& kv) const {
    if (listed()) return fmt::format("  for (int r = 0; r < n_tiles; ++r) {{\n    const int {} = tiles.at(r);\n", kv);
    return fmt::format("  for (int {0} = tiles.r.begin; {0} < tiles.r.end; ++{0}) {{\n    const int r = {0} - tiles.r.begin;\n", kv);
  }
  // Closes the chunk loop of a listed kernel (opened in kv_range).
  void chunk_close() {
    if (listed()) out_ << "  }  // chunk\n\n";
  }

  bool has_hooks() const { return !k_.loop.mask_expr.empty() || !spec_.score_mod.empty(); }

  const ir::Op* dropout_op() const { return find_op(ir::OpKind::dropout); }
  // The dropout op, first half: the keep flags of the tile's elements (dropout.cuh), drawn
  // right after the softmax. The second half masks P once it is packed for the P·V GEMM.
  void dropout_keep_flags() {
    out_ << "    u32 keep[T::MT][T::BN / 16][2];  // keep flags: bit 7 of each byte (dropout.cuh)\n";
    out_ << fmt::format("    dropout_keep_tile<T, kDropThreshold>(keep, dkey, drop_bh, blk.q0, {}, blk.warp, blk.lane);\n",
                        k_.loop.induction);
  }
  // `packed`: P's A fragments of slice mt (mma.sync: T::MT slices; wgmma: one, MT = 1).
  void dropout_mask_packed(const std::string& packed, const std::string& result, bool per_slice) {
    const std::string comment = "%" + result + " = P with the dropped elements 0";
    if (per_slice) {
      out_ << "#pragma unroll\n";
      out_ << fmt::format("    for (int mt = 0; mt < T::MT; ++mt) drop_packed<T::BN / 16>({}[mt], keep[mt], blk.lane);  // {}\n",
                          packed, comment);
    } else {
      out_ << fmt::format("    drop_packed<T::BN / 16>({}, keep[0], blk.lane);  // {}\n", packed, comment);
    }
  }

  const ir::Op* find_op(ir::OpKind kind) const {
    for (const ir::Op& op : k_.loop.body)
      if (op.kind == kind) return &op;
    return nullptr;
  }

  // The user's expressions as device functions (expr_hooks.cpp).
  void hooks() {
    out_ << capture_comments(spec_.captures);
    if (!k_.loop.mask_expr.empty()) out_ << mask_hooks(k_.loop.mask_expr, spec_.captures);
    if (!spec_.score_mod.empty()) out_ << score_hook(spec_.score_mod, spec_.captures);
  }

  static std::string band_condition(const ir::BandMask& b) {
    if (b.is_trivial()) return "always";
    const std::string d = b.bottom_right ? "j - i - (seqlen_k - seqlen_q)" : "j - i";
    std::string s;
    if (b.lo) s += std::to_string(*b.lo) + " <= ";
    s += d;
    if (b.hi) s += " <= " + std::to_string(*b.hi);
    return s;
  }

  void entry() {
    if (ws_)
      out_ << fmt::format("extern \"C\" __global__ void __launch_bounds__({}, 1)\n{}(const flashjit::FwdParams params, "
                          "const __grid_constant__ flashjit::FwdTmaMaps maps) {{\n",
                          32 * tile_.warps, k_.name);
    else
      out_ << fmt::format("extern \"C\" __global__ void __launch_bounds__({}) {}(const flashjit::FwdParams params) {{\n",
                          32 * tile_.warps, k_.name);
    out_ << "  using namespace flashjit;\n";
    if (wgmma_) {
      out_ << "  extern __shared__ __align__(1024) unsigned char smem[];\n";
      out_ << "  // wgmma's 128-byte swizzle needs 1024-byte aligned tiles.\n";
      out_ << "  const u32 q_smem = (smem_addr(smem) + 1023u) & ~1023u;    // Q tile\n";
    } else {
      out_ << "  extern __shared__ __align__(128) unsigned char smem[];\n";
      out_ << "  const u32 q_smem = smem_addr(smem);                       // Q tile\n";
    }
    out_ << "  const u32 k_smem = q_smem + T::Q_BYTES;                   // STAGES K tiles\n";
    out_ << "  const u32 v_smem = k_smem + T::STAGES * T::K_STAGE_BYTES; // STAGES V tiles\n";
    if (listed() && !ws_)
      out_ << fmt::format("  const u32 list_smem = v_smem + T::STAGES * T::V_STAGE_BYTES{};  // tile list (kv_tiles.cuh)\n",
                          wgmma_ ? " + T::BARRIER_BYTES" : "");
    if (persistent_) return entry_persistent();
    out_ << fmt::format("  const BlockContext blk = block_context<T::BM>(params, /*reverse_tiles=*/{});\n",
                        k_.grid.reverse_q_tiles ? "true" : "false");
    work_item_context("  ");
    out_ << "\n";
    if (ws_) roles();
    for (const ir::Op& op : k_.prologue) prologue_op(op);
    // mma.sync: the FlashAttention-2 loop; wgmma: the loop with P·V one tile behind.
    if (wgmma_) loop_overlapped();
    else loop();
    for (const ir::Op& op : k_.epilogue) epilogue_op(op);
    out_ << "}\n";
  }

  // What a work item needs beside its BlockContext: the band, dropout's key.
  void work_item_context(const std::string& indent) {
    out_ << indent << "const Band band = make_band(params);\n";
    if (dropout_op())
      out_ << indent << "const DropoutKey dkey = dropout_key(params);  // dropout's RNG state\n"
           << indent << "const u32 drop_bh = dropout_bh(params, blk.batch, blk.head);\n";
  }

  // Emits what `body` writes, indented by two more spaces (a loop's body).
  template <class Body>
  void indented(Body body) {
    std::ostringstream saved;
    saved << out_.str();
    out_.str("");
    out_.clear();
    body();
    std::istringstream inner(out_.str());
    out_.str("");
    out_.clear();
    out_ << saved.str();
    for (std::string line; std::getline(inner, line);) out_ << (line.empty() ? "" : "  ") << line << "\n";
  }

  // The persistent warp-specialised kernel: every role walks the same work items
  // w = blockIdx.x, blockIdx.x + gridDim.x, ... (block_context.cuh); the rings' uses and Q's
  // barrier phases continue from item to item.
  void entry_persistent() {
    const char* reverse = k_.grid.reverse_q_tiles ? "true" : "false";
    out_ << "  // The rings' mbarriers after the tiles (WsBarriers: q_full, k_full, v_full, k_empty, v_empty, q_empty).\n";
    out_ << "  const WsBarriers<T::STAGES> bars{v_smem + T::STAGES * T::V_STAGE_BYTES};\n";
    out_ << "  if (threadIdx.x == 0) bars.init(T::CONSUMER_THREADS);\n";
    out_ << "  __syncthreads();\n";
    out_ << "  const long long n_work = work_count<T::BM>(params);  // (q tile, head, batch) items\n";
    out_ << "  int uses = 0, item = 0;  // the rings' uses so far; the work items so far\n";
    out_ << "  if ((int)threadIdx.x / 32 >= T::CONSUMER_WARPS) {  // the producer warpgroup\n";
    out_ << "    if (T::MOVE_REGS) setmaxnreg_dec<T::PRODUCER_REGS>();\n";
    out_ << "    if ((int)threadIdx.x / 32 == T::CONSUMER_WARPS && threadIdx.x % 32 == 0)\n";
    out_ << "      for (long long w = blockIdx.x; w < n_work; w += gridDim.x, ++item) {\n";
    out_ << fmt::format("        const BlockContext blk = block_context_at<T::BM>(params, w, /*reverse_tiles=*/{});\n", reverse);
    out_ << "        const Band band = make_band(params);\n";
    out_ << "        const BandTiles tiles{band_kv_tiles(band, blk.q0, T::BM, params.seqlen_q, params.seqlen_k, T::BN)};\n";
    out_ << "        const int n_tiles = tiles.count();\n";
    out_ << "        ws_produce<T>(bars, maps, q_smem, k_smem, v_smem, blk, n_tiles, [&](int i) { return tiles.at(i); }, uses, item);\n";
    out_ << "        uses += n_tiles;\n";
    out_ << "      }\n";
    out_ << "    return;\n  }\n";
    consumers_start("(int)threadIdx.x / 128");
    out_ << "  for (long long w = blockIdx.x; w < n_work; w += gridDim.x, ++item) {\n";
    indented([&] {
      out_ << fmt::format("  const BlockContext blk = block_context_at<T::BM>(params, w, /*reverse_tiles=*/{});\n", reverse);
      work_item_context("  ");
      kv_range("; P·V one tile behind (overlap_pv); copies by the producer warpgroup (TMA)");
      for (const ir::Op& op : k_.prologue) prologue_op(op);
      loop_overlapped();
      for (const ir::Op& op : k_.epilogue) epilogue_op(op);
      out_ << "  uses += n_tiles;\n";
    });
    out_ << "  }\n";
    if (pingpong_) out_ << "  turns.finish();\n";
    out_ << "}\n";
  }

  // Where the consumer warpgroups of a warp-specialised block begin: they take the
  // producer's registers and, with ping-pong, set up their turns (`wg`: this warpgroup).
  void consumers_start(const std::string& wg) {
    out_ << "  // The consumer warpgroups: 64 query rows each.\n";
    out_ << "  if (T::MOVE_REGS) setmaxnreg_inc<T::CONSUMER_REGS>();\n";
    if (pingpong_) {
      out_ << "  const PingPong turns{" << wg << "};  // the warpgroups take turns issuing GEMMs\n";
      out_ << "  turns.start();\n";
    }
  }

  // The warp-specialised block's split (fwd_ws_sm90.cuh): the tile sequence and the rings'
  // mbarriers first, then the producer warpgroup's thread issues every TMA copy while the
  // others continue as the consumers below.
  void roles() {
    if (listed()) return roles_listed();
    kv_range("; P·V one tile behind (overlap_pv); copies by the producer warpgroup (TMA)");
    out_ << "  // The rings' mbarriers after the tiles (WsBarriers: q_full, k_full, v_full, k_empty, v_empty).\n";
    out_ << "  const WsBarriers<T::STAGES> bars{v_smem + T::STAGES * T::V_STAGE_BYTES};\n";
    out_ << "  if (blk.tid == 0) bars.init(T::CONSUMER_THREADS);\n";
    out_ << "  __syncthreads();\n";
    out_ << "  if (blk.warp >= T::CONSUMER_WARPS) {  // the producer warpgroup\n";
    out_ << "    if (T::MOVE_REGS) setmaxnreg_dec<T::PRODUCER_REGS>();\n";
    out_ << "    if (blk.warp == T::CONSUMER_WARPS && blk.lane == 0)\n";
    out_ << "      ws_produce<T>(bars, maps, q_smem, k_smem, v_smem, blk, n_tiles, [&](int i) { return tiles.at(i); });\n";
    out_ << "    return;\n  }\n";
    consumers_start("blk.warp / 4");
  }

  // The split of a warp-specialised block whose tiles are classified at run time: the
  // producer warpgroup lists each chunk's tiles (all 128 threads, on their own named barrier)
  // into one of two list buffers (WsLists), publishes it, and its first thread issues the
  // chunk's copies; the consumers read the list (loop_overlapped opens their chunk loop).
  void roles_listed() {
    out_ << "  // The rings' mbarriers after the tiles, then the two tile-list buffers (WsLists).\n";
    out_ << "  const WsBarriers<T::STAGES> bars{v_smem + T::STAGES * T::V_STAGE_BYTES};\n";
    out_ << "  const WsLists lists{bars.base + T::BARRIER_BYTES};\n";
    out_ << "  if (blk.tid == 0) {\n    bars.init(T::CONSUMER_THREADS);\n    lists.init(T::CONSUMER_THREADS);\n  }\n";
    out_ << "  __syncthreads();\n";
    out_ << "  const int n_all = (params.seqlen_k + T::BN - 1) / T::BN;  // KV tiles before classification\n";
    out_ << "  if (blk.warp >= T::CONSUMER_WARPS) {  // the producer warpgroup\n";
    out_ << "    if (T::MOVE_REGS) setmaxnreg_dec<T::PRODUCER_REGS>();\n";
    out_ << "    const int ptid = blk.tid - T::CONSUMER_THREADS;\n";
    classify_lambda("    ");
    out_ << "    if (ptid == 0) ws_produce_q<T>(bars, maps, q_smem, blk);\n";
    out_ << "    int uses = 0;  // the rings' uses so far (they continue across chunks)\n";
    out_ << "    for (int chunk = 0, c = 0; chunk < n_all; chunk += kTileListCap, ++c) {\n";
    out_ << "      int* const list = lists.list(smem, c);\n";
    out_ << "      if (c >= 2) mbarrier_wait(lists.empty(c), WsLists::parity(c - 2));  // chunk c - 2's list is read\n";
    out_ << "      const ListTiles tiles = build_tile_list_with<128>(list, chunk, (int)fj_min(chunk + kTileListCap, n_all), "
            "classify, ptid, producer_sync);\n";
    out_ << "      if (ptid == 0) {\n";
    out_ << "        list[kTileListCountSlot] = tiles.count();\n";
    out_ << "        __threadfence_block();  // the whole list before its publication\n";
    out_ << "        mbarrier_arrive(lists.full(c));\n";
    out_ << "        ws_produce_kv<T>(bars, maps, k_smem, v_smem, blk, tiles.count(), [&](int i) { return tiles.at(i); }, uses);\n";
    out_ << "      }\n";
    out_ << "      uses += tiles.count();\n";
    out_ << "    }\n";
    out_ << "    return;\n  }\n";
    consumers_start("blk.warp / 4");
  }

  void prologue_op(const ir::Op& op) {
    out_ << op_comment(op, "  ");
    switch (op.kind) {
      case ir::OpKind::load_tile:
        if (ws_) {
          out_ << fmt::format("  mbarrier_wait(bars.q_full(), {});  // Q has landed (the producer's TMA copy)\n",
                              persistent_ ? "item & 1" : "0");
          break;
        }
        out_ << "  " << loader() << "<T::BM, T::D, T::THREADS>(q_smem, q_rows_ptr(params, blk), params.q_row_stride, blk.q_rows, blk.tid);\n";
        out_ << "  cp_async_commit();\n";
        break;
      case ir::OpKind::fill: {
        const double v = op.float_attr("value");
        const std::string value = std::isinf(v) ? "neg_inf()" : float_literal(v);
        if (op.type.cols == 1) out_ << fmt::format("  RowVec<T> {};\n  {}.fill({});\n", op.results[0], op.results[0], value);
        else out_ << fmt::format("  OutTile<T> {};\n  {}.fill({});\n", op.results[0], op.results[0], value);
        break;
      }
      default:
        throw std::logic_error("codegen: unexpected op in prologue: " + ir::to_string(op.kind));
    }
  }

  // The loop's header comment and `tiles`, the sequence of its KV tiles (kv_tiles.cuh):
  // the non-empty ones after classify_tiles, by the closed-form band or, for a mask
  // expression, by interval analysis per tile.
  void kv_range(const std::string& note) {
    const ir::KvLoop& loop = k_.loop;
    out_ << fmt::format("\n  // for %{} in kv_tiles{}{}, stages = {}{}\n", loop.induction,
                        loop.classes.skip_empty ? ": non-empty tiles only" : ": all tiles",
                        loop.classes.unmasked_full ? ", full tiles unmasked" : "", loop.stages, note);
    if (loop.classes.by_interval && ws_) {  // the producer builds the lists (roles_listed)
      out_ << "  int uses = 0;  // the rings' uses so far (they continue across chunks)\n";
      out_ << "  for (int chunk = 0, c = 0; chunk < n_all; chunk += kTileListCap, ++c) {\n";
      out_ << "  mbarrier_wait(lists.full(c), WsLists::parity(c));  // the producer listed this chunk's tiles\n";
      out_ << "  const ListTiles tiles{lists.list(smem, c), lists.list(smem, c)[kTileListCountSlot]};\n";
    } else if (loop.classes.by_interval) {
      classify_lambda("  ");
      out_ << "  // The list of non-empty tiles, after the pipeline's tiles (and mbarriers).\n";
      out_ << "  int* const tile_list = reinterpret_cast<int*>(smem + (list_smem - smem_addr(smem)));\n";
      out_ << "  const int n_all = (params.seqlen_k + T::BN - 1) / T::BN;\n";
      out_ << "  for (int chunk = 0; chunk < n_all; chunk += kTileListCap) {\n";
      out_ << "  const ListTiles tiles = build_tile_list<T::THREADS>(tile_list, chunk, (int)fj_min(chunk + kTileListCap, "
              "n_all), classify, blk.tid);\n";
    } else if (loop.classes.skip_empty) {
      out_ << "  const BandTiles tiles{band_kv_tiles(band, blk.q0, T::BM, params.seqlen_q, params.seqlen_k, T::BN)};\n";
    } else {
      out_ << "  const BandTiles tiles{KvTileRange{0, (params.seqlen_k + T::BN - 1) / T::BN, 0, 0}};\n";
    }
    out_ << "  const int n_tiles = tiles.count();\n";
  }

  // `classify(t)`: the tile class of KV tile t by interval analysis of the mask expression.
  void classify_lambda(const std::string& in) {
    out_ << in << "// Tile classes: the mask over the tile's index box (real rows and keys only); a tile\n";
    out_ << in << "// reaching past seqlen_k is never full. The row-only reads' ranges are the same for every\n";
    out_ << in << "// tile: each warp scans them once, here.\n";
    out_ << in << "const MaskRowIv rv = mask_row_interval(params, IvBox{iv_i(blk.batch), iv_i(blk.head), IvI{blk.q0, blk.q0 + blk.q_rows - 1},\n";
    out_ << in << "                                                    IvI{0, params.seqlen_k - 1}, params.seqlen_q, params.seqlen_k}, blk.lane);\n";
    out_ << in << "const auto classify = [&](int t) {\n";
    out_ << in << "  const long long kv_last = fj_min((long long)(t + 1) * T::BN, params.seqlen_k) - 1;\n";
    out_ << in << "  const IvBox box{iv_i(blk.batch), iv_i(blk.head), IvI{blk.q0, blk.q0 + blk.q_rows - 1},\n";
    out_ << in << "                  IvI{(long long)t * T::BN, kv_last}, params.seqlen_q, params.seqlen_k};\n";
    out_ << in << "  const int c = iv_tile_class(mask_tile_interval(params, box, rv));\n";
    out_ << in << "  return c == kTileFull && (t + 1) * T::BN > params.seqlen_k ? (int)kTilePartial : c;\n";
    out_ << in << "};\n";
  }

  // The mask on the scores, skipped on tiles classify_tiles proved full: the band, or the
  // mask expression per element (padding rows and keys past seqlen_k are masked unevaluated).
  void apply_mask(const ir::Op& op) {
    const std::string& kv = k_.loop.induction;
    const bool partial_only = op.str_attr("when") == "partial" && k_.loop.classes.unmasked_full;
    const std::string indent = partial_only ? "      " : "    ";
    std::string call;
    if (k_.loop.mask_expr.empty()) {
      call = fmt::format("apply_band_mask<T>({}, band, blk.q0, {}, params.seqlen_k, blk.warp, blk.lane);\n",
                         op.operands[0], kv);
      if (partial_only) out_ << fmt::format("    if (!tiles.is_full({})) {}", kv, call);
      else out_ << "    " << call;
      return;
    } else {
      call = factored_loop(indent, op.operands[0], "mask", "Mask",
                           indent + "  if (!(in_range & mask_elem(params, blk.batch, blk.head, q_idx, kv_idx, r, c))) x = neg_inf();\n");
    }
    if (partial_only) out_ << fmt::format("    if (!tiles.is_full_at(r)) {{\n{}    }}\n", call);
    else out_ << call;
  }

  // for_each_score_factored over tile `s` with the hooks `name`_row / _col / _elem (expr_hooks.cpp);
  // `body` sees x, q_idx, kv_idx, in_range, r and c.
  std::string factored_loop(const std::string& indent, const std::string& s, const std::string& name,
                            const std::string& Name, const std::string& body) const {
    std::string out = fmt::format(
        "{0}for_each_score_factored<T, k{1}ElemReads>({2}, blk.q0, {3}, blk.warp, blk.lane, params.seqlen_q, params.seqlen_k,\n"
        "{0}    [&](int q_idx) {{ return {4}_row(params, blk.batch, blk.head, q_idx); }},\n"
        "{0}    [&](int kv_idx) {{ return {4}_col(params, blk.batch, blk.head, kv_idx); }},\n"
        "{0}    [&](float& x, int q_idx, int kv_idx, bool in_range, const {1}Row& r, const {1}Col& c) {{\n",
        indent, Name, s, k_.loop.induction, name);
    return out + body + indent + "});\n";
  }

  // s = score_mod(score = s * softmax_scale), for real rows and keys (the rest is masked).
  void score_mod(const ir::Op& op) {
    const std::string& s = op.operands[0];
    auto body = [&](const std::string& indent, const std::string& name) {
      return indent + "  x = " + name + "_elem(params, fj_fmul(x, kScale), blk.batch, blk.head, q_idx, kv_idx, r, c);\n";
    };
    if (score_splits_) {
      // Uniform over the grid: the lengths decide which form is exact.
      out_ << "    if (params.seqlen_q <= kScoreNarrowLimit && params.seqlen_k <= kScoreNarrowLimit) {\n";
      out_ << factored_loop("      ", s, "score_narrow", "ScoreNarrow", body("      ", "score_narrow"));
      out_ << "    } else {\n";
      out_ << factored_loop("      ", s, "score", "Score", body("      ", "score"));
      out_ << "    }\n";
    } else {
      out_ << factored_loop("    ", s, "score", "Score", body("    ", "score"));
    }
  }

  // Copies of one tensor of KV tile `tile_expr` into ring slot `slot_expr`.
  void copy_one(const std::string& indent, char tensor, const std::string& tile_expr, const std::string& slot_expr) {
    const bool k = tensor == 'K';
    out_ << indent << loader() << "<T::BN, T::" << (k ? "D" : "DV") << ", T::THREADS>(" << (k ? "k" : "v")
         << "_smem + (" << slot_expr << ") * T::" << (k ? "K" : "V") << "_STAGE_BYTES, " << (k ? "k" : "v")
         << "_tile_ptr(params, blk, " << tile_expr << ", T::BN), params." << (k ? "k" : "v")
         << "_row_stride, params.seqlen_k - (" << tile_expr << ") * T::BN, blk.tid);\n";
  }

  // The KV loop with the P·V GEMM one tile behind (pass overlap_pv; wgmma only):
  //   iteration kv: issue S_kv = Q·K_kvᵀ, issue O += P_{kv-1}·V_{kv-1}, wait for S_kv,
  //   softmax of tile kv (tensor cores busy with P·V meanwhile), wait for O, rescale.
  // K tile kv and V tile kv - 1 are used in iteration kv, so the V ring runs one tile
  // behind the K ring: copy step t (relative to range.begin) holds K of tile t and V of
  // tile t - 1, in slot t % STAGES. Each slot has two mbarriers instead of a block-wide
  // barrier per tile: full[s] completes when every thread's copies of the step landed,
  // empty[s] when every thread is done with the step's tiles. Warpgroups can then drift
  // apart by up to one tile, so one's softmax can run beside the other's GEMMs.
  void loop_overlapped() {
    const ir::KvLoop& loop = k_.loop;
    const std::string& kv = loop.induction;
    const ir::Op* lagged = nullptr;  // the P·V gemm that pass overlap_pv deferred by one tile
    for (const ir::Op& op : loop.body)
      if (op.kind == ir::OpKind::gemm && op.has_attr("lag")) lagged = &op;
    if (!lagged) throw std::logic_error("codegen: a wgmma kernel needs the overlap_pv pass (no lagged P·V gemm)");
    const std::string& acc = lagged->results[0];
    if (!ws_) ring_with_copies();
    else if (listed()) kv_range("; P·V one tile behind (overlap_pv); copies by the producer warpgroup (TMA)");
    out_ << "  PackedP<T> p_prev;  // P of the previous tile, the A operand of its P·V GEMM\n";
    out_ << fmt::format("  // r: the iteration, = the copy step it consumes; {} its tile.\n", kv);
    out_ << loop_header(kv);
    // n: this tile's use of the rings; a persistent kernel's continue across work items.
    const std::string n = continues_ ? "n" : "r";
    if (continues_) {
      out_ << fmt::format("    const int n = uses + r;  // this tile's use of the rings (they continue across {})\n",
                          persistent_ ? "work items" : "chunks");
      out_ << "    const int slot = n % T::STAGES, prev_slot = (n + T::STAGES - 1) % T::STAGES;\n";
    } else {
      out_ << "    const int slot = r % T::STAGES, prev_slot = (r + T::STAGES - 1) % T::STAGES;\n";
    }
    out_ << "    const bool has_prev = r > 0;\n";
    std::string softmax_scores;  // the score tile that holds P after the softmax
    for (const ir::Op& op : loop.body) {
      out_ << op_comment(op, "    ");
      switch (op.kind) {
        case ir::OpKind::wait_copies:
          if (ws_) {
            out_ << "    mbarrier_wait(bars.k_full(slot), bars.parity(" << n << "));  // K of tile " << kv << " has landed\n";
            break;
          }
          out_ << "    if (r + T::STAGES - 1 <= n_tiles) copy_step(r + T::STAGES - 1);  // prefetch\n";
          out_ << "    mbarrier_wait(bars + 8 * slot, (r / T::STAGES) & 1);  // K of tile " << kv << ", V of " << kv
               << " - 1 landed\n";
          out_ << "    fence_proxy_async();  // ... and are visible to wgmma (async proxy)\n";
          break;
        case ir::OpKind::async_copy:
          out_ << "    //   (copy step r, issued " << (ws_ ? "by the producer" : "STAGES - 1 iterations ago")
               << (op.str_attr("tensor") == "V" ? ", one tile behind K" : "") << "; waited for above)\n";
          break;
        case ir::OpKind::gemm:
          if (&op == lagged) {
            out_ << "    //   (issued in the next iteration, after its Q·Kᵀ; the last tile's after the loop)\n";
            break;
          }
          out_ << fmt::format("    ScoreTile<T> {};\n", op.results[0]);
          if (pingpong_) {  // both operands first: a turn is not spent waiting for data
            out_ << "    if (has_prev) mbarrier_wait(bars.v_full(prev_slot), bars.parity(" << n << " - 1));  // V of tile " << kv << " - 1\n";
            out_ << "    turns.wait_turn();\n";
          }
          out_ << fmt::format("    warpgroup_gemm_qk_issue<T>({}, q_smem, k_smem + slot * T::K_STAGE_BYTES, blk.warp);\n",
                              op.results[0]);
          out_ << "    // " << ir::print(*lagged) << "   <- of tile " << kv << " - 1\n";
          if (ws_ && !pingpong_)
            out_ << "    if (has_prev) mbarrier_wait(bars.v_full(prev_slot), bars.parity(" << n << " - 1));  // V of tile " << kv << " - 1\n";
          if (pingpong_) {
            // The turn passes between the issue and the wait, in each branch: a barrier
            // between two `if (has_prev)` blocks splits the wgmma pipeline stage across
            // blocks, and ptxas then serialises it (C7514).
            out_ << "    if (has_prev) {\n";
            out_ << fmt::format("      warpgroup_gemm_pv_issue<T>({}, p_prev, v_smem + prev_slot * T::V_STAGE_BYTES);\n", acc);
            out_ << "      turns.pass_turn();  // the other warpgroup's GEMMs run during this one's softmax\n";
            out_ << "      warpgroup_wait<1>();  // S has landed (P·V may still run)\n";
            out_ << "    } else {\n      turns.pass_turn();\n      warpgroup_wait<0>();\n    }\n";
          } else {
            out_ << fmt::format("    if (has_prev) warpgroup_gemm_pv_issue<T>({}, p_prev, v_smem + prev_slot * T::V_STAGE_BYTES);\n",
                                acc);
            out_ << "    if (has_prev) warpgroup_wait<1>();  // S has landed (P·V may still run)\n";
            out_ << "    else warpgroup_wait<0>();\n";
          }
          out_ << fmt::format("    pin({}.s[0]);\n", op.results[0]);
          if (ws_) out_ << "    mbarrier_arrive(bars.k_empty(slot));  // K's slot is free for the producer\n";
          break;
        case ir::OpKind::apply_mask:
          apply_mask(op);
          break;
        case ir::OpKind::score_mod:
          score_mod(op);
          break;
        case ir::OpKind::online_softmax:
          out_ << "    RowVec<T> alpha;\n";
          out_ << fmt::format("    softmax_rows<T>({}, {}, {}, alpha, kScaleLog2);\n", op.operands[0], op.operands[1],
                              op.operands[2]);
          if (const ir::Op* d = dropout_op()) {  // the dropout op's random numbers, here so that P·V hides them
            out_ << op_comment(*d, "    ");
            dropout_keep_flags();
          }
          out_ << "    warpgroup_wait<0>();  // the previous tile's P·V has landed in O\n";
          out_ << fmt::format("    pin({}.o[0]);\n", op.operands[3]);
          if (ws_) out_ << "    if (has_prev) mbarrier_arrive(bars.v_empty(prev_slot));  // V's slot is free\n";
          else out_ << "    mbarrier_arrive(bars + 8 * (T::STAGES + slot));  // this thread is done with copy step r\n";
          out_ << fmt::format("    rescale_rows<T>({}, alpha);\n", op.operands[3]);
          softmax_scores = op.operands[0];
          if (!dropout_op())
            out_ << fmt::format("    pack_p<T>(p_prev, {});  // {} = P, kept for the next iteration's P·V\n",
                                op.operands[0], op.results[0]);
          break;
        case ir::OpKind::dropout:
          out_ << "    //   (keep flags drawn after the softmax above, while the previous tile's P·V ran)\n";
          out_ << fmt::format("    pack_p<T>(p_prev, {});  // P, kept for the next iteration's P·V\n", softmax_scores);
          dropout_mask_packed("p_prev.a", op.results[0], /*per_slice=*/false);
          break;
        default:
          throw std::logic_error("codegen: unexpected op in the KV loop: " + ir::to_string(op.kind));
      }
    }
    out_ << "  }\n";
    if (ws_) {
      const std::string last = continues_ ? "uses + n_tiles - 1" : "n_tiles - 1";
      if (persistent_) out_ << "  mbarrier_arrive(bars.q_empty());  // every Q·Kᵀ of this item has landed: Q's slot is free\n";
      out_ << "  // The last tile's P·V.\n";
      out_ << "  if (n_tiles > 0) {\n";
      out_ << fmt::format("    mbarrier_wait(bars.v_full(({0}) % T::STAGES), bars.parity({0}));\n", last);
      out_ << fmt::format("    warpgroup_gemm_pv_issue<T>({}, p_prev, v_smem + (({}) % T::STAGES) * T::V_STAGE_BYTES);\n",
                          acc, last);
      out_ << fmt::format("    warpgroup_wait<0>();\n    pin({}.o[0]);\n", acc);
      // Released too, so that every use of the V ring is: a persistent block's next item
      // refills this slot.
      out_ << fmt::format("    mbarrier_arrive(bars.v_empty(({}) % T::STAGES));\n  }}\n", last);
      if (listed()) {
        out_ << "  mbarrier_arrive(lists.empty(c));  // this chunk's list is read\n";
        out_ << "  uses += n_tiles;\n";
        out_ << "  }  // chunk\n";
      }
      if (pingpong_ && !persistent_) out_ << "  turns.finish();\n";
      out_ << "\n";
      return;
    }
    out_ << "  // Copy step n_tiles: V of the last tile, for its P·V.\n";
    out_ << "  mbarrier_wait(bars + 8 * (n_tiles % T::STAGES), (n_tiles / T::STAGES) & 1);\n";
    out_ << "  fence_proxy_async();\n";
    out_ << "  if (n_tiles > 0) {\n";
    out_ << fmt::format("    warpgroup_gemm_pv_issue<T>({}, p_prev, v_smem + ((n_tiles - 1) % T::STAGES) * T::V_STAGE_BYTES);\n",
                        acc);
    out_ << fmt::format("    warpgroup_wait<0>();\n    pin({}.o[0]);\n  }}\n\n", acc);
    chunk_close();
  }

  // The cp.async ring of the plain wgmma loop: the tile sequence, per-slot mbarriers and
  // the copy steps every thread issues.
  void ring_with_copies() {
    kv_range("; P·V one tile behind (overlap_pv)");
    out_ << "  // Pipeline mbarriers after the tiles: full[s] at bars + 8s, empty[s] at bars + 8(STAGES + s).\n";
    out_ << "  const u32 bars = v_smem + T::STAGES * T::V_STAGE_BYTES;\n";
    out_ << "  if (blk.tid == 0)\n";
    if (listed())
      out_ << "    for (int s = 0; s < 2 * T::STAGES; ++s) {\n"
              "      if (chunk > 0) mbarrier_inval(bars + 8 * s);  // every phase of the last chunk completed\n"
              "      mbarrier_init(bars + 8 * s, T::THREADS);\n    }\n";
    else
      out_ << "    for (int s = 0; s < 2 * T::STAGES; ++s) mbarrier_init(bars + 8 * s, T::THREADS);\n";
    out_ << "  __syncthreads();\n";
    out_ << "  // Copy step t: K of the t-th tile and V of the (t-1)-th into slot t % STAGES, once\n";
    out_ << "  // every thread is done with step t - STAGES in that slot.\n";
    out_ << "  auto copy_step = [&](int t) {\n";
    out_ << "    const int slot_t = t % T::STAGES;\n";
    out_ << "    if (t >= T::STAGES) mbarrier_wait(bars + 8 * (T::STAGES + slot_t), (t / T::STAGES - 1) & 1);\n";
    out_ << "    if (t < n_tiles) {\n";
    copy_one("      ", 'K', copy_tile("t"), "slot_t");
    out_ << "    }\n    if (t >= 1) {\n";
    copy_one("      ", 'V', copy_tile("t - 1"), "(t - 1) % T::STAGES");
    out_ << "    }\n";
    out_ << "    cp_async_arrive(bars + 8 * slot_t);  // full[slot_t] once this thread's copies (and Q's) land\n";
    out_ << "  };\n";
    out_ << "  // Pipeline prologue: steps 0 .. STAGES - 2 (step n_tiles is the last: V of the last tile).\n";
    out_ << "#pragma unroll\n  for (int t = 0; t < T::STAGES - 1; ++t)\n    if (t <= n_tiles) copy_step(t);\n";
  }

  // Issues the copies of KV tile `tile_expr` (K and V) into ring slot `slot_expr`.
  void copy_kv(const std::string& indent, const std::string& tile_expr, const std::string& slot_expr) {
    copy_one(indent, 'K', tile_expr, slot_expr);
    copy_one(indent, 'V', tile_expr, slot_expr);
  }

  // The FlashAttention-2 loop of the mma.sync path: a cp.async ring with one block barrier
  // per tile.
  void loop() {
    const ir::KvLoop& loop = k_.loop;
    kv_range("");
    out_ << "  // Pipeline prologue: start the first STAGES - 1 tiles.\n";
    out_ << "#pragma unroll\n  for (int s = 0; s < T::STAGES - 1; ++s) {\n";
    out_ << "    if (s < n_tiles) {\n";
    copy_kv("      ", copy_tile("s"), "s");
    out_ << "    }\n    cp_async_commit();\n  }\n";
    out_ << fmt::format("  // r: the iteration; {} its tile.\n", loop.induction);
    out_ << loop_header(loop.induction);
    out_ << "    const int slot = r % T::STAGES;\n";
    for (const ir::Op& op : loop.body) loop_op(op);
    out_ << "  }\n  cp_async_wait<0>();\n\n";
    chunk_close();
  }

  void loop_op(const ir::Op& op) {
    const std::string& kv = k_.loop.induction;
    out_ << op_comment(op, "    ");
    switch (op.kind) {
      case ir::OpKind::wait_copies:
        out_ << "    cp_async_wait<T::STAGES - 2>();  // tile " << kv << " has landed\n";
        out_ << "    __syncthreads();                 // ... for every thread; slot of " << kv
             << " - 1 is free again\n";
        out_ << "    {  // prefetch the tile of iteration r + STAGES - 1 into the freed slot\n";
        out_ << "      if (r + T::STAGES - 1 < n_tiles) {\n";
        copy_kv("        ", copy_tile("r + T::STAGES - 1"), "(r + T::STAGES - 1) % T::STAGES");
        out_ << "      }\n      cp_async_commit();\n    }\n";
        break;
      case ir::OpKind::async_copy:
        out_ << "    //   (issued STAGES - 1 iterations ago; waited for above)\n";
        break;
      case ir::OpKind::load_tile:
        throw std::logic_error("codegen: synchronous loads in the KV loop; run pipeline_loads");
      case ir::OpKind::gemm:
        if (op.has_attr("transpose_b") && op.bool_attr("transpose_b")) {
          out_ << fmt::format("    ScoreTile<T> {};\n", op.results[0]);
          out_ << fmt::format("    gemm_qk<T>({}, q_smem, k_smem + slot * T::K_STAGE_BYTES, blk.warp, blk.lane);\n",
                              op.results[0]);
        } else if (dropout_op()) {
          out_ << "    PFrags<T> pf;  // P packed for P·V\n";
          out_ << fmt::format("    pack_p_frags<T>(pf, {});\n", op.operands[0]);
          dropout_mask_packed("pf.a", op.operands[0], /*per_slice=*/true);
          out_ << fmt::format("    gemm_pv_frags<T>({}, pf, v_smem + slot * T::V_STAGE_BYTES, blk.lane);\n", op.results[0]);
        } else {
          out_ << fmt::format("    gemm_pv<T>({}, {}, v_smem + slot * T::V_STAGE_BYTES, blk.lane);\n", op.results[0],
                              op.operands[0]);
        }
        break;
      case ir::OpKind::apply_mask:
        apply_mask(op);
        break;
      case ir::OpKind::score_mod:
        score_mod(op);
        break;
      case ir::OpKind::online_softmax:
        out_ << fmt::format("    online_softmax<T>({}, {}, {}, {}, kScaleLog2);\n", op.operands[0], op.operands[1],
                            op.operands[2], op.operands[3]);
        out_ << fmt::format("    ScoreTile<T>& {} = {};  // P overwrites S in place\n", op.results[0], op.operands[0]);
        break;
      case ir::OpKind::dropout:
        dropout_keep_flags();  // applied in the P·V GEMM's packed P below
        break;
      default:
        throw std::logic_error("codegen: unexpected op in the KV loop: " + ir::to_string(op.kind));
    }
  }

  void epilogue_op(const ir::Op& op) {
    out_ << op_comment(op, "  ");
    switch (op.kind) {
      case ir::OpKind::finalize:
        out_ << fmt::format("  finalize<T>({}, {}{});\n  OutTile<T>& {} = {};\n", op.operands[0], op.operands[1],
                            op.has_attr("dropout_scale") ? ", kDropScale" : "", op.results[0], op.operands[0]);
        break;
      case ir::OpKind::store_tile:
        out_ << fmt::format("  store_out<T>({}, o_rows_ptr(params, blk), params.o_row_stride, blk.q_rows, blk.warp, blk.lane);\n",
                            op.operands[0]);
        break;
      case ir::OpKind::store_lse:
        out_ << fmt::format("  if (params.lse) store_lse<T>({}, {}, lse_rows_ptr(params, blk), blk.q_rows, blk.warp, blk.lane);\n",
                            op.operands[0], op.operands[1]);
        break;
      default:
        throw std::logic_error("codegen: unexpected op in epilogue: " + ir::to_string(op.kind));
    }
  }
};

}  // namespace

// A C++ float literal ("0.0f", "0.125f"): "0f" would not parse.
std::string float_literal(double v) {
  std::string s = fmt::format("{:.9g}", v);
  if (s.find_first_of(".e") == std::string::npos) s += ".0";
  return s + "f";
}

std::string mask_tag(const MaskSpec& m) {
  const char* align = m.align == MaskAlign::top_left ? "tl" : "br";
  switch (m.kind) {
    case MaskKind::none: return "nomask";
    case MaskKind::causal: return fmt::format("causal_{}", align);
    case MaskKind::sliding_window:
      return fmt::format("swin{}_{}_{}", m.left < 0 ? std::string("inf") : std::to_string(m.left),
                         m.right < 0 ? std::string("inf") : std::to_string(m.right), align);
    case MaskKind::custom: return "custom";
  }
  return "mask";
}

std::string kernel_name(const AttentionSpec& spec0) {
  const AttentionSpec spec = spec0.normalized();
  return fmt::format("flashjit_fwd_{}_d{}x{}_{}{}_{:08x}", to_string(spec.dtype), spec.head_dim, spec.head_dim_v,
                     mask_tag(spec.mask), spec.dropout_p > 0 ? "_drop" : "",
                     static_cast<uint32_t>(spec_hash(spec) & 0xffffffffu));
}

std::string generate_cuda(const ir::Kernel& k) { return Emitter(k).run(); }

}  // namespace flashjit::codegen
