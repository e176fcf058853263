// The warp-specialised schedule of the forward pass on sm_90a (tile.pipeline = tma_ws):
// the block's last warpgroup is the producer, the others (64 query rows each) consume.
//
//   producer  one thread issues every copy as a TMA (fwd_tma_params.cuh): Q once, then per
//             copy step t the K tile t and the V tile t - 1 (the consumers' P·V runs one
//             tile behind their Q·Kᵀ), each into its own ring of STAGES slots. It waits for a
//             slot to be empty before reusing it; the copy's bytes complete the slot's "full"
//             barrier. The other producer threads give their registers away and exit.
//   consumers wait for "full", compute, and arrive on "empty" as soon as their wgmmas no
//             longer read the slot: K after S = Q·Kᵀ has landed, V after O += P·V.
// Neither side waits for a block barrier inside the loop, and address arithmetic and copy
// issue leave the consumers' instruction stream entirely (FlashAttention-3's structure).
#pragma once

#include "flashjit/block_context.cuh"
#include "flashjit/fwd_tma_params.cuh"
#include "flashjit/fwd_traits_sm90.cuh"
#include "flashjit/kv_tiles.cuh"
#include "flashjit/mbarrier.cuh"
#include "flashjit/tma.cuh"
#include "flashjit/ws_ring.cuh"

namespace flashjit {

// Block shape of the warp-specialised kernel: the consumers are FwdTraitsSm90's warpgroups
// (warps 0 .. 4·BM/64 - 1, so the math templates index rows by warp as on the plain path),
// plus one producer warpgroup. Registers are moved from the producer to the consumers.
// LISTS: the producer also classifies tiles into lists (WsLists): interval arithmetic needs
// more of its registers.
template <class Elem_, int D_, int DV_, int BM_, int BN_, int STAGES_, bool LISTS = false>
struct FwdTraitsSm90Ws : FwdTraitsSm90<Elem_, D_, DV_, BM_, BN_, BM_ / 16, STAGES_> {
  using Base = FwdTraitsSm90<Elem_, D_, DV_, BM_, BN_, BM_ / 16, STAGES_>;
  static constexpr int CONSUMER_WARPS = BM_ / 16;
  static constexpr int CONSUMER_THREADS = 32 * CONSUMER_WARPS;
  static constexpr int WARPS = CONSUMER_WARPS + 4;
  static constexpr int THREADS = 32 * WARPS;
  static_assert(CONSUMER_WARPS == 4 || CONSUMER_WARPS == 8 || CONSUMER_WARPS == 12, "1 to 3 consumer warpgroups");
  // 65,536 registers per SM for one block: 128·PRODUCER + CONSUMER_THREADS·CONSUMER fits.
  // With one consumer warpgroup the launch already gives every thread the most (no moves).
  static constexpr int PRODUCER_REGS = LISTS ? 56 : 24;
  static constexpr int CONSUMER_REGS = CONSUMER_WARPS == 12 ? (LISTS ? 152 : 160) : (LISTS ? 224 : 240);
  static_assert(128 * PRODUCER_REGS + CONSUMER_THREADS * CONSUMER_REGS <= 65536 || CONSUMER_WARPS == 4,
                "the register file holds one block");
  static constexpr bool MOVE_REGS = CONSUMER_WARPS > 4;
  // Barriers after the tiles: q_full, k_full[S], v_full[S], k_empty[S], v_empty[S], q_empty.
  static constexpr int BARRIER_BYTES = 8 * (2 + 4 * STAGES_);
  static constexpr int SMEM_BYTES =
      Base::Q_BYTES + STAGES_ * (Base::K_STAGE_BYTES + Base::V_STAGE_BYTES) + BARRIER_BYTES + 1024;
};

template <int STAGES>
struct WsBarriers {
  u32 base;
  __device__ __forceinline__ u32 q_full() const { return base; }
  __device__ __forceinline__ u32 k_full(int s) const { return base + 8 * (1 + s); }
  __device__ __forceinline__ u32 v_full(int s) const { return base + 8 * (1 + STAGES + s); }
  __device__ __forceinline__ u32 k_empty(int s) const { return base + 8 * (1 + 2 * STAGES + s); }
  __device__ __forceinline__ u32 v_empty(int s) const { return base + 8 * (1 + 3 * STAGES + s); }
  // A persistent block's consumers release Q when their last Q·Kᵀ of a work item has landed.
  __device__ __forceinline__ u32 q_empty() const { return base + 8 * (1 + 4 * STAGES); }

