// Band masks and their tile classification, for host (passes, CPU evaluator) and device.
//
// Every mask flashjit has today is a band: key j is visible to query i iff
//     0 <= j < seqlen_k   and   lo <= j - i - offset <= hi
// with offset = seqlen_k - seqlen_q (bottom-right alignment) or 0 (top-left), and lo / hi
// possibly unbounded. For a q tile (rows qa..qb) and a kv tile (keys ka..kb) this gives
// FlashAttention-2's causal trick for every band:
//   empty   - no (i, j) visible: the tile is skipped,
//   full    - every (i, j) visible: no mask arithmetic,
//   partial - the predicate is applied elementwise.
// Only rows < seqlen_q count: padding rows of the last q tile never reach memory.
#pragma once

#include "flashjit/host_device.cuh"

namespace flashjit {

struct Band {
  bool has_lo;
  bool has_hi;
  long long lo;
  long long hi;
  long long offset;  // seqlen_k - seqlen_q, or 0
};

// [begin, end) of kv tiles, plus the sub-range [full_begin, full_end) that needs no mask.
struct KvTileRange {
  int begin;
  int end;
  int full_begin;
  int full_end;
};

FJ_HOST_DEVICE long long fj_floor_div(long long a, long long b) {
  long long q = a / b;
  return (a % b != 0 && ((a < 0) != (b < 0))) ? q - 1 : q;
}
FJ_HOST_DEVICE long long fj_max(long long a, long long b) { return a > b ? a : b; }
FJ_HOST_DEVICE long long fj_min(long long a, long long b) { return a < b ? a : b; }

FJ_HOST_DEVICE bool band_visible(const Band& m, long long i, long long j, long long seqlen_k) {
  if (j < 0 || j >= seqlen_k) return false;
  const long long d = j - i - m.offset;
  return (!m.has_lo || d >= m.lo) && (!m.has_hi || d <= m.hi);
}

// The band as bounds on j - i in 32 bits, for per-element tests inside kernels (the
// backward's): lo, hi are lo + offset and hi + offset clamped to int, which changes no
// comparison while 0 <= i, j < 2^31 (then j - i fits in an int).
struct BandI32 {
  int lo;
  int hi;
};
FJ_HOST_DEVICE BandI32 band_i32(const Band& m) {
  const long long imin = -2147483647LL - 1, imax = 2147483647LL;
  const long long lo = m.has_lo ? fj_max(imin, fj_min(imax, m.lo + m.offset)) : imin;
  const long long hi = m.has_hi ? fj_max(imin, fj_min(imax, m.hi + m.offset)) : imax;
  return BandI32{(int)lo, (int)hi};
}
// band_visible for 0 <= i and 0 <= j.
FJ_HOST_DEVICE bool band_visible_i32(const BandI32& b, int i, int j, int seqlen_k) {
  return j < seqlen_k && j - i >= b.lo && j - i <= b.hi;
}

// Tiles of `block_n` keys for the q tile starting at row q0 with `block_m` rows.
FJ_HOST_DEVICE KvTileRange band_kv_tiles(const Band& m, long long q0, int block_m, long long seqlen_q,
                                         long long seqlen_k, int block_n) {
  KvTileRange r{0, 0, 0, 0};
  const long long qa = q0;
  const long long qb = fj_min(q0 + block_m, seqlen_q) - 1;  // last real row
  if (qb < qa || seqlen_k <= 0) return r;
  // Union of visible keys over rows qa..qb is one interval [jlo, jhi].
  long long jlo = 0, jhi = seqlen_k - 1;
  if (m.has_lo) jlo = fj_max(jlo, qa + m.offset + m.lo);
  if (m.has_hi) jhi = fj_min(jhi, qb + m.offset + m.hi);
  if (jhi < jlo) return r;
  r.begin = (int)fj_floor_div(jlo, block_n);
  r.end = (int)fj_floor_div(jhi, block_n) + 1;
  // Full tiles: every row sees every key: ka >= qb + off + lo, kb <= qa + off + hi, kb < seqlen_k.
  long long fb = r.begin, fe = r.end;  // candidate [fb, fe)
  if (m.has_lo) fb = fj_max(fb, -fj_floor_div(-(qb + m.offset + m.lo), block_n));  // ceil
  long long kb_max = seqlen_k - 1;
  if (m.has_hi) kb_max = fj_min(kb_max, qa + m.offset + m.hi);
  fe = fj_min(fe, fj_floor_div(kb_max + 1, block_n));  // tiles n with (n+1)*block_n - 1 <= kb_max
  if (fe < fb) fe = fb;
  r.full_begin = (int)fb;
  r.full_end = (int)fe;
  return r;
}

FJ_HOST_DEVICE bool tile_is_full(const KvTileRange& r, int n) {
  return n >= r.full_begin && n < r.full_end;
}

// The transposed view, for the backward's KV-stationary loop (dK, dV of one kv tile summed
// over the q tiles that see it): the q tiles of `block_m` rows for the kv tile starting at
// key k0 with `block_n` keys, as a KvTileRange of q-tile indices. A q tile is full when every
// one of its rows sees every key of the kv tile, and both tiles lie inside the tensors: in
// the backward, padding rows of the last q tile would add to dK and dV, so they must be
// masked like the padding keys of the last kv tile.
FJ_HOST_DEVICE KvTileRange band_q_tiles(const Band& m, long long k0, int block_n, long long seqlen_q,
                                        long long seqlen_k, int block_m) {
  KvTileRange r{0, 0, 0, 0};
  const long long ka = k0;
  const long long kb = fj_min(k0 + block_n, seqlen_k) - 1;  // last real key
  if (kb < ka || seqlen_q <= 0) return r;
  // Query i sees key j iff j - off - hi <= i <= j - off - lo: over keys ka..kb, one interval.
  long long ilo = 0, ihi = seqlen_q - 1;
  if (m.has_hi) ilo = fj_max(ilo, ka - m.offset - m.hi);
  if (m.has_lo) ihi = fj_min(ihi, kb - m.offset - m.lo);
  if (ihi < ilo) return r;
  r.begin = (int)fj_floor_div(ilo, block_m);
  r.end = (int)fj_floor_div(ihi, block_m) + 1;
  r.full_begin = r.full_end = r.begin;
  if (k0 + block_n > seqlen_k) return r;  // padding keys: no q tile is full
  // Full q tile t (rows qa = t * block_m .. qb = qa + block_m - 1, all real): every i, j
  // visible, i.e. qa >= kb - off - hi and qb <= ka - off - lo and qb < seqlen_q.
  long long fb = r.begin, fe = r.end;
  if (m.has_hi) fb = fj_max(fb, -fj_floor_div(-(kb - m.offset - m.hi), block_m));  // ceil
  long long qb_max = seqlen_q - 1;
  if (m.has_lo) qb_max = fj_min(qb_max, ka - m.offset - m.lo);
  fe = fj_min(fe, fj_floor_div(qb_max + 1, block_m));  // tiles t with (t + 1) * block_m - 1 <= qb_max
  if (fe < fb) fe = fb;
  r.full_begin = (int)fb;
  r.full_end = (int)fe;
  return r;
}

}  // namespace flashjit
