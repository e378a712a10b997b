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
std::vector<std::vector<T>> grams_of(const KernelFactors& f) {
  std::vector<std::vector<T>> g;
  for (const auto& l : f.layers) g.push_back(l.plain_gram ? std::vector<T>() : tiles::input_gram<T>(l.inputs));
  return g;
}

template <class T>
StreamedSums compare_many(const KernelFactors& cur, const std::vector<const KernelFactors*>& refs, std::int64_t tile) {
  const std::int64_t n = cur.samples, c = cur.classes, blocks = (n + tile - 1) / tile;
  const std::size_t m = refs.size();
  auto grams_cur = grams_of<T>(cur);
  std::vector<std::vector<std::vector<T>>> grams_ref;
  for (const auto* r : refs) grams_ref.push_back(grams_of<T>(*r));
  std::vector<std::pair<std::int64_t, std::int64_t>> pairs;
  for (std::int64_t bi = 0; bi < blocks; ++bi)
    for (std::int64_t bj = bi; bj < blocks; ++bj) pairs.emplace_back(bi, bj);
  // Per-tile sums, added in tile order afterwards: the result does not depend on the threads.
  std::vector<std::vector<double>> per_tile(pairs.size(), std::vector<double>(1 + 2 * m, 0.0));
#pragma omp parallel
  {
    std::vector<T> tk, tr, scratch;
#pragma omp for schedule(dynamic)
    for (std::size_t p = 0; p < pairs.size(); ++p) {
      const std::int64_t i0 = pairs[p].first * tile, i1 = std::min(n, i0 + tile);
      const std::int64_t j0 = pairs[p].second * tile, j1 = std::min(n, j0 + tile);
      const std::int64_t rj = (j1 - j0) * c;
      const std::size_t size = static_cast<std::size_t>((i1 - i0) * c * rj);
      const double w = pairs[p].first == pairs[p].second ? 1.0 : 2.0;  // an upper tile stands for its mirror too
      tk.assign(size, T(0));
      for (std::size_t l = 0; l < cur.layers.size(); ++l)
        tiles::add_layer_tile(cur.layers[l], grams_cur[l], n, c, i0, i1, j0, j1, tk.data(), rj, scratch);
      double kk = 0;
      for (std::size_t q = 0; q < size; ++q) kk += static_cast<double>(tk[q]) * tk[q];
      per_tile[p][0] = w * kk;
      for (std::size_t r = 0; r < m; ++r) {
        tr.assign(size, T(0));
        for (std::size_t l = 0; l < refs[r]->layers.size(); ++l)
          tiles::add_layer_tile(refs[r]->layers[l], grams_ref[r][l], n, c, i0, i1, j0, j1, tr.data(), rj, scratch);
        double rr = 0, kr = 0;
        for (std::size_t q = 0; q < size; ++q) {
          rr += static_cast<double>(tr[q]) * tr[q];
          kr += static_cast<double>(tk[q]) * tr[q];
        }
        per_tile[p][1 + 2 * r] = w * rr;
        per_tile[p][2 + 2 * r] = w * kr;
      }
    }
  }
  StreamedSums total;
  total.norm2_ref.assign(m, 0.0);
  total.inner.assign(m, 0.0);
  for (const auto& t : per_tile) {
    total.norm2 += t[0];
    for (std::size_t r = 0; r < m; ++r) {
      total.norm2_ref[r] += t[1 + 2 * r];
      total.inner[r] += t[2 + 2 * r];
    }
  }
  return total;
}

void check_same_points(const KernelFactors& a, const KernelFactors& b) {
  GS_CHECK(a.samples == b.samples && a.classes == b.classes && a.layers.size() == b.layers.size(),
           "compare_streamed: the two kernels are not over the same points and logits ({}×{} vs {}×{})", a.samples,
           a.classes, b.samples, b.classes);
}

// Row (i, a) of a layer's signals (or a convolution's gradients), as doubles.
template <class F>
void for_each_row(const LayerFactors& l, F&& f) {
  const std::int64_t rows = l.signals.size(0), width = l.signals.size(1);
  const Tensor d = l.signals.dtype() == DType::f64 ? l.signals : l.signals.to(DType::f64);
  const double* p = d.data<double>();
  for (std::int64_t r = 0; r < rows; ++r) f(r, p + r * width, width);
}

std::vector<double> input_gram_f64(const LayerFactors& l) {
  if (l.inputs.dtype() == DType::f32) {
    auto g = tiles::input_gram<float>(l.inputs);
    return std::vector<double>(g.begin(), g.end());
  }
  return tiles::input_gram<double>(l.inputs);
}

}  // namespace

