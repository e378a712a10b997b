#pragma once
// A GEMM tile on the tensor cores in TF32: the same contract as gemm_tile (tiled_gemm.cuh), for
// FP32 operands whose values are first rounded to TF32 (10 bits of mantissa against FP32's 23)
// and multiplied in warp matrix instructions (m16n16k8) into FP32 accumulators. Faster where
// the tensor cores are busy; a relative error near 2⁻¹¹ per product instead of 2⁻²⁴. Taken for
// the FP32 GEMMs and convolutions only where TF32 is pinned (GemmPrecision::tf32, kernels/gemm.h):
// by `grokscope train --tf32` for its training steps (never its probes), the tests and bench_cuda.
//
// A block of Threads = 32 · WarpRows · WarpCols threads computes a BM × BN tile; each warp a
// (BM / WarpRows) × (BN / WarpCols) part of it in 16 × 16 fragments. The slabs are staged as
// gemm_tile stages them, rounded as they are stored, and the accumulators go through shared
// memory on the way out, since which lane holds which element of a fragment is the device's
// business.
#include <mma.h>

#include "kernels/cuda/tiled_gemm.cuh"

namespace gs::kernels::cuda {

template <int BM, int BN, int BK, int WarpRows, int WarpCols, class LoadA, class LoadB, class Store>
__device__ void tf32_tile(i64 row0, i64 col0, i64 m, i64 n, i64 k_begin, i64 k_end, const LoadA& a, const LoadB& b,
                          const Store& store) {
  namespace wmma = nvcuda::wmma;
  constexpr int threads = 32 * WarpRows * WarpCols, WM = BM / WarpRows, WN = BN / WarpCols;
  constexpr int FM = WM / 16, FN = WN / 16;
  static_assert(WM % 16 == 0 && WN % 16 == 0 && BK % 8 == 0, "whole m16n16k8 fragments");
  // The fragment calls need leading dimensions of a multiple of 4 floats and 256-bit aligned
  // addresses: every fragment's corner below is 8 rows or 16 columns from an aligned one. The
  // rows are padded by 4 floats so that consecutive rows start in different banks.
  constexpr int lda = BM + 4, ldb = BN + 4, ldc = BN + 4;
  static_assert(lda % 4 == 0 && ldb % 4 == 0 && ldc % 4 == 0, "leading dimensions of whole 16-byte units");
  __shared__ __align__(32) float as[BK][lda];  // as[p][i]: op(A) column-major, as matrix_a reads it
  __shared__ __align__(32) float bs[BK][ldb];  // bs[p][j]: op(B) row-major
  __shared__ __align__(32) float cs[BM][ldc];
  const int tid = threadIdx.x, warp = tid / 32;
  const int wr = warp / WarpCols, wc = warp % WarpCols;

  wmma::fragment<wmma::accumulator, 16, 16, 8, float> acc[FM][FN];
#pragma unroll
  for (int x = 0; x < FM; ++x)
#pragma unroll
    for (int y = 0; y < FN; ++y) wmma::fill_fragment(acc[x][y], 0.0f);

  Slabs<float, BM, BN, BK, threads> slabs;
  if (k_begin < k_end) slabs.fetch(a, b, tid, row0, col0, m, n, k_begin, k_end);
  for (i64 p0 = k_begin; p0 < k_end; p0 += BK) {
    slabs.stash(a.along_k, b.along_k, tid, as, bs, [](float v) { return wmma::__float_to_tf32(v); });
    __syncthreads();
    if (p0 + BK < k_end) slabs.fetch(a, b, tid, row0, col0, m, n, p0 + BK, k_end);
    // One k-step at a time: unrolled, both steps' fragments were live at once, and with a
    // convolution's gathers on top ptxas spilled (conv2d_backward_data: 128 registers and 8
    // bytes of stack); rolled, the TF32 kernels take 64 to 111 registers (nvcc 13.0, sm_90).
#pragma unroll 1
    for (int p = 0; p < BK; p += 8) {
      wmma::fragment<wmma::matrix_a, 16, 16, 8, wmma::precision::tf32, wmma::col_major> fa[FM];
      wmma::fragment<wmma::matrix_b, 16, 16, 8, wmma::precision::tf32, wmma::row_major> fb[FN];
#pragma unroll
      for (int x = 0; x < FM; ++x) wmma::load_matrix_sync(fa[x], &as[p][wr * WM + x * 16], lda);
#pragma unroll
      for (int y = 0; y < FN; ++y) wmma::load_matrix_sync(fb[y], &bs[p][wc * WN + y * 16], ldb);
#pragma unroll
      for (int x = 0; x < FM; ++x)
#pragma unroll
        for (int y = 0; y < FN; ++y) wmma::mma_sync(acc[x][y], fa[x], fb[y], acc[x][y]);
    }
    __syncthreads();
  }
#pragma unroll
  for (int x = 0; x < FM; ++x)
#pragma unroll
    for (int y = 0; y < FN; ++y)
      wmma::store_matrix_sync(&cs[wr * WM + x * 16][wc * WN + y * 16], acc[x][y], ldc, wmma::mem_row_major);
  __syncthreads();
  for (int e = tid; e < BM * BN; e += threads) {
    const int i = e / BN, j = e % BN;
    const i64 gi = row0 + i, gj = col0 + j;
    if (gi < m && gj < n) store(gi, gj, cs[i][j]);
  }
}

}  // namespace gs::kernels::cuda
