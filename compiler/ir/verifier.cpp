// Structural checks of a tile IR kernel. Passes and tests call verify() after every
// rewrite so a broken transformation fails loudly at the pass that broke it.
#include <map>
#include <stdexcept>

#include "flashjit/ir.h"

namespace flashjit::ir {
namespace {

struct Checker {
  std::map<std::string, TileType> defined;
  std::vector<std::string> problems;

  void fail(const std::string& where, const Op& op, const std::string& what) {
    problems.push_back(where + ": " + to_string(op.kind) + ": " + what);
  }

  void check_op(const std::string& where, const Op& op, const KvLoop& loop) {
    for (const auto& name : op.operands)
      if (!defined.count(name)) fail(where, op, "uses %" + name + " before it is defined");
    auto type_of = [&](size_t i) { return defined.count(op.operands[i]) ? defined[op.operands[i]] : TileType{}; };

    switch (op.kind) {
      case OpKind::load_tile:
      case OpKind::async_copy: {
        const std::string& t = op.has_attr("tensor") ? op.str_attr("tensor") : std::string();
        if (t != "Q" && t != "K" && t != "V") fail(where, op, "tensor must be Q, K or V, not '" + t + "'");
        if (op.kind == OpKind::async_copy && loop.stages < 2) fail(where, op, "async_copy needs a pipelined loop (stages >= 2)");
        break;
      }
      case OpKind::gemm: {
        if (op.operands.size() < 2) { fail(where, op, "needs two operands"); break; }
        const TileType a = type_of(0), b = type_of(1);
        const bool tb = op.has_attr("transpose_b") && op.bool_attr("transpose_b");
        const int k_a = a.cols, k_b = tb ? b.cols : b.rows, n = tb ? b.rows : b.cols;
        if (k_a != k_b) fail(where, op, "reduction dims differ (" + to_string(a) + " x " + to_string(b) + ")");
        if (op.type.rows != a.rows || op.type.cols != n) fail(where, op, "result type " + to_string(op.type) + " does not match operands");
        if (op.operands.size() == 3 && !(type_of(2) == op.type)) fail(where, op, "accumulator type differs from result");
        break;
      }
      case OpKind::apply_mask: {
        const std::string& when = op.str_attr("when");
        if (when != "always" && when != "partial") fail(where, op, "when must be 'always' or 'partial'");
        if (when == "partial" && !loop.classes.analysed) fail(where, op, "'partial' needs the classify_tiles pass");
        const std::string expr = op.has_attr("expr") ? op.str_attr("expr") : std::string();
        if (expr != loop.mask_expr) fail(where, op, "mask expression differs from the loop's");
        break;
      }
      case OpKind::score_mod:
        if (!op.has_attr("expr") || !op.has_attr("scale")) fail(where, op, "needs attributes expr and scale");
        if (op.operands.size() != 1 || op.results.size() != 1) fail(where, op, "maps one score tile");
        break;
      case OpKind::online_softmax:
        if (op.operands.size() != 4 || op.results.size() != 4) fail(where, op, "takes (s, m, l, o) and yields (p, m, l, o)");
        if (!op.has_attr("scale_log2")) fail(where, op, "missing scale_log2");
        break;
      case OpKind::dropout:
        if (op.operands.size() != 1 || op.results.size() != 1) fail(where, op, "maps one P tile");
        if (!op.has_attr("p") || !op.has_attr("threshold")) fail(where, op, "needs attributes p and threshold");
        break;
      case OpKind::store_tile:
        if (op.operands.size() != 1) fail(where, op, "stores exactly one tile");
        break;
      default:
        break;
    }
    // op.type is the type of the first result; further results (online_softmax's updated
    // m, l, o) are the state they update and keep its type.
    for (size_t i = 0; i < op.results.size(); ++i)
      if (i == 0 || !defined.count(op.results[i])) defined[op.results[i]] = op.type;
  }
};

}  // namespace

void verify(const Kernel& k) {
  Checker c;
  if (k.name.empty()) c.problems.push_back("kernel has no name");
  if (k.grid.block_m <= 0 || k.grid.block_n <= 0 || k.grid.warps <= 0) c.problems.push_back("grid sizes must be positive");
  if (k.grid.block_m % (16 * k.grid.warps) != 0) c.problems.push_back("block_m must be a multiple of 16 * warps");
  for (const Op& op : k.prologue) c.check_op("prologue", op, k.loop);
  int softmaxes = 0;
  for (const Op& op : k.loop.body) {
    c.check_op("loop", op, k.loop);
    softmaxes += op.kind == OpKind::online_softmax;
  }
  if (softmaxes != 1) c.problems.push_back("the KV loop must hold exactly one online_softmax");
  // Dropout zeroes P in the loop and the finalize scales the kept mass back: both or neither.
  const Op* drop = nullptr;
  for (const Op& op : k.loop.body)
    if (op.kind == OpKind::dropout) drop = &op;
  const Op* fin = find_op(k, OpKind::finalize);
  if (drop && (!fin || !fin->has_attr("dropout_scale")))
    c.problems.push_back("a loop with dropout needs a finalize with dropout_scale");
  if (!drop && fin && fin->has_attr("dropout_scale")) c.problems.push_back("dropout_scale without a dropout op");
  for (const Op& op : k.epilogue) c.check_op("epilogue", op, k.loop);
  if (!find_op(k, OpKind::store_tile)) c.problems.push_back("the kernel stores no output");
  if (!k.loop.mask_expr.empty() && !k.loop.mask.is_trivial())
    c.problems.push_back("a loop with a mask expression has a trivial band");
  if (c.problems.empty()) return;
  std::string msg = "ir::verify: " + k.name;
  for (const auto& p : c.problems) msg += "\n  " + p;
  throw std::logic_error(msg);
}

}  // namespace flashjit::ir
