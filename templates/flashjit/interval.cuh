// Interval arithmetic over the expression language, for host and device.
//
// Evaluating a mask expression over a box of indices (a q tile x a kv tile) gives a sound
// answer: never true (the tile is empty and skipped), always true (the tile runs with no
// mask arithmetic) or unknown (the mask is evaluated per element). The generated kernel
// classifies tiles with these functions; the host uses the same ones (compiler/expr/
// interval.cpp) for the CPU evaluator and for bounds checks of captured-tensor reads.
//
// Ints are 32-bit and wrap: a result that could leave the int range becomes the whole range.
// Floats are kept in double and widened after every operation by more than float rounding
// and the math library's error, and carry a may-be-NaN flag.
#pragma once

#include "flashjit/capture_arg.cuh"
#include "flashjit/expr_ops.cuh"

namespace flashjit {

struct IvB {
  bool f, t;  // may be false, may be true
};
struct IvI {
  long long lo, hi;  // inclusive, within the int range
};
struct IvF {
  double lo, hi;  // inclusive; lo > hi: no number (only NaN, if nan)
  bool nan;
};
// The index box of one (q tile, kv tile), or of a whole call.
struct IvBox {
  IvI b, h, q, kv;
  int seqlen_q, seqlen_k;
};

FJ_HOST_DEVICE double iv_inf() { return 1.0 / 0.0; }
FJ_HOST_DEVICE double iv_dmin(double a, double b) { return a < b ? a : b; }
FJ_HOST_DEVICE double iv_dmax(double a, double b) { return a > b ? a : b; }
FJ_HOST_DEVICE long long iv_lmin(long long a, long long b) { return a < b ? a : b; }
FJ_HOST_DEVICE long long iv_lmax(long long a, long long b) { return a > b ? a : b; }

// --- constructors ---------------------------------------------------------------
FJ_HOST_DEVICE IvB iv_b(bool v) { return IvB{!v, v}; }
FJ_HOST_DEVICE IvB iv_b_any() { return IvB{true, true}; }
FJ_HOST_DEVICE IvI iv_i(long long v) { return IvI{v, v}; }
FJ_HOST_DEVICE IvI iv_i_any() { return IvI{-2147483647LL - 1, 2147483647LL}; }
FJ_HOST_DEVICE IvF iv_f(float v) { return v != v ? IvF{1.0, 0.0, true} : IvF{(double)v, (double)v, false}; }
FJ_HOST_DEVICE IvF iv_f_any() { return IvF{-iv_inf(), iv_inf(), true}; }

// An exact int range, or the whole range when it leaves 32 bits (the result may wrap).
FJ_HOST_DEVICE IvI iv_wrap(long long lo, long long hi) {
  if (lo < -2147483647LL - 1 || hi > 2147483647LL) return iv_i_any();
  return IvI{lo, hi};
}
// A float range widened past rounding: relative 2^-20 (float rounds at 2^-24, expf and
// friends are within a few ulps) plus the smallest normal float. The bounds are computed in
// double, where a float result may already have overflowed: beyond the largest float, a
// bound becomes the infinity that float arithmetic rounds to (hi), or the largest float (lo).
FJ_HOST_DEVICE IvF iv_widen(double lo, double hi, bool nan) {
  if (lo > hi) return IvF{lo, hi, nan};
  const double e = 9.5367431640625e-07;  // 2^-20
  const double fmax = 3.4028234663852886e+38;  // FLT_MAX
  if (lo > -iv_inf() && lo < iv_inf()) lo = lo - (lo < 0 ? -lo : lo) * e - 1.1754943508222875e-38;
  if (hi > -iv_inf() && hi < iv_inf()) hi = hi + (hi < 0 ? -hi : hi) * e + 1.1754943508222875e-38;
  if (hi > fmax) hi = iv_inf();
  if (lo < -fmax) lo = -iv_inf();
  if (lo > fmax) lo = fmax;
  if (hi < -fmax) hi = -fmax;
  return IvF{lo, hi, nan};
}
FJ_HOST_DEVICE bool iv_has_num(const IvF& a) { return a.lo <= a.hi; }

// --- conversions ----------------------------------------------------------------
FJ_HOST_DEVICE IvF iv_i2f(const IvI& a) { return iv_widen((double)a.lo, (double)a.hi, false); }
FJ_HOST_DEVICE IvF iv_b2f(const IvB& a) { return IvF{a.f ? 0.0 : 1.0, a.t ? 1.0 : 0.0, false}; }
FJ_HOST_DEVICE IvI iv_b2i(const IvB& a) { return IvI{a.f ? 0 : 1, a.t ? 1 : 0}; }
FJ_HOST_DEVICE long long iv_d2i(double x) {  // fj_f2i on a double bound, monotone
  if (x >= 2147483648.0) return 2147483647LL;
  if (x <= -2147483648.0) return -2147483647LL - 1;
  return (long long)x;
}
FJ_HOST_DEVICE IvI iv_f2i(const IvF& a) {
  long long lo = 2147483647LL, hi = -2147483647LL - 1;
  if (iv_has_num(a)) lo = iv_d2i(a.lo), hi = iv_d2i(a.hi);
  if (a.nan) lo = iv_lmin(lo, 0), hi = iv_lmax(hi, 0);
  return IvI{lo, hi};
}

// --- ints -----------------------------------------------------------------------
FJ_HOST_DEVICE IvI iv_iadd(const IvI& a, const IvI& b) { return iv_wrap(a.lo + b.lo, a.hi + b.hi); }
FJ_HOST_DEVICE IvI iv_isub(const IvI& a, const IvI& b) { return iv_wrap(a.lo - b.hi, a.hi - b.lo); }
FJ_HOST_DEVICE IvI iv_ineg(const IvI& a) { return iv_wrap(-a.hi, -a.lo); }
FJ_HOST_DEVICE IvI iv_imul(const IvI& a, const IvI& b) {
  const long long p1 = a.lo * b.lo, p2 = a.lo * b.hi, p3 = a.hi * b.lo, p4 = a.hi * b.hi;
  return iv_wrap(iv_lmin(iv_lmin(p1, p2), iv_lmin(p3, p4)), iv_lmax(iv_lmax(p1, p2), iv_lmax(p3, p4)));
}
FJ_HOST_DEVICE IvI iv_iabs(const IvI& a) {
  if (a.lo >= 0) return a;
  if (a.hi <= 0) return iv_wrap(-a.hi, -a.lo);
  return iv_wrap(0, iv_lmax(-a.lo, a.hi));
}
FJ_HOST_DEVICE IvI iv_imin(const IvI& a, const IvI& b) { return IvI{iv_lmin(a.lo, b.lo), iv_lmin(a.hi, b.hi)}; }
FJ_HOST_DEVICE IvI iv_imax(const IvI& a, const IvI& b) { return IvI{iv_lmax(a.lo, b.lo), iv_lmax(a.hi, b.hi)}; }
FJ_HOST_DEVICE long long iv_floordiv_exact(long long a, long long b) {
  const long long q = a / b;
  return (a % b != 0 && ((a < 0) != (b < 0))) ? q - 1 : q;
}
// a // b over b's sub-range [blo, bhi] of one sign: extremes at the corners.
FJ_HOST_DEVICE IvI iv_floordiv_signed(const IvI& a, long long blo, long long bhi) {
  const long long c1 = iv_floordiv_exact(a.lo, blo), c2 = iv_floordiv_exact(a.lo, bhi);
  const long long c3 = iv_floordiv_exact(a.hi, blo), c4 = iv_floordiv_exact(a.hi, bhi);
  return iv_wrap(iv_lmin(iv_lmin(c1, c2), iv_lmin(c3, c4)), iv_lmax(iv_lmax(c1, c2), iv_lmax(c3, c4)));
}
FJ_HOST_DEVICE IvI iv_hull(const IvI& a, const IvI& b) { return IvI{iv_lmin(a.lo, b.lo), iv_lmax(a.hi, b.hi)}; }
FJ_HOST_DEVICE IvI iv_ifloordiv(const IvI& a, const IvI& b) {
  bool any = false;
  IvI r{0, 0};
  if (b.lo <= 0 && b.hi >= 0) any = true;  // x // 0 = 0
  if (b.hi >= 1) {
    const IvI p = iv_floordiv_signed(a, iv_lmax(b.lo, 1), b.hi);
    r = any ? iv_hull(r, p) : p;
    any = true;
  }
  if (b.lo <= -1) {
    const IvI n = iv_floordiv_signed(a, b.lo, iv_lmin(b.hi, -1));  // x // -1 = -x may wrap: iv_wrap
    r = any ? iv_hull(r, n) : n;
  }
  return r;
}
FJ_HOST_DEVICE IvI iv_imod(const IvI& a, const IvI& b) {
  // Exact when b is one positive value and a stays inside one period.
  if (b.lo == b.hi && b.lo > 0 && a.lo >= 0 && a.hi < b.lo) return a;
  long long lo = 0, hi = 0;  // x % 0 = 0 and x % -1 = 0
  if (b.hi >= 1) hi = iv_lmax(hi, b.hi - 1);
  if (b.lo <= -2) lo = iv_lmin(lo, b.lo + 1);
  if (b.lo >= 1 && a.lo >= 0) hi = iv_lmin(hi, a.hi);  // 0 <= a % b <= a for a >= 0 < b
  return IvI{lo, hi};
}

// --- floats ---------------------------------------------------------------------
FJ_HOST_DEVICE bool iv_has_inf(const IvF& a) { return a.lo == -iv_inf() || a.hi == iv_inf(); }
FJ_HOST_DEVICE IvF iv_fadd(const IvF& a, const IvF& b) {
  if (!iv_has_num(a) || !iv_has_num(b)) return IvF{1.0, 0.0, true};
  const bool nan = a.nan || b.nan || (a.hi == iv_inf() && b.lo == -iv_inf()) || (a.lo == -iv_inf() && b.hi == iv_inf());
  // inf + -inf is NaN in double too; the numbers on that side are unbounded ([inf, inf] +
  // [-inf, -1] holds inf - 1 = inf).
  double lo = a.lo + b.lo, hi = a.hi + b.hi;
  if (lo != lo) lo = -iv_inf();
  if (hi != hi) hi = iv_inf();
  return iv_widen(lo, hi, nan);
}
FJ_HOST_DEVICE IvF iv_fneg(const IvF& a) { return IvF{-a.hi, -a.lo, a.nan}; }
FJ_HOST_DEVICE IvF iv_fsub(const IvF& a, const IvF& b) { return iv_fadd(a, iv_fneg(b)); }
FJ_HOST_DEVICE IvF iv_fmul(const IvF& a, const IvF& b) {
  if (!iv_has_num(a) || !iv_has_num(b)) return IvF{1.0, 0.0, true};
  if (iv_has_inf(a) || iv_has_inf(b)) return iv_f_any();  // 0 * inf is NaN; keep it simple
  const double p1 = a.lo * b.lo, p2 = a.lo * b.hi, p3 = a.hi * b.lo, p4 = a.hi * b.hi;
  return iv_widen(iv_dmin(iv_dmin(p1, p2), iv_dmin(p3, p4)), iv_dmax(iv_dmax(p1, p2), iv_dmax(p3, p4)), a.nan || b.nan);
}
FJ_HOST_DEVICE IvF iv_fdiv(const IvF& a, const IvF& b) {
  if (!iv_has_num(a) || !iv_has_num(b)) return IvF{1.0, 0.0, true};
  if (iv_has_inf(a) || iv_has_inf(b) || (b.lo <= 0.0 && b.hi >= 0.0)) return iv_f_any();
  const double p1 = a.lo / b.lo, p2 = a.lo / b.hi, p3 = a.hi / b.lo, p4 = a.hi / b.hi;
  return iv_widen(iv_dmin(iv_dmin(p1, p2), iv_dmin(p3, p4)), iv_dmax(iv_dmax(p1, p2), iv_dmax(p3, p4)), a.nan || b.nan);
}
FJ_HOST_DEVICE double iv_floor(double x) {
  if (!(x > -iv_inf() && x < iv_inf())) return x;
  if (x >= 4503599627370496.0 || x <= -4503599627370496.0) return x;  // already an integer
  const long long t = (long long)x;
  return (double)t > x ? (double)(t - 1) : (double)t;
}
FJ_HOST_DEVICE IvF iv_ffloordiv(const IvF& a, const IvF& b) {
  const IvF q = iv_fdiv(a, b);
  if (!iv_has_num(q)) return q;
  return IvF{iv_floor(q.lo), iv_floor(q.hi), q.nan};
}
FJ_HOST_DEVICE IvF iv_fmod(const IvF& a, const IvF& b) {
  // fj_fmod(a, b) = a - floorf(a / b) * b in float arithmetic. Exactly it would have the
  // sign of b and magnitude below |b|; in float, a / b rounds (relative 2^-24), so the
  // floor can be off by one and the product and the difference round again: the result
  // leaves [0, b) by up to about 2^-22 (|a| + |b|). Infinite operands, a divisor range that
  // holds 0 (x % 0 is NaN, x % tiny overflows to -inf) or a / b near overflow: anything.
  if (!iv_has_num(a) || !iv_has_num(b)) return IvF{1.0, 0.0, true};
  if (iv_has_inf(a) || iv_has_inf(b) || (b.lo <= 0.0 && b.hi >= 0.0)) return iv_f_any();
  const double A = iv_dmax(a.hi < 0 ? -a.hi : a.hi, a.lo < 0 ? -a.lo : a.lo);
  const double m = iv_dmax(b.hi < 0 ? -b.hi : b.hi, b.lo < 0 ? -b.lo : b.lo);
  const double bmin = iv_dmin(b.hi < 0 ? -b.hi : b.hi, b.lo < 0 ? -b.lo : b.lo);
  if (A > 1e30 * bmin || A + m > 1e38) return iv_f_any();
  const double slack = (A + m) * 9.5367431640625e-07 + 1.1754943508222875e-38;  // 2^-20 (|a| + |b|)
  const bool nan = a.nan || b.nan;
  return iv_widen(b.lo > 0 ? -slack : -m - slack, b.hi < 0 ? slack : m + slack, nan);
}
FJ_HOST_DEVICE IvF iv_fabs(const IvF& a) {
  if (!iv_has_num(a)) return a;
  if (a.lo >= 0) return a;
  if (a.hi <= 0) return IvF{-a.hi, -a.lo, a.nan};
  return IvF{0.0, iv_dmax(-a.lo, a.hi), a.nan};
}
FJ_HOST_DEVICE IvF iv_fmin(const IvF& a, const IvF& b) {
  if (!iv_has_num(a) || !iv_has_num(b)) return IvF{1.0, 0.0, true};
  return IvF{iv_dmin(a.lo, b.lo), iv_dmin(a.hi, b.hi), a.nan || b.nan};
}
FJ_HOST_DEVICE IvF iv_fmax(const IvF& a, const IvF& b) {
  if (!iv_has_num(a) || !iv_has_num(b)) return IvF{1.0, 0.0, true};
  return IvF{iv_dmax(a.lo, b.lo), iv_dmax(a.hi, b.hi), a.nan || b.nan};
}
FJ_HOST_DEVICE IvF iv_hull(const IvF& a, const IvF& b) {
  if (!iv_has_num(a)) return IvF{b.lo, b.hi, a.nan || b.nan};
  if (!iv_has_num(b)) return IvF{a.lo, a.hi, a.nan || b.nan};
  return IvF{iv_dmin(a.lo, b.lo), iv_dmax(a.hi, b.hi), a.nan || b.nan};
}
// Monotone functions: f(lo) .. f(hi), widened (float math is within a few ulps).
FJ_HOST_DEVICE IvF iv_fexp(const IvF& a) {
  if (!iv_has_num(a)) return a;
  IvF r = iv_widen((double)expf((float)a.lo), (double)expf((float)a.hi), a.nan);
  if (r.lo < 0) r.lo = 0;
  return r;
}
FJ_HOST_DEVICE IvF iv_ftanh(const IvF& a) {
  if (!iv_has_num(a)) return a;
  IvF r = iv_widen((double)tanhf((float)a.lo), (double)tanhf((float)a.hi), a.nan);
  r.lo = iv_dmax(r.lo, -1.0), r.hi = iv_dmin(r.hi, 1.0);
  return r;
}
FJ_HOST_DEVICE IvF iv_fsigmoid(const IvF& a) {
  if (!iv_has_num(a)) return a;
  IvF r = iv_widen((double)fj_sigmoid((float)a.lo), (double)fj_sigmoid((float)a.hi), a.nan);
  r.lo = iv_dmax(r.lo, 0.0), r.hi = iv_dmin(r.hi, 1.0);
  return r;
}
// log and sqrt are NaN below 0.
FJ_HOST_DEVICE IvF iv_flog(const IvF& a) {
  if (!iv_has_num(a) || a.hi < 0) return IvF{1.0, 0.0, true};
  const bool nan = a.nan || a.lo < 0;
  const double lo = a.lo <= 0 ? -iv_inf() : (double)logf((float)a.lo);
  return iv_widen(lo, (double)logf((float)a.hi), nan);
}
FJ_HOST_DEVICE IvF iv_fsqrt(const IvF& a) {
  if (!iv_has_num(a) || a.hi < 0) return IvF{1.0, 0.0, true};
  const bool nan = a.nan || a.lo < 0;
  IvF r = iv_widen(a.lo <= 0 ? 0.0 : (double)sqrtf((float)a.lo), (double)sqrtf((float)a.hi), nan);
  if (r.lo < 0) r.lo = 0;
  return r;
}

// --- comparisons ------------------------------------------------------------------
FJ_HOST_DEVICE IvB iv_ilt(const IvI& a, const IvI& b) { return IvB{a.hi >= b.lo, a.lo < b.hi}; }
FJ_HOST_DEVICE IvB iv_ile(const IvI& a, const IvI& b) { return IvB{a.hi > b.lo, a.lo <= b.hi}; }
FJ_HOST_DEVICE IvB iv_ieq(const IvI& a, const IvI& b) {
  const bool may_t = !(a.hi < b.lo || b.hi < a.lo);
  const bool must_t = a.lo == a.hi && b.lo == b.hi && a.lo == b.lo;
  return IvB{!must_t, may_t};
}
FJ_HOST_DEVICE IvB iv_not(const IvB& a) { return IvB{a.t, a.f}; }
FJ_HOST_DEVICE IvB iv_ine(const IvI& a, const IvI& b) { return iv_not(iv_ieq(a, b)); }
FJ_HOST_DEVICE IvB iv_igt(const IvI& a, const IvI& b) { return iv_ilt(b, a); }
FJ_HOST_DEVICE IvB iv_ige(const IvI& a, const IvI& b) { return iv_ile(b, a); }
// Comparisons with NaN are false (!= is true).
FJ_HOST_DEVICE IvB iv_flt(const IvF& a, const IvF& b) {
  const bool num = iv_has_num(a) && iv_has_num(b);
  return IvB{a.nan || b.nan || !num || a.hi >= b.lo, num && a.lo < b.hi};
}
FJ_HOST_DEVICE IvB iv_fle(const IvF& a, const IvF& b) {
  const bool num = iv_has_num(a) && iv_has_num(b);
  return IvB{a.nan || b.nan || !num || a.hi > b.lo, num && a.lo <= b.hi};
}
FJ_HOST_DEVICE IvB iv_feq(const IvF& a, const IvF& b) {
  const bool num = iv_has_num(a) && iv_has_num(b);
  const bool may_t = num && !(a.hi < b.lo || b.hi < a.lo);
  const bool must_t = num && !a.nan && !b.nan && a.lo == a.hi && b.lo == b.hi && a.lo == b.lo;
  return IvB{!must_t, may_t};
}
FJ_HOST_DEVICE IvB iv_fne(const IvF& a, const IvF& b) { return iv_not(iv_feq(a, b)); }
FJ_HOST_DEVICE IvB iv_fgt(const IvF& a, const IvF& b) { return iv_flt(b, a); }
FJ_HOST_DEVICE IvB iv_fge(const IvF& a, const IvF& b) { return iv_fle(b, a); }

// --- bools ----------------------------------------------------------------------
FJ_HOST_DEVICE IvB iv_and(const IvB& a, const IvB& b) { return IvB{a.f || b.f, a.t && b.t}; }
FJ_HOST_DEVICE IvB iv_or(const IvB& a, const IvB& b) { return IvB{a.f && b.f, a.t || b.t}; }
// The same, computing b() only when a does not decide: a never true decides a & b, a always
// true decides a | b (emit_cuda.cpp uses these when b scans a captured tensor).
template <class F>
FJ_HOST_DEVICE IvB iv_and_then(const IvB& a, F&& b) {
  return !a.t && a.f ? IvB{true, false} : iv_and(a, b());
}
template <class F>
FJ_HOST_DEVICE IvB iv_or_else(const IvB& a, F&& b) {
  return !a.f && a.t ? IvB{false, true} : iv_or(a, b());
}
FJ_HOST_DEVICE IvB iv_xor(const IvB& a, const IvB& b) {
  return IvB{(a.t && b.t) || (a.f && b.f), (a.t && b.f) || (a.f && b.t)};
}
FJ_HOST_DEVICE IvB iv_beq(const IvB& a, const IvB& b) { return iv_not(iv_xor(a, b)); }
FJ_HOST_DEVICE IvB iv_bne(const IvB& a, const IvB& b) { return iv_xor(a, b); }
FJ_HOST_DEVICE IvB iv_hull(const IvB& a, const IvB& b) { return IvB{a.f || b.f, a.t || b.t}; }

// where(c, x, y): one branch when c is decided, else both.
template <class Iv>
FJ_HOST_DEVICE Iv iv_where(const IvB& c, const Iv& x, const Iv& y) {
  if (!c.f) return x;
  if (!c.t) return y;
  return iv_hull(x, y);
}

// --- reads of captured tensors --------------------------------------------------
// The values a captured tensor holds over an index box are scanned when the box has at most
// kIvScanLimit elements (a tile's rows or keys: doc[q_idx] over a q tile), else unknown.
// So a document mask classifies tiles inside one document as full and tiles between two
// documents as empty. The host proved every read's index range in bounds for the whole
// call (a tile's box lies inside it); the clamp keeps even a wrong proof from reading
// outside the tensor.
constexpr long long kIvScanLimit = 256;

// Calls run(offset, count, stride) for each run of the box along its last dimension: the
// elements offset + i * stride, i < count. False (nothing called) when the box is too large
// or, clamped into the tensor, empty.
template <class Run>
FJ_HOST_DEVICE bool iv_for_box_runs(const CaptureArg& c, int rank, IvI i0, IvI i1, IvI i2, IvI i3, Run&& run) {
  IvI ix[4] = {i0, i1, i2, i3};
  long long n = 1;
  for (int d = 0; d < 4; ++d) {
    if (d >= rank) {
      ix[d] = IvI{0, 0};
      continue;
    }
    ix[d].lo = ix[d].lo < 0 ? 0 : ix[d].lo;
    ix[d].hi = ix[d].hi > c.sizes[d] - 1 ? c.sizes[d] - 1 : ix[d].hi;
    if (ix[d].hi < ix[d].lo) return false;
    n *= ix[d].hi - ix[d].lo + 1;
    if (n > kIvScanLimit) return false;
  }
  const int last = rank - 1;
  IvI outer[3];
  long long outer_stride[3];
  for (int d = 0, k = 0; d < 4; ++d)
    if (d != last) outer[k] = ix[d], outer_stride[k++] = d < rank ? c.strides[d] : 0;
  const int count = (int)(ix[last].hi - ix[last].lo + 1);
  for (long long a = outer[0].lo; a <= outer[0].hi; ++a)
    for (long long b = outer[1].lo; b <= outer[1].hi; ++b)
      for (long long e = outer[2].lo; e <= outer[2].hi; ++e)
        run(a * outer_stride[0] + b * outer_stride[1] + e * outer_stride[2] + ix[last].lo * c.strides[last], count,
            c.strides[last]);
  return true;
}

// A run visited 16 elements per step, their loads independent of each other, so a scan of
// 256 elements costs about 16 memory latencies, not 256.
template <class F>
FJ_HOST_DEVICE void iv_scan_run(long long off, int from, int count, long long stride, F&& f) {
  constexpr int kUnroll = 16;
  for (int g0 = from; g0 < count; g0 += kUnroll) {
#ifdef __CUDA_ARCH__
#pragma unroll
#endif
    for (int u = 0; u < kUnroll; ++u)
      if (g0 + u < count) f(off + (long long)(g0 + u) * stride);
  }
}

// Calls f(element offset) for each element of the box; false as iv_for_box_runs.
template <class F>
FJ_HOST_DEVICE bool iv_for_box(const CaptureArg& c, int rank, IvI i0, IvI i1, IvI i2, IvI i3, F&& f) {
  return iv_for_box_runs(c, rank, i0, i1, i2, i3,
                         [&](long long off, int count, long long stride) { iv_scan_run(off, 0, count, stride, f); });
}

// One range function per read kind, matching fj_read_* (capture_arg.cuh).
template <class Load>
FJ_HOST_DEVICE IvI iv_read_int(const CaptureArg& c, int rank, IvI i0, IvI i1, IvI i2, IvI i3, Load load) {
  long long lo = 2147483647LL, hi = -2147483647LL - 1;
  const bool scanned = iv_for_box(c, rank, i0, i1, i2, i3, [&](long long off) {
    const long long v = load(off);
    lo = v < lo ? v : lo;
    hi = v > hi ? v : hi;
  });
  return scanned ? IvI{lo, hi} : iv_i_any();
}
// The range of the floats seen by a scan, and whether one was NaN.
struct IvFloatHull {
  double lo = iv_inf(), hi = -iv_inf();
  bool nan = false;
  FJ_HOST_DEVICE void take(float v) {
    if (v != v) nan = true;
    else lo = iv_dmin(lo, (double)v), hi = iv_dmax(hi, (double)v);
  }
};
template <class Load>
FJ_HOST_DEVICE IvF iv_read_float(const CaptureArg& c, int rank, IvI i0, IvI i1, IvI i2, IvI i3, Load load) {
  IvFloatHull r;
  const bool scanned = iv_for_box(c, rank, i0, i1, i2, i3, [&](long long off) { r.take(load(off)); });
  return scanned ? IvF{r.lo, r.hi, r.nan} : iv_f_any();
}
// int32 (document ids, the block mask's cells) reads contiguous runs 16 bytes at a time on
// the device: a thread classifying a tile of 128 keys issues 32 loads, not 128.
struct alignas(16) IvInt4 {
  int x, y, z, w;
};
// The smallest and largest int seen by a scan.
struct IvIntHull {
  int lo = 2147483647, hi = -2147483647 - 1;
  FJ_HOST_DEVICE void take(int v) {
    lo = v < lo ? v : lo;
    hi = v > hi ? v : hi;
  }
};
FJ_HOST_DEVICE IvI iv_read_i32(const CaptureArg& c, int rank, IvI i0, IvI i1 = IvI{0, 0}, IvI i2 = IvI{0, 0},
                               IvI i3 = IvI{0, 0}) {
  const int* const p = static_cast<const int*>(c.data);
  IvIntHull r;
  const auto take = [&](int v) { r.take(v); };
  const bool scanned = iv_for_box_runs(c, rank, i0, i1, i2, i3, [&](long long off, int count, long long stride) {
    int g = 0;
#ifdef __CUDA_ARCH__
    if (stride == 1) {
      for (; g < count && (reinterpret_cast<unsigned long long>(p + off + g) & 15u) != 0; ++g) take(p[off + g]);
#pragma unroll 4
      for (; g + 4 <= count; g += 4) {
        const IvInt4 v = *reinterpret_cast<const IvInt4*>(p + off + g);
        take(v.x), take(v.y), take(v.z), take(v.w);
      }
    }
#endif
    iv_scan_run(off, g, count, stride, [&](long long o) { take(p[o]); });
  });
  return scanned ? IvI{r.lo, r.hi} : iv_i_any();
}
FJ_HOST_DEVICE IvI iv_read_i64(const CaptureArg& c, int rank, IvI i0, IvI i1 = IvI{0, 0}, IvI i2 = IvI{0, 0},
                               IvI i3 = IvI{0, 0}) {
  return iv_read_int(c, rank, i0, i1, i2, i3,
                     [&](long long off) { return (long long)(int)static_cast<const long long*>(c.data)[off]; });
}
FJ_HOST_DEVICE IvF iv_read_f32(const CaptureArg& c, int rank, IvI i0, IvI i1 = IvI{0, 0}, IvI i2 = IvI{0, 0},
                               IvI i3 = IvI{0, 0}) {
  return iv_read_float(c, rank, i0, i1, i2, i3, [&](long long off) { return static_cast<const float*>(c.data)[off]; });
}
FJ_HOST_DEVICE IvF iv_read_f16(const CaptureArg& c, int rank, IvI i0, IvI i1 = IvI{0, 0}, IvI i2 = IvI{0, 0},
                               IvI i3 = IvI{0, 0}) {
  return iv_read_float(c, rank, i0, i1, i2, i3, [&](long long off) {
    return fj_f16_bits_to_float(static_cast<const unsigned short*>(c.data)[off]);
  });
}
FJ_HOST_DEVICE IvF iv_read_bf16(const CaptureArg& c, int rank, IvI i0, IvI i1 = IvI{0, 0}, IvI i2 = IvI{0, 0},
                                IvI i3 = IvI{0, 0}) {
  return iv_read_float(c, rank, i0, i1, i2, i3, [&](long long off) {
    return fj_bf16_bits_to_float(static_cast<const unsigned short*>(c.data)[off]);
  });
}
FJ_HOST_DEVICE IvB iv_read_bool(const CaptureArg& c, int rank, IvI i0, IvI i1 = IvI{0, 0}, IvI i2 = IvI{0, 0},
                                IvI i3 = IvI{0, 0}) {
  bool f = false, t = false;
  const bool scanned = iv_for_box(c, rank, i0, i1, i2, i3, [&](long long off) {
    (static_cast<const unsigned char*>(c.data)[off] != 0 ? t : f) = true;
  });
  return scanned ? IvB{f, t} : iv_b_any();
}

#ifdef __CUDA_ARCH__
// --- warp-cooperative reads, for ranges every tile of a CTA shares ------------------------
// The part of a mask that depends only on the query row (doc[q_idx]) has the same range for
// every KV tile of a CTA. A warp scans it once before the tiles are classified: each lane
// takes every 32nd element (int32: every 32nd group of four, 16-byte loads) and the lanes
// combine their ranges, so a 128-row scan costs about one memory latency rather than the
// several a single thread's scan waits for. All 32 lanes call these together, with the
// same box (uniform over the CTA), and get the same result.
template <class F>
__device__ __forceinline__ bool iv_for_box_lanes(const CaptureArg& c, int rank, int lane, IvI i0, IvI i1, IvI i2, IvI i3,
                                                 F&& f) {
  return iv_for_box_runs(c, rank, i0, i1, i2, i3, [&](long long off, int count, long long stride) {
    for (int g = lane; g < count; g += 32) f(off + (long long)g * stride);
  });
}
__device__ __forceinline__ IvI iv_warp_hull(const IvIntHull& r, bool scanned) {
  const int lo = __reduce_min_sync(0xffffffffu, r.lo), hi = __reduce_max_sync(0xffffffffu, r.hi);
  return scanned ? IvI{lo, hi} : iv_i_any();
}
__device__ __forceinline__ IvF iv_warp_hull(IvFloatHull r, bool scanned) {
#pragma unroll
  for (int m = 16; m >= 1; m /= 2) {
    r.lo = iv_dmin(r.lo, __shfl_xor_sync(0xffffffffu, r.lo, m));
    r.hi = iv_dmax(r.hi, __shfl_xor_sync(0xffffffffu, r.hi, m));
  }
  const bool nan = __any_sync(0xffffffffu, r.nan);
  return scanned ? IvF{r.lo, r.hi, nan} : iv_f_any();
}
__device__ __forceinline__ IvI iv_read_i32_warp(const CaptureArg& c, int rank, int lane, IvI i0, IvI i1 = IvI{0, 0},
                                                IvI i2 = IvI{0, 0}, IvI i3 = IvI{0, 0}) {
  const int* const p = static_cast<const int*>(c.data);
  IvIntHull r;
  const auto take = [&](int v) { r.take(v); };
  const bool scanned = iv_for_box_runs(c, rank, i0, i1, i2, i3, [&](long long off, int count, long long stride) {
    if (stride == 1) {
      // Up to 3 elements before the first 16-byte boundary, then groups of four, then the rest.
      const int head = (int)(((16u - (reinterpret_cast<unsigned long long>(p + off) & 15u)) & 15u) / 4u);
      const int lead = head < count ? head : count;
      if (lane < lead) take(p[off + lane]);
      const int groups = (count - lead) / 4;
      for (int k = lane; k < groups; k += 32) {
        const IvInt4 v = *reinterpret_cast<const IvInt4*>(p + off + lead + 4 * k);
        take(v.x), take(v.y), take(v.z), take(v.w);
      }
      for (int g = lead + 4 * groups + lane; g < count; g += 32) take(p[off + g]);
    } else {
      for (int g = lane; g < count; g += 32) take(p[off + (long long)g * stride]);
    }
  });
  return iv_warp_hull(r, scanned);
}
__device__ __forceinline__ IvI iv_read_i64_warp(const CaptureArg& c, int rank, int lane, IvI i0, IvI i1 = IvI{0, 0},
                                                IvI i2 = IvI{0, 0}, IvI i3 = IvI{0, 0}) {
  IvIntHull r;
  const bool scanned = iv_for_box_lanes(c, rank, lane, i0, i1, i2, i3,
                                        [&](long long off) { r.take((int)static_cast<const long long*>(c.data)[off]); });
  return iv_warp_hull(r, scanned);
}
template <class Load>
__device__ __forceinline__ IvF iv_read_float_warp(const CaptureArg& c, int rank, int lane, IvI i0, IvI i1, IvI i2, IvI i3,
                                                  Load load) {
  IvFloatHull r;
  const bool scanned = iv_for_box_lanes(c, rank, lane, i0, i1, i2, i3, [&](long long off) { r.take(load(off)); });
  return iv_warp_hull(r, scanned);
}
__device__ __forceinline__ IvF iv_read_f32_warp(const CaptureArg& c, int rank, int lane, IvI i0, IvI i1 = IvI{0, 0},
                                                IvI i2 = IvI{0, 0}, IvI i3 = IvI{0, 0}) {
  return iv_read_float_warp(c, rank, lane, i0, i1, i2, i3, [&](long long off) { return static_cast<const float*>(c.data)[off]; });
}
__device__ __forceinline__ IvF iv_read_f16_warp(const CaptureArg& c, int rank, int lane, IvI i0, IvI i1 = IvI{0, 0},
                                                IvI i2 = IvI{0, 0}, IvI i3 = IvI{0, 0}) {
  return iv_read_float_warp(c, rank, lane, i0, i1, i2, i3, [&](long long off) {
    return fj_f16_bits_to_float(static_cast<const unsigned short*>(c.data)[off]);
  });
}
__device__ __forceinline__ IvF iv_read_bf16_warp(const CaptureArg& c, int rank, int lane, IvI i0, IvI i1 = IvI{0, 0},
                                                 IvI i2 = IvI{0, 0}, IvI i3 = IvI{0, 0}) {
  return iv_read_float_warp(c, rank, lane, i0, i1, i2, i3, [&](long long off) {
    return fj_bf16_bits_to_float(static_cast<const unsigned short*>(c.data)[off]);
  });
}
__device__ __forceinline__ IvB iv_read_bool_warp(const CaptureArg& c, int rank, int lane, IvI i0, IvI i1 = IvI{0, 0},
                                                 IvI i2 = IvI{0, 0}, IvI i3 = IvI{0, 0}) {
  bool f = false, t = false;
  const bool scanned = iv_for_box_lanes(c, rank, lane, i0, i1, i2, i3, [&](long long off) {
    (static_cast<const unsigned char*>(c.data)[off] != 0 ? t : f) = true;
  });
  f = __any_sync(0xffffffffu, f), t = __any_sync(0xffffffffu, t);
  return scanned ? IvB{f, t} : iv_b_any();
}
#endif

// Tile classes from a mask's range.
enum TileClass { kTileEmpty = 0, kTilePartial = 1, kTileFull = 2 };
FJ_HOST_DEVICE int iv_tile_class(const IvB& mask) { return !mask.t ? kTileEmpty : !mask.f ? kTileFull : kTilePartial; }

}  // namespace flashjit
