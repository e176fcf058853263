// The CPU evaluator of the tile IR and the naive float64 reference it is checked against.
//
// evaluate() is an interpreter: it keeps a map from value names to tiles and executes the
// kernel's ops in order, dispatching on the op KIND and reading operand / result names
// from the op, so it runs whatever the lowering and the passes produced (rather than a
// hand-written copy of FlashAttention that would agree with itself). Everything that the
// GPU does differently from exact arithmetic and that changes results beyond fp32 noise is
// reproduced: inputs, P and the output are rounded to the spec's dtype. Matmuls and the
// softmax statistics are kept in double (the GPU uses fp32; the difference is far below
// the bf16/fp16 tolerances).
//
// reference_attention() is deliberately independent of the IR and of band_mask.cuh: it
// evaluates the mask from the spec's own definition, so a wrong band conversion or a
// wrong tile classification shows up as a disagreement.
#include "flashjit/cpu_eval.h"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstring>
#include <limits>
#include <map>
#include <stdexcept>
#include <string>
#include <utility>

#include <fmt/format.h>

#include <optional>

#include "flashjit/band_mask.cuh"
#include "flashjit/interval.cuh"
#include "flashjit/error.h"
#include "reference_scores.h"

namespace flashjit::eval {

namespace {

constexpr double kInf = std::numeric_limits<double>::infinity();
constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

uint32_t float_bits(float f) {
  uint32_t b;
  std::memcpy(&b, &f, sizeof b);
  return b;
}
float bits_float(uint32_t b) {
  float f;
  std::memcpy(&f, &b, sizeof f);
  return f;
}

// double -> float with round-to-odd (truncate, then set the last bit when inexact).
// A plain (float) cast rounds to nearest, and rounding twice to nearest is wrong for
// doubles that lie just above a bf16/fp16 tie (1 + 2^-8 + 2^-40 would become the tie
// 1 + 2^-8 in float and then round down to 1 in bf16). Round-to-odd into a format with at
// least two more mantissa bits than the target makes the second rounding exact, and float
// has 13 (fp16) / 16 (bf16) more bits.
float to_float_round_odd(double x) {
  float f = static_cast<float>(x);
  if (std::isinf(f) || std::isnan(f)) return f;  // overflow: infinite in bf16 and fp16 too
  if (static_cast<double>(f) == x) return f;
  if (std::fabs(static_cast<double>(f)) > std::fabs(x)) f = std::nextafter(f, 0.0f);
  return bits_float(float_bits(f) | 1u);
}

double float_to_bf16(float f) {
  uint32_t b = float_bits(f);
  if ((b & 0x7fffffffu) > 0x7f800000u) return kNaN;
  // Round to nearest even on the 16 bits dropped; a carry walks into the exponent and
  // turns the largest finite values into inf, as IEEE rounding requires.
  b += 0x7fffu + ((b >> 16) & 1u);
  b &= 0xffff0000u;
  return static_cast<double>(bits_float(b));
}

double float_to_fp16(float f) {
  uint32_t b = float_bits(f);
  const uint32_t sign = b & 0x80000000u;
  uint32_t a = b ^ sign;
  const double sgn = sign ? -1.0 : 1.0;
  if (a > 0x7f800000u) return kNaN;
  // 65520 = 0x477ff000 is the tie between 65504 (odd mantissa) and 65536: it and
  // everything above rounds to inf.
  if (a >= 0x477ff000u) return sgn * kInf;
  if (a >= 0x38800000u) {  // >= 2^-14: normal in fp16, keep 10 of the 23 mantissa bits
    a += 0xfffu + ((a >> 13) & 1u);
    a &= ~0x1fffu;
    return sgn * static_cast<double>(bits_float(a));
  }
  // fp16 subnormal range: the quantum is 2^-24. value = m * 2^(e-23), m has 24 bits.
  const int e = static_cast<int>(a >> 23) - 127;
  if ((a >> 23) == 0) return sgn * 0.0;  // float subnormals are < 2^-126: round to 0
  const uint32_t m = (a & 0x7fffffu) | 0x800000u;
  const int s = -e - 1;  // n = m * 2^(e+1) = m >> s, s >= 14
  if (s >= 25) return sgn * 0.0;  // value < 2^-25 (half the smallest subnormal) strictly
  uint32_t n = m >> s;
  const uint32_t rem = m & ((1u << s) - 1u);
  const uint32_t half = 1u << (s - 1);
  if (rem > half || (rem == half && (n & 1u))) ++n;
  return sgn * std::ldexp(static_cast<double>(n), -24);
}

// --- attribute access, tolerant of how a number was stored ------------------------
const ir::Attr* find_attr(const ir::Op& op, const std::string& key) {
  auto it = op.attrs.find(key);
  return it == op.attrs.end() ? nullptr : &it->second;
}

std::string op_desc(const ir::Op& op) {
  std::string s = ir::to_string(op.kind);
  if (!op.results.empty()) s = "%" + op.results[0] + " = " + s;
  return s;
}

[[noreturn]] void ir_error(const ir::Op& op, const std::string& what) {
  throw std::logic_error("cpu_eval: op '" + op_desc(op) + "': " + what);
}

bool flag_attr(const ir::Op& op, const std::string& key) {
  const ir::Attr* a = find_attr(op, key);
  if (!a) return false;
  if (auto b = std::get_if<bool>(a)) return *b;
  if (auto i = std::get_if<int64_t>(a)) return *i != 0;
  ir_error(op, "attribute '" + key + "' is not a flag");
}

std::string string_attr(const ir::Op& op, const std::string& key) {
  const ir::Attr* a = find_attr(op, key);
  if (!a) ir_error(op, "missing attribute '" + key + "'");
  if (auto s = std::get_if<std::string>(a)) return *s;
  ir_error(op, "attribute '" + key + "' is not a string");
}

double parse_number(const ir::Op& op, const std::string& key, const std::string& text) {
  std::string t;
  for (char c : text)
    if (c != ' ') t += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  if (t == "-inf") return -kInf;
  if (t == "inf" || t == "+inf") return kInf;
  try {
    size_t used = 0;
    double v = std::stod(t, &used);
    if (used == t.size()) return v;
  } catch (const std::exception&) {
  }
  ir_error(op, "attribute '" + key + "' = '" + text + "' is not a number");
}

double number_attr(const ir::Op& op, const std::string& key) {
  const ir::Attr* a = find_attr(op, key);
  if (!a) ir_error(op, "missing attribute '" + key + "'");
  if (auto d = std::get_if<double>(a)) return *d;
  if (auto i = std::get_if<int64_t>(a)) return static_cast<double>(*i);
  if (auto s = std::get_if<std::string>(a)) return parse_number(op, key, *s);
  ir_error(op, "attribute '" + key + "' is not a number");
}

// --- tiles -------------------------------------------------------------------------
struct Tile {
  int rows = 0, cols = 0;
  std::vector<double> v;
  Tile() = default;
  Tile(int r, int c, double init = 0.0) : rows(r), cols(c), v(static_cast<size_t>(r) * c, init) {}
  double& at(int r, int c) { return v[static_cast<size_t>(r) * cols + c]; }
  double at(int r, int c) const { return v[static_cast<size_t>(r) * cols + c]; }
};

// Which tensor a load / store names, and what its rows are tiled by.
enum class Tensor { Q, K, V, O, LSE };

Tensor tensor_of(const ir::Op& op) {
  std::string t = string_attr(op, "tensor");
  for (auto& c : t) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  if (t == "Q") return Tensor::Q;
  if (t == "K") return Tensor::K;
  if (t == "V") return Tensor::V;
  if (t == "O") return Tensor::O;
  if (t == "LSE") return Tensor::LSE;
  ir_error(op, "unknown tensor '" + t + "'");
}

// Everything one (batch, head, q tile) program instance sees.
struct Instance {
  const ir::Kernel& k;
  const HostTensor& q;
  const HostTensor& kk;
  const HostTensor& v;
  Result& out;
  DType dtype;
  int64_t batch = 0, head_q = 0, head_kv = 0;
  int64_t q_tile = 0;      // value of the grid index "q_tile"
  int64_t kv_tile = -1;    // value of the loop induction variable (-1 outside the loop)
  flashjit::Band band{};
  flashjit::KvTileRange range{};
  bool masked_this_tile = false;
  // Expressions (parsed once per call) and what they read.
  const expr::Expr* mask_expr = nullptr;
  const expr::Expr* score_expr = nullptr;
  const std::vector<expr::HostCapture>* captures = nullptr;
  const DropoutKey* dropout = nullptr;  // the call's RNG state (a kernel with a dropout op)
  int tile_class = -1;  // interval classification of the current kv tile (by_interval loops)
  std::map<std::string, Tile> values;

