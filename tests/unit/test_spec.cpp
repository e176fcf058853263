// AttentionSpec: defaults, JSON format, validation messages, hashing.
#include <cmath>
#include <cstdint>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "catch.hpp"
#include "flashjit/error.h"
#include "flashjit/spec.h"

using namespace flashjit;

namespace {

struct Caught {
  std::string field;
  std::string what;
};

// Runs f, which must throw SpecError; returns its field and message.
template <typename F>
Caught spec_error(F&& f) {
  try {
    f();
  } catch (const SpecError& e) {
    return {e.field(), e.what()};
  }
  FAIL("expected a SpecError");
  return {};
}

bool has(const std::string& text, const std::string& part) { return text.find(part) != std::string::npos; }

AttentionSpec base() {
  AttentionSpec s;
  s.dtype = DType::bf16;
  s.head_dim = 128;
  s.num_heads_q = 16;
  return s;
}

uint64_t fnv1a(const std::string& s) {
  uint64_t h = 14695981039346656037ull;
  for (unsigned char c : s) h = (h ^ c) * 1099511628211ull;
  return h;
}

}  // namespace

TEST_CASE("spec defaults and normalization", "[spec]") {
  AttentionSpec s;
  CHECK(s.dtype == DType::bf16);
  CHECK(s.head_dim == 0);
  CHECK(s.num_heads_q == 1);
  CHECK(s.mask.kind == MaskKind::none);
  CHECK(s.mask.align == MaskAlign::bottom_right);
  CHECK(s.mask.left == -1);
  CHECK(s.mask.right == -1);
  CHECK_FALSE(s.softmax_scale.has_value());
  CHECK_FALSE(s.return_lse);
  CHECK(s.dropout_p == 0.0);
  CHECK_FALSE(s.tile.has_value());

  s = base();
  s.num_heads_q = 32;
  const AttentionSpec n = s.normalized();
  CHECK(n.head_dim_v == 128);
  CHECK(n.num_heads_kv == 32);
  CHECK(s.head_dim_v == 0);  // normalized() returns a copy
  CHECK(s.gqa_group() == 1);
  s.num_heads_kv = 4;
  CHECK(s.gqa_group() == 8);
  s.head_dim_v = 64;
  CHECK(s.normalized().head_dim_v == 64);

  CHECK(s.effective_scale() == Approx(1.0 / std::sqrt(128.0)));
  s.softmax_scale = 0.5;
  CHECK(s.effective_scale() == 0.5);
}

TEST_CASE("spec equality compares meaning", "[spec]") {
  AttentionSpec a = base();
  AttentionSpec b = base();
  b.head_dim_v = 128;
  b.num_heads_kv = 16;
  CHECK(a == b);  // 0 means "same as"
  b.softmax_scale = a.effective_scale();
  CHECK_FALSE(a == b);  // an explicit scale is not the default
  b = a;
  b.tile = TileConfig{};
  CHECK_FALSE(a == b);
  CHECK(without_tile(b) == a);
  CHECK(b.tile.has_value());  // without_tile copies
}

TEST_CASE("spec enum names", "[spec]") {
  CHECK(std::string(to_string(DType::bf16)) == "bf16");
  CHECK(std::string(to_string(DType::f16)) == "fp16");
  CHECK(std::string(to_string(MaskKind::none)) == "none");
  CHECK(std::string(to_string(MaskKind::causal)) == "causal");
  CHECK(std::string(to_string(MaskKind::sliding_window)) == "sliding_window");
  CHECK(std::string(to_string(MaskAlign::top_left)) == "top_left");
  CHECK(std::string(to_string(MaskAlign::bottom_right)) == "bottom_right");
  CHECK(dtype_size(DType::bf16) == 2);
  CHECK(dtype_size(DType::f16) == 2);
}

