// flashjit mask: the element mask and the tile classes of a spec, as numbers and a PNG.
#include <fmt/format.h>

#include <cstdio>
#include <fstream>

#include "cli.h"
#include "flashjit/error.h"
#include "flashjit/mask_picture.h"
#include "png_writer.h"

namespace flashjit::cli {

namespace {
int64_t length_arg(const Args& args, const std::string& name, std::optional<int64_t> fallback) {
  const std::optional<std::string> v = args.get(name);
  if (!v) {
    if (fallback) return *fallback;
    throw UsageError("missing " + name + " N");
  }
  try {
    size_t used = 0;
    const long long n = std::stoll(*v, &used);
    if (used == v->size() && n >= 1 && n <= (1LL << 30)) return n;
  } catch (const std::exception&) {
  }
  throw UsageError(fmt::format("{} must be an integer from 1 to 2^30; got '{}'", name, *v));
}
}  // namespace

int run_mask(const Args& args) {
  const AttentionSpec spec = load_spec(args);
  if (!spec.captures.empty())
    throw ArgumentError("captures", "the spec reads captured tensors, whose values the CLI does not have; draw it "
                                    "from Python with flashjit.plot_block_mask(..., captures)");
  const int64_t sq = length_arg(args, "--sq", std::nullopt);
  const int64_t sk = length_arg(args, "--sk", sq);
  const eval::MaskPicture pic = eval::mask_picture(spec, sq, sk);
  const int64_t total = pic.tiles_empty + pic.tiles_partial + pic.tiles_full;
  fmt::print("tiles:   {} x {} of {} x {} (block_m x block_n)\n", (sq + pic.block_m - 1) / pic.block_m,
             (sk + pic.block_n - 1) / pic.block_n, pic.block_m, pic.block_n);
  fmt::print("empty:   {} ({:.1f}%, never loaded)\n", pic.tiles_empty, 100.0 * pic.tiles_empty / total);
  fmt::print("partial: {} ({:.1f}%, masked per element)\n", pic.tiles_partial, 100.0 * pic.tiles_partial / total);
  fmt::print("full:    {} ({:.1f}%, no mask arithmetic)\n", pic.tiles_full, 100.0 * pic.tiles_full / total);
  if (const auto path = args.get("--png")) {
    const std::string png = encode_png_rgb(pic.width, pic.height, pic.rgb);
    std::ofstream out(*path, std::ios::binary | std::ios::trunc);
    out.write(png.data(), static_cast<std::streamsize>(png.size()));
    out.close();
    if (!out) throw ArgumentError("png", "cannot write " + *path);
    fmt::print("picture: {} ({} x {} pixels; grey: empty tile, dark blue: full tile, blue/white: visible/masked "
               "keys of partial tiles)\n",
               *path, pic.width, pic.height);
  }
  return 0;
}

}  // namespace flashjit::cli
