#pragma once
// The layers of the study's networks. Dense and convolutional layers draw their initial values
// from a Generator at construction, with PyTorch's default distributions (see engine/init.h).
#include "engine/nn/module.h"
#include "engine/rng.h"

namespace gs::nn {

class Linear final : public Module {
 public:
  Linear(std::int64_t in_features, std::int64_t out_features, Generator& gen, bool bias = true,
         DType dtype = DType::f32);
  Tensor forward(const Tensor& x) override;
  std::string describe() const override;
  const Tensor& weight() const { return parameter(0); }  // [out_features, in_features]
  Tensor bias() const { return has_bias_ ? parameter(1) : Tensor(); }
  std::int64_t in_features() const { return in_; }
  std::int64_t out_features() const { return out_; }

 private:
  std::int64_t in_, out_;
  bool has_bias_;
};

class Conv2d final : public Module {
 public:
  Conv2d(std::int64_t in_channels, std::int64_t out_channels, std::int64_t kernel_size, Generator& gen,
         std::int64_t stride = 1, std::int64_t padding = 0, bool bias = true, DType dtype = DType::f32);
  Tensor forward(const Tensor& x) override;
  std::string describe() const override;
  const Tensor& weight() const { return parameter(0); }  // [out, in, k, k]
  Tensor bias() const { return has_bias_ ? parameter(1) : Tensor(); }
  std::int64_t stride() const { return stride_; }
  std::int64_t padding() const { return padding_; }

 private:
  std::int64_t in_, out_, kernel_, stride_, padding_;
  bool has_bias_;
};

class MaxPool2d final : public Module {
 public:
  explicit MaxPool2d(std::int64_t kernel_size, std::int64_t stride = 0);  // stride 0: = kernel
  Tensor forward(const Tensor& x) override;
  std::string describe() const override;
  std::int64_t kernel() const { return kernel_; }
  std::int64_t stride() const { return stride_; }

 private:
  std::int64_t kernel_, stride_;
};

enum class Activation { relu, tanh, gelu, sigmoid };
Activation parse_activation(const std::string& name);  // "relu" | "tanh" | "gelu" | "sigmoid"
const char* activation_name(Activation a);

class ActivationLayer final : public Module {
 public:
  explicit ActivationLayer(Activation kind) : kind_(kind) {}
  Tensor forward(const Tensor& x) override;
  std::string describe() const override;
  Activation kind() const { return kind_; }

 private:
  Activation kind_;
};

class Flatten final : public Module {
 public:
  Tensor forward(const Tensor& x) override;
  std::string describe() const override { return "Flatten()"; }
};

// f(x) = output_scale · x: the study's output scaling α of the network's logits.
class Scale final : public Module {
 public:
  explicit Scale(double factor) : factor_(factor) {}
  Tensor forward(const Tensor& x) override;
  std::string describe() const override;
  double factor() const { return factor_; }

 private:
  double factor_;
};

class Sequential final : public Module {
 public:
  Sequential& add(std::shared_ptr<Module> layer);
  Tensor forward(const Tensor& x) override;
  std::string describe() const override;
  std::size_t size() const { return layers_.size(); }
  Module& operator[](std::size_t i) { return *layers_.at(i); }
  const Module& operator[](std::size_t i) const { return *layers_.at(i); }

 private:
  std::vector<std::shared_ptr<Module>> layers_;
};

}  // namespace gs::nn
