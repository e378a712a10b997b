#include "engine/probe/kernel_metrics.h"

#include <algorithm>
#include <cmath>
#include <type_traits>

#include "engine/error.h"
#include "kernels/cpu/lane_sum.h"
#include "kernels/cpu/region_errors.h"

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

// Every pair's ½ Σ_i (a_i / ‖a‖ − b_i / ‖b‖)², in the fixed chunks of deterministic_sum with the
// eight running sums of lane_sum, so that a pair's sum does not depend on which other kernels are
// compared alongside. A chunk is read a block at a time: each kernel's block is scaled once into
// f64 and stays in cache while every pair reads it.
template <class T>
std::vector<double> pair_distances(const std::vector<const T*>& p, const std::vector<double>& inverse_norm, std::int64_t n) {
  constexpr std::int64_t chunks = 64, lanes = 8, block = 1024;  // block: a multiple of the lanes
  const std::size_t count = p.size(), pairs = count * (count - 1) / 2;
  std::vector<double> partial(pairs * chunks);
  kernels::cpu::RegionErrors errors;
#pragma omp parallel if (n > (1 << 16))
  {
    std::vector<double> scaled, sums;
    errors.guard([&] {
      scaled.resize(count * block);
      sums.resize(pairs * lanes);
    });
#pragma omp for schedule(static)
    for (std::int64_t c = 0; c < chunks; ++c) errors.guard([&] {
      const std::int64_t begin = n * c / chunks, end = n * (c + 1) / chunks;
      std::fill(sums.begin(), sums.end(), 0.0);
      for (std::int64_t b0 = begin; b0 < end; b0 += block) {
        const std::int64_t len = std::min(block, end - b0);
        for (std::size_t k = 0; k < count; ++k)
          for (std::int64_t i = 0; i < len; ++i) scaled[k * block + i] = static_cast<double>(p[k][b0 + i]) * inverse_norm[k];
        std::size_t pair = 0;
        for (std::size_t a = 0; a < count; ++a)
          for (std::size_t b = a + 1; b < count; ++b, ++pair) {
            const double* x = &scaled[a * block];
            const double* y = &scaled[b * block];
            double* s = &sums[pair * lanes];
            // Element b0 + i goes to running sum (b0 + i − begin) mod 8 = i mod 8, as in lane_sum.
            std::int64_t i = 0;
            for (; i + lanes <= len; i += lanes)
              for (std::int64_t l = 0; l < lanes; ++l) {
                const double d = x[i + l] - y[i + l];
                s[l] += d * d;
              }
            for (; i < len; ++i) {
              const double d = x[i] - y[i];
              s[i & (lanes - 1)] += d * d;
            }
          }
      }
      for (std::size_t pair = 0; pair < pairs; ++pair) {
        const double* s = &sums[pair * lanes];
        partial[pair * chunks + static_cast<std::size_t>(c)] = ((s[0] + s[1]) + (s[2] + s[3])) + ((s[4] + s[5]) + (s[6] + s[7]));
      }
    });
  }
  errors.rethrow();
  std::vector<double> d(count * count, 0.0);
  std::size_t pair = 0;
  for (std::size_t a = 0; a < count; ++a)
    for (std::size_t b = a + 1; b < count; ++b, ++pair) {
      double total = 0;
      for (std::int64_t c = 0; c < chunks; ++c) total += partial[pair * chunks + static_cast<std::size_t>(c)];
      d[a * count + b] = d[b * count + a] = 0.5 * total;
    }
  return d;
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
  return kernel_distances({a, b}, {na, nb})[1];
}

std::vector<double> kernel_distances(const std::vector<Tensor>& kernels, const std::vector<double>& norms) {
  GS_CHECK(kernels.size() == norms.size(), "kernel_distances: {} kernels, {} norms", kernels.size(), norms.size());
  if (kernels.empty()) return {};
  bool one_dtype = true;
  for (std::size_t k = 0; k < kernels.size(); ++k) {
    GS_CHECK(kernels[k].shape() == kernels[0].shape(), "kernel_distance: kernels {} and {} differ in shape",
             kernels[0].describe(), kernels[k].describe());
    GS_CHECK(norms[k] >= 0, "kernel_distance: a kernel's norm is given as {}", norms[k]);
    one_dtype = one_dtype && kernels[k].dtype() == kernels[0].dtype();
  }
  if (!one_dtype) {  // an f32 kernel against an f64 one: compared in f64
    std::vector<Tensor> f64;
    for (const Tensor& k : kernels) f64.push_back(k.to(DType::f64));
    return kernel_distances(f64, norms);
  }
  // Multiplying by the reciprocal norms instead of dividing keeps the loop vectorizable; the
  // difference is rounding (a relative 1e-16 per term).
  std::vector<double> inverse;
  for (double norm : norms) inverse.push_back(norm > 0 ? 1 / norm : 0);
  std::vector<double> d = with_values(kernels[0], [&](const auto* first) {
    using T = std::remove_cvref_t<decltype(*first)>;
    std::vector<const T*> p;
    for (const Tensor& k : kernels) p.push_back(k.data<T>());
    return pair_distances(p, inverse, kernels[0].numel());
  });
  const std::size_t count = kernels.size();
  for (std::size_t k = 0; k < count; ++k)
    if (norms[k] == 0)
      for (std::size_t j = 0; j < count; ++j) d[k * count + j] = d[j * count + k] = std::nan("");
  return d;
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
