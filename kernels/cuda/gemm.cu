// Tiled GEMM, row-major, C = alpha op(A) op(B) + beta C, in FP32 (SGEMM) or FP64 (DGEMM) on the
// CUDA cores: full FP32 accuracy, the default the NTK and geometry probes are checked against.
// The tilings (tilings.cuh) and how they are chosen are shared with the convolutions; where TF32
// is pinned (kernels/gemm.h), FP32 products go to the tensor cores (tensor_core_tile.cuh),
// through the very same kernels. A dense layer's bias and activation can be applied as C is
// stored (gemm_bias_act), and its whole backward pass is one launch (dense_backward).
#include <algorithm>

#include "kernels/cuda/activation.cuh"
#include "kernels/cuda/tilings.cuh"

namespace gs::kernels::cuda {

namespace {

template <class Tiling, class T = typename Tiling::type>
__global__ void __launch_bounds__(Tiling::threads)
    gemm_kernel(bool ta, bool tb, i64 m, i64 n, i64 k, T alpha, const T* __restrict__ a, i64 lda,
                const T* __restrict__ b, i64 ldb, T beta, T* __restrict__ c, i64 ldc) {
  begin_after_preceding_kernels();
  const i64 row0 = static_cast<i64>(blockIdx.y) * Tiling::bm, col0 = static_cast<i64>(blockIdx.x) * Tiling::bn;
  Tiling::tile(row0, col0, m, n, 0, k, dense_a(a, lda, ta), dense_b(b, ldb, tb), [&](i64 i, i64 j, T value) {
    T* out = c + i * ldc + j;
    // beta = 0 overwrites: NaN or garbage in C does not leak, as BLAS promises.
    *out = beta == T(0) ? alpha * value : alpha * value + beta * *out;
  });
}

// A dense layer's forward pass: act(value + bias[j]) as each element is stored (C is written
// once; value + bias rounds as alpha·value + beta·C does with alpha = beta = 1 and C = bias).
template <class Tiling, class T = typename Tiling::type>
__global__ void __launch_bounds__(Tiling::threads)
    gemm_bias_act_kernel(bool ta, bool tb, i64 m, i64 n, i64 k, const T* __restrict__ a, i64 lda,
                         const T* __restrict__ b, i64 ldb, const T* __restrict__ bias, bool has_act, Unary act,
                         T* __restrict__ c) {
  begin_after_preceding_kernels();
  const i64 row0 = static_cast<i64>(blockIdx.y) * Tiling::bm, col0 = static_cast<i64>(blockIdx.x) * Tiling::bn;
  Tiling::tile(row0, col0, m, n, 0, k, dense_a(a, lda, ta), dense_b(b, ldb, tb), [&](i64 i, i64 j, T value) {
    const T z = bias ? value + bias[j] : value;
    c[i * n + j] = has_act ? activate(act, z) : z;
  });
}

// Split-K: block z computes its tile over the depth slice [z·chunk, (z+1)·chunk) into
// partial[z] (m × n, dense); splits_bias_act_kernel then adds the slices in order.
template <class Tiling, class T = typename Tiling::type>
__global__ void __launch_bounds__(Tiling::threads)
    gemm_partial_kernel(bool ta, bool tb, i64 m, i64 n, i64 k, i64 chunk, const T* __restrict__ a, i64 lda,
                        const T* __restrict__ b, i64 ldb, T* __restrict__ partial) {
  begin_after_preceding_kernels();
  const i64 row0 = static_cast<i64>(blockIdx.y) * Tiling::bm, col0 = static_cast<i64>(blockIdx.x) * Tiling::bn;
  const i64 begin = static_cast<i64>(blockIdx.z) * chunk;
  T* out = partial + static_cast<i64>(blockIdx.z) * m * n;
  Tiling::tile(row0, col0, m, n, begin, begin + chunk < k ? begin + chunk : k, dense_a(a, lda, ta), dense_b(b, ldb, tb),
               [&](i64 i, i64 j, T value) { out[i * n + j] = value; });
}

// c = act(Σ_z partial[z] + bias), the slices added in order, then the bias as gemm_bias_act adds it.
template <class T>
__global__ void splits_bias_act_kernel(i64 m, i64 n, i64 splits, const T* __restrict__ partial, const T* __restrict__ bias,
                                       bool has_act, Unary act, T* __restrict__ c) {
  begin_after_preceding_kernels();
  const i64 q = blockIdx.x * static_cast<i64>(blockDim.x) + threadIdx.x;
  if (q >= m * n) return;
  T value = partial[q];
  for (i64 z = 1; z < splits; ++z) value += partial[z * m * n + q];
  const T v = bias ? value + bias[q % n] : value;
  c[q] = has_act ? activate(act, v) : v;
}

// gz = g ⊙ act'(y) read as op(gz)[row, col] straight from g and y, so that it is never stored:
// the same value the elementwise backward kernel would have written.
template <class T>
struct LayerGradient {
  const T* g;
  const T* y;
  i64 ld;
  bool transposed;
  bool along_k;
  bool has_act;
  Unary act;
  __device__ T operator()(i64 row, i64 col) const {
    const i64 i = transposed ? col * ld + row : row * ld + col;
    return has_act ? activation_backward(act, y[i], y[i], g[i]) : g[i];
  }
};

// A dense layer's backward pass in one launch of independent blocks: the first gx_blocks compute
// tiles of gx = gz W, the next gw_blocks tiles of gW = gzᵀ x, the rest gb (a thread per column
// summing the rows in order, as sum_rows does). Each part equals what the separate GEMM and
// sum kernels compute, bit for bit.
template <class Tiling, class T = typename Tiling::type>
__global__ void __launch_bounds__(Tiling::threads)
    dense_backward_kernel(i64 rows, i64 in, i64 out, bool has_act, Unary act, const T* __restrict__ x, const T* __restrict__ w,
                          const T* __restrict__ y, const T* __restrict__ g, T* __restrict__ gx, T* __restrict__ gw,
                          T* __restrict__ gb, i64 gx_blocks, i64 gw_blocks) {
  begin_after_preceding_kernels();
  const i64 col_tiles = (in + Tiling::bn - 1) / Tiling::bn;  // gx and gW both have `in` columns
  // Tile b of C (m × in, dense) = op(gz) B over `depth`.
  auto tile = [&](i64 b, i64 m, i64 depth, const LayerGradient<T>& gz, const T* bm, T* c) {
    Tiling::tile((b / col_tiles) * Tiling::bm, (b % col_tiles) * Tiling::bn, m, in, 0, depth, gz, dense_b(bm, in, false),
                 [&](i64 i, i64 j, T value) { c[i * in + j] = value; });
  };
  i64 b = blockIdx.x;
  if (b < gx_blocks) return tile(b, rows, out, {g, y, out, false, true, has_act, act}, w, gx);  // gz W
  b -= gx_blocks;
  if (b < gw_blocks) return tile(b, out, rows, {g, y, out, true, false, has_act, act}, x, gw);  // gzᵀ x
  b -= gw_blocks;
  const i64 c = b * static_cast<i64>(blockDim.x) + threadIdx.x;
  if (c >= out) return;
  const LayerGradient<T> gz{g, y, out, false, true, has_act, act};
  T acc = T(0);
  for (i64 r = 0; r < rows; ++r) acc += gz(r, c);
  gb[c] = acc;
}

// k = 0: C = beta C (beta = 0 zeroes it).
template <class T>
__global__ void scale_matrix_kernel(i64 m, i64 n, i64 ldc, T beta, T* c) {
  begin_after_preceding_kernels();
  const i64 i = blockIdx.x * static_cast<i64>(blockDim.x) + threadIdx.x;
  if (i >= m * n) return;
  T* out = c + (i / n) * ldc + i % n;
  *out = beta == T(0) ? T(0) : beta * *out;
}

template <class Tiling>
dim3 tile_grid(const GemmShape& s) {
  return dim3(static_cast<unsigned>((s.n + Tiling::bn - 1) / Tiling::bn), static_cast<unsigned>((s.m + Tiling::bm - 1) / Tiling::bm));
}
}  // namespace

// Large tiles once there are at least two of them per multiprocessor: with fewer, the small
// tiling's four times as many blocks keep more of the device busy. The threshold is a first
// guess, to be set from bench_cuda's two columns on a GPU.
bool CudaBackend::large_gemm_tiles(i64 m, i64 n) const {
  switch (gemm_tiling()) {
    case GemmTiling::small_tiles: return false;
    case GemmTiling::large_tiles: return true;
    case GemmTiling::by_shape: break;
  }
  return ((m + 127) / 128) * ((n + 127) / 128) >= 2 * static_cast<i64>(multiprocessors_);
}

// How many depth slices a dense layer's forward is cut into: one unless its tiles fill under half
// the multiprocessors and it is deep; then enough slices to fill them, each at least 8 slabs, all
// partials within the split scratch. A function of the shape and the device, so the sum's
// order never changes between the steps of a run.
i64 CudaBackend::gemm_splits(i64 tiles, i64 slabs, std::size_t partial_bytes) const {
  if (gemm_split() == GemmSplit::never || 2 * tiles > multiprocessors_) return 1;
  i64 splits = std::min<i64>(multiprocessors_ / tiles, slabs / 8);
  splits = std::min<i64>(splits, static_cast<i64>(split_scratch_bytes / std::max<std::size_t>(1, partial_bytes)));
  return std::max<i64>(1, splits);
}

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
  with_tiling(dtype, large_gemm_tiles(s.m, s.n), "gemm", [&]<class Tiling>() {
    using T = typename Tiling::type;
    launch(launch_name<Tiling>("gemm").c_str(), s.m * s.n, tile_grid<Tiling>(s), Tiling::threads, gemm_kernel<Tiling>,
           s.transpose_a, s.transpose_b, s.m, s.n, s.k, static_cast<T>(alpha), static_cast<const T*>(a), s.lda,
           static_cast<const T*>(b), s.ldb, static_cast<T>(beta), static_cast<T*>(c), s.ldc);
  });
}