TEST_CASE("spec_from_json: minimal and full", "[spec]") {
  SECTION("only required fields") {
    const AttentionSpec s = spec_from_json(R"({"dtype":"fp16","head_dim":64})");
    CHECK(s.dtype == DType::f16);
    CHECK(s.head_dim == 64);
    CHECK(s.normalized().head_dim_v == 64);
    CHECK(s.num_heads_q == 1);
    CHECK(s.normalized().num_heads_kv == 1);
    CHECK(s.mask == MaskSpec{});
    CHECK_FALSE(s.softmax_scale);
    CHECK_FALSE(s.tile);
    CHECK(s == AttentionSpec{DType::f16, 64});
  }
  SECTION("every field") {
    const AttentionSpec s = spec_from_json(R"({
      "dtype": "bf16", "head_dim": 128, "head_dim_v": 64, "num_heads_q": 16, "num_heads_kv": 4,
      "mask": {"kind": "sliding_window", "align": "top_left", "left": 256, "right": 0},
      "softmax_scale": 0.088, "return_lse": true, "dropout_p": 0.0, "direction": "fwd",
      "tile": {"block_m": 64, "block_n": 32, "warps": 4, "stages": 3}})");
    CHECK(s.dtype == DType::bf16);
    CHECK(s.head_dim == 128);
    CHECK(s.head_dim_v == 64);
    CHECK(s.num_heads_q == 16);
    CHECK(s.num_heads_kv == 4);
    CHECK(s.mask.kind == MaskKind::sliding_window);
    CHECK(s.mask.align == MaskAlign::top_left);
    CHECK(s.mask.left == 256);
    CHECK(s.mask.right == 0);
    REQUIRE(s.softmax_scale);
    CHECK(*s.softmax_scale == 0.088);
    CHECK(s.return_lse);
    REQUIRE(s.tile);
    CHECK(*s.tile == TileConfig{64, 32, 4, 3});
    validate(s);
  }
  SECTION("mask as a plain string, align defaults to bottom_right") {
    const AttentionSpec s = spec_from_json(R"({"dtype":"bf16","head_dim":128,"mask":"causal"})");
    CHECK(s.mask.kind == MaskKind::causal);
    CHECK(s.mask.align == MaskAlign::bottom_right);
    CHECK(s.mask.left == -1);
    CHECK(s.mask.right == -1);
    const AttentionSpec o = spec_from_json(R"({"dtype":"bf16","head_dim":128,"mask":{"kind":"causal"}})");
    CHECK(s == o);
    CHECK(spec_from_json(R"({"dtype":"bf16","head_dim":128,"mask":"none"})").mask.kind == MaskKind::none);
  }
  SECTION("dtype aliases") {
    for (const char* name : {"fp16", "f16", "float16"})
      CHECK(spec_from_json(std::string(R"({"head_dim":64,"dtype":")") + name + "\"}").dtype == DType::f16);
    for (const char* name : {"bf16", "bfloat16"})
      CHECK(spec_from_json(std::string(R"({"head_dim":64,"dtype":")") + name + "\"}").dtype == DType::bf16);
  }
  SECTION("tile keys left out keep their defaults; null means absent") {
    const AttentionSpec s = spec_from_json(R"({"dtype":"bf16","head_dim":128,"tile":{"block_m":64}})");
    REQUIRE(s.tile);
    CHECK(*s.tile == TileConfig{64, 64, 4, 2});
    const AttentionSpec n = spec_from_json(R"({"dtype":"bf16","head_dim":128,"tile":null,"softmax_scale":null})");
    CHECK_FALSE(n.tile);
    CHECK_FALSE(n.softmax_scale);
  }
}

