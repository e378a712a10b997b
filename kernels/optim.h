#pragma once
// Fused optimizer updates with torch.optim's exact update rules, applied in place. One difference
// on x86 CPUs: subnormal values (below 1.2e-38 in f32) are flushed to zero during the update,
// which torch does not do; see FlushSubnormals in kernels/cpu/cpu_backend.h for why.
#include <cmath>
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

// Adam's step count, kept with the parameters (device memory on a GPU) so that the launches of
// one step are the same as the next's, which is what a replayed CUDA graph needs. adam_steps
// reads it, computes the step's bias corrections from it in f64 (as torch does from Python
// floats), and counts the step.
struct AdamCounters {
  double step;                         // steps taken, as torch's state['step']
  unsigned long long finished_blocks;  // CUDA: blocks of the counting launch done so far; 0 between calls
};
static_assert(sizeof(AdamCounters) == 2 * sizeof(double), "AdamCounters is stored as an f64 tensor of 2");

// The bias corrections of step t, one definition for the CPU backend and the CUDA kernel.
struct AdamCorrections {
  double step_size;  // lr / (1 − β1^t)
  double sqrt_bc2;   // √(1 − β2^t)
};
GS_SHARED_INLINE AdamCorrections adam_corrections(double lr, double beta1, double beta2, double t) {
  return {lr / (1 - pow(beta1, t)), sqrt(1 - pow(beta2, t))};
}

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
  // One Adam step, number t = counters->step + 1, on every tensor of a model that is of `dtype`.
  // With count_step the call also stores t in counters->step: a step of a model with tensors of
  // both dtypes makes two calls and counts in the second. On CUDA: one launch per 16 tensors, the
  // count kept by the last block of the last launch to finish (no launch of its own).
  virtual void adam_steps(DType dtype, const std::vector<AdamTensor>& tensors, const AdamStep& s,
                          AdamCounters* counters, bool count_step) = 0;
};

}  // namespace gs::kernels