  // By one thread, before the block barrier that publishes them. "full" completes on the
  // producer's arrival plus the copy's bytes; "empty" on every consumer thread's arrival.
  __device__ __forceinline__ void init(u32 consumer_threads) const {
    mbarrier_init(q_full(), 1);
    for (int s = 0; s < STAGES; ++s) {
      mbarrier_init(k_full(s), 1);
      mbarrier_init(v_full(s), 1);
      mbarrier_init(k_empty(s), consumer_threads);
      mbarrier_init(v_empty(s), consumer_threads);
    }
    mbarrier_init(q_empty(), consumer_threads);
    fence_mbarrier_init();
  }

  // Parity of the n-th use (from 0) of a ring slot: its "full" phase n / STAGES.
  static __device__ __forceinline__ u32 parity(int n) { return WsRing<STAGES>::parity(n); }
};

// Mask expressions classified per tile: the producer warpgroup builds each chunk's tile list
// (kv_tiles.cuh) into one of two list buffers after the rings' barriers and publishes it on
// that buffer's "full" barrier; the consumers read it and release it on "empty" when the
// chunk's tiles are done. The producer builds chunk c + 2 into the buffer of chunk c.
struct WsLists {
  u32 base;  // shared-memory address of buffer 0; buffer 1 and then 4 mbarriers follow
  static constexpr int INTS = kTileListBytes / 4;
  static constexpr int BYTES = 2 * kTileListBytes + 32;
  __device__ __forceinline__ int* list(unsigned char* smem, int c) const {
    return reinterpret_cast<int*>(smem + (base - smem_addr(smem))) + (c % 2) * INTS;
  }
  __device__ __forceinline__ u32 full(int c) const { return base + 2 * kTileListBytes + 8 * (c % 2); }
  __device__ __forceinline__ u32 empty(int c) const { return base + 2 * kTileListBytes + 16 + 8 * (c % 2); }
  __device__ __forceinline__ void init(u32 consumer_threads) const {
    for (int b = 0; b < 2; ++b) {
      mbarrier_init(full(b), 1);
      mbarrier_init(empty(b), consumer_threads);
    }
  }
  // Parity of chunk c's use of its buffer (phase c / 2).
  static __device__ __forceinline__ u32 parity(int c) { return (u32)(c / 2) & 1u; }
};

// The producer warpgroup's own barrier (named barrier 3; 1 and 2 are ping-pong's).
__device__ __forceinline__ void producer_sync() { asm volatile("bar.sync 3, 128;\n" ::: "memory"); }

// Ping-pong (tile.pingpong, 2 consumer warpgroups): the warpgroups take turns issuing their
// GEMMs, each turn a named barrier of both (barrier 0 is __syncthreads'), so that one's
// softmax runs on the CUDA cores while the other's GEMMs keep the tensor cores busy.
//   start()      warpgroup 1 hands warpgroup 0 the first turn
//   wait_turn()  before issuing an iteration's GEMMs
//   pass_turn()  right after issuing them
//   finish()     warpgroup 0 takes the turn warpgroup 1's last pass handed it, so that no
//                barrier is left half-arrived when the block exits
struct PingPong {
  int wg;  // 0 or 1
  static constexpr int kThreads = 256;
  static __device__ __forceinline__ void bar_sync(int id) {
    asm volatile("bar.sync %0, %1;\n" ::"r"(id), "n"(kThreads) : "memory");
  }
  static __device__ __forceinline__ void bar_arrive(int id) {
    asm volatile("bar.arrive %0, %1;\n" ::"r"(id), "n"(kThreads));
  }
  __device__ __forceinline__ void start() const {
    if (wg == 1) bar_arrive(1);
  }
  __device__ __forceinline__ void wait_turn() const { bar_sync(1 + wg); }
  __device__ __forceinline__ void pass_turn() const { bar_arrive(2 - wg); }
  __device__ __forceinline__ void finish() const {
    if (wg == 0) bar_sync(1);
  }
};

// The producer's work, run by one thread: ws_producer_program (ws_ring.cuh) with TMA copies.
// tile_at(i): the i-th KV tile of the block's sequence.
template <class T, class TileAt>
struct WsTmaOps {
  const WsBarriers<T::STAGES>& bars;
  const FwdTmaMaps& maps;
  u32 q_smem, k_smem, v_smem;
  const BlockContext& blk;
  TileAt tile_at;

