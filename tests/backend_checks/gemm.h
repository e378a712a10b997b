#pragma once
// The GEMM family: plain products, a dense layer's GEMM with its bias and activation, and its
// whole backward pass in one call. Part of tests/backend_checks.h.
#include "common.h"

namespace gs::test::backend_checks {

inline void gemm(Device d, Products products = {}) {
  auto& be = kernels::backend(d);
  std::uint64_t seed = 100;
  for (DType dt : products.dtypes)
    for (auto [m, n, k] : std::vector<std::array<std::int64_t, 3>>{{1, 1, 1}, {17, 33, 5}, {65, 129, 70}, {200, 10, 200}, {3, 200, 784}})
      for (bool ta : {false, true})
        for (bool tb : {false, true})
          for (double beta : {0.0, 0.7}) {
            const std::string dtype = dtype_name(dt);
    CAPTURE(dtype);
            CAPTURE(m);
            CAPTURE(n);
            CAPTURE(k);
            CAPTURE(ta);
            CAPTURE(tb);
            CAPTURE(beta);
            auto av = products.inputs(random_values(static_cast<std::size_t>(m * k), ++seed), dt);
            auto bv = products.inputs(random_values(static_cast<std::size_t>(k * n), ++seed), dt);
            auto cv = rounded(random_values(static_cast<std::size_t>(m * n), ++seed), dt);
            Tensor a = on(d, av, dt), b = on(d, bv, dt);
            Tensor c = beta == 0 ? poisoned(d, m * n, dt) : on(d, cv, dt);  // beta = 0 must overwrite NaN
            kernels::GemmShape s{ta, tb, m, n, k, ta ? m : k, tb ? k : n, n};
            be.gemm(dt, s, 1.3, a.raw(), b.raw(), beta, c.raw());
            auto want = reference::matmul(av, bv, m, n, k, ta, tb);
            for (std::size_t i = 0; i < want.size(); ++i) want[i] = 1.3 * want[i] + beta * cv[i];
            check_close(c, want, products.tolerance(dt, static_cast<double>(k)), "gemm");
          }
  // k = 0: C = beta C, and beta = 0 zeroes even NaN.
  Tensor c = poisoned(d, 6, DType::f32);
  be.gemm(DType::f32, {false, false, 2, 3, 0, 0, 3, 3}, 1.0, nullptr, nullptr, 0.0, c.raw());
  check_close(c, std::vector<double>(6, 0.0), {0, 0}, "gemm with k = 0");
}

// A dense layer's GEMM with its bias and activation applied as C is stored, against the
// reference GEMM followed by the bias and the reference activation.
inline void dense_layer(Device d, Products products = {}) {
  auto& be = kernels::backend(d);
  std::uint64_t seed = 150;
  for (DType dt : products.dtypes)
    // {130, 70, 784}: deep with few tiles, which a GPU splits along its depth (kernels/cuda/gemm.cu).
    for (auto [m, n, k] : std::vector<std::array<std::int64_t, 3>>{
             {1, 1, 1}, {17, 33, 5}, {65, 129, 70}, {200, 10, 200}, {130, 70, 784}, {3, 5, 0}})
      for (bool tb : {true, false})
        for (bool with_bias : {true, false})
          for (int act = -1; act < 3; ++act) {  // none, relu, tanh, sigmoid
            const std::string dtype = dtype_name(dt);
            CAPTURE(dtype);
            CAPTURE(m);
            CAPTURE(n);
            CAPTURE(k);
            CAPTURE(tb);
            CAPTURE(with_bias);
            CAPTURE(act);
            const auto activation = act < 0 ? std::nullopt : std::optional<kernels::Unary>(static_cast<kernels::Unary>(act));
            auto av = products.inputs(random_values(static_cast<std::size_t>(m * k), ++seed, -2, 2), dt);
            auto bv = products.inputs(random_values(static_cast<std::size_t>(k * n), ++seed, -2, 2), dt);
            auto biasv = rounded(random_values(static_cast<std::size_t>(n), ++seed), dt);
            Tensor a = on(d, av, dt), b = on(d, bv, dt), bias = on(d, biasv, dt), c = poisoned(d, m * n, dt);
            be.gemm_bias_act(dt, {false, tb, m, n, k, k, tb ? k : n, n}, a.raw(), b.raw(), with_bias ? bias.raw() : nullptr,
                             activation, c.raw());
            auto want = reference::matmul(av, bv, m, n, k, false, tb);
            for (std::int64_t i = 0; i < m * n; ++i) {
              double& v = want[static_cast<std::size_t>(i)];
              if (with_bias) v += biasv[static_cast<std::size_t>(i % n)];
              if (activation) v = reference::unary(*activation, v);
            }
            check_close(c, want, products.tolerance(dt, static_cast<double>(k + 1)), "gemm_bias_act");
          }
}

// A dense layer's backward pass in one call against the reference: gz = g ⊙ act'(y) from the
// derivative written in y (relu: y > 0; tanh: 1 − y²; sigmoid: y (1 − y)), then gz W, gzᵀ x and
// the column sums of gz, in float64; every subset of the three gradients, empty depths included.
inline void dense_layer_backward(Device d, Products products = {}) {
  auto& be = kernels::backend(d);
  std::uint64_t seed = 170;
  for (DType dt : products.dtypes)
    for (auto [rows, in, out] : std::vector<std::array<std::int64_t, 3>>{
             {1, 1, 1}, {17, 33, 5}, {65, 129, 70}, {130, 70, 65}, {3, 5, 0}, {0, 4, 3}})
      for (int act = -1; act < 3; ++act)  // none, relu, tanh, sigmoid
        for (int wanted : {7, 1, 2, 4, 6}) {  // bits: gx, gW, gb
          if (wanted != 7 && rows != 17) continue;
          const std::string dtype = dtype_name(dt);
          CAPTURE(dtype);
          CAPTURE(rows);
          CAPTURE(in);
          CAPTURE(out);
          CAPTURE(act);
          CAPTURE(wanted);
          const auto activation = act < 0 ? std::nullopt : std::optional<kernels::Unary>(static_cast<kernels::Unary>(act));
          auto xv = products.inputs(random_values(static_cast<std::size_t>(rows * in), ++seed, -2, 2), dt);
          auto wv = products.inputs(random_values(static_cast<std::size_t>(out * in), ++seed, -2, 2), dt);
          auto gv = products.inputs(random_values(static_cast<std::size_t>(rows * out), ++seed, -2, 2), dt);
          // y: the activation of random pre-activations (some exactly 0 for relu).
          auto yv = random_values(static_cast<std::size_t>(rows * out), ++seed, -3, 3);
          if (activation)
            for (double& v : yv) v = reference::unary(*activation, v);
          yv = rounded(yv, dt);
          Tensor x = on(d, xv, dt), w = on(d, wv, dt), y = on(d, yv, dt), g = on(d, gv, dt);
          Tensor scratch = poisoned(d, rows * out, dt), gx = poisoned(d, rows * in, dt), gw = poisoned(d, out * in, dt),
                 gb = poisoned(d, out, dt);
          be.dense_backward(dt, {rows, in, out}, activation, x.raw(), w.raw(), activation ? y.raw() : nullptr, g.raw(),
                            activation ? scratch.raw() : nullptr, wanted & 1 ? gx.raw() : nullptr,
                            wanted & 2 ? gw.raw() : nullptr, wanted & 4 ? gb.raw() : nullptr);
          std::vector<double> gz = gv, want_b(static_cast<std::size_t>(out), 0.0);
          for (std::size_t i = 0; i < gz.size(); ++i) {
            const double v = yv[i];
            if (activation == kernels::Unary::relu) gz[i] = v > 0 ? gz[i] : 0;
            if (activation == kernels::Unary::tanh) gz[i] *= 1 - v * v;
            if (activation == kernels::Unary::sigmoid) gz[i] *= v * (1 - v);
            want_b[i % static_cast<std::size_t>(std::max<std::int64_t>(out, 1))] += gz[i];
          }
          if (wanted & 1)
            check_close(gx, reference::matmul(gz, wv, rows, in, out, false, false),
                        products.tolerance(dt, static_cast<double>(out + 1)), "dense_backward: gx");
          if (wanted & 2)
            check_close(gw, reference::matmul(gz, xv, out, in, rows, true, false),
                        products.tolerance(dt, static_cast<double>(rows + 1)), "dense_backward: gW");
          if (wanted & 4) check_close(gb, want_b, products.tolerance(dt, static_cast<double>(rows + 1)), "dense_backward: gb");
        }
}

}  // namespace gs::test::backend_checks
