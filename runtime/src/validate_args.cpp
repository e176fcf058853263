// Every tensor of forward() is checked here, before anything is launched: a wrong shape,
// stride, dtype or pointer gets an ArgumentError naming it, never a wrong result.
#include "validate_args.h"

#include <fmt/format.h>

#include <cstdint>
#include <initializer_list>
#include <map>
#include <mutex>
#include <string>
#include <utility>

#include "flashjit/error.h"

namespace flashjit {
namespace {

const char* name_of(ElemType t) {
  switch (t) {
    case ElemType::bf16: return "bf16";
    case ElemType::f16: return "fp16";
    case ElemType::f32: return "float32";
    case ElemType::i32: return "int32";
    case ElemType::i64: return "int64";
    case ElemType::boolean: return "bool";
  }
  return "?";
}

void check_size(const char* name, const TensorView& t, int dim, int64_t expected, const char* what) {
  if (t.sizes[dim] != expected)
    throw ArgumentError(name, fmt::format("size {} of dim {} ({}) must be {}", t.sizes[dim], dim, what, expected));
}

// 16-bit tensors are moved in 16-byte chunks (cp.async): rows must start 16-byte aligned.
void check_16bit_tensor(const char* name, const TensorView& t, ElemType expected) {
  if (t.data == nullptr) throw ArgumentError(name, "data pointer is null");
  if (t.rank != 4) throw ArgumentError(name, fmt::format("must have 4 dims (batch, heads, seqlen, head_dim), has {}", t.rank));
  if (t.dtype != expected)
    throw ArgumentError(name, fmt::format("dtype is {}, the spec says {}", name_of(t.dtype), name_of(expected)));
  for (int d = 0; d < 4; ++d)
    if (t.sizes[d] < 0) throw ArgumentError(name, fmt::format("size of dim {} is negative ({})", d, t.sizes[d]));
  if (t.strides[3] != 1)
    throw ArgumentError(name, fmt::format("the last dim (head_dim) must be contiguous (stride 1), has stride {}", t.strides[3]));
  for (int d = 0; d < 3; ++d)
    if (t.strides[d] % 8 != 0 || t.strides[d] < 0)
      throw ArgumentError(name, fmt::format("stride {} of dim {} must be a non-negative multiple of 8 elements "
                                            "(16-byte aligned rows)", t.strides[d], d));
  if (reinterpret_cast<uintptr_t>(t.data) % 16 != 0) throw ArgumentError(name, "data pointer must be 16-byte aligned");
}


int64_t elem_bytes(ElemType t) {
  switch (t) {
    case ElemType::f16:
    case ElemType::bf16: return 2;
    case ElemType::f32:
    case ElemType::i32: return 4;
    case ElemType::i64: return 8;
    case ElemType::boolean: return 1;
  }
  return 1;
}

// The bytes [begin, end) a tensor's elements occupy at most (begin == end: no element).
struct ByteRange {
  uintptr_t begin = 0, end = 0;
  bool empty() const { return begin == end; }
};

// Bounds every stride and the tensor's extent (validate_args.h says why 2^48 bytes is
// enough for the kernel's 64-bit offsets) with overflow-checked arithmetic, and returns its
// byte range. Strides must already be known non-negative.
ByteRange checked_range(const char* name, const TensorView& t) {
  const int64_t elem = elem_bytes(t.dtype);
  const int64_t max_stride = int64_t((kMaxTensorBytes - 1) >> (elem == 8 ? 3 : elem == 4 ? 2 : elem == 2 ? 1 : 0));  // no division: every forward()
  for (int d = 0; d < t.rank; ++d)
    if (t.strides[d] > max_stride)
      throw ArgumentError(name, fmt::format("stride {} of dim {} is too large: stride x {} bytes must be below "
                                            "2^{} bytes, the most a tensor may span (at most {} elements)",
                                            t.strides[d], d, elem, kMaxTensorBytesLog2, max_stride));
  ByteRange r;
  r.begin = reinterpret_cast<uintptr_t>(t.data);
  for (int d = 0; d < t.rank; ++d)
    if (t.sizes[d] == 0) {
      r.end = r.begin;  // no element at all
      return r;
    }
  // sum((size_d - 1) * stride_d) * elem + elem, every step checked; `widest` is the dim
  // that contributes the most, named when the sum is too large.
  int64_t last = 0;  // element offset of the last element
  bool overflow = false;
  int widest = 0;
  int64_t widest_term = -1;
  for (int d = 0; d < t.rank; ++d) {
    int64_t term = 0;
    if (__builtin_mul_overflow(t.sizes[d] - 1, t.strides[d], &term)) {
      overflow = true;
      widest = d;
      break;
    }
    if (term > widest_term) widest_term = term, widest = d;
    if (__builtin_add_overflow(last, term, &last)) {
      overflow = true;
      break;
    }
  }
  int64_t extent = 0;
  overflow = overflow || __builtin_mul_overflow(last, elem, &extent) || __builtin_add_overflow(extent, elem, &extent);
  if (overflow || uint64_t(extent) >= kMaxTensorBytes)
    throw ArgumentError(
        name, fmt::format("its sizes and strides make it span {} bytes; a tensor must span less than 2^{} "
                          "bytes (dim {}, size {}, stride {}, contributes the most)",
                          overflow ? std::string("more than 2^63") : std::to_string(extent), kMaxTensorBytesLog2,
                          widest, t.sizes[widest], t.strides[widest]));
  if (__builtin_add_overflow(r.begin, uintptr_t(extent), &r.end))
    throw ArgumentError(name, fmt::format("data pointer {:#x} plus the tensor's extent of {} bytes wraps around the "
                                          "address space",
                                          r.begin, extent));
  return r;
}

// Outputs are written by many blocks at once: two indices at one address would race.
// The standard sufficient test: leave out dims of size 1, sort the rest by stride; each
// stride must be at least the previous stride times the previous size (a zero stride on a
// dim of size > 1 always overlaps). Inputs are only read and may broadcast.
void check_not_self_overlapping(const char* name, const TensorView& t) {
  struct Dim {
    int64_t stride, size;
    int dim;
  };
  Dim dims[4];  // no allocation: this runs on every forward()
  int n = 0;
  for (int d = 0; d < t.rank; ++d) {
    if (t.sizes[d] == 0) return;  // no element, nothing written
    if (t.sizes[d] > 1) dims[n++] = {t.strides[d], t.sizes[d], d};
  }
  for (int i = 1; i < n; ++i)  // insertion sort by stride (stable; std::stable_sort may allocate)
    for (int j = i; j > 0 && dims[j].stride < dims[j - 1].stride; --j) std::swap(dims[j], dims[j - 1]);
  for (int i = 0; i < n; ++i) {
    const Dim& cur = dims[i];
    if (cur.stride == 0)
      throw ArgumentError(name, fmt::format("stride 0 of dim {} (size {}) puts all its {} indices at one address; "
                                            "an output must not overlap itself",
                                            cur.dim, cur.size, cur.size));
    if (i == 0) continue;
    const Dim& prev = dims[i - 1];
    int64_t span = 0;
    const bool huge = __builtin_mul_overflow(prev.stride, prev.size, &span);
    if (huge || cur.stride < span)
      throw ArgumentError(name, fmt::format("dim {} (size {}, stride {}) and dim {} (stride {}) overlap: the "
                                            "stride of dim {} must be at least {} x {}{}; an output must not "
                                            "overlap itself",
                                            prev.dim, prev.size, prev.stride, cur.dim, cur.stride, cur.dim,
                                            prev.stride, prev.size,
                                            huge ? std::string() : fmt::format(" = {}", span)));
  }
}

// An output sharing bytes with an input (or the other output) would be read after being
// written by another block: reject any intersection of the byte ranges.
void check_disjoint(const char* out_name, const ByteRange& out, const char* other_name, const ByteRange& other) {
  if (out.empty() || other.empty()) return;
  if (out.begin < other.end && other.begin < out.end)
    throw ArgumentError(out_name, fmt::format("{} overlaps {}: flashjit does not compute in place ({} spans bytes "
                                              "[{:#x}, {:#x}), {} spans [{:#x}, {:#x})); give {} its own memory",
                                              out_name, other_name, out_name, out.begin, out.end, other_name,
                                              other.begin, other.end, out_name));
}

ElemType elem_type_of(expr::CaptureDType d) {
  switch (d) {
    case expr::CaptureDType::i32: return ElemType::i32;
    case expr::CaptureDType::i64: return ElemType::i64;
    case expr::CaptureDType::f32: return ElemType::f32;
    case expr::CaptureDType::f16: return ElemType::f16;
    case expr::CaptureDType::bf16: return ElemType::bf16;
    case expr::CaptureDType::boolean: return ElemType::boolean;
  }
  return ElemType::i32;
}

// Parsed once per process (expr::parse_cached), not on every launch.
std::shared_ptr<const expr::Expr> parsed(const std::string& text, bool score, const std::vector<expr::CaptureDecl>& caps) {
  return expr::parse_cached(text, expr::Context{score, caps});
}

}  // namespace

void validate_dropout_args(const AttentionSpec& spec, const DropoutRng& rng) {
  if (spec.dropout_p == 0 || rng.device_state == nullptr) return;
  if (reinterpret_cast<uintptr_t>(rng.device_state) % 8 != 0)
    throw ArgumentError("dropout", "device_state must be 8-byte aligned (two uint64: seed, offset)");
}

void validate_capture_args(const AttentionSpec& spec, const std::vector<TensorView>& captures,
                           const ProblemShape& s, const TensorView& o, const TensorView* lse) {
  validate_capture_args(spec, captures, s, {{"o", &o}, {"lse", lse}});
}

void validate_capture_args(const AttentionSpec& spec0, const std::vector<TensorView>& captures,
                           const ProblemShape& s, const std::vector<NamedView>& outputs) {
  if (!spec0.has_expressions() && captures.empty() && spec0.captures.empty()) return;  // the common case: nothing
  const AttentionSpec spec = spec0.normalized();
  const std::vector<expr::CaptureDecl>& decls = spec.captures;
  if (captures.size() != decls.size()) {
    std::string names;
    for (const expr::CaptureDecl& d : decls) names += (names.empty() ? "" : ", ") + d.name;
    throw ArgumentError("captures", fmt::format("{} tensors were passed; the spec declares {}{}{}", captures.size(),
                                                decls.size(), decls.empty() ? "" : ": ", names));
  }
  std::vector<std::pair<const char*, ByteRange>> written;
  for (const NamedView& out : outputs)
    if (out.second) written.emplace_back(out.first, checked_range(out.first, *out.second));
  std::vector<expr::HostCapture> host(captures.size());
  for (size_t i = 0; i < captures.size(); ++i) {
    const TensorView& t = captures[i];
    const expr::CaptureDecl& d = decls[i];
    const std::string name = "captures." + d.name;
    if (t.rank != d.rank)
      throw ArgumentError(name, fmt::format("has {} dims; the spec declares rank {}", t.rank, d.rank));
    if (t.dtype != elem_type_of(d.dtype))
      throw ArgumentError(name, fmt::format("dtype is {}; the spec declares {}", name_of(t.dtype), expr::to_string(d.dtype)));
    for (int k = 0; k < t.rank; ++k) {
      if (t.sizes[k] < 0 || t.sizes[k] > INT32_MAX)
        throw ArgumentError(name, fmt::format("size {} of dim {} is not supported; allowed: 0 to 2^31 - 1", t.sizes[k], k));
      if (t.strides[k] < 0)
        throw ArgumentError(name, fmt::format("stride {} of dim {} must be non-negative", t.strides[k], k));
    }
    if (t.data == nullptr) throw ArgumentError(name, "data pointer is null");
    if (reinterpret_cast<uintptr_t>(t.data) % static_cast<uintptr_t>(elem_bytes(t.dtype)) != 0)
      throw ArgumentError(name, fmt::format("data pointer must be {}-byte aligned", elem_bytes(t.dtype)));
    const ByteRange r = checked_range(name.c_str(), t);
    // Captures are only read and may share memory with each other and the inputs, but
    // not with what the kernel writes.
    for (const auto& w : written) check_disjoint(w.first, w.second, name.c_str(), r);
    host[i].data = t.data;
    host[i].dtype = d.dtype;
    host[i].rank = t.rank;
    for (int k = 0; k < t.rank; ++k) host[i].sizes[k] = t.sizes[k], host[i].strides[k] = t.strides[k];
  }
  // Every index of every read, over every (b, h, q_idx, kv_idx) of this call.
  expr::Box box;
  box.b_lo = 0, box.b_hi = s.batch - 1;
  box.h_lo = 0, box.h_hi = s.heads_q - 1;
  box.q_lo = 0, box.q_hi = s.seqlen_q - 1;
  box.kv_lo = 0, box.kv_hi = s.seqlen_k - 1;
  box.seqlen_q = s.seqlen_q, box.seqlen_k = s.seqlen_k;
  if (s.seqlen_q == 0 || s.seqlen_k == 0) return;  // no element is evaluated
  if (spec.mask.kind == MaskKind::custom) {
    const std::shared_ptr<const expr::Expr> mp = parsed(spec.mask.expr, false, decls);
    const expr::Expr& m = *mp;
    expr::check_capture_bounds(m, decls, host, box, "mask.expr");
    // A mask compiled as a band is computed in 64 bits; it equals the 32-bit expression as
    // long as no step of the latter can wrap.
    if (expr::as_band(m) && expr::may_wrap(m, box))
      throw ArgumentError("mask.expr", fmt::format("may overflow 32-bit integers for seqlen_q = {}, seqlen_k = {}; "
                                                   "write it with smaller intermediate values",
                                                   s.seqlen_q, s.seqlen_k));
  }
  if (!spec.score_mod.empty())
    expr::check_capture_bounds(*parsed(spec.score_mod, true, decls), decls, host, box, "score_mod");
}

ProblemShape validate_forward_args(const AttentionSpec& spec0, const TensorView& q, const TensorView& k,
                                   const TensorView& v, const TensorView& o, const TensorView* lse) {
  const AttentionSpec spec = spec0.normalized();
  const ElemType et = spec.dtype == DType::bf16 ? ElemType::bf16 : ElemType::f16;
  check_16bit_tensor("q", q, et);
  check_16bit_tensor("k", k, et);
  check_16bit_tensor("v", v, et);
  check_16bit_tensor("o", o, et);

  ProblemShape s{q.sizes[0], q.sizes[1], k.sizes[1], q.sizes[2], k.sizes[2]};
  if (s.batch < 1) throw ArgumentError("q", "batch (dim 0) must be at least 1");
  if (s.batch > 65535) throw ArgumentError("q", fmt::format("batch {} exceeds 65535", s.batch));
  check_size("q", q, 1, spec.num_heads_q, "num_heads_q of the spec");
  check_size("q", q, 3, spec.head_dim, "head_dim of the spec");
  check_size("k", k, 0, s.batch, "batch of q");
  check_size("k", k, 1, spec.num_heads_kv, "num_heads_kv of the spec");
  check_size("k", k, 3, spec.head_dim, "head_dim of the spec");
  check_size("v", v, 0, s.batch, "batch of q");
  check_size("v", v, 1, spec.num_heads_kv, "num_heads_kv of the spec");
  check_size("v", v, 2, s.seqlen_k, "seqlen_k of k");
  check_size("v", v, 3, spec.head_dim_v, "head_dim_v of the spec");
  check_size("o", o, 0, s.batch, "batch of q");
  check_size("o", o, 1, spec.num_heads_q, "num_heads_q of the spec");
  check_size("o", o, 2, s.seqlen_q, "seqlen_q of q");
  check_size("o", o, 3, spec.head_dim_v, "head_dim_v of the spec");
  if (s.heads_q > 65535) throw ArgumentError("q", "num_heads_q exceeds 65535");
  if (s.seqlen_q > INT32_MAX / 2 || s.seqlen_k > INT32_MAX / 2)
    throw ArgumentError("q", "sequence lengths must be below 2^30");

  if (spec.return_lse && lse == nullptr) throw ArgumentError("lse", "the spec sets return_lse but no lse tensor was given");
  if (lse) {
    if (lse->data == nullptr) throw ArgumentError("lse", "data pointer is null");
    if (lse->dtype != ElemType::f32) throw ArgumentError("lse", fmt::format("dtype is {}, must be float32", name_of(lse->dtype)));
    if (lse->rank != 3) throw ArgumentError("lse", "must have 3 dims (batch, heads_q, seqlen_q)");
    check_size("lse", *lse, 0, s.batch, "batch");
    check_size("lse", *lse, 1, s.heads_q, "num_heads_q");
    check_size("lse", *lse, 2, s.seqlen_q, "seqlen_q");
    if (lse->strides[2] != 1) throw ArgumentError("lse", "the seqlen dim must be contiguous (stride 1)");
    for (int d = 0; d < 2; ++d)
      if (lse->strides[d] < 0)
        throw ArgumentError("lse", fmt::format("stride {} of dim {} ({}) must be non-negative", lse->strides[d], d,
                                               d == 0 ? "batch" : "heads_q"));
    if (reinterpret_cast<uintptr_t>(lse->data) % 4 != 0) throw ArgumentError("lse", "data pointer must be 4-byte aligned");
  }

  // Extents (no 64-bit offset can wrap), outputs that do not overlap themselves, and
  // outputs whose bytes no input (nor the other output) shares.
  const ByteRange rq = checked_range("q", q), rk = checked_range("k", k), rv = checked_range("v", v);
  const ByteRange ro = checked_range("o", o);
  check_not_self_overlapping("o", o);
  check_disjoint("o", ro, "q", rq);
  check_disjoint("o", ro, "k", rk);
  check_disjoint("o", ro, "v", rv);
  if (lse) {
    const ByteRange rl = checked_range("lse", *lse);
    check_not_self_overlapping("lse", *lse);
    check_disjoint("lse", rl, "q", rq);
    check_disjoint("lse", rl, "k", rk);
    check_disjoint("lse", rl, "v", rv);
    check_disjoint("lse", rl, "o", ro);
  }
  return s;
}

namespace {

// A float32 tensor of the given sizes, contiguous (an accumulator the backward owns).
void check_f32_contiguous(const char* name, const TensorView& t, std::initializer_list<int64_t> sizes, const char* dims) {
  if (t.data == nullptr) throw ArgumentError(name, "data pointer is null");
  if (t.dtype != ElemType::f32) throw ArgumentError(name, fmt::format("dtype is {}, must be float32", name_of(t.dtype)));
  if (t.rank != static_cast<int>(sizes.size()))
    throw ArgumentError(name, fmt::format("must have {} dims ({}), has {}", sizes.size(), dims, t.rank));
  int64_t stride = 1;
  for (int d = t.rank - 1; d >= 0; --d) {
    const int64_t want = sizes.begin()[d];
    if (t.sizes[d] != want)
      throw ArgumentError(name, fmt::format("size {} of dim {} must be {} ({})", t.sizes[d], d, want, dims));
    if (t.strides[d] != stride && want > 1)
      throw ArgumentError(name, fmt::format("must be contiguous: stride {} of dim {} should be {}", t.strides[d], d, stride));
    stride *= want;
  }
  if (reinterpret_cast<uintptr_t>(t.data) % 16 != 0) throw ArgumentError(name, "data pointer must be 16-byte aligned");
}

}  // namespace

ProblemShape validate_bwd_preprocess_args(const AttentionSpec& spec0, const TensorView& o, const TensorView& dout,
                                          const TensorView& d, const TensorView& dq_accum) {
  const AttentionSpec spec = spec0.normalized();
  const ElemType et = spec.dtype == DType::bf16 ? ElemType::bf16 : ElemType::f16;
  check_16bit_tensor("o", o, et);
  check_16bit_tensor("dout", dout, et);
  const ProblemShape s{o.sizes[0], o.sizes[1], spec.num_heads_kv, o.sizes[2], 0};
  if (s.batch < 1) throw ArgumentError("o", "batch (dim 0) must be at least 1");
  if (s.batch > 65535) throw ArgumentError("o", fmt::format("batch {} exceeds 65535", s.batch));
  check_size("o", o, 1, spec.num_heads_q, "num_heads_q of the spec");
  check_size("o", o, 3, spec.head_dim_v, "head_dim_v of the spec");
  if (s.seqlen_q > INT32_MAX / 2) throw ArgumentError("o", "seqlen_q must be below 2^30");
  for (int k = 0; k < 4; ++k) check_size("dout", dout, k, o.sizes[k], "the same as o");
  check_f32_contiguous("d", d, {s.batch, s.heads_q, s.seqlen_q}, "batch, heads_q, seqlen_q");
  check_f32_contiguous("dq_accum", dq_accum, {s.batch, s.heads_q, s.seqlen_q, spec.head_dim},
                       "batch, heads_q, seqlen_q, head_dim");
  const ByteRange ro = checked_range("o", o), rdo = checked_range("dout", dout);
  const ByteRange rd = checked_range("d", d), rdq = checked_range("dq_accum", dq_accum);
  check_disjoint("d", rd, "o", ro);
  check_disjoint("d", rd, "dout", rdo);
  check_disjoint("dq_accum", rdq, "o", ro);
  check_disjoint("dq_accum", rdq, "dout", rdo);
  check_disjoint("dq_accum", rdq, "d", rd);
  return s;
}

ProblemShape validate_backward_args(const AttentionSpec& spec0, const TensorView& q, const TensorView& k,
                                    const TensorView& v, const TensorView& o, const TensorView& lse,
                                    const TensorView& dout, const TensorView& dq, const TensorView& dk,
                                    const TensorView& dv) {
  const AttentionSpec spec = spec0.normalized();
  const ProblemShape s = validate_forward_args(spec, q, k, v, o, &lse);
  const ElemType et = spec.dtype == DType::bf16 ? ElemType::bf16 : ElemType::f16;
  check_16bit_tensor("dout", dout, et);
  check_16bit_tensor("dq", dq, et);
  check_16bit_tensor("dk", dk, et);
  check_16bit_tensor("dv", dv, et);
  for (int d = 0; d < 4; ++d) {
    check_size("dout", dout, d, o.sizes[d], "the same as o");
    check_size("dq", dq, d, q.sizes[d], "the same as q");
    check_size("dk", dk, d, k.sizes[d], "the same as k");
    check_size("dv", dv, d, v.sizes[d], "the same as v");
  }
  // Gradients are written: none overlaps itself, another gradient or any input.
  const std::pair<const char*, const TensorView*> inputs[] = {{"q", &q}, {"k", &k}, {"v", &v}, {"o", &o},
                                                              {"lse", &lse}, {"dout", &dout}};
  const std::pair<const char*, const TensorView*> outputs[] = {{"dq", &dq}, {"dk", &dk}, {"dv", &dv}};
  for (size_t i = 0; i < 3; ++i) {
    const char* name = outputs[i].first;
    const ByteRange r = checked_range(name, *outputs[i].second);
    check_not_self_overlapping(name, *outputs[i].second);
    for (const auto& in : inputs) check_disjoint(name, r, in.first, checked_range(in.first, *in.second));
    for (size_t j = 0; j < i; ++j)
      check_disjoint(name, r, outputs[j].first, checked_range(outputs[j].first, *outputs[j].second));
  }
  return s;
}

}  // namespace flashjit
