// `flashjit check` on the GPU: a causal bf16 d64 GQA spec with odd lengths, forward and
// backward, must exit 0 with every printed error below its bound (10 x the dtype's rounding
// floor + 1e-2; LSE 2e-3), and a second shape where rows see no key (sq > sk, bottom-right).
#include <sstream>
#include <string>
#include <vector>

#include "catch.hpp"
#include "cli_runner.h"
#include "gpu_harness.h"

namespace {

struct Row {
  double max_abs = -1, rel = -1, floor = -1;
};

// The table's line of `name` ("  out    1.234e-02  2.260e-03  1.700e-03 ..."), parsed; the
// n-th such line (one table per shape). Lines whose next word is not a number (the summary
// line "  lse max abs err ...") are not table lines.
Row row_of(const std::string& out, const std::string& name, int nth) {
  std::istringstream lines(out);
  int seen = 0;
  for (std::string line; std::getline(lines, line);) {
    std::istringstream f(line);
    std::string first, floor;
    Row r;
    if (!(f >> first) || first != name || !(f >> r.max_abs >> r.rel >> floor)) continue;
    if (seen++ != nth) continue;
    r.floor = floor == "-" ? 0.0 : std::stod(floor);
    return r;
  }
  return Row{};
}

}  // namespace

TEST_CASE("gpu: flashjit check of a causal bf16 d64 spec exits 0 within the floor bound", "[gpu][cli_check]") {
  FJ_REQUIRE_GPU_OR_SKIP();
  const std::string spec = R"({"dtype":"bf16","head_dim":64,"num_heads_q":6,"num_heads_kv":2,"mask":"causal"})";
  const fjtest::CliResult r = fjtest::run_cli({"check", "--spec", spec, "--shape", "b=2,sq=17,sk=1000;b=1,sq=300,sk=100"});
  INFO(r.out);
  REQUIRE(r.status == 0);
  CHECK(fjtest::has(r.out, "rows without a key give 0 / -inf: True"));
  CHECK(!fjtest::has(r.out, "FAIL"));
  for (int shape = 0; shape < 2; ++shape) {
    for (const char* name : {"out", "dq", "dk", "dv"}) {
      INFO("shape " << shape << " " << name);
      const Row row = row_of(r.out, name, shape);
      REQUIRE(row.rel >= 0);
      CHECK(row.floor > 0);
      CHECK(row.rel < 10 * row.floor + 1e-2);
      CHECK(row.max_abs >= 0);  // printed (its size depends on the values: no bound of its own)
    }
    const Row lse = row_of(r.out, "lse", shape);
    REQUIRE(lse.max_abs >= 0);
    CHECK(lse.max_abs < 2e-3);
  }
}
