// The expression language of user-written masks and score modifications (docs/expressions.md).
//
//   parse("(q_idx >= kv_idx) & (doc[q_idx] == doc[kv_idx])", ctx)  -> Expr (typed)
//   print(e)                    canonical text (part of the kernel key)
//   eval_*(e, env)              the host evaluator (CPU oracle), same scalar semantics as the GPU
//   interval(e, box)            sound value ranges over an index box (tile classification,
//                               bounds checks of captured-tensor reads)
//   emit_cuda(e, ...)           CUDA for the kernel's mask / score hooks
//   as_band(e)                  pattern recognition of a band mask (closed-form fast path)
//
// An Expr is a flat vector of nodes in post-order (every node's arguments come before it), so
// every consumer is a loop over the nodes and nothing recurses over a user's expression.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

namespace flashjit::expr {

enum class Type { boolean, integer, floating };
enum class Var { b, h, q_idx, kv_idx, seqlen_q, seqlen_k, score };
enum class CaptureDType { i32, i64, f32, f16, bf16, boolean };

enum class Kind {
  lit_bool, lit_int, lit_float, var, read,  // leaves (read has index arguments)
  neg, logical_not,                         // unary
  add, sub, mul, div, floordiv, mod,        // arithmetic
  eq, ne, lt, le, gt, ge,                   // comparisons
  logical_and, logical_or, logical_xor,     // on bools
  where, min, max, abs, exp, log, tanh, sigmoid, sqrt, to_float, to_int,  // functions
};

struct Node {
  Kind kind;
  Type type;                // result type, after promotion
  int64_t ival = 0;         // lit_int, lit_bool (0 / 1)
  double fval = 0.0;        // lit_float (a float value, stored exactly)
  Var var = Var::b;         // var
  int capture = -1;         // read: index into the declared captures
  std::vector<int> args;    // node indices, all smaller than this node's
  int pos = 0;              // byte offset in the source text (error messages)
};

struct Expr {
  std::vector<Node> nodes;  // post-order; the root is the last node
  const Node& root() const { return nodes.back(); }
  Type type() const { return root().type; }
  bool uses(Var v) const;
  bool reads_captures() const;
};

struct CaptureDecl {
  std::string name;
  CaptureDType dtype = CaptureDType::i32;
  int rank = 1;
  bool operator==(const CaptureDecl& o) const { return name == o.name && dtype == o.dtype && rank == o.rank; }
};

// What a parse may refer to.
struct Context {
  bool allow_score = false;               // true for score_mod
  std::vector<CaptureDecl> captures;      // readable tensors
};

// A parse or type error: `pos` is the byte offset in the text.
class ExprError : public std::runtime_error {
 public:
  ExprError(int pos, const std::string& what);
  int pos() const { return pos_; }
  const std::string& reason() const { return reason_; }

