#pragma once
// Optimizers with torch.optim's update rules (see kernels/optim.h for the formulas). Parameters
// without a gradient are skipped, as torch skips p.grad is None.
#include <string>
#include <vector>

#include "engine/nn/module.h"
#include "kernels/optim.h"

namespace gs::optim {

class Optimizer {
 public:
  explicit Optimizer(std::vector<Tensor> params);
  virtual ~Optimizer() = default;
  virtual void step() = 0;
  void zero_grad();  // set_to_none, torch's default
  std::int64_t steps_taken() const { return steps_; }
  // Sets the host's step count only, leaving any counters on the device alone: a captured step
  // (engine/step_graph.h) runs step()'s host code once, at capture, and its device work at every
  // replay, so the caller counts the replays here (and undoes the count of a failed capture).
  void set_step_count(std::int64_t steps) { steps_ = steps; }
  double learning_rate() const { return lr_; }
  void set_learning_rate(double lr) { lr_ = lr; }
  // The tensors of the optimizer state, named "<param index>.<buffer>", and the step count:
  // what a checkpoint stores to resume bit-identically.
  virtual nn::NamedTensors state() const = 0;
  // Copies a saved state() back (same names and shapes) and the step count: resumes exactly.
  void load_state(const nn::NamedTensors& saved, std::int64_t steps_taken);

 protected:
  // Called by load_state after steps_ is set: for counters an optimizer keeps on the device.
  virtual void steps_restored() {}
  std::vector<Tensor> params_;
  std::int64_t steps_ = 0;
  double lr_ = 0;
};

struct SgdOptions {
  double lr = 0.01, momentum = 0, dampening = 0, weight_decay = 0;
  bool nesterov = false;
};

class SGD final : public Optimizer {
 public:
  SGD(std::vector<Tensor> params, const SgdOptions& options);
  void step() override;
  nn::NamedTensors state() const override;

 private:
  SgdOptions options_;
  std::vector<Tensor> momentum_;
};

struct AdamOptions {
  double lr = 1e-3, beta1 = 0.9, beta2 = 0.999, eps = 1e-8, weight_decay = 0;
};

// decoupled = false is torch.optim.Adam (weight decay added to the gradient), true is
// torch.optim.AdamW (p ← p·(1 − lr·wd) before the Adam step). AdamW's default wd is 0.01.
class Adam final : public Optimizer {
 public:
  Adam(std::vector<Tensor> params, const AdamOptions& options, bool decoupled_weight_decay = false);
  void step() override;
  nn::NamedTensors state() const override;

 private:
  void steps_restored() override;

  AdamOptions options_;
  bool decoupled_;
  std::vector<Tensor> exp_avg_, exp_avg_sq_;
  Tensor counters_;  // kernels::AdamCounters as f64 [2], on the parameters' device
};

inline Adam AdamW(std::vector<Tensor> params, AdamOptions options) { return Adam(std::move(params), options, true); }

}  // namespace gs::optim
