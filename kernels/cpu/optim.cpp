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
void CpuBackend::adam_advance(const AdamStep& s, AdamCounters* c) {
  c->step += 1;
  c->step_size = s.lr / (1 - std::pow(s.beta1, c->step));
  c->bias_correction2_sqrt = std::sqrt(1 - std::pow(s.beta2, c->step));
}

void CpuBackend::adam_step(DType dtype, i64 n, void* pv, const void* gv, void* mv, void* vv,
                           const AdamStep& s, const AdamCounters* c) {
  with_float_type(dtype, "adam_step", [&]<class T>() {
    auto p = static_cast<T*>(pv);
    auto g = static_cast<const T*>(gv);
    auto m = static_cast<T*>(mv);
    auto v = static_cast<T*>(vv);
    const T step_size = T(c->step_size);
    const T sqrt_bc2 = T(c->bias_correction2_sqrt);
    const T b1 = T(s.beta1), b2 = T(s.beta2), eps = T(s.eps);
    const T decay = T(1 - s.lr * s.weight_decay), wd = T(s.weight_decay);
    const bool decoupled = s.decoupled_weight_decay, coupled = !decoupled && s.weight_decay != 0;
#pragma omp parallel if (n > parallel_grain)
    {
      FlushSubnormals ftz;  // the moments of idle weights decay into the subnormal range
#pragma omp for
      for (i64 i = 0; i < n; ++i) {
        T gi = g[i];
        if (decoupled) p[i] *= decay;
        if (coupled) gi += wd * p[i];
        m[i] += (gi - m[i]) * (T(1) - b1);  // torch: exp_avg.lerp_(grad, 1 - beta1)
        v[i] = v[i] * b2 + (T(1) - b2) * gi * gi;
        const T denom = std::sqrt(v[i]) / sqrt_bc2 + eps;
        p[i] += -step_size * (m[i] / denom);
      }
    }
  });
}

void CpuBackend::adam_steps(DType dtype, const std::vector<AdamTensor>& tensors, const AdamStep& s,
                            const AdamCounters* counters) {
  // One call per tensor: on the CPU a call costs nothing a fused loop would save (the large
  // tensors thread on their own).
  for (const AdamTensor& t : tensors) adam_step(dtype, t.n, t.param, t.grad, t.exp_avg, t.exp_avg_sq, s, counters);
}

}  // namespace gs::kernels::cpu
