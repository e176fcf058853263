// The deterministic mode's dQ kernel (kind bwd_dq) on mma.sync: q-stationary, the forward's
// loop shape. A block owns BM = 16 · WARPS query rows of one (batch, query head); Q, dO and
// the rows' LSE and D stay in shared memory, dQ in fp32 registers, while the block loops over
// the key tiles its rows see (K and V double-buffered). Per key tile, warp w (rows 16w..):
//   S  = Q·Kᵀ,  dP = dO·Vᵀ      (mma_ABt)
//   P, dS                       bwd_p_ds_rows (bwd_block.cuh)
//   dQ += dS·K                  (mma_AB_rs: dS from registers, K read as (keys × D))
// and at the end dQ · scale is stored in the dtype. Each dQ element is summed by one thread
// in one order, so the result is bit-identical run to run; S and dP are computed a second
// time (bwd_dkdv computed them for dK, dV), which is the mode's cost.
#pragma once

#include "flashjit/bwd_block.cuh"
#include "flashjit/warp_mma_sm80.cuh"

namespace flashjit {

template <class Elem_, int D_, int DV_, int BM_, int BN_, int WARPS_, int STAGES_>
struct BwdDqTraits {
  using Elem = Elem_;
  static constexpr int D = D_, DV = DV_, BM = BM_, BN = BN_;
  static constexpr int WARPS = WARPS_, THREADS = 32 * WARPS_, STAGES = STAGES_;
  static_assert(BM == 16 * WARPS, "block_m must be 16 rows per warp");
  static_assert(BN % 16 == 0 && D % 16 == 0 && DV % 16 == 0, "block_n and head dims must be multiples of 16");
  static_assert(STAGES == 1 || STAGES == 2, "stages must be 1 or 2");
  static constexpr int PITCH_QK = D + 8, PITCH_V = DV + 8;  // padded rows (FwdTraits)
  static constexpr int Q_BYTES = BM * PITCH_QK * 2, DO_BYTES = BM * PITCH_V * 2;
  static constexpr int ROWSTAT_BYTES = 2 * BM * 4;  // LSE, then D
  static constexpr int K_STAGE_BYTES = BN * PITCH_QK * 2, V_STAGE_BYTES = BN * PITCH_V * 2;
  static constexpr int SMEM_BYTES = Q_BYTES + DO_BYTES + ROWSTAT_BYTES + STAGES * (K_STAGE_BYTES + V_STAGE_BYTES);
};

// Grid (ceil(seqlen_q / BM), heads_q, batch), T::THREADS threads, T::SMEM_BYTES of dynamic
// shared memory (+ kTileListBytes when V::kListed). Reads bp.dq (the output) and its strides.
template <class T, class V>
__device__ __forceinline__ void bwd_dq(const BwdParams& bp, unsigned char* smem) {
  using E = typename T::Elem;
  const FwdParams& p = bp.fwd;
  const int q0 = blockIdx.x * T::BM, hq = blockIdx.y, batch = blockIdx.z;
  const int head_kv = hq / p.gqa_group;
  const int tid = threadIdx.x, warp = tid / 32, lane = tid % 32;
  const u32 q_s = smem_addr(smem), do_s = q_s + T::Q_BYTES, rowstat = do_s + T::DO_BYTES;
  const u32 k_s = rowstat + T::ROWSTAT_BYTES, v_s = k_s + T::STAGES * T::K_STAGE_BYTES;
  const float* rowstat_f = reinterpret_cast<const float*>(smem + T::Q_BYTES + T::DO_BYTES);
  int* list = reinterpret_cast<int*>(smem + T::SMEM_BYTES);

  // Q, dO, LSE, D of the block's rows: waited for with the first key tile.
  BwdBlock blk{};
  blk.batch = batch, blk.tid = tid;
  bwd_load_q_tile<T::BM, T::D, T::DV, T::THREADS, PaddedRows<T::D>, PaddedRows<T::DV>>(bp, q_s, do_s, rowstat, blk, hq,
                                                                                      blockIdx.x);
  cp_async_commit();

  const Band band = V::band(p);
  const BandI32 band32 = band_i32(band);
  const int q_rows = p.seqlen_q - q0 < T::BM ? p.seqlen_q - q0 : T::BM;
  const u16* k_head = static_cast<const u16*>(p.k) + batch * p.k_batch_stride + head_kv * p.k_head_stride;
  const u16* v_head = static_cast<const u16*>(p.v) + batch * p.v_batch_stride + head_kv * p.v_head_stride;
  const auto load_kv = [&](int t, int slot) {
    const int k0 = t * T::BN, rows = p.seqlen_k - k0 < T::BN ? p.seqlen_k - k0 : T::BN;
    load_tile_async<T::BN, T::D, T::THREADS>(k_s + slot * T::K_STAGE_BYTES, k_head + (long long)k0 * p.k_row_stride,
                                             p.k_row_stride, rows, tid);
    load_tile_async<T::BN, T::DV, T::THREADS>(v_s + slot * T::V_STAGE_BYTES, v_head + (long long)k0 * p.v_row_stride,
                                              p.v_row_stride, rows, tid);
  };

  float dq[1][T::D / 8][4];
  zero_acc(dq);
  const auto compute = [&](int t, bool full, int slot) {
    // The thread's two rows' LSE and D, read per key tile (four shared loads) rather than
    // kept live across the loop.
    const int row = 16 * warp + lane / 4;
    const float lse[2] = {rowstat_f[row], rowstat_f[row + 8]};
    const float delta[2] = {rowstat_f[T::BM + row], rowstat_f[T::BM + row + 8]};
    constexpr int NK = T::BN / 8;
    float s[1][NK][4], dp[1][NK][4];
    zero_acc(s);
    zero_acc(dp);
    const u32 kt = k_s + slot * T::K_STAGE_BYTES, vt = v_s + slot * T::V_STAGE_BYTES;
    mma_ABt<E, 1, NK, T::D, T::PITCH_QK, T::PITCH_QK>(s, q_s + 16 * warp * T::PITCH_QK * 2, kt, lane);
    mma_ABt<E, 1, NK, T::DV, T::PITCH_V, T::PITCH_V>(dp, do_s + 16 * warp * T::PITCH_V * 2, vt, lane);
    bwd_p_ds_rows<V, NK>(s[0], dp[0], bp, band32, batch, hq, q0 + 16 * warp, t * T::BN, full, lse, delta, lane);
    u32 a[NK / 2][1][4];
    pack_acc_a<E, 1, NK>(a, dp);
    mma_AB_rs<E, 1, T::D / 8, T::BN, T::PITCH_QK>(dq, a, kt, lane);
  };

  if constexpr (V::kListed) {
    const int n_k_tiles = (p.seqlen_k + T::BN - 1) / T::BN;
    for (int chunk = 0; chunk < n_k_tiles; chunk += kTileListCap) {
      const int last = chunk + kTileListCap < n_k_tiles ? chunk + kTileListCap : n_k_tiles;
      const auto classify = [&](int t) {
        const int k0 = t * T::BN;
        return V::classify(p, batch, hq, q0, q_rows, k0, p.seqlen_k - k0 < T::BN ? p.seqlen_k - k0 : T::BN);
      };
      const ListTiles tiles = build_tile_list<T::THREADS>(list, chunk, last, classify, tid);
      bwd_pipelined_tile_loop<T::STAGES, /*kAsyncProxy=*/false>(tiles, load_kv, compute);
    }
  } else {
    const BandTiles tiles{band_kv_tiles(band, q0, T::BM, p.seqlen_q, p.seqlen_k, T::BN)};
    bwd_pipelined_tile_loop<T::STAGES, /*kAsyncProxy=*/false>(tiles, load_kv, compute);
  }
  cp_async_wait<0>();  // rows that see no key still wait for their Q, dO copies

  const int rows = q_rows - 16 * warp;
  u16* out = static_cast<u16*>(bp.dq) + batch * bp.dq_batch_stride + hq * bp.dq_head_stride +
             (long long)(q0 + 16 * warp) * bp.dq_row_stride;
  store_acc_rows<E, T::D / 8>(dq, out, bp.dq_row_stride, rows, V::kScale, lane);
}

}  // namespace flashjit
