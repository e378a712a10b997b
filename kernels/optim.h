#pragma once
// Fused optimizer updates with torch.optim's exact update rules, applied in place. One difference
// on x86 CPUs: subnormal values (below 1.2e-38 in f32) are flushed to zero during the update,
// which torch does not do; see FlushSubnormals in kernels/cpu/cpu_backend.h for why.
#include "kernels/family.h"

namespace gs::kernels {

struct SgdStep {
  double lr = 0, momentum = 0, dampening = 0, weight_decay = 0;
  bool nesterov = false;
  bool first_step = true;  // torch initializes the momentum buffer to the first gradient
};

struct AdamStep {
  double lr = 1e-3, beta1 = 0.9, beta2 = 0.999, eps = 1e-8, weight_decay = 0;
  bool decoupled_weight_decay = false;  // false: Adam (wd added to the gradient); true: AdamW
  std::int64_t step = 1;                // 1-based, after increment, as torch's state['step']
};

class OptimKernels {
 public:
  virtual ~OptimKernels() = default;
  virtual void sgd_step(DType dtype, i64 n, void* param, const void* grad, void* momentum_buffer,
                        const SgdStep& s) = 0;
  virtual void adam_step(DType dtype, i64 n, void* param, const void* grad, void* exp_avg,
                         void* exp_avg_sq, const AdamStep& s) = 0;
};

}  // namespace gs::kernels
