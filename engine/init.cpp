#include "engine/init.h"

#include <cmath>

#include "engine/autograd.h"
#include "kernels/backend.h"

namespace gs::init {

void kaiming_uniform(Tensor& weight, std::int64_t fan_in, Generator& gen) {
  const double a = std::sqrt(5.0);
  const double gain = std::sqrt(2.0 / (1.0 + a * a));
  const double bound = gain * std::sqrt(3.0 / static_cast<double>(fan_in));
  gen.uniform(weight, -bound, bound);
}

void fan_in_uniform(Tensor& bias, std::int64_t fan_in, Generator& gen) {
  const double bound = 1.0 / std::sqrt(static_cast<double>(fan_in));
  gen.uniform(bias, -bound, bound);
}

void scale_parameters(nn::Module& module, double init_scale) {
  GS_CHECK(std::isfinite(init_scale), "init_scale must be finite, got {}", init_scale);
  NoGrad no_tape;
  for (auto& [name, p] : module.named_parameters()) {
    Tensor t = p;  // a handle: scaling in place updates the module's parameter
    kernels::backend(t.device()).axpby(t.dtype(), t.numel(), init_scale, t.raw(), 0.0, t.raw());
  }
}

}  // namespace gs::init
