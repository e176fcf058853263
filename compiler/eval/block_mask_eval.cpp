// The block-mask builder's CPU oracle: the definition of a cell's class, element by element.
#include "flashjit/block_mask_eval.h"

#include <algorithm>

namespace flashjit::eval {

std::vector<int32_t> block_mask_cells(const std::string& mask_expr, const std::vector<expr::CaptureDecl>& decls,
                                      const std::vector<expr::HostCapture>& captures, int64_t batch, int64_t heads,
                                      int64_t seqlen_q, int64_t seqlen_k, int block_q, int block_kv) {
  const expr::Expr e = expr::parse(mask_expr, expr::Context{false, decls});
  const int64_t nqb = (seqlen_q + block_q - 1) / block_q, nkb = (seqlen_k + block_kv - 1) / block_kv;
  std::vector<int32_t> cells(static_cast<size_t>(batch * heads * nqb * nkb), 0);
  expr::Env env;
  env.seqlen_q = static_cast<int>(seqlen_q);
  env.seqlen_k = static_cast<int>(seqlen_k);
  env.captures = &captures;
  size_t at = 0;
  for (int64_t b = 0; b < batch; ++b)
    for (int64_t h = 0; h < heads; ++h)
      for (int64_t qb = 0; qb < nqb; ++qb)
        for (int64_t kb = 0; kb < nkb; ++kb, ++at) {
          bool seen_true = false, seen_false = false;
          env.b = static_cast<int>(b), env.h = static_cast<int>(h);
          for (int64_t q = qb * block_q; q < std::min(seqlen_q, (qb + 1) * block_q) && !(seen_true && seen_false); ++q)
            for (int64_t k = kb * block_kv; k < std::min(seqlen_k, (kb + 1) * block_kv); ++k) {
              env.q_idx = static_cast<int>(q), env.kv_idx = static_cast<int>(k);
              (expr::eval_mask(e, env) ? seen_true : seen_false) = true;
            }
          cells[at] = !seen_true ? 0 : !seen_false ? 2 : 1;
        }
  return cells;
}

}  // namespace flashjit::eval
