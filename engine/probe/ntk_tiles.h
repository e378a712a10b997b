#pragma once
// The pieces K is assembled from, shared by the materialized kernel (ntk.cpp) and the streamed
// comparison (ntk_stream.cpp): a dense layer's input Gram, and one layer's block of one tile.
#include <vector>

#include "engine/probe/ntk.h"
#include "kernels/backend.h"

namespace gs::probe::tiles {

// G = H Hᵀ + 1 [n, n]: the input Gram of a dense layer, bias included.
template <class T>
std::vector<T> input_gram(const Tensor& h) {
  const std::int64_t n = h.size(0), d = h.size(1);
  std::vector<T> g(static_cast<std::size_t>(n * n));
  kernels::GemmShape s{false, true, n, n, d, d, d, n};
  kernels::cpu_backend().gemm(h.dtype(), s, 1.0, h.raw(), h.raw(), 0.0, g.data());
  for (auto& v : g) v += T(1);
  return g;
}

// Adds layer l's block of K for sample tiles I (rows) and J (columns): (D_I D_Jᵀ) ⊙ (G ⊗ 1 1ᵀ),
// or α² δ_ab G for the output layer. `scratch` holds one tile.
template <class T>
void add_layer_tile(const LayerFactors& f, const std::vector<T>& g, std::int64_t n, std::int64_t c, std::int64_t i0,
                    std::int64_t i1, std::int64_t j0, std::int64_t j1, T* k, std::int64_t ldk, std::vector<T>& scratch) {
  const std::int64_t ri = (i1 - i0) * c, rj = (j1 - j0) * c;
  if (f.output_layer) {
    const T a2 = static_cast<T>(f.output_scale * f.output_scale);
    for (std::int64_t i = i0; i < i1; ++i)
      for (std::int64_t a = 0; a < c; ++a) {  // row (i, a) gets α² G[i, j] at columns (j, a)
        T* row = k + ((i - i0) * c + a) * ldk + a;
        const T* gi = g.data() + i * n;
        for (std::int64_t j = j0; j < j1; ++j) row[(j - j0) * c] += a2 * gi[j];
      }
    return;
  }
  const std::int64_t width = f.signals.size(1);
  const T* d = static_cast<const T*>(f.signals.raw());
  if (f.plain_gram) {  // K_l = G Gᵀ, added straight into the tile
    kernels::GemmShape s{false, true, ri, rj, width, width, width, ldk};
    kernels::cpu_backend().gemm(f.signals.dtype(), s, 1.0, d + i0 * c * width, d + j0 * c * width, 1.0, k);
    return;
  }
  scratch.resize(static_cast<std::size_t>(ri * rj));
  kernels::GemmShape s{false, true, ri, rj, width, width, width, rj};
  kernels::cpu_backend().gemm(f.signals.dtype(), s, 1.0, d + i0 * c * width, d + j0 * c * width, 0.0, scratch.data());
  for (std::int64_t r = 0; r < ri; ++r) {
    const T* grow = g.data() + (i0 + r / c) * n + j0;
    const T* t = scratch.data() + r * rj;
    T* out = k + r * ldk;
    for (std::int64_t j = 0; j < j1 - j0; ++j) {  // one input-Gram value per run of C columns
      const T gj = grow[j];
      for (std::int64_t b = 0; b < c; ++b) out[j * c + b] += t[j * c + b] * gj;
    }
  }
}

}  // namespace gs::probe::tiles