 private:
  int pos_;
  std::string reason_;
};

inline constexpr int kMaxTextBytes = 4096;
inline constexpr int kMaxDepth = 64;
inline constexpr int kMaxNodes = 1024;
inline constexpr int kMaxCaptures = 8;
inline constexpr int kMaxCaptureName = 32;

// Parses and type-checks; throws ExprError.
Expr parse(const std::string& text, const Context& ctx);
// Canonical text: parse(print(e)) == e for every e parse() returns.
std::string print(const Expr& e, const std::vector<CaptureDecl>& captures);
// parse() and print(parse()) through a bounded in-process cache (the launch path validates
// and normalizes its spec on every call); throw what parse() throws.
std::shared_ptr<const Expr> parse_cached(const std::string& text, const Context& ctx);
std::string canonical_text(const std::string& text, const Context& ctx);

// The text of a binary operator ("+", "//", "==", "&", ...); nullptr for other kinds.
const char* operator_text(Kind k);
const char* to_string(Type);
const char* to_string(Var);
const char* to_string(CaptureDType);
std::optional<CaptureDType> capture_dtype_from(const std::string& name);
int capture_dtype_size(CaptureDType);
// Valid capture name: an identifier of 1..kMaxCaptureName characters, not reserved.
bool is_valid_capture_name(const std::string& name);

// --- evaluation (host) -------------------------------------------------------------
// A captured tensor on the host: raw elements of its dtype, sizes and strides (elements).
struct HostCapture {
  const void* data = nullptr;
  CaptureDType dtype = CaptureDType::i32;
  int rank = 0;
  int64_t sizes[4] = {0, 0, 0, 0};
  int64_t strides[4] = {0, 0, 0, 0};
};

struct Env {
  int b = 0, h = 0, q_idx = 0, kv_idx = 0, seqlen_q = 0, seqlen_k = 0;
  float score = 0.f;
  const std::vector<HostCapture>* captures = nullptr;
};

// A value of any type; `type` says which member holds it.
struct Value {
  Type type = Type::boolean;
  bool b = false;
  int32_t i = 0;
  float f = 0.f;
};

// Evaluates with the GPU's scalar semantics (templates/flashjit/expr_ops.cuh). Reads must be
// in bounds (check_capture_bounds() proves it before a launch); evaluate() checks again and
// throws std::out_of_range rather than read outside.
Value evaluate(const Expr& e, const Env& env);
bool eval_mask(const Expr& e, const Env& env);      // e of type bool
float eval_score(const Expr& e, const Env& env);    // e of type int or float, as float

// --- derivative (the backward pass) --------------------------------------------------
// d e / d score for a score_mod `e` (int or float), as an expression of type float over the
// same names (docs/expressions.md, "Derivative"). Piecewise-constant parts (ints, floor
// division, casts, comparisons) have derivative 0; min/max take the first argument's on
// ties; abs has 0 at 0. Throws ExprError when the result exceeds the text or node limits.
Expr score_derivative(const Expr& e, const std::vector<CaptureDecl>& captures);
std::string score_derivative_text(const Expr& e, const std::vector<CaptureDecl>& captures);
// The gradient into captured tensors (a learnable bias table): for each float read of `e`
// that reaches the result, the tensor, its index expressions (ints, over the same names) and
// d e / d (the value read). Two reads of one element are two entries; their sum is the
// element's derivative.
struct ReadGradient {
  int capture = -1;
  std::vector<Expr> index;
  Expr derivative;
};
std::vector<ReadGradient> read_gradients(const Expr& e, const std::vector<CaptureDecl>& captures);

// --- interval analysis -------------------------------------------------------------
// Inclusive ranges of the index variables (and the scalar ones as points or ranges).
struct Box {
  int64_t b_lo = 0, b_hi = 0, h_lo = 0, h_hi = 0;
  int64_t q_lo = 0, q_hi = 0, kv_lo = 0, kv_hi = 0;
  int64_t seqlen_q = 0, seqlen_k = 0;
};
enum class Truth { never, sometimes, always };
// The range of a bool expression over the box: never true, always true, or unknown.
// `readable`: captured tensors in host memory whose values the analysis may scan (reads over
// at most 256 elements; templates/flashjit/interval.cuh), as the kernel does; without them
// a read's value is unknown.
Truth mask_over(const Expr& e, const Box& box, const std::vector<HostCapture>* readable = nullptr);
// Inclusive int range of node `node` over the box (node of type int); nullopt when unbounded
// by the analysis (it reads a captured tensor's values, or may wrap).
struct IntRange {
  int64_t lo, hi;
};
std::optional<IntRange> int_range(const Expr& e, int node, const Box& box);
// True when some int node with bounded inputs may leave 32 bits over the box (and so wrap).
bool may_wrap(const Expr& e, const Box& box);

// Checks every captured-tensor read of `e` against the tensors' sizes for all indices in
// `box`; throws flashjit::ArgumentError naming the tensor, the dimension and the range.
void check_capture_bounds(const Expr& e, const std::vector<CaptureDecl>& decls, const std::vector<HostCapture>& caps,
                          const Box& box, const std::string& what);

// --- band recognition ---------------------------------------------------------------
// A conjunction of comparisons of kv_idx - q_idx against constants, optionally plus
// (seqlen_k - seqlen_q) in every one: the closed-form band lo <= kv_idx - q_idx - offset <= hi.
struct BandForm {
  std::optional<int64_t> lo, hi;
  bool bottom_right = false;  // offset = seqlen_k - seqlen_q (else 0)
  bool empty = false;         // contradictory bounds: no key is visible
};
std::optional<BandForm> as_band(const Expr& e);

// --- CUDA emission -----------------------------------------------------------------
// One C++ expression computing `e`'s value from the in-scope names b, h, q_idx, kv_idx,
// score and params (FwdParams: seqlen_q, seqlen_k, caps[]), using templates/flashjit/
// expr_ops.cuh and capture_arg.cuh; `dtypes[i]` is the dtype of capture i (params.caps[i]).
// FloatMath::fast (score_mod only) lets float + - * contract into FMAs and uses the fast
// division, exp, log, tanh and sigmoid of expr_ops.cuh (a few ulp); exact matches the CPU
// evaluator bit for bit, which masks need.
enum class FloatMath { exact, fast };
std::string emit_value(const Expr& e, const std::vector<CaptureDType>& dtypes, FloatMath math = FloatMath::exact);
// One C++ expression of type flashjit::IvB computing mask_over() on the device from an
// in-scope `box` (flashjit::IvBox, templates/flashjit/interval.cuh). With the captures'
// dtypes, reads scan params.caps[i] as mask_over() with `readable` does; without, a read's
// value is unknown.
std::string emit_interval(const Expr& e, const std::vector<CaptureDType>& dtypes = {});

// --- hoisting for the kernels' element loops (factor.cpp) ----------------------------
// Where a node's value can be computed: once per CTA (b, h, the lengths and literals only),
// once per query row, once per key column, or only per element.
enum class Scope { cta, row, col, elem };
std::vector<Scope> node_scopes(const Expr& e);
// Whether operand k of node n is used as a float (an int or bool there is converted).
bool arg_is_float_operand(const Expr& e, const Node& n, size_t k);
// `e` with every int or bool operand used as a float wrapped in an explicit to_float node:
// the same values bit for bit, but a conversion is now a node and can be hoisted with its
// operand (float(doc[q_idx]) once per row, not once per element).
Expr explicit_conversions(const Expr& e);
// float(t0 ± t1 ...) of q_idx, kv_idx and int literals up to kNarrowIndexLimit (at most four
// terms) rewritten as float(t0) ± float(t1) ...: then float(kv_idx) is a column term and
// float(q_idx) a row term, and the element does one float subtraction instead of an int-to-float
// conversion (a quarter-rate instruction). Exact while seqlen_q and seqlen_k are at most
// kNarrowIndexLimit: every partial sum stays below 2^24. The kernels check the lengths and take
// the unsplit form beyond. nullopt when nothing splits. Input: explicit_conversions' output.
inline constexpr int64_t kNarrowIndexLimit = int64_t(1) << 22;
std::optional<Expr> split_index_conversions(const Expr& e);
// The maximal subtrees, other than single names and literals, that do not depend on the
// element: row terms (may use b, h, q_idx, the lengths) and column terms (kv_idx instead).
struct Hoisted {
  int node;
  Scope scope;  // row (cta terms included) or col
};
std::vector<Hoisted> hoisted_terms(const Expr& e);
// CUDA for e factored over a lane's elements: row terms as fields t0, t1, ... of a per-row
// struct `r` (values over q_idx), column terms of a per-column struct `c` (values over kv_idx),
// and the element's value over r.tK, c.tK, q_idx, kv_idx and score. & | and where() are eager.
struct FactoredCuda {
  std::vector<std::string> row_fields, col_fields;  // "int t0", "float t1", ...
  std::vector<std::string> row_values, col_values;  // their C++ expressions
  std::string elem;
  bool elem_reads = false;  // a read is left in the element (its index uses q_idx and kv_idx)
};
FactoredCuda emit_factored(const Expr& e, const std::vector<CaptureDType>& dtypes, FloatMath math = FloatMath::exact);
// The tile classification (emit_interval) with the row terms that scan a captured tensor
// computed once per CTA: `row_values` are IvB / IvI / IvF expressions over a `box` holding
// the CTA's rows, scanned by a whole warp (interval.cuh, iv_read_*_warp: every lane of the
// warp evaluates them together, with `lane` in scope); `tile` is the mask's range over a tile's
// `box` with those terms as rv.t0, rv.t1, ... The same ranges as emit_interval's.
struct FactoredInterval {
  std::vector<std::string> row_fields, row_values;
  std::string tile;
};
FactoredInterval emit_factored_interval(const Expr& e, const std::vector<CaptureDType>& dtypes);

}  // namespace flashjit::expr
