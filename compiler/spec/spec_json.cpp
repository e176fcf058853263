// The public JSON format of an AttentionSpec (docs: spec.h). Parsing is strict: unknown
// or duplicate keys and wrong types are errors naming the field, so a typo never silently
// falls back to a default; the text itself goes through the strict reader (size, depth,
// NUL bytes, BOM, number range: strict_json.h).
#include <fmt/format.h>

#include <climits>
#include <cstdint>
#include <initializer_list>
#include <string>
#include <utility>

#include "flashjit/error.h"
#include "flashjit/spec.h"
#include "strict_json.h"

namespace flashjit {
namespace {

using json::Json;
using json::show;

[[noreturn]] void type_error(const std::string& field, const char* expected, const Json& v) {
  throw SpecError(field, fmt::format("expected {}, got {} {}", expected, v.type_name(), show(v)));
}

int read_int(const Json& v, const std::string& field) {
  if (!v.is_number_integer()) type_error(field, "an integer", v);
  // Non-negative literals are stored unsigned; both must fit an int.
  const bool fits = v.is_number_unsigned() ? v.get<uint64_t>() <= uint64_t(INT_MAX)
                                           : v.get<int64_t>() >= INT_MIN && v.get<int64_t>() <= INT_MAX;
  if (!fits) throw SpecError(field, fmt::format("{} is out of range for a 32-bit integer", show(v)));
  return v.get<int>();
}

double read_number(const Json& v, const std::string& field) {
  if (!v.is_number()) type_error(field, "a number", v);
  return v.get<double>();
}

bool read_bool(const Json& v, const std::string& field) {
  if (!v.is_boolean()) type_error(field, "a boolean (true or false)", v);
  return v.get<bool>();
}

const std::string& read_string(const Json& v, const std::string& field) {
  if (!v.is_string()) type_error(field, "a string", v);
  return v.get_ref<const std::string&>();
}

// Maps a string to an enum through (name, value) pairs; `allowed` is the message list.
template <typename E>
E read_enum(const Json& v, const std::string& field,
            std::initializer_list<std::pair<const char*, E>> names, const char* allowed) {
  const std::string& s = read_string(v, field);
  for (const auto& [name, value] : names)
    if (s == name) return value;
  throw SpecError(field, fmt::format("\"{}\" is not supported; allowed: {}", s, allowed));
}

void check_keys(const Json& obj, const std::string& prefix,
                std::initializer_list<const char*> allowed) {
  for (const auto& item : obj.items()) {
    bool known = false;
    std::string list;
    for (const char* a : allowed) {
      known = known || item.key() == a;
      list += (list.empty() ? "" : ", ") + std::string(a);
    }
    if (!known) throw SpecError(prefix + item.key(), "unknown key; allowed keys: " + list);
  }
}

MaskKind read_mask_kind(const Json& v, const std::string& field) {
  return read_enum<MaskKind>(v, field,
                             {{"none", MaskKind::none},
                              {"causal", MaskKind::causal},
                              {"sliding_window", MaskKind::sliding_window},
                              {"custom", MaskKind::custom}},
                             "none, causal, sliding_window, custom");
}

MaskSpec read_mask(const Json& v) {
  MaskSpec m;
  if (v.is_string()) {  // shorthand: "mask": "causal"
    m.kind = read_mask_kind(v, "mask");
    return m;
  }
  if (!v.is_object()) type_error("mask", "an object or a mask kind string", v);
  check_keys(v, "mask.", {"kind", "align", "left", "right", "expr"});
  if (!v.contains("kind"))
    throw SpecError("mask.kind", "is required in a mask object; allowed: none, causal, sliding_window, custom");
  m.kind = read_mask_kind(v["kind"], "mask.kind");
  if (v.contains("align"))
    m.align = read_enum<MaskAlign>(v["align"], "mask.align",
                                   {{"top_left", MaskAlign::top_left},
                                    {"bottom_right", MaskAlign::bottom_right}},
                                   "top_left, bottom_right");
  if (v.contains("left")) m.left = read_int(v["left"], "mask.left");
  if (v.contains("right")) m.right = read_int(v["right"], "mask.right");
  if (v.contains("expr")) m.expr = read_string(v["expr"], "mask.expr");
  return m;
}

TileConfig read_tile(const Json& v) {
  if (!v.is_object()) type_error("tile", "an object", v);
  check_keys(v, "tile.", {"block_m", "block_n", "warps", "stages", "mma", "pipeline", "pingpong", "persistent"});
  TileConfig t;  // keys left out keep TileConfig's defaults
  if (v.contains("block_m")) t.block_m = read_int(v["block_m"], "tile.block_m");
  if (v.contains("block_n")) t.block_n = read_int(v["block_n"], "tile.block_n");
  if (v.contains("warps")) t.warps = read_int(v["warps"], "tile.warps");
  if (v.contains("stages")) t.stages = read_int(v["stages"], "tile.stages");
  if (v.contains("mma"))
    t.mma = read_enum<MmaKind>(v["mma"], "tile.mma", {{"mma_sync", MmaKind::mma_sync}, {"wgmma", MmaKind::wgmma}},
                               "mma_sync, wgmma");
  if (v.contains("pipeline"))
    t.pipeline = read_enum<PipelineKind>(v["pipeline"], "tile.pipeline",
                                         {{"cp_async", PipelineKind::cp_async}, {"tma_ws", PipelineKind::tma_ws}},
                                         "cp_async, tma_ws");
  if (v.contains("pingpong")) t.pingpong = read_bool(v["pingpong"], "tile.pingpong");
  if (v.contains("persistent")) t.persistent = read_bool(v["persistent"], "tile.persistent");
  return t;
}

std::vector<expr::CaptureDecl> read_captures(const Json& v) {
  if (!v.is_array()) type_error("captures", "an array of {name, dtype, rank} objects", v);
  std::vector<expr::CaptureDecl> caps;
  for (size_t i = 0; i < v.size(); ++i) {
    const std::string at = fmt::format("captures[{}]", i);
    const Json& c = v[i];
    if (!c.is_object()) type_error(at, "an object {name, dtype, rank}", c);
    check_keys(c, at + ".", {"name", "dtype", "rank"});
    for (const char* key : {"name", "dtype", "rank"})
      if (!c.contains(key)) throw SpecError(at + "." + key, "is required");
    expr::CaptureDecl d;
    d.name = read_string(c["name"], at + ".name");
    const std::string dt = read_string(c["dtype"], at + ".dtype");
    const std::optional<expr::CaptureDType> parsed = expr::capture_dtype_from(dt);
    if (!parsed) throw SpecError(at + ".dtype", fmt::format("\"{}\" is not supported; allowed: i32, i64, f32, f16, bf16, bool", dt));
    d.dtype = *parsed;
    d.rank = read_int(c["rank"], at + ".rank");
    caps.push_back(std::move(d));
  }
  return caps;
}

}  // namespace

AttentionSpec spec_from_json(const std::string& json_text) {
  Json j;
  try {
    j = json::parse(json_text, json::Limits{});
  } catch (const json::ParseError& e) {
    throw SpecError(e.path().empty() ? "json" : e.path(), e.reason());
  }
  if (!j.is_object()) type_error("json", "a JSON object", j);
  check_keys(j, "", {"dtype", "head_dim", "head_dim_v", "num_heads_q", "num_heads_kv", "mask",
                     "softmax_scale", "return_lse", "dropout_p", "score_mod", "captures", "direction", "tile"});

  AttentionSpec s;
  if (!j.contains("dtype")) throw SpecError("dtype", "is required; allowed: bf16, fp16");
  s.dtype = read_enum<DType>(j["dtype"], "dtype",
                             {{"bf16", DType::bf16}, {"bfloat16", DType::bf16},
                              {"fp16", DType::f16}, {"f16", DType::f16}, {"float16", DType::f16}},
                             "bf16, fp16 (aliases: bfloat16, f16, float16)");
  if (!j.contains("head_dim"))
    throw SpecError("head_dim", "is required; allowed: 32, 64, 96, 128, 192, 256");
  s.head_dim = read_int(j["head_dim"], "head_dim");
  if (j.contains("head_dim_v")) s.head_dim_v = read_int(j["head_dim_v"], "head_dim_v");
  if (j.contains("num_heads_q")) s.num_heads_q = read_int(j["num_heads_q"], "num_heads_q");
  if (j.contains("num_heads_kv")) s.num_heads_kv = read_int(j["num_heads_kv"], "num_heads_kv");
  if (j.contains("mask")) s.mask = read_mask(j["mask"]);
  // null is accepted as "absent" for the optional fields (what Python's None serializes to).
  if (j.contains("softmax_scale") && !j["softmax_scale"].is_null())
    s.softmax_scale = read_number(j["softmax_scale"], "softmax_scale");
  if (j.contains("return_lse")) s.return_lse = read_bool(j["return_lse"], "return_lse");
  if (j.contains("dropout_p")) s.dropout_p = read_number(j["dropout_p"], "dropout_p");
  if (j.contains("score_mod") && !j["score_mod"].is_null()) s.score_mod = read_string(j["score_mod"], "score_mod");
  if (j.contains("captures")) s.captures = read_captures(j["captures"]);
  // A spec is one variant, forward and backward alike (the backward is a set of kernel kinds
  // of the same spec, kernel_kind.h). Older JSON said "direction": "fwd"; that still reads.
  if (j.contains("direction") && !(j["direction"].is_string() && j["direction"].get<std::string>() == "fwd"))
    throw SpecError("direction", "a spec has no direction: the backward's kernels are kinds of the same spec "
                                 "(flashjit::backward(), `flashjit compile --kind bwd_dkdv`); drop the field "
                                 "(\"fwd\" is accepted and ignored)");
  if (j.contains("tile") && !j["tile"].is_null()) s.tile = read_tile(j["tile"]);
  return s;
}

std::string spec_to_json(const AttentionSpec& spec, bool pretty) {
  const AttentionSpec n = spec.normalized();
  Json j = Json::object();
  j["dtype"] = to_string(n.dtype);
  j["head_dim"] = n.head_dim;
  j["head_dim_v"] = n.head_dim_v;
  j["num_heads_q"] = n.num_heads_q;
  j["num_heads_kv"] = n.num_heads_kv;
  Json mask = Json::object();
  mask["kind"] = to_string(n.mask.kind);
  mask["align"] = to_string(n.mask.align);
  mask["left"] = n.mask.left;
  mask["right"] = n.mask.right;
  if (n.mask.kind == MaskKind::custom || !n.mask.expr.empty()) mask["expr"] = n.mask.expr;
  j["mask"] = std::move(mask);
  // Written only when set, so "default scale" stays distinct from an explicit value.
  if (n.softmax_scale) j["softmax_scale"] = *n.softmax_scale;
  j["return_lse"] = n.return_lse;
  j["dropout_p"] = n.dropout_p;
  // Written only when used, so the canonical JSON (and key) of other specs is unchanged.
  if (!n.score_mod.empty()) j["score_mod"] = n.score_mod;
  if (!n.captures.empty()) {
    Json caps = Json::array();
    for (const expr::CaptureDecl& c : n.captures)
      caps.push_back(Json::object({{"name", c.name}, {"dtype", expr::to_string(c.dtype)}, {"rank", c.rank}}));
    j["captures"] = std::move(caps);
  }
  if (n.tile) {
    Json tile = Json::object();
    tile["block_m"] = n.tile->block_m;
    tile["block_n"] = n.tile->block_n;
    tile["warps"] = n.tile->warps;
    tile["stages"] = n.tile->stages;
    tile["mma"] = to_string(n.tile->mma);
    // Written only when not the default, so that specs (and kernel keys) from before the
    // field existed read and hash as they did.
    if (n.tile->pipeline != PipelineKind::cp_async) tile["pipeline"] = to_string(n.tile->pipeline);
    if (n.tile->pingpong) tile["pingpong"] = true;
    if (n.tile->persistent) tile["persistent"] = true;
    j["tile"] = std::move(tile);
  }
  return pretty ? j.dump(2) : j.dump();
}

}  // namespace flashjit