void CudaBackend::gemm_bias_act(DType dtype, const GemmShape& s, const void* a, const void* b, const void* bias,
                                std::optional<Unary> act, void* c) {
  if (s.ldc != s.n)
    throw Error("gemm_bias_act: C must be dense, got ldc = " + std::to_string(s.ldc) + " for " + std::to_string(s.n) +
                " columns");
  if (s.m == 0 || s.n == 0) return;
  if (s.k == 0) {  // no tiles to store through: the bias and activation of a zero product
    gemm(dtype, s, 1.0, a, b, 0.0, c);
    if (bias) broadcast_rows(dtype, s.m, s.n, bias, c);
    if (act) unary(*act, dtype, s.m * s.n, c, c);
    return;
  }
  // The small tiling always: evaluating an activation on 64 live accumulators per thread made
  // ptxas spill registers in the large one (f32, sm_90), and the study's layer forwards are small.
  with_small_tiling(dtype, "gemm_bias_act", [&]<class Tiling>() {
    using T = typename Tiling::type;
    // A deep product with few tiles (a first layer's 784 inputs against a batch) is split along
    // its depth, so that more blocks each wait out fewer slabs' loads.
    const i64 tiles = ((s.m + Tiling::bm - 1) / Tiling::bm) * ((s.n + Tiling::bn - 1) / Tiling::bn);
    const i64 slabs = (s.k + Tiling::bk - 1) / Tiling::bk;
    i64 splits = gemm_splits(tiles, slabs, static_cast<std::size_t>(s.m * s.n) * sizeof(T));
    if (splits > 1) {
      const i64 chunk = split_chunk(s.k, splits, Tiling::bk);
      splits = (s.k + chunk - 1) / chunk;
      T* partial = static_cast<T*>(split_scratch());
      dim3 grid = tile_grid<Tiling>(s);
      grid.z = static_cast<unsigned>(splits);
      launch(launch_name<Tiling>("gemm_bias_act", "split along the depth").c_str(), s.m * s.n * splits, grid,
             Tiling::threads, gemm_partial_kernel<Tiling>, s.transpose_a, s.transpose_b, s.m, s.n, s.k, chunk,
             static_cast<const T*>(a), s.lda, static_cast<const T*>(b), s.ldb, partial);
      launch("gemm_bias_act (sum of splits, bias, activation)", s.m * s.n, blocks_for(s.m * s.n), threads_per_block,
             splits_bias_act_kernel<T>, s.m, s.n, splits, static_cast<const T*>(partial), static_cast<const T*>(bias),
             act.has_value(), act.value_or(Unary::relu), static_cast<T*>(c));
      return;
    }
    launch(launch_name<Tiling>("gemm_bias_act").c_str(), s.m * s.n, tile_grid<Tiling>(s), Tiling::threads,
           gemm_bias_act_kernel<Tiling>, s.transpose_a, s.transpose_b, s.m, s.n, s.k, static_cast<const T*>(a), s.lda,
           static_cast<const T*>(b), s.ldb, static_cast<const T*>(bias), act.has_value(), act.value_or(Unary::relu),
           static_cast<T*>(c));
  });
}

