#include "experiments/geometry_probe.h"

#include <fmt/format.h>

#include "engine/autograd.h"
#include "engine/probe/geometry.h"
#include "experiments/probe_csv.h"

namespace gs::experiments {

std::vector<std::pair<std::string, Tensor>> layer_activations(nn::Sequential& model, const Tensor& x) {
  NoGrad no_tape;
  std::vector<std::pair<std::string, Tensor>> out;
  out.emplace_back("input", x.view(Shape{x.size(0), x.numel() / x.size(0)}));
  Tensor h = x;
  for (std::size_t i = 0; i < model.size(); ++i) {
    h = model[i].forward(h);
    if (dynamic_cast<const nn::Flatten*>(&model[i])) continue;
    out.emplace_back(i + 1 == model.size() ? "output" : fmt::format("layers.{}", i), h.view(Shape{h.size(0), h.numel() / h.size(0)}));
  }
  return out;
}

void GeometryProbe::operator()(const ProbeContext& c) {
  if (!csv_.is_open())
    csv_ = open_probe_csv(c.run_dir / "geometry.csv", "step,layer,capacity,capacity_se,radius,dimension,center_correlation,k",
                          c.step);
  const data::Dataset& set = c.probe_geometry;
  // The classes present, numbered 0..k−1 (a data subset need not hold every class).
  auto labels = set.labels.to_int_vector();
  std::vector<std::int32_t> index(static_cast<std::size_t>(set.classes), -1);
  std::int32_t classes = 0;
  for (auto y : labels)
    if (index[static_cast<std::size_t>(y)] < 0) index[static_cast<std::size_t>(y)] = 0;
  for (auto& v : index)
    if (v == 0) v = classes++;
  for (auto& y : labels) y = index[static_cast<std::size_t>(y)];
  nn::Sequential& model = c.device_model ? *c.device_model : c.model;
  const Device device = c.device_model ? c.device_model->parameters().front().device() : Device::cpu;
  if (device != Device::cpu && !device_images_.defined()) device_images_ = set.images.to(device);
  last_device_ = device;
  for (const auto& [name, act] : layer_activations(model, device == Device::cpu ? set.images : device_images_)) {
    // The input layer is the probe set itself, analysed with the same t vectors at every step:
    // its geometry is computed once and repeated for as long as the images and labels are those
    // it was computed from (compared value by value on the host, a few milliseconds against ~0.1 s).
    std::vector<double> input_values;
    if (name == "input") {
      input_values = set.images.to_vector();
      if (input_ && input_->values == input_values && input_->labels == labels) {
        write_row(c.step, name, input_->geometry);
        continue;
      }
    }
    // Where the model is; only the class centers (for the center structure) and the per-t terms come back.
    const auto g = probe::analyze_layer(act, labels, classes, kappa_, n_t_, seed_, removal_);
    if (name == "input") input_ = InputLayer{std::move(input_values), labels, g};
    for (const auto& w : g.warnings)  // once a run: a dead layer stays dead at every later step
      if (said_.insert(name + ": " + w).second)
        fmt::print(stderr, "grokscope: geometry at step {}, {}: {} (said once; later steps log the same)\n", c.step, name, w);
    write_row(c.step, name, g);
  }
  flush_checked(csv_, c.run_dir / "geometry.csv");
}

void GeometryProbe::write_row(std::int64_t step, const std::string& layer, const probe::LayerGeometry& g) {
  csv_ << fmt::format("{},{},{:.9g},{:.6g},{:.9g},{:.9g},{:.9g},{}\n", step, layer, g.capacity, g.capacity_se, g.radius,
                      g.dimension, g.center_correlation, g.k);
}

}  // namespace gs::experiments
