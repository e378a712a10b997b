#pragma once
// Elementwise kernels, broadcasts and their sums, row operations and gathered rows. Part of tests/backend_checks.h.
#include "common.h"

namespace gs::test::backend_checks {

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

}  // namespace gs::test::backend_checks