  Instance(const ir::Kernel& k_, const HostTensor& q_, const HostTensor& kk_, const HostTensor& v_, Result& out_)
      : k(k_), q(q_), kk(kk_), v(v_), out(out_), dtype(k_.spec.dtype) {}

  int64_t seqlen_q() const { return q.s; }
  int64_t seqlen_k() const { return kk.s; }

  // Index expressions are a grid / loop variable name, optionally "+ c" or "- c".
  int64_t index_value(const ir::Op& op) const {
    std::string t;
    for (char c : string_attr(op, "index"))
      if (c != ' ' && c != '%') t += c;
    size_t p = t.find_first_of("+-");
    std::string name = t.substr(0, p);
    int64_t add = 0;
    if (p != std::string::npos) {
      try {
        add = std::stoll(t.substr(p));
      } catch (const std::exception&) {
        ir_error(op, "bad index expression '" + t + "'");
      }
    }
    if (name == "q_tile") return q_tile + add;
    if (name == k.loop.induction) {
      if (kv_tile < 0) ir_error(op, "loop index '" + name + "' used outside the KV loop");
      return kv_tile + add;
    }
    ir_error(op, "unknown index '" + name + "'");
  }

  const Tile& get(const ir::Op& op, size_t i) const {
    if (i >= op.operands.size()) ir_error(op, "missing operand " + std::to_string(i));
    auto it = values.find(op.operands[i]);
    if (it == values.end()) ir_error(op, "operand %" + op.operands[i] + " is not defined");
    return it->second;
  }
  void set(const ir::Op& op, size_t i, Tile t) {
    if (i >= op.results.size()) ir_error(op, "missing result " + std::to_string(i));
    values[op.results[i]] = std::move(t);
  }
  // A result's declared type must agree with what the op computes (when it declares one).
  void check_type(const ir::Op& op, const Tile& t) const {
    if ((op.type.rows != 0 && op.type.rows != t.rows) || (op.type.cols != 0 && op.type.cols != t.cols))
      ir_error(op, "declared type " + ir::to_string(op.type) + " but computes " + std::to_string(t.rows) + "x" +
                       std::to_string(t.cols));
  }

