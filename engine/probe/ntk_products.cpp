#include "engine/probe/ntk_products.h"

#include <algorithm>
#include <vector>

#include "kernels/backend.h"
#include "kernels/cpu/region_errors.h"

namespace gs::probe::products {

namespace {

// Σ_ij G_l[i,j] G'_m[i,j] ⟨M_lm(i), M_lm(j)⟩ for layer l of a and layer m of b.
template <class T>
double layer_pair_sum(const KernelFactors& a, std::size_t l, const KernelFactors& b, std::size_t m, const Blocking& blocking) {
  const std::int64_t chunk_depth = blocking.chunk_depth, band_rows = blocking.band_rows;
  const LayerFactors& fa = a.layers[l];
  const LayerFactors& fb = b.layers[m];
  const std::int64_t n = a.samples, c = a.classes, wl = fa.signals.size(1), wm = fb.signals.size(1);
  // x holds n rows of a chunk's depth: at most 2^26 values (256 MB in f32) for large probe sets.
  const std::int64_t depth = std::min(chunk_depth, std::max<std::int64_t>(wm, (std::int64_t{1} << 26) / n));
  const std::int64_t rows_per_chunk = std::clamp<std::int64_t>(depth / wm, 1, wl), ldx = rows_per_chunk * wm;
  const DType dtype = fa.signals.dtype();
  auto& be = kernels::backend(Device::cpu);
  Tensor x_tensor = Tensor::empty(Shape{n, ldx}, dtype), s_tensor = Tensor::empty(Shape{n, n}, dtype);
  T* x = x_tensor.data<T>();
  T* s = s_tensor.data<T>();
  const T* d = fa.signals.data<T>();
  const T* e = fb.signals.data<T>();
  const T* ga = a.input_grams[l].data<T>();
  const T* gb = b.input_grams[m].data<T>();
  std::vector<double> row_sums(static_cast<std::size_t>(n));
  double total = 0;
  for (std::int64_t p0 = 0; p0 < wl; p0 += rows_per_chunk) {
    const std::int64_t p = std::min(rows_per_chunk, wl - p0), chunk = p * wm;
    // Row i of x: rows p0 .. p0 + p of M_lm(i), D_l(i)[:, p0 : p0 + p]ᵀ E_m(i), one GEMM per
    // sample; inside the parallel loop BLAS runs on the calling thread.
    kernels::cpu::RegionErrors errors;
#pragma omp parallel for schedule(static)
    for (std::int64_t i = 0; i < n; ++i) errors.guard([&] {
      be.gemm(dtype, kernels::GemmShape{true, false, p, wm, c, wl, wm, wm}, 1.0, d + i * c * wl + p0, e + i * c * wm, 0.0,
              x + i * ldx);
    });
    errors.rethrow();
    // S = x xᵀ on and right of the diagonal blocks, a band of rows at a time (BLAS on every thread).
    for (std::int64_t i0 = 0; i0 < n; i0 += band_rows) {
      const std::int64_t rows = std::min(band_rows, n - i0);
      be.gemm(dtype, kernels::GemmShape{false, true, rows, n - i0, chunk, ldx, ldx, n}, 1.0, x + i0 * ldx, x + i0 * ldx, 0.0,
              s + i0 * n + i0);
    }
    // Each band's diagonal block counts once, the blocks right of it for themselves and their
    // mirror; rows in parallel, added in row order.
#pragma omp parallel for schedule(static)
    for (std::int64_t i = 0; i < n; ++i) {
      const std::int64_t i0 = i / band_rows * band_rows, i1 = std::min(n, i0 + band_rows);
      const T* gar = ga + i * n;
      const T* gbr = gb + i * n;
      const T* sr = s + i * n;
      double diagonal = 0, right = 0;
      for (std::int64_t j = i0; j < i1; ++j)
        diagonal += static_cast<double>(gar[j]) * static_cast<double>(gbr[j]) * static_cast<double>(sr[j]);
      for (std::int64_t j = i1; j < n; ++j)
        right += static_cast<double>(gar[j]) * static_cast<double>(gbr[j]) * static_cast<double>(sr[j]);
      row_sums[static_cast<std::size_t>(i)] = diagonal + 2 * right;
    }
    for (double v : row_sums) total += v;
  }
  return total;
}

double layer_pair(const KernelFactors& a, std::size_t l, const KernelFactors& b, std::size_t m, const Blocking& blocking) {
  if (a.layers[l].signals.dtype() == DType::f64) return layer_pair_sum<double>(a, l, b, m, blocking);
  return layer_pair_sum<float>(a, l, b, m, blocking);
}

}  // namespace

bool cheaper(const KernelFactors& f, std::size_t references) {
  if (f.device() != Device::cpu || f.classes == 0) return false;
  double widths = 0, hidden = 0;  // Σ_l w_l over every layer; over the layers whose tiles need a GEMM
  for (const auto& l : f.layers) {
    if (l.plain_gram) return false;
    widths += static_cast<double>(l.signals.size(1));
    if (!l.output_layer) hidden += static_cast<double>(l.signals.size(1));
  }
  const double c2 = static_cast<double>(f.classes) * static_cast<double>(f.classes), m = static_cast<double>(references);
  const double tiles = (1 + m) * c2 * hidden;                                  // a GEMM per layer and kernel built
  const double sample_products = widths * widths * (0.5 + m * (0.5 + 1.0));  // ‖K‖², then per reference ‖R‖² and ⟨K,R⟩
  return sample_products < tiles;
}

double inner(const KernelFactors& a, const KernelFactors& b, const Blocking& blocking) {
  GS_CHECK(a.device() == Device::cpu && b.device() == Device::cpu, "NTK sample products: the factors must be on the cpu");
  GS_CHECK(blocking.chunk_depth >= 1 && blocking.band_rows >= 1, "NTK sample products: the blocking must be positive");
  const std::size_t layers_a = a.layers.size(), layers_b = b.layers.size();
  double total = 0;
  if (&a == &b) {  // pairs (l, m) and (m, l) are equal
    for (std::size_t l = 0; l < layers_a; ++l)
      for (std::size_t m = l; m < layers_a; ++m) total += (l == m ? 1.0 : 2.0) * layer_pair(a, l, a, m, blocking);
    return total;
  }
  for (std::size_t l = 0; l < layers_a; ++l)
    for (std::size_t m = 0; m < layers_b; ++m) total += layer_pair(a, l, b, m, blocking);
  return total;
}

}  // namespace gs::probe::products
