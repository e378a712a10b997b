// The NTK probe's tile arithmetic on the device: one thread per element of the tile, and the
// f64 dot product through the deterministic two-pass sum.
#include "kernels/cuda/cuda_backend.h"
#include "kernels/cuda/reduce.cuh"

namespace gs::kernels {

namespace cuda {

namespace {

template <class T>
__global__ void add_gram_weighted_kernel(KernelTile tile, const T* t, const T* g, i64 ldg, T* k, bool accumulate) {
  begin_after_preceding_kernels();
  const i64 cols = tile.cols(), q = blockIdx.x * static_cast<i64>(blockDim.x) + threadIdx.x;
  const i64 r = blockIdx.y;
  if (q >= cols) return;
  const i64 c = tile.classes;
  const T value = t[r * cols + q] * g[(tile.i0 + r / c) * ldg + tile.j0 + q / c];
  T* out = k + r * tile.ldk + q;
  *out = accumulate ? *out + value : value;
}

template <class T>
__global__ void add_output_block_kernel(KernelTile tile, T alpha2, const T* g, i64 ldg, T* k) {
  begin_after_preceding_kernels();
  // Thread (i, j) adds its Gram value on the C diagonal entries of block (i, j).
  const i64 j = blockIdx.x * static_cast<i64>(blockDim.x) + threadIdx.x, i = blockIdx.y;
  if (j >= tile.nj) return;
  const i64 c = tile.classes;
  const T v = alpha2 * g[(tile.i0 + i) * ldg + tile.j0 + j];
  for (i64 a = 0; a < c; ++a) k[(i * c + a) * tile.ldk + j * c + a] += v;
}

template <class T>
struct ProductTerm {
  const T* x;
  const T* y;
  __device__ double operator()(i64 i) const { return static_cast<double>(x[i]) * static_cast<double>(y[i]); }
};

struct StoreDouble {
  double* out;
  __device__ void operator()(double total) const { out[0] = total; }
};

// Rows go to gridDim.y, which CUDA caps at 65535.
void check_rows(const char* what, i64 rows) {
  if (rows > 65535)
    throw Error(std::string(what) + ": a tile of " + std::to_string(rows) +
                " rows is more than the 65535 one launch covers; use smaller tiles");
}

}  // namespace

void CudaBackend::add_gram_weighted(DType dtype, const KernelTile& tile, const void* t, const void* g, i64 ldg, void* k,
                                    bool accumulate) {
  if (tile.rows() == 0 || tile.cols() == 0) return;
  check_rows("add_gram_weighted", tile.rows());
  with_float(dtype, "add_gram_weighted", [&]<class T>() {
    const dim3 grid(static_cast<unsigned>(blocks_for(tile.cols())), static_cast<unsigned>(tile.rows()));
    launch("add_gram_weighted", tile.rows() * tile.cols(), grid, threads_per_block, add_gram_weighted_kernel<T>, tile,
           static_cast<const T*>(t), static_cast<const T*>(g), ldg, static_cast<T*>(k), accumulate);
  });
}

void CudaBackend::add_output_block(DType dtype, const KernelTile& tile, double alpha2, const void* g, i64 ldg, void* k) {
  if (tile.ni == 0 || tile.nj == 0) return;
  check_rows("add_output_block", tile.ni);
  with_float(dtype, "add_output_block", [&]<class T>() {
    const dim3 grid(static_cast<unsigned>(blocks_for(tile.nj)), static_cast<unsigned>(tile.ni));
    launch("add_output_block", tile.ni * tile.nj, grid, threads_per_block, add_output_block_kernel<T>, tile,
           static_cast<T>(alpha2), static_cast<const T*>(g), ldg, static_cast<T*>(k));
  });
}

void CudaBackend::dot_f64(DType dtype, i64 n, const void* x, const void* y, double* out) {
  with_float(dtype, "dot_f64", [&]<class T>() {
    deterministic_sum("dot_f64", n, ProductTerm<T>{static_cast<const T*>(x), static_cast<const T*>(y)}, StoreDouble{out});
  });
}

}  // namespace cuda

}  // namespace gs::kernels