  // load_tile (and async_copy): rows beyond the tensor's end are zero-filled, as the
  // predicated GPU loads do. Values are rounded to the dtype, which is what storing them
  // in a half-precision tensor does (a no-op for inputs already representable).
  Tile load(const ir::Op& op) const {
    const Tensor t = tensor_of(op);
    const HostTensor* src = nullptr;
    int64_t head = 0;
    int rows = 0;
    switch (t) {
      case Tensor::Q: src = &q; head = head_q; rows = k.grid.block_m; break;
      case Tensor::K: src = &kk; head = head_kv; rows = k.grid.block_n; break;
      case Tensor::V: src = &v; head = head_kv; rows = k.grid.block_n; break;
      default: ir_error(op, "cannot load from an output tensor");
    }
    const int64_t r0 = index_value(op) * rows;
    Tile out(rows, static_cast<int>(src->d));
    for (int r = 0; r < rows; ++r) {
      const int64_t s = r0 + r;
      if (s < 0 || s >= src->s) continue;
      for (int c = 0; c < out.cols; ++c) out.at(r, c) = round_to(dtype, src->at(batch, head, s, c));
    }
    check_type(op, out);
    return out;
  }

  void exec(const ir::Op& op) {
    switch (op.kind) {
      case ir::OpKind::load_tile: set(op, 0, load(op)); break;
      case ir::OpKind::async_copy:
        // The ring of shared-memory stages changes when data arrives, not what it is: the
        // copy is evaluated as the load it replaces (its result names the tile).
        if (op.results.empty()) ir_error(op, "async_copy without a result name");
        set(op, 0, load(op));
        break;
      case ir::OpKind::wait_copies: break;  // synchronisation only
      case ir::OpKind::fill: {
        if (op.type.rows <= 0 || op.type.cols <= 0) ir_error(op, "fill needs a shaped result type");
        set(op, 0, Tile(op.type.rows, op.type.cols, number_attr(op, "value")));
        break;
      }
      case ir::OpKind::gemm: gemm(op); break;
      case ir::OpKind::apply_mask: apply_mask(op); break;
      case ir::OpKind::score_mod: score_mod(op); break;
      case ir::OpKind::online_softmax: online_softmax(op); break;
      case ir::OpKind::dropout: apply_dropout(op); break;
      case ir::OpKind::finalize: finalize(op); break;
      case ir::OpKind::store_tile: store_tile(op); break;
      case ir::OpKind::store_lse: store_lse(op); break;
    }
  }

