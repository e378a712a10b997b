#pragma once
// Every kernel family of a backend against the float64 reference, called through the backend
// interface on fresh random inputs with NaN-poisoned outputs and odd sizes. The gpu suite runs
// these on the CUDA backend; the ops_forward suite runs the very same checks on the CPU backend,
// so the checks themselves are exercised (and can fail) on every machine.
#include <cmath>
#include <limits>
#include <optional>
#include <string>

#include "engine/optim.h"
#include "helpers.h"
#include "models/models.h"
#include "kernels/backend.h"
#include "kernels/reference/reference.h"

namespace gs::test {

namespace backend_checks {

inline const double nan_value = std::numeric_limits<double>::quiet_NaN();

inline Tensor on(Device d, const std::vector<double>& v, DType dt) {
  return Tensor::from(v, Shape{static_cast<std::int64_t>(v.size())}, dt, d);
}
inline Tensor poisoned(Device d, std::int64_t n, DType dt) { return Tensor::full(Shape{n}, nan_value, dt, d); }
inline Tensor labels_on(Device d, const std::vector<std::int32_t>& v) {
  return Tensor::from(v, Shape{static_cast<std::int64_t>(v.size())}, d);
}
// f32 results against f64 truth: rounding of inputs and of k-term sums.
inline Tolerance tol(DType dt, double terms = 1) {
  return dt == DType::f32 ? Tolerance{2e-6 * terms, 2e-5} : Tolerance{1e-14 * terms, 1e-12};
}
// The inputs rounded to the dtype, as the backend sees them.
inline std::vector<double> rounded(const std::vector<double>& v, DType dt) {
  return dt == DType::f32 ? Tensor::from(v, Shape{static_cast<std::int64_t>(v.size())}, DType::f32).to_vector() : v;
}

// How a backend's products round, for the checks of gemm, dense layers, their backward pass and
// convolutions: the inputs drawn (rounded as the backend sees them) and the tolerance of a sum of `terms`
// products. FP32 by default; tests/test_gpu.cpp also checks the tensor cores' TF32 products.
struct Products {
  std::vector<double> (*inputs)(const std::vector<double>&, DType) = rounded;
  Tolerance (*tolerance)(DType, double terms) = tol;
  std::vector<DType> dtypes{DType::f32, DType::f64};
};

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

inline void activations(Device d) {
  auto& be = kernels::backend(d);
  using kernels::Unary;
  for (DType dt : {DType::f32, DType::f64})
    for (std::int64_t n : {1, 257, 4099})
      for (Unary op : {Unary::relu, Unary::tanh, Unary::sigmoid, Unary::gelu}) {
        CAPTURE(static_cast<int>(op));
        CAPTURE(n);
        auto xv = rounded(random_values(static_cast<std::size_t>(n), 200 + static_cast<std::uint64_t>(n), -4, 4), dt);
        auto gv = rounded(random_values(static_cast<std::size_t>(n), 300 + static_cast<std::uint64_t>(n)), dt);
        Tensor x = on(d, xv, dt), gy = on(d, gv, dt), y = poisoned(d, n, dt), gx = poisoned(d, n, dt);
        be.unary(op, dt, n, x.raw(), y.raw());
        be.unary_backward(op, dt, n, x.raw(), y.raw(), gy.raw(), gx.raw());
        std::vector<double> want(xv.size()), want_g(xv.size());
        for (std::size_t i = 0; i < xv.size(); ++i) {
          want[i] = reference::unary(op, xv[i]);
          want_g[i] = gv[i] * reference::unary_derivative(op, xv[i]);
        }
        check_close(y, want, tol(dt, 4), "unary");
        check_close(gx, want_g, tol(dt, 8), "unary_backward");
      }
}

inline void broadcasting(Device d) {
  auto& be = kernels::backend(d);
  using kernels::Binary;
  // out [2, 3, 4, 5] = a [2, 1, 4, 5] op b [3, 1, 1] (b padded to [1, 3, 1, 1]).
  kernels::Broadcast br;
  br.out = {2, 3, 4, 5};
  br.a_stride = {20, 0, 5, 1};
  br.b_stride = {0, 1, 0, 0};
  const std::int64_t n = br.numel();
  for (DType dt : {DType::f32, DType::f64}) {
    auto av = rounded(random_values(40, 401), dt), bv = rounded(random_values(3, 402), dt);
    auto gv = rounded(random_values(static_cast<std::size_t>(n), 403), dt);
    Tensor a = on(d, av, dt), b = on(d, bv, dt), g = on(d, gv, dt);
    for (Binary op : {Binary::add, Binary::sub, Binary::mul}) {
      Tensor out = poisoned(d, n, dt);
      be.binary(op, dt, br, a.raw(), b.raw(), out.raw());
      std::vector<double> want(static_cast<std::size_t>(n));
      for (std::int64_t i0 = 0, f = 0; i0 < 2; ++i0)
        for (std::int64_t i1 = 0; i1 < 3; ++i1)
          for (std::int64_t i2 = 0; i2 < 4; ++i2)
            for (std::int64_t i3 = 0; i3 < 5; ++i3, ++f) {
              const double p = av[i0 * 20 + i2 * 5 + i3], q = bv[i1];
              want[f] = op == Binary::add ? p + q : op == Binary::sub ? p - q : p * q;
            }
      check_close(out, want, tol(dt), "binary");
    }
    // Gradient of a in a * b: Σ over dim 1 of g · b, scaled; and of b: Σ over dims 0, 2, 3 of g · a.
    Tensor ga = poisoned(d, 40, dt), gb = poisoned(d, 3, dt);
    be.reduce_to_operand(dt, br, br.a_stride, 40, 0.5, g.raw(), br.b_stride, b.raw(), ga.raw());
    be.reduce_to_operand(dt, br, br.b_stride, 3, 1.0, g.raw(), br.a_stride, a.raw(), gb.raw());
    std::vector<double> want_a(40, 0.0), want_b(3, 0.0);
    for (std::int64_t i0 = 0, f = 0; i0 < 2; ++i0)
      for (std::int64_t i1 = 0; i1 < 3; ++i1)
        for (std::int64_t i2 = 0; i2 < 4; ++i2)
          for (std::int64_t i3 = 0; i3 < 5; ++i3, ++f) {
            want_a[i0 * 20 + i2 * 5 + i3] += 0.5 * gv[f] * bv[i1];
            want_b[i1] += gv[f] * av[i0 * 20 + i2 * 5 + i3];
          }
    check_close(ga, want_a, tol(dt, 3), "reduce_to_operand (broadcast dimension 1)");
    check_close(gb, want_b, tol(dt, 40), "reduce_to_operand (three broadcast dimensions)");
    // Without `other`: the plain sum back to the operand.
    Tensor gs_plain = poisoned(d, 3, dt);
    be.reduce_to_operand(dt, br, br.b_stride, 3, 1.0, g.raw(), {0, 0, 0, 0}, nullptr, gs_plain.raw());
    std::vector<double> want_plain(3, 0.0);
    for (std::int64_t f = 0; f < n; ++f) want_plain[(f / 20) % 3] += gv[f];
    check_close(gs_plain, want_plain, tol(dt, 40), "reduce_to_operand without a factor");
  }
  // Long reductions (a convolution's bias gradient: out [images, filters, pixels, 1], the bias
  // [filters] broadcast along images and pixels), with and without a factor, and a reduction
  // along the last dimension, whose terms are contiguous.
  for (DType dt : {DType::f32, DType::f64}) {
    kernels::Broadcast conv;
    conv.out = {9, 5, 301, 1};
    const std::int64_t terms = conv.numel();
    auto gv = rounded(random_values(static_cast<std::size_t>(terms), 404), dt);
    auto ov = rounded(random_values(static_cast<std::size_t>(terms), 405), dt);
    Tensor g = on(d, gv, dt), o = on(d, ov, dt);
    Tensor plain = poisoned(d, 5, dt), weighted = poisoned(d, 5, dt), again = poisoned(d, 5, dt);
    be.reduce_to_operand(dt, conv, {0, 1, 0, 0}, 5, 1.0, g.raw(), {}, nullptr, plain.raw());
    be.reduce_to_operand(dt, conv, {0, 1, 0, 0}, 5, 0.25, g.raw(), {5 * 301, 301, 1, 0}, o.raw(), weighted.raw());
    be.reduce_to_operand(dt, conv, {0, 1, 0, 0}, 5, 0.25, g.raw(), {5 * 301, 301, 1, 0}, o.raw(), again.raw());
    std::vector<double> want_plain(5, 0.0), want_weighted(5, 0.0);
    for (std::int64_t f = 0; f < terms; ++f) {
      want_plain[static_cast<std::size_t>((f / 301) % 5)] += gv[static_cast<std::size_t>(f)];
      want_weighted[static_cast<std::size_t>((f / 301) % 5)] += 0.25 * gv[static_cast<std::size_t>(f)] * ov[static_cast<std::size_t>(f)];
    }
    check_close(plain, want_plain, tol(dt, 9 * 301), "reduce_to_operand, 2709 terms per element");
    check_close(weighted, want_weighted, tol(dt, 9 * 301), "reduce_to_operand, 2709 terms per element, with a factor");
    CHECK(again.to_vector() == weighted.to_vector());  // the same partition, the same sums
    kernels::Broadcast rows;
    rows.out = {1, 3, 1, 2000};
    Tensor gr = on(d, rounded(random_values(6000, 406), dt), dt), sums = poisoned(d, 3, dt);
    be.reduce_to_operand(dt, rows, {0, 1, 0, 0}, 3, 1.0, gr.raw(), {}, nullptr, sums.raw());
    const auto grv = gr.to_vector();
    std::vector<double> want_rows(3, 0.0);
    for (std::size_t f = 0; f < grv.size(); ++f) want_rows[f / 2000] += grv[f];
    check_close(sums, want_rows, tol(dt, 2000), "reduce_to_operand along the last dimension");
  }
}

inline void rows_and_sums(Device d) {
  auto& be = kernels::backend(d);
  for (DType dt : {DType::f32, DType::f64}) {
    const std::int64_t rows = 37, cols = 11;
    auto xv = rounded(random_values(static_cast<std::size_t>(rows * cols), 501), dt);
    auto rv = rounded(random_values(static_cast<std::size_t>(cols), 502), dt);
    Tensor x = on(d, xv, dt), row = on(d, rv, dt);
    Tensor y = poisoned(d, rows * cols, dt), s = poisoned(d, cols, dt);
    be.broadcast_rows(dt, rows, cols, row.raw(), y.raw());
    be.sum_rows(dt, rows, cols, x.raw(), s.raw());
    std::vector<double> want_y(static_cast<std::size_t>(rows * cols)), want_s(static_cast<std::size_t>(cols), 0.0);
    for (std::int64_t r = 0; r < rows; ++r)
      for (std::int64_t c = 0; c < cols; ++c) {
        want_y[r * cols + c] = rv[c];
        want_s[c] += xv[r * cols + c];
      }
    check_close(y, want_y, {0, 0}, "broadcast_rows");
    check_close(s, want_s, tol(dt, rows), "sum_rows");
    for (std::int64_t n : {1, 1000, 8192, 8193, 300001}) {  // one block up to 8192 on CUDA, then two passes
      CAPTURE(n);
      auto v = rounded(random_values(static_cast<std::size_t>(n), 503 + static_cast<std::uint64_t>(n)), dt);
      Tensor t = on(d, v, dt), total = poisoned(d, 1, dt);
      be.sum(dt, n, t.raw(), total.raw());
      double want = 0;
      for (double e : v) want += e;
      check_close(total, {want}, tol(dt, std::sqrt(static_cast<double>(n))), "sum");
      Tensor again = poisoned(d, 1, dt);
      be.sum(dt, n, t.raw(), again.raw());
      CHECK(again.item() == total.item());  // a fixed order: bit-identical on a rerun
    }
    auto yv = rounded(random_values(97, 504), dt);
    const std::vector<double> y0(xv.begin(), xv.begin() + 97);
    Tensor ax = on(d, yv, dt), ay = on(d, y0, dt);
    be.axpby(dt, 97, 2.5, ax.raw(), -0.5, ay.raw());
    std::vector<double> want_axpby(97);
    for (std::size_t i = 0; i < 97; ++i) want_axpby[i] = 2.5 * yv[i] - 0.5 * y0[i];
    check_close(ay.to_vector(), want_axpby, tol(dt, 2), "axpby");
  }
}

inline void losses(Device d) {
  auto& be = kernels::backend(d);
  for (DType dt : {DType::f32, DType::f64})
    for (std::int64_t cols : {10, 47}) {
      const std::int64_t rows = 203;
      auto xv = rounded(random_values(static_cast<std::size_t>(rows * cols), 600 + static_cast<std::uint64_t>(cols), -6, 6), dt);
      auto gv = rounded(random_values(static_cast<std::size_t>(rows * cols), 601), dt);
      std::vector<std::int32_t> labels(static_cast<std::size_t>(rows));
      for (std::int64_t r = 0; r < rows; ++r) labels[r] = static_cast<std::int32_t>((r * 7) % cols);
      Tensor x = on(d, xv, dt), g = on(d, gv, dt), lab = labels_on(d, labels);
      Tensor logp = poisoned(d, rows * cols, dt), gx = poisoned(d, rows * cols, dt);
      be.log_softmax(dt, rows, cols, x.raw(), logp.raw());
      const auto want_logp = reference::log_softmax(xv, rows, cols);
      check_close(logp, want_logp, tol(dt, 4), "log_softmax");
      be.log_softmax_backward(dt, rows, cols, logp.raw(), g.raw(), gx.raw());
      std::vector<double> want_gx(want_logp.size());
      for (std::int64_t r = 0; r < rows; ++r) {
        double s = 0;
        for (std::int64_t c = 0; c < cols; ++c) s += gv[r * cols + c];
        for (std::int64_t c = 0; c < cols; ++c) want_gx[r * cols + c] = gv[r * cols + c] - std::exp(want_logp[r * cols + c]) * s;
      }
      check_close(gx, want_gx, tol(dt, static_cast<double>(cols)), "log_softmax_backward");
      Tensor loss = poisoned(d, 1, dt), g_out = on(d, {1.7}, dt), g_logp = poisoned(d, rows * cols, dt);
      Tensor one = poisoned(d, 1, dt);  // backward()'s seed, which a loss writes when given a place for it
      const auto* label_values = static_cast<const std::int32_t*>(lab.raw());
      Tensor ce_logp = poisoned(d, rows * cols, dt), ce_grad = poisoned(d, rows * cols, dt);
      be.cross_entropy(dt, rows, cols, x.raw(), label_values, ce_logp.raw(), loss.raw(), one.raw(), ce_grad.raw());
      check_close(loss, {reference::cross_entropy(xv, labels, rows, cols)}, tol(dt, 8), "cross_entropy");
      CHECK(one.item() == 1);
      CHECK(ce_logp.to_vector() == logp.to_vector());  // log_softmax's values, bit for bit
      // Its gradient for a unit cotangent: softmax minus the one-hot targets, over the rows ...
      std::vector<double> want_ce(static_cast<std::size_t>(rows * cols));
      for (std::int64_t r = 0; r < rows; ++r)
        for (std::int64_t c = 0; c < cols; ++c)
          want_ce[r * cols + c] = (std::exp(want_logp[r * cols + c]) - (c == labels[r] ? 1.0 : 0.0)) / static_cast<double>(rows);
      check_close(ce_grad, want_ce, tol(dt, 2), "cross_entropy's gradient");
      // ... and bit for bit what the backward kernels write for g_out = 1.
      Tensor unit = on(d, {1.0}, dt), via_backward = poisoned(d, rows * cols, dt);
      be.nll_backward(dt, rows, cols, label_values, unit.raw(), g_logp.raw());
      be.log_softmax_backward(dt, rows, cols, logp.raw(), g_logp.raw(), via_backward.raw());
      CHECK(ce_grad.to_vector() == via_backward.to_vector());
      Tensor loss_alone = poisoned(d, 1, dt);  // evaluation: neither the log-probabilities nor the gradient
      be.cross_entropy(dt, rows, cols, x.raw(), label_values, nullptr, loss_alone.raw(), nullptr, nullptr);
      CHECK(loss_alone.item() == loss.item());
      be.nll_backward(dt, rows, cols, label_values, g_out.raw(), g_logp.raw());
      std::vector<double> want_gn(static_cast<std::size_t>(rows * cols), 0.0);
      for (std::int64_t r = 0; r < rows; ++r) want_gn[r * cols + labels[r]] = -1.7 / static_cast<double>(rows);
      check_close(g_logp, want_gn, tol(dt), "nll_backward");
      // one_hot; and labels out of range (which the ops check only on the host): the row, and the
      // loss, become NaN, and nothing is read outside the row.
      std::vector<std::int32_t> bad = labels;
      bad[5] = static_cast<std::int32_t>(cols);
      bad[9] = -1;
      Tensor bad_lab = labels_on(d, bad);
      for (const auto* which : {&labels, &bad}) {
        const auto* which_labels = static_cast<const std::int32_t*>((which == &bad ? bad_lab : lab).raw());
        Tensor oh = poisoned(d, rows * cols, dt);
        be.one_hot(dt, rows, cols, which_labels, oh.raw());
        auto got_oh = oh.to_vector();
        for (std::int64_t r = 0; r < rows; ++r)
          for (std::int64_t c = 0; c < cols; ++c) {
            const double v = got_oh[static_cast<std::size_t>(r * cols + c)];
            if (which == &bad && (r == 5 || r == 9))
              CHECK(std::isnan(v));
            else
              CHECK(v == (c == (*which)[static_cast<std::size_t>(r)] ? 1.0 : 0.0));
          }
        // The MSE against the labels is mse against one_hot's targets, bit for bit (NaN where they are).
        Tensor via_targets = poisoned(d, 1, dt), direct = poisoned(d, 1, dt);
        be.mse(dt, rows * cols, x.raw(), oh.raw(), via_targets.raw(), nullptr);
        be.fill(dt, 1, 0.0, one.raw());
        Tensor g_fused = poisoned(d, rows * cols, dt);  // the gradient for backward()'s seed, from the loss's launch
        be.mse_one_hot(dt, rows, cols, x.raw(), which_labels, direct.raw(), one.raw(), g_fused.raw());
        CHECK(one.item() == 1);
        if (which == &bad) {
          CHECK(std::isnan(direct.item()));
        } else {
          CHECK(direct.item() == via_targets.item());
          check_close(direct, {reference::mse(xv, got_oh)}, tol(dt, 8), "mse_one_hot");
        }
        Tensor g_via = poisoned(d, rows * cols, dt), g_direct = poisoned(d, rows * cols, dt);
        be.mse_backward(dt, rows * cols, x.raw(), oh.raw(), g_out.raw(), g_via.raw());
        be.mse_one_hot_backward(dt, rows, cols, x.raw(), which_labels, g_out.raw(), g_direct.raw());
        Tensor g_unit = poisoned(d, rows * cols, dt);
        be.mse_one_hot_backward(dt, rows, cols, x.raw(), which_labels, unit.raw(), g_unit.raw());
        auto count_differing = [](const Tensor& a, const Tensor& b) {  // NaN equal to NaN
          const auto av = a.to_vector(), bv = b.to_vector();
          std::int64_t differ = 0;
          for (std::size_t i = 0; i < av.size(); ++i) differ += !(av[i] == bv[i] || (std::isnan(av[i]) && std::isnan(bv[i])));
          return differ;
        };
        CHECK_MESSAGE(count_differing(g_direct, g_via) == 0, "mse_one_hot_backward differs from mse_backward");
        CHECK_MESSAGE(count_differing(g_fused, g_unit) == 0, "mse_one_hot's gradient differs from mse_one_hot_backward's for g_out = 1");
      }
      Tensor bad_loss = poisoned(d, 1, dt), bad_grad = poisoned(d, rows * cols, dt);
      be.fill(dt, 1, 0.0, bad_loss.raw());
      be.cross_entropy(dt, rows, cols, x.raw(), static_cast<const std::int32_t*>(bad_lab.raw()), nullptr, bad_loss.raw(),
                       nullptr, bad_grad.raw());
      CHECK(std::isnan(bad_loss.item()));
      const auto bad_rows = bad_grad.to_vector(), good_rows = ce_grad.to_vector();
      for (std::int64_t r = 0; r < rows; ++r)  // a row with a bad label gets no gradient; the others theirs
        for (std::int64_t c = 0; c < cols; ++c)
          CHECK(bad_rows[r * cols + c] == (r == 5 || r == 9 ? 0.0 : good_rows[r * cols + c]));
      Tensor mse = poisoned(d, 1, dt), gm = poisoned(d, rows * cols, dt);
      be.fill(dt, 1, 0.0, one.raw());
      be.mse(dt, rows * cols, x.raw(), g.raw(), mse.raw(), one.raw());
      CHECK(one.item() == 1);
      check_close(mse, {reference::mse(xv, gv)}, tol(dt, 8), "mse");
      be.mse_backward(dt, rows * cols, x.raw(), g.raw(), g_out.raw(), gm.raw());
      std::vector<double> want_gm(xv.size());
      for (std::size_t i = 0; i < xv.size(); ++i) want_gm[i] = 2 * (xv[i] - gv[i]) * 1.7 / static_cast<double>(rows * cols);
      check_close(gm, want_gm, tol(dt, 2), "mse_backward");
      Tensor am = Tensor::full(Shape{rows}, -1, DType::i32, d);
      be.argmax_rows(dt, rows, cols, x.raw(), static_cast<std::int32_t*>(am.raw()));
      auto got = am.to_int_vector();
      std::int64_t expected_equal = 0;
      for (std::int64_t r = 0; r < rows; ++r) {
        std::int64_t best = 0;
        for (std::int64_t c = 1; c < cols; ++c)
          if (xv[r * cols + c] > xv[r * cols + best]) best = c;
        CHECK(got[static_cast<std::size_t>(r)] == best);
        expected_equal += best == labels[r];
      }
      CHECK(be.count_equal(rows, static_cast<const std::int32_t*>(am.raw()), static_cast<const std::int32_t*>(lab.raw())) ==
            expected_equal);
    }
}

// The batched convolution and both its gradients against the reference's direct sums, on
// geometries that reach every edge of the implicit GEMM: padding wider than the kernel's reach,
// stride 2 with windows that skip pixels, non-square kernels, a 1 × 1 kernel, one filter and more
// filters than a tile holds, one image, and a weight gradient deep enough to be split.
inline void batched_convolution(Device d, Products products = {}) {
  auto& be = kernels::backend(d);
  struct Case {
    std::int64_t images, channels, height, width, filters, kh, kw, stride, padding;
  };
  const std::vector<Case> cases{
      {1, 1, 5, 5, 1, 3, 3, 1, 0},   {3, 2, 9, 7, 5, 3, 3, 1, 1},  {2, 3, 9, 7, 4, 3, 3, 2, 1},
      {2, 3, 8, 6, 70, 5, 3, 2, 2},  {5, 4, 6, 6, 3, 1, 1, 1, 0},  {2, 67, 5, 4, 3, 2, 2, 1, 1},
      {40, 2, 14, 14, 6, 3, 3, 1, 1},  // depth 40·196: the weight gradient is split on a GPU
  };
  std::uint64_t seed = 900;
  for (DType dt : products.dtypes)
    for (const Case& t : cases) {
      const std::string dtype = dtype_name(dt);
      CAPTURE(dtype);
      CAPTURE(t.images);
      CAPTURE(t.channels);
      CAPTURE(t.height);
      CAPTURE(t.filters);
      CAPTURE(t.kh);
      CAPTURE(t.stride);
      CAPTURE(t.padding);
      const kernels::ConvGeometry g{t.channels, t.height, t.width, t.kh, t.kw, t.stride, t.padding};
      const std::int64_t in = t.images * t.channels * t.height * t.width, out = t.images * t.filters * g.out_h() * g.out_w();
      const std::int64_t weights = t.filters * g.patch_size();
      auto xv = products.inputs(random_values(static_cast<std::size_t>(in), ++seed), dt);
      auto wv = products.inputs(random_values(static_cast<std::size_t>(weights), ++seed), dt);
      auto gyv = products.inputs(random_values(static_cast<std::size_t>(out), ++seed), dt);
      Tensor x = on(d, xv, dt), w = on(d, wv, dt), gy = on(d, gyv, dt);
      Tensor y = poisoned(d, out, dt), gx = poisoned(d, in, dt), gw = poisoned(d, weights, dt);
      // Where the backend keeps the forward pass's patches, the weight gradient is checked from them too.
      Tensor patches;
      if (be.conv2d_keeps_patches()) patches = poisoned(d, t.images * g.patch_size() * g.out_h() * g.out_w(), dt);
      be.conv2d_forward(dt, g, t.images, t.filters, x.raw(), w.raw(), y.raw(), patches.defined() ? patches.raw() : nullptr);
      check_close(y, reference::conv2d(xv, wv, {}, t.images, t.channels, t.height, t.width, t.filters, t.kh, t.kw, t.stride, t.padding),
                  products.tolerance(dt, static_cast<double>(g.patch_size())), "conv2d_forward");
      be.conv2d_backward_data(dt, g, t.images, t.filters, gy.raw(), w.raw(), gx.raw());
      check_close(gx, reference::conv2d_input_grad(gyv, wv, t.images, t.channels, t.height, t.width, t.filters, t.kh, t.kw, t.stride, t.padding),
                  products.tolerance(dt, static_cast<double>(t.filters * t.kh * t.kw)), "conv2d_backward_data");
      be.conv2d_backward_weight(dt, g, t.images, t.filters, x.raw(), gy.raw(), nullptr, gw.raw());
      const auto want_gw = reference::conv2d_weight_grad(xv, gyv, t.images, t.channels, t.height, t.width, t.filters, t.kh, t.kw, t.stride, t.padding);
      check_close(gw, want_gw, products.tolerance(dt, static_cast<double>(t.images * g.out_h() * g.out_w())),
                  "conv2d_backward_weight");
      // Deterministic: the same sum in the same order, bit for bit (from the kept patches too).
      Tensor again = poisoned(d, weights, dt);
      be.conv2d_backward_weight(dt, g, t.images, t.filters, x.raw(), gy.raw(), patches.defined() ? patches.raw() : nullptr,
                                again.raw());
      CHECK(again.to_vector() == gw.to_vector());
    }
  // No images: the weight gradient is zero, even over NaN.
  const kernels::ConvGeometry g{2, 5, 5, 3, 3, 1, 1};
  Tensor gw = poisoned(d, 4 * g.patch_size(), DType::f32);
  be.conv2d_backward_weight(DType::f32, g, 0, 4, nullptr, nullptr, nullptr, gw.raw());
  check_close(gw, std::vector<double>(static_cast<std::size_t>(4 * g.patch_size()), 0.0), {0, 0}, "conv2d_backward_weight of no images");
}

inline void convolution_and_pooling(Device d) {
  auto& be = kernels::backend(d);
  for (DType dt : {DType::f32, DType::f64}) {
    // im2col then GEMM against the reference's direct convolution: 3 channels 9 × 7, 4 filters
    // 3 × 3, stride 2, padding 1.
    kernels::ConvGeometry g{3, 9, 7, 3, 3, 2, 1};
    const std::int64_t co = 4, cols = g.out_h() * g.out_w(), patch = g.patch_size();
    auto xv = rounded(random_values(static_cast<std::size_t>(3 * 9 * 7), 701), dt);
    auto wv = rounded(random_values(static_cast<std::size_t>(co * patch), 702), dt);
    Tensor x = on(d, xv, dt), w = on(d, wv, dt), col = poisoned(d, patch * cols, dt), y = poisoned(d, co * cols, dt);
    be.im2col(dt, g, x.raw(), col.raw());
    be.gemm(dt, {false, false, co, cols, patch, patch, cols, cols}, 1.0, w.raw(), col.raw(), 0.0, y.raw());
    check_close(y, reference::conv2d(xv, wv, {}, 1, 3, 9, 7, co, 3, 3, 2, 1), tol(dt, static_cast<double>(patch)),
                "im2col + gemm against the direct convolution");
    // col2im is im2col's adjoint: ⟨im2col(x), c⟩ = ⟨x, col2im(c)⟩.
    auto cv = rounded(random_values(static_cast<std::size_t>(patch * cols), 703), dt);
    Tensor c = on(d, cv, dt), back = poisoned(d, 3 * 9 * 7, dt);
    be.col2im(dt, g, c.raw(), back.raw());
    auto colv = col.to_vector(), backv = back.to_vector();
    double lhs = 0, rhs = 0;
    for (std::size_t i = 0; i < cv.size(); ++i) lhs += colv[i] * cv[i];
    for (std::size_t i = 0; i < xv.size(); ++i) rhs += xv[i] * backv[i];
    CHECK(rhs == doctest::Approx(lhs).epsilon(dt == DType::f32 ? 1e-5 : 1e-12));
    // Max pooling, non-overlapping (2/2) and overlapping (3/2) windows, and its backward.
    for (auto [kernel, stride] : std::vector<std::pair<std::int64_t, std::int64_t>>{{2, 2}, {3, 2}}) {
      CAPTURE(kernel);
      kernels::PoolGeometry pg{5, 11, 9, kernel, stride};
      const std::int64_t outs = pg.out_h() * pg.out_w();
      auto pv = rounded(random_values(static_cast<std::size_t>(5 * 11 * 9), 704 + static_cast<std::uint64_t>(kernel)), dt);
      auto gyv = rounded(random_values(static_cast<std::size_t>(5 * outs), 706), dt);
      Tensor px = on(d, pv, dt), py = poisoned(d, 5 * outs, dt), gy = on(d, gyv, dt), gx = poisoned(d, 5 * 11 * 9, dt);
      Tensor arg = Tensor::full(Shape{5 * outs}, -1, DType::i32, d);
      be.max_pool2d(dt, pg, px.raw(), py.raw(), static_cast<std::int32_t*>(arg.raw()));
      check_close(py, reference::max_pool2d(pv, 5, 11, 9, kernel, stride), {0, 0}, "max_pool2d");
      be.max_pool2d_backward(dt, pg, gy.raw(), static_cast<const std::int32_t*>(arg.raw()), gx.raw());
      std::vector<double> want(pv.size(), 0.0);
      for (std::int64_t p = 0; p < 5; ++p)
        for (std::int64_t oy = 0; oy < pg.out_h(); ++oy)
          for (std::int64_t ox = 0; ox < pg.out_w(); ++ox) {
            std::int64_t best = -1;
            for (std::int64_t ky = 0; ky < kernel; ++ky)
              for (std::int64_t kx = 0; kx < kernel; ++kx) {
                const std::int64_t at = p * 99 + (oy * stride + ky) * 9 + ox * stride + kx;
                if (best < 0 || pv[at] > pv[best]) best = at;
              }
            want[best] += gyv[(p * pg.out_h() + oy) * pg.out_w() + ox];
          }
      check_close(gx, want, tol(dt, 4), "max_pool2d_backward");
    }
  }
}

// Max pooling's choices where they are not obvious: a tie goes to the first maximum in window
// order, a NaN wins (torch propagates it) and the first NaN is the one chosen, an all −∞ window
// keeps its first element; 2 × 2 windows and a 3 × 3 one with stride 1. The choice is read back
// through the backward pass, which routes each output's gradient to it.
inline void pooling_choices(Device d) {
  auto& be = kernels::backend(d);
  const double nan = nan_value, inf = std::numeric_limits<double>::infinity();
  for (DType dt : {DType::f32, DType::f64}) {
    const std::string dtype = dtype_name(dt);
    CAPTURE(dtype);
    // One 4 × 4 plane: windows (rows 0-1, cols 0-1) a tie of 5s; (0-1, 2-3) a 9 then a NaN;
    // (2-3, 0-1) two NaNs; (2-3, 2-3) all −∞.
    const std::vector<double> x{1, 5, 9, 2,  //
                                5, 0, nan, 3,  //
                                4, nan, -inf, -inf,  //
                                nan, 2, -inf, -inf};
    struct Case {
      std::int64_t kernel, stride;
      std::vector<double> want_y;
      std::vector<std::int64_t> want_at;  // the input element each output's gradient goes to
    };
    for (const Case& c : {Case{2, 2, {5, nan, nan, -inf}, {1, 6, 9, 10}},
                          Case{3, 1, {nan, nan, nan, nan}, {6, 6, 6, 6}}}) {
      CAPTURE(c.kernel);
      kernels::PoolGeometry g{1, 4, 4, c.kernel, c.stride};
      const std::int64_t outs = g.out_h() * g.out_w();
      Tensor xt = on(d, x, dt), y = poisoned(d, outs, dt);
      Tensor argmax = labels_on(d, std::vector<std::int32_t>(static_cast<std::size_t>(outs), -1));
      be.max_pool2d(dt, g, xt.raw(), y.raw(), static_cast<std::int32_t*>(argmax.raw()));
      const auto got = y.to_vector();
      for (std::int64_t o = 0; o < outs; ++o) {
        CAPTURE(o);
        const double w = c.want_y[static_cast<std::size_t>(o)], v = got[static_cast<std::size_t>(o)];
        CHECK(((std::isnan(w) && std::isnan(v)) || w == v));
      }
      // Output o's gradient is 10^o, so each input's sum says which outputs chose it.
      std::vector<double> gyv;
      for (std::int64_t o = 0; o < outs; ++o) gyv.push_back(std::pow(10.0, static_cast<double>(o)));
      Tensor gy = on(d, gyv, dt), gx = poisoned(d, 16, dt);
      be.max_pool2d_backward(dt, g, gy.raw(), static_cast<const std::int32_t*>(argmax.raw()), gx.raw());
      std::vector<double> want_gx(16, 0.0);
      for (std::int64_t o = 0; o < outs; ++o) want_gx[static_cast<std::size_t>(c.want_at[static_cast<std::size_t>(o)])] += gyv[static_cast<std::size_t>(o)];
      check_close(gx, want_gx, {0, 0}, "max_pool2d's choices, through its backward pass");
    }
    // The same choices along one 2 × 16 row of eight 2 × 2 windows, enough for the CPU's loop
    // over windows to run vectorized: a tie, a number then NaN, NaN first, all −∞, NaN then
    // numbers, a tie of −2 among −∞, ±0 below 1, four equal 3s.
    const std::vector<double> row{1, 5,  9, 2,   4, nan,   -inf, -inf, nan, 7, -inf, -2,   0, -0.0, 3, 3,  //
                                  5, 0,  nan, 3, nan, 2,   -inf, -inf, 8, 9, -2, -inf,   0, 1,    3, 3};
    const std::vector<double> want_y{5, nan, nan, -inf, nan, -2, 1, 3};
    const std::vector<std::int32_t> want_at{1, 18, 5, 6, 8, 11, 29, 14};
    kernels::PoolGeometry g{1, 2, 16, 2, 2};
    Tensor xt = on(d, row, dt), y = poisoned(d, 8, dt);
    Tensor argmax = labels_on(d, std::vector<std::int32_t>(8, -1));
    be.max_pool2d(dt, g, xt.raw(), y.raw(), static_cast<std::int32_t*>(argmax.raw()));
    const auto got = y.to_vector();
    for (std::size_t o = 0; o < 8; ++o) {
      CAPTURE(o);
      CHECK(((std::isnan(want_y[o]) && std::isnan(got[o])) || want_y[o] == got[o]));
    }
    std::vector<double> at;
    for (double v : argmax.to(DType::f64).to_vector()) at.push_back(v);
    CHECK(at == std::vector<double>(want_at.begin(), want_at.end()));
  }
}

inline void optimizers(Device d) {
  auto& be = kernels::backend(d);
  for (DType dt : {DType::f32, DType::f64}) {
    const std::int64_t n = 1001;
    auto pv = rounded(random_values(n, 801), dt), gv = rounded(random_values(n, 802), dt);
    auto mv = rounded(random_values(n, 803, -0.1, 0.1), dt), vv = rounded(random_values(n, 804, 0.0, 0.01), dt);
    for (bool decoupled : {false, true}) {
      Tensor p = on(d, pv, dt), g = on(d, gv, dt), m = on(d, mv, dt), v = on(d, vv, dt);
      kernels::AdamStep s{.lr = 1e-2, .beta1 = 0.9, .beta2 = 0.999, .eps = 1e-8, .weight_decay = 0.05,
                          .decoupled_weight_decay = decoupled};
      // After six steps, step 7 (its bias corrections in every block of the launch), then counted.
      Tensor counters = on(d, {6, 0}, DType::f64);
      auto* c = static_cast<kernels::AdamCounters*>(counters.raw());
      be.adam_steps(dt, {{n, p.raw(), g.raw(), m.raw(), v.raw()}}, s, c, /*count_step=*/true);
      CHECK(counters.to_vector() == std::vector<double>{7, 0});  // no block left counted for the next call
      std::vector<double> want_p(n), want_m(n), want_v(n);
      for (std::int64_t i = 0; i < n; ++i) {
        double pi = pv[i], gi = gv[i];
        if (decoupled) pi *= 1 - s.lr * s.weight_decay;
        else gi += s.weight_decay * pi;
        want_m[i] = 0.9 * mv[i] + 0.1 * gi;
        want_v[i] = 0.999 * vv[i] + 0.001 * gi * gi;
        const double mhat = want_m[i] / (1 - std::pow(0.9, 7)), vhat = want_v[i] / (1 - std::pow(0.999, 7));
        want_p[i] = pi - s.lr * mhat / (std::sqrt(vhat) + s.eps);
      }
      check_close(m, want_m, tol(dt, 2), "adam exp_avg");
      check_close(v, want_v, tol(dt, 2), "adam exp_avg_sq");
      check_close(p, want_p, tol(dt, 8), "adam param");
    }
    {
      // adam_steps on 21 tensors (more than one CUDA launch holds; one empty) updates each value
      // exactly as a call for its tensor alone does, all with the same step count; a call without
      // count_step leaves the count alone, and one with no tensors still counts.
      kernels::AdamStep s{.lr = 1e-2, .weight_decay = 0.05, .decoupled_weight_decay = true};
      Tensor counters = on(d, {3, 0}, DType::f64);
      auto* c = static_cast<kernels::AdamCounters*>(counters.raw());
      std::vector<std::array<Tensor, 4>> many, one_by_one;
      std::vector<kernels::AdamTensor> list;
      for (std::int64_t t = 0; t < 21; ++t) {
        const std::int64_t size = t == 4 ? 0 : 1 + (t * 137) % 700;
        const std::uint64_t at = 900 + 4 * static_cast<std::uint64_t>(t);
        auto values = [&](std::uint64_t seed, double lo, double hi) { return rounded(random_values(static_cast<std::size_t>(size), seed, lo, hi), dt); };
        const auto p0 = values(at, -1, 1), g0 = values(at + 1, -1, 1), m0 = values(at + 2, -0.1, 0.1), v0 = values(at + 3, 0, 0.01);
        many.push_back({on(d, p0, dt), on(d, g0, dt), on(d, m0, dt), on(d, v0, dt)});
        one_by_one.push_back({on(d, p0, dt), on(d, g0, dt), on(d, m0, dt), on(d, v0, dt)});
        auto& x = many.back();
        list.push_back({size, x[0].raw(), x[1].raw(), x[2].raw(), x[3].raw()});
      }
      for (auto& x : one_by_one)
        be.adam_steps(dt, {{x[0].numel(), x[0].raw(), x[1].raw(), x[2].raw(), x[3].raw()}}, s, c, /*count_step=*/false);
      CHECK(counters.to_vector() == std::vector<double>{3, 0});
      be.adam_steps(dt, list, s, c, /*count_step=*/true);
      CHECK(counters.to_vector() == std::vector<double>{4, 0});
      be.adam_steps(dt, {}, s, c, /*count_step=*/true);
      CHECK(counters.to_vector() == std::vector<double>{5, 0});
      for (std::size_t t = 0; t < many.size(); ++t)
        for (int k : {0, 2, 3}) CHECK(many[t][static_cast<std::size_t>(k)].to_vector() == one_by_one[t][static_cast<std::size_t>(k)].to_vector());
      CHECK(many[1][0].to_vector() != rounded(random_values(138, 904, -1, 1), dt));  // the step moved the parameters
    }
    for (bool nesterov : {false, true}) {
      Tensor p = on(d, pv, dt), g = on(d, gv, dt), buf = on(d, mv, dt);
      kernels::SgdStep s{.lr = 0.1, .momentum = 0.9, .dampening = 0.1, .weight_decay = 0.01, .nesterov = nesterov,
                         .first_step = false};
      be.sgd_step(dt, n, p.raw(), g.raw(), buf.raw(), s);
      std::vector<double> want_p(n), want_b(n);
      for (std::int64_t i = 0; i < n; ++i) {
        const double di = gv[i] + 0.01 * pv[i];
        want_b[i] = 0.9 * mv[i] + 0.9 * di;
        want_p[i] = pv[i] - 0.1 * (nesterov ? di + 0.9 * want_b[i] : want_b[i]);
      }
      check_close(buf, want_b, tol(dt, 2), "sgd momentum buffer");
      check_close(p, want_p, tol(dt, 4), "sgd param");
    }
  }
}

// The NTK probe's tile kernels against tiles built from materialized parameter gradients
// (reference::dense_layer_kernel_tile), on a tile that is off the diagonal, not square and
// inside a wider kernel (ldk > its columns, whose padding must stay as it was); and the f64 dot.
inline void ntk_tiles(Device d) {
  auto& be = kernels::backend(d);
  for (DType dt : {DType::f32, DType::f64}) {
    const std::string dtype = dtype_name(dt);
    CAPTURE(dtype);
    const std::int64_t n = 9, c = 3, out = 5, in = 4;
    const kernels::KernelTile tile{2, 3, 1, 5, c, 5 * c + 2};
    const std::int64_t rows = tile.rows(), cols = tile.cols();
    const auto dv = rounded(random_values(static_cast<std::size_t>(n * c * out), 601), dt);
    const auto hv = rounded(random_values(static_cast<std::size_t>(n * in), 602), dt);
    auto gv = reference::matmul(hv, hv, n, n, in, false, true);  // G = H Hᵀ + 1
    for (auto& v : gv) v += 1;
    gv = rounded(gv, dt);
    const std::vector<double> di(dv.begin() + tile.i0 * c * out, dv.begin() + (tile.i0 + tile.ni) * c * out);
    const std::vector<double> dj(dv.begin() + tile.j0 * c * out, dv.begin() + (tile.j0 + tile.nj) * c * out);
    Tensor t = on(d, rounded(reference::matmul(di, dj, rows, cols, out, false, true), dt), dt), g = on(d, gv, dt);
    const auto k0 = rounded(random_values(static_cast<std::size_t>(rows * tile.ldk), 603), dt);  // added to, not overwritten
    auto add_tile = [&](const reference::Array& block) {
      auto want = k0;
      for (std::int64_t r = 0; r < rows; ++r)
        for (std::int64_t q = 0; q < cols; ++q) want[r * tile.ldk + q] += block[r * cols + q];
      return want;
    };
    Tensor k = on(d, k0, dt);
    const auto want_block = reference::dense_layer_kernel_tile(dv, hv, c, out, in, tile.i0, tile.ni, tile.j0, tile.nj);
    be.add_gram_weighted(dt, tile, t.raw(), g.raw(), n, k.raw(), true);
    check_close(k, add_tile(want_block), tol(dt, out * in), "add_gram_weighted");
    // Written, not added (a tile's first layer): NaN where the tile is, never read; the padding kept.
    auto k0_poisoned = k0;
    for (std::int64_t r = 0; r < rows; ++r)
      for (std::int64_t q = 0; q < cols; ++q) k0_poisoned[r * tile.ldk + q] = std::nan("");
    Tensor written = on(d, k0_poisoned, dt);
    be.add_gram_weighted(dt, tile, t.raw(), g.raw(), n, written.raw(), false);
    auto want_written = k0;
    for (std::int64_t r = 0; r < rows; ++r)
      for (std::int64_t q = 0; q < cols; ++q) want_written[r * tile.ldk + q] = want_block[r * cols + q];
    check_close(written, want_written, tol(dt, out * in), "add_gram_weighted, written");
    // The output layer's signals are α·δ_ab: its block is α² δ_ab (h_i·h_j + 1).
    const double alpha = 0.7;
    std::vector<double> scaled_identity(static_cast<std::size_t>(n * c * c), 0.0);
    for (std::int64_t r = 0; r < n * c; ++r) scaled_identity[r * c + r % c] = alpha;
    Tensor k2 = on(d, k0, dt);
    be.add_output_block(dt, tile, alpha * alpha, g.raw(), n, k2.raw());
    check_close(k2, add_tile(reference::dense_layer_kernel_tile(scaled_identity, hv, c, c, in, tile.i0, tile.ni, tile.j0, tile.nj)),
                tol(dt, in), "add_output_block");
    for (std::int64_t m : {1, 1000, 300001}) {  // one block, a few, many
      CAPTURE(m);
      const auto xv = rounded(random_values(static_cast<std::size_t>(m), 604), dt);
      const auto yv = rounded(random_values(static_cast<std::size_t>(m), 605), dt);
      Tensor x = on(d, xv, dt), y = on(d, yv, dt), dot = poisoned(d, 1, DType::f64), again = poisoned(d, 1, DType::f64);
      be.dot_f64(dt, m, x.raw(), y.raw(), static_cast<double*>(dot.raw()));
      be.dot_f64(dt, m, x.raw(), y.raw(), static_cast<double*>(again.raw()));
      double want = 0;
      for (std::size_t q = 0; q < xv.size(); ++q) want += xv[q] * yv[q];
      // f64 products and sums whatever the dtype: far inside f32's rounding.
      check_close(dot, {want}, {1e-13 * std::sqrt(static_cast<double>(m)), 1e-13}, "dot_f64");
      CHECK(again.item() == dot.item());
    }
  }
}

// layer_centers and manifold_points on two layers (classes of unequal sizes, rows in mixed
// order; one with more features than a CUDA block has threads) against their definitions: the
// projection as (I − B Bᵀ) at once rather than one direction after another.
inline void layer_manifolds(Device d) {
  auto& be = kernels::backend(d);
  struct Case {
    std::int64_t rows, features, classes, k;
  };
  std::uint64_t seed = 660;
  for (const Case c : {Case{23, 7, 3, 2}, Case{41, 300, 4, 3}, Case{9, 5, 2, 0}}) {
    const std::int64_t n = c.rows, f_count = c.features, classes = c.classes, k = c.k;
    CAPTURE(f_count);
    const auto x = random_values(static_cast<std::size_t>(n * f_count), ++seed, -2, 3);
    std::vector<std::int32_t> labels(static_cast<std::size_t>(n));
    for (std::int64_t i = 0; i < n; ++i) labels[static_cast<std::size_t>(i)] = static_cast<std::int32_t>((i * 5 + i / 3) % classes);
    std::vector<std::int32_t> first(static_cast<std::size_t>(classes + 1), 0), rows;
    for (std::int64_t cl = 0; cl < classes; ++cl) {
      for (std::int64_t i = 0; i < n; ++i)
        if (labels[static_cast<std::size_t>(i)] == cl) rows.push_back(static_cast<std::int32_t>(i));
      first[static_cast<std::size_t>(cl + 1)] = static_cast<std::int32_t>(rows.size());
    }
    // An orthonormal basis [features, k]: Gram–Schmidt's Q of random columns.
    auto basis = random_values(static_cast<std::size_t>(f_count * k), ++seed, -1, 1);
    for (std::int64_t j = 0; j < k; ++j) {
      for (std::int64_t i = 0; i < j; ++i) {
        double dot = 0;
        for (std::int64_t f = 0; f < f_count; ++f) dot += basis[f * k + i] * basis[f * k + j];
        for (std::int64_t f = 0; f < f_count; ++f) basis[f * k + j] -= dot * basis[f * k + i];
      }
      double norm = 0;
      for (std::int64_t f = 0; f < f_count; ++f) norm += basis[f * k + j] * basis[f * k + j];
      for (std::int64_t f = 0; f < f_count; ++f) basis[f * k + j] /= std::sqrt(norm);
    }
    Tensor x_d = on(d, x, DType::f64), rows_d = labels_on(d, rows), first_d = labels_on(d, first);
    Tensor basis_d = k > 0 ? on(d, basis, DType::f64) : Tensor();
    Tensor mean = poisoned(d, f_count, DType::f64), centers = poisoned(d, classes * f_count, DType::f64);
    Tensor work = poisoned(d, n * f_count, DType::f64), norms = poisoned(d, 2 * classes, DType::f64);
    const kernels::LayerClasses layer{n, f_count, classes, static_cast<const double*>(x_d.raw()),
                                      static_cast<const std::int32_t*>(rows_d.raw()),
                                      static_cast<const std::int32_t*>(first_d.raw())};
    be.layer_centers(layer, static_cast<double*>(mean.raw()), static_cast<double*>(centers.raw()));
    be.manifold_points(layer, static_cast<const double*>(mean.raw()), k > 0 ? static_cast<const double*>(basis_d.raw()) : nullptr,
                       k, static_cast<double*>(work.raw()), static_cast<double*>(norms.raw()));
    std::vector<double> want_mean(static_cast<std::size_t>(f_count), 0.0), want_centers(static_cast<std::size_t>(classes * f_count), 0.0);
    for (std::int64_t f = 0; f < f_count; ++f) {
      for (std::int64_t i = 0; i < n; ++i) want_mean[f] += x[i * f_count + f];
      want_mean[f] /= static_cast<double>(n);
    }
    std::vector<double> want_work(static_cast<std::size_t>(n * f_count)), want_norms(static_cast<std::size_t>(2 * classes));
    for (std::int64_t cl = 0; cl < classes; ++cl) {
      const std::int64_t m = first[cl + 1] - first[cl];
      std::vector<double> points(static_cast<std::size_t>(m * f_count));  // [m, features]
      for (std::int64_t p = 0; p < m; ++p) {
        const std::int64_t row = rows[static_cast<std::size_t>(first[cl] + p)];
        for (std::int64_t f = 0; f < f_count; ++f) {
          points[p * f_count + f] = x[row * f_count + f] - want_mean[f];
          want_centers[cl * f_count + f] += points[p * f_count + f] / static_cast<double>(m);
        }
        std::vector<double> coefficients(static_cast<std::size_t>(k), 0.0);  // Bᵀ point
        for (std::int64_t j = 0; j < k; ++j)
          for (std::int64_t f = 0; f < f_count; ++f) coefficients[j] += basis[f * k + j] * points[p * f_count + f];
        for (std::int64_t f = 0; f < f_count; ++f)
          for (std::int64_t j = 0; j < k; ++j) points[p * f_count + f] -= basis[f * k + j] * coefficients[j];
      }
      double norm = 0, spread = 0;
      std::vector<double> own(static_cast<std::size_t>(f_count), 0.0);
      for (std::int64_t f = 0; f < f_count; ++f) {
        for (std::int64_t p = 0; p < m; ++p) own[f] += points[p * f_count + f] / static_cast<double>(m);
        norm += own[f] * own[f];
      }
      norm = std::sqrt(norm);
      for (std::int64_t f = 0; f < f_count; ++f)
        for (std::int64_t p = 0; p < m; ++p) {
          const double v = (points[p * f_count + f] - own[f]) / norm;
          want_work[f_count * first[cl] + f * m + p] = v;
          spread = std::max(spread, std::abs(v));
        }
      want_norms[2 * cl] = norm;
      want_norms[2 * cl + 1] = spread;
    }
    check_close(mean, want_mean, {1e-13, 1e-13}, "layer_centers mean");
    check_close(centers, want_centers, {1e-13, 1e-12}, "layer_centers centers");
    check_close(work, want_work, {1e-12, 1e-11}, "manifold_points points");
    check_close(norms, want_norms, {1e-13, 1e-12}, "manifold_points norms");
  }
}

// span_coordinates on manifolds in one call: more features than points (R against Gram–Schmidt's),
// more points than a CUDA block has threads, as many or fewer features (the points themselves),
// and points of deficient rank (R not unique there: its Gram must still be the points').
inline void span_coordinates(Device d) {
  auto& be = kernels::backend(d);
  struct Case {
    std::int64_t features, points;
    bool deficient;  // point 1 repeats point 0, and point 2 is zero
  };
  const std::vector<Case> cases{{13, 5, false}, {40, 7, false}, {3, 6, false}, {6, 6, false},
                                {270, 260, false}, {12, 6, true}, {9, 1, false}};
  std::vector<Tensor> work, out;
  std::vector<std::vector<double>> inputs;
  std::vector<kernels::SpanProblem> problems;
  std::uint64_t seed = 680;
  for (const Case c : cases) {
    const std::int64_t f = c.features, m = c.points;
    auto a = random_values(static_cast<std::size_t>(f * m), ++seed, -1, 1);
    if (c.deficient)
      for (std::int64_t i = 0; i < f; ++i) a[i * m + 1] = a[i * m], a[i * m + 2] = 0;
    inputs.push_back(a);
    work.push_back(on(d, a, DType::f64));
    const kernels::SpanProblem p{f, m, static_cast<double*>(work.back().raw()), nullptr};
    out.push_back(poisoned(d, m * p.dims(), DType::f64));
    problems.push_back({f, m, static_cast<double*>(work.back().raw()), static_cast<double*>(out.back().raw())});
  }
  be.span_coordinates(problems);
  for (std::size_t c = 0; c < cases.size(); ++c) {
    const std::int64_t f = cases[c].features, m = cases[c].points, d1 = problems[c].dims(), dims = d1 - 1;
    CAPTURE(f);
    CAPTURE(m);
    const auto s = out[c].to_vector();
    const auto& a = inputs[c];
    auto at = [&](std::int64_t p, std::int64_t k) { return s[static_cast<std::size_t>(p * d1 + k)]; };
    std::int64_t wrong = 0;
    for (std::int64_t p = 0; p < m; ++p) {
      wrong += at(p, dims) != 1;  // the center coordinate
      for (std::int64_t k = 0; k < dims; ++k) {
        if (f <= m) wrong += at(p, k) != a[k * m + p];  // the points themselves
        else if (k > p) wrong += at(p, k) != 0;         // R is upper triangular
        else if (k == p) wrong += !(at(p, k) >= 0);     // with a non-negative diagonal
      }
    }
    CHECK_MESSAGE(wrong == 0, wrong, " coordinates break the layout");
    if (f <= m) continue;
    if (!cases[c].deficient) {  // R is unique: against Gram–Schmidt's
      const auto want = reference::qr_r(a, f, m);
      std::vector<double> got(static_cast<std::size_t>(m * m));
      for (std::int64_t k = 0; k < m; ++k)
        for (std::int64_t p = 0; p < m; ++p) got[static_cast<std::size_t>(k * m + p)] = at(p, k);
      check_close(got, want, {1e-10, 1e-9}, "span_coordinates R");
    }
    // RᵀR = AᵀA: the coordinates keep every product between the points.
    std::vector<double> gram_r(static_cast<std::size_t>(m * m)), gram_a(static_cast<std::size_t>(m * m));
    for (std::int64_t p = 0; p < m; ++p)
      for (std::int64_t q = 0; q < m; ++q) {
        double x = 0, y = 0;
        for (std::int64_t k = 0; k < dims; ++k) x += at(p, k) * at(q, k);
        for (std::int64_t i = 0; i < f; ++i) y += a[i * m + p] * a[i * m + q];
        gram_r[static_cast<std::size_t>(p * m + q)] = x;
        gram_a[static_cast<std::size_t>(p * m + q)] = y;
      }
    check_close(gram_r, gram_a, {1e-10, 1e-9}, "span_coordinates Gram");
  }
}

// The geometry probe's anchor kernels on five manifolds solved in one call (more points than
// dimensions: a singular Gram, dependent columns; fewer; more points than a CUDA block has
// threads; a point manifold, D = 0; κ > 0), then on one of 300 points. Each t's interior test against the max projection found here;
// each solve against brute force over every support where that is small, and against its KKT
// conditions everywhere; the anchors and terms against their definitions.
inline void anchor_solves(Device d) {
  using reference::matmul;
  auto& be = kernels::backend(d);
  struct Case {
    std::int64_t dims, points, count;
    double kappa, spread;
  };
  // All manifolds in one call, as a layer's classes go; each one's inputs and device arrays.
  struct Manifold {
    Case c;
    std::vector<double> s, t, gram, proj;
    Tensor s_d, t_d, gram_d, proj_d, z_d, interior_d;
  };
  auto doubles = [](Tensor& x) { return static_cast<double*>(x.raw()); };
  std::uint64_t seed = 700;
  std::int64_t interior_total = 0;
  // Two calls: five manifolds together, then one of more points than the CUDA kernel keeps in
  // shared memory.
  for (const auto& call : {std::vector<Case>{{4, 9, 37, 0.0, 0.4}, {8, 5, 29, 0.3, 0.8}, {1, 3, 11, 0.0, 1.0},
                                             {12, 150, 23, 0.1, 0.6}, {30, 70, 9, 0.0, 2.0}},
                           std::vector<Case>{{40, 300, 7, 2.0, 0.5}}}) {
    std::vector<Manifold> manifolds;
    std::vector<kernels::AnchorProblem> problems;
    for (const Case c : call) {
      const std::int64_t d1 = c.dims, m = c.points, n_t = c.count;
      Manifold mf{c, random_values(static_cast<std::size_t>(m * d1), ++seed, -c.spread, c.spread),
                  random_values(static_cast<std::size_t>(n_t * d1), ++seed, -2, 2), {}, {}, {}, {}, {}, {}, {}, {}};
      for (std::int64_t mu = 0; mu < m; ++mu) mf.s[static_cast<std::size_t>(mu * d1 + d1 - 1)] = 1;  // the center coordinate
      mf.gram = matmul(mf.s, mf.s, m, m, d1, false, true);
      mf.proj = matmul(mf.s, mf.t, m, n_t, d1, false, true);
      mf.s_d = on(d, mf.s, DType::f64);
      mf.t_d = on(d, mf.t, DType::f64);
      mf.gram_d = on(d, mf.gram, DType::f64);
      mf.proj_d = on(d, mf.proj, DType::f64);
      mf.z_d = poisoned(d, n_t * m, DType::f64);
      mf.interior_d = labels_on(d, std::vector<std::int32_t>(static_cast<std::size_t>(n_t), -7));
      problems.push_back({d1, m, n_t, c.kappa, doubles(mf.s_d), doubles(mf.t_d), doubles(mf.gram_d), doubles(mf.proj_d),
                          doubles(mf.z_d), static_cast<std::int32_t*>(mf.interior_d.raw())});
      manifolds.push_back(std::move(mf));
    }
    be.solve_anchors(problems, 1e-12);

    for (std::size_t i = 0; i < manifolds.size(); ++i) {
      Manifold& mf = manifolds[i];
      const Case c = mf.c;
      const std::int64_t d1 = c.dims, m = c.points, n_t = c.count, dd = d1 - 1;
      CAPTURE(d1);
      CAPTURE(m);
      const auto &s = mf.s, &t = mf.t, &gram = mf.gram, &proj = mf.proj;
      const auto z = mf.z_d.to_vector();
      const auto interior = mf.interior_d.to_int_vector();
      int solved = 0;
      for (std::int64_t q = 0; q < n_t; ++q) {
        CAPTURE(q);
        std::int64_t best = 0;
        double best_proj = -INFINITY;
        for (std::int64_t mu = 0; mu < m; ++mu) {
          const double v = proj[static_cast<std::size_t>(mu * n_t + q)] - s[static_cast<std::size_t>(mu * d1 + dd)] * t[static_cast<std::size_t>(q * d1 + dd)];
          if (v > best_proj) best_proj = v, best = mu;
        }
        const std::vector<double> zq(z.begin() + q * m, z.begin() + (q + 1) * m);
        if (t[static_cast<std::size_t>(q * d1 + dd)] + best_proj + c.kappa < 0) {
          CHECK(interior[static_cast<std::size_t>(q)] == best + 1);
          check_close(zq, std::vector<double>(static_cast<std::size_t>(m), 0.0), {0, 0}, "the multipliers of an interior t");
          continue;
        }
        ++solved;
        CHECK(interior[static_cast<std::size_t>(q)] == 0);
        std::vector<double> aty(static_cast<std::size_t>(m));
        for (std::int64_t mu = 0; mu < m; ++mu)
          aty[static_cast<std::size_t>(mu)] = proj[static_cast<std::size_t>(mu * n_t + q)] + c.kappa * s[static_cast<std::size_t>(mu * d1 + dd)];
        // KKT: z ≥ 0, the gradient Aᵀy − G z ≤ 0, and 0 where z > 0.
        const auto gz = matmul(gram, zq, m, 1, m);
        for (std::int64_t mu = 0; mu < m; ++mu) {
          const double w = aty[static_cast<std::size_t>(mu)] - gz[static_cast<std::size_t>(mu)];
          CHECK(zq[static_cast<std::size_t>(mu)] >= 0);
          CHECK(w <= 1e-9);
          if (zq[static_cast<std::size_t>(mu)] > 0) CHECK(std::abs(w) <= 1e-9);
        }
        if (m <= 10) {
          const double want = reference::nnls_objective(gram, aty, reference::nnls_by_supports(gram, aty, m));
          CHECK(reference::nnls_objective(gram, aty, zq) == doctest::Approx(want).epsilon(1e-10).scale(1e-12));
        }
      }
      CHECK(solved > 0);
      interior_total += n_t - solved;

      // The terms, from these multipliers, against their definitions.
      const auto sz = matmul(z, s, n_t, d1, m), gz = matmul(z, gram, n_t, m, m);
      Tensor sz_d = on(d, sz, DType::f64), gz_d = on(d, gz, DType::f64), anchors_d = poisoned(d, n_t * d1, DType::f64),
             terms_d = poisoned(d, n_t * kernels::anchor_term_count, DType::f64);
      be.anchor_terms(problems[i], doubles(sz_d), doubles(gz_d), doubles(anchors_d), doubles(terms_d));
      std::vector<double> anchors(static_cast<std::size_t>(n_t * d1)), terms(static_cast<std::size_t>(n_t * kernels::anchor_term_count));
      std::vector<double> mean(static_cast<std::size_t>(d1), 0.0);
      for (std::int64_t q = 0; q < n_t; ++q) {
        double* a = anchors.data() + q * d1;
        double* row = terms.data() + q * kernels::anchor_term_count;
        const double* zq = z.data() + q * m;
        const double* tq = t.data() + q * d1;
        const std::int32_t point = interior[static_cast<std::size_t>(q)];
        double zsum = 0, violation = 0, min_z = 0, complementarity = 0;
        for (std::int64_t mu = 0; mu < m; ++mu) zsum += zq[mu];
        for (std::int64_t k = 0; k < d1; ++k) a[k] = point > 0 ? s[static_cast<std::size_t>((point - 1) * d1 + k)] : sz[static_cast<std::size_t>(q * d1 + k)] / zsum;
        for (std::int64_t mu = 0; point == 0 && mu < m; ++mu) {
          const double slack = proj[static_cast<std::size_t>(mu * n_t + q)] - gz[static_cast<std::size_t>(q * m + mu)] + c.kappa;
          violation = std::max(violation, slack);
          min_z = std::min(min_z, zq[mu]);
          complementarity = std::max(complementarity, std::abs(zq[mu] * slack));
        }
        double ts = c.kappa, ss = 0, tn = 0, sn = 0, dot = 0;
        for (std::int64_t k = 0; k < d1; ++k) {
          ts += tq[k] * a[k];
          ss += a[k] * a[k];
          mean[static_cast<std::size_t>(k)] += a[k] / static_cast<double>(n_t);
          if (k < dd) tn += tq[k] * tq[k], sn += a[k] * a[k], dot += tq[k] * a[k];
        }
        row[kernels::capacity_term] = std::pow(std::max(ts, 0.0), 2) / ss;
        row[kernels::cosine_term] = dd > 0 ? dot / std::sqrt(tn * (sn + 1e-12)) : 0;
        row[kernels::max_violation_term] = violation;
        row[kernels::min_multiplier_term] = min_z;
        row[kernels::complementarity_term] = complementarity;
      }
      for (std::int64_t q = 0; q < n_t; ++q) {
        double sq = 0;
        for (std::int64_t k = 0; k < dd; ++k)
          sq += std::pow((anchors[static_cast<std::size_t>(q * d1 + k)] - mean[static_cast<std::size_t>(k)]) / anchors[static_cast<std::size_t>(q * d1 + dd)], 2);
        terms[static_cast<std::size_t>(q * kernels::anchor_term_count + kernels::radius_term)] = sq;
      }
      check_close(anchors_d, anchors, {1e-13, 1e-12}, "anchor_terms: the anchors");
      check_close(terms_d, terms, {1e-12, 1e-10}, "anchor_terms: the terms");
    }
  }
  CHECK(interior_total > 0);  // the interior path ran too
}

// Rows gathered by index (a batch taken from a dataset where it lives): repeats, any order, a
// one-value row, every dtype; an index out of range gives a poison row instead of a stray read.
inline void gathered_rows(Device d) {
  auto& be = kernels::backend(d);
  const std::vector<std::int32_t> picks{5, 0, 36, 5, 17, -1, 36, 37, 2};
  const Tensor idx = labels_on(d, picks);
  for (DType dt : {DType::f32, DType::f64, DType::i32})
    for (std::int64_t width : {1, 11, 784}) {
      const std::string dtype = dtype_name(dt);
      CAPTURE(dtype);
      CAPTURE(width);
      const std::int64_t rows = 37;
      auto xv = random_values(static_cast<std::size_t>(rows * width), 601 + static_cast<std::uint64_t>(width), -50, 50);
      if (dt == DType::i32)
        for (double& v : xv) v = std::trunc(v);
      xv = rounded(xv, dt);
      const Tensor x = on(d, xv, dt);
      Tensor y = dt == DType::i32 ? Tensor::full(Shape{static_cast<std::int64_t>(picks.size()) * width}, 12345, dt, d)
                                  : poisoned(d, static_cast<std::int64_t>(picks.size()) * width, dt);
      be.gather_rows(dt, static_cast<std::int64_t>(picks.size()), width, rows, x.raw(),
                     static_cast<const std::int32_t*>(idx.raw()), y.raw());
      std::vector<double> want;
      for (std::int32_t p : picks)
        for (std::int64_t c = 0; c < width; ++c)
          want.push_back(p >= 0 && p < rows ? xv[static_cast<std::size_t>(p * width + c)] : dt == DType::i32 ? -1.0 : nan_value);
      const auto got = y.to_vector();
      REQUIRE(got.size() == want.size());
      bool same = true;
      for (std::size_t i = 0; i < got.size(); ++i) same = same && (got[i] == want[i] || (std::isnan(got[i]) && std::isnan(want[i])));
      CHECK_MESSAGE(same, "gather_rows: a row differs from x's row at its index");
    }
  Tensor untouched = poisoned(d, 3, DType::f32);
  be.gather_rows(DType::f32, 0, 3, 37, untouched.raw(), static_cast<const std::int32_t*>(idx.raw()), untouched.raw());
  CHECK(std::isnan(untouched.to_vector()[0]));  // no rows: nothing written
}

}  // namespace backend_checks

// All of the above on one backend.
inline void check_backend_kernels(Device d) {
  SUBCASE("gemm") { backend_checks::gemm(d); }
  SUBCASE("dense layer: GEMM, bias and activation") { backend_checks::dense_layer(d); }
  SUBCASE("dense layer: the backward pass in one call") { backend_checks::dense_layer_backward(d); }
  SUBCASE("activations") { backend_checks::activations(d); }
  SUBCASE("broadcasting and its sums") { backend_checks::broadcasting(d); }
  SUBCASE("rows, sums, axpby") { backend_checks::rows_and_sums(d); }
  SUBCASE("rows gathered by index") { backend_checks::gathered_rows(d); }
  SUBCASE("losses, argmax, counts") { backend_checks::losses(d); }
  SUBCASE("batched convolution and its gradients") { backend_checks::batched_convolution(d); }
  SUBCASE("convolution and pooling") { backend_checks::convolution_and_pooling(d); }
  SUBCASE("max pooling: ties, NaN, −∞") { backend_checks::pooling_choices(d); }
  SUBCASE("optimizers") { backend_checks::optimizers(d); }
  SUBCASE("NTK probe tiles") { backend_checks::ntk_tiles(d); }
  SUBCASE("geometry probe class manifolds") { backend_checks::layer_manifolds(d); }
  SUBCASE("geometry probe span coordinates") { backend_checks::span_coordinates(d); }
  SUBCASE("geometry probe anchors") { backend_checks::anchor_solves(d); }
}

// Three training steps of the study's MLP (MSE) and CNN (cross-entropy) on `device` and on the
// CPU from the same weights and batch: every loss, gradient and parameter compared. The devices
// sum in different orders, so equality is to f32 rounding. The step is SGD with momentum, which
// is linear in the gradient: Adam's update g/√v turns a rounding-level difference in a
// near-zero gradient into a full ±lr step (the Adam kernel itself is checked above).
inline void check_training_matches_cpu(Device device) {
  for (bool cnn : {false, true}) {
    CAPTURE(cnn);
    Generator g_cpu(3), g_other(3);
    std::shared_ptr<nn::Sequential> cpu_net, net;
    Shape input_shape;
    if (cnn) {
      cpu_net = models::make_cnn({}, g_cpu);
      net = models::make_cnn({}, g_other);
      input_shape = Shape{16, 1, 28, 28};
    } else {
      cpu_net = models::make_mlp({.widths = {784, 200, 200, 10}}, g_cpu);
      net = models::make_mlp({.widths = {784, 200, 200, 10}}, g_other);
      input_shape = Shape{200, 784};
    }
    net->to(device);
    const optim::SgdOptions sgd{.lr = 0.02, .momentum = 0.9, .weight_decay = 0.01};
    auto cpu_opt = optim::SGD(cpu_net->parameters(), sgd);
    auto opt = optim::SGD(net->parameters(), sgd);
    Tensor x = random_tensor(input_shape, 11, DType::f32, 0, 1);
    std::vector<std::int32_t> y(static_cast<std::size_t>(input_shape[0]));
    for (std::size_t i = 0; i < y.size(); ++i) y[i] = static_cast<std::int32_t>(i % 10);
    Tensor labels = Tensor::from(y, Shape{input_shape[0]});
    Tensor targets = ops::one_hot(labels, 10);
    Tensor xd = x.to(device), labels_d = labels.to(device), targets_d = targets.to(device);
    for (int step = 0; step < 3; ++step) {
      CAPTURE(step);
      cpu_opt.zero_grad();
      opt.zero_grad();
      Tensor lc = cnn ? ops::cross_entropy(cpu_net->forward(x), labels) : ops::mse_loss(cpu_net->forward(x), targets);
      Tensor ld = cnn ? ops::cross_entropy(net->forward(xd), labels_d) : ops::mse_loss(net->forward(xd), targets_d);
      REQUIRE(std::isfinite(lc.item()));  // a comparison of two diverged runs would prove nothing
      MESSAGE("loss ", lc.item());
      CHECK(ld.item() == doctest::Approx(lc.item()).epsilon(1e-5));
      lc.backward();
      ld.backward();
      const auto cpu_params = cpu_net->named_parameters(), params = net->named_parameters();
      REQUIRE(cpu_params.size() == params.size());
      for (std::size_t i = 0; i < params.size(); ++i) {
        CAPTURE(cpu_params[i].first);
        const auto want = cpu_params[i].second.grad().to_vector();
        double scale = 0;
        for (double v : want) scale = std::max(scale, std::abs(v));
        // Relative to the tensor's largest gradient: a sum that cancels to ~0 keeps an absolute error.
        check_close(params[i].second.grad(), want, {1e-5 * scale, 1e-4}, cpu_params[i].first + " gradient");
      }
      cpu_opt.step();
      opt.step();
    }
    const auto cpu_params = cpu_net->named_parameters(), params = net->named_parameters();
    for (std::size_t i = 0; i < params.size(); ++i) {
      CAPTURE(cpu_params[i].first);
      CHECK(params[i].second.device() == device);
      check_close(params[i].second, cpu_params[i].second.to_vector(), {1e-5, 1e-4}, cpu_params[i].first);
    }
  }
}

}  // namespace gs::test
