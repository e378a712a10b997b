#include "engine/nn/layers.h"

#include <optional>

#include <fmt/format.h>

#include "engine/init.h"
#include "engine/ops.h"

namespace gs::nn {

Linear::Linear(std::int64_t in, std::int64_t out, Generator& gen, bool bias, DType dtype)
    : in_(in), out_(out), has_bias_(bias) {
  GS_CHECK(in > 0 && out > 0, "Linear: in_features and out_features must be positive, got {} and {}", in, out);
  Tensor w = Tensor::empty(Shape{out, in}, dtype);
  init::kaiming_uniform(w, in, gen);
  register_parameter("weight", w);
  if (bias) {
    Tensor b = Tensor::empty(Shape{out}, dtype);
    init::fan_in_uniform(b, in, gen);
    register_parameter("bias", b);
  }
}

Tensor Linear::forward(const Tensor& x) { return ops::linear(x, weight(), bias()); }

std::string Linear::describe() const {
  return fmt::format("Linear(in_features={}, out_features={}, bias={})", in_, out_, has_bias_);
}

Conv2d::Conv2d(std::int64_t in, std::int64_t out, std::int64_t kernel, Generator& gen, std::int64_t stride,
               std::int64_t padding, bool bias, DType dtype)
    : in_(in), out_(out), kernel_(kernel), stride_(stride), padding_(padding), has_bias_(bias) {
  GS_CHECK(in > 0 && out > 0 && kernel > 0, "Conv2d: channels and kernel size must be positive, got {}, {}, {}", in,
           out, kernel);
  const std::int64_t fan_in = in * kernel * kernel;
  Tensor w = Tensor::empty(Shape{out, in, kernel, kernel}, dtype);
  init::kaiming_uniform(w, fan_in, gen);
  register_parameter("weight", w);
  if (bias) {
    Tensor b = Tensor::empty(Shape{out}, dtype);
    init::fan_in_uniform(b, fan_in, gen);
    register_parameter("bias", b);
  }
}

Tensor Conv2d::forward(const Tensor& x) { return ops::conv2d(x, weight(), bias(), stride_, padding_); }

std::string Conv2d::describe() const {
  return fmt::format("Conv2d({}, {}, kernel_size={}, stride={}, padding={})", in_, out_, kernel_, stride_, padding_);
}

MaxPool2d::MaxPool2d(std::int64_t kernel, std::int64_t stride) : kernel_(kernel), stride_(stride ? stride : kernel) {}
Tensor MaxPool2d::forward(const Tensor& x) { return ops::max_pool2d(x, kernel_, stride_); }
std::string MaxPool2d::describe() const { return fmt::format("MaxPool2d(kernel_size={}, stride={})", kernel_, stride_); }

Activation parse_activation(const std::string& name) {
  if (name == "relu") return Activation::relu;
  if (name == "tanh") return Activation::tanh;
  if (name == "gelu") return Activation::gelu;
  if (name == "sigmoid") return Activation::sigmoid;
  fail("unknown activation '{}'; use relu, tanh, gelu or sigmoid", name);
}

const char* activation_name(Activation a) {
  switch (a) {
    case Activation::relu: return "relu";
    case Activation::tanh: return "tanh";
    case Activation::gelu: return "gelu";
    case Activation::sigmoid: return "sigmoid";
  }
  return "?";
}

Tensor ActivationLayer::forward(const Tensor& x) {
  switch (kind_) {
    case Activation::relu: return ops::relu(x);
    case Activation::tanh: return ops::tanh(x);
    case Activation::gelu: return ops::gelu(x);
    case Activation::sigmoid: return ops::sigmoid(x);
  }
  return x;
}

std::string ActivationLayer::describe() const {
  switch (kind_) {
    case Activation::relu: return "ReLU()";
    case Activation::tanh: return "Tanh()";
    case Activation::gelu: return "GELU()";
    case Activation::sigmoid: return "Sigmoid()";
  }
  return "?";
}

Tensor Flatten::forward(const Tensor& x) { return ops::flatten(x); }

Tensor Scale::forward(const Tensor& x) { return factor_ == 1.0 ? x : ops::scale(x, factor_); }
std::string Scale::describe() const { return fmt::format("Scale(output_scale={})", factor_); }

Sequential& Sequential::add(std::shared_ptr<Module> layer) {
  register_child(std::to_string(layers_.size()), layer);
  layers_.push_back(std::move(layer));
  return *this;
}

namespace {
// The activation a dense layer's GEMM can apply as it stores (not gelu: see ops::linear_activation).
std::optional<kernels::Unary> fusable(const Module& layer) {
  const auto* act = dynamic_cast<const ActivationLayer*>(&layer);
  if (!act) return std::nullopt;
  switch (act->kind()) {
    case Activation::relu: return kernels::Unary::relu;
    case Activation::tanh: return kernels::Unary::tanh;
    case Activation::sigmoid: return kernels::Unary::sigmoid;
    case Activation::gelu: return std::nullopt;
  }
  return std::nullopt;
}
}  // namespace

Tensor Sequential::forward(const Tensor& x) {
  Tensor h = x;
  for (std::size_t i = 0; i < layers_.size(); ++i) {
    // A Linear followed by relu, tanh or sigmoid runs as one op: the same values, one kernel
    // fewer on CUDA. Modules called one by one (the probes do) still give both outputs.
    const auto* dense = dynamic_cast<const Linear*>(layers_[i].get());
    const auto act = dense && i + 1 < layers_.size() ? fusable(*layers_[i + 1]) : std::nullopt;
    if (act) {
      h = ops::linear_activation(h, dense->weight(), dense->bias(), *act);
      ++i;
    } else {
      h = layers_[i]->forward(h);
    }
  }
  return h;
}

std::string Sequential::describe() const {
  std::string s = "Sequential(\n";
  for (std::size_t i = 0; i < layers_.size(); ++i) s += fmt::format("  ({}): {}\n", i, layers_[i]->describe());
  return s + ")";
}

}  // namespace gs::nn
