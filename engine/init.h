#pragma once
// PyTorch's default initialization, exactly in distribution. nn.Linear and nn.Conv2d call
// kaiming_uniform_(weight, a = √5): gain = √(2 / (1 + a²)) = √(1/3), bound = gain·√(3 / fan_in)
// = 1/√fan_in; their bias is U(−1/√fan_in, 1/√fan_in). So both are U(−1/√fan_in, 1/√fan_in).
#include "engine/nn/module.h"
#include "engine/rng.h"

namespace gs::init {

void kaiming_uniform(Tensor& weight, std::int64_t fan_in, Generator& gen);  // a = √5
void fan_in_uniform(Tensor& bias, std::int64_t fan_in, Generator& gen);
// Multiplies every parameter by init_scale, as the study scales its initial weights.
void scale_parameters(nn::Module& module, double init_scale);

}  // namespace gs::init
