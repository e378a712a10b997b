#include "engine/probe/ntk_stream.h"

#include <cmath>

#include "engine/autograd.h"
#include "engine/probe/ntk_tiles.h"

namespace gs::probe {

KernelFactors kernel_factors(nn::Sequential& net, const Tensor& x) {
  NoGrad no_tape;
  KernelFactors f;
  f.layers = jacobian_factors(net, x);
  f.samples = x.size(0);
  f.classes = f.layers.back().plain_gram ? 0 : f.layers.back().signals.size(1);
  GS_CHECK(f.layers.back().output_layer, "streamed NTK: the network must end in a dense output layer (then Scale)");
  return f;
}

Tensor output_gram(const KernelFactors& f) {
  const LayerFactors& out = f.layers.back();
  const double a2 = out.output_scale * out.output_scale;
  std::vector<double> g(static_cast<std::size_t>(f.samples * f.samples));
  if (out.inputs.dtype() == DType::f32) {
    auto v = tiles::input_gram<float>(out.inputs);
    for (std::size_t q = 0; q < g.size(); ++q) g[q] = a2 * v[q];
  } else {
    auto v = tiles::input_gram<double>(out.inputs);
    for (std::size_t q = 0; q < g.size(); ++q) g[q] = a2 * v[q];
  }
  return Tensor::from(g, Shape{f.samples, f.samples}, DType::f64);
}

double StreamedComparison::distance() const { return 1.0 - inner / std::sqrt(norm2_a * norm2_b); }

namespace {

template <class T>
StreamedComparison compare(const KernelFactors& a, const KernelFactors& b, std::int64_t tile) {
  const std::int64_t n = a.samples, c = a.classes, blocks = (n + tile - 1) / tile;
  std::vector<std::vector<T>> grams_a, grams_b;
  for (const auto& f : a.layers) grams_a.push_back(f.plain_gram ? std::vector<T>() : tiles::input_gram<T>(f.inputs));
  for (const auto& f : b.layers) grams_b.push_back(f.plain_gram ? std::vector<T>() : tiles::input_gram<T>(f.inputs));
  std::vector<std::pair<std::int64_t, std::int64_t>> pairs;
  for (std::int64_t bi = 0; bi < blocks; ++bi)
    for (std::int64_t bj = bi; bj < blocks; ++bj) pairs.emplace_back(bi, bj);
  // Per-tile sums, added in tile order afterwards: the result does not depend on the threads.
  std::vector<StreamedComparison> per_tile(pairs.size());
#pragma omp parallel
  {
    std::vector<T> ta, tb, scratch;
#pragma omp for schedule(dynamic)
    for (std::size_t p = 0; p < pairs.size(); ++p) {
      const std::int64_t i0 = pairs[p].first * tile, i1 = std::min(n, i0 + tile);
      const std::int64_t j0 = pairs[p].second * tile, j1 = std::min(n, j0 + tile);
      const std::int64_t ri = (i1 - i0) * c, rj = (j1 - j0) * c;
      ta.assign(static_cast<std::size_t>(ri * rj), T(0));
      tb.assign(static_cast<std::size_t>(ri * rj), T(0));
      for (std::size_t l = 0; l < a.layers.size(); ++l)
        tiles::add_layer_tile(a.layers[l], grams_a[l], n, c, i0, i1, j0, j1, ta.data(), rj, scratch);
      for (std::size_t l = 0; l < b.layers.size(); ++l)
        tiles::add_layer_tile(b.layers[l], grams_b[l], n, c, i0, i1, j0, j1, tb.data(), rj, scratch);
      double aa = 0, bb = 0, ab = 0;
      for (std::size_t q = 0; q < ta.size(); ++q) {
        const double x = ta[q], y = tb[q];
        aa += x * x;
        bb += y * y;
        ab += x * y;
      }
      const double w = pairs[p].first == pairs[p].second ? 1.0 : 2.0;  // an upper tile stands for its mirror too
      per_tile[p] = {w * aa, w * bb, w * ab};
    }
  }
  StreamedComparison total;
  for (const auto& t : per_tile) {
    total.norm2_a += t.norm2_a;
    total.norm2_b += t.norm2_b;
    total.inner += t.inner;
  }
  return total;
}

}  // namespace

StreamedComparison compare_streamed(const KernelFactors& a, const KernelFactors& b, std::int64_t tile_samples) {
  GS_CHECK(a.samples == b.samples && a.classes == b.classes && a.layers.size() == b.layers.size(),
           "compare_streamed: the two kernels are not over the same points and logits ({}×{} vs {}×{})", a.samples,
           a.classes, b.samples, b.classes);
  GS_CHECK(tile_samples >= 1, "compare_streamed: tile_samples must be at least 1");
  const DType d = a.layers.front().signals.dtype();
  return d == DType::f32 ? compare<float>(a, b, tile_samples) : compare<double>(a, b, tile_samples);
}

}  // namespace gs::probe