  // c = a * b (b transposed when transpose_b) [+ acc]. The accumulator is the third
  // operand, or the result's current value when the op only says {accumulate}.
  void gemm(const ir::Op& op) {
    const Tile& a = get(op, 0);
    const Tile& b = get(op, 1);
    const bool tb = flag_attr(op, "transpose_b");
    const int m = a.rows, kdim = a.cols;
    const int n = tb ? b.rows : b.cols;
    if ((tb ? b.cols : b.rows) != kdim)
      ir_error(op, "inner dimensions differ: " + std::to_string(kdim) + " vs " + std::to_string(tb ? b.cols : b.rows));
    Tile c(m, n);
    const Tile* acc = nullptr;
    if (op.operands.size() >= 3) {
      acc = &get(op, 2);
    } else if (flag_attr(op, "accumulate")) {
      if (op.results.empty()) ir_error(op, "accumulating gemm without a result");
      auto it = values.find(op.results[0]);
      if (it == values.end()) ir_error(op, "accumulator %" + op.results[0] + " is not defined");
      acc = &it->second;
    }
    if (acc && (acc->rows != m || acc->cols != n)) ir_error(op, "accumulator shape differs from the product");
    for (int i = 0; i < m; ++i)
      for (int j = 0; j < n; ++j) {
        double s = acc ? acc->at(i, j) : 0.0;
        if (tb)
          for (int t = 0; t < kdim; ++t) s += a.at(i, t) * b.at(j, t);
        else
          for (int t = 0; t < kdim; ++t) s += a.at(i, t) * b.at(t, j);
        c.at(i, j) = s;
      }
    check_type(op, c);
    set(op, 0, std::move(c));
  }

  // Scores of (q row i, key j) outside the band, or beyond seqlen_k, become -inf.
  // {when = "partial"} after classify_tiles means: full tiles skip this (the only thing
  // that lets them skip it is the classification being right, which the comparison with
  // the reference then checks).
  void apply_mask(const ir::Op& op) {
    if (kv_tile < 0) ir_error(op, "apply_mask outside the KV loop");
    Tile s = get(op, 0);
    const std::string when = string_attr(op, "when");
    if (when != "always" && when != "partial") ir_error(op, "unknown when = '" + when + "'");
    const bool full = mask_expr ? tile_class == kTileFull : flashjit::tile_is_full(range, static_cast<int>(kv_tile));
    const bool skip = when == "partial" && k.loop.classes.unmasked_full && full;
    if (!skip) {
      masked_this_tile = true;
      const int64_t i0 = q_tile * k.grid.block_m, j0 = kv_tile * k.grid.block_n;
      for (int r = 0; r < s.rows; ++r)
        for (int c = 0; c < s.cols; ++c) {
          bool visible = flashjit::band_visible(band, i0 + r, j0 + c, seqlen_k());
          // Padding rows (i >= seqlen_q) are never stored; the expression is not evaluated there.
          if (visible && mask_expr)
            visible = i0 + r < seqlen_q() && expr::eval_mask(*mask_expr, env(i0 + r, j0 + c, 0.f));
          if (!visible) s.at(r, c) = -kInf;
        }
    }
    check_type(op, s);
    set(op, 0, std::move(s));
  }

  expr::Env env(int64_t i, int64_t j, float score) const {
    expr::Env e;
    e.b = static_cast<int>(batch), e.h = static_cast<int>(head_q);
    e.q_idx = static_cast<int>(i), e.kv_idx = static_cast<int>(j);
    e.seqlen_q = static_cast<int>(seqlen_q()), e.seqlen_k = static_cast<int>(seqlen_k());
    e.score = score;
    e.captures = captures;
    return e;
  }

