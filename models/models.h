#pragma once
// The study's networks, built from engine/nn. Each is a Sequential whose parameters are named as
// the state_dict of a PyTorch module holding it as `self.layers` ("layers.0.weight", ...).
// Initialization: PyTorch's defaults drawn from gen, layer by layer (weight, then bias), then
// every parameter multiplied by init_scale; the logits are multiplied by output_scale.
#include <memory>
#include <vector>

#include "engine/nn/layers.h"

namespace gs::models {

struct MlpConfig {
  std::vector<std::int64_t> widths{784, 200, 200, 10};  // input, hidden..., classes
  nn::Activation activation = nn::Activation::relu;
  double init_scale = 1.0;
  double output_scale = 1.0;
  DType dtype = DType::f32;
};

// Linear → activation → ... → Linear → Scale. Accepts [n, widths[0]] or images [n, c, h, w]
// (flattened first).
std::shared_ptr<nn::Sequential> make_mlp(const MlpConfig& config, Generator& gen);

struct CnnConfig {
  std::int64_t in_channels = 1, image_size = 28, classes = 10;
  double init_scale = 1.0;
  double output_scale = 1.0;
  DType dtype = DType::f32;
};

// conv3×3 (c→32, pad 1) → ReLU → max-pool 2 → conv3×3 (32→64, pad 1) → ReLU → max-pool 2 →
// flatten → linear (64·(s/4)² → 128) → ReLU → linear (128 → classes) → Scale.
std::shared_ptr<nn::Sequential> make_cnn(const CnnConfig& config, Generator& gen);

// The last layer with parameters (the output layer): its weight norm is logged separately.
std::string output_layer_prefix(const nn::Sequential& net);

}  // namespace gs::models
