#include "engine/probe/ntk_stream.h"

#include <omp.h>

#include <algorithm>
#include <cmath>

#include "engine/autograd.h"
#include "engine/ops.h"
#include "engine/probe/ntk_products.h"
#include "engine/probe/ntk_tiles.h"
#include "kernels/cpu/region_errors.h"

namespace gs::probe {

KernelFactors kernel_factors(nn::Sequential& net, const Tensor& x) {
  NoGrad no_tape;
  KernelFactors f;
  f.layers = jacobian_factors(net, x);
  f.samples = x.size(0);
  f.classes = f.layers.back().plain_gram ? 0 : f.layers.back().signals.size(1);
  GS_CHECK(f.layers.back().output_layer, "streamed NTK: the network must end in a dense output layer (then Scale)");
  for (const auto& l : f.layers) f.input_grams.push_back(l.plain_gram ? Tensor() : tiles::input_gram(l.inputs));
  return f;
}

KernelFactors KernelFactors::to(Device device) const {
  KernelFactors out = *this;
  for (auto& l : out.layers) {
    if (l.signals.defined()) l.signals = l.signals.to(device);
    if (l.inputs.defined()) l.inputs = l.inputs.to(device);
  }
  for (auto& g : out.input_grams)
    if (g.defined()) g = g.to(device);
  return out;
}

namespace {

void check_grams(const KernelFactors& f) {
  GS_CHECK(f.input_grams.size() == f.layers.size(),
           "streamed NTK: the factors hold {} input Grams for {} layers; build them with kernel_factors", f.input_grams.size(),
           f.layers.size());
}

// Layer l's input Gram, held with the factors (built by kernel_factors); checked by the caller
// where this runs on threads.
const Tensor& gram_of(const KernelFactors& f, std::size_t l) { return f.input_grams[l]; }

}  // namespace

Tensor output_gram(const KernelFactors& f) {
  const LayerFactors& out = f.layers.back();
  check_grams(f);
  Tensor g = gram_of(f, f.layers.size() - 1).to(Device::cpu).to(DType::f64);
  double* p = g.data<double>();
  for (std::int64_t q = 0; q < g.numel(); ++q) p[q] *= out.output_scale * out.output_scale;
  return g;
}

double StreamedComparison::distance() const { return 1.0 - inner / std::sqrt(norm2_a * norm2_b); }

namespace {

struct TilePairs {
  std::vector<std::pair<std::int64_t, std::int64_t>> blocks;  // (bi, bj) with bi ≤ bj
  kernels::KernelTile tile(std::size_t p, std::int64_t n, std::int64_t c, std::int64_t size) const {
    const std::int64_t i0 = blocks[p].first * size, j0 = blocks[p].second * size;
    const std::int64_t nj = std::min(n, j0 + size) - j0;
    return {i0, std::min(n, i0 + size) - i0, j0, nj, c, nj * c};
  }
  // An upper tile stands for its mirror below the diagonal too.
  double weight(std::size_t p) const { return blocks[p].first == blocks[p].second ? 1.0 : 2.0; }
};

TilePairs upper_tiles(std::int64_t n, std::int64_t size) {
  TilePairs t;
  const std::int64_t count = (n + size - 1) / size;
  for (std::int64_t bi = 0; bi < count; ++bi)
    for (std::int64_t bj = bi; bj < count; ++bj) t.blocks.emplace_back(bi, bj);
  return t;
}

// Per-tile sums [tiles][1 + 2m], unweighted: ‖K_t‖², then ‖R_t‖² and ⟨K_t, R_t⟩ per reference.
// On the cpu, tiles run in parallel, each on one thread; on a GPU, one after the other, each
// tile's kernels using the whole device. The sums of a tile stay on its device until the end.
std::vector<double> tile_sums(const KernelFactors& cur, const std::vector<const KernelFactors*>& refs, const TilePairs& pairs,
                              std::int64_t size) {
  const std::int64_t n = cur.samples, c = cur.classes;
  const std::size_t m = refs.size(), stride = 1 + 2 * m;
  const Device device = cur.layers.front().signals.device();
  const DType dtype = cur.layers.front().signals.dtype();
  auto& be = kernels::backend(device);
  const std::int64_t tile_elements = size * c * size * c;
  Tensor sums = Tensor::empty(Shape{static_cast<std::int64_t>(pairs.blocks.size() * stride)}, DType::f64, device);
  auto* out = static_cast<double*>(sums.raw());
  auto one_tile = [&](std::size_t p, void* tk, void* tr, void* scratch) {
    const kernels::KernelTile t = pairs.tile(p, n, c, size);
    const std::int64_t elements = t.rows() * t.cols();
    tiles::write_tile(cur.layers, cur.input_grams, t, tk, scratch);
    be.dot_f64(dtype, elements, tk, tk, out + p * stride);
    for (std::size_t r = 0; r < m; ++r) {
      tiles::write_tile(refs[r]->layers, refs[r]->input_grams, t, tr, scratch);
      be.dot_f64(dtype, elements, tr, tr, out + p * stride + 1 + 2 * r);
      be.dot_f64(dtype, elements, tk, tr, out + p * stride + 2 + 2 * r);
    }
  };
  if (device == Device::cpu) {
    // Three tile buffers a thread, allocated here: running out of memory inside the parallel
    // region would end the process instead of throwing.
    const int threads = omp_get_max_threads();
    std::vector<Tensor> buffers;
    for (int t = 0; t < 3 * threads; ++t) buffers.push_back(Tensor::empty(Shape{tile_elements}, dtype));
    kernels::cpu::RegionErrors errors;
#pragma omp parallel num_threads(threads)
    {
      const auto own = static_cast<std::size_t>(3 * omp_get_thread_num());
#pragma omp for schedule(dynamic)
      for (std::size_t p = 0; p < pairs.blocks.size(); ++p)
        errors.guard([&] { one_tile(p, buffers[own].raw(), buffers[own + 1].raw(), buffers[own + 2].raw()); });
    }
    errors.rethrow();
  } else {
    Tensor tk = Tensor::empty(Shape{tile_elements}, dtype, device), tr = Tensor::empty(Shape{tile_elements}, dtype, device);
    Tensor scratch = Tensor::empty(Shape{tile_elements}, dtype, device);
    for (std::size_t p = 0; p < pairs.blocks.size(); ++p) one_tile(p, tk.raw(), tr.raw(), scratch.raw());
  }
  return sums.to_vector();
}

StreamedSums compare_many(const KernelFactors& cur, const std::vector<const KernelFactors*>& refs, std::int64_t size) {
  const TilePairs pairs = upper_tiles(cur.samples, size);
  const std::size_t m = refs.size(), stride = 1 + 2 * m;
  const auto per_tile = tile_sums(cur, refs, pairs, size);
  // Added in tile order: the result does not depend on the threads.
  StreamedSums total;
  total.norm2_ref.assign(m, 0.0);
  total.inner.assign(m, 0.0);
  for (std::size_t p = 0; p < pairs.blocks.size(); ++p) {
    const double w = pairs.weight(p);
    const double* t = per_tile.data() + p * stride;
    total.norm2 += w * t[0];
    for (std::size_t r = 0; r < m; ++r) {
      total.norm2_ref[r] += w * t[1 + 2 * r];
      total.inner[r] += w * t[2 + 2 * r];
    }
  }
  return total;
}

void check_same_points(const KernelFactors& a, const KernelFactors& b) {
  GS_CHECK(a.samples == b.samples && a.classes == b.classes && a.layers.size() == b.layers.size(),
           "compare_streamed: the two kernels are not over the same points and logits ({}×{} vs {}×{})", a.samples,
           a.classes, b.samples, b.classes);
  GS_CHECK(a.layers.front().signals.dtype() == b.layers.front().signals.dtype(),
           "compare_streamed: the kernels' factors are {} and {}; compare factors of one dtype",
           dtype_name(a.layers.front().signals.dtype()), dtype_name(b.layers.front().signals.dtype()));
}

}  // namespace

std::int64_t streamed_tile_samples(Device device, std::int64_t classes) {
  if (device != Device::cpu) return 64;
  return std::max<std::int64_t>(1, 768 / std::max<std::int64_t>(1, classes));
}

StreamedSums compare_streamed(const KernelFactors& current, const std::vector<const KernelFactors*>& refs,
                              std::int64_t tile_samples, StreamedMethod method) {
  GS_CHECK(tile_samples >= 0, "compare_streamed: tile_samples must be at least 1, or 0 to let the device choose");
  if (tile_samples == 0) tile_samples = streamed_tile_samples(current.device(), current.classes);
  check_grams(current);
  for (const auto* r : refs) check_grams(*r);
  for (const auto* r : refs) check_same_points(current, *r);
  for (const auto* r : refs)
    GS_CHECK(r->layers.front().signals.device() == current.layers.front().signals.device(),
             "compare_streamed: the kernels' factors are on different devices ({} and {}); move one with KernelFactors::to",
             device_name(current.layers.front().signals.device()), device_name(r->layers.front().signals.device()));
  if (method == StreamedMethod::sample_products) {
    GS_CHECK(current.device() == Device::cpu, "compare_streamed: sample products run on the cpu; the factors are on {}",
             device_name(current.device()));
    for (const auto& l : current.layers)
      GS_CHECK(!l.plain_gram, "compare_streamed: sample products need dense layers; {} is a convolution", l.name);
  }
  if (method == StreamedMethod::sample_products ||
      (method == StreamedMethod::cheaper && products::cheaper(current, refs.size()))) {
    StreamedSums s;
    s.norm2 = products::inner(current, current);
    for (const auto* r : refs) {
      s.norm2_ref.push_back(std::isnan(r->norm2) ? products::inner(*r, *r) : r->norm2);
      s.inner.push_back(products::inner(current, *r));
    }
    return s;
  }
  return compare_many(current, refs, tile_samples);
}

StreamedComparison compare_streamed(const KernelFactors& a, const KernelFactors& b, std::int64_t tile_samples,
                                    StreamedMethod method) {
  auto s = compare_streamed(a, std::vector<const KernelFactors*>{&b}, tile_samples, method);
  return {s.norm2, s.norm2_ref[0], s.inner[0]};
}

namespace {

// One layer's block of the per-logit trace Σ_a K_l[(i,a),(j,a)], f64 [n, n], where the factors
// are; g is the layer's input Gram.
Tensor layer_trace_kernel(const LayerFactors& l, const Tensor& g, std::int64_t n, std::int64_t c) {
  if (l.output_layer)  // C α² (H Hᵀ + 1)
    return ops::scale(g.to(DType::f64), static_cast<double>(c) * l.output_scale * l.output_scale);
  // Σ_a ⟨d_(i,a), d_(j,a)⟩ = ⟨vec D_i, vec D_j⟩ with D_i the C × width block of sample i.
  const std::int64_t width = l.signals.size(1);
  const Device device = l.signals.device();
  Tensor flat = l.signals.view(Shape{n, c * width}).to(DType::f64);
  Tensor dd = Tensor::empty(Shape{n, n}, DType::f64, device);
  kernels::GemmShape s{false, true, n, n, c * width, c * width, c * width, n};
  kernels::backend(device).gemm(DType::f64, s, 1.0, flat.raw(), flat.raw(), 0.0, dd.raw());
  return l.plain_gram ? dd : ops::mul(dd, g.to(DType::f64));
}

}  // namespace

std::vector<Tensor> layer_trace_kernels(const KernelFactors& f) {
  NoGrad no_tape;
  check_grams(f);
  std::vector<Tensor> out;
  for (std::size_t l = 0; l < f.layers.size(); ++l)
    out.push_back(layer_trace_kernel(f.layers[l], gram_of(f, l), f.samples, f.classes).to(Device::cpu));
  return out;
}

Tensor add_kernels(const std::vector<Tensor>& layer_traces) {
  GS_CHECK(!layer_traces.empty(), "add_kernels: no kernels to add");
  Tensor t = Tensor::zeros(layer_traces.front().shape(), DType::f64);
  double* p = t.data<double>();
  for (const auto& layer : layer_traces) {
    const double* q = layer.data<double>();
    for (std::int64_t i = 0; i < t.numel(); ++i) p[i] += q[i];
  }
  return t;
}

Tensor trace_kernel(const KernelFactors& f) { return add_kernels(layer_trace_kernels(f)); }

double target_quadratic_form(const KernelFactors& f, const Tensor& labels) {
  NoGrad no_tape;
  check_grams(f);
  const std::int64_t n = f.samples, c = f.classes;
  const auto y = labels.to_int_vector();
  GS_CHECK(static_cast<std::int64_t>(y.size()) == n, "target_quadratic_form: {} labels for {} samples", y.size(), n);
  for (std::size_t i = 0; i < y.size(); ++i)
    GS_CHECK(y[i] >= 0 && y[i] < c, "target_quadratic_form: label {} of sample {} is not a class of the kernel's {} logits",
             y[i], i, c);
  const Device device = f.device();
  auto& be = kernels::backend(device);
  // Y [n, C], the centred one-hot labels: the only upload.
  std::vector<double> targets(static_cast<std::size_t>(n * c));
  for (std::int64_t i = 0; i < n; ++i)
    for (std::int64_t a = 0; a < c; ++a)
      targets[static_cast<std::size_t>(i * c + a)] = (y[static_cast<std::size_t>(i)] == a ? 1.0 : 0.0) - 1.0 / static_cast<double>(c);
  const Tensor target = Tensor::from(targets, Shape{n, c}, DType::f64, device);
  // Row products u uᵀ [n, n] and f64 sums, on the device; only the sums come back.
  auto row_products = [&](const Tensor& u) {
    const std::int64_t w = u.size(1);
    Tensor uu = Tensor::empty(Shape{n, n}, DType::f64, device);
    be.gemm(DType::f64, kernels::GemmShape{false, true, n, n, w, w, w, n}, 1.0, u.raw(), u.raw(), 0.0, uu.raw());
    return uu;
  };
  Tensor sum = Tensor::empty(Shape{1}, DType::f64, device);
  auto inner = [&](const Tensor& a, const Tensor& b) {  // Σ_q a_q b_q
    be.dot_f64(DType::f64, a.numel(), a.raw(), b.raw(), static_cast<double*>(sum.raw()));
    return sum.item();
  };
  double total = 0;
  for (std::size_t layer = 0; layer < f.layers.size(); ++layer) {
    const LayerFactors& l = f.layers[layer];
    if (l.output_layer) {  // α² Σ_ij G_ij ⟨y_i, y_j⟩
      total += l.output_scale * l.output_scale * inner(gram_of(f, layer).to(DType::f64), row_products(target));
      continue;
    }
    // u_i = Σ_a y_ia d_(i,a): D [n, C, width] times Y [n, C, 1], summed over a (the reduction that
    // a broadcast product's gradient makes), then Σ_ij G_ij ⟨u_i, u_j⟩ (G = 1 for a convolution).
    const std::int64_t width = l.signals.size(1);
    const Tensor d = l.signals.to(DType::f64);
    Tensor u = Tensor::empty(Shape{n, width}, DType::f64, device);
    kernels::Broadcast b;
    b.out = {1, n, c, width};
    be.reduce_to_operand(DType::f64, b, {0, width, 0, 1}, n * width, 1.0, d.raw(), {0, c, 1, 0}, target.raw(), u.raw());
    const Tensor uu = row_products(u);
    if (l.plain_gram) {
      be.sum(DType::f64, uu.numel(), uu.raw(), sum.raw());
      total += sum.item();
    } else {
      total += inner(uu, gram_of(f, layer).to(DType::f64));
    }
  }
  return total;
}

}  // namespace gs::probe
