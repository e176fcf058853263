// `flashjit check` without a GPU: its argument errors (exit status 2, before any GPU is
// needed), its help, the no-GPU message (exit status 1), and the error measures it prints
// (cli/check_metrics.cpp, compiled in), which must be those of flashjit.check() in Python.
#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include "catch.hpp"
#include "check_metrics.h"
#include "cli_runner.h"
#include "flashjit/cpu_eval.h"

using fjtest::has;
using fjtest::run_cli;

namespace {
const std::string kCausal = R"({"dtype":"bf16","head_dim":64,"mask":"causal"})";
}  // namespace

TEST_CASE("cli check: argument errors are usage errors naming the option", "[cli][cli_check]") {
  fjtest::CliResult r = run_cli({"check", "--shape", "b=1,sq=16"}, fjtest::kNoGpuEnv);
  CHECK(r.status == 2);
  CHECK(has(r.out, "missing --spec"));
  CHECK(has(r.out, "(run 'flashjit check --help' for usage)"));

  r = run_cli({"check", "--spec", kCausal}, fjtest::kNoGpuEnv);
  CHECK(r.status == 2);
  CHECK(has(r.out, "check needs --shape, e.g. --shape 'b=2,sq=1000,sk=1000'"));

  for (const char* bad : {"b=1", "b=0,sq=16", "b=1,sq=x", "b=1,sq=16,h=4", ""}) {
    INFO("--shape '" << bad << "'");
    r = run_cli({"check", "--spec", kCausal, "--shape", bad}, fjtest::kNoGpuEnv);
    CHECK(r.status == 2);
    CHECK(has(r.out, "usage error: --shape"));
    CHECK(!has(r.out, "--shapes"));
  }

  // Captured tensors: the CLI has no values for them.
  const std::string captured =
      R"({"dtype":"bf16","head_dim":64,"mask":{"kind":"custom","expr":"doc[q_idx] == doc[kv_idx]"},)"
      R"("captures":[{"name":"doc","dtype":"i32","rank":1}]})";
  r = run_cli({"check", "--spec", captured, "--shape", "b=1,sq=16"}, fjtest::kNoGpuEnv);
  CHECK(r.status == 2);
  CHECK(has(r.out, "captured tensors"));
  CHECK(has(r.out, "flashjit.check"));

  // The float64 reference's cost: b * heads_q * sq * sk at most 2^22.
  r = run_cli({"check", "--spec", kCausal, "--shape", "b=1,sq=2048,sk=2049"}, fjtest::kNoGpuEnv);
  CHECK(r.status == 2);
  CHECK(has(r.out, "--shape b=1 sq=2048 sk=2049: b * heads_q * sq * sk = 4196352 is above 4194304"));
  const std::string heads8 = R"({"dtype":"fp16","head_dim":64,"num_heads_q":8,"num_heads_kv":2})";
  r = run_cli({"check", "--spec", heads8, "--shape", "b=1,sq=16;b=1,sq=725"}, fjtest::kNoGpuEnv);
  CHECK(r.status == 2);
  CHECK(has(r.out, "--shape b=1 sq=725 sk=725: b * heads_q * sq * sk = 4205000"));  // heads from the spec
  r = run_cli({"check", "--spec", kCausal, "--shape", "b=1,sq=2048,sk=2048"}, fjtest::kNoGpuEnv);
  CHECK(r.status == 1);                  // 2^22 exactly: allowed ...
  CHECK(has(r.out, "needs a GPU"));      // ... so the GPU is what is missing

  r = run_cli({"check", "--spec", kCausal, "--shape", "b=1,sq=16", "--seed", "-3"}, fjtest::kNoGpuEnv);
  CHECK(r.status == 2);
  CHECK(has(r.out, "--seed must be a non-negative integer; got '-3'"));
  r = run_cli({"check", "--spec", kCausal, "--shape", "b=1,sq=16", "--forward-only", "--deterministic"},
              fjtest::kNoGpuEnv);
  CHECK(r.status == 2);
  CHECK(has(r.out, "--deterministic"));
  r = run_cli({"check", "--spec", kCausal, "--shape", "b=1,sq=16", "--arch", "sm_90a"}, fjtest::kNoGpuEnv);
  CHECK(r.status == 2);
  CHECK(has(r.out, "unknown option '--arch' for 'check'"));
}

TEST_CASE("cli check: without a GPU it says so and exits 1", "[cli][cli_check]") {
  const fjtest::CliResult r =
      run_cli({"check", "--spec", kCausal, "--shape", "b=1,sq=17,sk=100", "--seed", "7"}, fjtest::kNoGpuEnv);
  INFO(r.out);
  CHECK(r.status == 1);
  CHECK(has(r.out, "flashjit: error: check runs the kernels, so it needs a GPU: "));
  CHECK(!has(r.out, "usage error"));
}

