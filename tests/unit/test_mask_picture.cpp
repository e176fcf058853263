// Pictures of masks (flashjit mask, mask_picture): the tile classes agree with the CPU
// evaluator's, the pixels with the mask's definition, and the CLI writes a valid PNG.
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "catch.hpp"
#include "cli_runner.h"
#include "flashjit/cpu_eval.h"
#include "flashjit/error.h"
#include "flashjit/mask_picture.h"
#include "flashjit/passes.h"

namespace {

flashjit::AttentionSpec spec_with(const std::string& mask_expr, flashjit::MaskKind kind = flashjit::MaskKind::custom) {
  flashjit::AttentionSpec s;
  s.dtype = flashjit::DType::bf16;
  s.head_dim = 32;
  s.mask.kind = kind;
  if (kind == flashjit::MaskKind::custom) s.mask.expr = mask_expr;
  s.tile = flashjit::TileConfig{16, 16, 1, 2, flashjit::MmaKind::mma_sync};
  return s;
}

uint32_t be32(const std::string& d, size_t at) {
  return (uint32_t(uint8_t(d[at])) << 24) | (uint32_t(uint8_t(d[at + 1])) << 16) | (uint32_t(uint8_t(d[at + 2])) << 8) |
         uint32_t(uint8_t(d[at + 3]));
}

}  // namespace

TEST_CASE("mask pictures: tile classes agree with the CPU evaluator", "[mask_picture]") {
  for (const auto& spec : {spec_with("(kv_idx <= q_idx) | (kv_idx < 20)"), spec_with("q_idx // 32 == kv_idx // 32"),
                           spec_with("", flashjit::MaskKind::causal)}) {
    INFO(flashjit::spec_to_json(spec));
    const int64_t sq = 77, sk = 90;
    const flashjit::eval::MaskPicture pic = flashjit::eval::mask_picture(spec, sq, sk);
    flashjit::eval::HostTensor q(1, 1, sq, 32), k(1, 1, sk, 32), v(1, 1, sk, 32);
    const auto res = flashjit::eval::evaluate(flashjit::passes::run_pipeline(flashjit::ir::lower(spec), "sm_80"), q, k, v);
    CHECK(pic.tiles_empty == res.tiles_skipped);
    CHECK(pic.tiles_full == res.tiles_full);
    CHECK(pic.tiles_partial == res.tiles_partial);
    REQUIRE(pic.width == sk);
    REQUIRE(pic.height == sq);
    // A pixel in a partial tile is blue exactly where the key is visible.
    const auto px = [&](int i, int j) { return &pic.rgb[(static_cast<size_t>(i) * pic.width + j) * 3]; };
    if (spec.mask.kind == flashjit::MaskKind::custom && spec.mask.expr[1] == 'k') {  // the prefix-LM
      CHECK(px(10, 5)[0] == 31);    // keys 0..15 < 20: a full tile (dark blue)
      CHECK(px(3, 17)[0] == 110);   // keys 16..31 for rows 0..15 are partial: 17 < 20 is visible (blue)
      CHECK(px(3, 25)[0] == 255);   // ... and 25 is masked (white)
      CHECK(px(30, 60)[0] == 232);  // keys 48..63 for rows 16..31: an empty tile (grey)
      CHECK(px(40, 30)[0] == 31);   // keys 16..31 for rows 32..47: all visible, a full tile (dark blue)
    }
  }
}

TEST_CASE("mask pictures: bad requests are refused", "[mask_picture]") {
  CHECK_THROWS_AS(flashjit::eval::mask_picture(spec_with("q_idx >= kv_idx"), 0, 10), flashjit::ArgumentError);
  auto s = spec_with("doc[q_idx] == 0");
  s.captures = {{"doc", flashjit::expr::CaptureDType::i32, 1}};
  CHECK_THROWS_AS(flashjit::eval::mask_picture(s, 10, 10), flashjit::ArgumentError);  // no values given
  std::vector<int32_t> doc(5, 0);
  const std::vector<flashjit::expr::HostCapture> caps = {
      {doc.data(), flashjit::expr::CaptureDType::i32, 1, {5, 0, 0, 0}, {1, 0, 0, 0}}};
  CHECK_THROWS_AS(flashjit::eval::mask_picture(s, 10, 10, caps), flashjit::ArgumentError);  // reads past 5
  CHECK(flashjit::eval::mask_picture(s, 5, 10, caps).width == 10);
}

TEST_CASE("flashjit mask writes a valid PNG and counts tiles", "[mask_picture][cli]") {
  const std::string png = (std::filesystem::temp_directory_path() / "flashjit-test-mask.png").string();
  const std::string spec = R"J({"dtype":"bf16","head_dim":64,"mask":{"kind":"custom","expr":"(q_idx >= kv_idx) & (q_idx // 1024 == kv_idx // 1024)"}})J";
  const fjtest::CliResult r = fjtest::run_cli({"mask", "--spec", spec, "--sq", "4096", "--png", png});
  INFO(r.out);
  REQUIRE(r.status == 0);
  CHECK(r.out.find("empty:") != std::string::npos);
  CHECK(r.out.find("full:") != std::string::npos);
  std::ifstream in(png, std::ios::binary);
  const std::string d((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  REQUIRE(d.size() > 33);
  CHECK(d.compare(0, 8, "\x89PNG\r\n\x1a\n") == 0);
  CHECK(d.compare(12, 4, "IHDR") == 0);
  CHECK(be32(d, 16) == 1024);  // 4096 keys sampled to 1024 pixels
  CHECK(be32(d, 20) == 1024);
  CHECK(d.compare(d.size() - 8, 4, "IEND") == 0);
  std::filesystem::remove(png);
  // Masks that read captured tensors need their values: refused, with the way to do it.
  const fjtest::CliResult c = fjtest::run_cli(
      {"mask", "--spec",
       R"({"dtype":"bf16","head_dim":64,"mask":{"kind":"custom","expr":"doc[q_idx] == 0"},"captures":[{"name":"doc","dtype":"i32","rank":1}]})",
       "--sq", "100"});
  CHECK(c.status != 0);
  CHECK(c.out.find("plot_block_mask") != std::string::npos);
  CHECK(fjtest::run_cli({"mask", "--spec", spec}).status == 2);              // missing --sq
  CHECK(fjtest::run_cli({"mask", "--spec", spec, "--sq", "0"}).status == 2);  // out of range
}
