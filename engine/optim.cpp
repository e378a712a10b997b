#include "engine/optim.h"

#include "engine/autograd.h"
#include "kernels/backend.h"

namespace gs::optim {

namespace {
void check_params(const std::vector<Tensor>& params) {
  GS_CHECK(!params.empty(), "an optimizer needs at least one parameter");
  for (std::size_t i = 0; i < params.size(); ++i)
    GS_CHECK(params[i].defined() && params[i].requires_grad() && !params[i].grad_fn(),
             "optimizer parameter {} must be a leaf tensor that requires grad, got {}", i, params[i].describe());
}

void check_grad(std::size_t i, const Tensor& p, const Tensor& g) {
  GS_CHECK(g.shape() == p.shape() && g.dtype() == p.dtype() && g.device() == p.device(),
           "optimizer parameter {} is {} but its gradient is {}", i, p.describe(), g.describe());
}
}  // namespace

Optimizer::Optimizer(std::vector<Tensor> params) : params_(std::move(params)) { check_params(params_); }

void Optimizer::zero_grad() {
  for (auto& p : params_) p.zero_grad();
}

void Optimizer::load_state(const nn::NamedTensors& saved, std::int64_t steps_taken) {
  auto mine = state();
  GS_CHECK(saved.size() == mine.size(), "optimizer state: {} saved tensors for {} buffers; the checkpoint is from another "
           "optimizer or model", saved.size(), mine.size());
  for (std::size_t i = 0; i < mine.size(); ++i) {
    GS_CHECK(saved[i].first == mine[i].first, "optimizer state: saved '{}' where '{}' belongs", saved[i].first, mine[i].first);
    mine[i].second.copy_(saved[i].second.device() == mine[i].second.device() ? saved[i].second
                                                                               : saved[i].second.to(mine[i].second.device()));
  }
  steps_ = steps_taken;
  steps_restored();
}

SGD::SGD(std::vector<Tensor> params, const SgdOptions& o) : Optimizer(std::move(params)), options_(o) {
  GS_CHECK(o.lr >= 0 && o.momentum >= 0 && o.weight_decay >= 0,
           "SGD: lr, momentum and weight_decay must be non-negative, got {}, {}, {}", o.lr, o.momentum, o.weight_decay);
  GS_CHECK(!o.nesterov || (o.momentum > 0 && o.dampening == 0), "SGD: nesterov needs momentum > 0 and dampening 0");
  lr_ = o.lr;
  for (auto& p : params_) momentum_.push_back(Tensor::zeros(p.shape(), p.dtype(), p.device()));
}

void SGD::step() {
  NoGrad no_tape;
  ++steps_;
  kernels::SgdStep s{lr_, options_.momentum, options_.dampening, options_.weight_decay, options_.nesterov,
                     steps_ == 1};
  for (std::size_t i = 0; i < params_.size(); ++i) {
    Tensor g = params_[i].grad();
    if (!g.defined()) continue;
    check_grad(i, params_[i], g);
    kernels::backend(params_[i].device())
        .sgd_step(params_[i].dtype(), params_[i].numel(), params_[i].raw(), g.raw(), momentum_[i].raw(), s);
  }
}

nn::NamedTensors SGD::state() const {
  nn::NamedTensors out;
  for (std::size_t i = 0; i < params_.size(); ++i) out.emplace_back(std::to_string(i) + ".momentum_buffer", momentum_[i]);
  return out;
}

Adam::Adam(std::vector<Tensor> params, const AdamOptions& o, bool decoupled)
    : Optimizer(std::move(params)), options_(o), decoupled_(decoupled) {
  GS_CHECK(o.lr >= 0 && o.eps >= 0 && o.weight_decay >= 0, "Adam: lr, eps and weight_decay must be non-negative");
  GS_CHECK(o.beta1 >= 0 && o.beta1 < 1 && o.beta2 >= 0 && o.beta2 < 1, "Adam: betas must be in [0, 1), got {} and {}",
           o.beta1, o.beta2);
  lr_ = o.lr;
  for (auto& p : params_) {
    exp_avg_.push_back(Tensor::zeros(p.shape(), p.dtype(), p.device()));
    exp_avg_sq_.push_back(Tensor::zeros(p.shape(), p.dtype(), p.device()));
  }
  const Device device = params_.front().device();
  for (const auto& p : params_)
    GS_CHECK(p.device() == device, "Adam: the parameters are on more than one device ({} and {}); move the model with "
             "Module::to first", device_name(device), device_name(p.device()));
  counters_ = Tensor::zeros(Shape{2}, DType::f64, device);  // a zero count, no block finished
}

void Adam::steps_restored() {
  counters_.copy_(Tensor::from(std::vector<double>{static_cast<double>(steps_), 0}, Shape{2}, DType::f64));
}

void Adam::step() {
  NoGrad no_tape;
  ++steps_;
  const kernels::AdamStep s{lr_, options_.beta1, options_.beta2, options_.eps, options_.weight_decay, decoupled_};
  auto& be = kernels::backend(counters_.device());
  auto* counters = static_cast<kernels::AdamCounters*>(counters_.raw());
  // Every parameter with a gradient in one call per dtype (one launch on CUDA for up to 16); the
  // last call counts the step.
  std::vector<std::pair<DType, std::vector<kernels::AdamTensor>>> calls;
  for (DType dtype : {DType::f32, DType::f64}) {
    std::vector<kernels::AdamTensor> tensors;
    for (std::size_t i = 0; i < params_.size(); ++i) {
      Tensor g = params_[i].grad();
      if (!g.defined() || params_[i].dtype() != dtype) continue;
      check_grad(i, params_[i], g);
      tensors.push_back({params_[i].numel(), params_[i].raw(), g.raw(), exp_avg_[i].raw(), exp_avg_sq_[i].raw()});
    }
    if (!tensors.empty()) calls.emplace_back(dtype, std::move(tensors));
  }
  if (calls.empty()) calls.emplace_back(DType::f32, std::vector<kernels::AdamTensor>{});  // still a step
  for (std::size_t c = 0; c < calls.size(); ++c)
    be.adam_steps(calls[c].first, calls[c].second, s, counters, c + 1 == calls.size());
}

nn::NamedTensors Adam::state() const {
  nn::NamedTensors out;
  for (std::size_t i = 0; i < params_.size(); ++i) {
    out.emplace_back(std::to_string(i) + ".exp_avg", exp_avg_[i]);
    out.emplace_back(std::to_string(i) + ".exp_avg_sq", exp_avg_sq_[i]);
  }
  return out;
}

}  // namespace gs::optim
