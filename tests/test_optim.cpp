// The optimizers' update rules, pinned on hand-computed steps and, over many steps, on the
// closed forms that hold for a constant gradient.
#include "engine/optim.h"
#include "helpers.h"

using namespace gs;

namespace {
Tensor parameter(double value, DType dtype = DType::f64) {
  Tensor p = Tensor::from(std::vector<double>{value}, Shape{1}, dtype);
  p.set_requires_grad();
  return p;
}
void set_gradient(Tensor& p, double g) { p.set_grad(Tensor::from(std::vector<double>{g}, Shape{1}, p.dtype())); }
}  // namespace

TEST_SUITE("optim") {
  TEST_CASE("SGD with momentum and weight decay, two steps by hand") {
    // d1 = 0.5 + 0.1·1 = 0.6, buf = 0.6, p = 1 − 0.1·0.6 = 0.94;
    // d2 = 0.5 + 0.1·0.94 = 0.594, buf = 0.9·0.6 + 0.594 = 1.134, p = 0.94 − 0.1134 = 0.8266.
    Tensor p = parameter(1.0);
    optim::SGD sgd({p}, {.lr = 0.1, .momentum = 0.9, .weight_decay = 0.1});
    set_gradient(p, 0.5);
    sgd.step();
    CHECK(p.item() == doctest::Approx(0.94).epsilon(1e-14));
    set_gradient(p, 0.5);
    sgd.step();
    CHECK(p.item() == doctest::Approx(0.8266).epsilon(1e-14));
  }

  TEST_CASE("SGD nesterov, one step by hand") {
    // d = 0.6, buf = 0.6, d = 0.6 + 0.9·0.6 = 1.14, p = 1 − 0.114 = 0.886.
    Tensor p = parameter(1.0);
    optim::SGD sgd({p}, {.lr = 0.1, .momentum = 0.9, .weight_decay = 0.1, .nesterov = true});
    set_gradient(p, 0.5);
    sgd.step();
    CHECK(p.item() == doctest::Approx(0.886).epsilon(1e-14));
  }

  TEST_CASE("SGD momentum, constant gradient: p_t = p0 − lr·g/(1−μ)·(t − μ(1−μ^t)/(1−μ))") {
    const double lr = 0.05, mu = 0.8, g = 0.3;
    Tensor p = parameter(2.0);
    optim::SGD sgd({p}, {.lr = lr, .momentum = mu});
    for (int t = 1; t <= 30; ++t) {
      set_gradient(p, g);
      sgd.step();
      const double want = 2.0 - lr * g / (1 - mu) * (t - mu * (1 - std::pow(mu, t)) / (1 - mu));
      CHECK(p.item() == doctest::Approx(want).epsilon(1e-12));
    }
  }

  TEST_CASE("Adam with coupled weight decay, two steps by hand") {
    // t=1: g = 0.5 + 0.1·1 = 0.6, m = 0.06, v = 3.6e-4, m̂ = 0.6, v̂ = 0.36, p = 1 − 0.1·0.6/(0.6 + 1e-8)
    //      = 0.9000000016666666;
    // t=2: g = 0.5 + 0.1·p, m = 0.9·0.06 + 0.1·g, v = 0.999·3.6e-4 + 0.001·g², p = 0.8000473404883315.
    Tensor p = parameter(1.0);
    optim::Adam adam({p}, {.lr = 0.1, .weight_decay = 0.1});
    set_gradient(p, 0.5);
    adam.step();
    CHECK(p.item() == doctest::Approx(0.9000000016666666).epsilon(1e-14));
    set_gradient(p, 0.5);
    adam.step();
    CHECK(p.item() == doctest::Approx(0.8000473404883315).epsilon(1e-14));
  }

  TEST_CASE("Adam, constant gradient: every bias-corrected step is lr·g/(|g| + eps)") {
    const double lr = 0.01, g = -0.25, eps = 1e-8;
    Tensor p = parameter(0.5);
    optim::Adam adam({p}, {.lr = lr, .eps = eps});
    for (int t = 1; t <= 50; ++t) {
      set_gradient(p, g);
      adam.step();
      CHECK(p.item() == doctest::Approx(0.5 - t * lr * g / (std::abs(g) + eps)).epsilon(1e-11));
    }
  }

  TEST_CASE("AdamW, constant gradient: p_t = ρ^t p0 − lr·u(1 − ρ^t)/(1 − ρ), ρ = 1 − lr·wd") {
    const double lr = 0.01, wd = 0.5, g = 0.4, eps = 1e-8, rho = 1 - lr * wd, u = g / (std::abs(g) + eps);
    Tensor p = parameter(3.0);
    auto adamw = optim::AdamW({p}, {.lr = lr, .eps = eps, .weight_decay = wd});
    for (int t = 1; t <= 50; ++t) {
      set_gradient(p, g);
      adamw.step();
      const double want = std::pow(rho, t) * 3.0 - lr * u * (1 - std::pow(rho, t)) / (1 - rho);
      CHECK(p.item() == doctest::Approx(want).epsilon(1e-11));
    }
  }

  TEST_CASE("AdamW decays before the step, unlike Adam: one step from p = 1, g = 0.5, wd = 0.1") {
    // AdamW: p = 1·(1 − 0.1·0.1) = 0.99, then − 0.1·0.5/(0.5 + 1e-8) → 0.8900000020.
    Tensor p = parameter(1.0);
    auto adamw = optim::AdamW({p}, {.lr = 0.1, .weight_decay = 0.1});
    set_gradient(p, 0.5);
    adamw.step();
    CHECK(p.item() == doctest::Approx(0.99 - 0.1 * 0.5 / (0.5 + 1e-8)).epsilon(1e-14));
  }

  TEST_CASE("f32 follows the same rule to f32 rounding; parameters without a gradient are skipped") {
    Tensor p32 = parameter(1.0, DType::f32), p64 = parameter(1.0), idle = parameter(7.0);
    auto a32 = optim::AdamW({p32, idle}, {.lr = 1e-3, .weight_decay = 0.01});
    auto a64 = optim::AdamW({p64}, {.lr = 1e-3, .weight_decay = 0.01});
    for (int t = 0; t < 20; ++t) {
      const double g = std::sin(t + 1.0);
      set_gradient(p32, g);
      set_gradient(p64, g);
      a32.step();
      a64.step();
    }
    CHECK(p32.item() == doctest::Approx(p64.item()).epsilon(1e-6));
    CHECK(idle.item() == 7.0);
  }

  TEST_CASE("subnormal moments are flushed to zero in the update (documented in kernels/optim.h)") {
    Tensor p = parameter(1.0, DType::f32);
    auto adam = optim::Adam({p}, {.lr = 0.1});
    adam.load_state({{"0.exp_avg", Tensor::from(std::vector<float>{1e-39f}, Shape{1})},
                     {"0.exp_avg_sq", Tensor::from(std::vector<float>{1e-39f}, Shape{1})}},
                    10);
    set_gradient(p, 0.0);
    adam.step();
    auto state = adam.state();
    CHECK(state[0].second.item() == 0.0);
    CHECK(state[1].second.item() == 0.0);
    CHECK(p.item() == 1.0);  // m = 0: no movement
  }

  TEST_CASE("zero_grad drops the gradients; bad settings are refused") {
    Tensor p = parameter(1.0);
    optim::SGD sgd({p}, {.lr = 0.1});
    set_gradient(p, 1.0);
    sgd.zero_grad();
    CHECK_FALSE(p.grad().defined());
    CHECK_THROWS_WITH_AS(optim::Adam({p}, {.beta1 = 1.0}), doctest::Contains("betas must be in [0, 1)"), Error);
    Tensor frozen = Tensor::zeros(Shape{1}, DType::f64);
    CHECK_THROWS_WITH_AS(optim::SGD({frozen}, {}), doctest::Contains("must be a leaf tensor that requires grad"), Error);
  }
}
