#pragma once
// Shared test tools: fresh random inputs (never zeros), comparisons with a tolerance stated per
// test (absolute part + part relative to the reference), and a float64 finite-difference check.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <functional>
#include <string>
#include <vector>

#include "engine/autograd.h"
#include "engine/nn/layers.h"
#include "engine/ops.h"
#include "engine/rng.h"

namespace gs::test {

// The study's CNN in shape (conv 3×3 pad 1, ReLU, max-pool 2, conv 3×3 pad 1, ReLU, max-pool 2,
// dense, Scale) with 3 and 4 channels: for tests whose point is not the study's sizes, and which
// the emulated device would run for minutes at 32 and 64 channels. Images [n, channels, size,
// size], size divisible by 4.
inline std::shared_ptr<nn::Sequential> small_cnn(Generator& g, std::int64_t channels, std::int64_t size,
                                                  std::int64_t classes, double output_scale = 1.0) {
  auto net = std::make_shared<nn::Sequential>();
  net->add(std::make_shared<nn::Conv2d>(channels, 3, 3, g, 1, 1));
  net->add(std::make_shared<nn::ActivationLayer>(nn::Activation::relu));
  net->add(std::make_shared<nn::MaxPool2d>(2));
  net->add(std::make_shared<nn::Conv2d>(3, 4, 3, g, 1, 1));
  net->add(std::make_shared<nn::ActivationLayer>(nn::Activation::relu));
  net->add(std::make_shared<nn::MaxPool2d>(2));
  net->add(std::make_shared<nn::Flatten>());
  net->add(std::make_shared<nn::Linear>(4 * (size / 4) * (size / 4), classes, g));
  net->add(std::make_shared<nn::Scale>(output_scale));
  return net;
}

inline std::vector<double> random_values(std::size_t n, std::uint64_t seed, double low = -1, double high = 1) {
  Generator gen(seed, Stream::test);
  std::vector<double> v(n);
  for (auto& x : v) x = low + (high - low) * gen.uniform();
  return v;
}

inline Tensor random_tensor(const Shape& shape, std::uint64_t seed, DType dtype = DType::f64, double low = -1,
                            double high = 1) {
  return Tensor::from(random_values(static_cast<std::size_t>(shape.numel()), seed, low, high), shape, dtype);
}

// A float's value rounded to the nearest TF32 value (10 bits of mantissa, FP32's exponents), ties
// away from zero: PTX's cvt.rna.tf32.f32, which CUDA's __float_to_tf32 is. In double arithmetic,
// apart from the CUDA emulator's bit arithmetic (kernels/cuda/emulator/mma.h).
inline double tf32(double x) {
  if (x == 0 || !std::isfinite(x)) return x;
  const double ulp = std::ldexp(1.0, std::max(std::ilogb(x), -126) - 10);  // subnormals: a fixed spacing
  const double r = std::floor(std::abs(x) / ulp + 0.5) * ulp;
  return std::copysign(r < std::ldexp(1.0, 128) ? r : INFINITY, x);  // past FP32's range: infinity
}

struct Tolerance {
  double absolute = 0, relative = 0;
};

// Every |got - want| ≤ absolute + relative·|want|; reports the worst element when not.
inline void check_close(const std::vector<double>& got, const std::vector<double>& want, Tolerance tol,
                        const std::string& what) {
  REQUIRE_MESSAGE(got.size() == want.size(), what << ": sizes " << got.size() << " vs " << want.size());
  double worst = 0;
  std::size_t at = 0;
  bool ok = true;
  for (std::size_t i = 0; i < got.size(); ++i) {
    const double err = std::abs(got[i] - want[i]);
    const double allowed = tol.absolute + tol.relative * std::abs(want[i]);
    if (!(err <= allowed)) {
      ok = false;
      if (!(err <= worst)) {
        worst = err;
        at = i;
      }
    }
  }
  CHECK_MESSAGE(ok, what << ": element " << at << " is " << (got.empty() ? 0 : got[at]) << ", reference "
                         << (want.empty() ? 0 : want[at]) << " (error " << worst << ")");
}

inline void check_close(const Tensor& got, const std::vector<double>& want, Tolerance tol, const std::string& what) {
  check_close(got.to_vector(), want, tol, what);
}

// Checks the tape's gradient of loss(inputs) for every input that requires grad against central
// differences in float64. Non-scalar outputs are contracted with fixed random weights so that
// every output element (not only their sum) is exercised.
inline void check_gradients(std::vector<Tensor> inputs, const std::function<Tensor(const std::vector<Tensor>&)>& f,
                            const std::string& what, double step = 1e-6, Tolerance tol = {1e-7, 1e-6}) {
  auto scalar_loss = [&](const std::vector<Tensor>& xs) {
    Tensor out = f(xs);
    if (out.numel() == 1) return ops::sum(out);
    Tensor weights = random_tensor(out.shape(), 4242, out.dtype(), 0.5, 1.5);
    return ops::sum(ops::mul(out, weights));
  };
  for (auto& x : inputs) {
    REQUIRE(x.dtype() == DType::f64);
    x.set_requires_grad(true);
  }
  Tensor loss = scalar_loss(inputs);
  loss.backward();
  for (std::size_t k = 0; k < inputs.size(); ++k) {
    Tensor& x = inputs[k];
    REQUIRE_MESSAGE(x.grad().defined(), what << ": input " << k << " got no gradient");
    std::vector<double> analytic = x.grad().to_vector();
    std::vector<double> numeric(analytic.size());
    double* p = x.data<double>();
    NoGrad no_tape;
    for (std::size_t i = 0; i < numeric.size(); ++i) {
      const double saved = p[i];
      p[i] = saved + step;
      const double up = scalar_loss(inputs).item();
      p[i] = saved - step;
      const double down = scalar_loss(inputs).item();
      p[i] = saved;
      numeric[i] = (up - down) / (2 * step);
    }
    check_close(analytic, numeric, tol, what + ", gradient of input " + std::to_string(k));
  }
}

}  // namespace gs::test
