// flashjit check's error measures (see check_metrics.h).
#include "check_metrics.h"

#include <fmt/format.h>

#include <cmath>
#include <limits>
#include <stdexcept>

#include "flashjit/cpu_eval.h"

namespace flashjit::cli {

namespace {
constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

void same_size(const std::vector<double>& got, const std::vector<double>& ref) {
  if (got.size() != ref.size()) throw std::logic_error("check: compared tensors differ in size");
}
}  // namespace

double frobenius_rel(const std::vector<double>& got, const std::vector<double>& ref) {
  same_size(got, ref);
  double num = 0.0, den = 0.0;
  for (std::size_t i = 0; i < ref.size(); ++i) {
    if (!std::isfinite(ref[i])) continue;
    const double e = got[i] - ref[i];
    num += e * e;
    den += ref[i] * ref[i];
  }
  num = std::sqrt(num);
  den = std::sqrt(den);
  return den > 0 ? num / den : num;
}

double max_abs_error(const std::vector<double>& got, const std::vector<double>& ref) {
  same_size(got, ref);
  double m = 0.0;
  for (std::size_t i = 0; i < ref.size(); ++i) {
    if (!std::isfinite(ref[i])) continue;
    const double e = std::abs(got[i] - ref[i]);
    if (std::isnan(e)) return kNaN;
    m = std::max(m, e);
  }
  return m;
}

bool ErrorRow::ok() const {
  if (std::isnan(max_abs) || std::isnan(rel)) return false;
  return has_floor ? rel < bound : max_abs < bound;
}

ErrorRow compare_tensor(const std::string& name, const std::vector<double>& got, const std::vector<double>& ref,
                        DType dtype) {
  ErrorRow r;
  r.name = name;
  r.max_abs = max_abs_error(got, ref);
  r.rel = frobenius_rel(got, ref);
  std::vector<double> rounded(ref.size());
  for (std::size_t i = 0; i < ref.size(); ++i) rounded[i] = eval::round_to(dtype, ref[i]);
  r.floor_rel = frobenius_rel(rounded, ref);
  r.bound = kFloorFactor * r.floor_rel + kFloorSlack;
  return r;
}

ErrorRow compare_lse(const std::vector<double>& got, const std::vector<double>& ref) {
  ErrorRow r;
  r.name = "lse";
  r.max_abs = max_abs_error(got, ref);  // over finite reference entries: the rows that see a key
  r.rel = frobenius_rel(got, ref);
  r.floor_rel = kNaN;
  r.has_floor = false;
  r.bound = kLseMaxAbs;
  return r;
}

bool masked_rows_ok(const std::vector<double>& o, const std::vector<double>& lse, const std::vector<double>& ref_lse,
                    int64_t dv) {
  if (lse.size() != ref_lse.size() || o.size() != ref_lse.size() * static_cast<std::size_t>(dv))
    throw std::logic_error("check: masked_rows_ok: sizes differ");
  for (std::size_t row = 0; row < ref_lse.size(); ++row) {
    if (std::isfinite(ref_lse[row]) || std::isnan(ref_lse[row])) continue;
    if (!(std::isinf(lse[row]) && lse[row] < 0)) return false;
    for (int64_t c = 0; c < dv; ++c)
      if (o[row * static_cast<std::size_t>(dv) + static_cast<std::size_t>(c)] != 0.0) return false;
  }
  return true;
}

std::string format_check_table(const std::vector<ErrorRow>& rows, bool masked_ok) {
  std::string t = fmt::format("  {:4} {:>11} {:>10} {:>10} {:>7}  bound\n", "", "max abs err", "rel err", "floor",
                              "ratio");
  double out_max_abs = kNaN, lse_max_abs = kNaN;
  for (const ErrorRow& r : rows) {
    if (r.name == "out") out_max_abs = r.max_abs;
    if (r.name == "lse") lse_max_abs = r.max_abs;
    const std::string floor = r.has_floor ? fmt::format("{:10.3e}", r.floor_rel) : fmt::format("{:>10}", "-");
    const std::string ratio = r.has_floor ? (r.floor_rel > 0 ? fmt::format("{:7.2f}", r.rel / r.floor_rel)
                                                             : fmt::format("{:>7}", "inf"))
                                          : fmt::format("{:>7}", "-");
    const std::string bound = r.has_floor ? fmt::format("rel < {:.2e}", r.bound) : fmt::format("abs < {:.1e}", r.bound);
    t += fmt::format("  {:4} {:11.3e} {:10.3e} {} {}  {:<16} {}\n", r.name, r.max_abs, r.rel, floor, ratio, bound,
                     r.ok() ? "ok" : "FAIL");
  }
  t += fmt::format("  lse max abs err {:.3e}; out max abs err {:.3e}; rows without a key give 0 / -inf: {}\n",
                   lse_max_abs, out_max_abs, masked_ok ? "True" : "False");
  return t;
}

}  // namespace flashjit::cli
