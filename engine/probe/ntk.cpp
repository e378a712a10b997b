#include "engine/probe/ntk.h"

#include <fmt/format.h>
#include <omp.h>
#include <unistd.h>

#include <cmath>

#include "engine/autograd.h"
#include "engine/ops.h"
#include "engine/probe/ntk_tiles.h"
#include "kernels/backend.h"
#include "kernels/cpu/region_errors.h"

namespace gs::probe {

namespace {

using nn::ActivationLayer;

// f'(z) elementwise, from the activation's backward with a cotangent of ones.
Tensor activation_derivative(nn::Activation kind, const Tensor& z) {
  Tensor out = Tensor::empty(z.shape(), z.dtype(), z.device());
  Tensor ones = Tensor::full(z.shape(), 1.0, z.dtype(), z.device());
  kernels::Unary op = kernels::Unary::relu;
  switch (kind) {
    case nn::Activation::relu: op = kernels::Unary::relu; break;
    case nn::Activation::tanh: op = kernels::Unary::tanh; break;
    case nn::Activation::gelu: op = kernels::Unary::gelu; break;
    case nn::Activation::sigmoid: op = kernels::Unary::sigmoid; break;
  }
  // tanh and sigmoid differentiate from their output, relu and gelu from their input.
  const bool from_output = op == kernels::Unary::tanh || op == kernels::Unary::sigmoid;
  Tensor y;
  if (from_output) {
    y = Tensor::empty(z.shape(), z.dtype(), z.device());
    kernels::backend(z.device()).unary(op, z.dtype(), z.numel(), z.raw(), y.raw());
  }
  kernels::backend(z.device())
      .unary_backward(op, z.dtype(), z.numel(), z.raw(), from_output ? y.raw() : nullptr, ones.raw(), out.raw());
  return out;
}

struct Step {
  const nn::Module* layer;
  Tensor input;  // what the layer saw
};

kernels::ConvGeometry geometry_of(const nn::Conv2d& conv, const Tensor& in) {
  kernels::ConvGeometry g;
  g.channels = in.size(1);
  g.height = in.size(2);
  g.width = in.size(3);
  g.kernel_h = conv.weight().size(2);
  g.kernel_w = conv.weight().size(3);
  g.stride = conv.stride();
  g.padding = conv.padding();
  return g;
}

// Max-pool routes each row's signal back to its window's winner; the winners are sample i's,
// shared by its C rows. Pooling the input repeated C times (x · 1 is exact) gives every row its
// winners on the input's device, with the pooling kernels' tie rule.
Tensor pool_backward(const nn::MaxPool2d& pool, const Tensor& in, const Tensor& signals, std::int64_t classes) {
  const std::int64_t n = in.size(0), ch = in.size(1), plane = in.size(2) * in.size(3);
  Tensor repeated = ops::mul(in.view(Shape{n, 1, ch * plane}), Tensor::full(Shape{1, classes, 1}, 1.0, in.dtype(), in.device()));
  kernels::PoolGeometry rows{n * classes * ch, in.size(2), in.size(3), pool.kernel(), pool.stride()};
  const std::int64_t outs = rows.planes * rows.out_h() * rows.out_w();
  Tensor pooled = Tensor::empty(Shape{outs}, in.dtype(), in.device());
  Tensor winners = Tensor::empty(Shape{outs}, DType::i32, in.device());
  auto& be = kernels::backend(in.device());
  be.max_pool2d(in.dtype(), rows, repeated.raw(), pooled.raw(), static_cast<std::int32_t*>(winners.raw()));
  Tensor back = Tensor::empty(Shape{n * classes, ch * plane}, in.dtype(), in.device());
  be.max_pool2d_backward(in.dtype(), rows, signals.raw(), static_cast<const std::int32_t*>(winners.raw()), back.raw());
  return back;
}

// The per-(sample, logit) gradients of a convolution's weight and bias, one row each:
// G_(i,a) = [D_(i,a) P_iᵀ, Σ_pixels D_(i,a)], with D_(i,a) [Co, pixels] the signal at the
// layer's output and P_i [patch, pixels] sample i's im2col patches. Then K_l = G Gᵀ. On the
// input's device: per sample one im2col and two small GEMMs per logit.
LayerFactors conv_factors(const nn::Conv2d& conv, const Tensor& in, const Tensor& signals, std::int64_t classes,
                          std::string name) {
  const auto g = geometry_of(conv, in);
  const std::int64_t n = in.size(0), co = conv.weight().size(0), patch = g.patch_size(), pixels = g.out_h() * g.out_w();
  const bool bias = conv.bias().defined();
  const std::int64_t width = co * patch + (bias ? co : 0);
  const std::size_t elt = dtype_size(in.dtype());
  auto& be = kernels::backend(in.device());
  Tensor cols = Tensor::empty(Shape{patch, pixels}, in.dtype(), in.device());
  Tensor grads = Tensor::empty(Shape{n * classes, width}, in.dtype(), in.device());
  Tensor ones = Tensor::full(Shape{pixels, 1}, 1.0, in.dtype(), in.device());
  for (std::int64_t i = 0; i < n; ++i) {
    be.im2col(in.dtype(), g, static_cast<const char*>(in.raw()) + i * g.channels * g.height * g.width * elt, cols.raw());
    const auto* d = static_cast<const char*>(signals.raw()) + i * classes * co * pixels * elt;
    auto* out = static_cast<char*>(grads.raw()) + i * classes * width * elt;
    for (std::int64_t a = 0; a < classes; ++a) {
      const void* da = d + a * co * pixels * elt;
      void* row = out + a * width * elt;
      kernels::GemmShape w{false, true, co, patch, pixels, pixels, pixels, patch};  // D Pᵀ
      be.gemm(in.dtype(), w, 1.0, da, cols.raw(), 0.0, row);
      if (bias) {
        kernels::GemmShape b{false, false, co, 1, pixels, pixels, 1, 1};  // D 1
        be.gemm(in.dtype(), b, 1.0, da, ones.raw(), 0.0, static_cast<char*>(row) + co * patch * elt);
      }
    }
  }
  LayerFactors f;
  f.name = std::move(name);
  f.signals = grads;
  f.plain_gram = true;
  return f;
}

// The signals at the convolution's input: the input gradient of every row's output signal, the
// n·C rows taken as a batch of images (col2im(Wᵀ D_(i,a)) each, on the cpu).
Tensor conv_input_signals(const nn::Conv2d& conv, const Tensor& in, const Tensor& signals, std::int64_t classes) {
  const auto g = geometry_of(conv, in);
  const std::int64_t rows = in.size(0) * classes, co = conv.weight().size(0);
  Tensor out = Tensor::empty(Shape{rows, g.channels * g.height * g.width}, in.dtype(), in.device());
  kernels::backend(in.device()).conv2d_backward_data(in.dtype(), g, rows, co, signals.raw(), conv.weight().raw(), out.raw());
  return out;
}

}  // namespace

std::vector<LayerFactors> jacobian_factors(nn::Sequential& net, const Tensor& x) {
  NoGrad no_tape;
  GS_CHECK(x.rank() >= 2 && x.size(0) > 0, "NTK probe: the inputs must be [n, ...] with n ≥ 1, got {}", x.describe());
  std::vector<Step> steps;
  Tensor h = x;
  for (std::size_t i = 0; i < net.size(); ++i) {
    steps.push_back({&net[i], h});
    h = net[i].forward(h);
  }
  GS_CHECK(h.rank() == 2, "NTK probe: the network's output must be [n, classes], got {}", h.describe());
  const std::int64_t n = x.size(0), classes = h.size(1);

  // The lowest layer with parameters: the backward stops there (every parameter must be seen).
  std::size_t lowest = steps.size();
  for (std::size_t i = 0; i < steps.size(); ++i)
    if (steps[i].layer->parameter_count() > 0) {
      lowest = i;
      break;
    }
  GS_CHECK(lowest < steps.size(), "NTK probe: the network has no parameters");

  // The signals, as [n, C, width]: row (i, a) is ∂f_a(x_i)/∂(this layer's output).
  std::vector<double> eye(static_cast<std::size_t>(n * classes * classes), 0.0);
  for (std::int64_t i = 0; i < n; ++i)
    for (std::int64_t a = 0; a < classes; ++a) eye[static_cast<std::size_t>((i * classes + a) * classes + a)] = 1.0;
  Tensor signals = Tensor::from(eye, Shape{n * classes, classes}, x.dtype(), x.device());
  double scale_above = 1.0;  // product of the Scale layers above: signals are still scale·δ_ab
  bool identity = true;      // no Linear passed yet

  std::vector<LayerFactors> factors;
  for (std::size_t k = steps.size(); k-- > lowest;) {
    const nn::Module* layer = steps[k].layer;
    const Tensor& in = steps[k].input;
    if (auto* s = dynamic_cast<const nn::Scale*>(layer)) {
      signals = ops::scale(signals, s->factor());
      scale_above *= s->factor();
    } else if (auto* lin = dynamic_cast<const nn::Linear*>(layer)) {
      GS_CHECK(in.rank() == 2, "NTK probe: {} gets {}, expected [n, features]", lin->describe(), in.describe());
      LayerFactors f;
      f.name = fmt::format("layers.{}", k);
      f.signals = signals;
      f.inputs = in;
      f.output_layer = identity;
      f.output_scale = scale_above;
      factors.push_back(std::move(f));
      identity = false;
      if (k > lowest) signals = ops::matmul(signals, lin->weight());  // [nC, out] × [out, in]
    } else if (auto* act = dynamic_cast<const ActivationLayer*>(layer)) {
      identity = false;  // an activation above the output layer would break the δ_ab shortcut
      Tensor deriv = activation_derivative(act->kind(), in);  // [n, width]
      const std::int64_t width = deriv.numel() / n;
      signals = ops::mul(signals.view(Shape{n, classes, width}), deriv.view(Shape{n, 1, width})).view(Shape{n * classes, width});
    } else if (dynamic_cast<const nn::Flatten*>(layer)) {
      // signals stay [nC, features]; the layers below read their own shapes
    } else if (auto* pool = dynamic_cast<const nn::MaxPool2d*>(layer)) {
      identity = false;
      signals = pool_backward(*pool, in, signals, classes);
    } else if (auto* conv = dynamic_cast<const nn::Conv2d*>(layer)) {
      identity = false;
      factors.push_back(conv_factors(*conv, in, signals, classes, fmt::format("layers.{}", k)));
      if (k > lowest) signals = conv_input_signals(*conv, in, signals, classes);
    } else {
      fail("NTK probe: {} is not supported (Linear, Conv2d, MaxPool2d, activations, Flatten, Scale)", layer->describe());
    }
  }
  std::reverse(factors.begin(), factors.end());
  return factors;
}

namespace {

// K [nC, nC] assembled tile by tile over sample blocks: only tiles on or above the diagonal are
// computed (K is symmetric), the lower ones mirrored. Tiles run in parallel; each tile's GEMMs
// run on one thread, so the work is spread without nesting BLAS threads.
template <class T>
void assemble(const std::vector<LayerFactors>& factors, std::int64_t n, std::int64_t c, std::int64_t tile, T* k) {
  std::vector<Tensor> grams;
  for (const auto& f : factors) grams.push_back(f.plain_gram ? Tensor() : tiles::input_gram(f.inputs));
  const std::int64_t rows = n * c, blocks = (n + tile - 1) / tile;
  std::vector<std::pair<std::int64_t, std::int64_t>> tiles;
  for (std::int64_t bi = 0; bi < blocks; ++bi)
    for (std::int64_t bj = bi; bj < blocks; ++bj) tiles.emplace_back(bi, bj);
  // Each thread's scratch is allocated here: memory running out inside the parallel region would
  // end the process instead of throwing.
  const int threads = omp_get_max_threads();
  const auto scratch_size = static_cast<std::size_t>(std::min(tile, n) * c * std::min(tile, n) * c);
  std::vector<std::vector<T>> scratch(static_cast<std::size_t>(threads), std::vector<T>(scratch_size));
  kernels::cpu::RegionErrors errors;
#pragma omp parallel num_threads(threads)
  {
    T* own = scratch[static_cast<std::size_t>(omp_get_thread_num())].data();
#pragma omp for schedule(dynamic)
    for (std::size_t t = 0; t < tiles.size(); ++t) errors.guard([&] {
      const std::int64_t i0 = tiles[t].first * tile, i1 = std::min(n, i0 + tile);
      const std::int64_t j0 = tiles[t].second * tile, j1 = std::min(n, j0 + tile);
      T* block = k + i0 * c * rows + j0 * c;
      tiles::write_tile(factors, grams, kernels::KernelTile{i0, i1 - i0, j0, j1 - j0, c, rows}, block, own);
    });
  }
  errors.rethrow();
  // Mirror the upper tiles into the lower ones, block by block so that reads and writes stay in cache.
  constexpr std::int64_t block = 64;
  const std::int64_t nblocks = (rows + block - 1) / block;
#pragma omp parallel for schedule(dynamic)
  for (std::int64_t bi = 0; bi < nblocks; ++bi)
    for (std::int64_t bj = 0; bj <= bi; ++bj)
      for (std::int64_t r = bi * block; r < std::min(rows, (bi + 1) * block); ++r) {
        const std::int64_t computed_from = (r / c / tile) * tile * c;  // row r's tiles start here
        for (std::int64_t col = bj * block; col < std::min({rows, (bj + 1) * block, computed_from}); ++col)
          k[r * rows + col] = k[col * rows + r];
      }
}

// trace(K_l) = Σ_(i,a) ‖d_(i,a)‖² · G[i, i]: each layer's share without its kernel.
template <class T>
double layer_trace(const LayerFactors& f, const T* g, std::int64_t n, std::int64_t c) {
  if (f.plain_gram) {
    const T* d = static_cast<const T*>(f.signals.raw());
    double s = 0;
    for (std::int64_t q = 0; q < f.signals.numel(); ++q) s += static_cast<double>(d[q]) * d[q];
    return s;
  }
  if (f.output_layer) {
    double s = 0;
    for (std::int64_t i = 0; i < n; ++i) s += static_cast<double>(g[i * n + i]);
    return f.output_scale * f.output_scale * static_cast<double>(c) * s;
  }
  const std::int64_t width = f.signals.size(1);
  const T* d = static_cast<const T*>(f.signals.raw());
  double s = 0;
  for (std::int64_t r = 0; r < n * c; ++r) {
    double norm2 = 0;
    for (std::int64_t q = 0; q < width; ++q) norm2 += static_cast<double>(d[r * width + q]) * d[r * width + q];
    s += norm2 * static_cast<double>(g[(r / c) * n + r / c]);
  }
  return s;
}

template <class T>
Ntk build(const std::vector<LayerFactors>& factors, std::int64_t n, std::int64_t c, DType dtype, const NtkOptions& o) {
  Ntk out;
  out.samples = n;
  out.classes = c;
  const std::int64_t rows = n * c;
  out.kernel = Tensor::empty(Shape{rows, rows}, dtype);
  assemble(factors, n, c, o.tile_samples, out.kernel.template data<T>());
  for (const auto& f : factors) {
    const Tensor g = f.plain_gram ? Tensor() : tiles::input_gram(f.inputs);
    out.layer_names.push_back(f.name);
    out.layer_traces.push_back(layer_trace(f, f.plain_gram ? nullptr : g.template data<T>(), n, c));
    if (f.output_layer) {
      out.output_gram = Tensor::empty(Shape{n, n}, DType::f64);
      double* og = out.output_gram.template data<double>();
      const T* gv = g.template data<T>();
      for (std::int64_t q = 0; q < n * n; ++q) og[q] = f.output_scale * f.output_scale * static_cast<double>(gv[q]);
    }
    if (o.per_layer) {
      Tensor k = Tensor::empty(Shape{rows, rows}, dtype);
      assemble(std::vector<LayerFactors>{f}, n, c, o.tile_samples, k.template data<T>());
      out.per_layer.push_back(k);
    }
  }
  return out;
}

}  // namespace

std::size_t available_memory_bytes() {
  const long pages = sysconf(_SC_AVPHYS_PAGES), page = sysconf(_SC_PAGESIZE);
  return pages > 0 && page > 0 ? static_cast<std::size_t>(pages) * static_cast<std::size_t>(page) : 0;
}

Ntk empirical_ntk(nn::Sequential& net, const Tensor& x, const NtkOptions& options) {
  NoGrad no_tape;
  GS_CHECK(x.device() == Device::cpu, "NTK probe: the {} device has no NTK kernels yet; probe on the cpu",
           device_name(x.device()));
  GS_CHECK(options.tile_samples >= 1, "NTK probe: tile_samples must be at least 1");
  auto factors = jacobian_factors(net, x);
  const std::int64_t n = x.size(0), c = factors.back().signals.size(1), rows = n * c;
  const std::size_t bytes = static_cast<std::size_t>(rows) * static_cast<std::size_t>(rows) * dtype_size(x.dtype()) *
                            (options.per_layer ? factors.size() + 1 : 1);
  const std::size_t available = available_memory_bytes();
  GS_CHECK(available == 0 || bytes < available,
           "NTK probe: {} samples × {} logits need {:.1f} GiB for the kernel but {:.1f} GiB are free; use a smaller "
           "probe set (probe.train_size, probe.test_size)",
           n, c, static_cast<double>(bytes) / (1 << 30), static_cast<double>(available) / (1 << 30));
  return x.dtype() == DType::f32 ? build<float>(factors, n, c, x.dtype(), options)
                                 : build<double>(factors, n, c, x.dtype(), options);
}

Tensor brute_force_jacobian(nn::Sequential& net, const Tensor& x) {
  auto params = net.parameters();
  std::int64_t p_total = 0;
  for (const auto& p : params) p_total += p.numel();
  const std::int64_t n = x.size(0);
  std::int64_t c = 0;
  std::vector<double> rows;
  for (std::int64_t i = 0; i < n; ++i) {
    Tensor y = net.forward(x.rows(i, i + 1));
    c = y.size(1);
    for (std::int64_t a = 0; a < c; ++a) {  // the per-logit loop the factored probe replaces
      for (auto& p : params) p.zero_grad();
      std::vector<double> onehot(static_cast<std::size_t>(c), 0.0);
      onehot[static_cast<std::size_t>(a)] = 1.0;
      y.backward(Tensor::from(onehot, y.shape(), y.dtype(), y.device()), /*retain_graph=*/a + 1 < c);
      for (const auto& p : params) {
        auto g = p.grad().defined() ? p.grad().to_vector() : std::vector<double>(static_cast<std::size_t>(p.numel()), 0.0);
        rows.insert(rows.end(), g.begin(), g.end());
      }
    }
  }
  for (auto& p : params) p.zero_grad();
  return Tensor::from(rows, Shape{n * c, p_total}, x.dtype());
}

Tensor brute_force_ntk(nn::Sequential& net, const Tensor& x) {
  Tensor j = brute_force_jacobian(net, x);
  NoGrad no_tape;
  Tensor k = Tensor::empty(Shape{j.size(0), j.size(0)}, j.dtype());
  kernels::GemmShape s{false, true, j.size(0), j.size(0), j.size(1), j.size(1), j.size(1), j.size(0)};
  kernels::cpu_backend().gemm(j.dtype(), s, 1.0, j.raw(), j.raw(), 0.0, k.raw());
  return k;
}

}  // namespace gs::probe
