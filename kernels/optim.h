#pragma once
// Fused optimizer updates with torch.optim's exact update rules, applied in place. One difference
// on x86 CPUs: subnormal values (below 1.2e-38 in f32) are flushed to zero during the update,
// which torch does not do; see FlushSubnormals in kernels/cpu/cpu_backend.h for why.
#include <vector>

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
};

// Adam's step count and bias corrections, three doubles kept with the parameters (device memory
// on a GPU). adam_advance counts the step and computes the corrections from the count in f64,
// as torch does from Python floats; adam_step reads them. So the launches of one step are the
// same as the next's, which is what a replayed CUDA graph needs.
struct AdamCounters {
  double step;             // 1-based after adam_advance, as torch's state['step']
  double step_size;        // lr / (1 − β1^t)
  double bias_correction2_sqrt;  // √(1 − β2^t)
};
static_assert(sizeof(AdamCounters) == 3 * sizeof(double), "AdamCounters is stored as an f64 tensor of 3");

// One parameter tensor of an Adam step: its n values, gradient and two moments.
struct AdamTensor {
  i64 n = 0;
  void* param = nullptr;
  const void* grad = nullptr;
  void* exp_avg = nullptr;
  void* exp_avg_sq = nullptr;
};

class OptimKernels {
 public:
  virtual ~OptimKernels() = default;
  virtual void sgd_step(DType dtype, i64 n, void* param, const void* grad, void* momentum_buffer,
                        const SgdStep& s) = 0;
  virtual void adam_advance(const AdamStep& s, AdamCounters* counters) = 0;
  virtual void adam_step(DType dtype, i64 n, void* param, const void* grad, void* exp_avg,
                         void* exp_avg_sq, const AdamStep& s, const AdamCounters* counters) = 0;
  // adam_step on every tensor of a model (all of `dtype`), each value updated exactly as
  // adam_step updates it; on CUDA in one launch per 16 tensors instead of one per tensor.
  virtual void adam_steps(DType dtype, const std::vector<AdamTensor>& tensors, const AdamStep& s,
                          const AdamCounters* counters) = 0;
};

}  // namespace gs::kernels
