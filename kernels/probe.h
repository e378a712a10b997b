#pragma once
// The NTK probe's tile arithmetic (engine/probe/ntk_tiles.h). A tile of K covers the rows of
// samples [i0, i0 + ni) and the columns of samples [j0, j0 + nj), C logits each, row-major with
// leading dimension ldk. A dense layer adds (D_I D_Jᵀ) ⊙ (G_IJ ⊗ 1_C 1_Cᵀ), from the GEMM
// product t = D_I D_Jᵀ and its input Gram G = H Hᵀ + 1; the output layer adds α² G_IJ ⊗ I_C;
// kernel distances need f64 sums of products over a tile.
#include "kernels/family.h"

namespace gs::kernels {

struct KernelTile {
  i64 i0 = 0, ni = 0, j0 = 0, nj = 0, classes = 1;
  i64 ldk = 0;  // of the tile; at least nj · classes
  constexpr i64 rows() const { return ni * classes; }
  constexpr i64 cols() const { return nj * classes; }
};

class ProbeKernels {
 public:
  virtual ~ProbeKernels() = default;
  // k[r, q] += t[r, q] · G[i0 + r / C, j0 + q / C] for r < ni·C, q < nj·C; t is dense (row
  // length nj·C), G is [n, n] with leading dimension ldg. Without `accumulate`, k[r, q] = t · G
  // instead, k never read (a tile's first layer: no fill of the tile before it).
  virtual void add_gram_weighted(DType dtype, const KernelTile& tile, const void* t, const void* g, i64 ldg, void* k,
                                 bool accumulate) = 0;
  // k[(i, a), (j, a)] += α² G[i0 + i, j0 + j]: the output layer's block, α its output scale.
  virtual void add_output_block(DType dtype, const KernelTile& tile, double alpha2, const void* g, i64 ldg, void* k) = 0;
  // out[0] = Σ_q x[q]·y[q] with products and sum in f64, in an order that depends on n only;
  // out is in the backend's memory (device memory on a GPU).
  virtual void dot_f64(DType dtype, i64 n, const void* x, const void* y, double* out) = 0;
};

}  // namespace gs::kernels