TEST_CASE("spec_from_json: errors name the field", "[spec]") {
  struct Case {
    const char* json;
    const char* field;
    const char* says;
  };
  const std::vector<Case> cases = {
      {R"({"dtype":"bf16","head_dim":128,"bogus":1})", "bogus", "unknown key"},
      {R"({"dtype":"bf16","head_dim":128,"mask":{"kind":"causal","size":3}})", "mask.size", "unknown key"},
      {R"({"dtype":"bf16","head_dim":128,"tile":{"block_k":64}})", "tile.block_k", "unknown key"},
      {R"({"head_dim":128})", "dtype", "required"},
      {R"({"dtype":"bf16"})", "head_dim", "required"},
      {R"({"dtype":"fp64","head_dim":128})", "dtype", "\"fp64\" is not supported; allowed: bf16, fp16"},
      {R"({"dtype":16,"head_dim":128})", "dtype", "expected a string"},
      {R"({"dtype":"bf16","head_dim":"128"})", "head_dim", "expected an integer, got string"},
      {R"({"dtype":"bf16","head_dim":128.5})", "head_dim", "expected an integer"},
      {R"({"dtype":"bf16","head_dim":99999999999})", "head_dim", "out of range"},
      {R"({"dtype":"bf16","head_dim":128,"num_heads_q":[16]})", "num_heads_q", "expected an integer, got array"},
      {R"({"dtype":"bf16","head_dim":128,"num_heads_kv":true})", "num_heads_kv", "expected an integer"},
      {R"({"dtype":"bf16","head_dim":128,"head_dim_v":null})", "head_dim_v", "expected an integer"},
      {R"({"dtype":"bf16","head_dim":128,"return_lse":1})", "return_lse", "expected a boolean"},
      {R"({"dtype":"bf16","head_dim":128,"softmax_scale":"auto"})", "softmax_scale", "expected a number"},
      {R"({"dtype":"bf16","head_dim":128,"dropout_p":"0"})", "dropout_p", "expected a number"},
      {R"({"dtype":"bf16","head_dim":128,"direction":"backward"})", "direction", "a spec has no direction"},
      {R"({"dtype":"bf16","head_dim":128,"direction":"bwd"})", "direction", "kinds of the same spec"},
      {R"({"dtype":"bf16","head_dim":128,"mask":"diagonal"})", "mask", "\"diagonal\" is not supported"},
      {R"({"dtype":"bf16","head_dim":128,"mask":7})", "mask", "expected an object or a mask kind string"},
      {R"({"dtype":"bf16","head_dim":128,"mask":{"align":"top_left"}})", "mask.kind", "required"},
      {R"({"dtype":"bf16","head_dim":128,"mask":{"kind":"causal","align":"center"}})", "mask.align",
       "allowed: top_left, bottom_right"},
      {R"({"dtype":"bf16","head_dim":128,"mask":{"kind":"sliding_window","left":"64"}})", "mask.left",
       "expected an integer"},
      {R"({"dtype":"bf16","head_dim":128,"mask":{"kind":"sliding_window","right":1.5}})", "mask.right",
       "expected an integer"},
      {R"({"dtype":"bf16","head_dim":128,"tile":[128,64]})", "tile", "expected an object"},
      {R"({"dtype":"bf16","head_dim":128,"tile":{"warps":"4"}})", "tile.warps", "expected an integer"},
      {R"([1,2])", "json", "expected a JSON object"},
      {R"({"dtype":"bf16",)", "json", "parse error"},
      {"", "json", "parse error"},
  };
  for (const Case& c : cases) {
    INFO(c.json);
    const Caught e = spec_error([&] { spec_from_json(c.json); });
    CHECK(e.field == c.field);
    CHECK(has(e.what, c.says));
    CHECK(has(e.what, std::string("spec.") + c.field + ": "));
  }
}

TEST_CASE("spec_to_json: canonical form", "[spec]") {
  AttentionSpec s = base();
  s.mask.kind = MaskKind::causal;
  const std::string expected =
      R"({"dtype":"bf16","head_dim":128,"head_dim_v":128,"num_heads_q":16,"num_heads_kv":16,)"
      R"("mask":{"kind":"causal","align":"bottom_right","left":-1,"right":-1},)"
      R"("return_lse":false,"dropout_p":0.0})";
  CHECK(spec_to_json(s) == expected);
  // The hash is FNV-1a of exactly that text: the same on every platform and run.
  CHECK(spec_hash(s) == fnv1a(expected));

  s.softmax_scale = 0.125;
  s.tile = TileConfig{128, 64, 4, 2};
  s.return_lse = true;
  s.dtype = DType::f16;
  CHECK(spec_to_json(s) ==
        R"({"dtype":"fp16","head_dim":128,"head_dim_v":128,"num_heads_q":16,"num_heads_kv":16,)"
        R"("mask":{"kind":"causal","align":"bottom_right","left":-1,"right":-1},"softmax_scale":0.125,)"
        R"("return_lse":true,"dropout_p":0.0,)"
        R"("tile":{"block_m":128,"block_n":64,"warps":4,"stages":2,"mma":"mma_sync"}})");

  const std::string pretty = spec_to_json(s, true);
  CHECK(has(pretty, "\n"));
  CHECK(has(pretty, "\"head_dim\": 128"));
  CHECK(spec_from_json(pretty) == s);
  CHECK(spec_to_json(spec_from_json(pretty)) == spec_to_json(s));
}