  // s = score_mod(score = s * scale) in float, as the kernel computes it, for the scores of
  // real rows and keys (padding is masked or never stored).
  void score_mod(const ir::Op& op) {
    if (kv_tile < 0) ir_error(op, "score_mod outside the KV loop");
    if (!score_expr) ir_error(op, "score_mod without the spec's score_mod expression");
    Tile s = get(op, 0);
    const float scale = static_cast<float>(number_attr(op, "scale"));
    const int64_t i0 = q_tile * k.grid.block_m, j0 = kv_tile * k.grid.block_n;
    for (int r = 0; r < s.rows; ++r)
      for (int c = 0; c < s.cols; ++c) {
        if (i0 + r >= seqlen_q() || j0 + c >= seqlen_k()) continue;
        const float score = static_cast<float>(s.at(r, c)) * scale;
        s.at(r, c) = expr::eval_score(*score_expr, env(i0 + r, j0 + c, score));
      }
    check_type(op, s);
    set(op, 0, std::move(s));
  }

  // FlashAttention-2's online softmax, in the log2 domain:
  //   m' = max(m, rowmax(s * scale_log2)), p = exp2(s * scale_log2 - m'),
  //   l' = exp2(m - m') * l + rowsum(p),  o' = exp2(m - m') * o.
  // A row that has seen only masked keys keeps m' = -inf; 0 stands in for it so that
  // exp2(-inf - m') is 0 rather than NaN. l sums the float p, the PV matmul gets P
  // rounded to the dtype (the MMA takes half-precision operands).
  void online_softmax(const ir::Op& op) {
    if (op.operands.size() != 4 || op.results.size() != 4)
      ir_error(op, "expects operands (s, m, l, o) and results (p, m, l, o)");
    const double sl = number_attr(op, "scale_log2");
    const Tile& s = get(op, 0);
    Tile m = get(op, 1), l = get(op, 2), o = get(op, 3);
    if (m.rows != s.rows || l.rows != s.rows || o.rows != s.rows || m.cols != 1 || l.cols != 1)
      ir_error(op, "row statistics do not match the score tile");
    Tile p(s.rows, s.cols);
    for (int r = 0; r < s.rows; ++r) {
      double mx = -kInf;
      for (int c = 0; c < s.cols; ++c) mx = std::max(mx, s.at(r, c) * sl);
      const double m_old = m.at(r, 0);
      const double m_new = std::max(m_old, mx);
      const double m_use = m_new == -kInf ? 0.0 : m_new;
      const double alpha = m_old == -kInf ? 0.0 : std::exp2(m_old - m_use);
      double sum = 0.0;
      for (int c = 0; c < s.cols; ++c) {
        const double e = std::exp2(s.at(r, c) * sl - m_use);
        sum += e;
        p.at(r, c) = round_to(dtype, e);
      }
      l.at(r, 0) = alpha * l.at(r, 0) + sum;
      for (int c = 0; c < o.cols; ++c) o.at(r, c) *= alpha;
      m.at(r, 0) = m_new;
    }
    if (op.type.rows != 0 || op.type.cols != 0) check_type(op, p);
    set(op, 0, std::move(p));
    set(op, 1, std::move(m));
    set(op, 2, std::move(l));
    set(op, 3, std::move(o));
  }

  // P of element (i, j) becomes 0 when its 16-bit number (philox.cuh, keyed on absolute
  // indices: the tile does not matter) is below the threshold. Padding is left alone.
  void apply_dropout(const ir::Op& op) {
    if (kv_tile < 0) ir_error(op, "dropout outside the KV loop");
    if (!dropout) ir_error(op, "a dropout op needs the call's RNG state (evaluate's dropout argument)");
    Tile p = get(op, 0);
    const auto threshold = static_cast<uint32_t>(number_attr(op, "threshold"));
    const int64_t i0 = q_tile * k.grid.block_m, j0 = kv_tile * k.grid.block_n;
    const auto bh = static_cast<uint32_t>(batch * out.o.h + head_q);
    for (int r = 0; r < p.rows; ++r)
      for (int c = 0; c < p.cols; ++c) {
        if (i0 + r >= seqlen_q() || j0 + c >= seqlen_k()) continue;
        if (dropout_element_number(*dropout, bh, static_cast<uint32_t>(i0 + r), static_cast<uint32_t>(j0 + c)) < threshold)
          p.at(r, c) = 0.0;
      }
    check_type(op, p);
    set(op, 0, std::move(p));
  }

