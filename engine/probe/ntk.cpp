#include "engine/probe/ntk.h"

#include <fmt/format.h>
#include <unistd.h>

#include <cmath>

#include "engine/autograd.h"
#include "engine/ops.h"
#include "kernels/backend.h"

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

}  // namespace

std::vector<DenseFactors> jacobian_factors(nn::Sequential& net, const Tensor& x) {
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

  std::vector<DenseFactors> factors;
  for (std::size_t k = steps.size(); k-- > lowest;) {
    const nn::Module* layer = steps[k].layer;
    const Tensor& in = steps[k].input;
    if (auto* s = dynamic_cast<const nn::Scale*>(layer)) {
      signals = ops::scale(signals, s->factor());
      scale_above *= s->factor();
    } else if (auto* lin = dynamic_cast<const nn::Linear*>(layer)) {
      GS_CHECK(in.rank() == 2, "NTK probe: {} gets {}, expected [n, features]", lin->describe(), in.describe());
      DenseFactors f;
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
      // dense signals are already flat
    } else {
      fail("NTK probe: {} is not supported yet (dense networks only: Linear, activations, Flatten, Scale)", layer->describe());
    }
  }
  std::reverse(factors.begin(), factors.end());
  return factors;
}

namespace {

std::size_t available_memory_bytes() {
  const long pages = sysconf(_SC_AVPHYS_PAGES), page = sysconf(_SC_PAGESIZE);
  return pages > 0 && page > 0 ? static_cast<std::size_t>(pages) * static_cast<std::size_t>(page) : 0;
}

// K_l[(i,a),(j,b)] = G_D[(i,a),(j,b)] · (H Hᵀ + 1)[i, j], written over G_D.
template <class T>
void hadamard_with_input_gram(T* gd, const T* gh, std::int64_t n, std::int64_t c) {
  const std::int64_t rows = n * c;
#pragma omp parallel for if (rows * rows > (1 << 16))
  for (std::int64_t r = 0; r < rows; ++r) {
    const T* ghr = gh + (r / c) * n;
    T* out = gd + r * rows;
    for (std::int64_t col = 0; col < rows; ++col) out[col] *= ghr[col / c] + T(1);
  }
}

// The output layer: K_L = α² δ_ab (H Hᵀ + 1)[i, j].
template <class T>
void output_layer_kernel(T* k, const T* gh, std::int64_t n, std::int64_t c, double alpha2) {
  const std::int64_t rows = n * c;
  std::fill_n(k, rows * rows, T(0));
  for (std::int64_t i = 0; i < n; ++i)
    for (std::int64_t j = 0; j < n; ++j) {
      const T v = static_cast<T>(alpha2) * (gh[i * n + j] + T(1));
      for (std::int64_t a = 0; a < c; ++a) k[(i * c + a) * rows + j * c + a] = v;
    }
}

}  // namespace