void CudaBackend::dense_backward(DType dtype, const DenseShape& s, std::optional<Unary> act, const void* x,
                                 const void* w, const void* y, const void* g, void*, void* gx, void* gw, void* gb) {
  if (act && *act == Unary::gelu)
    throw Error("dense_backward: gelu's derivative needs its input, not its output");
  if (act && !y) throw Error("dense_backward: an activation needs the layer's output");
  // One tiling for the launch, chosen by its larger product: gx (rows × in) or gW (out × in).
  const bool large = large_gemm_tiles(std::max(gx ? s.rows : 0, gw ? s.out : 0), s.in);
  with_tiling(dtype, large, "dense_backward", [&]<class Tiling>() {
    using T = typename Tiling::type;
    static_assert(Tiling::threads == threads_per_block, "the column sums use the GEMM blocks' threads");
    const i64 col_tiles = (s.in + Tiling::bn - 1) / Tiling::bn;
    // An empty depth (s.out or s.rows = 0) leaves the tiles' accumulators at 0: the gradients are 0.
    const i64 gx_blocks = gx ? ((s.rows + Tiling::bm - 1) / Tiling::bm) * col_tiles : 0;
    const i64 gw_blocks = gw ? ((s.out + Tiling::bm - 1) / Tiling::bm) * col_tiles : 0;
    const i64 gb_blocks = gb ? (s.out + threads_per_block - 1) / threads_per_block : 0;
    const i64 blocks = gx_blocks + gw_blocks + gb_blocks;
    if (blocks == 0) return;
    launch(launch_name<Tiling>("dense_backward").c_str(), s.rows * s.out, static_cast<unsigned>(blocks), threads_per_block,
           dense_backward_kernel<Tiling>, s.rows, s.in, s.out, act.has_value(), act.value_or(Unary::relu),
           static_cast<const T*>(x), static_cast<const T*>(w), static_cast<const T*>(y), static_cast<const T*>(g),
           static_cast<T*>(gx), static_cast<T*>(gw), static_cast<T*>(gb), gx_blocks, gw_blocks);
  });
}

}  // namespace gs::kernels::cuda