  // O / l, times dropout_scale (1 / (1 - p)) after dropout.
  void finalize(const ir::Op& op) {
    const Tile& o = get(op, 0);
    const Tile& l = get(op, 1);
    if (l.rows != o.rows || l.cols != 1) ir_error(op, "l does not match o");
    const double keep_scale = find_attr(op, "dropout_scale") ? number_attr(op, "dropout_scale") : 1.0;
    Tile out(o.rows, o.cols);
    for (int r = 0; r < o.rows; ++r) {
      const double lr = l.at(r, 0);
      for (int c = 0; c < o.cols; ++c) out.at(r, c) = lr == 0.0 ? 0.0 : o.at(r, c) * keep_scale / lr;
    }
    check_type(op, out);
    set(op, 0, std::move(out));
  }

  // Rows beyond seqlen_q are the padding of the last q tile: never written. The output
  // tensor has the dtype, so the stored value is rounded.
  void store_tile(const ir::Op& op) {
    if (tensor_of(op) != Tensor::O) ir_error(op, "store_tile writes only O");
    const Tile& t = get(op, 0);
    if (t.cols != out.o.d) ir_error(op, "tile has " + std::to_string(t.cols) + " columns, O has " + std::to_string(out.o.d));
    const int64_t r0 = index_value(op) * k.grid.block_m;
    for (int r = 0; r < t.rows; ++r) {
      const int64_t s = r0 + r;
      if (s < 0 || s >= seqlen_q()) continue;
      for (int c = 0; c < t.cols; ++c) out.o.at(batch, head_q, s, c) = round_to(dtype, t.at(r, c));
    }
  }

