// Tiled GEMM, row-major, C = alpha op(A) op(B) + beta C, in FP32 (SGEMM) or FP64 (DGEMM), no
// tensor cores: full FP32 accuracy, the default the NTK and geometry probes are checked against.
// Each block computes a BM × BN tile of C from BK-deep slabs of A and B staged in shared memory;
// each thread holds TM × TN accumulators, its rows and columns interleaved by the thread grid so
// that shared-memory reads are conflict-free and stores to C are coalesced.
#include "kernels/cuda/cuda_backend.h"

namespace gs::kernels::cuda {

namespace {

template <class T, int BM, int BN, int BK, int TM, int TN>
__global__ void __launch_bounds__((BM / TM) * (BN / TN))
    gemm_kernel(bool ta, bool tb, i64 m, i64 n, i64 k, T alpha, const T* __restrict__ a, i64 lda,
                const T* __restrict__ b, i64 ldb, T beta, T* __restrict__ c, i64 ldc) {
  constexpr int thread_rows = BM / TM, thread_cols = BN / TN, threads = thread_rows * thread_cols;
  // +1: stores that walk down a column (A untransposed, B transposed) land in distinct banks.
  __shared__ T as[BK][BM + 1];
  __shared__ T bs[BK][BN + 1];
  const int tid = threadIdx.x;
  const int tr = tid / thread_cols, tc = tid % thread_cols;
  const i64 row0 = static_cast<i64>(blockIdx.y) * BM, col0 = static_cast<i64>(blockIdx.x) * BN;
  T acc[TM][TN];
#pragma unroll
  for (int x = 0; x < TM; ++x)
#pragma unroll
    for (int y = 0; y < TN; ++y) acc[x][y] = T(0);

  for (i64 p0 = 0; p0 < k; p0 += BK) {
    // Stage op(A)[row0 : row0+BM, p0 : p0+BK] and op(B)[p0 : p0+BK, col0 : col0+BN], zero outside,
    // walking each operand along its contiguous dimension so the loads coalesce.
    for (int e = tid; e < BM * BK; e += threads) {
      const int i = ta ? e % BM : e / BK, p = ta ? e / BM : e % BK;
      const i64 gi = row0 + i, gp = p0 + p;
      as[p][i] = (gi < m && gp < k) ? (ta ? a[gp * lda + gi] : a[gi * lda + gp]) : T(0);
    }
    for (int e = tid; e < BK * BN; e += threads) {
      const int p = tb ? e % BK : e / BN, j = tb ? e / BK : e % BN;
      const i64 gp = p0 + p, gj = col0 + j;
      bs[p][j] = (gp < k && gj < n) ? (tb ? b[gj * ldb + gp] : b[gp * ldb + gj]) : T(0);
    }
    __syncthreads();
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
      if (gj >= n) continue;
      T* out = c + gi * ldc + gj;
      // beta = 0 overwrites: NaN or garbage in C does not leak, as BLAS promises.
      *out = beta == T(0) ? alpha * acc[x][y] : alpha * acc[x][y] + beta * *out;
    }
  }
}

// k = 0: C = beta C (beta = 0 zeroes it).
template <class T>
__global__ void scale_matrix_kernel(i64 m, i64 n, i64 ldc, T beta, T* c) {
  const i64 i = blockIdx.x * static_cast<i64>(blockDim.x) + threadIdx.x;
  if (i >= m * n) return;
  T* out = c + (i / n) * ldc + i % n;
  *out = beta == T(0) ? T(0) : beta * *out;
}

template <class T, int BM, int BN, int BK, int TM, int TN>
void launch_tiles(const GemmShape& s, double alpha, const void* a, const void* b, double beta, void* c) {
  const dim3 grid(static_cast<unsigned>((s.n + BN - 1) / BN), static_cast<unsigned>((s.m + BM - 1) / BM));
  constexpr int threads = (BM / TM) * (BN / TN);
  launch("gemm", s.m * s.n, grid, threads, gemm_kernel<T, BM, BN, BK, TM, TN>, s.transpose_a, s.transpose_b, s.m, s.n,
         s.k, static_cast<T>(alpha), static_cast<const T*>(a), s.lda, static_cast<const T*>(b), s.ldb,
         static_cast<T>(beta), static_cast<T*>(c), s.ldc);
}

}  // namespace

void CudaBackend::gemm(DType dtype, const GemmShape& s, double alpha, const void* a, const void* b, double beta,
                       void* c) {
  if (s.m == 0 || s.n == 0) return;
  if (s.k == 0) {
    with_float(dtype, "gemm", [&]<class T>() {
      launch("gemm (k = 0)", s.m * s.n, blocks_for(s.m * s.n), threads_per_block, scale_matrix_kernel<T>, s.m, s.n,
             s.ldc, static_cast<T>(beta), static_cast<T*>(c));
    });
    return;
  }
  // Square 64 × 64 tiles with 4 × 4 per thread (256 threads) for FP32; FP64 holds twice the
  // bytes per value, so half the depth keeps shared memory the same.
  if (dtype == DType::f32)
    launch_tiles<float, 64, 64, 16, 4, 4>(s, alpha, a, b, beta, c);
  else if (dtype == DType::f64)
    launch_tiles<double, 64, 64, 8, 4, 4>(s, alpha, a, b, beta, c);
  else
    throw Error(std::string("gemm works on f32 or f64 tensors, got ") + dtype_name(dtype));
}

}  // namespace gs::kernels::cuda
