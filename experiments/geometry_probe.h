#pragma once
// The geometry probe as the runner calls it at every probe step: the activations of every layer
// (the input, each layer's output as named in the model, "output" for the logits) on the
// geometry probe set, grouped by class, analysed by MFTMA (engine/probe/geometry.h); one row per
// layer in geometry.csv:
//   step, layer, capacity, capacity_se, radius, dimension, center_correlation, k
// The same seeded Gaussian vectors serve every step, so steps differ by the network alone (and
// the input layer not at all: its row is computed once and repeated while the probe set is the
// same). In a run trained on a GPU the network there computes the activations and the analysis
// runs there (only the class centers, the global mean and the per-t terms come back).
#include <fstream>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "engine/probe/center_structure.h"
#include "engine/probe/geometry.h"
#include "experiments/runner.h"

namespace gs::experiments {

class GeometryProbe {
 public:
  // removal: the analysis's step 2 (engine/probe/geometry.h), the reference's rule unless a
  // caller fixes K or needs the manifolds as they are.
  GeometryProbe(double kappa, std::int64_t n_t, std::uint64_t seed, probe::CenterRemoval removal = {})
      : kappa_(kappa), n_t_(n_t), seed_(seed), removal_(removal) {}
  void operator()(const ProbeContext& context);
  Device last_device() const { return last_device_; }  // where the last probe step's analysis ran

 private:
  void write_row(std::int64_t step, const std::string& layer, const probe::LayerGeometry& g);

  double kappa_;
  std::int64_t n_t_;
  std::uint64_t seed_;
  probe::CenterRemoval removal_;
  std::ofstream csv_;
  Tensor device_images_;  // the probe set's images on the training device, uploaded once
  Device last_device_ = Device::cpu;
  std::set<std::string> said_;  // warnings already printed ("layer: text"), each said once a run
  struct InputLayer {  // the input layer's geometry and what it was computed from
    std::vector<double> values;
    std::vector<std::int32_t> labels;
    probe::LayerGeometry geometry;
  };
  std::optional<InputLayer> input_;
};

// The activations of every layer on x: ("input", x flattened), then each layer's output named
// "layers.<i>", the last one named "output". Flatten layers (a view of their input) are skipped.
std::vector<std::pair<std::string, Tensor>> layer_activations(nn::Sequential& model, const Tensor& x);

}  // namespace gs::experiments
