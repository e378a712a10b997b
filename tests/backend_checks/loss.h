#pragma once
// The losses, argmax and the counts of correct predictions. Part of tests/backend_checks.h.
#include "common.h"

namespace gs::test::backend_checks {

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

}  // namespace gs::test::backend_checks
