// forward() validates every argument before touching the GPU: these run on CPU-only
// machines too, since the checks come before the driver is needed.
#include <cstdint>
#include <limits>
#include <string>
#include <vector>

#include "catch.hpp"
#include "flashjit/error.h"
#include "flashjit/runtime.h"

namespace {

using flashjit::ElemType;
using flashjit::TensorView;

// Fake device addresses, 1 TiB apart: validation never dereferences them, and distinct
// tensors must not overlap (o may not alias q, k or v).
void* fake_at(int i, std::uintptr_t offset = 0) {
  return reinterpret_cast<void*>((std::uintptr_t(i + 1) << 40) + offset);
}

struct Args {
  flashjit::AttentionSpec spec;
  TensorView q, k, v, o, lse;
  Args() {
    spec.dtype = flashjit::DType::bf16;
    spec.head_dim = 64;
    spec.num_heads_q = 6;
    spec.num_heads_kv = 2;
    q = TensorView::bhsd(fake_at(0), ElemType::bf16, 2, 6, 100, 64);
    k = TensorView::bhsd(fake_at(1), ElemType::bf16, 2, 2, 80, 64);
    v = TensorView::bhsd(fake_at(2), ElemType::bf16, 2, 2, 80, 64);
    o = TensorView::bhsd(fake_at(3), ElemType::bf16, 2, 6, 100, 64);
    lse = TensorView::lse(static_cast<float*>(fake_at(4)), 2, 6, 100);
  }
};

// What forward() threw: the ArgumentError's parameter and message, or "" for both when it
// threw something else or nothing.
struct Failure {
  std::string param, message;
};
Failure failure(const Args& a, const TensorView* lse = nullptr) {
  try {
    flashjit::forward(a.spec, a.q, a.k, a.v, a.o, lse, nullptr);
  } catch (const flashjit::ArgumentError& e) {
    return {e.param(), e.what()};
  } catch (const std::exception&) {
  }
  return {};
}

// Calls forward and returns the parameter named by the ArgumentError ("" if none thrown
// or another exception type).
std::string failing_param(const Args& a, const TensorView* lse = nullptr) { return failure(a, lse).param; }

// Validation passes: without a GPU, forward() then stops at the driver (CudaError).
void check_accepted(const Args& a, const TensorView* lse = nullptr) {
  if (flashjit::gpu_available()) return;  // would launch on fake pointers
  try {
    flashjit::forward(a.spec, a.q, a.k, a.v, a.o, lse, nullptr);
    FAIL("expected CudaError without a GPU");
  } catch (const flashjit::CudaError&) {
    SUCCEED();
  } catch (const std::exception& e) {
    FAIL("rejected: " << e.what());
  }
}

bool mentions(const std::string& text, const std::string& part) { return text.find(part) != std::string::npos; }

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
    a.k = TensorView::bhsd(fake_at(1), ElemType::bf16, 2, 3, 80, 64);
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
    a.o.data = fake_at(3, 2);
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

TEST_CASE("forward checks the lse's batch and head strides", "[args]") {
  Args a;
  SECTION("contiguous and padded lse pass") {
    check_accepted(a, &a.lse);
    a.lse.strides[1] = 128, a.lse.strides[0] = 6 * 128;  // rows padded to 128 floats
    check_accepted(a, &a.lse);
  }
  SECTION("a negative batch stride writes before the buffer") {
    a.lse.strides[0] = -600;
    const Failure f = failure(a, &a.lse);
    CHECK(f.param == "lse");
    CHECK(mentions(f.message, "dim 0"));
    CHECK(mentions(f.message, "stride -600"));
  }
  SECTION("a negative head stride") {
    a.lse.strides[1] = -100;
    const Failure f = failure(a, &a.lse);
    CHECK(f.param == "lse");
    CHECK(mentions(f.message, "dim 1"));
    CHECK(mentions(f.message, "stride -100"));
  }
  SECTION("the seqlen dim must stay contiguous") {
    a.lse.strides[2] = 2;
    CHECK(failing_param(a, &a.lse) == "lse");
  }
}

TEST_CASE("forward bounds strides so that byte offsets cannot wrap", "[args]") {
  Args a;
  SECTION("a stride far past the bound, and one whose byte offset overflows 64 bits") {
    a.q.strides[0] = int64_t(1) << 60;  // (2 - 1) * 2^60 elements * 2 bytes = 2^61 bytes > 2^48
    Failure f = failure(a);
    CHECK(f.param == "q");
    CHECK(mentions(f.message, "dim 0"));
    CHECK(mentions(f.message, "2^48"));
    a = Args();
    a.k.strides[1] = std::numeric_limits<int64_t>::max() & ~int64_t(7);  // (size - 1) * stride overflows
    f = failure(a);
    CHECK(f.param == "k");
    CHECK(mentions(f.message, "dim 1"));
  }
  SECTION("the extent is the sum over the dims") {
    // Each dim alone stays below 2^48 bytes, together they pass it: 2^47 + 2^47 bytes.
    a.v.sizes[0] = 2, a.v.strides[0] = int64_t(1) << 46;  // batch: 1 x 2^46 elements = 2^47 bytes
    a.v.strides[1] = int64_t(1) << 46;                    // heads: 1 x 2^46 elements = 2^47 bytes
    const Failure f = failure(a);
    CHECK(f.param == "v");
    CHECK(mentions(f.message, "2^48"));
  }
  SECTION("a size-1 dim's stride is bounded too") {
    a.spec.num_heads_q = 1, a.spec.num_heads_kv = 1;
    a.q.sizes[1] = a.k.sizes[1] = a.v.sizes[1] = a.o.sizes[1] = a.lse.sizes[1] = 1;
    a.q.strides[1] = int64_t(1) << 62;
    CHECK(failing_param(a) == "q");
  }
  SECTION("the lse's extent") {
    a.lse.strides[0] = int64_t(1) << 47;  // floats: 2^49 bytes
    const Failure f = failure(a, &a.lse);
    CHECK(f.param == "lse");
    CHECK(mentions(f.message, "dim 0"));
  }
  SECTION("a tensor that would wrap the address space") {
    a.o.data = reinterpret_cast<void*>(~std::uintptr_t(0) & ~std::uintptr_t(15));
    CHECK(failing_param(a) == "o");
  }
  SECTION("large strides below the bound pass") {
    a.q.strides[0] = int64_t(1) << 30;  // 2 GiB between batches
    check_accepted(a);
  }
}

TEST_CASE("forward rejects outputs that overlap themselves", "[args]") {
  Args a;
  SECTION("a zero head stride on o") {
    a.o.strides[1] = 0;
    const Failure f = failure(a);
    CHECK(f.param == "o");
    CHECK(mentions(f.message, "dim 1"));
    CHECK(mentions(f.message, "stride 0"));
  }
  SECTION("a zero row stride on o") {
    a.o.strides[2] = 0;
    const Failure f = failure(a);
    CHECK(f.param == "o");
    CHECK(mentions(f.message, "dim 2"));
  }
  SECTION("heads closer than the rows of one head") {
    a.o.strides[1] = 64 * 50;  // 100 rows of 64 need 6400 elements per head
    const Failure f = failure(a);
    CHECK(f.param == "o");
    CHECK(mentions(f.message, "dim 1"));
    CHECK(mentions(f.message, "dim 2"));
  }
  SECTION("rows closer than head_dim") {
    a.o.strides[2] = 32, a.o.strides[1] = 32 * 100, a.o.strides[0] = 6 * 32 * 100;
    CHECK(failing_param(a) == "o");
  }
  SECTION("lse strides that overlap") {
    a.lse.strides[0] = 0;
    Failure f = failure(a, &a.lse);
    CHECK(f.param == "lse");
    CHECK(mentions(f.message, "dim 0"));
    a.lse = TensorView::lse(static_cast<float*>(fake_at(4)), 2, 6, 100);
    a.lse.strides[1] = 50;
    f = failure(a, &a.lse);
    CHECK(f.param == "lse");
    CHECK(mentions(f.message, "dim 1"));
  }
  SECTION("non-overlapping layouts pass: BSHD, padded rows, any stride of a size-1 dim") {
    a.o = TensorView::bshd(fake_at(3), ElemType::bf16, 2, 100, 6, 64);
    check_accepted(a);
    a.o = TensorView::bhsd(fake_at(3), ElemType::bf16, 2, 6, 100, 64);
    a.o.strides[2] = 72, a.o.strides[1] = 72 * 100, a.o.strides[0] = 6 * 72 * 100;
    check_accepted(a);
    a.spec.num_heads_q = 1, a.spec.num_heads_kv = 1;
    a.q.sizes[1] = a.k.sizes[1] = a.v.sizes[1] = a.o.sizes[1] = 1;
    a.o.strides[1] = 0;  // one head: its stride is never used
    check_accepted(a);
  }
  SECTION("inputs may broadcast (zero strides)") {
    a.q.strides[0] = 0;  // one q for both batches
    a.k.strides[1] = 0, a.v.strides[1] = 0;
    a.k.strides[2] = 0;  // every key row the same
    check_accepted(a);
  }
}

TEST_CASE("forward rejects outputs that alias the inputs", "[args]") {
  Args a;
  SECTION("o is q (in place)") {
    a.o.data = a.q.data;
    const Failure f = failure(a);
    CHECK(f.param == "o");
    CHECK(mentions(f.message, "o overlaps q"));
    CHECK(mentions(f.message, "in place"));
  }
  SECTION("o starts inside v") {
    a.o.data = static_cast<char*>(a.v.data) + 2 * 2 * 80 * 64 * 2 - 16;  // v's last 16 bytes
    const Failure f = failure(a);
    CHECK(f.param == "o");
    CHECK(mentions(f.message, "o overlaps v"));
  }
  SECTION("o ends inside k") {
    a.o.data = static_cast<char*>(a.k.data) - 2 * 6 * 100 * 64 * 2 + 16;
    const Failure f = failure(a);
    CHECK(f.param == "o");
    CHECK(mentions(f.message, "o overlaps k"));
  }
  SECTION("lse aliases an input or o") {
    a.lse.data = a.k.data;
    Failure f = failure(a, &a.lse);
    CHECK(f.param == "lse");
    CHECK(mentions(f.message, "lse overlaps k"));
    a.lse.data = static_cast<char*>(a.o.data) + 1024;
    f = failure(a, &a.lse);
    CHECK(f.param == "lse");
    CHECK(mentions(f.message, "lse overlaps o"));
  }
  SECTION("adjacent buffers pass; inputs may alias each other") {
    a.o.data = static_cast<char*>(a.q.data) + 2 * 6 * 100 * 64 * 2;  // right after q
    a.k.data = a.v.data;                                              // k and v share memory
    check_accepted(a);
  }
}
