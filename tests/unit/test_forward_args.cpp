// forward() validates every argument before touching the GPU: these run on CPU-only
// machines too, since the checks come before the driver is needed.
#include <vector>

#include "catch.hpp"
#include "flashjit/error.h"
#include "flashjit/runtime.h"

namespace {

using flashjit::ElemType;
using flashjit::TensorView;

// Aligned host memory standing in for device pointers: validation never dereferences.
alignas(16) static unsigned char fake[64];

struct Args {
  flashjit::AttentionSpec spec;
  TensorView q, k, v, o, lse;
  Args() {
    spec.dtype = flashjit::DType::bf16;
    spec.head_dim = 64;
    spec.num_heads_q = 6;
    spec.num_heads_kv = 2;
    q = TensorView::bhsd(fake, ElemType::bf16, 2, 6, 100, 64);
    k = TensorView::bhsd(fake, ElemType::bf16, 2, 2, 80, 64);
    v = TensorView::bhsd(fake, ElemType::bf16, 2, 2, 80, 64);
    o = TensorView::bhsd(fake, ElemType::bf16, 2, 6, 100, 64);
    lse = TensorView::lse(reinterpret_cast<float*>(fake), 2, 6, 100);
  }
};

// Calls forward and returns the parameter named by the ArgumentError ("" if none thrown
// or another exception type).
std::string failing_param(const Args& a, const TensorView* lse = nullptr) {
  try {
    flashjit::forward(a.spec, a.q, a.k, a.v, a.o, lse, nullptr);
  } catch (const flashjit::ArgumentError& e) {
    return e.param();
  } catch (const std::exception&) {
    return "";
  }
  return "";
}

}  // namespace

TEST_CASE("forward rejects bad tensors naming the parameter", "[args]") {
  Args a;
  SECTION("valid arguments pass validation (then need a GPU)") {
    if (flashjit::gpu_available()) return;  // would launch on garbage pointers
    try {
      flashjit::forward(a.spec, a.q, a.k, a.v, a.o, nullptr, nullptr);
      FAIL("expected CudaError without a GPU");
    } catch (const flashjit::CudaError& e) {
      CHECK(std::string(e.what()).find("GPU") != std::string::npos);
    }
  }
  SECTION("dtype mismatch") {
    a.k.dtype = ElemType::f16;
    CHECK(failing_param(a) == "k");
  }
  SECTION("head_dim mismatch") {
    a.q.sizes[3] = 128;
    CHECK(failing_param(a) == "q");
  }
  SECTION("GQA heads mismatch") {
    a.k = TensorView::bhsd(fake, ElemType::bf16, 2, 3, 80, 64);
    CHECK(failing_param(a) == "k");
  }
  SECTION("v seqlen differs from k") {
    a.v.sizes[2] = 79;
    CHECK(failing_param(a) == "v");
  }
  SECTION("output shape") {
    a.o.sizes[2] = 99;
    CHECK(failing_param(a) == "o");
  }
  SECTION("last dim not contiguous") {
    a.q.strides[3] = 2;
    CHECK(failing_param(a) == "q");
  }
  SECTION("row stride not 16-byte aligned") {
    a.v.strides[2] = 68;
    CHECK(failing_param(a) == "v");
  }
  SECTION("misaligned pointer") {
    a.o.data = fake + 2;
    CHECK(failing_param(a) == "o");
  }
  SECTION("null pointer") {
    a.q.data = nullptr;
    CHECK(failing_param(a) == "q");
  }
  SECTION("lse required by the spec") {
    a.spec.return_lse = true;
    CHECK(failing_param(a) == "lse");
  }
  SECTION("lse of the wrong shape") {
    a.lse.sizes[2] = 7;
    CHECK(failing_param(a, &a.lse) == "lse");
  }
  SECTION("batch mismatch") {
    a.v.sizes[0] = 1;
    CHECK(failing_param(a) == "v");
  }
}

TEST_CASE("forward rejects a bad spec before anything else", "[args]") {
  Args a;
  a.spec.head_dim = 80;
  try {
    flashjit::forward(a.spec, a.q, a.k, a.v, a.o, nullptr, nullptr);
    FAIL("expected SpecError");
  } catch (const flashjit::SpecError& e) {
    CHECK(e.field() == "head_dim");
  }
}
