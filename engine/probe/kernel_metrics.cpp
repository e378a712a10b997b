#include "engine/probe/kernel_metrics.h"

#include <cmath>

#include "engine/error.h"
#include "kernels/cpu/lane_sum.h"

namespace gs::probe {

namespace {

// Sums f(i) for i in [0, n) in f64, in fixed chunks added in order: parallel, yet the same result
// for any thread count. Each chunk is a lane_sum (eight running sums, kernels/cpu/lane_sum.h).
template <class F>
double deterministic_sum(std::int64_t n, F&& f) {
  constexpr std::int64_t chunks = 64;
  double partial[chunks] = {};
#pragma omp parallel for schedule(static) if (n > (1 << 16))
  for (std::int64_t c = 0; c < chunks; ++c) partial[c] = kernels::cpu::lane_sum(n * c / chunks, n * (c + 1) / chunks, f);
  double total = 0;
  for (double v : partial) total += v;
  return total;
}

template <class G>
auto with_values(const Tensor& t, G&& g) {
  GS_CHECK(t.device() == Device::cpu && t.dtype() != DType::i32, "kernel metrics need a float tensor on the cpu, got {}",
           t.describe());
  if (t.dtype() == DType::f32) return g(t.data<float>());
  return g(t.data<double>());
}

}  // namespace

Tensor trace_kernel(const Tensor& kernel, std::int64_t classes) {
  const std::int64_t rows = kernel.size(0), n = rows / classes;
  GS_CHECK(kernel.rank() == 2 && kernel.size(1) == rows && rows % classes == 0,
           "trace_kernel: {} is not a square per-logit kernel for {} classes", kernel.describe(), classes);
  Tensor t = Tensor::zeros(Shape{n, n}, DType::f64);
  double* out = t.data<double>();
  with_values(kernel, [&](const auto* k) {
#pragma omp parallel for schedule(static)
    for (std::int64_t i = 0; i < n; ++i)
      for (std::int64_t a = 0; a < classes; ++a) {
        const auto* row = k + (i * classes + a) * rows + a;
        for (std::int64_t j = 0; j < n; ++j) out[i * n + j] += static_cast<double>(row[j * classes]);
      }
    return 0;
  });
  return t;
}

double frobenius_norm(const Tensor& t) {
  return std::sqrt(with_values(t, [&](const auto* p) {
    return deterministic_sum(t.numel(), [p](std::int64_t i) { return static_cast<double>(p[i]) * static_cast<double>(p[i]); });
  }));
}

double trace(const Tensor& square) {
  GS_CHECK(square.rank() == 2 && square.size(0) == square.size(1), "trace: {} is not square", square.describe());
  const std::int64_t n = square.size(0);
  return with_values(square, [&](const auto* p) {
    double s = 0;
    for (std::int64_t i = 0; i < n; ++i) s += static_cast<double>(p[i * n + i]);
    return s;
  });
}

double kernel_distance(const Tensor& a, const Tensor& b) {
  GS_CHECK(a.shape() == b.shape(), "kernel_distance: kernels {} and {} differ in shape", a.describe(), b.describe());
  return kernel_distance(a, frobenius_norm(a), b, frobenius_norm(b));
}

double kernel_distance(const Tensor& a, double na, const Tensor& b, double nb) {
  GS_CHECK(a.shape() == b.shape(), "kernel_distance: kernels {} and {} differ in shape", a.describe(), b.describe());
  GS_CHECK(na > 0 && nb > 0, "kernel_distance: a kernel is zero");
  return with_values(a, [&](const auto* pa) {
    return with_values(b, [&](const auto* pb) {
      // Multiplying by the reciprocal norms instead of dividing keeps the loop vectorizable; the
      // difference is rounding (a relative 1e-16 per term).
      const double ia = 1 / na, ib = 1 / nb;
      return 0.5 * deterministic_sum(a.numel(), [=](std::int64_t i) {
               const double d = static_cast<double>(pa[i]) * ia - static_cast<double>(pb[i]) * ib;
               return d * d;
             });
    });
  });
}

double kernel_alignment(const Tensor& kernel, const Tensor& labels, std::int64_t classes, double kernel_norm) {
  const auto y = labels.to_int_vector();
  const std::int64_t rows = kernel.size(0);
  GS_CHECK(static_cast<std::int64_t>(y.size()) * classes == rows, "kernel_alignment: {} labels for a kernel of {} rows",
           y.size(), rows);
  std::vector<double> target(static_cast<std::size_t>(rows));
  for (std::size_t i = 0; i < y.size(); ++i)
    for (std::int64_t a = 0; a < classes; ++a)
      target[i * static_cast<std::size_t>(classes) + static_cast<std::size_t>(a)] =
          (y[i] == a ? 1.0 : 0.0) - 1.0 / static_cast<double>(classes);
  double yy = 0;
  for (double v : target) yy += v * v;
  const double* tv = target.data();
  const double yky = with_values(kernel, [&](const auto* k) {
    return deterministic_sum(rows, [=](std::int64_t r) {
      double s = 0;
      for (std::int64_t q = 0; q < rows; ++q) s += static_cast<double>(k[r * rows + q]) * tv[q];
      return tv[r] * s;
    });
  });
  if (kernel_norm < 0) kernel_norm = frobenius_norm(kernel);
  return yky / (kernel_norm * yy);  // ‖Y Yᵀ‖_F = ‖Y‖²
}

}  // namespace gs::probe