TEST_CASE("spec JSON round trip over a matrix of specs", "[spec]") {
  std::vector<AttentionSpec> specs;
  const std::vector<MaskSpec> masks = {
      {MaskKind::none, MaskAlign::bottom_right, -1, -1},
      {MaskKind::causal, MaskAlign::bottom_right, -1, -1},
      {MaskKind::causal, MaskAlign::top_left, -1, -1},
      {MaskKind::sliding_window, MaskAlign::bottom_right, 128, 0},
      {MaskKind::sliding_window, MaskAlign::top_left, -1, 7},
      {MaskKind::sliding_window, MaskAlign::bottom_right, 1, -1},
  };
  for (DType dt : {DType::f16, DType::bf16})
    for (int d : kSupportedHeadDims)
      for (const MaskSpec& m : masks)
        for (int variant = 0; variant < 4; ++variant) {
          AttentionSpec s;
          s.dtype = dt;
          s.head_dim = d;
          s.mask = m;
          s.num_heads_q = 8 * (variant + 1);
          s.num_heads_kv = variant % 2 ? 2 : 0;
          s.head_dim_v = variant == 3 ? 64 : 0;
          s.return_lse = variant % 2 == 0;
          if (variant & 1) s.softmax_scale = 1.0 / 3.0 + d;  // not exactly representable in decimal
          if (variant & 2) s.tile = TileConfig{64 * (variant - 1), 32, 2, variant};
          specs.push_back(s);
        }
  std::set<std::string> texts;
  for (const AttentionSpec& s : specs) {
    const std::string text = spec_to_json(s);
    INFO(text);
    validate(s);
    const AttentionSpec back = spec_from_json(text);
    const AttentionSpec n = s.normalized();
    CHECK(back == n);
    // Field by field too, so the check does not lean on operator== alone.
    CHECK(back.head_dim_v == n.head_dim_v);
    CHECK(back.num_heads_kv == n.num_heads_kv);
    CHECK(back.mask == n.mask);
    CHECK(back.softmax_scale == n.softmax_scale);  // exact double round trip
    CHECK(back.tile == n.tile);
    CHECK(back.return_lse == n.return_lse);
    CHECK(spec_to_json(back) == text);
    CHECK(spec_to_json(back, true) == spec_to_json(s, true));
    texts.insert(text);
  }
  CHECK(texts.size() == specs.size());  // distinct specs, distinct canonical forms
}

TEST_CASE("spec JSON: tile.pipeline round trips, and the default stays unwritten", "[spec]") {
  AttentionSpec s = base();
  s.tile = TileConfig{128, 128, 8, 2, MmaKind::wgmma};
  const std::string plain = spec_to_json(s);
  CHECK(plain.find("pipeline") == std::string::npos);  // old kernel keys and records stay valid
  s.tile->pipeline = PipelineKind::tma_ws;
  s.tile->warps = 12;
  CHECK(spec_to_json(s).find("pingpong") == std::string::npos);
  s.tile->pingpong = true;
  const std::string ws = spec_to_json(s);
  CHECK(has(ws, R"("pingpong":true)"));
  CHECK(!has(ws, "persistent"));
  AttentionSpec p = s;
  p.tile->persistent = true;
  CHECK(has(spec_to_json(p), R"("persistent":true)"));
  CHECK(spec_from_json(spec_to_json(p)).tile == p.tile);
  CHECK(has(ws, R"("pipeline":"tma_ws")"));
  const AttentionSpec back = spec_from_json(ws);
  REQUIRE(back.tile);
  CHECK(back.tile->pipeline == PipelineKind::tma_ws);
  CHECK(back.tile == s.tile);
  CHECK(spec_hash(back) != spec_hash(spec_from_json(plain)));
  const Caught e = spec_error([] {
    spec_from_json(R"({"dtype":"bf16","head_dim":128,"tile":{"block_m":128,"block_n":128,"warps":12,"stages":2,)"
                   R"("mma":"wgmma","pipeline":"tma"}})");
  });
  CHECK(e.field == "tile.pipeline");
  CHECK(has(e.what, "cp_async, tma_ws"));
}

