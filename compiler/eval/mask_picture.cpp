// Pictures of masks (mask_picture.h): the element mask from the spec's own definition, the
// tile classes from the compiled loop (band ranges or interval analysis), as in the kernel.
#include "flashjit/mask_picture.h"

#include <algorithm>
#include <optional>

#include "flashjit/band_mask.cuh"
#include "flashjit/error.h"
#include "flashjit/interval.cuh"
#include "flashjit/ir.h"
#include "flashjit/passes.h"
#include "flashjit/runtime.h"

namespace flashjit::eval {

MaskPicture mask_picture(const AttentionSpec& spec0, int64_t sq, int64_t sk, const std::vector<expr::HostCapture>& caps,
                         int b, int h, int max_side) {
  if (sq < 1 || sk < 1 || sq > (int64_t(1) << 30) || sk > (int64_t(1) << 30))
    throw ArgumentError("seqlen", "seqlen_q and seqlen_k must be 1 to 2^30");
  if (max_side < 1 || max_side > 8192) throw ArgumentError("max_side", "must be 1 to 8192");
  validate(spec0);
  if (caps.size() != spec0.captures.size())
    throw ArgumentError("captures", "the picture needs the values of every tensor the mask reads (" +
                                        std::to_string(spec0.captures.size()) + " declared, " +
                                        std::to_string(caps.size()) + " given)");
  const AttentionSpec spec = resolve_tile(spec0, "sm_80");
  const ir::Kernel k = passes::run_pipeline(ir::lower(spec), "sm_80");
  const int bm = k.grid.block_m, bn = k.grid.block_n;
  std::optional<expr::Expr> mask;
  if (!k.loop.mask_expr.empty()) mask = expr::parse(k.loop.mask_expr, expr::Context{false, spec.captures});
  if (mask) {  // the whole picture's reads must be in bounds, as before a launch
    expr::Box all;
    all.b_lo = all.b_hi = b, all.h_lo = all.h_hi = h;
    all.q_lo = 0, all.q_hi = sq - 1, all.kv_lo = 0, all.kv_hi = sk - 1;
    all.seqlen_q = sq, all.seqlen_k = sk;
    expr::check_capture_bounds(*mask, spec.captures, caps, all, "mask.expr");
  }
  Band band{k.loop.mask.lo.has_value(), k.loop.mask.hi.has_value(), k.loop.mask.lo.value_or(0),
            k.loop.mask.hi.value_or(0), k.loop.mask.bottom_right ? sk - sq : 0};

  const int64_t q_tiles = (sq + bm - 1) / bm, kv_tiles = (sk + bn - 1) / bn;
  // cls[qt * kv_tiles + t]: the class the kernel gives each tile.
  std::vector<uint8_t> cls(static_cast<size_t>(q_tiles * kv_tiles));
  MaskPicture pic;
  pic.block_m = bm, pic.block_n = bn;
  for (int64_t qt = 0; qt < q_tiles; ++qt) {
    const KvTileRange r = band_kv_tiles(band, qt * bm, bm, sq, sk, bn);
    for (int64_t t = 0; t < kv_tiles; ++t) {
      int c;
      if (mask) {
        expr::Box box;
        box.b_lo = box.b_hi = b, box.h_lo = box.h_hi = h;
        box.q_lo = qt * bm, box.q_hi = std::min(qt * bm + bm, sq) - 1;
        box.kv_lo = t * bn, box.kv_hi = std::min(t * bn + bn, sk) - 1;
        box.seqlen_q = sq, box.seqlen_k = sk;
        const expr::Truth tr = expr::mask_over(*mask, box, &caps);
        c = tr == expr::Truth::never ? kTileEmpty
            : tr == expr::Truth::always && (t + 1) * bn <= sk ? kTileFull
                                                              : kTilePartial;
      } else {
        c = t < r.begin || t >= r.end ? kTileEmpty : tile_is_full(r, static_cast<int>(t)) ? kTileFull : kTilePartial;
      }
      cls[static_cast<size_t>(qt * kv_tiles + t)] = static_cast<uint8_t>(c);
      (c == kTileEmpty ? pic.tiles_empty : c == kTileFull ? pic.tiles_full : pic.tiles_partial) += 1;
    }
  }

  pic.width = static_cast<int>(std::min<int64_t>(sk, max_side));
  pic.height = static_cast<int>(std::min<int64_t>(sq, max_side));
  pic.rgb.resize(static_cast<size_t>(pic.width) * pic.height * 3);
  for (int y = 0; y < pic.height; ++y) {
    const int64_t i = y * sq / pic.height;
    for (int x = 0; x < pic.width; ++x) {
      const int64_t j = x * sk / pic.width;
      const int c = cls[static_cast<size_t>((i / bm) * kv_tiles + j / bn)];
      bool visible = band_visible(band, i, j, sk);
      if (visible && mask) {
        expr::Env env;
        env.b = b, env.h = h, env.q_idx = static_cast<int>(i), env.kv_idx = static_cast<int>(j);
        env.seqlen_q = static_cast<int>(sq), env.seqlen_k = static_cast<int>(sk);
        env.captures = &caps;
        visible = expr::eval_mask(*mask, env);
      }
      static const uint8_t kEmpty[3] = {232, 232, 232}, kFull[3] = {31, 76, 170}, kVisible[3] = {110, 160, 250},
                           kMasked[3] = {255, 255, 255};
      const uint8_t* col = c == kTileEmpty ? kEmpty : c == kTileFull ? kFull : visible ? kVisible : kMasked;
      std::copy(col, col + 3, pic.rgb.begin() + (static_cast<size_t>(y) * pic.width + x) * 3);
    }
  }
  return pic;
}

}  // namespace flashjit::eval
