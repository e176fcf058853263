// flashjit check's numbers: a kernel's output against the float64 reference, measured as
// flashjit.check() in Python measures them (python/flashjit/_check.py), so the two print
// comparable numbers. No GPU needed (tests/unit/test_cli_check.cpp).
#pragma once

#include <string>
#include <vector>

#include "flashjit/spec.h"

namespace flashjit::cli {

// The bounds a check passes within, those of python/tests/test_dropin_gpu.py's
// test_check_reports_errors_near_the_rounding_floor: each of out, dq, dk, dv within
// kFloorFactor x its rounding floor + kFloorSlack (Frobenius-relative), LSE within
// kLseMaxAbs (natural log, absolute).
constexpr double kFloorFactor = 10.0;
constexpr double kFloorSlack = 1e-2;
constexpr double kLseMaxAbs = 2e-3;

// Python's _rel: ||got - ref|| / ||ref|| (Frobenius) over the entries where ref is finite;
// the numerator alone when ||ref|| is 0. NaN when got is NaN at such an entry.
double frobenius_rel(const std::vector<double>& got, const std::vector<double>& ref);
// The largest |got - ref| over the entries where ref is finite; NaN when got is NaN at one.
double max_abs_error(const std::vector<double>& got, const std::vector<double>& ref);

struct ErrorRow {
  std::string name;        // "out", "lse", "dq", "dk", "dv" (flashjit.check's names)
  double max_abs = 0.0;    // max_abs_error
  double rel = 0.0;        // frobenius_rel
  double floor_rel = 0.0;  // the dtype's rounding floor: frobenius_rel(ref rounded to the dtype, ref)
  bool has_floor = true;   // false for lse (float32, no dtype floor): bounded by max_abs instead
  double bound = 0.0;      // out/dq/dk/dv: rel must be below it; lse: max_abs must be
  bool ok() const;         // within the bound, nothing NaN
};

// out, dq, dk, dv: the floor of `dtype` and the bound kFloorFactor x floor + kFloorSlack.
ErrorRow compare_tensor(const std::string& name, const std::vector<double>& got, const std::vector<double>& ref,
                        DType dtype);
// lse: over the rows that see a key (finite reference LSE); the bound kLseMaxAbs.
ErrorRow compare_lse(const std::vector<double>& got, const std::vector<double>& ref);
// flashjit.check's masked_rows_ok: every row with no visible key (reference LSE -inf) has an
// all-zero output row of `dv` values and LSE -inf. `o`: rows of dv values, one per LSE entry.
bool masked_rows_ok(const std::vector<double>& o, const std::vector<double>& lse, const std::vector<double>& ref_lse,
                    int64_t dv);

// The table flashjit check prints: one line per row (max abs err, rel err, floor, ratio,
// bound, ok / FAIL), then Python's summary line.
std::string format_check_table(const std::vector<ErrorRow>& rows, bool masked_ok);

}  // namespace flashjit::cli