StreamedSums compare_streamed(const KernelFactors& current, const std::vector<const KernelFactors*>& refs,
                              std::int64_t tile_samples) {
  GS_CHECK(tile_samples >= 1, "compare_streamed: tile_samples must be at least 1");
  for (const auto* r : refs) check_same_points(current, *r);
  return current.layers.front().signals.dtype() == DType::f32 ? compare_many<float>(current, refs, tile_samples)
                                                              : compare_many<double>(current, refs, tile_samples);
}

StreamedComparison compare_streamed(const KernelFactors& a, const KernelFactors& b, std::int64_t tile_samples) {
  auto s = compare_streamed(a, std::vector<const KernelFactors*>{&b}, tile_samples);
  return {s.norm2, s.norm2_ref[0], s.inner[0]};
}

Tensor trace_kernel(const KernelFactors& f) {
  const std::int64_t n = f.samples, c = f.classes;
  std::vector<double> t(static_cast<std::size_t>(n * n), 0.0);
  for (const auto& l : f.layers) {
    if (l.output_layer) {  // C α² (H Hᵀ + 1)
      auto g = input_gram_f64(l);
      for (std::size_t q = 0; q < t.size(); ++q) t[q] += static_cast<double>(c) * l.output_scale * l.output_scale * g[q];
      continue;
    }
    // Σ_a ⟨d_(i,a), d_(j,a)⟩ = ⟨vec D_i, vec D_j⟩ with D_i the C × width block of sample i.
    const std::int64_t width = l.signals.size(1);
    Tensor flat = l.signals.view(Shape{n, c * width}).to(DType::f64);
    Tensor dd = Tensor::empty(Shape{n, n}, DType::f64);
    kernels::GemmShape s{false, true, n, n, c * width, c * width, c * width, n};
    kernels::cpu_backend().gemm(DType::f64, s, 1.0, flat.raw(), flat.raw(), 0.0, dd.raw());
    const double* ddp = dd.data<double>();
    std::vector<double> g = l.plain_gram ? std::vector<double>() : input_gram_f64(l);
    for (std::size_t q = 0; q < t.size(); ++q) t[q] += ddp[q] * (l.plain_gram ? 1.0 : g[q]);
  }
  return Tensor::from(t, Shape{n, n}, DType::f64);
}

double target_quadratic_form(const KernelFactors& f, const Tensor& labels) {
  const std::int64_t n = f.samples, c = f.classes;
  const auto y = labels.to_int_vector();
  GS_CHECK(static_cast<std::int64_t>(y.size()) == n, "target_quadratic_form: {} labels for {} samples", y.size(), n);
  auto target = [&](std::int64_t i, std::int64_t a) { return (y[static_cast<std::size_t>(i)] == a ? 1.0 : 0.0) - 1.0 / static_cast<double>(c); };
  double total = 0;
  for (const auto& l : f.layers) {
    if (l.output_layer) {  // α² Σ_ij G_ij Σ_a y_ia y_ja
      auto g = input_gram_f64(l);
      for (std::int64_t i = 0; i < n; ++i)
        for (std::int64_t j = 0; j < n; ++j) {
          double yy = 0;
          for (std::int64_t a = 0; a < c; ++a) yy += target(i, a) * target(j, a);
          total += l.output_scale * l.output_scale * g[static_cast<std::size_t>(i * n + j)] * yy;
        }
      continue;
    }
    // u_i = Σ_a y_ia d_(i,a); then Σ_ij G_ij ⟨u_i, u_j⟩ (G = 1 for a convolution's plain Gram).
    const std::int64_t width = l.signals.size(1);
    std::vector<double> u(static_cast<std::size_t>(n * width), 0.0);
    for_each_row(l, [&](std::int64_t r, const double* row, std::int64_t w) {
      const double yr = target(r / c, r % c);
      for (std::int64_t q = 0; q < w; ++q) u[static_cast<std::size_t>((r / c) * width + q)] += yr * row[q];
    });
    std::vector<double> g = l.plain_gram ? std::vector<double>() : input_gram_f64(l);
    for (std::int64_t i = 0; i < n; ++i)
      for (std::int64_t j = 0; j < n; ++j) {
        double dot = 0;
        for (std::int64_t q = 0; q < width; ++q) dot += u[static_cast<std::size_t>(i * width + q)] * u[static_cast<std::size_t>(j * width + q)];
        total += dot * (l.plain_gram ? 1.0 : g[static_cast<std::size_t>(i * n + j)]);
      }
  }
  return total;
}

}  // namespace gs::probe