Ntk empirical_ntk(nn::Sequential& net, const Tensor& x) {
  NoGrad no_tape;
  auto factors = jacobian_factors(net, x);
  const std::int64_t n = x.size(0), c = factors.back().signals.size(1);
  const std::int64_t rows = n * c;
  const std::size_t bytes = static_cast<std::size_t>(rows) * static_cast<std::size_t>(rows) * dtype_size(x.dtype()) *
                            (factors.size() + 2);
  const std::size_t available = available_memory_bytes();
  GS_CHECK(available == 0 || bytes < available,
           "NTK probe: {} samples × {} logits needs {:.1f} GiB for the per-layer kernels but {:.1f} GiB are free; use a "
           "smaller probe set (probe.train_size, probe.test_size)",
           n, c, static_cast<double>(bytes) / (1 << 30), static_cast<double>(available) / (1 << 30));
  Ntk out;
  out.samples = n;
  out.classes = c;
  out.kernel = Tensor::zeros(Shape{rows, rows}, x.dtype(), x.device());
  auto& be = kernels::backend(x.device());
  for (const auto& f : factors) {
    const Tensor& h = f.inputs;
    Tensor gram_inputs = Tensor::empty(Shape{n, n}, x.dtype(), x.device());
    kernels::GemmShape s{false, true, n, n, h.size(1), h.size(1), h.size(1), n};
    be.gemm(x.dtype(), s, 1.0, h.raw(), h.raw(), 0.0, gram_inputs.raw());
    Tensor k = Tensor::empty(Shape{rows, rows}, x.dtype(), x.device());
    GS_CHECK(x.device() == Device::cpu, "NTK probe: the {} device has no NTK kernels yet", device_name(x.device()));
    if (f.output_layer) {
      if (x.dtype() == DType::f32)
        output_layer_kernel(k.data<float>(), gram_inputs.data<float>(), n, c, f.output_scale * f.output_scale);
      else
        output_layer_kernel(k.data<double>(), gram_inputs.data<double>(), n, c, f.output_scale * f.output_scale);
    } else {
      const Tensor& d = f.signals;
      kernels::GemmShape sd{false, true, rows, rows, d.size(1), d.size(1), d.size(1), rows};
      be.gemm(x.dtype(), sd, 1.0, d.raw(), d.raw(), 0.0, k.raw());
      if (x.dtype() == DType::f32)
        hadamard_with_input_gram(k.data<float>(), gram_inputs.data<float>(), n, c);
      else
        hadamard_with_input_gram(k.data<double>(), gram_inputs.data<double>(), n, c);
    }
    be.axpby(x.dtype(), k.numel(), 1.0, k.raw(), 1.0, out.kernel.raw());
    out.layer_names.push_back(f.name);
    out.per_layer.push_back(k);
  }
  return out;
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

Tensor trace_kernel(const Tensor& kernel, std::int64_t classes) {
  const std::int64_t rows = kernel.size(0), n = rows / classes;
  GS_CHECK(kernel.rank() == 2 && kernel.size(1) == rows && rows % classes == 0,
           "trace_kernel: {} is not a square per-logit kernel for {} classes", kernel.describe(), classes);
  auto k = kernel.to_vector();
  std::vector<double> t(static_cast<std::size_t>(n * n), 0.0);
  for (std::int64_t i = 0; i < n; ++i)
    for (std::int64_t j = 0; j < n; ++j)
      for (std::int64_t a = 0; a < classes; ++a) t[i * n + j] += k[(i * classes + a) * rows + j * classes + a];
  return Tensor::from(t, Shape{n, n}, DType::f64);
}

namespace {
template <class F>
void for_each_value(const Tensor& t, F&& f) {
  Tensor h = t.device() == Device::cpu ? t : t.to(Device::cpu);
  if (h.dtype() == DType::f32) {
    const float* p = h.data<float>();
    for (std::int64_t i = 0; i < h.numel(); ++i) f(i, static_cast<double>(p[i]));
  } else {
    Tensor d = h.dtype() == DType::f64 ? h : h.to(DType::f64);
    const double* p = d.data<double>();
    for (std::int64_t i = 0; i < d.numel(); ++i) f(i, p[i]);
  }
}

std::vector<double> as_doubles(const Tensor& t) { return t.to_vector(); }
}  // namespace

double frobenius_norm(const Tensor& t) {
  double s = 0;
  for_each_value(t, [&](std::int64_t, double v) { s += v * v; });
  return std::sqrt(s);
}

double trace(const Tensor& square) {
  GS_CHECK(square.rank() == 2 && square.size(0) == square.size(1), "trace: {} is not square", square.describe());
  double s = 0;
  const std::int64_t n = square.size(0);
  for_each_value(square, [&](std::int64_t i, double v) {
    if (i / n == i % n) s += v;
  });
  return s;
}

double kernel_distance(const Tensor& a, const Tensor& b) {
  GS_CHECK(a.shape() == b.shape(), "kernel_distance: kernels {} and {} differ in shape", a.describe(), b.describe());
  const double na = frobenius_norm(a), nb = frobenius_norm(b);
  GS_CHECK(na > 0 && nb > 0, "kernel_distance: a kernel is zero");
  const auto bv = as_doubles(b);
  double s = 0;
  for_each_value(a, [&](std::int64_t i, double v) {
    const double d = v / na - bv[static_cast<std::size_t>(i)] / nb;
    s += d * d;
  });
  return 0.5 * s;
}

double kernel_alignment(const Tensor& kernel, const Tensor& labels, std::int64_t classes) {
  const auto y = labels.to_int_vector();
  const std::int64_t rows = kernel.size(0);
  GS_CHECK(static_cast<std::int64_t>(y.size()) * classes == rows, "kernel_alignment: {} labels for a kernel of {} rows",
           y.size(), rows);
  std::vector<double> target(static_cast<std::size_t>(rows));
  for (std::size_t i = 0; i < y.size(); ++i)
    for (std::int64_t a = 0; a < classes; ++a)
      target[i * static_cast<std::size_t>(classes) + static_cast<std::size_t>(a)] = (y[i] == a ? 1.0 : 0.0) - 1.0 / static_cast<double>(classes);
  double yky = 0, yy = 0;
  for (double v : target) yy += v * v;
  for_each_value(kernel, [&](std::int64_t i, double v) { yky += target[static_cast<std::size_t>(i / rows)] * v * target[static_cast<std::size_t>(i % rows)]; });
  return yky / (frobenius_norm(kernel) * yy);  // ‖Y Yᵀ‖_F = ‖Y‖²
}

}  // namespace gs::probe