  __device__ __forceinline__ void wait_q_empty(u32 parity) { mbarrier_wait(bars.q_empty(), parity); }
  __device__ __forceinline__ void load_q() {
    mbarrier_expect_tx(bars.q_full(), T::Q_BYTES);
    tma_load_5d(q_smem, &maps.q, bars.q_full(), 0, blk.q0, 0, blk.head, blk.batch);
  }
  __device__ __forceinline__ void wait_k_empty(int s, u32 parity) { mbarrier_wait(bars.k_empty(s), parity); }
  __device__ __forceinline__ void wait_v_empty(int s, u32 parity) { mbarrier_wait(bars.v_empty(s), parity); }
  __device__ __forceinline__ void load_k(int s, int i) {
    mbarrier_expect_tx(bars.k_full(s), T::K_STAGE_BYTES);
    tma_load_5d(k_smem + s * T::K_STAGE_BYTES, &maps.k, bars.k_full(s), 0, tile_at(i) * T::BN, 0, blk.head_kv,
                blk.batch);
  }
  __device__ __forceinline__ void load_v(int s, int i) {
    mbarrier_expect_tx(bars.v_full(s), T::V_STAGE_BYTES);
    tma_load_5d(v_smem + s * T::V_STAGE_BYTES, &maps.v, bars.v_full(s), 0, tile_at(i) * T::BN, 0, blk.head_kv,
                blk.batch);
  }
};

// The descriptors into the cache before the block's first copy.
__device__ __forceinline__ void ws_prefetch_maps(const FwdTmaMaps& maps) {
  tma_prefetch_map(&maps.q);
  tma_prefetch_map(&maps.k);
  tma_prefetch_map(&maps.v);
}

// A block whose tiles come in chunks: Q once (ws_produce_q), then each chunk's K and V.
template <class T>
__device__ __forceinline__ void ws_produce_q(const WsBarriers<T::STAGES>& bars, const FwdTmaMaps& maps, u32 q_smem,
                                             const BlockContext& blk) {
  ws_prefetch_maps(maps);
  const auto no_tiles = [](int) { return 0; };
  WsTmaOps<T, decltype(no_tiles)> ops{bars, maps, q_smem, 0, 0, blk, no_tiles};
  ops.load_q();
}
template <class T, class TileAt>
__device__ __forceinline__ void ws_produce_kv(const WsBarriers<T::STAGES>& bars, const FwdTmaMaps& maps, u32 k_smem,
                                              u32 v_smem, const BlockContext& blk, int n_tiles, TileAt tile_at,
                                              int base) {
  WsTmaOps<T, TileAt> ops{bars, maps, 0, k_smem, v_smem, blk, tile_at};
  ws_producer_kv_program<T::STAGES>(ops, n_tiles, base);
}

// One work item's copies. base / item: see ws_producer_program (0 for a block with one item).
template <class T, class TileAt>
__device__ __forceinline__ void ws_produce(const WsBarriers<T::STAGES>& bars, const FwdTmaMaps& maps, u32 q_smem,
                                           u32 k_smem, u32 v_smem, const BlockContext& blk, int n_tiles,
                                           TileAt tile_at, int base = 0, int item = 0) {
  if (item == 0) ws_prefetch_maps(maps);
  WsTmaOps<T, TileAt> ops{bars, maps, q_smem, k_smem, v_smem, blk, tile_at};
  ws_producer_program<T::STAGES>(ops, n_tiles, base, item);
}

}  // namespace flashjit
