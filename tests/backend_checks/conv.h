#pragma once
// Convolutions and their gradients, and max pooling. Part of tests/backend_checks.h.
#include "common.h"

namespace gs::test::backend_checks {

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

}  // namespace gs::test::backend_checks
