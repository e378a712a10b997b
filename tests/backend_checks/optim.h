#pragma once
// The optimizers' update kernels. Part of tests/backend_checks.h.
#include "common.h"

namespace gs::test::backend_checks {

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

}  // namespace gs::test::backend_checks
