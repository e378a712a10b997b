#pragma once
// Modules in the shape of torch.nn: a module owns named parameters and child modules, and its
// named_parameters() are the keys of the equivalent PyTorch state_dict ("layers.0.weight").
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "engine/tensor.h"

namespace gs::nn {

using NamedTensors = std::vector<std::pair<std::string, Tensor>>;

class Module {
 public:
  virtual ~Module() = default;
  virtual Tensor forward(const Tensor& x) = 0;
  Tensor operator()(const Tensor& x) { return forward(x); }
  virtual std::string describe() const = 0;  // "Linear(in_features=784, out_features=200)"

  // Every parameter of this module and its children, depth first, in registration order.
  NamedTensors named_parameters(const std::string& prefix = "") const;
  std::vector<Tensor> parameters() const;
  std::int64_t parameter_count() const;
  // Moves or converts every parameter in place (the handles held elsewhere become stale).
  void to(Device device);
  void to(DType dtype);

 protected:
  Tensor& register_parameter(std::string name, Tensor value);
  void register_child(std::string name, std::shared_ptr<Module> child);
  Tensor& parameter(std::size_t index) { return parameters_[index].second; }
  const Tensor& parameter(std::size_t index) const { return parameters_[index].second; }

 private:
  NamedTensors parameters_;
  std::vector<std::pair<std::string, std::shared_ptr<Module>>> children_;
  template <class F>
  void for_each_parameter(F&& f);
};

}  // namespace gs::nn