TEST_CASE("cli check: help and the global usage", "[cli][cli_check]") {
  const fjtest::CliResult r = run_cli({"check", "--help"});
  CHECK(r.status == 0);
  CHECK(has(r.out, "usage: flashjit check --spec SPEC --shape SHAPE"));
  for (const char* o :
       {"--spec SPEC", "--shape SHAPE", "--seed N", "--forward-only", "--deterministic", "--cache-dir DIR"}) {
    INFO(o);
    CHECK(has(r.out, std::string("\n  ") + o + " "));
  }
  CHECK(has(r.out, "rounding floor"));
  CHECK(has(r.out, "  flashjit check --spec"));
  CHECK(has(run_cli({"--help"}).out, "  check   --spec SPEC --shape SHAPE"));
}

TEST_CASE("check metrics: Frobenius-relative error, max abs error and the rounding floor as in Python",
          "[cli][cli_check]") {
  using namespace flashjit::cli;
  const double inf = std::numeric_limits<double>::infinity(), nan = std::numeric_limits<double>::quiet_NaN();
  // ||(0.1, -0.2, 0)|| / ||(3, 4, 0)|| = sqrt(0.05) / 5; the inf reference entry is left out.
  const std::vector<double> ref{3.0, 4.0, 0.0, inf}, got{3.1, 3.8, 0.0, 1.0};
  CHECK(frobenius_rel(got, ref) == Approx(std::sqrt(0.05) / 5.0));
  CHECK(max_abs_error(got, ref) == Approx(0.2));
  CHECK(frobenius_rel({0.5, 0.0}, {0.0, 0.0}) == Approx(0.5));  // ||ref|| = 0: the numerator
  CHECK(std::isnan(max_abs_error({nan, 0.0}, {1.0, 0.0})));      // an unwritten (poisoned) element
  CHECK(std::isnan(frobenius_rel({nan, 0.0}, {1.0, 0.0})));

  // The floor: the reference rounded to the dtype. bf16 has 8 significant bits, fp16 11.
  std::vector<double> r(1000);
  for (std::size_t i = 0; i < r.size(); ++i) r[i] = std::sin(0.37 * static_cast<double>(i) + 0.1);
  const ErrorRow exact = compare_tensor("out", r, r, flashjit::DType::bf16);
  CHECK(exact.rel == 0.0);
  CHECK(exact.floor_rel > 5e-4);
  CHECK(exact.floor_rel < 2.5e-3);  // ~ 2^-9 / sqrt(3): docs/accuracy.md's 1.6e-3 .. 1.7e-3
  CHECK(exact.bound == Approx(10 * exact.floor_rel + 1e-2));
  CHECK(exact.ok());
  const ErrorRow fp16 = compare_tensor("out", r, r, flashjit::DType::f16);
  CHECK(fp16.floor_rel < exact.floor_rel / 4);
  std::vector<double> off = r;
  for (double& x : off) x *= 1.05;  // 5% off: beyond 10 x floor + 1e-2
  CHECK(!compare_tensor("dq", off, r, flashjit::DType::bf16).ok());
  std::vector<double> poisoned = r;
  poisoned[17] = nan;
  CHECK(!compare_tensor("dk", poisoned, r, flashjit::DType::bf16).ok());

  // LSE: over the rows that see a key; bounded by its max abs error.
  const ErrorRow lse = compare_lse({1.0 + 1e-6, -inf}, {1.0, -inf});
  CHECK(lse.max_abs == Approx(1e-6).epsilon(1e-3));
  CHECK(!lse.has_floor);
  CHECK(lse.ok());
  CHECK(!compare_lse({1.01, -inf}, {1.0, -inf}).ok());
  CHECK(!compare_lse({nan, -inf}, {1.0, -inf}).ok());

  // Rows with no visible key: output 0 and LSE -inf.
  CHECK(masked_rows_ok({0.0, 0.0, 0.5, 0.5}, {-inf, 2.0}, {-inf, 2.0}, 2));
  CHECK(!masked_rows_ok({0.0, 1e-9, 0.5, 0.5}, {-inf, 2.0}, {-inf, 2.0}, 2));
  CHECK(!masked_rows_ok({0.0, 0.0, 0.5, 0.5}, {nan, 2.0}, {-inf, 2.0}, 2));

  const std::string table = format_check_table({exact, lse}, true);
  CHECK(has(table, "max abs err"));
  CHECK(has(table, "\n  out "));
  CHECK(has(table, "\n  lse "));
  CHECK(has(table, "rel < "));
  CHECK(has(table, "abs < 2.0e-03"));
  CHECK(has(table, "rows without a key give 0 / -inf: True"));
  CHECK(!has(table, "FAIL"));
  CHECK(has(format_check_table({compare_tensor("dv", off, r, flashjit::DType::bf16)}, true), "FAIL"));
}
