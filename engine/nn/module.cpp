#include "engine/nn/module.h"

namespace gs::nn {

NamedTensors Module::named_parameters(const std::string& prefix) const {
  NamedTensors out;
  for (const auto& [name, t] : parameters_) out.emplace_back(prefix + name, t);
  for (const auto& [name, child] : children_) {
    auto inner = child->named_parameters(prefix + name + ".");
    out.insert(out.end(), inner.begin(), inner.end());
  }
  return out;
}

std::vector<Tensor> Module::parameters() const {
  std::vector<Tensor> out;
  for (auto& [name, t] : named_parameters()) out.push_back(t);
  return out;
}

std::int64_t Module::parameter_count() const {
  std::int64_t n = 0;
  for (auto& [name, t] : named_parameters()) n += t.numel();
  return n;
}

template <class F>
void Module::for_each_parameter(F&& f) {
  for (auto& [name, t] : parameters_) f(t);
  for (auto& [name, child] : children_) child->for_each_parameter(f);
}

void Module::to(Device device) {
  for_each_parameter([device](Tensor& t) {
    if (t.device() == device) return;
    const bool was_trained = t.requires_grad();
    t = t.to(device);
    t.set_requires_grad(was_trained);
  });
}

void Module::to(DType dtype) {
  for_each_parameter([dtype](Tensor& t) {
    if (t.dtype() == dtype) return;
    const bool was_trained = t.requires_grad();
    t = t.to(dtype);
    t.set_requires_grad(was_trained);
  });
}

Tensor& Module::register_parameter(std::string name, Tensor value) {
  value.set_requires_grad(true);
  parameters_.emplace_back(std::move(name), std::move(value));
  return parameters_.back().second;
}

void Module::register_child(std::string name, std::shared_ptr<Module> child) {
  children_.emplace_back(std::move(name), std::move(child));
}

}  // namespace gs::nn
