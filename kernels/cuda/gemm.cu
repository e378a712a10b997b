// Tiled GEMM, row-major, C = alpha op(A) op(B) + beta C, in FP32 (SGEMM) or FP64 (DGEMM), no
// tensor cores: full FP32 accuracy, the default the NTK and geometry probes are checked against.
// The tiling itself (shared-memory slabs, per-thread accumulators) is tiled_gemm.cuh's.
#include "kernels/cuda/cuda_backend.h"
#include "kernels/cuda/tiled_gemm.cuh"

namespace gs::kernels::cuda {

namespace {

template <class T, int BM, int BN, int BK, int TM, int TN>
__global__ void __launch_bounds__((BM / TM) * (BN / TN))
    gemm_kernel(bool ta, bool tb, i64 m, i64 n, i64 k, T alpha, const T* __restrict__ a, i64 lda,
                const T* __restrict__ b, i64 ldb, T beta, T* __restrict__ c, i64 ldc) {
  const i64 row0 = static_cast<i64>(blockIdx.y) * BM, col0 = static_cast<i64>(blockIdx.x) * BN;
  gemm_tile<T, BM, BN, BK, TM, TN>(row0, col0, m, n, 0, k, dense_a(a, lda, ta), dense_b(b, ldb, tb),
                                   [&](i64 i, i64 j, T value) {
                                     T* out = c + i * ldc + j;
                                     // beta = 0 overwrites: NaN or garbage in C does not leak, as BLAS promises.
                                     *out = beta == T(0) ? alpha * value : alpha * value + beta * *out;
                                   });
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