TEST_CASE("spec_hash: stable and sensitive to every field", "[spec]") {
  AttentionSpec s = base();
  s.tile = TileConfig{};
  s.softmax_scale = 0.1;
  const uint64_t h = spec_hash(s);
  CHECK(spec_hash(s) == h);
  CHECK(spec_hash(AttentionSpec(s)) == h);
  CHECK(spec_hash(spec_from_json(spec_to_json(s))) == h);

  // Same meaning, same hash.
  AttentionSpec spelled = s;
  spelled.head_dim_v = 128;
  spelled.num_heads_kv = 16;
  CHECK(spec_hash(spelled) == h);

  std::vector<std::pair<const char*, void (*)(AttentionSpec&)>> changes = {
      {"dtype", [](AttentionSpec& x) { x.dtype = DType::f16; }},
      {"head_dim", [](AttentionSpec& x) { x.head_dim = 64; }},
      {"head_dim_v", [](AttentionSpec& x) { x.head_dim_v = 64; }},
      {"num_heads_q", [](AttentionSpec& x) { x.num_heads_q = 32; }},
      {"num_heads_kv", [](AttentionSpec& x) { x.num_heads_kv = 8; }},
      {"mask.kind", [](AttentionSpec& x) { x.mask.kind = MaskKind::causal; }},
      {"mask.align", [](AttentionSpec& x) { x.mask.align = MaskAlign::top_left; }},
      {"mask.left", [](AttentionSpec& x) { x.mask.left = 3; }},
      {"mask.right", [](AttentionSpec& x) { x.mask.right = 3; }},
      {"softmax_scale", [](AttentionSpec& x) { x.softmax_scale = 0.1000001; }},
      {"softmax_scale unset", [](AttentionSpec& x) { x.softmax_scale.reset(); }},
      {"return_lse", [](AttentionSpec& x) { x.return_lse = true; }},
      {"dropout_p", [](AttentionSpec& x) { x.dropout_p = 0.1; }},
      {"tile unset", [](AttentionSpec& x) { x.tile.reset(); }},
      {"tile.block_m", [](AttentionSpec& x) { x.tile->block_m = 64; }},
      {"tile.block_n", [](AttentionSpec& x) { x.tile->block_n = 128; }},
      {"tile.warps", [](AttentionSpec& x) { x.tile->warps = 8; }},
      {"tile.stages", [](AttentionSpec& x) { x.tile->stages = 3; }},
  };
  std::set<uint64_t> seen = {h};
  for (const auto& [name, change] : changes) {
    INFO(name);
    AttentionSpec c = s;
    change(c);
    CHECK_FALSE(c == s);
    CHECK(spec_hash(c) != h);
    seen.insert(spec_hash(c));
  }
  CHECK(seen.size() == changes.size() + 1);
  CHECK(spec_hash(without_tile(s)) != h);
  CHECK_FALSE(without_tile(s).tile);
}

TEST_CASE("validate: accepts supported specs", "[spec]") {
  AttentionSpec s = base();
  validate(s);
  for (int d : kSupportedHeadDims) {
    s.head_dim = d;
    validate(s);
  }
  s.num_heads_kv = 1;  // MQA
  validate(s);
  s.mask = {MaskKind::sliding_window, MaskAlign::top_left, 0, -1};
  validate(s);
  s.mask = {MaskKind::sliding_window, MaskAlign::bottom_right, -1, 0};
  validate(s);
  s.softmax_scale = 1e-3;
  s.tile = TileConfig{256, 128, 8, 4};
  validate(s);
  for (int warps : {1, 2, 4, 8})
    for (int bm : {16, 32, 64, 128, 256})
      if (bm % (16 * warps) == 0) validate(TileConfig{bm, 16, warps, 2}, s);
}

