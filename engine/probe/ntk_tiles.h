#pragma once
// The pieces K is assembled from, shared by the materialized kernel (ntk.cpp) and the streamed
// comparison (ntk_stream.cpp): a dense layer's input Gram, and one layer's block of one tile.
// Both run on the device the factors live on (kernels/probe.h holds the tile arithmetic).
#include "engine/probe/ntk.h"
#include "kernels/backend.h"

namespace gs::probe::tiles {

// G = H Hᵀ + 1 [n, n]: the input Gram of a dense layer, bias included; on H's device, in its dtype.
inline Tensor input_gram(const Tensor& h) {
  const std::int64_t n = h.size(0), d = h.size(1);
  Tensor g = Tensor::full(Shape{n, n}, 1.0, h.dtype(), h.device());
  kernels::GemmShape s{false, true, n, n, d, d, d, n};
  kernels::backend(h.device()).gemm(h.dtype(), s, 1.0, h.raw(), h.raw(), 1.0, g.raw());
  return g;
}

// Adds layer f's block of K on `tile` into k: (D_I D_Jᵀ) ⊙ (G ⊗ 1 1ᵀ), α² δ_ab G for the output
// layer, or G_I G_Jᵀ for a convolution. g is f's input Gram (undefined for a convolution);
// `scratch` holds tile.rows() · tile.cols() elements, on the factors' device.
inline void add_layer_tile(const LayerFactors& f, const Tensor& g, const kernels::KernelTile& tile, void* k, void* scratch,
                           bool accumulate) {
  const std::int64_t c = tile.classes;
  if (f.output_layer) {
    kernels::backend(g.device()).add_output_block(g.dtype(), tile, f.output_scale * f.output_scale, g.raw(), g.size(0), k);
    return;
  }
  auto& be = kernels::backend(f.signals.device());
  const std::int64_t width = f.signals.size(1);
  const std::size_t row_bytes = static_cast<std::size_t>(width) * dtype_size(f.signals.dtype());
  const char* d = static_cast<const char*>(f.signals.raw());
  const void* di = d + static_cast<std::size_t>(tile.i0 * c) * row_bytes;
  const void* dj = d + static_cast<std::size_t>(tile.j0 * c) * row_bytes;
  if (f.plain_gram) {  // K_l = G Gᵀ, added straight into the tile
    kernels::GemmShape s{false, true, tile.rows(), tile.cols(), width, width, width, tile.ldk};
    be.gemm(f.signals.dtype(), s, 1.0, di, dj, accumulate ? 1.0 : 0.0, k);
    return;
  }
  kernels::GemmShape s{false, true, tile.rows(), tile.cols(), width, width, width, tile.cols()};
  be.gemm(f.signals.dtype(), s, 1.0, di, dj, 0.0, scratch);
  be.add_gram_weighted(f.signals.dtype(), tile, scratch, g.raw(), g.size(0), k, accumulate);
}

// Writes the sum of the layers' blocks on `tile` into k (what k held is overwritten). The first
// layer writes its block instead of adding it, so the tile needs no fill first; only an output
// layer that comes first (it adds to the diagonal entries alone) needs one.
inline void write_tile(const std::vector<LayerFactors>& layers, const std::vector<Tensor>& grams,
                       const kernels::KernelTile& tile, void* k, void* scratch) {
  auto& be = kernels::backend(layers.front().signals.device());
  const DType dtype = layers.front().signals.dtype();
  const bool fill_first = layers.front().output_layer;
  if (fill_first && tile.ldk == tile.cols()) {
    be.fill(dtype, tile.rows() * tile.cols(), 0.0, k);
  } else if (fill_first) {
    for (std::int64_t r = 0; r < tile.rows(); ++r)
      be.fill(dtype, tile.cols(), 0.0, static_cast<char*>(k) + static_cast<std::size_t>(r * tile.ldk) * dtype_size(dtype));
  }
  for (std::size_t l = 0; l < layers.size(); ++l) add_layer_tile(layers[l], grams[l], tile, k, scratch, fill_first || l > 0);
}

}  // namespace gs::probe::tiles
