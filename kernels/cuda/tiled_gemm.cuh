#pragma once
// The tiling every GEMM-shaped kernel of the backend shares: the dense GEMM (gemm.cu) and the
// implicit-GEMM convolutions (conv.cu), whose operands are gathered from images on the fly.
//
// A block computes a BM × BN tile of C = op(A) op(B) over the depth range [k_begin, k_end),
// staging BK-deep slabs of both operands in shared memory; each thread holds TM × TN
// accumulators, its rows and columns interleaved by the thread grid so that shared-memory reads
// are conflict-free and stores are coalesced. The operands are read through loaders:
//   T operator()(i64 row, i64 col) const   A: (i, p) with i < m;  B: (p, j) with j < n
//   bool along_k                            the loader's memory is contiguous along the depth p,
//                                           so consecutive threads should walk p (else i or j)
// The body does the bounds checks (zero outside m, n and the depth range); the loaders only map
// an in-range index to memory (and return 0 in a convolution's padding).
#include "kernels/cuda/cuda_backend.h"

namespace gs::kernels::cuda {

// A row-major operand read as op(X)[row, col]: X itself, or its transpose (X stored [col, row]).
// For A (m × k) the depth is the column index, for B (k × n) the row index.
template <class T>
struct Dense {
  const T* x;
  i64 ld;
  bool transposed;
  bool along_k;
  __device__ T operator()(i64 row, i64 col) const { return transposed ? x[col * ld + row] : x[row * ld + col]; }
};
template <class T>
__device__ Dense<T> dense_a(const T* a, i64 lda, bool transposed) { return {a, lda, transposed, !transposed}; }
template <class T>
__device__ Dense<T> dense_b(const T* b, i64 ldb, bool transposed) { return {b, ldb, transposed, transposed}; }

// The BK-deep slabs op(A)[row0 : row0+BM, p0 : p0+BK] and op(B)[p0 : p0+BK, col0 : col0+BN] of a
// tile (zero outside m, n and the depth range), read into registers one slab ahead: the next
// slab's global loads are in flight while this one's multiply-adds run, instead of every slab
// waiting out a memory latency. Each operand is walked along its contiguous index so that the
// loads coalesce. stash() then writes the slab read last to shared memory, k-major:
// as[p][i] = op(A)[row0 + i, p0 + p] and bs[p][j] = op(B)[p0 + p, col0 + j].
template <class T, int BM, int BN, int BK, int Threads>
struct Slabs {
  static constexpr int a_loads = (BM * BK + Threads - 1) / Threads, b_loads = (BK * BN + Threads - 1) / Threads;
  T a_next[a_loads], b_next[b_loads];

  template <class LoadA, class LoadB>
  __device__ __forceinline__ void fetch(const LoadA& a, const LoadB& b, int tid, i64 row0, i64 col0, i64 m, i64 n, i64 p0,
                                        i64 k_end) {
#pragma unroll
    for (int q = 0; q < a_loads; ++q) {
      const int e = tid + q * Threads;
      if (e >= BM * BK) break;
      const int i = a.along_k ? e / BK : e % BM, p = a.along_k ? e % BK : e / BM;
      const i64 gi = row0 + i, gp = p0 + p;
      a_next[q] = (gi < m && gp < k_end) ? a(gi, gp) : T(0);
    }
#pragma unroll
    for (int q = 0; q < b_loads; ++q) {
      const int e = tid + q * Threads;
      if (e >= BK * BN) break;
      const int p = b.along_k ? e % BK : e / BN, j = b.along_k ? e / BK : e % BN;
      const i64 gp = p0 + p, gj = col0 + j;
      b_next[q] = (gp < k_end && gj < n) ? b(gp, gj) : T(0);
    }
  }

  // Each value through convert (the identity, or a rounding the multiply wants).
  template <int LDA, int LDB, class Convert>
  __device__ __forceinline__ void stash(bool a_along_k, bool b_along_k, int tid, T (&as)[BK][LDA], T (&bs)[BK][LDB],
                                        const Convert& convert) const {
#pragma unroll
    for (int q = 0; q < a_loads; ++q) {
      const int e = tid + q * Threads;
      if (e >= BM * BK) break;
      as[a_along_k ? e % BK : e / BM][a_along_k ? e / BK : e % BM] = convert(a_next[q]);
    }
#pragma unroll
    for (int q = 0; q < b_loads; ++q) {
      const int e = tid + q * Threads;
      if (e >= BK * BN) break;
      bs[b_along_k ? e % BK : e / BN][b_along_k ? e / BK : e % BN] = convert(b_next[q]);
    }
  }
};

// The tile at (row0, col0); store(i, j, value) is called once for every i < m, j < n of it.
template <class T, int BM, int BN, int BK, int TM, int TN, class LoadA, class LoadB, class Store>
__device__ void gemm_tile(i64 row0, i64 col0, i64 m, i64 n, i64 k_begin, i64 k_end, const LoadA& a, const LoadB& b,
                          const Store& store) {
  constexpr int thread_rows = BM / TM, thread_cols = BN / TN, threads = thread_rows * thread_cols;
  // +1: stores that walk down a column (an operand contiguous along its other index) land in
  // distinct banks.
  __shared__ T as[BK][BM + 1];
  __shared__ T bs[BK][BN + 1];
  const int tid = threadIdx.x;
  const int tr = tid / thread_cols, tc = tid % thread_cols;
  T acc[TM][TN];
#pragma unroll
  for (int x = 0; x < TM; ++x)
#pragma unroll
    for (int y = 0; y < TN; ++y) acc[x][y] = T(0);

  Slabs<T, BM, BN, BK, threads> slabs;
  if (k_begin < k_end) slabs.fetch(a, b, tid, row0, col0, m, n, k_begin, k_end);
  for (i64 p0 = k_begin; p0 < k_end; p0 += BK) {
    slabs.stash(a.along_k, b.along_k, tid, as, bs, [](T v) { return v; });
    __syncthreads();
    if (p0 + BK < k_end) slabs.fetch(a, b, tid, row0, col0, m, n, p0 + BK, k_end);
#pragma unroll
    for (int p = 0; p < BK; ++p) {
      T ar[TM], br[TN];
#pragma unroll
      for (int x = 0; x < TM; ++x) ar[x] = as[p][tr + x * thread_rows];
#pragma unroll
      for (int y = 0; y < TN; ++y) br[y] = bs[p][tc + y * thread_cols];
#pragma unroll
      for (int x = 0; x < TM; ++x)
#pragma unroll
        for (int y = 0; y < TN; ++y) acc[x][y] += ar[x] * br[y];
    }
    __syncthreads();
  }
#pragma unroll
  for (int x = 0; x < TM; ++x) {
    const i64 gi = row0 + tr + x * thread_rows;
    if (gi >= m) continue;
#pragma unroll
    for (int y = 0; y < TN; ++y) {
      const i64 gj = col0 + tc + y * thread_cols;
      if (gj < n) store(gi, gj, acc[x][y]);
    }
  }
}

}  // namespace gs::kernels::cuda
