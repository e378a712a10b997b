#include <algorithm>
#include <cmath>

#include "kernels/cpu/cpu_backend.h"

namespace gs::kernels::cpu {

// torch.optim.SGD (foreach=False): d = g + wd·p; buf = d on the first step, else
// momentum·buf + (1 − dampening)·d; d = d + momentum·buf (nesterov) or buf; p −= lr·d.
void CpuBackend::sgd_step(DType dtype, i64 n, void* pv, const void* gv, void* bufv, const SgdStep& s) {
  with_float_type(dtype, "sgd_step", [&]<class T>() {
    auto p = static_cast<T*>(pv);
    auto g = static_cast<const T*>(gv);
    auto buf = static_cast<T*>(bufv);
    const T lr = T(s.lr), wd = T(s.weight_decay), mom = T(s.momentum), damp = T(1 - s.dampening);
#pragma omp parallel if (n > parallel_grain)
    {
      FlushSubnormals ftz;  // momentum buffers of idle weights decay into the subnormal range
#pragma omp for
      for (i64 i = 0; i < n; ++i) {
        T d = g[i];
        if (s.weight_decay != 0) d += wd * p[i];
        if (s.momentum != 0) {
          buf[i] = s.first_step ? d : mom * buf[i] + damp * d;
          d = s.nesterov ? d + mom * buf[i] : buf[i];
        }
        p[i] -= lr * d;
      }
    }
  });
}

// torch.optim.Adam / AdamW (foreach=False, amsgrad=False): AdamW first decays p ← p·(1 − lr·wd),
// Adam adds wd·p to the gradient. Then m ← β1 m + (1−β1) g, v ← β2 v + (1−β2) g²,
// p ← p − (lr / (1−β1^t)) · m / (√v / √(1−β2^t) + ε). Bias corrections are computed in f64, as
// torch computes them from Python floats.
namespace {

template <class T>
struct AdamScalars {
  T step_size, sqrt_bc2, b1, b2, eps, decay, wd;
};

// One Adam/AdamW update of n values. Everything arrives by value and the weight decay's form is
// a template argument, so the loop has no branch and no load the stores could alias: the
// compiler vectorizes it (sqrt and division are exactly rounded in every lane, so the values are
// those of the scalar loop).
template <class T, bool decoupled, bool coupled>
void adam_update(i64 n, T* p, const T* g, T* m, T* v, const AdamScalars<T> k) {
#pragma omp parallel if (n > parallel_grain)
  {
    FlushSubnormals ftz;  // the moments of idle weights decay into the subnormal range
#pragma omp for
    for (i64 i = 0; i < n; ++i) {
      T gi = g[i];
      T pi = p[i];
      if constexpr (decoupled) pi *= k.decay;
      if constexpr (coupled) gi += k.wd * pi;
      const T mi = m[i] + (gi - m[i]) * (T(1) - k.b1);  // torch: exp_avg.lerp_(grad, 1 - beta1)
      const T vi = v[i] * k.b2 + (T(1) - k.b2) * gi * gi;
      m[i] = mi;
      v[i] = vi;
      const T denom = std::sqrt(vi) / k.sqrt_bc2 + k.eps;
      p[i] = pi + -k.step_size * (mi / denom);
    }
  }
}

}  // namespace

void CpuBackend::adam_steps(DType dtype, const std::vector<AdamTensor>& tensors, const AdamStep& s, AdamCounters* c,
                            bool count_step) {
  const double t = c->step + 1;
  const AdamCorrections corrections = adam_corrections(s.lr, s.beta1, s.beta2, t);
  with_float_type(dtype, "adam_steps", [&]<class T>() {
    const AdamScalars<T> k{T(corrections.step_size), T(corrections.sqrt_bc2), T(s.beta1), T(s.beta2), T(s.eps), T(1 - s.lr * s.weight_decay),
                           T(s.weight_decay)};
    // One loop per tensor: on the CPU a call costs nothing a fused loop would save (the large
    // tensors thread on their own).
    for (const AdamTensor& x : tensors) {
      auto p = static_cast<T*>(x.param);
      auto g = static_cast<const T*>(x.grad);
      auto m = static_cast<T*>(x.exp_avg);
      auto v = static_cast<T*>(x.exp_avg_sq);
      if (s.decoupled_weight_decay)
        adam_update<T, true, false>(x.n, p, g, m, v, k);
      else if (s.weight_decay != 0)
        adam_update<T, false, true>(x.n, p, g, m, v, k);
      else
        adam_update<T, false, false>(x.n, p, g, m, v, k);
    }
  });
  if (count_step) c->step = t;
}

}  // namespace gs::kernels::cpu