  // m is the row max of the log2-scaled scores, so the natural-log LSE is m ln2 + ln l.
  void store_lse(const ir::Op& op) {
    if (tensor_of(op) != Tensor::LSE) ir_error(op, "store_lse writes only LSE");
    const Tile& m = get(op, 0);
    const Tile& l = get(op, 1);
    if (m.rows != l.rows || m.cols != 1 || l.cols != 1) ir_error(op, "m and l must be row vectors of one size");
    const int64_t r0 = index_value(op) * k.grid.block_m;
    for (int r = 0; r < m.rows; ++r) {
      const int64_t s = r0 + r;
      if (s < 0 || s >= seqlen_q()) continue;
      const double lr = l.at(r, 0);
      out.lse[static_cast<size_t>((batch * out.o.h + head_q) * seqlen_q() + s)] =
          lr == 0.0 ? -kInf : m.at(r, 0) * std::log(2.0) + std::log(lr);
    }
  }
};

bool has_op(const ir::Kernel& k, ir::OpKind kind) {
  auto in = [&](const std::vector<ir::Op>& ops) {
    return std::any_of(ops.begin(), ops.end(), [&](const ir::Op& o) { return o.kind == kind; });
  };
  return in(k.prologue) || in(k.loop.body) || in(k.epilogue);
}

int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

}  // namespace

double round_to(DType dt, double x) {
  if (std::isnan(x)) return x;
  const float f = to_float_round_odd(x);
  return dt == DType::bf16 ? float_to_bf16(f) : float_to_fp16(f);
}

Result evaluate(const ir::Kernel& k, const HostTensor& q, const HostTensor& kk, const HostTensor& v,
                const std::vector<expr::HostCapture>& captures, const DropoutKey* dropout) {
  const ir::Grid& g = k.grid;
  if (g.block_m <= 0 || g.block_n <= 0 || g.gqa_group <= 0)
    throw std::logic_error("cpu_eval: kernel grid has no block sizes / gqa group");
  if (kk.b != q.b || v.b != q.b) throw ArgumentError("k/v", "batch differs from q");
  if (kk.h != v.h || kk.s != v.s) throw ArgumentError("v", "heads / seqlen differ from k");
  if (kk.d != q.d) throw ArgumentError("k", "head_dim differs from q");
  if (q.h != kk.h * g.gqa_group)
    throw ArgumentError("q", "heads_q (" + std::to_string(q.h) + ") != heads_kv (" + std::to_string(kk.h) +
                                 ") * gqa_group (" + std::to_string(g.gqa_group) + ")");

  Result res;
  // NaN marks anything the kernel never wrote: a missing store shows up in the checks.
  res.o = HostTensor(q.b, q.h, q.s, v.d);
  std::fill(res.o.data.begin(), res.o.data.end(), kNaN);
  if (has_op(k, ir::OpKind::store_lse)) res.lse.assign(static_cast<size_t>(q.b * q.h * q.s), kNaN);

  const int64_t seqlen_q = q.s, seqlen_k = kk.s;
  const flashjit::Band band = band_of_loop(k.loop.mask, seqlen_q, seqlen_k);

  const int64_t q_tiles = ceil_div(seqlen_q, g.block_m);
  const int64_t kv_tiles = ceil_div(seqlen_k, g.block_n);

  std::optional<expr::Expr> mask_expr, score_expr;
  if (!k.loop.mask_expr.empty()) mask_expr = expr::parse(k.loop.mask_expr, expr::Context{false, k.spec.captures});
  if (!k.spec.score_mod.empty()) score_expr = expr::parse(k.spec.score_mod, expr::Context{true, k.spec.captures});
  if ((mask_expr || score_expr) && captures.size() != k.spec.captures.size())
    throw ArgumentError("captures", fmt::format("{} tensors passed; the spec declares {}", captures.size(),
                                                k.spec.captures.size()));
  // The kernel's tile classification: the mask over the tile's index box (real rows and
  // keys only), full only when the tile lies inside seqlen_k.
  auto classify = [&](int64_t b, int64_t hq, int64_t qt, int64_t n) {
    expr::Box box;
    box.b_lo = box.b_hi = b;
    box.h_lo = box.h_hi = hq;
    box.q_lo = qt * g.block_m, box.q_hi = std::min(qt * g.block_m + g.block_m, seqlen_q) - 1;
    box.kv_lo = n * g.block_n, box.kv_hi = std::min(n * g.block_n + g.block_n, seqlen_k) - 1;
    box.seqlen_q = seqlen_q, box.seqlen_k = seqlen_k;
    const expr::Truth t = expr::mask_over(*mask_expr, box, &captures);  // reads scanned, as in the kernel
    if (t == expr::Truth::never) return int(kTileEmpty);
    return t == expr::Truth::always && (n + 1) * g.block_n <= seqlen_k ? int(kTileFull) : int(kTilePartial);
  };

  for (int64_t b = 0; b < q.b; ++b)
    for (int64_t hq = 0; hq < q.h; ++hq)
      for (int64_t qt = 0; qt < q_tiles; ++qt) {
        Instance in(k, q, kk, v, res);
        in.batch = b;
        in.head_q = hq;
        in.head_kv = hq / g.gqa_group;
        in.q_tile = qt;
        in.band = band;
        in.range = flashjit::band_kv_tiles(band, qt * g.block_m, g.block_m, seqlen_q, seqlen_k, g.block_n);
        in.mask_expr = mask_expr ? &*mask_expr : nullptr;
        in.score_expr = score_expr ? &*score_expr : nullptr;
        in.captures = &captures;
        in.dropout = dropout;
        for (const ir::Op& op : k.prologue) in.exec(op);

        int64_t begin = 0, end = kv_tiles;
        if (k.loop.classes.skip_empty && !k.loop.classes.by_interval) {
          begin = in.range.begin;
          end = in.range.end;
        }
        res.tiles_skipped += kv_tiles - (end - begin);
        for (int64_t n = begin; n < end; ++n) {
          if (mask_expr && k.loop.classes.analysed) {
            in.tile_class = classify(b, hq, qt, n);
            if (k.loop.classes.skip_empty && in.tile_class == kTileEmpty) {
              ++res.tiles_skipped;
              continue;
            }
          }
          in.kv_tile = n;
          in.masked_this_tile = false;
          for (const ir::Op& op : k.loop.body) in.exec(op);
          // A tile counts as full when it ran without any mask arithmetic.
          (in.masked_this_tile ? res.tiles_partial : res.tiles_full) += 1;
        }
        in.kv_tile = -1;

        for (const ir::Op& op : k.epilogue) in.exec(op);
      }
  return res;
}

Result reference_attention(const AttentionSpec& spec, const HostTensor& q, const HostTensor& k,
                           const HostTensor& v, const std::vector<expr::HostCapture>& captures,
                           const DropoutKey* dropout) {
  const ReferenceDims dims(spec, q, k, v);
  const ReferenceDropout drop(spec.normalized(), dropout);
  const int head_dim = dims.head_dim, head_dim_v = dims.head_dim_v, heads_q = dims.heads_q, group = dims.group;
  const double scale = dims.scale;
  const int64_t sq = q.s, sk = k.s;
  // Expressions are evaluated element by element, straight from the spec's text.
  const ReferenceScores scores(spec, sq, sk, captures);

  Result res;
  res.o = HostTensor(q.b, heads_q, sq, head_dim_v);
  res.lse.assign(static_cast<size_t>(q.b * heads_q * sq), -kInf);
  std::vector<double> w(static_cast<size_t>(sk));
  std::vector<char> vis(static_cast<size_t>(sk));
  for (int64_t b = 0; b < q.b; ++b)
    for (int64_t h = 0; h < heads_q; ++h) {
      const int64_t hk = h / group;
      for (int64_t i = 0; i < sq; ++i) {
        double mx = -kInf;
        bool nan_row = false;  // a score_mod that gives NaN makes the row NaN, as in torch
        for (int64_t j = 0; j < sk; ++j) {
          vis[j] = scores.visible(b, h, i, j);
          if (!vis[j]) continue;
          double s = 0.0;
          for (int t = 0; t < head_dim; ++t) s += q.at(b, h, i, t) * k.at(b, hk, j, t);
          w[j] = scores.score(b, h, i, j, s, scale);
          nan_row = nan_row || std::isnan(w[j]);
          mx = std::max(mx, w[j]);
        }
        if (nan_row) {
          for (int t = 0; t < head_dim_v; ++t) res.o.at(b, h, i, t) = kNaN;
          res.lse[static_cast<size_t>((b * heads_q + h) * sq + i)] = kNaN;
          continue;
        }
        if (mx == -kInf) continue;  // no visible key: output 0, lse -inf
        double sum = 0.0;
        for (int64_t j = 0; j < sk; ++j) {
          w[j] = vis[j] ? std::exp(w[j] - mx) : 0.0;
          sum += w[j];
        }
        if (drop.active())  // O = (P ∘ Z) V: the softmax statistics (and the LSE) see the whole P
          for (int64_t j = 0; j < sk; ++j) w[j] *= drop.factor(b, h, i, j);
        for (int t = 0; t < head_dim_v; ++t) {
          double acc = 0.0;
          for (int64_t j = 0; j < sk; ++j)
            if (vis[j]) acc += w[j] * v.at(b, hk, j, t);
          res.o.at(b, h, i, t) = acc / sum;
        }
        res.lse[static_cast<size_t>((b * heads_q + h) * sq + i)] = mx + std::log(sum);
      }
    }
  return res;
}

std::vector<uint8_t> dropout_keep_mask(const AttentionSpec& spec0, int64_t batch, int64_t seqlen_q, int64_t seqlen_k,
                                       const DropoutKey& key) {
  const AttentionSpec spec = spec0.normalized();
  validate(spec);
  if (spec.dropout_p == 0) throw SpecError("dropout_p", "0: no dropout, so no keep-mask; allowed: 0 < dropout_p < 1");
  if (batch < 1 || seqlen_q < 1 || seqlen_k < 1)
    throw ArgumentError("shape", fmt::format("batch {}, seqlen_q {}, seqlen_k {}; allowed: each >= 1", batch, seqlen_q,
                                             seqlen_k));
  const ReferenceDropout drop(spec, &key);
  std::vector<uint8_t> keep(static_cast<size_t>(batch * spec.num_heads_q * seqlen_q * seqlen_k));
  size_t at = 0;
  for (int64_t b = 0; b < batch; ++b)
    for (int64_t h = 0; h < spec.num_heads_q; ++h)
      for (int64_t i = 0; i < seqlen_q; ++i)
        for (int64_t j = 0; j < seqlen_k; ++j) keep[at++] = drop.factor(b, h, i, j) != 0.0;
  return keep;
}

}  // namespace flashjit::eval