TEST_CASE("validate: every error names its field", "[spec]") {
  struct Case {
    const char* name;
    void (*mutate)(AttentionSpec&);
    const char* field;
    std::vector<const char*> says;
  };
  const std::vector<Case> cases = {
      {"head_dim 0", [](AttentionSpec& s) { s.head_dim = 0; }, "head_dim",
       {"spec.head_dim: 0 is not supported; allowed: 32, 64, 96, 128, 192, 256"}},
      {"head_dim 100", [](AttentionSpec& s) { s.head_dim = 100; }, "head_dim", {"100", "allowed"}},
      {"head_dim_v 48", [](AttentionSpec& s) { s.head_dim_v = 48; }, "head_dim_v", {"48", "allowed: 32"}},
      {"num_heads_q 0", [](AttentionSpec& s) { s.num_heads_q = 0; }, "num_heads_q", {"0", "allowed: 1 to 65535"}},
      {"num_heads_kv negative", [](AttentionSpec& s) { s.num_heads_kv = -2; }, "num_heads_kv", {"-2", "allowed: 1 to num_heads_q (16)"}},
      {"num_heads_kv not a divisor", [](AttentionSpec& s) { s.num_heads_kv = 3; }, "num_heads_kv",
       {"16/3", "5.33", "allowed: 1, 2, 4, 8, 16"}},
      {"num_heads_kv above q", [](AttentionSpec& s) { s.num_heads_kv = 32; }, "num_heads_kv", {"32", "allowed: 1 to num_heads_q (16)"}},
      {"causal with left", [](AttentionSpec& s) { s.mask = {MaskKind::causal, MaskAlign::bottom_right, 4, -1}; },
       "mask.left", {"sliding_window", "-1"}},
      {"none with right", [](AttentionSpec& s) { s.mask.right = 0; }, "mask.right", {"sliding_window"}},
      {"window unbounded", [](AttentionSpec& s) { s.mask.kind = MaskKind::sliding_window; }, "mask",
       {"left >= 0 and/or right >= 0"}},
      {"window left -2",
       [](AttentionSpec& s) { s.mask = {MaskKind::sliding_window, MaskAlign::bottom_right, -2, 4}; },
       "mask.left", {"-2", "-1 (unbounded) or 0 to 1073741824"}},
      {"window right -5",
       [](AttentionSpec& s) { s.mask = {MaskKind::sliding_window, MaskAlign::bottom_right, 4, -5}; },
       "mask.right", {"-5"}},
      {"scale zero", [](AttentionSpec& s) { s.softmax_scale = 0.0; }, "softmax_scale", {"allowed: 1e-30 to 1e+30"}},
      {"scale negative", [](AttentionSpec& s) { s.softmax_scale = -1.0; }, "softmax_scale", {"-1"}},
      {"scale inf", [](AttentionSpec& s) { s.softmax_scale = INFINITY; }, "softmax_scale", {"inf"}},
      {"scale nan", [](AttentionSpec& s) { s.softmax_scale = NAN; }, "softmax_scale", {"nan"}},
      {"dropout 1", [](AttentionSpec& s) { s.dropout_p = 1.0; }, "dropout_p", {"0 <= dropout_p < 1"}},
      {"dropout negative", [](AttentionSpec& s) { s.dropout_p = -0.5; }, "dropout_p", {"0 <= dropout_p < 1"}},
      {"block_m 48", [](AttentionSpec& s) { s.tile = TileConfig{48, 64, 4, 2}; }, "tile.block_m",
       {"48", "16, 32, 64, 128, 256"}},
      {"block_m per warp", [](AttentionSpec& s) { s.tile = TileConfig{32, 64, 4, 2}; }, "tile.block_m",
       {"8 rows per warp", "allowed with 4 warps: 64, 128, 256"}},
      {"block_n 512", [](AttentionSpec& s) { s.tile = TileConfig{128, 512, 4, 2}; }, "tile.block_n", {"512"}},
      {"warps 3", [](AttentionSpec& s) { s.tile = TileConfig{128, 64, 3, 2}; }, "tile.warps", {"3", "1, 2, 4, 8"}},
      {"stages 1", [](AttentionSpec& s) { s.tile = TileConfig{128, 64, 4, 1}; }, "tile.stages", {"1", "2, 3, 4"}},
      {"stages 5", [](AttentionSpec& s) { s.tile = TileConfig{128, 64, 4, 5}; }, "tile.stages", {"5"}},
      {"wgmma warps", [](AttentionSpec& s) { s.tile = TileConfig{128, 128, 4, 2, MmaKind::wgmma}; }, "tile.warps",
       {"each warpgroup of 4 warps owns 64 rows", "allowed: 8"}},
      {"wgmma block_m 32", [](AttentionSpec& s) { s.tile = TileConfig{32, 128, 2, 2, MmaKind::wgmma}; },
       "tile.block_m", {"32", "64, 128, 192"}},
      {"wgmma block_n 32", [](AttentionSpec& s) { s.tile = TileConfig{128, 32, 8, 2, MmaKind::wgmma}; },
       "tile.block_n", {"32", "64, 96, 128, 176, 192"}},
      {"wgmma head_dim 96",
       [](AttentionSpec& s) {
         s.head_dim = s.head_dim_v = 96;
         s.tile = TileConfig{128, 128, 8, 2, MmaKind::wgmma};
       },
       "tile.mma", {"head_dim in 64, 128, 192, 256", "head_dim=96", "mma_sync"}},
      {"tma_ws warps",
       [](AttentionSpec& s) { s.tile = TileConfig{128, 128, 8, 2, MmaKind::wgmma, PipelineKind::tma_ws}; },
       "tile.warps", {"pipeline=tma_ws", "plus the producer's 4", "allowed: 12"}},
      {"pingpong without tma_ws",
       [](AttentionSpec& s) {
         TileConfig t{128, 128, 8, 2, MmaKind::wgmma};
         t.pingpong = true;
         s.tile = t;
       },
       "tile.pingpong", {"needs pipeline=tma_ws and block_m=128", "pipeline=cp_async"}},
      {"pingpong with 3 consumers",
       [](AttentionSpec& s) { s.tile = TileConfig{192, 64, 16, 2, MmaKind::wgmma, PipelineKind::tma_ws, true}; },
       "tile.pingpong", {"block_m=192"}},
      {"persistent without tma_ws",
       [](AttentionSpec& s) {
         TileConfig t{128, 128, 8, 2, MmaKind::wgmma};
         t.persistent = true;
         s.tile = t;
       },
       "tile.persistent", {"needs pipeline=tma_ws", "pipeline=cp_async"}},
      {"tma_ws on mma_sync",
       [](AttentionSpec& s) { s.tile = TileConfig{128, 64, 4, 2, MmaKind::mma_sync, PipelineKind::tma_ws}; },
       "tile.pipeline", {"tma_ws needs mma=wgmma"}},
      {"persistent tma_ws with a tile-list mask",
       [](AttentionSpec& s) {
         s.mask.kind = MaskKind::custom;
         s.mask.expr = "(q_idx // 64) % 2 == (kv_idx // 64) % 2";
         s.tile = TileConfig{128, 128, 12, 2, MmaKind::wgmma, PipelineKind::tma_ws, false, true};
       },
       "tile.persistent", {"classified per tile at run time", "persistent=false"}},
  };
  for (const Case& c : cases) {
    INFO(c.name);
    AttentionSpec s = base();
    c.mutate(s);
    const Caught e = spec_error([&] { validate(s); });
    CHECK(e.field == c.field);
    CHECK(has(e.what, std::string("flashjit: spec.") + c.field + ": "));
    for (const char* part : c.says) {
      INFO(e.what);
      CHECK(has(e.what, part));
    }
  }
}

TEST_CASE("validate: tile checked on its own too", "[spec]") {
  const Caught e = spec_error([] { validate(TileConfig{128, 64, 16, 2}, base()); });
  CHECK(e.field == "tile.warps");
  // A spec parsed from JSON is validated with the same messages.
  const Caught j = spec_error([] { validate(spec_from_json(R"({"dtype":"bf16","head_dim":0})")); });
  CHECK(j.field == "head_dim");
}
